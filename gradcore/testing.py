"""The pytest route: put your own technique under gradcore's claims in your CI.

One test per technique::

    from gradcore.testing import check_technique

    def test_my_norm_is_safe():
        result = check_technique(MyNorm, kind="norm")
        result.assert_ok()          # AssertionError with the clause table on a violation

or one test item per (technique, clause), the way pytest users know it (like scikit-learn's
``parametrize_with_checks``)::

    from gradcore.testing import parametrize_clauses

    @parametrize_clauses([MyNorm, my_clip], xfail={"MyNorm-epsilon-floor": "no ε, by design"})
    def test_clause(technique, clause):
        clause(technique)           # test_clause[MyNorm-jacobian-bound], ...

The result (:class:`gradcore.verify.check.TechniqueCheck`) has ``.ok``, ``.violations``
(the violated clauses, each with its measured constants and counterexample),
``.results`` (every clause), ``.table()`` and ``.summary``. The user's Hypothesis profile
is left alone: the searches take the chosen gradcore profile's settings per call.
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from .errors import CheckError, InputError
from .verify import check_report
from .verify.check import TechniqueCheck, check, infer_kind, settings_for
from .verify.contracts import Clause, ClauseResult, contract
from .verify.contracts.base import prepare
from .verify.contracts.contract import Inference, declared_kind
from .verify.timelimit import DEFAULT_TIME_LIMIT_S
from .verify.verdicts import NOT_APPLICABLE


def check_technique(technique: Any, kind: str | None = None, *, device: str = "cpu",
                    profile: str = "ci", seed: int = 0, name: str | None = None,
                    compare: bool = False, time_limit_s: float | None = DEFAULT_TIME_LIMIT_S) -> TechniqueCheck:
    """Measure ``technique`` against every claim of its kind (inferred unless given).

    Raises :class:`~gradcore.errors.CheckError` (one line) when the technique
    cannot be checked: unknown kind, not callable, wrong shape, non-finite output. A
    clause gradcore could not measure (its own error, or past ``time_limit_s`` seconds,
    enforced on the main thread only) is in ``result.unmeasured``, a gating clause whose
    interval still straddles the claim at its draw cap in ``result.undecided``; either makes
    ``ok`` False.
    Gradients are measured even when called under ``torch.no_grad()`` or ``inference_mode``.
    """
    if name is not None and not (isinstance(name, str) and name.isprintable()):
        raise CheckError(f"name must be a one-line string (it heads the clause table), got {name!r}")
    if not isinstance(compare, bool):
        raise CheckError(f"compare must be True or False, got {compare!r}")
    import torch

    # A caller's no_grad would detach every output: each f' would be measured as 0.
    with torch.inference_mode(False), torch.enable_grad():
        return check(technique, kind=kind, name=name, device=device, profile=profile, seed=seed,
                     compare=compare, time_limit_s=time_limit_s)


# --- one item per (technique, clause) ----------------------------------------------------

@dataclass
class _Technique:
    """One technique of a parametrization: its kind (and why), measured at most once per session."""

    name: str
    obj: Any
    inference: Inference
    options: dict[str, Any]

    def measure(self) -> TechniqueCheck:
        result = check(self.obj, kind=self.inference.kind, name=self.name, compare=False, **self.options)
        result.kind_reason = self.inference.reason
        return result


@dataclass
class _Session:
    """Per pytest session: each technique's check, measured on its first item; the closing lines."""

    checks: dict[int, TechniqueCheck] = field(default_factory=dict)

    def result(self, technique: _Technique) -> TechniqueCheck:
        if id(technique) not in self.checks:
            self.checks[id(technique)] = technique.measure()
        return self.checks[id(technique)]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter.write_sep("-", "gradcore clauses")
        for c in self.checks.values():
            terminalreporter.write_line(f"{c.name} ({c.kind}): {c.summary}")


_SESSION = pytest.StashKey[_Session]()


def _session(config: pytest.Config) -> _Session:
    if _SESSION not in config.stash:
        config.stash[_SESSION] = _Session()
        config.pluginmanager.register(config.stash[_SESSION], "gradcore-testing-session")
    return config.stash[_SESSION]


class ClauseCheck:
    """One clause of one technique's kind; calling it with the technique asserts the clause.

    A violated or unmeasured gating clause fails with the clause's measured constants and
    counterexample; an interval that could not decide skips (neither a pass nor a failure);
    an informational clause (``gate=False``) passes once measured.
    """

    def __init__(self, technique: _Technique, clause: Clause) -> None:
        self.technique, self.clause = technique, clause
        self.id, self.statement, self.claims = clause.id, clause.statement, clause.claims
        self._session: _Session | None = None

    def __repr__(self) -> str:
        return f"<clause {self.technique.name}-{self.id}>"

    def result(self) -> ClauseResult:
        """This clause's result (the technique measured once per session, on first use)."""
        session = self._session or _Session()
        self._session = session
        found = session.result(self.technique)
        return next(r for r in found.results if r.clause == self.id)

    def __call__(self, technique: Any) -> ClauseResult:
        if technique is not self.technique.obj:
            raise InputError(f"clause: called with {technique!r}, but the item is {self.technique.name}'s")
        r = self.result()
        text = check_report.clause_text(r)
        if r.verdict == NOT_APPLICABLE:
            pytest.skip(f"{self.technique.name} {self.id}: {r.note}")
        if r.verdict == "inconclusive" and r.gate:
            pytest.skip(f"{self.technique.name} {self.id} is inconclusive: {r.note or 'the interval straddles'}")
        if r.violated or r.verdict == "unmeasured":
            raise AssertionError(f"{self.technique.name} ({self.technique.inference.kind}) {text}")
        return r


def parametrize_clauses(techniques: Iterable[Any] | Mapping[str, Any], *, kind: str | None = None,
                        xfail: Mapping[str, str | pytest.MarkDecorator] | None = None,
                        device: str = "cpu", profile: str = "ci", seed: int = 0,
                        time_limit_s: float | None = DEFAULT_TIME_LIMIT_S) -> Callable[[Callable[..., Any]], Any]:
    """Decorate a test ``(technique, clause)``: one item per technique and clause of its kind.

    Item ids read ``<technique>-<clause>`` (``test_clause[MyNorm-jacobian-bound]``).
    ``techniques`` is a list (named by ``__qualname__``) or a mapping name → technique; each
    technique's kind is ``kind``, its ``gradcore_kind`` attribute, or inferred at collection.
    ``xfail`` maps an item id, or a clause id for every technique, to a reason (a strict
    ``pytest.mark.xfail``: a clause that starts to hold is reported) or to a mark of your own.
    Each technique is measured once per pytest session, on its first item; the session ends
    with one line per technique: ``N clauses ran, M held, K violated, U could not be measured``.
    """
    options = dict(device=device, profile=profile, seed=seed, time_limit_s=time_limit_s)
    settings = settings_for(device, profile, seed, time_limit_s)
    named = dict(techniques) if isinstance(techniques, Mapping) else {_name(t): t for t in techniques}
    items = [(t, c) for t in (_Technique(n, obj, _kind(obj, n, kind, settings), options) for n, obj in named.items())
             for c in contract(t.inference.kind).clauses]
    marks = _marks(xfail or {}, items)
    params = [pytest.param(t.obj, ClauseCheck(t, c), id=f"{t.name}-{c.id}", marks=marks.get((t.name, c.id), ()))
              for t, c in items]

    def decorate(test: Callable[..., Any]) -> Any:
        return pytest.mark.parametrize(("technique", "clause"), params)(_with_session(test))
    return decorate


def _name(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or type(obj).__name__


def _kind(obj: Any, name: str, kind: str | None, settings: Any) -> Inference:
    if kind is not None:
        return Inference(contract(kind).kind, True, "given")
    if (declared := declared_kind(obj)) is not None:
        return Inference(declared, True, "declared by its gradcore_kind attribute")
    return prepare(lambda: infer_kind(obj, settings), settings, f"inferring the kind of {name}")


def _marks(xfail: Mapping[str, Any], items: list[tuple[_Technique, Clause]]) -> dict[tuple[str, str], Any]:
    """Item (technique, clause) → its xfail mark; an id that names no item is an error (a typo
    must not silently un-expect a failure)."""
    marks: dict[tuple[str, str], Any] = {}
    for key, mark in xfail.items():
        hits = [(t.name, c.id) for t, c in items if key in (f"{t.name}-{c.id}", c.id)]
        if not hits:
            known = ", ".join(f"{t.name}-{c.id}" for t, c in items)
            raise InputError(f"xfail: {key!r} names no item (items: {known})")
        if isinstance(mark, str):
            mark = pytest.mark.xfail(reason=mark, strict=True)
        elif not isinstance(mark, pytest.MarkDecorator):
            raise InputError(f"xfail[{key!r}]: expected a reason or a pytest mark, got {type(mark).__name__}")
        marks.update(dict.fromkeys(hits, mark))
    return marks


def _with_session(test: Callable[..., Any]) -> Callable[..., Any]:
    """The test, given pytest's ``request`` so that each clause uses the session's measurements."""
    sig = inspect.signature(test)
    wants_request = "request" in sig.parameters

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> Any:
        request = kwargs["request"] if wants_request else kwargs.pop("request")
        clause = kwargs.get("clause")
        if isinstance(clause, ClauseCheck):
            clause._session = _session(request.config)
        return test(*args, **kwargs)

    if not wants_request:
        extra = inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY)
        run.__signature__ = sig.replace(parameters=[*sig.parameters.values(), extra])  # type: ignore[attr-defined]
    return run


__all__ = ["CheckError", "ClauseCheck", "TechniqueCheck", "check_technique", "parametrize_clauses"]

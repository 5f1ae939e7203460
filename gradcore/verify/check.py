"""Measure a new technique against every claim of its kind (``gradcore check``, ``gradcore.testing``).

The object (a callable, an ``nn.Module`` class or a factory) has its kind inferred (or
given), and the kind's contract (:mod:`gradcore.verify.contracts`) runs every applicable
clause on it — and, for the side-by-side table, on gradcore's built-in techniques of the
same kind — into a :class:`TechniqueCheck`. A clause is violated, holds, or could not be
measured (gradcore's own failure or the per-clause time limit). User code runs under a time limit
(:mod:`gradcore.verify.timelimit`), in process state gradcore puts back after its import and
after every clause (:mod:`gradcore.verify.sandbox`), and a ``sys.exit`` in it is caught.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..measure import profiles
from . import check_report
from .loading import load_object
from .contracts import KINDS, ClauseResult, Contract, Settings, contract
from ..errors import CheckError
from .contracts.base import prepare, run_clause
from .contracts.contract import DECLARED, Inference, declared_kind, settle
from .timelimit import DEFAULT_TIME_LIMIT_S

DEVICES = ("cpu", "cuda")


@dataclass
class TechniqueCheck:
    """Every clause of one technique's kind, measured on it (and on the built-ins)."""

    name: str
    kind: str
    spec: str
    settings: Settings
    results: list[ClauseResult]
    builtins: dict[str, list[ClauseResult]] = field(default_factory=dict)
    wall_time_s: float = 0.0
    kind_reason: str = "given"   # why the kind was chosen: given, declared by the object, or inferred

    @property
    def counts(self) -> dict[str, int]:
        """How many clauses ran, held, were violated and could not be measured."""
        return check_report.counts(self.results)

    @property
    def summary(self) -> str:
        """``N clauses ran, M held, K violated, U could not be measured``."""
        return check_report.summary_line(self.results)

    @property
    def violations(self) -> list[ClauseResult]:
        """Gating clauses the technique violates."""
        return [r for r in self.results if r.violated]

    @property
    def unmeasured(self) -> list[ClauseResult]:
        """Gating clauses gradcore could not measure (so neither pass nor fail)."""
        return [r for r in self.results if r.unmeasured]

    @property
    def undecided(self) -> list[ClauseResult]:
        """Gating clauses whose measurement could not decide at the draw cap (so neither pass nor fail)."""
        return [r for r in self.results if r.undecided]

    @property
    def ok(self) -> bool:
        return not self.violations and not self.unmeasured and not self.undecided

    def table(self) -> str:
        return check_report.summary_table(self)

    def assert_ok(self) -> None:
        """Raise AssertionError with the clause table when a gating clause is violated."""
        if self.violations:
            names = ", ".join(r.clause for r in self.violations)
            raise AssertionError(f"{self.name} ({self.kind}) violates {names}\n{self.table()}")
        if self.unmeasured:
            names = ", ".join(r.clause for r in self.unmeasured)
            raise AssertionError(f"{self.name} ({self.kind}): {names} could not be measured\n{self.table()}")
        if self.undecided:
            names = ", ".join(r.clause for r in self.undecided)
            raise AssertionError(f"{self.name} ({self.kind}): {names} could not be decided\n{self.table()}")


def infer_kind(obj: Any, settings: Settings) -> Inference:
    """The one kind whose contract recognises ``obj``, and why; CheckError when none or several do.

    A ``gradcore_kind`` attribute on the object decides; otherwise each contract asks its cheap
    signature questions and, only when they pass, runs its smoke test once (the passing one is
    reused by ``subject``). Where several recognise it, a kind that ``precedes`` the others wins
    and its reason says why (a Post-LN block is a transformer though its output is normalised).
    """
    if not callable(obj):
        raise CheckError(f"{type(obj).__name__} object is not callable, so it is no technique")
    if (declared := declared_kind(obj)) is not None:
        return Inference(declared, True, f"declared by its {DECLARED} attribute")
    answers = {k: c.infer(obj, settings) for k, c in Contract.registry.items()}   # kinds defined since import too
    winners = settle(answers)     # a kind that precedes another both recognise wins, saying why
    if len(winners) == 1:
        return replace(winners[0], reason=f"inferred: {winners[0].reason}")
    kinds = [a.kind for a in winners]
    if not kinds:
        why = answers["activation"].reason if "activation" in answers else ""
        raise CheckError(f"cannot infer the kind of {_describe(obj)}"
                         f"{f' (as an activation: {why})' if why else ''}; pass --kind {{{','.join(answers)}}} "
                         f"or set {DECLARED} on it")
    raise CheckError(f"{_describe(obj)} is ambiguous (looks like {' and '.join(kinds)}); pass --kind")


def _describe(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or type(obj).__name__


MAX_SEED = 2 ** 62   # seed + clause offsets stay inside torch.manual_seed's 64-bit range


def settings_for(device: str = "cpu", profile: str = "ci", seed: int = 0,
                 time_limit_s: float | None = DEFAULT_TIME_LIMIT_S) -> Settings:
    import torch

    if device not in DEVICES:
        raise CheckError(f"unknown device {device!r}; expected cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise CheckError("--device cuda requested but torch.cuda.is_available() is False")
    if profile not in profiles.PROFILES:
        raise CheckError(f"unknown profile {profile!r}; expected one of {', '.join(profiles.PROFILES)}")
    if time_limit_s is not None and not (isinstance(time_limit_s, (int, float)) and 0 < time_limit_s < 1e6):
        raise CheckError(f"time limit must be a number of seconds in (0, 1e6) or None, got {time_limit_s!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:   # torch's manual_seed range
        raise CheckError(f"seed must be a whole number in [0, 2**62], got {seed!r}")
    return Settings(device=device, profile=profile, seed=seed, time_limit_s=time_limit_s)


def measure(kind: str, obj: Any, name: str, setup: str, settings: Settings,
            inference: Inference | None = None) -> list[ClauseResult]:
    """Every clause of ``kind`` on one object (prepared and validated first; the smoke test kind
    inference ran is not run again)."""
    module = contract(kind)
    subj = prepare(lambda: module.subject_after(inference, obj, name, setup, settings), settings,
                   f"{name} as {kind}")
    return [run_clause(c, subj, settings) for c in module.clauses]


def check(obj: Any, *, kind: str | None = None, name: str | None = None, spec: str | None = None,
          device: str = "cpu", profile: str = "ci", seed: int = 0, compare: bool = True,
          time_limit_s: float | None = DEFAULT_TIME_LIMIT_S) -> TechniqueCheck:
    """Measure ``obj`` against its kind's contract (and the built-ins, when ``compare``).

    Each clause (and the technique's preparation) runs under ``time_limit_s`` seconds.
    """
    start = time.perf_counter()
    settings = settings_for(device, profile, seed, time_limit_s)
    inference = Inference(contract(kind).kind, True, "given") if kind is not None else prepare(
        lambda: infer_kind(obj, settings), settings, f"inferring the kind of {_describe(obj)}")
    kind = inference.kind
    name = name or _describe(obj)
    spec = spec or _importable_spec(obj)
    binding = contract(kind).binding
    setup = (f"from gradcore.verify.loading import load_object\n{binding} = load_object({spec!r})"
             if spec else f"{binding} = ...  # your {name}")
    with profiles.pinned_generation(profile):   # the CLI and the Python API draw alike
        results = measure(kind, obj, name, setup, settings, inference)
        builtin = builtin_results(kind, settings) if compare else {}
    return TechniqueCheck(name, kind, spec or name, settings, results, builtin,
                          time.perf_counter() - start, inference.reason)


def _importable_spec(obj: Any) -> str | None:
    """``module:qualname`` when that imports ``obj`` itself, so an API check's reproductions run too."""
    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not (module and name) or "<" in name or module == "__main__":
        return None
    try:
        return f"{module}:{name}" if load_object(f"{module}:{name}") is obj else None
    except CheckError:
        return None


def write_builtin_tables(out_dir: str | Path, *, device: str = "cpu", profile: str = "ci",
                         kinds: tuple[str, ...] = KINDS) -> Path:
    """Measure every built-in technique and write ``techniques.md`` (+ ``techniques.json``)."""
    from . import results

    settings = settings_for(device, profile)
    start = time.perf_counter()
    with profiles.pinned_generation(profile):
        measured = {k: rows for k in kinds if (rows := builtin_results(k, settings))}
    statements = {k: [f"- `{c.id}`{'' if c.gate else ' (info)'}: {c.statement}" for c in contract(k).clauses]
                  for k in measured}
    env = results.environment(seed=settings.seed, profile=profile, wall_time_s=time.perf_counter() - start,
                              workers=1, devices=[device])
    return check_report.write_builtin_tables(measured, statements, env, out_dir)


def builtin_results(kind: str, settings: Settings) -> dict[str, list[ClauseResult]]:
    """The contract of ``kind`` measured on each of gradcore's built-in techniques."""
    return {bname: measure(kind, obj, bname, setup, settings)
            for bname, (obj, setup) in contract(kind).builtins().items()}

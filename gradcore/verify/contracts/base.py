"""What a technique contract is made of: clauses, their outcomes, and run settings.

A *contract* states, once per technique kind, the catalogued claims that apply to
every member of that kind (e.g. "sup |f'| ≤ 1" for any activation, from 000
§主要“罪魁祸首”). Each :class:`Clause` measures its constants on a *subject* — the
user's technique or a built-in — and the verdict follows from the measurement.
"""
from __future__ import annotations

import math
import sysconfig
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...errors import CheckError, GradcoreError, NotApplicable, TimeLimitError
from ...measure import Measurement
from ..record import constant, plain
from .. import sandbox
from ..timelimit import DEFAULT_TIME_LIMIT_S, time_limit
from ..verdicts import CLAUSE, CLAUSE_VERDICTS, NOT_APPLICABLE, UNMEASURED  # noqa: F401  (re-exported)



@dataclass(frozen=True)
class Settings:
    """Where and how hard to measure: device, dtype, profile-dependent sizes, seed."""

    device: str = "cpu"
    profile: str = "ci"
    seed: int = 0
    time_limit_s: float | None = DEFAULT_TIME_LIMIT_S   # per clause (and per preparation); None: none

    @property
    def seeds(self) -> int:
        return {"ci": 3, "dev": 5, "thorough": 10}[self.profile]

    @property
    def scale(self) -> int:
        """Size multiplier for widths and grid resolutions (1 under ``ci``)."""
        return {"ci": 1, "dev": 2, "thorough": 4}[self.profile]

    @property
    def hypothesis(self) -> dict[str, Any]:
        """The profile's Hypothesis settings as overrides for ``gradcore.measure.search``.

        Passed per search rather than loaded globally, so that ``check_technique`` in a
        user's test suite leaves the user's own Hypothesis profile alone.
        """
        from ...measure import profiles

        prof = profiles.settings_of(self.profile if self.profile in profiles.PROFILES else "ci")
        return {k: getattr(prof, k) for k in ("max_examples", "derandomize", "database", "deadline",
                                              "suppress_health_check")}

    def generator(self, offset: int = 0) -> torch.Generator:
        return torch.Generator(device="cpu").manual_seed(self.seed + offset)

    def randn(self, *shape: int, offset: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Seeded N(0, 1) tensor drawn on the CPU (same numbers on every device), then moved."""
        return torch.randn(*shape, generator=self.generator(offset), dtype=dtype).to(self.device)


@dataclass
class Outcome:
    """What one clause measured: pass/fail (None: undecided), constants, counterexample."""

    holds: bool | None
    constants: dict[str, float | str | None]
    counterexample: dict[str, Any] | None = None
    note: str = ""


@dataclass(frozen=True)
class Clause:
    """One property every member of a kind should have, tied to catalogue claim ids.

    ``gate=False`` marks a clause that describes the technique (e.g. batch
    dependence of a normalisation layer) without deciding whether the check passes.
    """

    id: str
    claims: tuple[str, ...]
    statement: str
    measure: Callable[[Any, Settings], Outcome]
    gate: bool = True


@dataclass
class ClauseResult:
    """A clause's outcome on one subject, ready for the report."""

    clause: str
    claims: tuple[str, ...]
    statement: str
    verdict: str
    gate: bool
    constants: dict[str, float | str | None]
    counterexample: dict[str, Any] | None
    note: str
    duration_s: float

    @property
    def violated(self) -> bool:
        return self.gate and self.verdict == "violated"

    @property
    def unmeasured(self) -> bool:
        return self.gate and self.verdict == UNMEASURED

    @property
    def undecided(self) -> bool:
        """A gating clause whose interval still straddles the claim at the draw cap: not a pass."""
        return self.gate and self.verdict == CLAUSE[None]

    def to_json(self) -> dict[str, Any]:
        numbers = {k: v for k, v in self.constants.items() if _is_number(v)}
        return {"id": self.clause, "claims": list(self.claims), "statement": self.statement,
                "verdict": self.verdict, "gate": self.gate,
                "constants": [constant(k, v) for k, v in numbers.items()],
                "facts": {k: plain(v) for k, v in self.constants.items() if k not in numbers},
                "counterexample": plain(self.counterexample), "note": self.note,
                "duration_s": round(self.duration_s, 3)}


def _is_number(x: Any) -> bool:
    return isinstance(x, Measurement) or (isinstance(x, (int, float)) and not isinstance(x, bool))


def _library_dirs() -> tuple[str, ...]:
    import gradcore

    dirs = [Path(gradcore.__file__).parent, Path(torch.__file__).parent, Path(sysconfig.get_paths()["stdlib"])]
    return tuple(str(d.resolve()) for d in dirs)


def raised_by_technique(error: BaseException) -> bool:
    """Whether the traceback passes through code other than gradcore's, torch's or Python's own,
    i.e. the technique raised (rather than gradcore failing to measure it)."""
    library = _library_dirs()
    frames = traceback.extract_tb(error.__traceback__)
    return any(not str(Path(f.filename).resolve()).startswith(library) for f in frames
               if not f.filename.startswith("<"))


def _unmeasured(clause: Clause, reason: str, start: float, verdict: str = UNMEASURED) -> ClauseResult:
    prefix = "does not apply" if verdict == NOT_APPLICABLE else "could not be measured"
    return ClauseResult(clause.id, clause.claims, clause.statement, verdict, clause.gate, {}, None,
                        f"{prefix}: {reason}", time.perf_counter() - start)


def run_clause(clause: Clause, subject: Any, settings: Settings) -> ClauseResult:
    """Measure one clause under the settings' time limit, in the state gradcore controls.

    The technique raising on a valid probe input violates the clause; gradcore's own
    failure (a gradcore error, an exception that never passed through the technique's
    code, the time limit, a technique that changed grad mode or the default dtype while
    measured) leaves it unmeasured, with the reason. A clause whose precondition the technique
    does not meet raises :class:`~gradcore.errors.NotApplicable`: "does not apply".
    """
    start = time.perf_counter()
    try:
        with sandbox.controlled() as changed, time_limit(settings.time_limit_s, f"clause {clause.id}"):
            out = clause.measure(subject, settings)
    except CheckError:
        raise
    except NotApplicable as e:
        return _unmeasured(clause, str(e), start, NOT_APPLICABLE)
    except GradcoreError as e:
        return _unmeasured(clause, str(e), start)
    except (Exception, SystemExit) as e:   # a technique calling sys.exit must not end gradcore
        error = error_line(e)
        if not raised_by_technique(e):
            return _unmeasured(clause, f"gradcore failed while measuring: {error}", start)
        out = Outcome(False, {}, {"error": error}, note=f"the technique raised while measured: {error}")
    if sandbox.measured(changed):
        return _unmeasured(clause, f"the technique changed {', '.join(sandbox.measured(changed))} while "
                                   "measured, so the measurement after it is not gradcore's", start)
    verdict = CLAUSE[out.holds]
    return ClauseResult(clause.id, clause.claims, clause.statement, verdict, clause.gate,
                        out.constants, out.counterexample, out.note, time.perf_counter() - start)


def error_line(e: BaseException) -> str:
    """``Type: first line of the message`` (``it called sys.exit(N)`` for SystemExit)."""
    if isinstance(e, SystemExit):
        return f"it called sys.exit({e.code!r})"
    if isinstance(e, sandbox.RaisedInterrupt):
        return str(e)
    first = (str(e).splitlines() or [""])[0]
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def prepare(make: Callable[[], Any], settings: Settings, what: str) -> Any:
    """Run a contract's ``subject(...)`` under the time limit, in the state gradcore controls;
    any failure is one CheckError line (so is a technique whose call turns autograd off or
    changes the default dtype or device: every measurement after it would be wrong)."""
    try:
        with sandbox.controlled() as changed, time_limit(settings.time_limit_s, what):
            made = make()
    except CheckError:
        raise
    except TimeLimitError as e:
        raise CheckError(str(e)) from None
    except GradcoreError as e:
        raise CheckError(f"{what}: {e}") from None
    except SystemExit as e:
        raise CheckError(f"{what}: the technique called sys.exit({e.code!r})") from None
    except Exception as e:
        raise CheckError(f"{what} failed: {error_line(e)}") from None
    if sandbox.measured(changed):
        raise CheckError(f"{what}: calling the technique changed {', '.join(sandbox.measured(changed))} "
                         "(process-wide state gradcore measures with); it cannot be measured")
    return made


def finite(x: float) -> float | None:
    """A float for the report, ``None`` when it is not finite."""
    return x if math.isfinite(x) else None


def callable_or_fail(obj: Any) -> None:
    if not callable(obj):
        raise CheckError(f"{type(obj).__name__} object is not callable")


def probe(call: Callable[[], Any], *, what: str, on: str, shape: tuple[int | None, ...],
          must: str = "") -> torch.Tensor:
    """Run a technique once on a probe input ``on`` and demand a finite tensor of ``shape`` (a None
    entry: that dimension may have any size).

    Any exception, a non-tensor, another shape or a non-finite value becomes one CheckError
    line naming ``what`` failed and how (for a wrong shape, what it ``must`` do when given).
    """
    try:
        y = call()
    except CheckError:
        raise
    except Exception as e:
        raise CheckError(f"{what} failed on {on}: {type(e).__name__}: {e}") from None
    if not isinstance(y, torch.Tensor) or not _fits(tuple(y.shape), tuple(shape)):
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise CheckError(f"{what} {must} on {on} it returned {got}" if must else
                         f"{what} must return shape {tuple(shape)} on {on}, got {got}")
    if not bool(torch.isfinite(y).all()):
        raise CheckError(f"{what} returned non-finite values on {on}")
    return y


def _fits(got: tuple[int, ...], shape: tuple[int | None, ...]) -> bool:
    return len(got) == len(shape) and all(want is None or n == want for n, want in zip(got, shape))


def run_smoke(smoke: Any, obj: Any, settings: Settings, what: str) -> Any:
    """Run a kind's smoke test (its result back); any exception other than CheckError becomes one
    line naming ``what``."""
    try:
        return smoke(obj, settings)
    except CheckError:
        raise
    except Exception as e:
        raise CheckError(f"{what}: {type(e).__name__}: {e}") from None

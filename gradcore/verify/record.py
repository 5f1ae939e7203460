"""The recorder a theorem test measures through, and how a verdict follows from it.

A test never states its verdict. It records *checks* — a measured value against the
claimed one under a relation and tolerance — and the verdict is derived:

* ``refuted``      a check inside the claim's assumptions failed;
* ``inconclusive`` no check failed but one inside the assumptions could not decide;
* ``conditional``  every check inside the assumptions held, one outside them failed;
* ``verified``     every check held.
"""
from __future__ import annotations

import ast
import math
from dataclasses import asdict, dataclass, field
from typing import Any

VERDICTS = ("verified", "conditional", "refuted", "inconclusive")
RELATIONS = ("==", "<=", ">=", "<", ">")


from ..errors import RecordingError  # noqa: F401  (re-exported)


def _number(x: Any, what: str) -> float | None:
    if x is None:
        return None
    if hasattr(x, "item"):
        x = x.item()
    if isinstance(x, bool):
        return float(x)
    try:
        return float(x)
    except (TypeError, ValueError):
        raise RecordingError(f"{what} must be a number, got {x!r}") from None


def _holds(relation: str, claimed: float, measured: float, slack: float) -> bool:
    if math.isnan(measured):
        return False
    if relation == "==":
        return abs(measured - claimed) <= slack or measured == claimed
    if relation == "<=":
        return measured <= claimed + slack
    if relation == ">=":
        return measured >= claimed - slack
    if relation == "<":
        return measured < claimed + slack
    return measured > claimed - slack


def _interval_holds(relation: str, claimed: float, lo: float, hi: float, slack: float) -> bool | None:
    """Decide a claim from a confidence interval [lo, hi]; None when the interval straddles."""
    if relation == "==":
        if lo - slack <= claimed <= hi + slack:
            return True
        return False
    inside = _holds(relation, claimed, lo, slack), _holds(relation, claimed, hi, slack)
    if all(inside):
        return True
    if not any(inside):
        return False
    return None


@dataclass
class Check:
    """One measured constant compared with the claimed one."""

    name: str
    claimed: float | None
    measured: float | None
    relation: str
    tolerance: float
    holds: bool | None
    interval: tuple[float, float] | None = None
    outside: str | None = None
    dtype: str | None = None
    counterexample: Any = None
    guard_tolerance: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return plain(asdict(self))


@dataclass
class Series:
    """Data for a figure: y against x for one labelled curve."""

    figure: str
    label: str
    x: list[float]
    y: list[float]
    xlabel: str
    ylabel: str
    logx: bool = False
    logy: bool = False
    kind: str = "line"


@dataclass
class ClaimRecorder:
    """What one theorem test measured for one claim on one device."""

    claim_id: str
    device: str
    rtol: float = 0.0
    atol: float = 0.0
    checks: list[Check] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    corrected: str | None = None
    notes: list[str] = field(default_factory=list)

    def check(self, name: str, *, claimed: Any, measured: Any, relation: str = "==",
              rtol: float | None = None, atol: float | None = None,
              interval: tuple[Any, Any] | None = None, holds: bool | None = None,
              outside: str | None = None, dtype: Any = None,
              counterexample: Any = None) -> bool | None:
        """Record ``measured`` against ``claimed`` and return whether the claim held.

        ``relation`` reads "measured RELATION claimed" (``"<="``: measured ≤ claimed).
        ``rtol``/``atol`` default to the catalogue's tolerance for this claim. With an
        ``interval`` (a confidence interval of the measurement) the check is decided
        from the whole interval and may come out undecided (``None``). ``outside``
        names the case when the check lies outside the claim's stated assumptions.
        ``holds`` may be given only for checks that are not numeric comparisons
        (e.g. "a counterexample was found"), and then ``measured`` still says what was
        seen.
        """
        if relation not in RELATIONS:
            raise RecordingError(f"relation must be one of {RELATIONS}, got {relation!r}")
        c = _number(claimed, f"{name}: claimed")
        m = _number(measured, f"{name}: measured")
        rtol = self.rtol if rtol is None else rtol
        atol = self.atol if atol is None else atol
        slack = atol + rtol * abs(c) if c is not None else atol
        ci = None
        if interval is not None:
            ci = (_number(interval[0], f"{name}: interval"), _number(interval[1], f"{name}: interval"))
        if holds is None:
            if c is None or m is None:
                raise RecordingError(f"{name}: give claimed and measured numbers, or holds=")
            holds = _interval_holds(relation, c, *ci, slack) if ci else _holds(relation, c, m, slack)
        guard = self._guard_tolerance(m, ci, dtype, slack)
        self.checks.append(Check(name, c, m, relation, slack, holds, ci, outside,
                                 None if dtype is None else str(dtype).replace("torch.", ""),
                                 plain(counterexample), guard))
        return holds

    @staticmethod
    def _guard_tolerance(measured: float | None, ci: tuple[float, float] | None, dtype: Any,
                         slack: float) -> float:
        """How far a rerun may move this constant before the guard calls it a change.

        The widest of: the confidence interval's width (statistical constants), dtype
        precision relative to the value, and a tenth of the check's own tolerance (so a
        rounding residual of 1e-15 against a tolerance of 1e-10 may wobble, a real drift
        may not).
        """
        if measured is None or not math.isfinite(measured):
            return 0.0
        width = max(ci[1] - ci[0], 0.0) if ci is not None and all(math.isfinite(b) for b in ci) else 0.0
        eps = {"torch.float16": 1e-3, "torch.bfloat16": 8e-3, "torch.float32": 1e-6}.get(str(dtype), 1e-9)
        return max(width, 64 * eps * abs(measured), 0.1 * slack)

    def curve(self, figure: str, label: str, x: Any, y: Any, *, xlabel: str, ylabel: str,
              logx: bool = False, logy: bool = False, kind: str = "line") -> None:
        """Keep a measured curve for the report's figure ``figure``."""
        xs, ys = [float(a) for a in x], [float(b) for b in y]
        if len(xs) != len(ys):
            raise RecordingError(f"curve {label!r}: x has {len(xs)} points, y has {len(ys)}")
        self.series.append(Series(figure, label, xs, ys, xlabel, ylabel, logx, logy, kind))

    def correct(self, statement: str) -> None:
        """The corrected statement, built from measured values, for a refuted or conditional claim."""
        self.corrected = statement

    def note(self, text: str) -> None:
        self.notes.append(text)

    @property
    def verdict(self) -> str:
        if not self.checks:
            raise RecordingError(f"{self.claim_id}: the test recorded no checks")
        inside = [c.holds for c in self.checks if c.outside is None]
        outside = [c.holds for c in self.checks if c.outside is not None]
        if False in inside:
            return "refuted"
        if None in inside:
            return "inconclusive"
        if False in outside:
            return "conditional"
        return "verified"

    def deciding_checks(self) -> list[Check]:
        """Failing checks in the order that explains the verdict: inside the assumptions first."""
        failing = [c for c in self.checks if c.holds is False]
        return [c for c in failing if c.outside is None] + [c for c in failing if c.outside is not None]

    @property
    def counterexample(self) -> Any:
        """The counterexample of the check that decides the verdict."""
        return next((c.counterexample for c in self.deciding_checks() if c.counterexample is not None), None)

    def problems(self) -> list[str]:
        """Why this record is incomplete for its verdict (empty when it is complete)."""
        out = []
        if self.verdict in ("refuted", "conditional"):
            if self.counterexample is None:
                out.append("a failing check must carry its counterexample")
            elif not _runnable(self.counterexample):
                out.append("the counterexample must be a dict whose 'snippet' is Python code reproducing it")
            if not self.corrected:
                out.append("a refuted or conditional claim must record correct(...)")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "constants": [c.to_json() for c in self.checks],
            "counterexample": self.counterexample,
            "corrected": self.corrected,
            "notes": self.notes,
            "series": plain([asdict(s) for s in self.series]),
        }


def _runnable(counterexample: Any) -> bool:
    """Whether a counterexample carries a snippet that at least parses as Python."""
    if not isinstance(counterexample, dict) or not isinstance(counterexample.get("snippet"), str):
        return False
    try:
        ast.parse(counterexample["snippet"])
    except SyntaxError:
        return False
    return True


def plain(x: Any) -> Any:
    """A JSON-friendly copy (tensors become nested lists, non-finite floats strings)."""
    if x is None or isinstance(x, (bool, int, str)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else repr(x)
    if hasattr(x, "tolist"):
        return plain(x.tolist())
    if isinstance(x, dict):
        return {str(k): plain(val) for k, val in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(e) for e in x]
    return repr(x)

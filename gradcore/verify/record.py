"""The recorder a theorem test measures through, and how a verdict follows from it.

A test never states its verdict. It records *comparisons* — a measured value against the
claimed one under a relation and tolerance — and the verdict is derived by
:func:`gradcore.verify.verdicts.claim_verdict`:

* ``refuted``      a comparison inside the claim's assumptions failed;
* ``inconclusive`` no comparison failed but one inside the assumptions could not decide;
* ``conditional``  every comparison inside the assumptions held, one outside them failed;
* ``verified``     every comparison held.

A measured value is best a :class:`~gradcore.measure.Measurement` from a recipe: it
brings its kind, interval, sizes and generated reproduction into the results file.
"""
from __future__ import annotations

import ast
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import RecordingError
from ..measure import Kind, Measurement
from ..measure.measurement import dtype_name
from .verdicts import RELATIONS, VERDICTS, claim_verdict, decide  # noqa: F401  (re-exported)


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


@dataclass
class Constant:
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
    kind: str = Kind.NUMERIC.value
    bound: float | None = None
    direction: str | None = None
    method: str | None = None
    n: int | None = None
    sizes: dict[str, Any] | None = None
    reproduction: str | None = None

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
    constants: list[Constant] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    corrected: str | None = None
    notes: list[str] = field(default_factory=list)

    def compare(self, name: str, *, claimed: Any, measured: Any, relation: str = "==",
              rtol: float | None = None, atol: float | None = None,
              interval: tuple[Any, Any] | None = None, holds: bool | None = None,
              outside: str | None = None, dtype: Any = None, kind: Kind | str | None = None,
              counterexample: Any = None) -> bool | None:
        """Record ``measured`` against ``claimed`` and return whether the claim held.

        ``relation`` reads "measured RELATION claimed" (``"<="``: measured ≤ claimed).
        ``rtol``/``atol`` default to the catalogue's tolerance for this claim. A
        :class:`~gradcore.measure.Measurement` brings its own kind, dtype, interval
        (a statistical estimate is decided from the whole interval and may come out
        undecided, ``None``), sizes and reproduction. For a bare number, ``interval``,
        ``dtype`` and ``kind`` say the same (``kind="rounding"``: a residual whose bound
        is the comparison's tolerance). ``outside`` names the case when the comparison lies outside
        the claim's stated assumptions. ``holds`` may be given only for comparisons that are
        not numeric comparisons (e.g. "a counterexample was found").
        """
        if relation not in RELATIONS:
            raise RecordingError(f"relation must be one of {RELATIONS}, got {relation!r}")
        m = measured if isinstance(measured, Measurement) else None
        c = _number(claimed, f"{name}: claimed")
        value = _number(m.value if m else measured, f"{name}: measured")
        if isinstance(measured, Measurement) and measured.kind is Kind.ROUNDING and rtol is None and atol is None:
            rtol, atol = 0.0, measured.bound   # a rounding residual is judged against its own bound
        rtol = self.rtol if rtol is None else rtol
        atol = self.atol if atol is None else atol
        slack = atol + rtol * abs(c) if c is not None else atol
        if m is None:
            m = self._bare(value, interval, dtype, kind, slack, name)
        elif interval is not None or (kind is not None and Kind(kind) is not m.kind):
            raise RecordingError(f"{name}: a Measurement carries its own interval and kind")
        if holds is None:
            if c is None or value is None:
                raise RecordingError(f"{name}: give claimed and measured numbers, or holds=")
            holds = decide(relation, c, value, slack, m.interval if m else None)
        extra = m.fields() if m else {}
        if m is not None and m.reproduction and holds is False:
            # The generated reproduction is the counterexample's snippet: never typed, cannot drift.
            counterexample = {**(counterexample or {}), "snippet": m.reproduction}
        self.constants.append(Constant(name, c, value, relation, slack, holds,
                                 m.interval if m else None, outside, (m.dtype if m else None) or dtype_name(dtype),
                                 plain(counterexample), m.guard_tolerance if m else 0.0, **extra))
        return holds

    @staticmethod
    def _bare(value: float | None, interval: tuple[Any, Any] | None, dtype: Any, kind: Kind | str | None,
              slack: float, name: str) -> Measurement | None:
        """A Measurement for a bare recorded number, from what the comparison says about it."""
        if value is None:
            return None
        ci = None
        if interval is not None:
            ci = (_number(interval[0], f"{name}: interval"), _number(interval[1], f"{name}: interval"))
        kind = Kind(kind) if kind is not None else Kind.STATISTICAL if ci else Kind.NUMERIC
        if kind is Kind.STATISTICAL:
            if ci is None:
                raise RecordingError(f"{name}: a statistical value needs its interval")
            return Measurement(value, kind, dtype, interval=ci, n=1, method="interval given by the theorem")
        if ci is not None:
            raise RecordingError(f"{name}: only a statistical value has an interval")
        if kind is Kind.ROUNDING:
            return Measurement(value, kind, dtype, bound=slack)
        if kind is Kind.SEARCH:
            raise RecordingError(f"{name}: record a search bound as the Measurement its search returns")
        return Measurement(value, kind, dtype)

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
        if not self.constants:
            raise RecordingError(f"{self.claim_id}: the test recorded no comparisons")
        return claim_verdict((c.holds for c in self.constants if c.outside is None),
                             (c.holds for c in self.constants if c.outside is not None))

    def deciding_constants(self) -> list[Constant]:
        """Failing comparisons in the order that explains the verdict: inside the assumptions first."""
        failing = [c for c in self.constants if c.holds is False]
        return [c for c in failing if c.outside is None] + [c for c in failing if c.outside is not None]

    @property
    def counterexample(self) -> Any:
        """The counterexample of the comparison that decides the verdict."""
        return next((c.counterexample for c in self.deciding_constants() if c.counterexample is not None), None)

    def problems(self) -> list[str]:
        """Why this record is incomplete for its verdict (empty when it is complete)."""
        out = []
        if self.verdict in ("refuted", "conditional"):
            if self.counterexample is None:
                out.append("a failing comparison must carry its counterexample")
            elif not _runnable(self.counterexample):
                out.append("the counterexample must be a dict whose 'snippet' is Python code reproducing it")
            if not self.corrected:
                out.append("a refuted or conditional claim must record correct(...)")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "constants": [c.to_json() for c in self.constants],
            "counterexample": self.counterexample,
            "corrected": self.corrected,
            "notes": self.notes,
            "series": plain([asdict(s) for s in self.series]),
        }


def constant(name: str, value: Any) -> dict[str, Any]:
    """A measured value that is not compared with a claim (a technique clause's constant), as the
    same constant object a results file holds: no claimed value, no outcome of its own."""
    m = value if isinstance(value, Measurement) else Measurement(_number(value, name))
    return plain({"name": name, "claimed": None, "measured": m.value, "relation": "==", "tolerance": 0.0,
                  "holds": None, "interval": list(m.interval) if m.interval else None, "outside": None,
                  "dtype": m.dtype, "counterexample": None, "guard_tolerance": m.guard_tolerance, **m.fields()})


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
    """A JSON-friendly copy (tensors become nested lists, non-finite floats strings,
    a Measurement its value)."""
    if x is None or isinstance(x, (bool, int, str)):
        return x
    if isinstance(x, Measurement):
        return plain(x.value)
    if isinstance(x, float):
        return x if math.isfinite(x) else repr(x)
    if hasattr(x, "tolist"):
        return plain(x.tolist())
    if isinstance(x, dict):
        return {str(k): plain(val) for k, val in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(e) for e in x]
    return repr(x)

"""Regression guard: compare a fresh results file with the accepted baseline.

A change is any verdict or check outcome that moved, any claim, device or constant
that appeared or vanished, and any constant that moved in the sense of its kind
(:class:`gradcore.measure.Kind`) by more than its :func:`allowance`:

* exact — any difference;
* numeric — beyond its allowance;
* statistical — outside the baseline's confidence interval widened by the allowance;
* rounding — a residual is only compared with its bound: it changes when it exceeds it;
* search — a one-sided bound changes only when it gets worse by more than the allowance.

Every allowance, bound, interval and direction is the *baseline's* (and its kind's): the file
under test cannot widen its own tolerance. So rounding noise on another CPU, thread count or
kernel path passes, and a real drift does not. A claim id, device or constant that occurs
twice in either file is a :class:`ResultsError`: a dictionary keeps only one of them, so the
other would go unjudged.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import ResultsError
from ..measure.measurement import EPS, ULPS
from .views import num, table

# The least a rerun may move by rounding, relative, per dtype: the numeric kind's ULPS at
# conditioning 1 (what a baseline without a tolerance gets) and at least the trailing quarter of
# the significand, eps^(3/4), for rounding a recorded conditioning misses (a recipe that
# under-states it, a search bound recorded without its evaluation's). That quarter only binds in
# float64: 2^-39 ≈ 1.8e-12, 8192 ulp (RNN-07's non-normal ‖W^T‖ moved 850 ulp on an AVX2 EPYC);
# a real drift (1e-9 relative) exceeds it.
PORTABLE = {dtype: max(ULPS * eps, eps ** 0.75) for dtype, eps in EPS.items()}


@dataclass(frozen=True)
class Change:
    claim: str
    device: str
    what: str
    baseline: str
    now: str
    allowed: str


def _unique(keys: Iterable[Any], what: str) -> None:
    """Refuse a document where ``what`` names something twice (a dict would hide one copy)."""
    seen: set[Any] = set()
    for key in keys:
        if key in seen:
            raise ResultsError(f"{what} {_label(key)!r} occurs twice")
        seen.add(key)


def _label(key: Any) -> str:
    return key if isinstance(key, str) else f"{key[0]} [{key[1]}]" if key[1] else key[0]


def _by_id(doc: dict[str, Any], which: str) -> dict[str, dict[str, Any]]:
    _unique((c["id"] for c in doc["claims"]), f"{which}: claim id")
    return {c["id"]: c for c in doc["claims"]}


def _by_name(constants: list[dict[str, Any]], where: str) -> dict[tuple[str, str | None], dict[str, Any]]:
    """A device record's constants by (name, dtype): one check measured in two dtypes is two constants."""
    keys = [(c["name"], c.get("dtype")) for c in constants]
    _unique(keys, f"{where}: constant")
    return dict(zip(keys, constants))


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def allowance(constant: dict[str, Any]) -> float:
    """How far a rerun of ``constant`` (a recorded constant: the baseline's) may move by rounding alone.

    Its recorded ``guard_tolerance`` (dtype ulps × conditioning; a statistical value's
    half-width) and at least :data:`PORTABLE` of its dtype × |value|; 0 for an exact value or
    one that is not a finite number.
    """
    value = constant["measured"]
    if constant.get("kind", "numeric") == "exact" or not _finite(value):
        return 0.0
    portable = PORTABLE.get(constant.get("dtype") or "float64", PORTABLE["float64"]) * abs(value)
    return max(constant.get("guard_tolerance") or 0.0, portable)


def _allowed(b: dict[str, Any], a: dict[str, Any]) -> tuple[bool, str]:
    """Whether ``a`` (now) moved from ``b`` (baseline) in the sense of its kind, and what was allowed.

    Everything allowed comes from ``b``: the file under test never sets its own tolerance.
    """
    old, new, kind = b["measured"], a["measured"], b.get("kind", "numeric")
    if not (_finite(old) and _finite(new)) or kind == "exact":
        return old != new, "equal"   # exact: symbolic or exactly representable, so any difference is real
    tol = allowance(b)
    if kind == "rounding" and b.get("bound") is not None:
        return abs(new) > b["bound"], f"≤ {num(b['bound'])} (rounding bound)"
    if kind == "statistical" and b.get("interval"):
        lo, hi = (float(x) for x in b["interval"])   # an end may be spelled "inf" or "nan"
        return not lo - tol <= new <= hi + tol, f"in [{num(lo)}, {num(hi)}] ± {num(tol)} (baseline CI)"
    if kind == "search" and b.get("direction") in ("lower", "upper"):
        lower = b["direction"] == "lower"
        worse = new < old - tol if lower else new > old + tol
        return worse, f"{'≥' if lower else '≤'} {num(old)} {'−' if lower else '+'} {num(tol)} (search bound)"
    return abs(new - old) > tol, f"± {num(tol)}"


def _distinct(old: Any, new: Any) -> tuple[str, str]:
    """Both numbers, in as many digits as it takes to tell them apart (a drift can hide in the 5th)."""
    if num(old) != num(new) or not (_finite(old) and _finite(new)):
        return num(old), num(new)
    return repr(float(old)), repr(float(new))


def _meaning(c: dict[str, Any]) -> str:
    return c.get("kind", "numeric") + (f" ({c['direction']})" if c.get("direction") else "")


def _constant_changes(cid: str, device: str, old: list[dict], new: list[dict]) -> list[Change]:
    out = []
    before = _by_name(old, f"baseline claim {cid} [{device}]")
    after = _by_name(new, f"claim {cid} [{device}]")
    for key in [k for k in before if k not in after]:
        out.append(Change(cid, device, f"constant '{_label(key)}'", num(before[key]["measured"]), "vanished", "—"))
    for key in [k for k in after if k not in before]:
        out.append(Change(cid, device, f"constant '{_label(key)}'", "absent", num(after[key]["measured"]), "—"))
    for key in [k for k in before if k in after]:
        b, a, name = before[key], after[key], _label(key)
        if _meaning(b) != _meaning(a):
            out.append(Change(cid, device, f"'{name}' kind", _meaning(b), _meaning(a), "equal"))
            continue
        moved, allowed = _allowed(b, a)
        if moved:
            out.append(Change(cid, device, f"constant '{name}'", *_distinct(b["measured"], a["measured"]), allowed))
        if b.get("holds") != a.get("holds"):
            out.append(Change(cid, device, f"'{name}' holds", str(b.get("holds")), str(a.get("holds")), "equal"))
    return out


def compare_device(cid: str, before: dict[str, Any], after: dict[str, Any], device: str) -> list[Change]:
    """Differences between two measurements of one claim (two runs, or two devices); ``before`` sets
    every tolerance."""
    changes = []
    if before["verdict"] != after["verdict"]:
        changes.append(Change(cid, device, "verdict", before["verdict"], after["verdict"], "equal"))
    return changes + _constant_changes(cid, device, before["constants"], after["constants"])


def compare(baseline: dict[str, Any], current: dict[str, Any]) -> list[Change]:
    """Every difference between two results documents that the guard does not allow.

    Raises :class:`ResultsError` when either document names a claim or a constant twice.
    """
    old, new = _by_id(baseline, "baseline"), _by_id(current, "results")
    changes = [Change(cid, "—", "claim", old[cid]["verdict"], "vanished", "—") for cid in old if cid not in new]
    changes += [Change(cid, "—", "claim", "absent", new[cid]["verdict"], "—") for cid in new if cid not in old]
    for cid in [c for c in new if c in old]:
        b_dev, a_dev = old[cid]["devices"], new[cid]["devices"]
        for dev in sorted(b_dev.keys() & a_dev.keys()):
            changes += compare_device(cid, b_dev[dev], a_dev[dev], dev)
        for dev in b_dev.keys() - a_dev.keys():
            changes.append(Change(cid, dev, "device", b_dev[dev]["verdict"], "not run", "—"))
        for dev in a_dev.keys() - b_dev.keys():
            changes.append(Change(cid, dev, "device", "not in baseline", a_dev[dev]["verdict"], "—"))
    return changes


def render(changes: list[Change]) -> str:
    rows = [[c.claim, c.device, c.what, c.baseline, c.now, c.allowed] for c in changes]
    return table(["claim", "device", "what", "baseline", "now", "allowed"], rows)

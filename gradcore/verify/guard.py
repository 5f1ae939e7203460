"""Regression guard: compare a fresh results file with the accepted baseline.

A change is any verdict or check outcome that moved, any claim, device or constant
that appeared or vanished, and any constant that moved in the sense of its kind
(:class:`gradcore.measure.Kind`):

* exact — any difference;
* numeric — beyond its ``guard_tolerance`` (dtype ulps × conditioning, the wider run's);
* statistical — outside the baseline's confidence interval;
* rounding — a residual is only compared with its bound: it changes when it exceeds it;
* search — a one-sided bound changes only when it gets worse (a lower bound that drops).

So rounding noise on another CPU, thread count or kernel path passes, and a real drift
does not.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .views import num, table


@dataclass(frozen=True)
class Change:
    claim: str
    device: str
    what: str
    baseline: str
    now: str
    allowed: str


def _by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in doc["claims"]}


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _allowed(b: dict[str, Any], a: dict[str, Any]) -> tuple[bool, str]:
    """Whether ``a`` (now) moved from ``b`` (baseline) in the sense of its kind, and what was allowed."""
    old, new, kind = b["measured"], a["measured"], a.get("kind", "numeric")
    if not (_finite(old) and _finite(new)):
        return old != new, "equal"
    if kind == "exact":
        return old != new, "equal"
    if kind == "rounding":
        bound = min(x for x in (a.get("bound"), b.get("bound")) if x is not None)
        return abs(new) > bound, f"≤ {num(bound)} (rounding bound)"
    tol = max(b.get("guard_tolerance", 0.0), a.get("guard_tolerance", 0.0))
    if kind == "statistical" and b.get("interval"):
        lo, hi = (float(x) for x in b["interval"])   # an end may be spelled "inf" or "nan"
        return not lo - tol <= new <= hi + tol, f"in [{num(lo)}, {num(hi)}] (baseline CI)"
    if kind == "search" and a.get("direction") in ("lower", "upper"):
        worse = new < old - tol if a["direction"] == "lower" else new > old + tol
        return worse, f"{'≥' if a['direction'] == 'lower' else '≤'} {num(old)} (search bound)"
    return abs(new - old) > tol, f"± {num(tol)}"


def _constant_changes(cid: str, device: str, old: list[dict], new: list[dict]) -> list[Change]:
    out = []
    before = {c["name"]: c for c in old}
    after = {c["name"]: c for c in new}
    for name in before.keys() - after.keys():
        out.append(Change(cid, device, f"constant '{name}'", num(before[name]["measured"]), "vanished", "—"))
    for name in after.keys() - before.keys():
        out.append(Change(cid, device, f"constant '{name}'", "absent", num(after[name]["measured"]), "—"))
    for name in before.keys() & after.keys():
        b, a = before[name], after[name]
        if b.get("kind", "numeric") != a.get("kind", "numeric"):
            out.append(Change(cid, device, f"'{name}' kind", b.get("kind", "numeric"), a.get("kind", "numeric"),
                              "equal"))
            continue
        moved, allowed = _allowed(b, a)
        if moved:
            out.append(Change(cid, device, f"constant '{name}'", num(b["measured"]), num(a["measured"]), allowed))
        if b.get("holds") != a.get("holds"):
            out.append(Change(cid, device, f"'{name}' holds", str(b.get("holds")), str(a.get("holds")), "equal"))
    return out


def compare_device(cid: str, before: dict[str, Any], after: dict[str, Any], device: str) -> list[Change]:
    """Differences between two measurements of one claim (two runs, or two devices)."""
    changes = []
    if before["verdict"] != after["verdict"]:
        changes.append(Change(cid, device, "verdict", before["verdict"], after["verdict"], "equal"))
    return changes + _constant_changes(cid, device, before["constants"], after["constants"])


def compare(baseline: dict[str, Any], current: dict[str, Any]) -> list[Change]:
    """Every difference between two results documents that the guard does not allow."""
    old, new = _by_id(baseline), _by_id(current)
    changes = [Change(cid, "—", "claim", old[cid]["verdict"], "vanished", "—") for cid in old.keys() - new.keys()]
    changes += [Change(cid, "—", "claim", "absent", new[cid]["verdict"], "—") for cid in new.keys() - old.keys()]
    for cid in sorted(old.keys() & new.keys(), key=list(new).index):
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

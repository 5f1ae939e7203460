"""Regression guard: compare a fresh results file with the accepted baseline.

A change is any verdict that moved, any constant whose measured value moved beyond
its own tolerance (the wider of the two runs' ``guard_tolerance``: a confidence-interval
width for statistical constants, dtype precision otherwise), and any claim, device or
constant that appeared or vanished.
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


def _moved(old: Any, new: Any, allowed: float) -> bool:
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
        if math.isnan(old) or math.isnan(new):
            return not (math.isnan(old) and math.isnan(new))
        return abs(new - old) > allowed
    return old != new


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
        allowed = max(b.get("guard_tolerance", 0.0), a.get("guard_tolerance", 0.0))
        if _moved(b["measured"], a["measured"], allowed):
            out.append(Change(cid, device, f"constant '{name}'", num(b["measured"]), num(a["measured"]),
                              f"± {num(allowed)}"))
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

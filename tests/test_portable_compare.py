"""Another CPU's rounding passes the guard and the reproduction check; a real drift does not.

Every constant of the committed results (``reports/results.json``, and the built-in
techniques' ``reports/techniques.json``) is moved by a realistic cross-CPU amount for its
recorded dtype — 1e-12 relative in float64 (RNN-07 moved 2e-13 on an AVX2 EPYC), 1e-6 in
float32, a few ulp narrower — in the direction its kind finds unfavourable (a lower search
bound down, an upper one up, a rounding residual away from 0, the others both ways). The
guard (:func:`gradcore.verify.guard.compare`) must find no change and every reproduction
comparison (:func:`gradcore.verify.reproduce.agrees`) must agree, while drifts no rounding
explains (a numeric value ×1.001, a float64 search bound 1e-6 worse, an estimate outside
its interval) still fail. Exact constants are exactly representable: any move is a change.
"""
from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gradcore.verify import guard, results
from gradcore.verify.reproduce import agrees

REPORTS = Path(__file__).resolve().parents[1] / "reports"
CROSS_CPU = {"float64": 1e-12, "float32": 1e-6, "float16": 4 * 2.0 ** -10, "bfloat16": 4 * 2.0 ** -7}
FILES = [name for name in ("results.json", "techniques.json") if (REPORTS / name).is_file()]


def _load(name: str) -> dict[str, Any]:
    return results.as_claims(json.loads((REPORTS / name).read_text(encoding="utf-8")))


def _constants(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for claim in doc["claims"]:
        for record in claim["devices"].values():
            yield from record["constants"]


def _finite(c: dict[str, Any]) -> bool:
    return isinstance(c["measured"], (int, float)) and math.isfinite(c["measured"])


def _unfavourable(c: dict[str, Any], sign: int) -> float:
    """The factor another CPU's rounding could move ``c`` by, the way its kind likes least."""
    rel = CROSS_CPU.get(c.get("dtype") or "float64", CROSS_CPU["float64"])
    kind = c.get("kind", "numeric")
    if kind == "search":
        up = c["direction"] == "upper"
        return 1 + rel * (1 if up == (c["measured"] >= 0) else -1)
    if kind == "rounding":
        return 1 + rel
    return 1 + sign * rel


def _moved(doc: dict[str, Any], factor: Callable[[dict[str, Any]], float], exact: bool = False) -> dict[str, Any]:
    """``doc`` with every finite constant (its value, interval, tolerance) scaled by ``factor`` of it;
    an exact one only when ``exact``."""
    out = copy.deepcopy(doc)
    for original, c in zip(_constants(doc), _constants(out)):
        if (c.get("kind") == "exact" and not exact) or not _finite(c):
            continue
        f = factor(original)
        c["measured"] *= f
        c["guard_tolerance"] = (c.get("guard_tolerance") or 0.0) * f
        if c.get("interval"):
            c["interval"] = [x * f for x in c["interval"]]
    return out


@pytest.mark.parametrize("sign", [1, -1], ids=["up", "down"])
@pytest.mark.parametrize("name", FILES)
def test_cross_cpu_rounding_of_every_constant_passes_the_guard(name, sign):
    doc = _load(name)
    assert guard.compare(doc, _moved(doc, lambda c: _unfavourable(c, sign))) == []


@pytest.mark.parametrize("sign", [1, -1], ids=["up", "down"])
@pytest.mark.parametrize("name", FILES)
def test_cross_cpu_rounding_of_every_constant_still_reproduces(name, sign):
    doc = _load(name)
    moved = _moved(doc, lambda c: _unfavourable(c, sign))
    pairs = [(b, a) for b, a in zip(_constants(doc), _constants(moved)) if _finite(b) and b.get("kind") != "exact"]
    assert len(pairs) > 50
    disagree = [b["name"] for b, a in pairs if not agrees(b, a["measured"])]
    assert not disagree


def _drifted(doc: dict[str, Any], keep: Callable[[dict[str, Any]], bool], factor: Callable[[dict], float]
             ) -> tuple[int, list[guard.Change], list[str]]:
    """Drift the constants ``keep`` selects: how many, the guard's changes, the names ``agrees`` rejects."""
    chosen = [c for c in _constants(doc) if _finite(c) and c["measured"] != 0 and keep(c)]
    names = {id(c) for c in chosen}
    moved = _moved(doc, lambda c: factor(c) if id(c) in names else 1.0, exact=True)
    rejected = [b["name"] for b, a in zip(_constants(doc), _constants(moved)) if id(b) in names
                and not agrees(b, a["measured"])]
    return len(chosen), guard.compare(doc, moved), rejected


def _relative(c: dict[str, Any]) -> float:
    return guard.allowance(c) / abs(c["measured"])


def test_a_numeric_value_off_by_a_thousandth_is_a_change():
    doc = _load("results.json")
    n, changes, rejected = _drifted(doc, lambda c: c.get("kind") == "numeric" and _relative(c) < 1e-3,
                                    lambda c: 1.001)
    assert n > 50 and len(changes) == n and len(rejected) == n


def test_a_float64_search_bound_a_millionth_worse_is_a_change():
    doc = _load("results.json")
    keep = lambda c: c.get("kind") == "search" and c.get("dtype") == "float64" and _relative(c) < 1e-6  # noqa: E731
    n, changes, rejected = _drifted(doc, keep, lambda c: _unfavourable(c, 1) ** 1e6)  # (1 + 1e-12)^1e6 ≈ 1 + 1e-6
    assert n > 15 and len(changes) == n and all("search bound" in ch.allowed for ch in changes)
    assert len(rejected) == n


def test_an_estimate_that_leaves_its_interval_is_a_change():
    doc = _load("results.json")
    stats = lambda c: c.get("kind") == "statistical" and bool(c.get("interval"))  # noqa: E731

    def outside(c: dict[str, Any]) -> float:
        hi = c["interval"][1] + 2 * guard.allowance(c)
        return hi / c["measured"] if c["measured"] > 0 else 1 + 4 * _relative(c)

    n, changes, rejected = _drifted(doc, stats, outside)
    assert n > 50 and len(changes) == n and all("baseline CI" in ch.allowed for ch in changes)
    assert len(rejected) == n


def test_an_exact_value_moved_by_rounding_is_still_a_change():
    doc = _load("results.json")
    n, changes, rejected = _drifted(doc, lambda c: c.get("kind") == "exact", lambda c: 1 + 1e-12)
    assert n > 10 and len(changes) == n and len(rejected) == n


RNN_07 = "max ‖∂h_T/∂h_0‖_tanh / ‖W^T‖, non-normal W"


@pytest.mark.parametrize("lower,passes", [(2e-13, True), (1e-9, False)])
def test_rnn_07_search_bound_lower_by_rounding_passes_and_by_a_drift_fails(lower, passes):
    """The AVX2 EPYC report: RNN-07's bound 25.46566959819848 came out 2e-13 relative lower."""
    doc = _load("results.json")
    (rnn,) = [c for c in _constants(doc) if c["name"].startswith(RNN_07)]
    assert rnn["kind"] == "search" and rnn["direction"] == "lower" and rnn["dtype"] == "float64"
    n, changes, rejected = _drifted(doc, lambda c: c is rnn, lambda c: 1 - lower)
    assert n == 1 and (changes == [] and rejected == []) == passes
    assert len(changes) == len(rejected) == (0 if passes else 1)

"""Every recorded value's generated reproduction, run as printed, prints that value.

The reproductions come from the committed results (``reports/results.json`` and the
technique results ``reports/techniques.json``); each is judged by the value's own
tolerance in the sense of its kind (:func:`gradcore.verify.reproduce.agrees`).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradcore.verify.reproduce import agrees, reproductions, run

REPORTS = Path(__file__).resolve().parents[1] / "reports"


def _recorded() -> list[tuple[str, dict]]:
    found = []
    for name in ("results.json", "techniques.json"):
        path = REPORTS / name
        if path.is_file():
            found += reproductions(json.loads(path.read_text(encoding="utf-8")))
    unique = {(where.split("[")[0], c["reproduction"]): (where, c) for where, c in found}
    return sorted(unique.values(), key=lambda wc: wc[0])


CASES = _recorded()


@pytest.mark.parametrize("where,constant", CASES, ids=[f"{w}:{c['name'][:40]}" for w, c in CASES])
def test_the_reproduction_prints_the_recorded_value(where, constant):
    printed = run(constant["reproduction"])
    assert agrees(constant, printed), (f"{where} {constant['name']!r}: recorded {constant['measured']!r}, "
                                       f"the reproduction prints {printed!r}\n{constant['reproduction']}")


def test_reproductions_are_judged_by_their_kind():
    assert agrees({"measured": 1e-9, "kind": "rounding", "bound": 1e-6}, 5e-7)
    assert not agrees({"measured": 1e-9, "kind": "rounding", "bound": 1e-6}, 2e-6)
    assert agrees({"measured": 0.5, "kind": "exact"}, 0.5) and not agrees({"measured": 0.5, "kind": "exact"}, 0.5001)
    assert agrees({"measured": 1.0, "kind": "statistical", "guard_tolerance": 0.1}, 1.05)
    assert not agrees({"measured": 1.0, "kind": "numeric", "guard_tolerance": 1e-12}, 1.0 + 1e-9)
    assert run("print('value', repr(0.25))") == 0.25


def test_a_reproduction_on_another_cpu_agrees_within_rounding_and_a_drift_does_not():
    """Issue 23: on an AVX2 EPYC RNN-07's bound 25.46566959819848 reprinted as 25.46566959820326."""
    rnn_07 = {"measured": 25.46566959819848, "kind": "search", "direction": "lower", "dtype": "float64",
              "guard_tolerance": 3.618889308853352e-13}
    assert agrees(rnn_07, 25.46566959820326) and agrees(rnn_07, 25.46566959819848 * (1 - 2e-13))
    assert not agrees(rnn_07, 25.46566959819848 * (1 + 1e-9)) and not agrees(rnn_07, 25.46566959819848 * (1 - 1e-9))
    cosine = {"measured": 0.7071067690849304, "kind": "numeric", "dtype": "float32"}   # no recorded tolerance
    assert agrees(cosine, 0.7071068286895752) and not agrees(cosine, 0.7071067690849304 * 1.001)


def _document(name: str) -> dict:
    path = REPORTS / name
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def test_every_refuted_or_conditional_claim_is_decided_by_a_reproducible_value():
    missing = []
    for claim in _document("results.json").get("claims", []):
        if claim["verdict"] not in ("refuted", "conditional"):
            continue
        failing = [c for c in claim["constants"] if c["holds"] is False]
        failing.sort(key=lambda c: c.get("outside") is not None)
        if not failing[0].get("reproduction"):
            missing.append(f"{claim['id']}: {failing[0]['name']}")
    assert not missing, f"deciding checks without a generated reproduction: {missing}"


def test_every_violated_clause_of_a_built_in_carries_its_reproduction():
    missing = []
    for kind, techniques in _document("techniques.json").get("kinds", {}).items():
        for name, clauses in techniques.items():
            for c in clauses:
                if c["verdict"] == "violated" and not (c.get("counterexample") or {}).get("snippet"):
                    missing.append(f"{kind} {name} {c['id']}")
    assert not missing, f"violated clauses without a reproduction: {missing}"

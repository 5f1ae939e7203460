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

"""The command line and the Python API are one path: the same technique gives the same results.

``gradcore check`` runs in a fresh interpreter (no pytest, no Hypothesis profile loaded);
``gradcore.testing.check_technique`` runs here, under pytest. Settings are resolved in one
place (``check.settings_for``) and both measure inside ``profiles.pinned_generation``, so
every clause's verdict must agree, and every constant within what its kind allows for rounding
(two processes may round differently; :func:`gradcore.verify.reproduce.agrees`).
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import pytest

from gradcore.testing import check_technique
from gradcore.verify import check_report
from gradcore.verify.loading import load_object
from gradcore.verify.guard import PORTABLE, allowance
from gradcore.verify.reproduce import agrees

TECHNIQUES = [("tests.techniques_for_tests:swish", None), ("tests.techniques_for_tests:clip_per_coordinate", None),
              ("tests.techniques_for_tests:EpsLayerNorm", "norm")]


MEASURED = ("measured", "guard_tolerance", "interval")   # computed numbers: compared by kind, not bit for bit
# A counterexample also carries computed numbers (the worst cosine found, f'(x) there) next to the
# drawn inputs Hypothesis replays bit for bit; they have no kind of their own, so they get the widest
# rounding allowance of a clause's dtypes (float32's) while the constants, which decide, get their kind's.
LOOSE = PORTABLE["float32"]


def _comparable(doc: dict) -> list[dict]:
    """The clauses with their constants' computed numbers set aside."""
    return [{k: ([{f: v for f, v in const.items() if f not in MEASURED} for const in val]
                 if k == "constants" else val)
             for k, val in c.items() if k != "duration_s"} for c in doc["clauses"]]


def _same(a: Any, b: Any) -> bool:
    """Equal, but floats only within :data:`LOOSE` relative."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=LOOSE) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _disagreeing(cli: dict, api: dict) -> list[str]:
    """Constants whose values differ by more than their kind allows (two processes may take
    different kernel paths: the last bit of a float32 cosine differed on an AVX2 EPYC)."""
    pairs = [(c["id"], a, b) for c, d in zip(cli["clauses"], api["clauses"])
             for a, b in zip(c["constants"], d["constants"])]
    out = [f"{cid} {b['name']}: {a['measured']!r} vs {b['measured']!r}" for cid, a, b in pairs
           if not agrees(b, float(a["measured"]))]
    out += [f"{cid} {b['name']}: interval {a['interval']} vs {b['interval']}" for cid, a, b in pairs
            if (a["interval"] is None) != (b["interval"] is None)
            or a["interval"] and any(abs(x - y) > allowance(b) for x, y in zip(a["interval"], b["interval"]))]
    return out


@pytest.mark.parametrize("spec,kind", TECHNIQUES, ids=[s.split(":")[1] for s, _ in TECHNIQUES])
def test_the_cli_and_the_api_give_the_same_json(tmp_path, spec, kind):
    args = [sys.executable, "-m", "gradcore.cli", "check", spec, "--no-compare", "--out", str(tmp_path)]
    cli = subprocess.run(args + (["--kind", kind] if kind else []), capture_output=True, text=True, timeout=900)
    assert cli.returncode in (0, 1), cli.stderr
    name = spec.split(":")[1]
    from_cli = json.loads((tmp_path / f"{name}.json").read_text(encoding="utf-8"))
    api = check_technique(load_object(spec), kind=kind, name=name)
    from_api = check_report.to_json(api)
    assert from_cli["technique"]["kind"] == from_api["technique"]["kind"]
    assert _same(_comparable(from_cli), _comparable(from_api)), (_comparable(from_cli), _comparable(from_api))
    assert not _disagreeing(from_cli, from_api)


def test_two_processes_agree_within_rounding_not_bit_for_bit():
    """The clip_per_coordinate report: a float32 cosine …0321 in one process, …0322 in the other
    (it is both a constant and a field of the clause's counterexample)."""
    def clause(cosine: float) -> dict:
        const = {"name": "cos", "measured": cosine, "kind": "numeric", "dtype": "float32", "guard_tolerance": 0.0,
                 "interval": None}
        return {"clauses": [{"id": "direction", "constants": [const], "counterexample": {"g": [1e3, 1.0],
                                                                                         "cosine": cosine}}]}
    here, last_bit, drift = clause(0.7071067690849304), clause(0.7071068286895752), clause(0.7078)
    assert _same(_comparable(last_bit), _comparable(here)) and not _disagreeing(last_bit, here)
    assert _disagreeing(drift, here) and not _same(_comparable(drift), _comparable(here))
    assert not _same([0.5], []) and not _same({"x": 1}, {"x": 1.0})


def test_a_list_valued_constant_renders_entry_by_entry():
    """A clause may report a list (the depths a stack was measured at): the table shows each entry."""
    from gradcore.verify.views import num

    assert num([1, 2.5e-7, "x"]) == "[1, 2.500e-07, x]" and num((0.5,)) == "[0.5]"

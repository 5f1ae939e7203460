"""The regression guard flags every change beyond each constant's own tolerance."""
import copy
import json
from pathlib import Path

import pytest

from gradcore.errors import ResultsError
from gradcore.verify import guard

from .cli_helpers import run

REPORTS = Path(__file__).resolve().parents[1] / "reports"


def doc(measured=1.0, verdict="verified", guard_tol=1e-6, ids=("A-01",)):
    const = {"name": "c", "measured": measured, "holds": True, "guard_tolerance": guard_tol}
    return {"claims": [{"id": i, "verdict": verdict,
                        "devices": {"cpu": {"verdict": verdict, "constants": [dict(const)]}}} for i in ids]}


def test_identical_results_pass():
    assert guard.compare(doc(), doc()) == []


def test_a_constant_within_its_tolerance_passes_and_beyond_it_fails():
    assert guard.compare(doc(1.0, guard_tol=0.1), doc(1.05, guard_tol=0.1)) == []
    (change,) = guard.compare(doc(1.0, guard_tol=0.01), doc(1.05, guard_tol=0.01))
    assert (change.claim, change.device, change.what) == ("A-01", "cpu", "constant 'c'")
    assert "A-01" in guard.render([change])


def test_a_verdict_change_is_reported():
    changes = guard.compare(doc(), doc(verdict="refuted"))
    assert any(c.what == "verdict" and c.now == "refuted" for c in changes)


def test_new_and_vanished_claims_devices_and_constants():
    changes = guard.compare(doc(ids=("A-01", "B-01")), doc(ids=("A-01", "C-01")))
    assert {(c.claim, c.now) for c in changes} == {("B-01", "vanished"), ("C-01", "verified")}
    base, now = doc(), doc()
    now["claims"][0]["devices"]["cuda"] = copy.deepcopy(now["claims"][0]["devices"]["cpu"])
    now["claims"][0]["devices"]["cpu"]["constants"].append({"name": "d", "measured": 2.0, "holds": True})
    whats = {c.what for c in guard.compare(base, now)}
    assert whats == {"device", "constant 'd'"}


def test_non_numeric_measurements_compare_exactly():
    assert guard.compare(doc("inf"), doc("inf")) == []
    assert len(guard.compare(doc("inf"), doc(1.0))) == 1


def kinded(measured, kind, **fields):
    d = doc(measured, guard_tol=fields.pop("guard_tolerance", 0.0))
    d["claims"][0]["devices"]["cpu"]["constants"][0].update(kind=kind, **fields)
    return d


def test_a_rounding_residual_is_guarded_by_its_bound_not_its_value():
    assert guard.compare(kinded(8.9e-7, "rounding", bound=1e-5), kinded(9.5e-7, "rounding", bound=1e-5)) == []
    (change,) = guard.compare(kinded(8.9e-7, "rounding", bound=1e-5), kinded(2e-5, "rounding", bound=1e-5))
    assert "rounding bound" in change.allowed


def test_a_statistical_value_is_guarded_by_the_baseline_interval():
    base = kinded(1.0, "statistical", interval=[0.9, 1.1], guard_tolerance=0.1)
    assert guard.compare(base, kinded(1.08, "statistical", interval=[0.98, 1.18], guard_tolerance=0.1)) == []
    assert len(guard.compare(base, kinded(1.3, "statistical", interval=[1.2, 1.4], guard_tolerance=0.1))) == 1


def test_a_search_bound_fails_only_when_it_gets_worse():
    base = kinded(3.0, "search", direction="lower", guard_tolerance=1e-9)
    assert guard.compare(base, kinded(3.5, "search", direction="lower", guard_tolerance=1e-9)) == []
    (change,) = guard.compare(base, kinded(2.0, "search", direction="lower", guard_tolerance=1e-9))
    assert "search bound" in change.allowed


def test_an_exact_value_compares_exactly_and_a_kind_change_is_a_change():
    assert guard.compare(kinded(0.5, "exact"), kinded(0.5, "exact")) == []
    assert len(guard.compare(kinded(0.5, "exact"), kinded(0.5 + 2 ** -52, "exact"))) == 1
    (change,) = guard.compare(kinded(0.5, "exact"), kinded(0.5, "numeric"))
    assert change.what == "'c' kind"


def test_the_file_under_test_cannot_widen_its_own_tolerance():
    """Issue 23: a results file whose guard_tolerance is 1e308 passed with a constant moved ×1000."""
    (change,) = guard.compare(doc(1.0, guard_tol=1e-12), doc(1000.0, guard_tol=1e308))
    assert change.baseline == "1" and "1e+308" not in change.allowed
    stat = kinded(1.0, "statistical", interval=[0.9, 1.1], guard_tolerance=0.1)
    assert len(guard.compare(stat, kinded(1.5, "statistical", interval=[0.0, 3.0], guard_tolerance=1.5))) == 1
    residual = kinded(1e-9, "rounding", bound=1e-6)
    assert len(guard.compare(residual, kinded(1e-3, "rounding", bound=1.0))) == 1


def test_a_search_bound_cannot_turn_round_to_make_a_drop_an_improvement():
    base = kinded(3.0, "search", direction="lower", guard_tolerance=1e-9)
    (change,) = guard.compare(base, kinded(2.0, "search", direction="upper", guard_tolerance=1e-9))
    assert change.what == "'c' kind"


def test_a_baseline_without_a_tolerance_gets_its_dtypes_rounding_allowance():
    base, near, far = doc(1.0), doc(1.0 + 1e-12), doc(1.0 + 1e-9)
    for d in (base, near, far):
        del d["claims"][0]["devices"]["cpu"]["constants"][0]["guard_tolerance"]
    assert guard.compare(base, near) == []
    (change,) = guard.compare(base, far)
    assert change.what == "constant 'c'" and (change.baseline, change.now) == ("1.0", "1.000000001")


@pytest.mark.parametrize("which", ["baseline", "results"])
def test_a_claim_id_twice_in_either_file_is_an_error_naming_it(which):
    """Issue 23: a file with the same claim id twice passed against a one-claim baseline."""
    twice, once = doc(ids=("A-01", "A-01")), doc()
    with pytest.raises(ResultsError, match=f"^{which}: claim id 'A-01' occurs twice$"):
        guard.compare(*((twice, once) if which == "baseline" else (once, twice)))


def test_a_constant_twice_in_one_record_is_an_error_but_one_per_dtype_is_two_constants():
    twice = doc()
    record = twice["claims"][0]["devices"]["cpu"]
    record["constants"].append(dict(record["constants"][0], measured=5.0))
    with pytest.raises(ResultsError, match="claim A-01 \\[cpu\\]: constant 'c' occurs twice"):
        guard.compare(doc(), twice)
    per_dtype = copy.deepcopy(twice)
    for c, dtype in zip(per_dtype["claims"][0]["devices"]["cpu"]["constants"], ("float32", "float64")):
        c["dtype"] = dtype
    moved = copy.deepcopy(per_dtype)
    moved["claims"][0]["devices"]["cpu"]["constants"][0]["measured"] = 2.0
    (change,) = guard.compare(per_dtype, moved)
    assert change.what == "constant 'c [float32]'"


def _write(path, document):
    full = json.loads((REPORTS / "results.json").read_text(encoding="utf-8"))
    full["claims"] = document["claims"]
    path.write_text(json.dumps(full, ensure_ascii=False), encoding="utf-8")
    return path


def test_the_command_exits_2_on_a_repeated_claim_or_device_and_1_on_a_new_constant(capsys, tmp_path):
    base = json.loads((REPORTS / "results.json").read_text(encoding="utf-8"))
    base["claims"] = base["claims"][:2]
    baseline = _write(tmp_path / "baseline.json", base)
    twice = _write(tmp_path / "twice.json", {"claims": [base["claims"][0]] * 2 + base["claims"][1:]})
    status, _, err = run(capsys, "guard", twice, "--baseline", baseline)
    cid = base["claims"][0]["id"]
    # the schema refuses the repeated id before the guard reads the file (the guard's own check is above)
    assert status == 2 and err.count("\n") == 1 and f"{cid} appears more than once" in err
    text = baseline.read_text(encoding="utf-8")
    cpu = text.index('"cpu": {')
    devices_twice = tmp_path / "devices.json"
    devices_twice.write_text(text[:cpu] + text[cpu:text.index("}", text.index('"constants"', cpu)) + 1]
                             .replace('"cpu": {', '"cpu": {"verdict": "verified", "constants": []}, "cpu": {', 1)
                             + text[text.index("}", text.index('"constants"', cpu)) + 1:], encoding="utf-8")
    status, _, err = run(capsys, "guard", devices_twice, "--baseline", baseline)
    assert status == 2 and err.count("\n") == 1 and "'cpu' occurs twice" in err
    added = copy.deepcopy(base)
    record = next(iter(added["claims"][0]["devices"].values()))
    record["constants"].append(dict(record["constants"][0], name="a constant the baseline lacks"))
    status, out, _ = run(capsys, "guard", _write(tmp_path / "added.json", added), "--baseline", baseline)
    assert status == 1 and "a constant the baseline lacks" in out and "absent" in out

"""The regression guard flags every change beyond each constant's own tolerance."""
import copy

from gradcore.verify import guard


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

"""The recorder derives verdicts from comparisons; it never takes one as given."""
import math

import pytest

from gradcore.verify.record import ClaimRecorder
from gradcore.errors import RecordingError


def rec(**kw) -> ClaimRecorder:
    return ClaimRecorder("X-01", "cpu", **kw)


def test_all_checks_hold_is_verified():
    r = rec()
    assert r.compare("a", claimed=0.25, measured=0.25)
    assert r.verdict == "verified"


def test_failing_check_inside_assumptions_is_refuted():
    r = rec(atol=0.01)
    r.compare("a", claimed=3.0, measured=4.59, counterexample={"eps": 0.01})
    assert r.verdict == "refuted"
    assert r.counterexample == {"eps": 0.01}


def test_failure_only_outside_assumptions_is_conditional():
    r = rec(atol=0.01)
    r.compare("gaussian", claimed=0.798, measured=0.797)
    r.compare("student-t", claimed=0.798, measured=0.60, outside="heavy tails", counterexample=1)
    assert r.verdict == "conditional"


def test_straddling_interval_is_inconclusive():
    r = rec()
    assert r.compare("ratio", claimed=1.0, measured=1.02, relation="<=", interval=(0.95, 1.05)) is None
    assert r.verdict == "inconclusive"


@pytest.mark.parametrize("relation,measured,expected", [
    ("<=", 1.0, True), ("<=", 1.1, False), (">=", 0.9, False), ("<", 0.99, True), (">", 1.01, True)])
def test_relations_read_measured_rel_claimed(relation, measured, expected):
    assert rec().compare("x", claimed=1.0, measured=measured, relation=relation) is expected


def test_catalogue_tolerance_is_the_default_and_checks_may_override():
    r = rec(rtol=0.1)
    assert r.compare("x", claimed=1.0, measured=1.09)
    assert not r.compare("y", claimed=1.0, measured=1.09, rtol=0.0)


def test_nan_never_holds():
    assert rec(atol=1e9).compare("x", claimed=1.0, measured=math.nan) is False


def test_refutation_needs_counterexample_and_correction():
    r = rec()
    r.compare("x", claimed=1.0, measured=2.0)
    assert len(r.problems()) == 2
    r.constants[0].counterexample = {"x": 2}
    r.correct("it is 2")
    assert r.problems() == ["the counterexample must be a dict whose 'snippet' is Python code reproducing it"]
    r.constants[0].counterexample = {"x": 2, "snippet": "see the test"}
    assert len(r.problems()) == 1
    r.constants[0].counterexample = {"x": 2, "snippet": "print(2)"}
    assert r.problems() == []


def test_empty_record_and_bad_arguments_raise():
    with pytest.raises(RecordingError, match="no comparisons"):
        _ = rec().verdict
    with pytest.raises(RecordingError, match="relation"):
        rec().compare("x", claimed=1, measured=1, relation="~")
    with pytest.raises(RecordingError, match="number"):
        rec().compare("x", claimed="big", measured=1)
    with pytest.raises(RecordingError, match="points"):
        rec().curve("f", "l", [1, 2], [1], xlabel="x", ylabel="y")


def test_json_has_no_non_finite_numbers():
    r = rec()
    r.compare("overflow", claimed=1.0, measured=math.inf, relation=">=")
    out = r.to_json()
    assert out["constants"][0]["measured"] == "inf"


def test_guard_tolerance_comes_from_the_measurement_kind():
    r = rec(atol=1e-10)
    r.compare("residual", claimed=0.0, measured=1e-15, kind="rounding")
    r.compare("statistic", claimed=1.0, measured=1.01, interval=(0.98, 1.04), atol=0.05)
    r.compare("float32 value", claimed=2.0, measured=2.0, dtype="torch.float32")
    residual, statistic, value = r.constants
    assert (residual.kind, residual.bound, residual.guard_tolerance) == ("rounding", 1e-10, 0.0)
    assert (statistic.kind, statistic.guard_tolerance) == ("statistical", pytest.approx(0.03))
    assert (value.kind, value.guard_tolerance) == ("numeric", pytest.approx(64 * 2.0 ** -23 * 2.0))


def test_a_measurement_brings_its_kind_sizes_and_reproduction():
    from gradcore.measure import Kind, Measurement

    m = Measurement(0.9, Kind.STATISTICAL, "float64", sizes={"depth": 8, "seeds": 5}, interval=(0.8, 0.95),
                    n=5, method="Student-t", reproduction="print(0.9)")
    r = rec()
    assert r.compare("lambda", claimed=1.0, measured=m) is False
    c = r.constants[0]
    assert (c.interval, c.sizes, c.n, c.reproduction, c.dtype) == ((0.8, 0.95), {"depth": 8, "seeds": 5}, 5,
                                                                  "print(0.9)", "float64")
    with pytest.raises(RecordingError, match="carries its own interval"):
        r.compare("again", claimed=1.0, measured=m, interval=(0, 1))


def test_the_deciding_counterexample_comes_from_inside_the_assumptions():
    r = rec()
    r.compare("outside", claimed=1.0, measured=2.0, outside="elsewhere", counterexample={"case": "outside"})
    r.compare("inside", claimed=1.0, measured=3.0, counterexample={"case": "inside"})
    assert r.verdict == "refuted"
    assert r.counterexample == {"case": "inside"}

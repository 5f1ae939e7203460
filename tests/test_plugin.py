"""The pytest plugin end to end, on a miniature catalogue and theorem suite."""
import json

import pytest

CATALOGUE = '''
[[claim]]
id = "T-01"
title = "one half"
statement = "0.5 is one half"
method = "symbolic"
expected_verdict = "{expected}"
tolerance = {{ atol = 1e-9 }}
[[claim.sources]]
file = "f.txt"
section = "s"
quote = "q"

[[claim]]
id = "T-02"
title = "a per-device measurement"
statement = "ones sum to n"
method = "property"
expected_verdict = "verified"
[[claim.sources]]
file = "f.txt"
section = "s"
quote = "q"
'''

THEOREMS = '''
import pytest, torch

@pytest.mark.claim("T-01")
def test_half(claim):
    claim.compare("half", claimed={claimed}, measured=0.5, counterexample={counterexample})
    {correct}

@pytest.mark.claim("T-02")
def test_sum(claim, device):
    claim.compare("sum", claimed=8, measured=torch.ones(8, device=device).sum())
    claim.curve("fig", "sum", [1, 2], [1.0, 2.0], xlabel="x", ylabel="y")
'''


def make(pytester, expected="verified", claimed=0.5, counterexample=None, correct="") -> None:
    pytester.makeini("[pytest]\naddopts = -p gradcore.verify.plugin\ngradcore_catalogue = catalogue\n")
    (pytester.path / "catalogue").mkdir()
    (pytester.path / "catalogue" / "t.toml").write_text(CATALOGUE.format(expected=expected), encoding="utf-8")
    pytester.makepyfile(test_theorems=THEOREMS.format(claimed=claimed, counterexample=counterexample,
                                                      correct=correct))


def run(pytester, *args):
    return pytester.runpytest_subprocess("--gradcore-results=out/results.json", "-p", "no:cacheprovider", *args)


def results(pytester) -> dict:
    return json.loads((pytester.path / "out" / "results.json").read_text(encoding="utf-8"))


def test_a_verified_claim_passes_and_is_written(pytester):
    make(pytester)
    run(pytester, "--device=cpu").assert_outcomes(passed=2)
    doc = results(pytester)
    assert [c["id"] for c in doc["claims"]] == ["T-01", "T-02"]
    assert doc["claims"][0]["verdict"] == "verified"
    assert doc["claims"][1]["devices"]["cpu"]["constants"][0]["measured"] == 8.0
    assert doc["environment"]["profile"] == "ci"


def test_a_measurement_contradicting_the_catalogue_fails(pytester):
    make(pytester, claimed=0.25, counterexample="{'x': 1}", correct="claim.correct('it is 0.5')")
    result = run(pytester, "--device=cpu")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*measured verdict 'refuted', catalogue expects 'verified'*"])


def test_an_expected_refutation_passes_only_with_counterexample_and_correction(pytester):
    make(pytester, expected="refuted", claimed=0.25)
    result = run(pytester, "--device=cpu")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*must carry its counterexample*", "*must record correct*"])


def test_xdist_workers_merge_into_the_same_results(pytester):
    make(pytester)
    run(pytester, "--device=cpu").assert_outcomes(passed=2)
    serial = results(pytester)
    run(pytester, "--device=cpu", "-n", "2").assert_outcomes(passed=2)
    parallel = results(pytester)
    # devices hold durations, measured_in the run's timestamp and worker count
    strip = lambda doc: [{k: v for k, v in c.items() if k not in ("devices", "measured_in")}  # noqa: E731
                         for c in doc["claims"]]
    assert strip(serial) == strip(parallel)


def test_cuda_cases_skip_with_a_reason_when_absent(pytester):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is present here")
    make(pytester)
    result = run(pytester, "--device=all", "-rs")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*CUDA requested but torch.cuda.is_available() is False*"])


def test_unknown_claim_ids_and_only_words_are_usage_errors(pytester):
    make(pytester)
    pytester.makepyfile(test_more='import pytest\n@pytest.mark.claim("NOPE-01")\ndef test_x(claim): pass\n')
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown claim id 'NOPE-01'*"])


def test_only_reruns_a_subset_and_keeps_the_rest(pytester):
    make(pytester)
    run(pytester, "--device=cpu").assert_outcomes(passed=2)
    result = run(pytester, "--device=cpu", "--only=T-02")
    result.assert_outcomes(passed=1, deselected=1)
    assert [c["id"] for c in results(pytester)["claims"]] == ["T-01", "T-02"]
    bad = run(pytester, "--only=nothing")
    bad.stderr.fnmatch_lines(["*--only: 'nothing' is neither a claim id nor a topic*"])


def test_a_parametrized_theorem_keeps_every_items_measurements():
    """Two test items measuring one claim on one device are merged, not overwritten (last one wins)."""
    from gradcore.verify.results import merged

    def record(case, measured, holds):
        return {"id": "X-01", "device": "cpu", "verdict": "verified" if holds else "refuted",
                "constants": [{"name": "c", "measured": measured, "holds": holds, "outside": None}],
                "counterexample": None if holds else {"snippet": "print(1)"}, "corrected": None, "notes": [],
                "series": [], "duration_s": 1.0, "test": {"nodeid": f"t.py::test_x[cpu-{case}]"}}

    both = merged([record("float64", 1.0, True), record("float32", 2.0, False)])
    assert [c["name"] for c in both["constants"]] == ["c [float32]", "c [float64]"]
    assert both["verdict"] == "refuted" and both["counterexample"] == {"snippet": "print(1)"}
    assert both["duration_s"] == 2.0

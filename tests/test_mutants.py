"""The planted bugs in mutation/mutants.toml still apply to the code they were written against.

A mutant whose snippet no longer occurs exactly once would be scored "does not apply" by
``mutation/run.py``; catching that here keeps the negative controls in step with the code.
"""
from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = tomllib.loads((ROOT / "mutation" / "mutants.toml").read_text(encoding="utf-8"))["mutant"]


def test_mutant_names_are_unique():
    names = [m["name"] for m in MUTANTS]
    assert len(names) == len(set(names)) and len(names) >= 30


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m["name"] for m in MUTANTS])
def test_each_mutant_changes_one_snippet_that_occurs_once(mutant):
    text = (ROOT / mutant["file"]).read_text(encoding="utf-8")
    assert text.count(mutant["find"]) == 1, f"{mutant['name']}: snippet occurs {text.count(mutant['find'])} times"
    assert mutant["replace"] != mutant["find"] and mutant["bug"].strip()


def _runner():
    spec = importlib.util.spec_from_file_location("mutation_run", ROOT / "mutation" / "run.py")
    run = importlib.util.module_from_spec(spec)
    sys.modules["mutation_run"] = run          # its dataclasses look their module up there
    try:
        spec.loader.exec_module(run)
    finally:
        del sys.modules["mutation_run"]
    return run


def test_the_runner_never_lets_this_file_judge_a_mutant():
    # this file fails on every applied mutant (its snippet is gone; the runner's copy has no mutation/),
    # so selected it would "kill" every planted bug at collection, before any test about the code ran
    run = _runner()
    planted = run.load()[0]
    selected = run._selected(planted)
    assert selected and "tests/test_mutants.py" not in selected


def test_the_runner_reads_whole_parametrized_ids_and_collection_errors_from_pytest_s_summary():
    # the control reruns the killing test unmutated: a truncated id would not run, and the kill would be
    # scored "invalid" (a collection error unreported would be scored "killed" with no test named)
    out = ("FAILED tests/a.py::test_x[batch_norm-holds-does not apply] - AssertionError: a - b\n"
           "ERROR tests/b.py - FileNotFoundError: [Errno 2] No such file\n")
    assert _runner().failed_tests(out) == ["tests/a.py::test_x[batch_norm-holds-does not apply]", "tests/b.py"]

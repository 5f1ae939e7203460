"""gradcore.testing.parametrize_clauses: one pytest item per (technique, clause), run with pytester.

The techniques are clipping rules (the cheapest kind to measure): a global-norm clip that
keeps every clause, and per-coordinate clipping, which loses the gradient's direction (002).
"""
from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

TECHNIQUES = '''
import torch
from gradcore.testing import parametrize_clauses
import gradcore.testing as gt

MEASURED = []
_measure = gt._Technique.measure


def counted(self):
    MEASURED.append(self.name)
    return _measure(self)


gt._Technique.measure = counted


def global_norm(grads):
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
    scale = torch.clamp(1.0 / torch.clamp(norm, min=1e-300), max=1.0)
    return [(g.double() * scale).to(g.dtype) for g in grads]


def per_coordinate(grads):
    return [g.clamp(-1.0, 1.0) for g in grads]
'''


def _run(pytester: pytest.Pytester, decorator: str, body: str = "clause(technique)") -> pytest.RunResult:
    pytester.makepyfile(test_clauses=TECHNIQUES + f'''

{decorator}
def test_clause(technique, clause):
    {body}


def test_zz_each_technique_was_measured_once():
    assert sorted(MEASURED) == sorted(set(MEASURED)) and MEASURED
''')
    # in a subprocess: an in-process run drops the modules it imported (numpy's C parts cannot load twice)
    return pytester.runpytest_subprocess("-v", "-rsxX", "-p", "no:cacheprovider", "-p", "no:xdist")


def test_one_item_per_technique_and_clause_with_readable_ids(pytester):
    run = _run(pytester, '@parametrize_clauses([global_norm, per_coordinate], '
                         'xfail={"per_coordinate-direction": "value clipping turns the gradient"})')
    out = run.stdout.str()
    for clause in ("direction", "step-bound", "below-threshold", "zero", "non-finite"):
        assert f"test_clause[global_norm-{clause}] PASSED" in out
    assert "test_clause[global_norm-value-limit] SKIPPED" in out and "global_norm value-limit: does not apply" in out
    assert "test_clause[per_coordinate-direction] XFAIL" in out
    assert "value clipping turns the gradient" in out
    # 2 × 6 clauses + the once-only check; value-limit does not apply to a norm rule: skipped with the reason
    run.assert_outcomes(passed=11, skipped=1, xfailed=1)
    assert "global_norm (clipping): 6 clauses ran, 5 held, 0 violated, 0 could not be measured, 1 did not apply" in out
    assert "per_coordinate (clipping): 6 clauses ran, 5 held, 1 violated, 0 could not be measured" in out


def test_a_violated_clause_fails_with_its_counterexample_and_a_stale_xfail_is_reported(pytester):
    run = _run(pytester, '@parametrize_clauses({"mine": per_coordinate, "safe": global_norm}, kind="clipping", '
                         'xfail={"safe-zero": "expected to break"})')
    out = run.stdout.str()
    run.assert_outcomes(passed=10, failed=2, skipped=1)   # mine-direction violated; safe-zero holds: XPASS(strict)
    assert "test_clauses.py::test_clause[mine-direction] FAILED" in out
    assert "mine (clipping) `direction` (CLIP-01, CLIP-03)" in out and "reproduce with:" in out
    assert "[XPASS(strict)] expected to break" in out


def test_an_xfail_naming_no_item_is_a_collection_error(pytester):
    run = _run(pytester, '@parametrize_clauses([global_norm], xfail={"global_norm-directoin": "typo"})')
    assert run.ret == pytest.ExitCode.INTERRUPTED
    assert "xfail: 'global_norm-directoin' names no item" in run.stdout.str()

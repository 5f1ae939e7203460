"""Issue 24: clauses about a sup/inf search for it, clauses about an expectation add draws until
the interval decides; techniques the old few-draw clauses passed are caught (each test names one)."""
from __future__ import annotations

import math

import pytest
import torch

from gradcore.testing import check_technique

from . import hostile_techniques as H


def _clause(result, cid):
    return next(r for r in result.results if r.clause == cid)


def test_deepnorm_block_amplifies_and_the_search_finds_it():
    """DeepNorm-style LN(2x + G(x)): the old 3-draw maximum was 0.986 ("holds")."""
    res = check_technique(H.DeepNormBlock, kind="residual")
    bound = _clause(res, "block-jacobian-bound")
    assert bound.verdict == "violated"
    found = bound.constants["sup ‖∂block/∂x‖₂ found by search"]
    assert found.value > 1.0 and found.kind.value == "search"
    # the counterexample is a real point: re-measure ‖∂block/∂x‖₂ there independently
    cex = bound.counterexample
    torch.manual_seed(cex["seed"])
    block = H.DeepNormBlock(32).double()
    x = torch.tensor(cex["x"], dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda t: block(t.reshape(x.shape)).reshape(-1), x.reshape(-1))
    assert float(torch.linalg.svdvals(jac).max()) == pytest.approx(found.value, rel=1e-6)


def test_residual_block_with_batchnorm_in_training_mode_is_measured():
    """BN updating running stats in place inside torch.func and a batch of one were gradcore's failures."""
    def make(width):
        return torch.nn.Sequential(torch.nn.BatchNorm1d(width), torch.nn.ReLU(), torch.nn.Linear(width, width))

    class PreActBN(torch.nn.Module):
        def __init__(self, width):
            super().__init__()
            self.f = make(width)

        def forward(self, x):
            return x + self.f(x)

    res = check_technique(PreActBN, kind="residual")
    bound = _clause(res, "block-jacobian-bound")
    assert bound.verdict in ("holds", "violated") and "could not" not in bound.note
    assert math.isfinite(bound.constants["sup ‖∂block/∂x‖₂ found by search"].value)
    assert not [r.clause for r in res.results if r.verdict == "unmeasured"]   # identity-floor: batch of 2

"""The norm kind's shattering clause (LIT-13, Balduzzi et al. 2017, issue 22): the user's norm in BN's
place, its batch statistics held fixed per point; the built-ins' verdicts, a layer that keeps the
gradients correlated (reported, never gating), "does not apply" where the statistics cannot be held
fixed, and the BatchNorm running-statistics trick against the theorem's fixed-statistics derivative."""
import numpy as np
import pytest
import torch
from torch import nn

from gradcore import normalisation as norms
from gradcore.errors import NotApplicable
from gradcore.measure import shattering
from gradcore.verify.check import settings_for
from gradcore.verify.contracts.base import run_clause
from gradcore.verify.contracts.norm import CLAUSES, SHATTER_RATE, NormContract
from gradcore.verify.reproduce import run

from .contract_helpers import run_clauses

SMALL = dict(architecture="feedforward", depth=3, seed=0, width=16, points=32)


def _shattering(obj):
    return run_clauses("norm", obj, "shattering", name="layer")["shattering"]


class BatchStandardise(nn.Module):
    """Batch standardisation written out: coupled to the batch, no running statistics to hold fixed."""

    def __init__(self, width: int) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5)


class UnbiasedRunningNorm(BatchStandardise):
    """Has running_mean/running_var/momentum, but trains with the unbiased variance: setting its running
    statistics to the batch's (biased) ones does not reproduce its training-mode output."""

    def __init__(self, width: int) -> None:
        super().__init__(width)
        self.register_buffer("running_mean", torch.zeros(width))
        self.register_buffer("running_var", torch.ones(width))
        self.momentum = 0.1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=True) + 1e-5)
        return (x - self.running_mean) / torch.sqrt(self.running_var + 1e-5)


class ShiftedTanh(nn.Module):
    """A per-sample layer after which ReLU is the identity and each block contracts (0.1·tanh + 1):
    every grid point's trajectory meets the others', so df/dx stays smooth with depth (no shattering)."""

    def __init__(self, width: int) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.1 * torch.tanh(x) + 1.0


class Constant(ShiftedTanh):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0 + 1.0


@pytest.mark.parametrize("name, held", [("batch_norm", "running statistics"), ("layer_norm", "per sample"),
                                        ("rms_norm", "per sample")])
def test_the_builtins_shatter_and_skips_slow_it(name, held):
    r = _shattering(getattr(norms, name))
    slope = r.constants["per-block slope of ρ₁, feedforward"]
    gap = r.constants["slope with skips − feedforward slope"]
    assert r.verdict == "holds", r.note
    assert slope.interval[1] < -SHATTER_RATE and gap.interval[0] > SHATTER_RATE
    assert held in r.note and r.constants["width"] == 64 and r.constants["grid points"] == 128
    assert "import gradient_correlation_slope" in slope.reproduction and "make=make" in slope.reproduction


def test_the_reproduction_of_the_slope_prints_its_value():
    settings = settings_for("cpu", "ci", 0, None)
    clause = next(c for c in CLAUSES if c.id == "shattering")
    subject = NormContract.subject(norms.layer_norm, "layer_norm",
                                   "from gradcore.normalisation import layer_norm as make", settings)
    slope = run_clause(clause, subject, settings).constants["per-block slope of ρ₁, feedforward"]
    assert run(slope.reproduction) == pytest.approx(slope.value, rel=1e-9)


def test_the_clause_describes_and_does_not_gate():
    clause = next(c for c in CLAUSES if c.id == "shattering")
    assert clause.claims == ("LIT-13",) and clause.gate is False
    assert "not a gate" in clause.statement and "width 64·s" in clause.statement


def test_a_layer_that_keeps_gradients_correlated_is_reported_violated_with_its_reproduction():
    r = _shattering(ShiftedTanh)
    slope = r.constants["per-block slope of ρ₁, feedforward"]
    assert r.verdict == "violated" and r.gate is False
    assert slope.interval[0] > -SHATTER_RATE          # decided: ρ₁ falls by less than the rate
    assert r.counterexample["snippet"] == slope.reproduction


@pytest.mark.parametrize("layer, reason", [
    (BatchStandardise, "no running statistics"),
    (UnbiasedRunningNorm, "does not reproduce its training-mode output"),
    (Constant, "same at every grid point"),
])
def test_statistics_that_cannot_be_held_fixed_do_not_apply(layer, reason):
    r = _shattering(layer)
    assert r.verdict == "does not apply" and reason in r.note


@pytest.mark.parametrize("make", [nn.BatchNorm1d, norms.batch_norm], ids=["running stats", "no running stats"])
def test_batchnorm_with_running_statistics_set_gives_the_theorems_fixed_statistics_derivative(make):
    """torch's BatchNorm1d (tracking running statistics or not): its running statistics set to the grid
    batch's, in eval mode, give the df/dx of the theorem's F.batch_norm with detached batch statistics
    (same seeds, same weights: float64 rounding apart)."""
    theorem = shattering.grid_gradients(**SMALL)
    held = shattering.grid_gradients(**SMALL, make=make)
    np.testing.assert_allclose(held, theorem, rtol=1e-10, atol=1e-12 * np.abs(theorem).max())


def test_plain_autograd_through_training_mode_batchnorm_is_not_that_derivative(monkeypatch):
    """Why the statistics are held fixed: without it df/dx takes in every other point's dependence on x_i."""
    theorem = shattering.grid_gradients(**SMALL)
    monkeypatch.setattr(shattering, "held_fixed", lambda layer, h: (layer(h), "plain autograd"))
    plain = shattering.grid_gradients(**SMALL, make=nn.BatchNorm1d)
    assert np.abs(plain - theorem).max() > 1e-3 * np.abs(theorem).max()


def test_held_fixed_leaves_a_user_module_instance_alone_and_refuses_a_coupled_function():
    bn = nn.BatchNorm1d(16, dtype=torch.float64)
    shattering.grid_gradients(**SMALL, make=bn)
    assert bn.training and not bn.running_mean.any()     # each block used a copy
    with pytest.raises(NotApplicable, match="no running statistics"):
        shattering.grid_gradients(**SMALL, make=lambda width: (lambda x: x - x.mean(0)))

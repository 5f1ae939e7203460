"""The norm kind's standardises (NORM-01/02), rms-definition (NORM-06/07) and searched epsilon-floor
clauses (issues 22 and 24): the built-ins' verdicts, broken variants each clause catches, and
"does not apply" for a layer of the other type (never a pass)."""
import pytest
import torch
from torch import nn

from gradcore.errors import InputError
from gradcore.measure import normalisation as M
from gradcore.verify.check import settings_for
from gradcore.verify.contracts.base import run_clause
from gradcore.verify.contracts.norm import CLAUSES, NormContract

SETTINGS = settings_for("cpu", "ci", 0, None)


def _clause(obj, clause: str, name: str = "layer"):
    """One clause of the norm contract on ``obj`` (the others are not measured: CI time)."""
    subject = NormContract.subject(obj, name, "", SETTINGS)
    return run_clause(next(c for c in CLAUSES if c.id == clause), subject, SETTINGS)


class UnbiasedBatchNorm(nn.Module):
    """BatchNorm dividing by the unbiased 1/(m − 1) batch variance (NORM-01's wrong estimator)."""

    def __init__(self, width: int) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=True) + 1e-5)


class MeanAbsNorm(nn.Module):
    """Scales each sample by its mean |h| instead of its RMS (not the RMSNorm of NORM-06)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / (x.abs().mean(1, keepdim=True) + 1e-6) * self.weight


class HandRMSNorm(MeanAbsNorm):
    """RMSNorm written out: h/√(mean h² + 1e-6)⊙γ."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-6) * self.weight


class BandEpsLayerNorm(nn.Module):
    """LayerNorm whose ε is switched off for variances in (1e-11, 1e-9): spreads ~3e-6 … 3e-5, between
    the two fixed scales (1e-4, 1e-6) the old epsilon-floor clause measured at."""

    def __init__(self, width: int) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, var = x.mean(1, keepdim=True), x.var(1, unbiased=False, keepdim=True)
        eps = torch.where((var > 1e-11) & (var < 1e-9), torch.zeros_like(var), torch.full_like(var, 1e-5))
        return (x - mu) / torch.sqrt(var + eps)


class CentredOnlyEpsLayerNorm(BandEpsLayerNorm):
    """LayerNorm whose ε applies only when the sample's mean is non-zero: a constant 0 batch is 0/0,
    while the old clause's constant 0.5 batch was finite."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, var = x.mean(1, keepdim=True), x.var(1, unbiased=False, keepdim=True)
        return (x - mu) / torch.sqrt(var + 1e-5 * (mu != 0))


@pytest.mark.parametrize("name, standard, rms", [("batch_norm", "holds", "does not apply"),
                                                 ("layer_norm", "holds", "does not apply"),
                                                 ("rms_norm", "does not apply", "holds")])
def test_builtins_hold_the_clause_of_their_type_and_the_other_does_not_apply(name, standard, rms):
    from gradcore import normalisation as norms

    results = {c: _clause(getattr(norms, name), c, name) for c in ("standardises", "rms-definition")}
    assert results["standardises"].verdict == standard and results["rms-definition"].verdict == rms
    for r in (results["standardises"], results["rms-definition"]):
        if r.verdict == "does not apply":
            assert r.note.startswith("does not apply: the layer centres") and not r.unmeasured
        else:
            gap = next(v for k, v in r.constants.items() if "found by search" in k)
            assert gap.kind.value == "search" and gap.value <= (1e-3 if r.clause == "standardises" else 1e-4)


def test_batch_norm_is_standardised_to_the_claims_own_edge():
    """σ_B = 0.1, ε = 1e-5: Var = σ²/(σ² + ε) = 1 − 9.99e-4, inside NORM-02's 1e-3 (the search finds the edge)."""
    r = _clause(nn.BatchNorm1d, "standardises")
    (gap,) = (v for k, v in r.constants.items() if "over the batch found by search" in k)
    assert gap.value == pytest.approx(1 - 0.01 / (0.01 + 1e-5), rel=1e-6)


def test_a_batch_norm_with_the_unbiased_variance_violates_standardises():
    r = _clause(UnbiasedBatchNorm, "standardises")
    assert r.verdict == "violated"
    cex = r.counterexample
    # two rows: the biased output variance is (m − 1)/m = 1/2; the unbiased one is 1 (up to ε)
    assert cex["axis"] == "the batch" and len(cex["input"]) == 2
    assert cex["|biased Var − 1|"] == pytest.approx(0.5, abs=1e-3) and cex["|unbiased Var − 1|"] < 1e-3
    assert "norm_output_moments" in cex["snippet"]


def test_a_layer_norm_with_a_large_eps_violates_standardises():
    """ε = 0.1 at spread 0.1: Var = 0.01/0.11, far from 1 (NORM-02's σ² ≫ ε broken by the layer)."""
    r = _clause(lambda w: nn.LayerNorm(w, eps=0.1), "standardises")
    assert r.verdict == "violated" and r.counterexample["axis"] == "the features"
    assert r.counterexample["|biased Var − 1|"] == pytest.approx(1 - 0.01 / 0.11, rel=1e-3)


def test_rms_definition_holds_for_a_hand_written_rmsnorm_and_catches_a_mean_abs_norm():
    assert _clause(HandRMSNorm, "rms-definition").verdict == "holds"
    bad = _clause(MeanAbsNorm, "rms-definition")
    assert bad.verdict == "violated" and bad.counterexample["relative gap"] > 0.1
    assert "norm_rms_gap" in bad.counterexample["snippet"]
    assert _clause(MeanAbsNorm, "standardises").verdict == "does not apply"


def test_epsilon_floor_search_catches_an_eps_missing_in_a_band_of_scales_the_old_clause_passed():
    r = _clause(BandEpsLayerNorm, "epsilon-floor")
    # the old clause's criterion on its own constants: finite on a constant batch, growth 1e-4 → 1e-6 ≤ 2
    assert r.constants["growth 1e-4 → 1e-6"] <= 2.0
    assert r.verdict == "violated"
    assert r.constants["growth sup(1e-4 … 1e-8) / 1e-4 found by search"] > 100
    assert "norm_jacobian_at" in r.counterexample["snippet"]


def test_epsilon_floor_tries_several_constant_batches():
    r = _clause(CentredOnlyEpsLayerNorm, "epsilon-floor")
    assert r.verdict == "violated" and r.constants["constant input finite"] is False
    assert r.counterexample["input"].startswith("constant 0,")


@pytest.mark.parametrize("call, message", [
    (lambda: M.norm_output_moments(make=nn.LayerNorm, x=[[1.0, 2.0]], axis=2), "axis"),
    (lambda: M.norm_output_moments(make=nn.LayerNorm, x=[[1.0, 2.0]], axis=1, moment="skew"), "moment"),
    (lambda: M.norm_rms_gap(make=nn.RMSNorm, h=[[1.0, 2.0]], reference="ln"), "reference"),
])
def test_bad_arguments_are_one_line_input_errors(call, message):
    with pytest.raises(InputError, match=message):
        call()

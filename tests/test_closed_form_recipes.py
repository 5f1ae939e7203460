"""The recipes that hold gradcore's closed forms to torch (NORM-03, NORM-07) and LIT-13's ρ₁ to an offset:
≈ 0 on the real code, and far from 0 on the planted bugs they exist to catch (issue 24)."""
import numpy as np
import pytest
import torch
from torch import nn

from gradcore import GradcoreInputError
from gradcore import normalisation as norms
from gradcore.measure import normalisation as M
from gradcore.verify.reproduce import run

CLAIM_SIZES = {"batch_norm": (8, 1e-5, 1.5), "layer_norm": (16, 1e-6, None), "rms_norm": (16, 1e-6, None)}


@pytest.mark.parametrize("quantity", M.CLOSED_FORM_QUANTITIES)
@pytest.mark.parametrize("layer", tuple(M.NORM_LAYERS))
def test_closed_forms_match_torch_at_the_claims_sizes(layer, quantity):
    size, eps, gamma = CLAIM_SIZES[layer]
    m = M.closed_form_gap(layer=layer, quantity=quantity, size=size, eps=eps, gamma=gamma, bound=1e-12)
    assert m.kind.value == "rounding" and 0.0 <= m.value <= m.bound


def _ln_without_eps(h, eps, gamma):
    return norms.layernorm_jacobian(h, 0.0, gamma)


def _rms_without_eps(h, eps, gamma):
    return norms.rmsnorm_jacobian(h, 0.0, gamma)


def _bn_without_mean_term(x, eps, gamma):
    return norms.batchnorm_jacobian(x, eps, gamma) + gamma / torch.sqrt(x.var(unbiased=False) + eps) / len(x)


@pytest.mark.parametrize("layer, wrong", [("layer_norm", _ln_without_eps), ("rms_norm", _rms_without_eps),
                                          ("batch_norm", _bn_without_mean_term)])
def test_a_wrong_closed_form_is_far_off(monkeypatch, layer, wrong):
    monkeypatch.setitem(M.NORM_LAYERS, layer, (M.NORM_LAYERS[layer][0], wrong))
    size, eps, gamma = CLAIM_SIZES[layer]
    assert M.closed_form_gap(layer=layer, size=size, eps=eps, gamma=gamma).value > 0.05


def test_the_small_scale_is_where_a_missing_eps_shows(monkeypatch):
    """At scale 1 an ε-less LayerNorm Jacobian is off by only ~ε/σ²; at 1e-3 the spread is ~√ε and it is
    off by tens of percent."""
    monkeypatch.setitem(M.NORM_LAYERS, "layer_norm", (nn.LayerNorm, _ln_without_eps))
    big = M.closed_form_gap(layer="layer_norm", size=16, eps=1e-6, scales=(1.0,)).value
    small = M.closed_form_gap(layer="layer_norm", size=16, eps=1e-6, scales=(1e-3,)).value
    assert big < 1e-5 < 0.1 < small


def test_closed_form_gap_refuses_an_unknown_layer_and_reproduces():
    with pytest.raises(GradcoreInputError, match="layer"):
        M.closed_form_gap(layer="group_norm", size=4, eps=1e-5)
    with pytest.raises(GradcoreInputError, match="quantity"):
        M.closed_form_gap(layer="layer_norm", quantity="hessian", size=4, eps=1e-5)
    m = M.closed_form_gap(layer="rms_norm", size=16, eps=1e-6, bound=1e-12)
    assert run(m.reproduction) == m.value
    assert isinstance(M.NORM_LAYERS["batch_norm"][0](1), nn.BatchNorm1d)


def test_rho1_ignores_an_offset_and_an_uncentred_rho1_does_not(monkeypatch):
    from gradcore.measure import shattering as S
    m = S.correlation_offset_change()
    assert m.kind.value == "rounding" and m.value <= m.bound
    assert run(m.reproduction) == m.value

    def uncentred(g):
        c = np.asarray(g, dtype=float)
        return float((c[:-1] * c[1:]).sum() / (c * c).sum())

    monkeypatch.setattr(S, "lag1_correlation", uncentred)
    assert S.correlation_offset_change().value > 0.5

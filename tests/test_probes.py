"""Unit tests of gradcore.probes against autograd, closed forms and brute-force scans."""
import math

import pytest
import torch
from torch import nn

from gradcore import GradcoreInputError
from gradcore import chains as C
from gradcore import probes as P


def _scaled_orthogonal(n, gain, dtype=torch.float64, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    lin = nn.Linear(n, n, bias=False, dtype=dtype, device=device)
    with torch.no_grad():
        lin.weight.copy_(gain * q)
    return lin


def test_norms_match_explicit_backprop(device):
    torch.manual_seed(0)
    m = C.feedforward(5, 7, "tanh", "xavier_normal", dtype=torch.float64, device=device)
    x = torch.randn(3, 7, dtype=torch.float64, device=device)
    norms = P.layer_gradient_norms(C.blocks(m), x)
    # Reference: backpropagate ones through Jᵀ = Wᵀ diag(tanh'(z)) by hand.
    zs = C.pre_activations(m, x)
    g = torch.ones_like(zs[-1])
    ref = [g.norm()]
    for lin, z in zip(reversed(C.linears(m)), reversed(zs)):
        g = (g * (1 - torch.tanh(z) ** 2)) @ lin.weight
        ref.append(g.norm())
    torch.testing.assert_close(norms, torch.stack(ref[::-1]).double())


def test_custom_loss(device):
    lin = _scaled_orthogonal(4, 2.0, device=device)
    x = torch.ones(1, 4, dtype=torch.float64, device=device)
    norms = P.layer_gradient_norms([lin], x, loss=lambda out: 0.5 * (out**2).sum())
    out = lin(x).detach()
    assert float(norms[1]) == pytest.approx(float(out.norm()))
    assert float(norms[0]) == pytest.approx(2.0 * float(out.norm()))


def test_transfer_factor_closed_form():
    norms = torch.tensor([0.3**k for k in range(10, -1, -1)], dtype=torch.float64) * 7.0
    fit = P.transfer_factor(norms)
    assert fit.geometric == pytest.approx(0.3) and fit.fitted == pytest.approx(0.3) and fit.r2 == pytest.approx(1.0)


def test_transfer_factor_of_orthogonal_chain(device):
    layers = [_scaled_orthogonal(6, 1.5, device=device, seed=s) for s in range(8)]
    fit = P.transfer_factor(P.layer_gradient_norms(layers, torch.randn(2, 6, dtype=torch.float64, device=device)))
    assert fit.geometric == pytest.approx(1.5, rel=1e-10)


def _brute(make_layer, x, dtype, max_depth, stop):
    layers = []
    for d in range(1, max_depth + 1):
        layers.append(make_layer(d - 1).to(dtype))
        if stop(P.layer_gradients(layers, x.to(dtype))[0]):
            return d
    return None


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_overflow_depth_matches_scan_and_prediction(dtype, device):
    lin = _scaled_orthogonal(8, 2.0, dtype=dtype, device=device)
    x = torch.randn(1, 8, device=device)
    d = P.overflow_depth(lambda l: lin, x, dtype, 200)
    assert d == _brute(lambda l: lin, x, dtype, 200, lambda g: not bool(torch.isfinite(g).all()))
    # ‖g_d‖ = 2^d √8 exactly; the largest entry overflows within a few layers of log2(max).
    assert abs(d - math.log2(torch.finfo(dtype).max)) <= 3


def test_underflow_depth(device):
    lin = _scaled_orthogonal(4, 0.5, dtype=torch.float32, device=device)
    x = torch.randn(1, 4, device=device)
    d = P.underflow_depth(lambda l: lin, x, "float32", 300)
    assert d == _brute(lambda l: lin, x, torch.float32, 300, lambda g: not bool(g.any()))
    assert abs(d - 149) <= 4  # smallest float32 subnormal is 2^-149
    assert P.underflow_depth(lambda l: lin, x, torch.float64, 50) is None


def test_bad_inputs():
    x = torch.ones(1, 2)
    with pytest.raises(GradcoreInputError, match="model_layers: expected at least one"):
        P.layer_gradient_norms([], x)
    with pytest.raises(GradcoreInputError, match=r"model_layers\[0\]: expected a callable"):
        P.layer_gradient_norms([3], x)
    with pytest.raises(GradcoreInputError, match="x: contains NaN"):
        P.layer_gradient_norms([nn.Identity()], torch.tensor([float("inf")]))
    with pytest.raises(GradcoreInputError, match="norms: must be positive"):
        P.transfer_factor(torch.tensor([1.0, 0.0]))
    with pytest.raises(GradcoreInputError, match="norms: expected at least two"):
        P.transfer_factor(torch.tensor([1.0]))
    with pytest.raises(GradcoreInputError, match="max_depth: must be >= 1"):
        P.overflow_depth(lambda l: nn.Identity(), x, "float16", 0)
    with pytest.raises(GradcoreInputError, match="dtype: unknown value 'int8'"):
        P.underflow_depth(lambda l: nn.Identity(), x, "int8", 3)
    with pytest.raises(GradcoreInputError, match="make_layer: expected a callable"):
        P.overflow_depth(None, x, "float32", 3)

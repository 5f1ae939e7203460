"""Unit tests of gradcore.conv against dense Jacobians and torch's own Conv2d."""
import math

import pytest
import torch
from torch import nn

from gradcore import GradcoreInputError
from gradcore.conv import (conv_gains, conv_rms_gain, conv_singular_values, conv_spectral_norm, frequency_response,
                           make_conv, module_response, relu_stack)
from gradcore.jacobian import jacobian
from gradcore.spectral import operator_spectral_norm


def _dense_svals(module: nn.Module, c: int, n: int, m: int, device: str) -> torch.Tensor:
    x = torch.zeros(1, c, n, m, dtype=torch.float64, device=device)
    return torch.linalg.svdvals(jacobian(module, x)).detach()


@pytest.mark.parametrize("kind", ["standard", "depthwise", "pointwise", "separable"])
def test_fft_singular_values_match_dense_jacobian(kind, device):
    g = torch.Generator().manual_seed(3)
    conv = make_conv(kind, 3, 3, generator=g, dtype=torch.float64).to(device)
    n, m = 5, 6  # non-square grid catches an n/m swap
    fft = conv_singular_values(conv, n, m)
    dense = _dense_svals(conv, 3, n, m, device)
    torch.testing.assert_close(fft, dense, rtol=1e-10, atol=1e-10)
    assert fft.device.type == device
    assert conv_spectral_norm(conv, n, m) == pytest.approx(float(dense[0]), rel=1e-10)
    rms = float(dense.square().mean().sqrt())
    assert conv_rms_gain(conv, n, m) == pytest.approx(rms, rel=1e-10)


def test_weight_and_groups_interface_matches_module(device):
    conv = make_conv("depthwise", 4, 3, dtype=torch.float64).to(device)
    by_weight = conv_singular_values(conv.weight.detach(), 6, 6, groups=4)
    torch.testing.assert_close(by_weight, conv_singular_values(conv, 6, 6))
    # groups=2 (neither dense nor depthwise) against the dense Jacobian
    g2 = nn.Conv2d(4, 4, 3, padding=1, groups=2, bias=False, padding_mode="circular").double().to(device)
    torch.testing.assert_close(conv_singular_values(g2, 5, 5), _dense_svals(g2, 4, 5, 5, device))


def test_response_of_composition_is_product(device):
    sep = make_conv("separable", 3, 3, dtype=torch.float64).to(device)
    r = module_response(sep, 4, 4)
    r_dw = frequency_response(sep[0].weight.detach(), 4, 4, groups=3)
    r_pw = frequency_response(sep[1].weight.detach(), 4, 4)
    torch.testing.assert_close(r, r_pw @ r_dw)


def test_factories_he_init_and_layout():
    g = torch.Generator().manual_seed(0)
    conv = make_conv("standard", 64, 3, generator=g)
    assert conv.padding_mode == "circular" and conv.padding == (1, 1) and conv.bias is None
    assert float(conv.weight.detach().var()) == pytest.approx(2 / (64 * 9), rel=0.05)  # He fan_in
    dw = make_conv("depthwise", 64, 5, padding_mode="zeros", generator=g)
    assert dw.groups == 64 and dw.padding_mode == "zeros"
    assert float(dw.weight.detach().var()) == pytest.approx(2 / 25, rel=0.1)
    sep = make_conv("separable", 8, 3)
    assert isinstance(sep, nn.Sequential) and sep[0].groups == 8 and sep[1].kernel_size == (1, 1)
    x = torch.randn(2, 8, 7, 7)
    assert sep(x).shape == x.shape


def test_same_generator_seed_gives_same_weights():
    a = make_conv("standard", 4, 3, generator=torch.Generator().manual_seed(5))
    b = make_conv("standard", 4, 3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.weight, b.weight)


def test_zero_padding_matrix_free_norm_matches_dense(device):
    conv = make_conv("standard", 2, 3, padding_mode="zeros", dtype=torch.float64).to(device)
    x = torch.zeros(1, 2, 5, 5, dtype=torch.float64, device=device)
    dense = float(torch.linalg.matrix_norm(jacobian(conv, x).detach(), ord=2))
    assert operator_spectral_norm(conv, x, iters=2000, tol=1e-12) == pytest.approx(dense, rel=1e-6)
    with pytest.raises(GradcoreInputError, match="circular"):
        conv_singular_values(conv, 5, 5)


def test_relu_stack_inner_relu():
    blocks = [make_conv("separable", 4, 3) for _ in range(2)]
    assert len(relu_stack(blocks)) == 4
    assert len(relu_stack(blocks, inner_relu=True)) == 8


def test_orthogonal_pointwise_has_unit_singular_values():
    conv = make_conv("pointwise", 4, dtype=torch.float64)
    with torch.no_grad():
        nn.init.orthogonal_(conv.weight)
    s = conv_singular_values(conv, 3, 3)
    torch.testing.assert_close(s, torch.ones_like(s))
    assert conv_rms_gain(conv, 3, 3) == pytest.approx(1.0)
    assert math.isclose(conv_spectral_norm(conv, 3, 3), 1.0, rel_tol=1e-12)


@pytest.mark.parametrize("call, match", [
    (lambda: make_conv("dilated", 4), "kind"),
    (lambda: make_conv("standard", 0), "channels"),
    (lambda: make_conv("standard", 4, 4), "kernel_size"),
    (lambda: make_conv("standard", 4, 3, padding_mode="reflect"), "padding_mode"),
    (lambda: frequency_response(torch.randn(4, 4, 3), 5, 5), "weight"),
    (lambda: frequency_response(torch.full((2, 2, 3, 3), math.nan), 5, 5), "weight"),
    (lambda: frequency_response(torch.randn(2, 2, 3, 3), 2, 5), "n"),
    (lambda: frequency_response(torch.randn(3, 1, 3, 3), 5, 5, groups=2), "groups"),
    (lambda: conv_singular_values(nn.Sequential(), 4, 4), "module"),
    (lambda: conv_singular_values(nn.Sequential(nn.ReLU()), 4, 4), "module"),
    (lambda: relu_stack([]), "blocks"),
])
def test_bad_inputs_raise(call, match):
    with pytest.raises(GradcoreInputError, match=match):
        call()


def test_per_frequency_iteration_on_the_device(device):
    # 20 channels: past the side where every block is solved by eigvalsh, so the float32 sieve runs
    conv = make_conv("standard", 20, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64).to(device)
    exact = conv_gains(conv, 10, 12)[0]   # eigvalsh of every block's Gram matrix
    assert conv_spectral_norm(conv, 10, 12) == pytest.approx(exact, rel=1e-9)

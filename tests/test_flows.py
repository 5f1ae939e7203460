"""Unit tests for gradcore.flows."""
import math

import pytest
import torch
from torch import nn

from gradcore import GradcoreInputError
from gradcore.flows import (AdditiveCoupling, VolumePreservingLinear, flow_stack, log_abs_det_jacobian,
                            volume_preserving_singular_values)
from gradcore.jacobian import jacobian

F64 = torch.float64


@pytest.mark.parametrize("kappa", [1.0, 9.0, 1e4])
def test_singular_values_product_one_and_condition(kappa):
    s = volume_preserving_singular_values(7, kappa)
    assert float(s.log().sum()) == pytest.approx(0.0, abs=1e-12)
    assert float(s[0] / s[-1]) == pytest.approx(kappa, rel=1e-12)


@pytest.mark.parametrize("kappa", [1.0, 25.0])
def test_linear_layer_spectrum_and_determinant(kappa, device):
    gen = torch.Generator().manual_seed(0)
    layer = VolumePreservingLinear(6, kappa, generator=gen, dtype=F64, device=device)
    sv = torch.linalg.svdvals(layer.weight)
    torch.testing.assert_close(sv, volume_preserving_singular_values(6, kappa, device=device))
    assert abs(float(torch.linalg.det(layer.weight))) == pytest.approx(1.0, rel=1e-10)
    x = torch.randn(6, dtype=F64, device=device)
    torch.testing.assert_close(layer(x), layer.weight @ x)
    assert log_abs_det_jacobian(layer, x) == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("flip", [False, True])
def test_coupling_jacobian_structure_det_and_inverse(flip, device):
    torch.manual_seed(0)
    layer = AdditiveCoupling(5, scale=3.0, flip=flip, dtype=F64, device=device)
    x = torch.randn(5, dtype=F64, device=device)
    jac = jacobian(layer, x).detach()
    torch.testing.assert_close(torch.diagonal(jac), torch.ones(5, dtype=F64, device=device))
    assert log_abs_det_jacobian(layer, x) == 0.0
    # the moved half depends only on the conditioning half: the Jacobian is block triangular
    cond = slice(2, 5) if flip else slice(0, 2)
    torch.testing.assert_close(jac[cond, :], torch.eye(5, dtype=F64, device=device)[cond, :])
    torch.testing.assert_close(layer.inverse(layer(x)), x)


def test_flow_stack_composes_and_logdet_is_additive(device):
    gen = torch.Generator().manual_seed(1)
    a = VolumePreservingLinear(4, 4.0, generator=gen, dtype=F64, device=device)
    b = VolumePreservingLinear(4, 4.0, generator=gen, dtype=F64, device=device)
    x = torch.randn(4, dtype=F64, device=device)
    torch.testing.assert_close(flow_stack([a, b])(x), b.weight @ (a.weight @ x))
    assert log_abs_det_jacobian(flow_stack([a, b]), x) == pytest.approx(0.0, abs=1e-10)
    scaled = nn.Linear(4, 4, bias=False).to(device=device, dtype=F64)
    with torch.no_grad():
        scaled.weight.copy_(2.0 * torch.eye(4, dtype=F64))
    assert log_abs_det_jacobian(scaled, x) == pytest.approx(4 * math.log(2.0), rel=1e-12)


def test_bad_inputs_raise():
    with pytest.raises(GradcoreInputError, match="kappa"):
        volume_preserving_singular_values(4, 0.5)
    with pytest.raises(GradcoreInputError, match="kappa"):
        VolumePreservingLinear(4, float("inf"))
    with pytest.raises(GradcoreInputError, match="dim"):
        VolumePreservingLinear(1, 2.0)
    with pytest.raises(GradcoreInputError, match="dim"):
        AdditiveCoupling(1)
    with pytest.raises(GradcoreInputError, match="scale"):
        AdditiveCoupling(4, scale=-1.0)
    with pytest.raises(GradcoreInputError, match="layers"):
        flow_stack([])
    with pytest.raises(GradcoreInputError, match="x"):
        log_abs_det_jacobian(nn.Identity(), torch.zeros(2, 2))
    with pytest.raises(GradcoreInputError, match="f"):
        log_abs_det_jacobian(nn.Linear(3, 2), torch.zeros(3))

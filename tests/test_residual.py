"""Unit tests for gradcore.residual."""
import math

import pytest
import torch
from torch import nn

from gradcore import GradcoreInputError
from gradcore import residual as res
from gradcore.residual import (Residual, ScaledResidual, block_jacobian, branch_lipschitz_bound,
                               mlp_branch, residual_stack, safe_scaling)

F64 = torch.float64


def _linear(w: torch.Tensor) -> nn.Linear:
    lin = nn.Linear(w.shape[1], w.shape[0], bias=False).to(device=w.device, dtype=w.dtype)
    with torch.no_grad():
        lin.weight.copy_(w)
    return lin


def test_residual_forward_and_jacobian_closed_form(device):
    w = torch.randn(5, 5, dtype=F64, device=device)
    x = torch.randn(5, dtype=F64, device=device)
    block = Residual(_linear(w))
    torch.testing.assert_close(block(x), x + w @ x)
    torch.testing.assert_close(block_jacobian(block, x), torch.eye(5, dtype=F64, device=device) + w)


def test_scaled_residual_jacobian_closed_form(device):
    w = torch.randn(4, 4, dtype=F64, device=device)
    x = torch.randn(4, dtype=F64, device=device)
    block = ScaledResidual(_linear(w), alpha=0.3, beta=0.2)
    torch.testing.assert_close(block(x), 0.8 * x + 0.3 * (w @ x))
    torch.testing.assert_close(block_jacobian(block, x), 0.8 * torch.eye(4, dtype=F64, device=device) + 0.3 * w)


def test_residual_stack_matches_manual_composition(device):
    torch.manual_seed(0)
    blocks = [Residual(mlp_branch(6, dtype=F64, device=device)) for _ in range(3)]
    x = torch.randn(2, 6, dtype=F64, device=device)
    h = x
    for b in blocks:
        h = h + b.f(h)
    torch.testing.assert_close(residual_stack(blocks)(x), h)


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "identity"])
def test_mlp_branch_shape_and_init_scale(activation, device):
    torch.manual_seed(0)
    f = mlp_branch(64, 128, activation=activation, gain=2.0, dtype=F64, device=device)
    assert f(torch.randn(3, 64, dtype=F64, device=device)).shape == (3, 64)
    assert f[0].weight.device.type == torch.device(device).type and f[0].weight.dtype == F64
    # N(0, gain²/fan_in): empirical std within 10%
    assert abs(float(f[0].weight.detach().std()) - 2.0 / math.sqrt(64)) < 0.1 * 2.0 / math.sqrt(64)
    assert abs(float(f[2].weight.detach().std()) - 2.0 / math.sqrt(128)) < 0.1 * 2.0 / math.sqrt(128)


def test_mlp_branch_same_weights_on_every_device(device):
    torch.manual_seed(3)
    a = mlp_branch(5, dtype=F64, device=device)
    torch.manual_seed(3)
    b = mlp_branch(5, dtype=F64)
    torch.testing.assert_close(a[0].weight.cpu(), b[0].weight)


def test_branch_lipschitz_bound_is_product_of_norms_and_bounds_jacobian(device):
    torch.manual_seed(1)
    f = mlp_branch(6, activation="sigmoid", gain=1.5, dtype=F64, device=device)
    n1 = torch.linalg.matrix_norm(f[0].weight.detach(), ord=2)
    n2 = torch.linalg.matrix_norm(f[2].weight.detach(), ord=2)
    bound = branch_lipschitz_bound(f)
    assert bound == pytest.approx(float(n1 * n2 * 0.25), rel=1e-12)
    for _ in range(10):
        x = torch.randn(6, dtype=F64, device=device)
        jac = block_jacobian(Residual(f), x) - torch.eye(6, dtype=F64, device=device)
        assert float(torch.linalg.matrix_norm(jac, ord=2)) <= bound + 1e-12


@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0, 1.7, 2.0])
def test_safe_scaling_meets_the_bound(beta, device):
    lip = 2.5
    alpha = safe_scaling(lip, beta)
    assert abs(1 - beta) + alpha * lip == pytest.approx(1.0)
    torch.manual_seed(2)
    f = mlp_branch(5, gain=2.0, dtype=F64, device=device)
    a = safe_scaling(branch_lipschitz_bound(f), beta)
    jac = block_jacobian(ScaledResidual(f, a, beta), torch.randn(5, dtype=F64, device=device))
    assert float(torch.linalg.matrix_norm(jac, ord=2)) <= 1 + 1e-12


def test_bad_inputs_raise():
    with pytest.raises(GradcoreInputError, match="f:"):
        Residual(lambda x: x)
    with pytest.raises(GradcoreInputError, match="alpha"):
        ScaledResidual(nn.Identity(), float("nan"), 0.0)
    with pytest.raises(GradcoreInputError, match="blocks"):
        residual_stack([])
    with pytest.raises(GradcoreInputError, match="lipschitz_f"):
        safe_scaling(0.0, 0.5)
    with pytest.raises(GradcoreInputError, match="beta"):
        safe_scaling(1.0, 2.5)
    with pytest.raises(GradcoreInputError, match="beta"):
        safe_scaling(1.0, -0.1)
    with pytest.raises(GradcoreInputError, match="width"):
        mlp_branch(0)
    with pytest.raises(GradcoreInputError, match="activation"):
        mlp_branch(4, activation="swish")
    with pytest.raises(GradcoreInputError, match="x"):
        block_jacobian(Residual(nn.Identity()), torch.tensor([1.0, float("inf")]))
    with pytest.raises(GradcoreInputError, match="x"):
        block_jacobian(Residual(nn.Identity()), torch.zeros(2, 2))
    with pytest.raises(GradcoreInputError, match=r"branch\[0\]"):
        branch_lipschitz_bound(nn.Sequential(nn.GELU()))


def test_fixup_scale_is_L_to_the_minus_one_over_2m_minus_2():
    assert res.fixup_scale(16, 2) == pytest.approx(1 / 4) and res.fixup_scale(16, 3) == pytest.approx(1 / 2)
    with pytest.raises(GradcoreInputError, match="layers"):
        res.fixup_scale(16, 1)


def test_relu_branch_scales_he_init_and_zeroes_the_last_layer():
    torch.manual_seed(0)
    b = res.relu_branch(256, 3, scale=0.5)
    linears = [m for m in b if isinstance(m, nn.Linear)]
    assert len(linears) == 3 and sum(isinstance(m, nn.ReLU) for m in b) == 2
    for w in (m.weight for m in linears):   # He normal std √(2/n) times the scale
        assert w.std().item() == pytest.approx(0.5 * (2 / 256) ** 0.5, rel=0.03)
    last = [m for m in res.relu_branch(8, 2, scale=0.5, zero_last=True) if isinstance(m, nn.Linear)][-1]
    assert last.weight.abs().max() == 0


def test_sgd_function_change_is_the_first_order_change_of_a_real_sgd_step():
    """LIT-11's Δf/η = ‖∇F‖² against an actual SGD step with a small η on the same network."""
    from gradcore.measure import residual as mres
    from gradcore.measure.seeding import seeded
    predicted = mres._sgd_function_change("fixup-nonzero-last", 8, 2, 16, 4, 0)
    with seeded(0):
        net = res.residual_stack(res.Residual(mres._fixup_branch("fixup-nonzero-last", 8, 2, 16)) for _ in range(8))
        x, readout = torch.randn(4, 16, dtype=torch.float64), torch.randn(16, dtype=torch.float64) / 4
    eta = 1e-6
    before = (net(x) @ readout).mean()
    opt = torch.optim.SGD(net.parameters(), lr=eta)
    before.backward()
    opt.step()
    with torch.no_grad():
        after = (net(x) @ readout).mean()
    assert float(before.detach() - after) / eta == pytest.approx(predicted, rel=1e-4)

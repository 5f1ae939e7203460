"""The residual kind's chain-rule clauses (issue 22: RES-01…RES-04, STAB-02…STAB-04): each block's
Jacobian is taken by central differences of its values, so a block whose backward pass is not the
derivative of its forward map (a straight-through estimator) is caught, and one whose map is
differentiated faithfully holds."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from gradcore.measure import residual as M
from gradcore.verify.contracts import residual as R
from gradcore.verify.contracts.base import run_clause
from gradcore.verify.check import settings_for


class _SignSTE(torch.autograd.Function):
    """sign(z) forward; the straight-through gradient 1_{|z| ≤ 1} backward (Hubara et al. 2016)."""

    @staticmethod
    def forward(ctx, z):
        ctx.save_for_backward(z)
        return torch.sign(z)

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        return grad * (z.abs() <= 1).to(grad.dtype)


class BinaryResidual(nn.Module):
    """x + W₂ sign(W₁x) with binarised activations trained by the straight-through estimator: the map's
    derivative is I (sign is flat), the gradient autograd propagates is I + W₂ diag(1_{|W₁x| ≤ 1}) W₁."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.w1, self.w2 = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x):
        return x + self.w2(_SignSTE.apply(self.w1(x))) / 4


class DetachedSTE(nn.Module):
    """The same estimator written with detach (z + (sign z − z).detach()): forward mode would agree with
    the backward pass here, only the map's values show that sign is flat."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.w1, self.w2 = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x):
        z = self.w1(x)
        return x + self.w2(z + (torch.sign(z) - z).detach()) / 4


class DropoutResidual(nn.Module):
    """x + Linear(Dropout(tanh(Linear x))) in training mode: a fresh mask on every call."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Dropout(0.3), nn.Linear(width, width))

    def forward(self, x):
        return x + self.f(x)


SETTINGS = settings_for(profile="ci")
CLAUSES = {c.id: c for c in R.CLAUSES}


def _run(obj, clause: str):
    subject = R.ResidualContract.subject(obj, type(obj).__name__, "", SETTINGS)
    return run_clause(CLAUSES[clause], subject, SETTINGS)


@pytest.mark.parametrize("block", [BinaryResidual, DetachedSTE])
def test_a_straight_through_block_violates_block_derivative_and_chain_rule(block):
    derivative, chain = _run(block, "block-derivative"), _run(block, "chain-rule")
    assert derivative.verdict == chain.verdict == "violated"
    err = derivative.constants["max|autograd ∂y/∂x − (I + ∂F/∂x)| / max|I + ∂F/∂x|"]
    assert err.value > 0.01 > 1e3 * err.bound      # far beyond a difference quotient's error
    assert chain.constants["max_l ‖g_{l+1} J_l − g_l‖/‖g_l‖ (eq 3.3.8)"].value > 0.01
    assert "snippet" in derivative.counterexample and "user_chain_rule_error" in chain.counterexample["snippet"]
    # the differences say what the map does: sign is flat, so each block's Jacobian is I
    torch.manual_seed(0)
    b = block(4).double()
    x = torch.randn(2 * 4, dtype=torch.float64)
    jac = M.difference_jacobian(lambda t: b(t.reshape(2, 4)).reshape(-1), x)
    assert torch.allclose(jac, torch.eye(8, dtype=torch.float64), atol=1e-9)


@pytest.mark.parametrize("name", list(R.objects()))
def test_the_built_ins_hold_with_difference_sized_errors(name):
    obj = R.objects()[name]
    derivative, chain = _run(obj, "block-derivative"), _run(obj, "chain-rule")
    assert derivative.verdict == chain.verdict == "holds"
    for m in (*derivative.constants.values(), *chain.constants.values()):
        if getattr(m, "bound", None) is not None:
            assert m.value <= 1e-8       # central differences in float64: ~1e-10
    # the written order of eq 3.3.9 is off by O(1) for non-commuting block Jacobians (RES-04 refuted)
    assert chain.constants["‖g_D J_1⋯J_D − g_0‖/‖g_0‖ (eq 3.3.9 as written)"].value > 0.01


def test_a_stochastic_block_is_differentiated_with_its_noise_fixed():
    """Dropout draws a mask per call: the clauses differentiate the map with one mask, as backward does."""
    assert _run(DropoutResidual, "block-derivative").verdict == "holds"
    assert _run(DropoutResidual, "chain-rule").verdict == "holds"


def test_jacobian_product_reports_alignment_and_catches_a_backward_above_the_bound():
    safe = _run(R.objects()["ScaledResidual(safe α, β=0.5)"], "jacobian-product")
    assert safe.verdict == "holds" and not safe.gate
    ratio = safe.constants["‖J_D⋯J_1‖₂ / Π‖J_l‖₂"].value
    assert 0 < ratio <= 1 + 1e-6
    # every block shrinks (σ_max < 1), so the stack does whatever the blocks' conditioning (STAB-04)
    assert safe.constants["max_l ‖J_l‖₂"].value < 1 and safe.constants["max_l κ(J_l)"].value > 1
    assert _run(BinaryResidual, "jacobian-product").verdict == "violated"   # backward gain > Π‖J_l‖₂ = 1


def test_bad_quantity_is_one_line_input_error():
    from gradcore.errors import InputError
    from gradcore.measure import Given

    with pytest.raises(InputError, match="quantity"):
        M.user_chain_rule_error(make=Given(BinaryResidual, "make"), quantity="sideways", width=4, depth=2,
                                seed=0, x_seed=1)


def fixup_block(width: int, depth: int = 1):
    """Fixup (Zhang, Dauphin & Ma 2019): a two-layer He-init ReLU branch scaled by L^(−1/2), last layer 0;
    the factory takes the stack's depth."""
    from gradcore.residual import Residual, fixup_scale, relu_branch

    return Residual(relu_branch(width, 2, scale=fixup_scale(depth, 2), zero_last=True))


def he_block(width: int):
    from gradcore.residual import Residual, relu_branch

    return Residual(relu_branch(width, 2, scale=1.0, zero_last=False))


def test_sgd_depth_holds_for_fixup_told_the_depth_and_not_for_unscaled_he_blocks():
    fixup = _run(fixup_block, "sgd-depth")
    p = fixup.constants["exponent p of Δf/η ∝ L^p"]
    assert fixup.verdict == "holds" and -0.2 <= p.interval[0] <= p.interval[1] <= 0.2
    he = _run(he_block, "sgd-depth")
    assert he.verdict == "violated" and he.constants["exponent p of Δf/η ∝ L^p"].interval[0] > 1
    assert "user_sgd_change_slope" in he.counterexample["snippet"]


def test_sgd_depth_of_a_parameter_free_block_is_unmeasured_with_the_reason():
    res = _run(lambda width: nn.Identity(), "sgd-depth")
    assert res.verdict == "unmeasured" and "no trainable parameters" in res.note

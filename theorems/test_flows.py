"""Normalizing-flow claims: determinant vs spectral norm (catalogue: gradcore/claims/flows.toml)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gradcore.flows import AdditiveCoupling, VolumePreservingLinear, flow_stack, log_abs_det_jacobian
from gradcore.jacobian import jacobian, jacobian_operator
from gradcore.stats import per_seed_slope_ci

F64 = torch.float64
DIM, SEEDS, KS = 16, range(4), [1, 4, 8, 16, 32]


def _linear_stack(kappa: float, depth: int, seed: int, device: str, dtype=F64) -> torch.nn.Sequential:
    gen = torch.Generator().manual_seed(1000 * seed + depth)
    return flow_stack(VolumePreservingLinear(DIM, kappa, generator=gen, dtype=dtype, device=device)
                      for _ in range(depth))


def _coupling_stack(scale: float, depth: int, seed: int, device: str) -> torch.nn.Sequential:
    torch.manual_seed(1000 * seed + depth)
    return flow_stack(AdditiveCoupling(DIM, scale=scale, flip=bool(i % 2), dtype=F64, device=device)
                      for i in range(depth))


def _gains(make, device: str) -> np.ndarray:
    """‖(∂f/∂x)ᵀ g‖/‖g‖ for seeds (rows) and the first K layers of one stack (columns)."""
    out = np.zeros((len(SEEDS), len(KS)))
    for i, seed in enumerate(SEEDS):
        gen = torch.Generator().manual_seed(seed)
        x, g = torch.randn(DIM, generator=gen, dtype=F64).to(device), torch.randn(DIM, generator=gen, dtype=F64).to(device)
        stack = make(KS[-1], seed)
        for j, depth in enumerate(KS):
            out[i, j] = float(jacobian_operator(stack[:depth], x).rmatvec(g).detach().norm() / g.norm())
    return out


@pytest.mark.claim("FLOW-01")
def test_volume_preserving_can_have_large_spectral_norm(claim, device):
    """002 §在现代生成模型中的体现: "即使一个变换是保体积的（即行列式为1）… 其谱范数也可能远大于1"."""
    x = torch.randn(DIM, dtype=F64, device=device)
    for kappa in (100.0, 1e4):
        layer = VolumePreservingLinear(DIM, kappa, generator=torch.Generator().manual_seed(0), dtype=F64, device=device)
        jac = jacobian(layer, x).detach()
        claim.check(f"log|det J|, W = U diag(s) Vᵀ, κ = {kappa:g}", claimed=0.0,
                    measured=log_abs_det_jacobian(layer, x), atol=1e-10, dtype=F64)
        claim.check(f"σ_max(J) > 1 at det 1, κ = {kappa:g} (expected √κ = {math.sqrt(kappa):g})", claimed=1.0,
                    measured=float(torch.linalg.matrix_norm(jac, ord=2)), relation=">", dtype=F64)
    torch.manual_seed(0)
    coupling = AdditiveCoupling(DIM, scale=4.0, dtype=F64, device=device)
    jac = jacobian(coupling, x).detach()
    claim.check("log|det J|, NICE additive coupling, shear scale 4", claimed=0.0,
                measured=log_abs_det_jacobian(coupling, x), atol=1e-12, dtype=F64)
    claim.check("σ_max(J) > 1 at det 1, NICE additive coupling, shear scale 4", claimed=1.0,
                measured=float(torch.linalg.matrix_norm(jac, ord=2)), relation=">", dtype=F64)


@pytest.mark.claim("FLOW-02")
def test_volume_preserving_stack_explodes(claim, device):
    """002 §在现代生成模型中的体现: "其谱范数也可能远大于1，从而在反向传播中引发梯度爆炸"."""
    # as a flow computes it: Σ_k log|det J_k| along the forward pass (the product's own
    # slogdet is ill-conditioned at κ_total ≈ 1e14 and loses ~0.3 in float64)
    h, logdet = torch.randn(DIM, dtype=F64, device=device), 0.0
    for layer in _linear_stack(16.0, KS[-1], 0, device):
        logdet += log_abs_det_jacobian(layer, h)
        h = layer(h).detach()
    claim.check(f"Σ_k log|det J_k| over the {KS[-1]}-layer stack, κ = 16", claimed=0.0,
                measured=logdet, atol=1e-9, dtype=F64)
    rates = {}
    for label, make in (("linear W = U diag(s) Vᵀ, κ = 16", lambda k, s: _linear_stack(16.0, k, s, device)),
                        ("NICE coupling, shear scale 2", lambda k, s: _coupling_stack(2.0, k, s, device))):
        gains = _gains(make, device)
        rate = rates[label] = per_seed_slope_ci(KS, gains)
        claim.check(f"per-layer log-growth of the input gradient, {label}", claimed=0.0, measured=rate[0],
                    relation=">", interval=rate[1:], dtype=F64)
        claim.note(f"{label}: gradient ×{math.exp(rate[0]):.3f} per layer, ×{np.exp(np.log(gains[:, -1]).mean()):.3g} after {KS[-1]}")
        claim.curve("flow-gradient-vs-K", f"{label} (d = {DIM}, {len(SEEDS)} seeds)", KS,
                    np.exp(np.log(gains).mean(0)), xlabel="flow layers K", ylabel="‖∂L/∂x‖/‖∂L/∂y‖", logy=True)
    claim.check("per-layer growth ≤ log σ_max = ½ log κ (linear, κ = 16)", claimed=0.5 * math.log(16.0),
                measured=rates["linear W = U diag(s) Vᵀ, κ = 16"][0], relation="<=", dtype=F64)


@pytest.mark.claim("FLOW-03")
def test_singular_value_control_prevents_explosion(claim, device):
    """002 §在现代生成模型中的体现: "必须对雅可比矩阵的奇异值进行控制，而不仅仅是其行列式"."""
    for dtype, tol in ((torch.float32, 1e-5), (F64, 1e-12)):
        net = _linear_stack(1.0, 64, 0, device, dtype)
        jac = jacobian(net, torch.randn(DIM, dtype=dtype, device=device)).detach()
        sv = torch.linalg.svdvals(jac)
        claim.check("max |σ_i − 1| of a 64-layer orthogonal (κ = 1) stack", claimed=0.0,
                    measured=float((sv - 1).abs().max()), atol=tol, dtype=dtype)
    rates = []
    for kappa in (1.0, 1.5, 4.0, 16.0):
        rate = per_seed_slope_ci(KS, _gains(lambda k, s: _linear_stack(kappa, k, s, device), device))
        rates.append(rate[0])
        claim.check(f"per-layer growth ≤ log σ_max = ½ log κ, κ = {kappa:g} (det = 1 throughout)",
                    claimed=0.5 * math.log(kappa), measured=rate[0], relation="<=", atol=1e-9, dtype=F64)
    claim.note("per-layer log-growth vs κ: " + ", ".join(f"κ={k:g}: {r:+.4f}" for k, r in zip((1, 1.5, 4, 16), rates)))
    claim.curve("flow-growth-vs-kappa", f"linear volume-preserving stacks (d = {DIM}, {len(SEEDS)} seeds)",
                [1.0, 1.5, 4.0, 16.0], rates, xlabel="condition number κ per layer",
                ylabel="log-growth per layer", logx=True)

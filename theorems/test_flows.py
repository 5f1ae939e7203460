"""Normalizing-flow claims: determinant vs spectral norm (catalogue: gradcore/claims/flows.toml).

Measured by the recipes of gradcore.measure.flows (layers of gradcore.flows, seeded).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from gradcore.measure import flows as M


@pytest.mark.claim("FLOW-01")
def test_volume_preserving_can_have_large_spectral_norm(claim, device):
    """FLOW-01 (002 §在现代生成模型中的体现): det 1 does not bound the spectral norm."""
    for kappa in (100.0, 1e4):
        claim.compare(f"log|det J|, W = U diag(s) Vᵀ, κ = {kappa:g}", claimed=0.0,
                      measured=M.log_det(layer="linear", param=kappa, device=device), atol=1e-10)
        claim.compare(f"σ_max(J) > 1 at det 1, κ = {kappa:g} (expected √κ = {math.sqrt(kappa):g})", claimed=1.0,
                      measured=M.sigma_max(layer="linear", param=kappa, device=device), relation=">")
    claim.compare("log|det J|, NICE additive coupling, shear scale 4", claimed=0.0,
                  measured=M.log_det(layer="coupling", param=4.0, device=device), atol=1e-12)
    claim.compare("σ_max(J) > 1 at det 1, NICE additive coupling, shear scale 4", claimed=1.0,
                  measured=M.sigma_max(layer="coupling", param=4.0, device=device), relation=">")


@pytest.mark.claim("FLOW-02")
def test_volume_preserving_stack_explodes(claim, device):
    """FLOW-02 (002 §在现代生成模型中的体现): a det-1 stack can still explode gradients."""
    depth = M.KS[-1]
    claim.compare(f"Σ_k log|det J_k| over the {depth}-layer stack, κ = 16", claimed=0.0,
                  measured=M.stack_log_det(kappa=16.0, depth=depth, device=device), atol=1e-9)
    rates = {}
    # the couplings' per-seed slopes spread widely (0.03–0.19 over 8 seeds): 8 seeds decide "> 0" firmly
    for label, layer, param, seeds in (("linear W = U diag(s) Vᵀ, κ = 16", "linear", 16.0, M.SEEDS),
                                       ("NICE coupling, shear scale 2", "coupling", 2.0, 2 * M.SEEDS)):
        rate = rates[label] = M.growth_rate(layer=layer, param=param, seeds=seeds, device=device)
        claim.compare(f"per-layer log-growth of the input gradient, {label}", claimed=0.0, measured=rate,
                      relation=">")
        gains = M.gains(layer=layer, param=param, seeds=seeds, device=device)
        claim.note(f"{label}: gradient ×{math.exp(rate.value):.3f} per layer, "
                   f"×{np.exp(np.log(gains[:, -1]).mean()):.3g} after {depth}")
        claim.curve("flow-gradient-vs-K", f"{label} (d = {M.DIM}, {seeds} seeds)", M.KS,
                    np.exp(np.log(gains).mean(0)), xlabel="flow layers K", ylabel="‖∂L/∂x‖/‖∂L/∂y‖", logy=True)
    claim.compare("per-layer growth ≤ log σ_max = ½ log κ (linear, κ = 16)", claimed=0.5 * math.log(16.0),
                  measured=rates["linear W = U diag(s) Vᵀ, κ = 16"], relation="<=")


@pytest.mark.claim("FLOW-03")
def test_singular_value_control_prevents_explosion(claim, device):
    """FLOW-03 (002 §在现代生成模型中的体现): controlling singular values prevents explosion."""
    for dtype, tol in (("float32", 1e-5), ("float64", 1e-12)):
        claim.compare("max |σ_i − 1| of a 64-layer orthogonal (κ = 1) stack", claimed=0.0,
                      measured=M.orthogonal_stack_residual(depth=64, dtype=dtype, device=device), atol=tol)
    kappas = (1.0, 1.5, 4.0, 16.0)
    rates = []
    for kappa in kappas:
        rate = M.growth_rate(layer="linear", param=kappa, device=device)
        rates.append(rate.value)
        claim.compare(f"per-layer growth ≤ log σ_max = ½ log κ, κ = {kappa:g} (det = 1 throughout)",
                      claimed=0.5 * math.log(kappa), measured=rate, relation="<=", atol=1e-9)
    claim.note("per-layer log-growth vs κ: " + ", ".join(f"κ={k:g}: {r:+.4f}" for k, r in zip(kappas, rates)))
    claim.curve("flow-growth-vs-kappa", f"linear volume-preserving stacks (d = {M.DIM}, {M.SEEDS} seeds)",
                list(kappas), rates, xlabel="condition number κ per layer", ylabel="log-growth per layer", logx=True)

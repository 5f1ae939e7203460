"""Optimal-control claims: costates and backpropagation (catalogue: gradcore/claims/control.toml).

Every number is measured by a recipe of gradcore.measure.adjoint (costates from gradcore.adjoint).
"""
import pytest
import torch

from gradcore.measure import adjoint as C
from gradcore.spectral import spectral_radius

F64 = torch.float64


@pytest.mark.claim("CTRL-01")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_costates_equal_backprop(claim, device, dtype):
    """CTRL-01 (002 §数值稳定性与最优控制的观点): the costate recursion is backpropagation."""
    for kind in ("tanh", "relu", "residual"):
        diff = C.costate_residual(kind=kind, depth=8, width=12, seed=0, dtype=str(dtype).split(".")[-1], device=device)
        claim.compare(f"{kind} net, depth 8: max_t |λ_t − ∂J/∂x_t| / max|∂J/∂x_t|", claimed=0.0, measured=diff,
                      atol=diff.bound)


@pytest.mark.claim("CTRL-02")
def test_adjoint_instability_is_explosion(claim, device):
    """CTRL-02 (002 §数值稳定性与最优控制的观点): explosion/vanishing as adjoint (in)stability."""
    T = 120
    rhos, rates = [], []
    for rho in (0.8, 0.95, 1.05, 1.2):
        rhos.append(spectral_radius(C.costate_matrix(rho, 4, device)))
        rate = C.costate_growth_rate(rho=rho, T=T, seed=4, device=device)
        rates.append(rate.value)
        claim.compare(f"x_{{t+1}} = W x_t, ρ(W) = {rhos[-1]:.2f}: costate growth rate ‖λ_0‖^(1/T), T = {T}",
                      claimed=rhos[-1], measured=rate, rtol=0.03)
        agree = (rate.value > 1) == (rhos[-1] > 1)
        claim.compare(f"ρ(W) = {rhos[-1]:.2f}: gradient explodes (rate > 1) iff adjoint λ_t = Wᵀλ_(t+1) unstable (ρ > 1)",
                      claimed=1, measured=int(agree), holds=agree, dtype=F64)
    claim.curve("ctrl-costate-growth", f"non-normal W, T = {T}", rhos, rates, xlabel="ρ(W)",
                ylabel="costate growth rate per step", kind="scatter")
    claim.curve("ctrl-costate-growth", "rate = ρ", rhos, rhos, xlabel="ρ(W)", ylabel="costate growth rate per step")
    A, B = [[0.0, 2.0], [0.0, 0.0]], [[0.0, 0.0], [2.0, 0.0]]
    rate_tv = C.alternating_costate_rate(A=A, B=B, T=40, device=device)
    frozen = max(spectral_radius(torch.tensor(M, dtype=F64)) for M in (A, B))
    claim.compare("time-varying Jacobians, every frozen ρ(J_t) = 0: costate growth rate ≤ 1 (adjoint 'stable')",
                  claimed=1.0, measured=rate_tv, relation="<=", outside="time-varying Jacobians judged by per-step eigenvalues",
                  counterexample={"J_even": A, "J_odd": B, "T": 40, "frozen_spectral_radius": frozen})
    claim.correct("for a time-invariant linear network the costate grows at rate ρ(W) (measured "
                  + ", ".join(f"{r:.3f} vs {p:.3f}" for r, p in zip(rates, rhos))
                  + f"), so explosion ⇔ unstable adjoint; for time-varying Jacobians (any deep net) stability must be "
                  f"judged on the product: alternating [[0,2],[0,0]], [[0,0],[2,0]] have ρ = {frozen:g} yet the costate "
                  f"grows at {rate_tv:.2f} per step")

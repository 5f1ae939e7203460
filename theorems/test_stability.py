"""Numerical-stability claims: Jacobian products, singular values, forward Euler
(catalogue: gradcore/claims/stability.toml).

Every number is measured by a recipe of gradcore.measure.stability (products, singular values)
or gradcore.measure.euler (Euler as a linear RNN); searches score structured candidates.
"""
import numpy as np
import pytest
import torch
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradcore.measure import euler as E
from gradcore.measure import stability as S
from gradcore.measure.candidates import structured_matrices, structured_vectors
from gradcore.measure.searched import search_bound
from gradcore.measure.search import maximize


def _mat(rows=None, cols=None, lo=-5.0, hi=5.0):
    shape = st.tuples(st.integers(1, 6) if rows is None else st.just(rows),
                      st.integers(1, 6) if cols is None else st.just(cols))
    return shape.flatmap(lambda s: hnp.arrays(np.float64, s, elements=st.floats(lo, hi)))


def _chain_candidates(n: int = 3, bound: float = 5.0) -> list:
    """Chains of structured matrices: one repeated (aligned), or two alternating (misaligned)."""
    mats = structured_matrices(n, bound=bound, scales=(1e-3, 1.0))
    same = [(f"[{label}] × {k}", [M] * k) for label, M in mats for k in (2, 6)]
    pairs = [(f"[{a}, {b}] × 3", [A, B] * 3) for (a, A), (b, B) in zip(mats, mats[1:])]
    return same + pairs


@pytest.mark.claim("STAB-01")
def test_backprop_gain_bounded_by_sigma_max(claim, device):
    """STAB-01 (004 §3.3.3 定理3.3.6): ‖Wᵀ ∂L/∂y‖ ≤ σ_max(W) ‖∂L/∂y‖."""
    cases = st.integers(1, 6).flatmap(lambda m: st.tuples(
        _mat(rows=m), hnp.arrays(np.float64, m, elements=st.floats(-5, 5))))
    shapes = ((1, 1), (3, 3), (6, 6), (6, 1), (1, 6), (6, 3))
    candidates = [(f"W {a}, g {b}", (W, g)) for m, k in shapes
                  for a, W in structured_matrices(m, k, bound=5.0, scales=(1e-3, 1.0))
                  for b, g in structured_vectors(m, scales=(5.0,))]
    found = maximize(cases, lambda c: S.backprop_gain_value(c[0], c[1], device), candidates=candidates)
    W, g = found.example
    worst = search_bound(found, S.backprop_gain(W=np.asarray(W).tolist(), g=np.asarray(g).tolist(), device=device))
    claim.compare("max ‖Wᵀg‖/(σ_max(W)‖g‖) (Hypothesis)", claimed=1.0, measured=worst, relation="<=", atol=1e-12)
    claim.compare("tightness: ‖Wᵀu₁‖/σ_max at the top left singular vector", claimed=1.0,
                  measured=S.top_singular_gain(rows=7, cols=5, seed=0, device=device), atol=1e-12)
    for s, rel in [(0.5, "<"), (2.0, ">")]:
        claim.compare(f"σ_max = {s}: gain along u₁ {'decays' if s < 1 else 'amplifies'}", claimed=1.0,
                      measured=S.top_singular_gain(rows=7, cols=5, sigma=s, seed=0, device=device), relation=rel)


@pytest.mark.claim("STAB-02")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_input_gradient_is_jacobian_product(claim, device, dtype):
    """STAB-02 (002 §数值稳定性与最优控制的观点): g_0 is the Jacobian product applied to g_L."""
    rel = S.jacobian_product_residual(depth=12, width=16, gain=1.5, seed=0, dtype=str(dtype).split(".")[-1],
                                      device=device)
    claim.compare("max |P g_L − autograd ∂L/∂x₀| / max|∂L/∂x₀|, tanh MLP depth 12 width 16", claimed=0.0,
                  measured=rel, atol=rel.bound)


@pytest.mark.claim("STAB-03")
def test_per_layer_norms_and_product(claim, device):
    """STAB-03 (002 §数值稳定性与最优控制的观点): per-layer norms > 1 / < 1 and the product's norm."""
    found = maximize(st.lists(_mat(rows=3, cols=3), min_size=2, max_size=6),
                     lambda mats: S.norm_product_ratio_value(mats, device), candidates=_chain_candidates())
    worst = search_bound(found, S.norm_product_ratio(mats=[np.asarray(m).tolist() for m in found.example],
                                                     device=device))
    claim.compare("max ‖J₁⋯J_L‖₂ / Π‖J_l‖₂ (Hypothesis; ≤ 1 means ‖J_l‖ < 1 ∀l ⇒ vanishing)", claimed=1.0,
                  measured=worst, relation="<=", atol=1e-12)
    L = 40
    claim.compare(f"‖J_l‖ = 0.9 ∀l, L = {L}: ‖P‖ vs 0.9^L", claimed=0.9 ** L,
                  measured=S.orthogonal_chain_norm(scale=0.9, L=L, device=device), relation="<=", rtol=1e-9)
    claim.compare(f"aligned (1.1·orthogonal) Jacobians, L = {L}: ‖P‖ = 1.1^L (explodes)", claimed=1.1 ** L,
                  measured=S.orthogonal_chain_norm(scale=1.1, L=L, device=device), rtol=1e-9)
    mis = dict(a=[2.0, 0.1], b=[0.1, 2.0], L=L, device=device)
    mis_norm = S.alternating_chain_norm(**mis)
    claim.compare(f"misaligned Jacobians with ‖J_l‖ = 2 ∀l, L = {L}: ‖P‖ ≥ 1 (claimed: may explode, not vanish)",
                  claimed=1.0, measured=mis_norm, relation=">=", outside="Jacobians that do not share singular directions",
                  counterexample={"J_odd": [[2.0, 0.0], [0.0, 0.1]], "J_even": [[0.1, 0.0], [0.0, 2.0]], "L": L})
    low = S.alternating_chain_norm(quantity="sigma_min", **mis)
    claim.compare("lower bound ‖P‖ ≥ Π σ_min(J_l)", claimed=low.value, measured=mis_norm, relation=">=", rtol=1e-9)
    claim.correct(f"‖P‖ ≤ Π‖J_l‖ always (worst ratio {worst:.3f}), so ‖J_l‖ < 1 ∀l forces vanishing; but ‖J_l‖ > 1 "
                  f"∀l does not force explosion: alternating diag(2, 0.1), diag(0.1, 2) gives ‖P_{L}‖ = {mis_norm:.2e} "
                  f"while Π‖J_l‖ = {2.0 ** L:.2e}; explosion is guaranteed only by Π σ_min(J_l) > 1")


@pytest.mark.claim("STAB-04")
def test_ill_conditioning_alone_does_not_explode(claim, device):
    """STAB-04 (002 §数值稳定性与最优控制的观点): an ill-conditioned Jacobian need not explode."""
    L, n, kappas, gains = 30, 6, (1.0, 1e2, 1e4, 1e6), []
    for kappa in kappas:
        kw = dict(kappa=kappa, kappas=kappas, L=L, n=n, sigma=0.95, seed=1, device=device)
        gain, cond = S.conditioned_power_gain(**kw), S.conditioned_power_gain(quantity="kappa", **kw)
        gains.append(gain.value)
        claim.compare(f"κ = {cond:.0e}, σ_max = 0.95: sup_g ‖(Jᵀ)^{L} g‖/‖g‖ = ‖(Jᵀ)^{L}‖₂ ≤ 1", claimed=1.0,
                      measured=gain, relation="<=")
    claim.curve("stab-gain-vs-condition", f"σ_max = 0.95, L = {L}, n = {n}", kappas, gains,
                xlabel="condition number κ", ylabel="max gradient gain ‖(Jᵀ)^L‖₂", logx=True, logy=True)


@pytest.mark.claim("STAB-05")
def test_sigma_max_above_one_root_cause(claim, device):
    """STAB-05 (002 §数值稳定性与最优控制的观点; 002 引言): σ_max persistently > 1 as the root cause."""
    chains = st.lists(_mat(rows=3, cols=3).filter(lambda a: np.abs(a).max() > 1e-6), min_size=2, max_size=6)
    found = maximize(chains, lambda mats: S.norm_product_ratio_value(mats, device, normalise=True),
                     candidates=_chain_candidates())
    worst = search_bound(found, S.norm_product_ratio(mats=[np.asarray(m).tolist() for m in found.example],
                                                     normalise=True, device=device))
    claim.compare("necessity: max ‖P‖ when every σ_max(J_l) = 1 (Hypothesis; ≤ 1 means no explosion)", claimed=1.0,
                  measured=worst, relation="<=", atol=1e-12)
    W = [[0.5, 10.0], [0.0, 0.5]]
    Wt = torch.tensor(W, dtype=torch.float64)
    sigma, rho = float(torch.linalg.matrix_norm(Wt, ord=2)), 0.5   # triangular: ρ is the diagonal, exactly
    Ts = [1, 5, 10, 20, 50, 100, 200]
    norms = [S.power_norm(W=W, T=T, device=device).value for T in Ts]
    claim.curve("stab-nonnormal-power", f"‖(Wᵀ)^T‖₂, W = [[0.5, 10], [0, 0.5]] (σ_max = {sigma:.2f})",
                Ts, norms, xlabel="steps T", ylabel="‖(Wᵀ)^T‖₂", logy=True)
    claim.curve("stab-nonnormal-power", "σ_max^T", Ts, [sigma ** T for T in Ts],
                xlabel="steps T", ylabel="‖(Wᵀ)^T‖₂", logy=True)
    far = S.power_norm(W=W, T=Ts[-1], device=device)
    claim.compare("sufficiency: σ_max(W) = 10.0 at every step, ‖(Wᵀ)^200‖ ≥ 1 (explodes)", claimed=1.0,
                  measured=far, relation=">=", counterexample={"W": W, "T": Ts[-1]})
    rate = S.power_norm(W=W, T=Ts[-1], quantity="rate", device=device)
    claim.compare("growth rate ‖(Wᵀ)^T‖^{1/T} at T = 200 vs ρ(W)", claimed=rho, measured=rate, rtol=0.05)
    claim.correct(f"σ_max ≤ 1 at every layer rules explosion out (measured max ‖P‖ = {worst:.3f}), but σ_max > 1 "
                  f"persistently does not cause it: W = [[0.5, 10], [0, 0.5]] has σ_max = {sigma:.2f} yet "
                  f"‖(Wᵀ)^200‖ = {far:.1e}; the per-step growth rate is ρ(W) = {rho:.2f} "
                  f"(measured {rate:.3f}) for a repeated matrix, the top Lyapunov exponent in general")


@pytest.mark.claim("STAB-06")
def test_forward_euler_stability(claim, device):
    """STAB-06 (002 §数值稳定性与最优控制的观点): forward Euler diverges when ρ(I+hA) > 1."""
    bad = E.euler_boundary_counterexamples(max_examples=settings().max_examples, device=device)
    claim.compare("ρ(I+hA) < 1 ⇔ h < min −2Reλ/|λ|² at h = h*(1 ∓ 0.001) (Hypothesis, none expected)", claimed=0,
                  measured=bad)
    trials = dict(trials=12, n=6, steps=400, seed=2, device=device)
    claim.compare("trajectories whose growth disagrees with h vs h* (12 stable A × h = 0.6, 0.95, 1.05, 1.4 h*)",
                  claimed=0, measured=E.euler_trial_summary(quantity="mismatches", **trials))
    claim.compare("|growth rate over steps 200..400 − ρ(I+hA)|, max over 48 trajectories", claimed=0.0,
                  measured=E.euler_trial_summary(quantity="rate_error", **trials), atol=0.02)
    theta = np.linspace(0, 2 * np.pi, 200)
    claim.curve("euler-stability-region", "|1 + hλ| = 1", np.cos(theta) - 1, np.sin(theta),
                xlabel="Re hλ", ylabel="Im hλ")
    rows = E.euler_trials(12, 6, 400, 2, device)
    for grew, label in [(False, "hλ, trajectory decays"), (True, "hλ, trajectory diverges")]:
        zs = [z for r in rows if r["grew"] == grew for z in r["hlam"]]
        claim.curve("euler-stability-region", label, [z.real for z in zs], [z.imag for z in zs],
                    xlabel="Re hλ", ylabel="Im hλ", kind="scatter")
    claim.compare("stable A = diag(−1, −10), h = 0.25: ρ(I+hA) > 1", claimed=1.0,
                  measured=E.euler_radius(A=[[-1.0, 0.0], [0.0, -10.0]], h=0.25, device=device), relation=">")


@pytest.mark.claim("STAB-07")
def test_euler_is_linear_rnn(claim, device):
    """STAB-07 (002 §数值稳定性与最优控制的观点): Euler divergence and RNN explosion are one phenomenon."""
    system = dict(n=5, T=300, seed=3, device=device)
    claim.compare("linear RNN h_t = (I+hA)h_{t−1} vs Euler iterates: max abs diff", claimed=0.0,
                  measured=E.euler_rnn(quantity="gap", factor=0.8, **system), atol=0.0)
    A, hs, _ = E.euler_system(5, 3, device)
    rates = {}
    for fac, act in [(0.8, "linear"), (1.2, "linear"), (1.2, "tanh")]:
        rate = E.euler_rnn(factor=fac, activation=act, **system)
        rho = E.euler_radius(A=A.cpu().tolist(), h=fac * hs, device=device).value
        rates[(fac, act)] = (rate, rho)
        kw = {} if act == "linear" else dict(outside="nonlinear (tanh) RNN", counterexample={"A": A, "h": fac * hs})
        claim.compare(f"{act} RNN, h = {fac}h*: BPTT growth rate per step vs ρ(I+hA) = {rho:.3f}", claimed=rho,
                      measured=rate, rtol=0.03, **kw)
    r_t, rho_t = rates[(1.2, "tanh")]
    claim.correct(f"for the linear RNN W = I+hA the BPTT growth rate equals ρ(I+hA) (measured "
                  f"{rates[(1.2, 'linear')][0]:.3f} vs {rates[(1.2, 'linear')][1]:.3f}), so Euler divergence and "
                  f"gradient explosion coincide; with tanh the same W gives rate {r_t:.3f} vs ρ = {rho_t:.3f} — "
                  f"saturation breaks the equivalence")

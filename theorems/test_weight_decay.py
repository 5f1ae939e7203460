"""Weight-decay / L2-regularisation claims (catalogue: gradcore/claims/weight_decay.toml).

Measured by the recipes of gradcore.measure.weight_decay.
"""
import math

import pytest

from gradcore.measure import weight_decay as M
from gradcore.measure import profiles


@pytest.mark.claim("WD-01")
def test_decay_update_rule(claim, device):
    """WD-01 (002 §L2 正则化与隐式稳定): the L2 step is W − η(∇L + λW), (1 − ηλ)W without data."""
    claim.compare("sympy: (W − η(0 + ∇ λ/2‖W‖_F²)) − (1−ηλ)W, number of nonzero entries", claimed=0,
                  measured=M.symbolic_residual_terms(which="update"))
    claim.compare("sympy: ∇ λ/2‖W‖_F² − λW, number of nonzero entries", claimed=0,
                  measured=M.symbolic_residual_terms(which="gradient"))
    for dtype in ("float32", "float64"):
        sgd = M.sgd_decay_residual(dtype=dtype, device=device)
        claim.compare("torch.optim.SGD(weight_decay=λ), zero data gradient: max |W₁ − (1−ηλ)W₀|", claimed=0.0,
                      measured=sgd, atol=sgd.bound)
        claim.compare("autograd ∇ λ/2‖W‖_F² vs λW: max abs diff", claimed=0.0,
                      measured=M.penalty_gradient_residual(dtype=dtype, device=device), atol=0.0)


@pytest.mark.claim("WD-02")
def test_decay_shrinks_to_zero(claim, device):
    """WD-02 (002 §L2 正则化与隐式稳定): 0 < ηλ < 1 shrinks W to zero."""
    profile = profiles.selected_name()
    f64 = M.max_decay_norm_ratio(dtype="float64", profile=profile, device=device)
    claim.compare("float64: max ‖W₁‖_F/‖W₀‖_F over 0 < ηλ < 1 (search; < 1: every step shrinks)", claimed=1.0,
                  measured=f64, relation="<", rtol=0.0, atol=0.0)
    for c in (0.01, 0.3, 0.9):
        claim.compare(f"‖W_50‖/‖W_0‖ at ηλ = {c} vs (1−ηλ)^50", claimed=(1 - c) ** 50,
                      measured=M.decay_norm_ratio(c=c, steps=50, device=device), rtol=1e-12)
    wide = M.decay_norm_ratio(c=1.5, steps=50, device=device)
    claim.compare("ηλ = 1.5 (outside the stated range) still shrinks: ‖W_50‖/‖W_0‖ < 1", claimed=1.0,
                  measured=wide, relation="<", outside="1 ≤ ηλ < 2")
    f32 = M.max_decay_norm_ratio(dtype="float32", profile=profile, device=device)
    claim.compare("float32: max ‖W₁‖_F/‖W₀‖_F over 0 < ηλ < 1 (search; < 1: every step shrinks)", claimed=1.0,
                  measured=f32, relation="<", rtol=0.0, atol=0.0, outside="ηλ below float32 resolution",
                  counterexample={"found by": f32.witness})
    lo = M.float32_no_shrink_threshold(device=device)
    claim.correct(f"‖W_k‖ = (1−ηλ)^k‖W_0‖ → 0 for 0 < ηλ < 1 (measured to 1e-12 in float64; also for 1 ≤ ηλ < 2, "
                  f"measured ratio {wide:.2e} at ηλ = 1.5), but in float32 a decay step does not shrink ‖W‖ for "
                  f"ηλ ≤ {lo:.3g} (measured; ≈ 2^{math.log2(lo.value):.1f}), so tiny ηλ never shrinks W")


@pytest.mark.claim("WD-03")
def test_symmetric_norm_equals_radius(claim, device):
    """WD-03 (002 §L2 正则化与隐式稳定): for symmetric W the operator 2-norm is the spectral radius."""
    profile = profiles.selected_name()
    claim.compare("max |‖W‖₂ − ρ(W)|/‖W‖₂ over symmetric W (Hypothesis)", claimed=0.0,
                  measured=M.symmetric_norm_radius_gap(profile=profile, device=device), atol=1e-12)
    claim.compare("general W: min (‖W‖₂ − ρ(W))/‖W‖₂ (search; ≥ 0: ‖W‖₂ ≥ ρ(W))", claimed=0.0,
                  measured=M.general_norm_radius_gap(profile=profile, device=device), relation=">=", atol=1e-12,
                  outside="non-symmetric W")
    norm, radius = (M.nonnormal_example(quantity=q, device=device) for q in ("norm", "radius"))
    claim.note(f"non-normal W = [[0.5, 10], [0, 0.5]]: ‖W‖₂ = {norm:.3f}, ρ(W) = {radius:.3f}"
               " — equality needs normality, and only ‖W‖₂ ≥ ρ(W) holds in general")


@pytest.mark.claim("WD-04")
def test_decay_pulls_spectral_radius_below_one(claim, device):
    """WD-04 (002 §L2 正则化与隐式稳定): weight decay shrinks ρ(W) below 1 after enough steps."""
    worst = M.decay_radius_residual(profile=profiles.selected_name(), device=device)
    claim.compare("max |ρ((1−ηλ)W) − (1−ηλ)ρ(W)|/ρ(W) over non-symmetric W (Hypothesis)", claimed=0.0,
                  measured=worst, atol=1e-9)
    lr, lam = 0.005, 0.1
    rho0 = M.rnn_radius(lam=lam, steps=0, lr=lr, device=device)
    k_measured = M.pure_decay_steps_below_one(lr=lr, lam=lam, device=device)
    k_pred = math.floor(math.log(rho0.value) / -math.log(1 - lr * lam)) + 1
    claim.compare(f"first k with ρ(W_k) < 1, pure decay from non-normal W_0 (ρ₀ = {rho0:.2f}, ηλ = {lr * lam:g})",
                  claimed=k_pred, measured=k_measured, atol=0.0)
    trained = M.rnn_radius(lam=lam, steps=600, lr=lr, device=device)
    rhos = M.rnn_radii(lam, 600, lr, device)[0]
    pure = M.pure_decay_radii(lr, lam, device=device)
    ks = list(range(len(rhos)))
    claim.curve("wd-radius-vs-steps", f"pure decay, ηλ = {lr * lam:g}", list(range(len(pure))), pure,
                xlabel="update step k", ylabel="ρ(W_k)", logy=True)
    claim.curve("wd-radius-vs-steps", f"with linear-RNN data gradient, λ = {lam:g}, η = {lr:g}", ks, rhos,
                xlabel="update step k", ylabel="ρ(W_k)", logy=True)
    claim.curve("wd-radius-vs-steps", "ρ = 1", ks, [1.0] * len(ks), xlabel="update step k", ylabel="ρ(W_k)", logy=True)
    claim.compare(f"ρ(W_k) after {len(rhos) - 1} GD steps with the data gradient (> {k_pred}-step prediction)",
                  claimed=1.0, measured=trained, relation="<", outside="data gradient present",
                  counterexample={"model": "linear RNN h_t = W h_{t-1}, T = 4, n = 4, targets from ρ = 1.2 dynamics",
                                "lr": lr, "weight_decay": lam, "steps": len(rhos) - 1})
    claim.correct(f"ρ((1−ηλ)W) = (1−ηλ)ρ(W) for every W (worst relative error {worst:.1e}; symmetry is not "
                  f"needed), so pure decay takes k* = ⌊ln ρ₀/−ln(1−ηλ)⌋+1 = {k_measured:.0f} steps from ρ₀ = "
                  f"{rho0:.2f}; with the data gradient of a linear RNN fitted to ρ = 1.2 dynamics, ρ stays "
                  f"{trained:.3f} after {len(rhos) - 1} steps at λ = {lam:g} — decay wins only when it dominates "
                  f"the data gradient")


@pytest.mark.claim("WD-05")
def test_l2_limits_weight_size(claim, device):
    """WD-05 (003 §4 解决梯度爆炸 › 权重正则化): the L2 penalty limits the weights' size."""
    profile = profiles.selected_name()
    claim.compare("ridge: max increase of ‖W_λ‖ as λ grows (Hypothesis; ≤ 0 means monotone)", claimed=0.0,
                  measured=M.ridge_residual(quantity="norm_increase", profile=profile, device=device),
                  relation="<=", atol=1e-9)
    claim.compare("ridge: max(‖W_λ‖² − 2L(0)/λ) (≤ 0: the penalty bounds the weights)", claimed=0.0,
                  measured=M.ridge_residual(quantity="bound_violation", profile=profile, device=device),
                  relation="<=", atol=1e-9)
    rnn_lams = [0.0, 0.1, 1.0, 3.0, 10.0]
    final = [M.rnn_radius(lam=lam, steps=600, lr=0.005, device=device) for lam in rnn_lams]
    claim.curve("wd-final-radius-vs-lambda", "linear RNN, 600 GD steps, η = 0.005", rnn_lams,
                [f.value for f in final], xlabel="weight decay λ", ylabel="ρ(W) after training")
    claim.compare("linear RNN trained with λ = 1: ρ(W) < 1 (no explosion)", claimed=1.0, measured=final[2],
                  relation="<", outside="the data demand ρ > 1",
                  counterexample={"model": "linear RNN of WD-04", "weight_decay": 1.0})
    threshold = next((lam for lam, r in zip(rnn_lams, final) if r.value < 1), None)
    claim.correct("L2 does bound the weights (ridge ‖W_λ‖ is non-increasing in λ and ‖W_λ‖² ≤ 2L(0)/λ), but it "
                  "prevents ρ > 1 only when λ is large: the linear RNN ends with ρ = "
                  + ", ".join(f"{r:.3f}" for r in final) + f" for λ = {rnn_lams}; first λ with ρ < 1: {threshold}")

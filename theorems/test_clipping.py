"""Gradient-clipping claims (catalogue: gradcore/claims/clipping.toml).

Measured by the recipes of gradcore.measure.clipping, i.e. torch's own
clip_grad_norm_/clip_grad_value_ arithmetic (through gradcore.clipping).
"""
import math

import numpy as np
import pytest

from gradcore.measure import clipping as M
from gradcore.measure import profiles

SQRT_2_PI = math.sqrt(2 / math.pi)


@pytest.mark.claim("CLIP-01")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_norm_clipping_rescales_to_threshold(claim, device, dtype):
    """CLIP-01 (003 §4 梯度裁剪; 002 §梯度裁剪; 004 Definition 3.3.5): g' = θg/‖g‖ when ‖g‖ > θ."""
    profile = profiles.selected_name()
    worst = M.norm_clip_residual(quantity="norm", dtype=dtype, profile=profile, device=device)
    claim.compare("max |‖g'‖/θ − 1| over ‖g‖ > θ (Hypothesis)", claimed=0.0, measured=worst)
    worst_angle = M.norm_clip_residual(quantity="angle", dtype=dtype, profile=profile, device=device)
    claim.compare("max 1 − cos(g', g) over ‖g‖ > θ (Hypothesis)", claimed=0.0, measured=worst_angle)
    untouched = M.unchanged_residual(rule="norm", profile=profile, device=device)
    claim.compare("max |clip(g) − g| over ‖g‖ ≤ θ (search; 0: g unchanged)", claimed=0.0, measured=untouched,
                  atol=0.0)

    ratio_tiny = M.norm_clip_ratio(g=[1e-5, 0.0], theta=1e-6, dtype=dtype, device=device)
    claim.compare("‖g'‖/θ for ‖g‖ = 1e-5, θ = 1e-6 (torch divides by ‖g‖ + 1e-6)", claimed=1.0,
                  measured=ratio_tiny, outside="‖g‖ comparable to torch's eps 1e-6",
                  counterexample={"g": [1e-5, 0.0], "theta": 1e-6, "dtype": dtype})
    big = 1e20 if dtype == "float32" else 1e160
    ratio_huge = M.norm_clip_ratio(g=[big] * 3, theta=1.0, dtype=dtype, device=device)
    claim.compare(f"‖g'‖/θ for g = {big:g}·(1,1,1), θ = 1 (the norm overflows torch.{dtype})", claimed=1.0,
                  measured=ratio_huge, outside="‖g‖² overflows the dtype",
                  counterexample={"g": [big] * 3, "theta": 1.0, "dtype": dtype})
    claim.correct(f"g' = θg/‖g‖ holds to {worst:.1e} (norm) and {worst_angle:.1e} (1−cos) in {dtype} when "
                  f"1e-6 ≪ ‖g‖ and ‖g‖² is representable; torch's clip_grad_norm_ scales by θ/(‖g‖+1e-6), "
                  f"giving ‖g'‖/θ = {ratio_tiny:.3f} at ‖g‖ = 1e-5, and returns ‖g'‖/θ = {ratio_huge:g} "
                  f"when ‖g‖ overflows ({big:g}·(1,1,1))")


@pytest.mark.claim("CLIP-02")
def test_clipped_sgd_step_bounded(claim, device):
    """CLIP-02 (002 §梯度裁剪): clipping bounds the update by η·θ."""
    worst = M.sgd_step_ratio_bound(profile=profiles.selected_name(), device=device)
    claim.compare("max ‖Δw‖/(ηθ), plain SGD, one step (Hypothesis)", claimed=1.0, measured=worst, relation="<=")
    mom = M.step_ratio(optimizer="sgd", d=16, g=100.0, theta=1.0, lr=0.1, steps=100, momentum=0.9, device=device)
    claim.compare("‖Δw‖/(ηθ), SGD momentum 0.9, step 100, constant gradient", claimed=1.0, measured=mom,
                  relation="<=", outside="SGD with momentum",
                  counterexample={"g": "100·ones(16)", "theta": 1.0, "lr": 0.1, "momentum": 0.9, "steps": 100})
    adam = M.step_ratio(optimizer="adam", d=16, g=100.0, theta=1.0, lr=0.1, steps=1, device=device)
    claim.compare("‖Δw‖/(ηθ), Adam, first step, d = 16", claimed=1.0, measured=adam, relation="<=",
                  outside="adaptive optimisers (Adam)",
                  counterexample={"g": "100·ones(16)", "theta": 1.0, "lr": 0.1, "optimizer": "Adam"})
    claim.correct(f"‖Δw‖ ≤ ηθ holds for plain SGD (worst ratio {worst:.6f}); with momentum 0.9 the step "
                  f"reaches {mom:.2f}·ηθ (→ ηθ/(1−μ)), and Adam's first step is {adam:.2f}·ηθ (= √d/θ, "
                  f"independent of clipping)")


@pytest.mark.claim("CLIP-03")
def test_value_clipping_can_change_direction(claim, device):
    """CLIP-03 (002 §梯度裁剪; 004 §3.3.2): value clipping may change the gradient's direction."""
    profile = profiles.selected_name()
    cos = M.worst_cosine(rule="value", threshold=1.0, profile=profile, device=device)
    claim.compare("a gradient whose direction value clipping changes exists (cos < 1)", claimed=1.0,
                  measured=cos, relation="<", rtol=0.0, atol=0.0)
    unchanged = M.unchanged_residual(rule="value", profile=profile, device=device)
    claim.compare("max |clip(g) − g| over ‖g‖∞ ≤ τ (search; 0: g unchanged)", claimed=0.0, measured=unchanged,
                  atol=0.0)
    vals, power = cos.witness["example"]
    claim.note(f"worst gradient searched ({cos.witness['source']}): g = {list(vals)} × 1e{power}, τ = 1, "
               f"cos = {cos:.4f} (d ≤ {M.DIMS[1]}: the infimum is 1/√{M.DIMS[1]} = {1 / math.sqrt(M.DIMS[1]):.4f})")


@pytest.mark.claim("CLIP-04")
def test_value_clipping_cosine_limit(claim, device):
    """CLIP-04 (002 §梯度裁剪): value clipping's cosine tends to √(2/π)."""
    seeds, tau, big = 6, 1.0, 65536
    lim = M.gaussian_cosine_limit()
    claim.compare("lim_{τ/s→0} lim_{d→∞} cos, Gaussian (sympy)", claimed=SQRT_2_PI, measured=lim, atol=1e-12)

    def cos(distribution, d, ratio):
        return M.value_clip_cosine(distribution=distribution, d=d, scale=ratio * tau, tau=tau, seeds=seeds,
                                   device=device)

    ds = [4, 64, 1024, 16384, 65536]
    for ratio in [1.0, 10.0, 1000.0]:
        claim.curve("clip-value-cosine-vs-d", f"Gaussian, s/τ = {ratio:g}, {seeds} seeds, float32", ds,
                    [cos("gaussian", d, ratio).value for d in ds],
                    xlabel="dimension d", ylabel="cos(clip_value(g), g)", logx=True)
    claim.curve("clip-value-cosine-vs-d", "√(2/π)", ds, [SQRT_2_PI] * len(ds), xlabel="dimension d",
                ylabel="cos(clip_value(g), g)", logx=True)
    cos_g = cos("gaussian", big, 1000.0)
    claim.compare(f"cos, Gaussian, d = {big}, s/τ = 1000 ({seeds} seeds, 95% CI)", claimed=SQRT_2_PI, measured=cos_g)

    ratios = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 1000.0)
    claim.curve("clip-value-cosine-vs-scale", f"measured, Gaussian, d = 16384, {seeds} seeds", ratios,
                [cos("gaussian", 16384, r).value for r in ratios],
                xlabel="scale / threshold s/τ", ylabel="cosine", logx=True, kind="scatter")
    fine = list(np.logspace(-0.5, 3, 40))
    claim.curve("clip-value-cosine-vs-scale", "d → ∞ closed form (sympy)", fine,
                [M.closed_form_cosine(r) for r in fine], xlabel="scale / threshold s/τ", ylabel="cosine", logx=True)
    claim.curve("clip-value-cosine-vs-scale", "√(2/π)", fine, [SQRT_2_PI] * len(fine),
                xlabel="scale / threshold s/τ", ylabel="cosine", logx=True)
    fit = M.closed_form_fit_error(d=16384, ratios=ratios, tau=tau, seeds=seeds, device=device)
    claim.compare("max |measured − closed form cos(τ/s)| over s/τ, d = 16384", claimed=0.0, measured=fit,
                  atol=0.005, outside="finite s/τ (closed form, not the claimed constant)")

    outside = {}
    for label, distribution, d, ratio, why in [
            ("s = τ", "gaussian", big, 1.0, "scale comparable to the threshold"),
            ("small d", "gaussian", 4, 1000.0, "small dimension"),
            ("Laplace", "laplace", big, 1000.0, "Laplace (non-Gaussian) coordinates"),
            ("Student-t(3)", "student_t3", big, 1000.0, "heavy-tailed coordinates"),
            ("Student-t(2)", "student_t2", big, 1000.0, "infinite-variance coordinates")]:
        outside[label] = m = cos(distribution, d, ratio)
        claim.compare(f"cos, {label}, d = {d}, s/τ = {ratio:g} ({seeds} seeds, 95% CI)", claimed=SQRT_2_PI,
                      measured=m, outside=why,
                      counterexample={"distribution": distribution, "d": d, "scale_over_tau": ratio, "seeds": seeds})
    t2 = [cos("student_t2", d, 1000.0).value for d in ds]
    claim.curve("clip-value-cosine-vs-d", f"Student-t(2), s/τ = 1000, {seeds} seeds", ds, t2,
                xlabel="dimension d", ylabel="cos(clip_value(g), g)", logx=True)
    claim.correct(
        f"cos → E|X|/√E[X²] as d → ∞ and s/τ → ∞ for i.i.d. finite-variance coordinates: √(2/π) = {SQRT_2_PI:.4f} "
        f"only for Gaussian (measured {cos_g:.4f}); Laplace gives {outside['Laplace']:.4f} (1/√2), Student-t(3) "
        f"{outside['Student-t(3)']:.4f} (2/π), Student-t(2) {outside['Student-t(2)']:.4f} and falling with d "
        f"({t2[0]:.3f} → {t2[-1]:.3f}); at finite s/τ the limit is {M.closed_form_numerator()}/√E[clip²] with "
        f"c = τ/s (s = τ: {outside['s = τ']:.4f}); at d = 4 it is {outside['small d']:.4f}")

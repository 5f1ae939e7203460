"""Published claims reproduced on CPU (catalogue: gradcore/claims/literature.toml)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gradcore.measure import bptt, convspectra, meanfield, quartic, residual, schedules, shattering, signal, transformer


@pytest.mark.claim("LIT-01")
def test_dot_product_variance_is_d_k(claim):
    """LIT-01 (Vaswani et al. 2017 §3.2.1 fn. 4)."""
    for d_k in (16, 64, 512):
        claim.compare(f"Var(q·k)/d_k, d_k = {d_k}", claimed=1.0, measured=signal.dot_product_variance(d_k=d_k))
    claim.compare("E[q·k]/√d_k, d_k = 64", claimed=0.0, measured=signal.dot_product_mean(d_k=64))


@pytest.mark.claim("LIT-02")
def test_conv_singular_values_are_per_frequency_svds(claim):
    """LIT-02 (Sedghi, Gupta & Long 2019 Theorem 6)."""
    for kind, channels, n, m in (("standard", 3, 8, 8), ("standard", 4, 6, 10), ("depthwise", 3, 8, 8),
                                 ("separable", 3, 8, 8)):
        r = convspectra.conv_spectrum_residual(kind=kind, channels=channels, n=n, m=m)
        claim.compare(f"max |σ(dense) − σ(per-frequency)|/σ_max, {kind}, {channels} ch, {n}×{m}, circular",
                      claimed=0.0, measured=r, atol=r.bound)
    zeros = convspectra.conv_spectrum_residual(padding_mode="zeros")
    claim.note(f"with zero padding instead of circular the same per-frequency values are off by "
               f"{zeros:.3g}·σ_max: the theorem is for the wrap-around operator")


@pytest.mark.claim("LIT-03")
def test_ddpm_prior_term_is_negligible(claim):
    """LIT-03 (Ho et al. 2020 §4, linear schedule β_1 = 1e-4 … β_T = 0.02, T = 1000)."""
    for x0_sq, case in ((1.0, "x_0 = ±1 (the worst pixel of data in [−1, 1])"), (1 / 3, "x_0 ~ U[−1, 1]")):
        claim.compare(f"log₁₀ L_T in bits/dim, {case} (≈ 10⁻⁵: within half a decade)", claimed=-5.0,
                      measured=schedules.prior_kl_bits(x0_sq=x0_sq, log10=True), atol=0.5)
    ab = schedules.alpha_bar()
    claim.compare("ᾱ_T (< 1e-4: x_T carries almost no signal)", claimed=1e-4, measured=ab, relation="<")
    claim.note(f"ᾱ_T = {ab:.4g}; L_T = {schedules.prior_kl_bits(x0_sq=1.0):.3g} bits/dim at x_0² = 1, "
               f"{schedules.prior_kl_bits(x0_sq=1 / 3):.3g} for uniform data, "
               f"{schedules.prior_kl_bits(x0_sq=0.0):.3g} at x_0 = 0")


@pytest.mark.claim("LIT-04")
def test_min_snr_weights(claim):
    """LIT-04 (Hang et al. 2023 §3.4, γ = 5, on the DDPM linear schedule)."""
    beta_1 = 1e-4
    claim.compare("SNR(1) = (1 − β_1)/β_1", claimed=(1 - beta_1) / beta_1, measured=schedules.snr(t=1), rtol=1e-9)
    claim.compare("ε-prediction weight min(SNR, γ)/SNR at t = 1", claimed=5 / 9999,
                  measured=schedules.min_snr_weight(t=1), rtol=1e-9)
    claim.compare("first t with weight 1 (SNR(t) ≤ γ), gradcore vs 50-digit reference",
                  claimed=schedules.first_unit_weight_step(precision="mp50").value,
                  measured=schedules.first_unit_weight_step())
    t_star = int(schedules.first_unit_weight_step().value)
    claim.compare(f"weight at t = {t_star}", claimed=1.0, measured=schedules.min_snr_weight(t=t_star))
    claim.compare(f"weight at t = {t_star - 1} (< 1: still down-weighted)", claimed=1.0,
                  measured=schedules.min_snr_weight(t=t_star - 1), relation="<")


@pytest.mark.claim("LIT-05")
def test_glorot_standard_and_normalized_init(claim):
    """LIT-05 (Glorot & Bengio 2010 eq. 15, §4.2.2)."""
    claim.compare("n·Var[U(−1/√n, 1/√n)]", claimed=1 / 3, measured=signal.uniform_fan_in_variance())
    for init, paper in (("normalized", 0.8), ("standard", 0.5)):
        # the paper gives one significant digit: ± 0.05
        claim.compare(f"mean singular value of the layer Jacobians, {init} init, 5-layer tanh", claimed=paper,
                      measured=signal.glorot_jacobian_singular_mean(init=init), atol=0.05)
        widths = (32, 64, 128, 256, 512)   # the paper's nets are 1000 wide: does the width matter?
        claim.curve("glorot-singular-vs-width", f"{init} init (paper: {paper})", widths,
                    [signal.glorot_jacobian_singular_mean(init=init, width=w, seeds=3).value for w in widths],
                    xlabel="width n", ylabel="mean singular value of ∂h_(i+1)/∂h_i", logx=True)


@pytest.mark.claim("LIT-06")
def test_he_relu_variance_recursion(claim):
    """LIT-06 (He et al. 2015 eqs. 9–10)."""
    depth = 30
    for var_scale in (2.0, 1.0):
        claim.compare(f"per-layer Var[y_(l+1)]/Var[y_l], Var[w] = {var_scale:g}/n (eq. 9 factor ½ n Var[w])",
                      claimed=var_scale / 2, measured=signal.relu_layer_gain(var_scale=var_scale, depth=depth))
        predicted = (var_scale / 2) ** (depth - 1)
        whole = signal.relu_variance_gain(var_scale=var_scale, depth=depth)
        claim.compare(f"Var[y_{depth}]/Var[y_1] ÷ eq. 9's {predicted:.3g}, Var[w] = {var_scale:g}/n", claimed=1.0,
                      measured=whole)
        layers, ratio = signal.relu_variance_profile(var_scale=var_scale, depth=depth)
        claim.curve("he-relu-variance", f"Var[w] = {var_scale:g}/n (ReLU, width 256, one seed)", layers, ratio,
                    xlabel="layer l", ylabel="Var[y_l]/Var[y_1]", logy=True)
    claim.note(f"one 30-layer width-256 net lands anywhere in ×[{whole.interval[0]:.2f}, {whole.interval[1]:.2f}] "
               "(95% interval of the mean over 12 seeds) of eq. 9: it holds in expectation, with a spread "
               "~e^(±0.8) per net; ReLU's homogeneity makes the 1/n and 2/n nets of a seed differ by exactly 2^(−29)")


@pytest.mark.claim("LIT-07")
def test_pascanu_sufficient_condition_for_vanishing(claim):
    """LIT-07 (Pascanu et al. 2013 §2.1, eq. 11 parametrization)."""
    for activation in ("tanh", "sigmoid"):
        m = bptt.geometric_bound_excess(activation=activation)
        claim.compare(f"max_t ‖∂x_t/∂x_0‖ / η^t, {activation}, λ₁ = 0.9/γ (≤ 1; worst: {m.witness})",
                      claimed=1.0, measured=m, relation="<=", atol=1e-9)
        rate = bptt.bptt_rate(activation=activation)
        claim.compare(f"per-step rate on a random trajectory, {activation} (≤ η = 0.9)", claimed=0.9,
                      measured=rate, relation="<=")
        claim.note(f"{activation}: the bound η = 0.9 is attained at the fixed point x = 0; a random trajectory "
                   f"decays at {rate:.3f} per step")


@pytest.mark.claim("LIT-08")
def test_relu_nets_lack_dynamical_isometry(claim):
    """LIT-08 (Pennington, Schoenholz & Ganguli 2017, abstract and §3; nets at criticality)."""
    r = meanfield.spectrum_variance(activation="linear", init="orthogonal")
    claim.compare("σ²_{JJᵀ} of a depth-8 orthogonal linear net (isometry: 0 up to rounding)", claimed=0.0,
                  measured=r, atol=r.bound)
    # free probability (Fuss–Catalan moments): σ²_{JJᵀ} = L for a linear Gaussian net
    claim.compare("exponent p of σ²_{JJᵀ} ∝ L^p, linear Gaussian (free probability: 1)", claimed=1.0,
                  measured=meanfield.spectrum_variance_exponent(activation="linear", init="gaussian"), rtol=0.1)
    for init in ("gaussian", "orthogonal"):
        claim.compare(f"exponent p of σ²_{{JJᵀ}} ∝ L^p, ReLU, {init} weights (> 0: the spectrum spreads)",
                      claimed=0.0, measured=meanfield.spectrum_variance_exponent(activation="relu", init=init),
                      relation=">")
    for activation, init in (("linear", "gaussian"), ("relu", "gaussian"), ("relu", "orthogonal")):
        depths, var = meanfield.spectrum_variance_curve(activation=activation, init=init)
        claim.curve("pennington-spectrum-variance", f"{activation}, {init} (width 64, 8 seeds)", depths, var,
                    xlabel="depth L", ylabel="σ²_{JJᵀ}", logx=True, logy=True)


@pytest.mark.claim("LIT-09")
def test_schoenholz_chi1(claim):
    """LIT-09 (Schoenholz et al. 2017 eqs. 3–5, tanh, σ_b = 0)."""
    claim.compare("σ_w² where χ₁ crosses 1 (order-to-chaos transition)", claimed=1.0,
                  measured=meanfield.critical_sigma_w2(), atol=1e-6)
    for sigma_w2 in (0.5, 1.5, 2.0):
        chi = meanfield.chi1(sigma_w2=sigma_w2)
        # finite width 256: O(1/n) corrections to the mean-field ratio, ± 2 %
        claim.compare(f"measured per-layer ‖g_(l−1)‖²/‖g_l‖² vs χ₁ = {chi:.4f}, σ_w² = {sigma_w2}",
                      claimed=chi.value, measured=meanfield.gradient_ratio(sigma_w2=sigma_w2), rtol=0.02)


@pytest.mark.claim("LIT-10")
def test_xiong_pre_and_post_ln(claim):
    """LIT-10 (Xiong et al. 2020 §3.3, Lemma 2 and Theorem 1)."""
    claim.compare("E‖x^{post,5}_l‖²/d, Post-LN, mean over 16 blocks (Lemma 2: 3/2)", claimed=1.5,
                  measured=transformer.residual_norm_average(kind="post"))
    claim.compare("slope of E‖x^{post,5}_l‖²/d on l, Post-LN (Lemma 2: the same at every l)", claimed=0.0,
                  measured=transformer.residual_norm_slope(kind="post"))
    claim.compare("E‖x_1‖²/d, Pre-LN, after one block (Lemma 2: ≥ 1 + 1/2)", claimed=1.5,
                  measured=transformer.residual_norm(kind="pre", layer=1), relation=">=")
    growth = transformer.residual_norm_increment(kind="pre")
    claim.compare("mean over l of (E‖x_l‖²/d − 1)/l, Pre-LN (Lemma 2: ≥ 1/2)", claimed=0.5, measured=growth,
                  relation=">=")
    claim.compare("mean over l of (E‖x_l‖²/d − 1)/l, Pre-LN (Lemma 2: ≤ 3/2)", claimed=1.5, measured=growth,
                  relation="<=")
    # Theorem 1 states orders: the exponent of L, ± 0.1 for the finite depths 2 … 64
    for kind, paper in (("post", 0.0), ("pre", -0.5)):
        claim.compare(f"exponent p of ‖∂L/∂W^(2,L)‖_F ∝ L^p, {kind}-LN (Theorem 1: {paper:g})", claimed=paper,
                      measured=transformer.last_ffn_gradient_exponent(kind=kind), atol=0.1)
    for kind in ("post", "pre"):
        layers, norms = transformer.residual_norm_curve(kind=kind)
        claim.curve("xiong-residual-norms", f"{kind}-LN (8 stacks)", layers, norms, xlabel="block l",
                    ylabel="E‖x_l‖²/d")
    for label, per_block in (("1 + l/2", 0.5), ("1 + 3l/2", 1.5)):
        claim.curve("xiong-residual-norms", f"Lemma 2's Pre-LN bound {label}", layers,
                    [1 + per_block * l for l in layers], xlabel="block l", ylabel="E‖x_l‖²/d")
    depths = (2, 4, 8, 16, 32, 64)
    for kind in ("post", "pre"):
        per_seed = np.log(transformer.last_ffn_gradients(kind=kind, depths=depths, seeds=6))
        claim.curve("xiong-last-layer-gradient", f"{kind}-LN (geometric mean of 6 seeds)", depths,
                    np.exp(per_seed.mean(axis=0)), xlabel="layers L", ylabel="‖∂L/∂W^(2,L)‖_F", logx=True, logy=True)
    rows = transformer.residual_norm_rows("pre")
    single = ((rows - 1) / np.arange(1, rows.shape[1] + 1)).max()
    claim.note(f"Pre-LN grows by {growth:.3g}·d per block on average (FFN adds d/2, attention between 0 and d); "
               f"the largest (‖x_l‖²/d − 1)/l of a single stack is {single:.3g}: the Lemma's bounds hold in "
               "expectation, not for every network")


@pytest.mark.claim("LIT-11")
def test_fixup_depth_independent_update(claim):
    """LIT-11 (Zhang, Dauphin & Ma 2019 §3 and Figure 1)."""
    for m in (2, 3):
        # Θ(η) bounds the change between constants: over a 64-fold range of depth ±0.2 is a factor ≤ 2.3
        claim.compare(f"exponent p of Δf/η ∝ L^p, Fixup, m = {m} (depth-independent: 0)", claimed=0.0,
                      measured=residual.sgd_change_slope(rule="fixup", layers=m), atol=0.2)
    claim.compare("exponent p, rescaling only (last branch layer not zeroed), m = 2", claimed=0.0,
                  measured=residual.sgd_change_slope(rule="fixup-nonzero-last", layers=2), atol=0.2)
    claim.compare("log-growth of Δf/η per block, unscaled He init, m = 2 (> 0: exponential in L)", claimed=0.0,
                  measured=residual.sgd_change_slope(rule="he", layers=2, depths=(2, 4, 8, 16), axis="depth"),
                  relation=">")
    claim.compare("exponent p, every branch × L^(−1/2), m = 3 (< 0: the update vanishes with depth)", claimed=0.0,
                  measured=residual.sgd_change_slope(rule="inverse-sqrt-depth", layers=3), relation="<")
    depths = (4, 16, 64, 256)
    for rule, m in (("fixup", 2), ("fixup", 3), ("inverse-sqrt-depth", 3)):
        changes = residual.sgd_function_changes(rule=rule, layers=m, depths=depths)
        claim.curve("fixup-function-change", f"{rule}, m = {m} (mean of 4 seeds)", depths, changes.mean(axis=0),
                    xlabel="residual branches L", ylabel="Δf/η = ‖∇_θ F‖²", logx=True, logy=True)


@pytest.mark.claim("LIT-12")
def test_clipping_removes_quartic_divergence(claim):
    """LIT-12 (Zhang et al. 2020 abstract and §3; f(x) = x⁴, η = 0.01)."""
    eta = 0.01
    threshold = quartic.gd_divergence_threshold(eta=eta)
    claim.compare("|x₀| beyond which fixed-step GD moves outward (vs 1/√(2η))", claimed=1 / math.sqrt(2 * eta),
                  measured=threshold, rtol=1e-3)
    claim.compare("|x| after 2000 GD steps from x₀ = 100 (diverges: inf)", claimed=100.0,
                  measured=quartic.final_distance(x0=100.0, eta=eta, clip=0.0), relation=">")
    for x0, steps in ((100.0, 2000), (1000.0, 12000)):   # clipped steps move ≤ ηc = 0.1 each
        claim.compare(f"|x| after {steps} clipped-GD steps (‖g‖ ≤ 10) from x₀ = {x0:g} (< 1: converging)",
                      claimed=1.0, measured=quartic.final_distance(x0=x0, eta=eta, clip=10.0, steps=steps),
                      relation="<")


@pytest.mark.claim("LIT-13")
def test_shattered_gradients(claim):
    """LIT-13 (Balduzzi et al. 2017, abstract; §3 Theorems 1 and 3)."""
    claim.compare("per-block slope of log ρ₁, feedforward + BN, depths 1–8 (< 0: decays with depth)", claimed=0.0,
                  measured=shattering.gradient_correlation_slope(architecture="feedforward", depths=(1, 2, 4, 8)),
                  relation="<")
    claim.compare("ρ₁ at depth 16, feedforward + BN (white noise: 0 ± 0.15)", claimed=0.0,
                  measured=shattering.gradient_correlation(architecture="feedforward", depth=16), atol=0.15)
    sub = shattering.gradient_correlation_slope(architecture="resnet", depths=(8, 16, 32, 50), axis="log depth")
    claim.compare("exponent p of ρ₁ ∝ L^p, resnet + BN, depths 8–50 (> −1: sublinear)", claimed=-1.0, measured=sub,
                  relation=">")
    shift = shattering.correlation_offset_change(architecture="feedforward", depth=16)
    claim.compare("|ρ₁(g + 10·std(g)) − ρ₁(g)|, feedforward + BN depth 16, seed 0 (a correlation ignores an offset)",
                  claimed=0.0, measured=shift, relation="<=", atol=shift.bound)
    plain = shattering.gradient_correlation(architecture="feedforward", depth=16, batch_norm=False)
    if claim.compare("ρ₁ at depth 16, feedforward without BN (white noise: 0 ± 0.15)", claimed=0.0, measured=plain,
                     atol=0.15, outside="without batch normalization") is False:
        claim.correct(f"With batch normalization, gradients of a feedforward ReLU net on a 1-D input grid decorrelate "
                      f"with depth to white noise, and skip connections slow the decay to sublinear (ρ₁ ∝ L^{sub:.2f}); "
                      f"without batch normalization the same He-initialised net keeps ρ₁ = {plain:.2f} at depth 16.")
    depths = (1, 2, 4, 8, 16, 32, 50)
    for architecture, bn in (("feedforward", True), ("resnet", True), ("feedforward", False)):
        rho = shattering.correlations(architecture=architecture, depths=depths, batch_norm=bn)
        claim.curve("shattered-gradients", f"{architecture}{' + BN' if bn else ', no BN'} (mean of 8 seeds)",
                    depths, rho.mean(axis=0), xlabel="depth", ylabel="lag-1 autocorrelation ρ₁ of df/dx", logx=True)
    claim.note(f"the resnet's ρ₁ falls like L^{sub:.2f}: sublinear as the abstract says, and flatter than the "
               "1/(β√L) of Theorem 3, stated for resnets with batch normalization and β-rescaling")


@pytest.mark.claim("LIT-14")
def test_saxe_orthogonal_products(claim):
    """LIT-14 (Saxe et al. 2014 abstract and §3, deep linear nets)."""
    depths = (1, 2, 4, 8)
    for depth in (1, 10, 100):
        m = meanfield.product_singular_deviation(depth=depth)
        claim.compare(f"max |σ_i − 1| of a depth-{depth} product of orthogonal 64×64 weights (rounding)",
                      claimed=0.0, measured=m, atol=m.bound)
    cond = [meanfield.product_log10_condition(depth=d).value for d in depths]
    claim.compare("log₁₀ σ_max/σ_min of a depth-8 product of Gaussian N(0, 1/n) weights (> depth 1: spreads)",
                  claimed=cond[0], measured=meanfield.product_log10_condition(depth=8), relation=">")
    claim.curve("saxe-product-conditioning", "Gaussian N(0, 1/n), width 32", depths, cond,
                xlabel="depth", ylabel="log₁₀ σ_max/σ_min")
    claim.curve("saxe-product-conditioning", "orthogonal, width 32", depths,
                [meanfield.product_log10_condition(init="orthogonal", depth=d).value for d in depths],
                xlabel="depth", ylabel="log₁₀ σ_max/σ_min")

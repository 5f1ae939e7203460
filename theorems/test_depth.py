"""Depth-product claims (catalogue: gradcore/claims/depth.toml).

Every number comes from a recipe in ``gradcore.measure.depth`` (the documents' formulas
evaluated literally against torch autograd; precision limits of deep chains) or
``gradcore.measure.transfer`` (the per-layer transfer factor λ over seeded networks).
"""
import math

import pytest
import torch
from hypothesis import strategies as st

from gradcore.measure import depth as M
from gradcore.measure import transfer as T
from gradcore.measure.searched import searched

SEEDS = 8   # networks per λ estimate: Student-t intervals narrow enough to decide each check


@pytest.mark.claim("DEPTH-01")
def test_chain_rule_product_formula(claim, device):
    """DEPTH-01 (000 §链式法则): the literal product formula for ∂L/∂W₁."""
    ratio = M.chain_rule_formula(form="literal", width=1, device=device)
    missing = M.first_layer_derivative(device=device)
    claim.compare("scalar net (width 1, depth 4): formula / autograd", claimed=1.0, measured=ratio, rtol=1e-9,
                  counterexample={"activation": "sigmoid", "missing_factor_sigma'(z1)": missing.value})
    claim.compare("scalar net: formula × σ'(z₁) / autograd", claimed=1.0, rtol=1e-9,
                  measured=M.chain_rule_formula(form="literal_times_first", width=1, device=device))
    err = M.chain_rule_formula(form="literal", width=5, seed=1, device=device)
    claim.compare("matrix net (width 5): ‖literal − autograd‖/‖autograd‖", claimed=0.0, measured=err, atol=1e-9,
                  counterexample={"width": 5, "depth": 4, "seed": 1})
    claim.compare("matrix net: [D₁W₂ᵀD₂⋯W_nᵀD_n ∂L/∂a_n] xᵀ vs autograd", claimed=0.0, atol=1e-9,
                  measured=M.chain_rule_formula(form="backprop", width=5, seed=1, device=device))
    claim.correct(f"the simplified product drops ∂a₁/∂z₁ = σ'(z₁) (scalar ratio {ratio:.3g} here) "
                  f"and, for matrices, reverses the order and the transposes (relative error {err:.2f}); "
                  f"correctly ∂L/∂W₁ = [diag(σ'(z₁)) W₂ᵀ diag(σ'(z₂)) ⋯ W_nᵀ diag(σ'(z_n)) ∂L/∂a_n] xᵀ")


@pytest.mark.claim("DEPTH-02")
def test_separated_weight_and_derivative_products(claim, device):
    """DEPTH-02 (003 §1): weights and derivatives as two separate products."""
    errs = {}
    for act, init in (("relu", "kaiming_normal"), ("tanh", "xavier_normal")):
        errs[act] = M.separated_product_error(activation=act, init=init, device=device)
        claim.compare(f"width 32, depth 8, {act} ({init}): ‖separated − autograd‖/‖autograd‖ (mean over seeds)",
                      claimed=0.0, measured=errs[act], atol=0.5,
                      counterexample={"width": 32, "depth": 8, "activation": act, "init": init})
    claim.compare("width 1: separated product = backprop ∂L/∂z₁ (relative gap)", claimed=0.0, atol=1e-9,
                  measured=M.separated_scalar_gap(device=device))
    claim.correct("only for width 1 (scalars commute); with matrices diag(f'(z_j)) and W_jᵀ interleave "
                  "(∂L/∂zᵢ = D_i W_{i+1}ᵀ D_{i+1} ⋯ W_nᵀ ∂L/∂z_n); the separated form's relative error is "
                  + ", ".join(f"{a}: {e:.2f}" for a, e in errs.items())
                  + " (for ReLU the product of all masks keeps almost no coordinates); ∂L/∂Wᵢ is then that "
                  "vector times a_{i−1}ᵀ")


@pytest.mark.claim("DEPTH-03")
def test_linear_network_chain(claim, device):
    """DEPTH-03 (003 §1): which weights each factor of ŷ = W₃W₂W₁x's chain involves."""
    claim.compare("∂L/∂W₁ = W₂ᵀW₃ᵀ(∂L/∂ŷ)xᵀ (autograd, L = cᵀŷ)", claimed=0.0, atol=1e-12,
                  measured=M.linear_chain(quantity="formula_error", device=device))
    change = M.linear_chain(quantity="w1_dependence", device=device)
    claim.compare("‖Δ(∂L/∂W₁)‖ when W₁ changes (linear loss)", claimed=1.0, measured=change, relation=">=",
                  atol=0.5, counterexample={"W1_shift": "N(0,1)"})
    claim.compare("‖∂ŷ/∂L₃ − I‖ (does it involve W₃?)", claimed=1.0, relation=">=", atol=0.5,
                  measured=M.linear_chain(quantity="yhat_l3_gap", device=device))
    claim.compare("∂L₃/∂L₂ = W₃ (autograd)", claimed=0.0, atol=1e-12,
                  measured=M.linear_chain(quantity="l3_l2_error", device=device))
    claim.compare("∂L₂/∂L₁ = W₂ (autograd)", claimed=0.0, atol=1e-12,
                  measured=M.linear_chain(quantity="l2_l1_error", device=device))
    claim.correct(f"the product is right (∂L/∂W₁ = W₂ᵀW₃ᵀ ∂L/∂ŷ · xᵀ) but the attribution is shifted: ∂ŷ/∂L₃ = I, "
                  f"∂L₃/∂L₂ = W₃, ∂L₂/∂L₁ = W₂, and ∂L₁/∂W₁ involves x, not W₁ (the gradient moved by "
                  f"{change:.1e} when W₁ was resampled)")


@pytest.mark.claim("DEPTH-04")
def test_layer_jacobian_transpose(claim, device):
    """DEPTH-04 (004 定理3.3.3): the layer Jacobian written with W^{(l)T}."""
    square_err = float("nan")
    for shape in ((4, 4), (3, 5)):
        n_out, n_in = shape
        claim.compare(f"{n_out}×{n_in}: autograd J vs diag(σ')W", claimed=0.0, atol=1e-12,
                      measured=M.layer_jacobian_error(shape=shape, form="diag_w", device=device))
        err = M.layer_jacobian_error(shape=shape, form="stated", device=device)
        square_err = err.value if n_out == n_in else square_err
        claim.compare(f"{n_out}×{n_in}: autograd J vs diag(σ')Wᵀ (stated)", claimed=0.0, measured=err, atol=1e-9,
                      counterexample={"shape": list(shape), "note": None if n_out == n_in else "shapes do not conform"})
    claim.correct("∂h^{(l)}/∂h^{(l−1)} = diag(σ'(z^{(l)})) W^{(l)} (shape n_out × n_in); W^{(l)T} belongs to the "
                  f"backward vector–Jacobian product g_{{l−1}} = W^{{(l)T}} diag(σ') g_l (square case: relative error "
                  f"{square_err:.2f}; 3×5: shapes do not conform)")


@pytest.mark.claim("DEPTH-05")
def test_norm_15_amplifies_15_per_layer(claim, device):
    """DEPTH-05 (000 §权重值过大): weights of norm 1.5 amplify the gradient 1.5× per layer."""
    depth, widths = 12, (32, 64)
    cases = {"linear, orthogonal×1.5": ("orthogonal", None), "linear, Gaussian σ_max=1.5": ("xavier_normal", None),
             "ReLU, orthogonal×1.5": ("orthogonal", "relu"), "ReLU, Gaussian σ_max=1.5": ("xavier_normal", "relu")}
    results = {}
    for label, (init, act) in cases.items():
        net = dict(activation=act, init=init, depth=depth, batch=16, spectral=1.5, device=device)
        for width in widths:
            lam = T.transfer_factor(width=width, seeds=SEEDS, **net)
            results[f"{label}, width {width}"] = lam
            claim.compare(f"per-layer gradient factor, {label} (depth {depth}, width {width})", claimed=1.5,
                          measured=lam, counterexample={"network": label, "depth": depth, "width": width})
            claim.compare(f"factor ≤ ‖W‖₂ = 1.5 (submultiplicativity), {label}, width {width}", claimed=1.5,
                          measured=T.transfer_factor(width=width, seeds=SEEDS, quantity="max", **net),
                          relation="<=", atol=1e-9)
        claim.curve("grad-norm-vs-depth-norm1.5", f"{label}, width 64", range(depth + 1),
                    T.gradient_profile(width=64, **net), xlabel="layers backpropagated k", ylabel="‖g‖ / ‖g_L‖",
                    logy=True)
    claim.correct("1.5^k is only the upper bound ∏‖W_i‖₂; measured per-layer factors: "
                  + ", ".join(f"{k}: {v:.3f}" for k, v in results.items())
                  + " — it is reached only when each W_i's top singular directions line up (orthogonal×1.5, all units active)")


@pytest.mark.claim("DEPTH-06")
def test_large_weights_cannot_reverse_vanishing(claim, device):
    """DEPTH-06 (003 §2.b 因素2): with f' < 1, occasional large weights cannot reverse vanishing."""
    factors = {}
    for act in ("tanh", "sigmoid"):
        for gains in ((1.0,), (1.0, 3.0)):
            net = dict(activation=act, init="xavier_normal", width=96, depth=24, batch=16, seeds=SEEDS, gains=gains,
                       device=device)
            label = f"{act}, Xavier × gains {list(gains)} cycled"
            factors[label] = lam = T.transfer_factor(**net)
            claim.compare(f"max {act}'(z) over the network's pre-activations < 1 (Xavier × gains {list(gains)} cycled)",
                          claimed=1.0,
                          measured=T.max_derivative(**net), relation="<")
            claim.compare(f"per-layer gradient factor, {label}", claimed=1.0, measured=lam, relation="<",
                          counterexample={"activation": act, "gains_cycled": list(gains), "depth": 24, "width": 96})
    bad = {k: v for k, v in factors.items() if v.value >= 1}
    claim.correct("with tanh' < 1 everywhere, every other layer at 3× Xavier scale already reverses the trend: "
                  + ", ".join(f"{k}: {v:.3f}/layer" for k, v in factors.items())
                  + f" (growth where ≥ 1: {', '.join(bad) or 'none'}); sigmoid (σ' ≤ 1/4) stays vanishing")


@pytest.mark.claim("DEPTH-07")
def test_quarter_power_ten(claim, device):
    """DEPTH-07 (003 §2.b): 0.25¹⁰ ≈ one millionth, and 0.25¹⁰⁰ is 0."""
    q10 = M.quarter_power_exact(exponent=10)
    claim.compare("0.25¹⁰ (exact)", claimed=0.00000095, measured=q10, rtol=0.01)
    claim.compare("0.25¹⁰ vs one millionth", claimed=1e-6, measured=q10, rtol=0.05)
    sup, _ = searched(st.lists(st.floats(-8, 8), min_size=10, max_size=10), M.sigmoid_derivative_product, "z",
                      candidates=M.sigmoid_product_candidates(10, -8.0, 8.0), device=device)
    claim.compare("max over z of ∏_{i=1}^{10} σ'(z_i) (Hypothesis)", claimed=q10.value, measured=sup,
                  relation="<=", rtol=1e-12)
    claim.compare("0.25¹⁰⁰ in float32", claimed=0.0, atol=1e-40,
                  measured=M.quarter_power(exponent=100, dtype="float32", device=device))
    claim.compare("0.25¹⁰⁰ in float64 (exact 2⁻²⁰⁰)", claimed=M.quarter_power_exact(exponent=100).value, rtol=1e-12,
                  measured=M.quarter_power(exponent=100, dtype="float64", device=device))
    # Whole gradients of real 10-layer sigmoid networks include the weights too.
    ratios = {}
    for init in ("xavier_normal", "kaiming_normal"):
        ratios[init] = T.transfer_factor(activation="sigmoid", init=init, width=128, depth=10, batch=16, seeds=SEEDS,
                                         quantity="ratio", device=device)
        claim.compare(f"‖∂L/∂h₀‖/‖∂L/∂h₁₀‖, 10-layer sigmoid net, {init}, width 128", claimed=1e-6,
                      measured=ratios[init], relation="<=", outside="whole gradient (weights included), not ∏σ'",
                      counterexample={"init": init, "depth": 10, "width": 128})
    claim.correct(f"0.25¹⁰ = {q10:.4g} bounds ∏σ'; a real 10-layer sigmoid network's gradient ratio is "
                  + ", ".join(f"{k}: {v:.2g}" for k, v in ratios.items()) + " — one millionth only at Xavier scale")


@pytest.mark.claim("DEPTH-08")
def test_sigmoid_transfer_factor(claim, device):
    """DEPTH-08 (004 §3.3.1 累积衰减模型): for sigmoid the average λ ≈ 0.1."""
    depth, measured = 20, {}
    for init in ("xavier_normal", "kaiming_normal", "torch_default"):
        for width in (64, 192):
            net = dict(activation="sigmoid", init=init, width=width, depth=depth, batch=32, dtype="float32",
                       device=device)
            lam = measured[f"{init}, width {width}"] = T.transfer_factor(seeds=SEEDS, **net)
            claim.compare(f"λ, sigmoid, {init} (depth {depth}, width {width})", claimed=0.1, measured=lam,
                          counterexample={"activation": "sigmoid", "init": init, "depth": depth, "width": width})
            claim.curve("sigmoid-grad-vs-depth", f"sigmoid, {init}, width {width}", range(depth + 1),
                        T.gradient_profile(**net), xlabel="layers backpropagated k", ylabel="‖g‖ / ‖g_L‖", logy=True)
    claim.correct("λ depends on the initialisation and none of the usual ones gives 0.1: "
                  + ", ".join(f"{k}: {m:.3f} [{m.interval[0]:.3f}, {m.interval[1]:.3f}]" for k, m in measured.items()))


@pytest.mark.claim("DEPTH-09")
def test_underflow_of_01_power_100(claim, device):
    """DEPTH-09 (004 §3.3.1): a gradient of 0.1^{100} is numerically undetectable."""
    depths = {}
    for dtype in ("float16", "bfloat16", "float32", "float64"):
        d = depths[dtype] = M.chain_limit_depth(limit="underflow", gain=0.1, dtype=dtype, device=device)
        claim.compare(f"depth at which ∂L/∂x is exactly 0, torch.{dtype} (λ = 0.1 chain)", claimed=100, measured=d,
                      relation="<=", outside="float64 arithmetic" if dtype == "float64" else None,
                      counterexample={"dtype": dtype})
    claim.compare("10⁻¹⁰⁰ stored in float64", claimed=1e-100, rtol=1e-15,
                  measured=M.stored(value=1e-100, dtype="float64", device=device))
    claim.correct("0.1¹⁰⁰ underflows to exactly 0 in training precisions (gradient exactly 0 from depth "
                  + ", ".join(f"{k}: {v:.0f}" for k, v in depths.items() if k != "float64")
                  + f") but is representable in float64, where the gradient first vanishes at depth "
                  f"{depths['float64']:.0f}")


@pytest.mark.claim("DEPTH-10")
def test_overflow_depth_per_dtype(claim, device):
    """DEPTH-10 (000 §核心概念; 003 §3.a 数值溢出): exploding gradients overflow to inf/NaN."""
    for gain in (1.5, 2.0, 4.0):   # 1.5: the seed's own example gain (000: "1.5^k")
        depths = []
        for dtype in ("float16", "bfloat16", "float32"):
            d = M.chain_limit_depth(limit="overflow", gain=gain, dtype=dtype, device=device)
            predicted = math.log(float(torch.finfo(getattr(torch, dtype)).max)) / math.log(gain)
            depths.append(float("nan") if math.isinf(d.value) else d.value)
            claim.compare(f"overflow depth, torch.{dtype}, linear chain ×{gain} vs log(max)/log({gain}) = {predicted:.1f}",
                          claimed=predicted, measured=d, atol=4)
        claim.curve("overflow-depth", f"orthogonal×{gain} linear chain, width 8", [16, 16.5, 32], depths,
                    xlabel="bits of the dtype (float16, bfloat16 plotted at 16.5, float32)",
                    ylabel="depth where ∂L/∂x has inf/NaN", kind="scatter")


@pytest.mark.claim("DEPTH-11")
def test_exploding_definition(claim, device, seed):
    """DEPTH-11 (004 定义3.3.3): the definition of exploding gradients with exponent L."""
    net = dict(depth=12, width=64, batch=4, gain=3.0, seed=seed, device=device)
    # tanh at 3× Xavier: the backward signal grows while the forward one stays bounded (|tanh| < 1),
    # so the weight gradients ‖∂L/∂W_l‖ = growth of ‖g_l‖ times a bounded ‖h_{l−1}‖ explode too.
    c = M.weight_gradient_growth(quantity="growth", **net)
    claim.compare("measured per-layer growth C of ‖∂L/∂W_l‖ (tanh, 3× Xavier, depth 12)", claimed=1.0, measured=c,
                  relation=">")
    literal = M.weight_gradient_growth(quantity="literal_ratio", **net)
    claim.compare("min_l ‖∂L/∂W_l‖ / (C^L ‖∂L/∂W_L‖) ≥ 1 (literal definition)", claimed=1.0, measured=literal,
                  relation=">=", rtol=1e-6, counterexample={"l": 12, "L": 12, "C": c.value})
    claim.compare("log-linear fit of ‖∂L/∂W_l‖ against L − l (R²): growth is geometric in L − l", claimed=1.0,
                  measured=M.weight_gradient_growth(quantity="r2", **net), relation=">=", atol=0.05)
    shifted = M.weight_gradient_growth(quantity="shifted_ratio", **net)
    claim.note(f"with exponent L − l and the same C, min_l ratio = {shifted:.3f} (finite-width fluctuation)")
    claim.correct(f"with exponent L the definition fails at l = L for every C > 1 (here C = {c:.4f}, ratio "
                  f"{literal:.3g}); it should read ‖∂L/∂w^(l)‖ ≥ C^(L−l) ‖∂L/∂w^(L)‖")

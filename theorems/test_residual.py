"""Residual-connection claims (catalogue: gradcore/claims/residual.toml)."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import product
from typing import Any

import pytest
from hypothesis import strategies as st

from gradcore.measure import Measurement
from gradcore.measure import residual as M
from gradcore.measure.searched import search_bound, searched_residual
from gradcore.measure.search import Found, find_counterexample, maximize, minimize

ACTS = sorted(M.ACT_DERIV)
BRANCH = ("seed", "width", "gain", "activation")
BRANCHES = st.tuples(st.integers(0, 2 ** 16), st.integers(1, 10), st.floats(0.0, 3.0), st.sampled_from(ACTS))


def _space(width: str = "1–10", gain: str = "0–3", extra: str = "") -> str:
    """The searched branch space, for the record's sizes."""
    return f"seed 0–65536, width {width}, gain {gain}, tanh/relu/sigmoid{extra}; Hypothesis and the space's corners"


def _corners(widths: Sequence[int], gains: Sequence[float], *extra: Sequence[float]) -> list[tuple[str, tuple]]:
    """Structured candidates: the ends of the branch space (narrowest/widest, no branch/largest
    gain, every activation, and the ends of any extra parameter) at seed 0."""
    return [(f"width {w}, gain {g:g}, {a}" + "".join(f", {e:g}" for e in es), (0, w, g, a, *es))
            for w, g, a, *es in product(widths, gains, ACTS, *extra)]


def _at(recipe: Callable[..., Measurement], names: Sequence[str], example: tuple, **fixed: Any) -> Measurement:
    return recipe(**dict(zip(names, example)), **fixed)


def _bound(found: Found, recipe: Callable[..., Measurement], names: Sequence[str], direction: str, space: str,
           **fixed: Any) -> Measurement:
    """A searched extremum as the bound it is, reproduced by the recipe at the winning example
    (whose conditioning it keeps: the weights are float32 draws)."""
    point = _at(recipe, names, found.example, **fixed)
    return search_bound(found, point, searched=space).with_(direction=direction, conditioning=point.conditioning)


@pytest.mark.claim("RES-01")
def test_residual_jacobian_identity_plus_branch(claim, device):
    """RES-01 (004 §3.3.2 eq 3.3.7; 002 §残差与密集连接): the block Jacobian is I + ∂F/∂x."""
    for dtype in ("float32", "float64"):
        def error(p, dtype=dtype):
            return M.branch_jacobian_error(**dict(zip(BRANCH, p)), dtype=dtype, device=device).value
        found = maximize(BRANCHES, error, candidates=_corners((1, 10), (0.0, 1.0, 3.0)))
        m = searched_residual(found, _at(M.branch_jacobian_error, BRANCH, found.example, dtype=dtype, device=device),
                              searched=_space())
        claim.compare(f"max relative |autograd ∂ŷ/∂x − (I + W₂diag(σ')W₁)| over searched blocks, {dtype}",
                      claimed=0.0, measured=m, atol=m.bound)


@pytest.mark.claim("RES-02")
def test_small_branch_keeps_jacobian_near_identity(claim, device):
    """RES-02 (004 §3.3.2): a small ∂F/∂x keeps ∂ŷ/∂x ≈ I."""
    small = st.tuples(st.integers(0, 2 ** 16), st.integers(1, 10), st.floats(0.0, 0.3), st.sampled_from(ACTS))
    found = maximize(small, lambda p: M.gain_band_excess(**dict(zip(BRANCH, p)), device=device).value,
                     candidates=_corners((1, 10), (0.0, 0.3)))
    m = searched_residual(found, _at(M.gain_band_excess, BRANCH, found.example, device=device),
                          searched=_space(gain="0–0.3"))
    claim.compare("max over blocks of max_i |σ_i(I+F') − 1| − ‖F'‖₂ (≤ 0: gain within 1 ± ‖F'‖)",
                  claimed=0.0, measured=m, relation="<=", atol=m.bound)
    dev = max((M.gradient_gain_deviation(seed=s, device=device) for s in range(20)), key=float)
    claim.compare("max |‖(I+F')ᵀg‖/‖g‖ − 1|, 20 tanh branches of gain 0.05, width 16",
                  claimed=0.0, measured=dev, atol=0.1)


@pytest.mark.claim("RES-03")
def test_residual_backward_recursion(claim, device):
    """RES-03 (004 §3.3.2 eq 3.3.8, row-vector convention): the per-block backward recursion."""
    worst = max((M.backward_recursion_error(seed=10 * s, device=device) for s in range(5)), key=float)
    claim.compare("max relative error of eq 3.3.8 vs autograd, 5 stacks × 5 blocks, width 6",
                  claimed=0.0, measured=worst, atol=worst.bound)


@pytest.mark.claim("RES-04")
def test_residual_product_order(claim, device):
    """RES-04 (004 §3.3.2 eq 3.3.9): the order of the product of block Jacobians."""
    space = st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(0, 20))
    names = ("width", "depth", "seed")
    ex = find_counterexample(space, lambda p: _at(M.product_order_error, names, p, device=device).value > 1e-6)
    assert ex is not None, "no counterexample: the written order always matched autograd"
    width, depth, seed = ex
    written = _at(M.product_order_error, names, ex, device=device)
    reversed_ = _at(M.product_order_error, names, ex, order="reversed", device=device)
    claim.compare("relative error of ∏_{l=1..L} (left to right) vs autograd, shrunk example",
                  claimed=0.0, measured=written, atol=1e-9,
                  counterexample={"width": width, "blocks": depth, "seed": seed})
    claim.compare("relative error of ∏_{l=L..1} (right to left) vs autograd, same example",
                  claimed=0.0, measured=reversed_, atol=reversed_.bound)
    typical = M.mean_product_order_error(device=device)
    claim.compare("mean relative error of the written order, 5 stacks × 5 blocks, width 6",
                  claimed=0.0, measured=typical, atol=1e-9,
                  counterexample={"width": 6, "blocks": 5, "seeds": [0, 10, 20, 30, 40]})
    scalar = max((M.product_order_error(width=1, depth=6, seed=s, device=device) for s in range(5)), key=float)
    claim.compare("written order, width 1 (commuting Jacobians), 5 stacks of 6 blocks",
                  claimed=0.0, measured=scalar, atol=scalar.bound)
    claim.correct(f"∂L/∂x_1 = ∂L/∂x_{{L+1}} (I+∂F/∂x_L)(I+∂F/∂x_{{L-1}})…(I+∂F/∂x_1): the product "
                  f"runs l = L…1 (error {reversed_:.1e} vs autograd); the written order l = 1…L is off "
                  f"by {written:.2f} (relative) for width {width}, {depth} blocks ({typical:.2f} on average "
                  f"for width 6, 5 blocks), and agrees only when the Jacobians commute (width 1: {scalar:.1e}).")


@pytest.mark.claim("RES-05")
def test_identity_path_lossless_lower_bound(claim, device):
    """RES-05 (004 §3.3.2): the identity path as a lossless lower bound on the gradient."""
    wide = BRANCHES.map(lambda p: (p[0], max(p[1], 2), *p[2:]))   # σ_min needs width ≥ 2 to differ from σ_max
    found = minimize(wide, lambda p: M.identity_path_min_gain(**dict(zip(BRANCH, p)), device=device).value,
                     candidates=_corners((2, 10), (0.0, 1.0, 3.0)))
    smin = _bound(found, M.identity_path_min_gain, BRANCH, "upper", _space(width="2–10"), device=device)
    seed, width, gain, act = found.example
    claim.compare("min over searched blocks and g of ‖(I+F')ᵀg‖/‖g‖", claimed=1.0, measured=smin,
                  relation=">=", atol=1e-9,
                  counterexample={"seed": seed, "width": width, "gain": gain, "activation": act})
    share = M.shrinking_share(device=device)
    claim.note(f"a share {share:.2f} (95% CI [{share.interval[0]:.2f}, {share.interval[1]:.2f}]) of "
               f"{share.n} random (block, g) pairs at Kaiming init (tanh, width 16) shrink the gradient")
    deep = M.half_branch_stack_gain(device=device)
    claim.compare("‖∂L/∂x_1‖/‖∂L/∂x_17‖ through 16 blocks with F = −x/2", claimed=1.0, measured=deep,
                  relation=">=", atol=1e-9, counterexample={"branch": "F(x) = -x/2", "blocks": 16})
    claim.correct(f"the identity path bounds the gain below only by 1 − ‖F'‖₂ (Weyl; measured in RES-02), not by 1: "
                  f"searched random blocks reach min ratio {smin:.3f}; a share {share:.2f} of random (block, g) "
                  f"pairs shrink the gradient; F = −x/2 over 16 blocks gives {deep:.2e} = 2^-16.")


@pytest.mark.claim("RES-06")
def test_residual_explosion_when_block_norm_exceeds_one(claim, device):
    """RES-06 (002 §残差与密集连接): blocks with ‖I + f'‖₂ > 1 can still explode the gradient."""
    rate = M.he_relu_growth_rate(device=device)
    log_norm = M.he_relu_block_norms(quantity="mean log", device=device)
    claim.compare("fraction of blocks with ‖I + f'‖₂ > 1 (He-init ReLU branches)", claimed=1.0,
                  measured=M.he_relu_block_norms(quantity="share above 1", device=device))
    claim.compare("per-block growth rate d log‖∂L/∂x_1‖ / dL", claimed=0.0, measured=rate, relation=">")
    # the rate is an estimate over seeds: it is judged, and guarded, by its interval
    claim.compare("growth rate ≤ mean log ‖I + f'_l‖₂ (submultiplicativity)", claimed=log_norm,
                  measured=rate, relation="<=")
    claim.note(f"gradient grows ×{math.exp(rate):.3f} per block; mean ‖I+f'‖₂ = {math.exp(log_norm):.3f}")
    depths = rate.sizes["depths"]
    claim.curve("residual-explosion", f"He-ReLU residual stack, width {rate.sizes['width']}, {rate.n} seeds",
                depths, M.he_relu_curve(depths=depths, device=device), xlabel="blocks L",
                ylabel="‖∂L/∂x_1‖/‖∂L/∂x_L+1‖", logy=True)


@pytest.mark.claim("RES-07")
def test_scaled_residual_spectral_norm(claim, device):
    """RES-07 (002 §残差与密集连接): the scaled residual (1−β)x + αf(x) with α, β chosen for norm ≤ 1."""
    names = (*BRANCH, "beta")
    space = st.tuples(st.integers(0, 2 ** 16), st.integers(1, 10), st.floats(0.05, 3.0), st.sampled_from(ACTS),
                      st.floats(0.0, 2.0))
    found = maximize(space, lambda p: _at(M.scaled_block_norm, names, p, device=device).value,
                     candidates=_corners((1, 10), (0.05, 3.0), (0.0, 1.0, 2.0)))
    top = _bound(found, M.scaled_block_norm, names, "lower", _space(gain="0.05–3", extra=", β 0–2"),
                 device=device)
    claim.compare("max ‖(1−β)I + αF'‖₂ with α = (1 − |1−β|)/Lip(f) over searched blocks", claimed=1.0,
                  measured=top, relation="<=", atol=1e-12)
    # the plain residual (α = 1, β = 0) on 20 random Kaiming-init tanh branches, width 8
    plain = [M.scaled_block_norm(seed=s, width=8, gain=1.0, activation="tanh", beta=0.0, alpha=1.0, device=device)
             for s in range(20)]
    worst = max(plain, key=float)
    claim.note(f"{sum(n.value > 1 for n in plain)}/20 plain residual blocks have ‖I + F'‖₂ > 1")
    claim.compare("max ‖I + F'‖₂ for α = 1, β = 0 (|1−β| + α·Lip > 1), 20 branches", claimed=1.0, measured=worst,
                  relation="<=", outside="|1−β| + |α|·Lip(f) > 1",
                  counterexample={"seed": plain.index(worst), "width": 8, "activation": "tanh", "alpha": 1.0,
                                "beta": 0.0})
    vanish = M.safely_scaled_stack_gain(device=device)
    beta = 0.1
    claim.correct(f"sufficient condition |1−β| + |α|·Lip(f) ≤ 1 (measured max norm {top:.4f}); the plain "
                  f"residual α=1, β=0 violates it (norm {worst:.3f}). β = 0 forces α = 0, and with β = {beta} "
                  f"the gradient after {vanish.sizes['blocks']} blocks is ×{vanish:.2e}: explosion is traded for "
                  f"vanishing.")


@pytest.mark.claim("RES-08")
def test_identity_shortcut_avoids_multiplicative_decay(claim, device):
    """RES-08 (003 §4 残差连接; 002 §残差与密集连接): the +x shortcut avoids multiplicative decay."""
    slope = {form: M.shortcut_depth_slope(form=form, device=device) for form in M.SHORTCUT_FORMS}
    claim.compare("plain tanh net: per-layer log-gradient slope (decay < 0)", claimed=0.0,
                  measured=slope["plain"], relation="<")
    claim.compare("same layers with +x: per-layer log-gradient slope (no decay: ≥ 0)", claimed=0.0,
                  measured=slope["residual"], relation=">=")
    for form, m in slope.items():
        claim.curve("residual-vs-plain-depth", f"{form} (tanh, width {m.sizes['width']}, {m.n} seeds)",
                    m.sizes["depths"], M.shortcut_curve(form=form, device=device), xlabel="depth L",
                    ylabel="‖∂L/∂x_1‖/‖∂L/∂x_L+1‖", logy=True)
    he = M.he_relu_log_growth(device=device)
    claim.compare("002's 'or explosion': per-block log-gradient growth of a He-ReLU residual stack (≤ 0)",
                  claimed=0.0, measured=he, relation="<=", atol=0.01,
                  outside="branches with ‖I + f'‖₂ > 1 (002's own caveat, RES-06)",
                  counterexample={"branch": "Linear-ReLU-Linear, Kaiming normal × √2, width 16", "blocks": 32,
                                "gradient_gain": math.exp(32 * he.value)})
    claim.correct(f"the shortcut removes the decay (slope {slope['residual']:+.3f}/layer vs plain "
                  f"{slope['plain']:+.3f}) but does not prevent explosion: a He-init ReLU residual stack "
                  f"grows ×{math.exp(he.value):.2f} per block; the safely scaled form decays "
                  f"({slope['scaled']:+.3f}/layer).")

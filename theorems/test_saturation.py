"""Saturation claims (catalogue: gradcore/claims/saturation.toml), 004 §3.3.1.

Saturation regions are measured by the recipes in ``gradcore.measure.saturation`` (edges
of {|f'| < ε} and of output saturation at 30 digits from the sympy twins, grids in torch)
and ``gradcore.measure.derivative``; Hypothesis searches for counterexamples.
"""
import math

import pytest
from hypothesis import strategies as st

from gradcore.measure import derivative as D
from gradcore.measure import saturation as S
from gradcore.measure.search import find_counterexample

EPSILONS = ((1, 1000), (1, 100), (1, 10), (6, 25))


def _delta(eps: float) -> float:
    """The claimed closed form: d(1 − d) = ε has the root δ(ε) = (1 − √(1 − 4ε))/2 below 1/2."""
    return (1 - math.sqrt(1 - 4 * eps)) / 2


@pytest.mark.claim("SAT-01")
def test_output_vs_gradient_saturation(claim):
    """SAT-01 (004 §3.3.1): output and gradient saturation are closely related but not equivalent."""
    claim.compare("σ' ≡ σ(1 − σ) = d_σ(1 − d_σ): output and gradient saturation coincide for sigmoid",
                  claimed=0.0, measured=D.derivative_identity(activation="sigmoid", form="f(x)*(1 - f(x))"))
    # {σ' < ε} = {d_σ < δ(ε)}: the two regions have the same edge when δ solves d(1 − d) = ε.
    claim.compare("{σ' < ε} = {d_σ < δ(ε)} has a closed-form δ (roots of d(1−d) = ε)",
                  claimed=S.saturation_edge(activation="sigmoid", epsilon=0.01, method="sympy").value,
                  measured=S.saturation_edge(activation="sigmoid", epsilon=_delta(0.01), of="output", method="sympy"))
    claim.compare("tanh' ≡ 1 − tanh²: {tanh' < ε} = {|tanh| > √(1−ε)}", claimed=0.0,
                  measured=D.derivative_identity(activation="tanh", form="1 - f(x)**2"))
    # Not equivalent in general: GELU's derivative vanishes at x* ≈ −0.75 while GELU(x*) is far
    # from its asymptotic value 0 (x → −∞); there is gradient saturation without output saturation.
    stationary = dict(activation="gelu", lo=-3.0, hi=-0.1)
    claim.compare("|GELU'(x*)| at its stationary point x* ≈ −0.75", claimed=0.0,
                  measured=D.derivative_root(**stationary, quantity="residual"), atol=1e-12)
    x_star = D.derivative_root(**stationary)
    claim.compare("distance of GELU(x*) from its asymptote 0 (no output saturation)", claimed=0.05,
                  measured=S.output_distance(activation="gelu", x=x_star.value), relation=">")
    claim.note(f"GELU stationary point x* = {x_star:.6f}, "
               f"GELU(x*) = {D.derivative_root(**stationary, quantity='f'):.6f}")


@pytest.mark.claim("SAT-02")
def test_sigmoid_saturation_region_solvable(claim):
    """SAT-02 (004 定理3.3.1): for every ε > 0 the saturation region has two exact edges x₁ < x₂."""
    for p, q in EPSILONS:
        eps, label = p / q, f"{p}/{q}"
        x2 = S.saturation_edge(activation="sigmoid", epsilon=eps, method="sympy")
        x1 = S.saturation_edge(activation="sigmoid", epsilon=eps, side="left", method="sympy")
        claim.compare(f"σ'(x₂) = ε at ε = {label}", claimed=eps,
                      measured=D.derivative_at(activation="sigmoid", x=x2.value), atol=1e-12)
        claim.compare(f"x₁ = −x₂ at ε = {label} (σ' even)", claimed=-x2.value, measured=x1, atol=1e-12)
        claim.compare(f"σ' < ε exactly beyond x₂ at ε = {label} (torch)", claimed=eps, relation="<", atol=0.0,
                      measured=D.derivative_at(activation="sigmoid", x=1.01 * x2.value))
        claim.compare(f"σ' > ε just inside x₂ at ε = {label} (torch)", claimed=eps, relation=">", atol=0.0,
                      measured=D.derivative_at(activation="sigmoid", x=0.99 * x2.value))
    # Search every ε > 0 for one where σ'(x) = ε does not have two solutions.
    bad = find_counterexample(st.floats(1e-6, 10.0), lambda e: S.crossings("sigmoid", e) != 2)
    claim.compare("every ε > 0 gives two solutions x₁ < x₂ (Hypothesis)", claimed=2, atol=0,
                  measured=S.level_crossings(activation="sigmoid", level=0.01 if bad is None else bad),
                  counterexample={"epsilon": bad})
    peak = D.derivative_extremum(activation="sigmoid", method="sympy")
    x2 = S.saturation_edge(activation="sigmoid", epsilon=0.01, method="sympy")
    claim.correct(f"two solutions exist only for 0 < ε < sup σ' = {peak:g} (at ε = 0.01, x₂ = −x₁ = {x2:.4f}); "
                  f"for ε = {peak:g} the region is ℝ∖{{0}} and for ε > {peak:g} (e.g. Hypothesis's ε = {bad}) "
                  f"it is all of ℝ")


@pytest.mark.claim("SAT-03")
def test_sigmoid_threshold_at_eps_001(claim):
    """SAT-03 (004 定理3.3.1): the ε = 0.01 saturation threshold of the sigmoid."""
    x2 = S.saturation_edge(activation="sigmoid", epsilon=0.01, method="sympy")
    at3 = D.derivative_at(activation="sigmoid", x=3.0)
    claim.compare("exact x₂ for ε = 0.01", claimed=3.0, measured=x2, atol=0.05)
    claim.compare("max σ'(x) over |x| ≥ 3 (attained at |x| = 3)", claimed=0.01, measured=at3, relation="<")
    claim.correct(f"σ'(3) = {at3:.4f} > 0.01; for ε = 0.01 the saturation region is |x| > {x2:.4f} "
                  f"(|x| ≥ 3 corresponds to ε = {at3:.4f})")


@pytest.mark.claim("SAT-04")
def test_sigmoid_saturation_depth_at_4(claim, device):
    """SAT-04 (004 §3.3.1 饱和深度): the sigmoid's output saturation depth beyond |x| = 4."""
    exact = S.output_distance(activation="sigmoid", x=4.0)
    claim.compare("d_σ(4) = 1/(1 + e⁴) (exact)", claimed=0.018, measured=exact, relation="<=")
    claim.compare("sup of d_σ over |x| ≥ 4 (torch, float64 grid)", claimed=0.018, relation="<=",
                  measured=S.output_distance_sup(activation="sigmoid", beyond=4.0, device=device))
    claim.note(f"margin: 0.018 − d_σ(4) = {0.018 - exact.value:.2e}")


@pytest.mark.claim("SAT-05")
def test_tanh_saturation_region(claim):
    """SAT-05 (004 定理3.3.2): tanh's gradient saturation region as stated, {|tanh x| > 1 − ε}."""
    def mismatch(pair: tuple[float, float]) -> bool:
        eps, x = pair
        t = math.tanh(x)
        return abs(t) > 1 - eps and 1 - t * t >= eps

    bad = find_counterexample(st.tuples(st.floats(1e-4, 0.5), st.floats(-10, 10)), mismatch)
    eps, x_bad = bad if bad is not None else (0.01, 0.0)
    claim.compare("no (ε, x) with |tanh x| > 1 − ε but tanh'(x) ≥ ε (Hypothesis)", claimed=eps, relation="<",
                  atol=0.0, measured=D.derivative_at(activation="tanh", x=x_bad),
                  counterexample={"epsilon": eps, "x": x_bad, "|tanh x| > 1 - epsilon": bad is not None})
    stated = S.saturation_edge(activation="tanh", epsilon=0.01, of="output", method="sympy")
    gradient = S.saturation_edge(activation="tanh", epsilon=0.01, method="sympy")
    claim.compare("boundary at ε = 0.01: artanh(1 − ε) vs the gradient region's artanh(√(1 − ε))",
                  claimed=gradient.value, measured=stated, atol=1e-3)
    # The stated set is exactly the gradient region for the threshold 2ε − ε²: the same edge.
    claim.compare("{|tanh| > 1 − ε} = {tanh' < 2ε − ε²} (sympy)", claimed=stated.value, atol=1e-12,
                  measured=S.saturation_edge(activation="tanh", epsilon=2 * 0.01 - 0.01 ** 2, method="sympy"))
    claim.correct(f"{{|tanh x| > 1 − ε}} = {{tanh' < 2ε − ε²}}; the gradient region {{tanh' < ε}} is "
                  f"{{|tanh x| > √(1 − ε)}}, e.g. |x| > {gradient:.4f} for ε = 0.01, not |x| > {stated:.4f}")


@pytest.mark.claim("SAT-06")
def test_sigmoid_saturates_for_negative_inputs_too(claim):
    """SAT-06 (004 定理3.3.2): whether only tanh, not the sigmoid, saturates for negative inputs."""
    claim.compare("σ'(−x) − σ'(x) ≡ 0: the sigmoid's saturation region is symmetric too", claimed=0.0,
                  measured=D.derivative_identity(activation="sigmoid", form="df(-x)"))
    # The claimed contrast needs σ' ≥ ε on every negative input; search for one below ε = 0.01.
    neg = find_counterexample(st.floats(-50, -1e-3),
                              lambda x: D.derivative_at(activation="sigmoid", x=x).value < 0.01)
    at = D.derivative_at(activation="sigmoid", x=-1.0 if neg is None else neg)
    claim.compare("no x < 0 with σ'(x) < 0.01 (sigmoid without negative-input saturation; Hypothesis)",
                  claimed=0.01, measured=at, relation=">=", atol=0.0, counterexample={"x": neg})
    if neg is not None:
        claim.correct(f"σ'(−x) = σ'(x), so sigmoid saturates for negative inputs exactly as for positive ones "
                      f"(e.g. σ'({neg:g}) = {at:.4f}); zero-centring changes tanh's output, not the symmetry of "
                      f"saturation")

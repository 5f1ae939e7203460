"""Activation-function claims (catalogue: gradcore/claims/activations.toml).

Every number comes from the recipes in ``gradcore.measure.derivative`` and
``gradcore.measure.saturation`` (torch's functions and autograd, their exact sympy twins,
Hypothesis searches recorded as search bounds) — the same recipes ``gradcore check``
applies to a user's activation.
"""
import pytest
import torch
from hypothesis import strategies as st

from gradcore.measure import derivative as D
from gradcore.measure import saturation as S
from gradcore.measure.search import find_counterexample


@pytest.mark.claim("ACT-01")
def test_sigmoid_derivative_maximum(claim):
    """ACT-01 (003 §2.b, 004 §3.3.1): the sigmoid derivative's peak and where it is."""
    claim.compare("max σ'(x)", claimed=0.25, measured=D.derivative_extremum(activation="sigmoid", method="sympy"))
    claim.compare("argmax σ'(x)", claimed=0.0,
                  measured=D.derivative_extremum(activation="sigmoid", method="sympy", quantity="argmax"))


def _subnormal(dtype: str) -> float:
    """The dtype's smallest positive value: |f'| below it means f' is exactly 0 there."""
    info = torch.finfo(getattr(torch, dtype))
    return float(info.tiny * info.eps)


@pytest.mark.claim("ACT-02")
def test_tanh_derivative_range(claim, device):
    """ACT-02 (003 §2.b, 004 定理3.3.2): tanh' ranges over (0, 1] and peaks at 4× σ''s peak."""
    peak = D.derivative_extremum(activation="tanh", method="sympy")
    sigmoid_peak = D.derivative_extremum(activation="sigmoid", method="sympy")
    claim.compare("max tanh'(x)", claimed=1.0, measured=peak)
    claim.compare("argmax tanh'(x)", claimed=0.0,
                  measured=D.derivative_extremum(activation="tanh", method="sympy", quantity="argmax"))
    claim.compare("tanh' peak / σ' peak", claimed=4.0, measured=peak.value / sigmoid_peak.value, kind="exact")
    # (0, 1]: tanh' = sech² > 0 everywhere, and its infimum 0 is a limit, never attained.
    claim.compare("tanh' ≡ sech² (so tanh' > 0)", claimed=0.0,
                  measured=D.derivative_identity(activation="tanh", form="sech(x)**2"))
    claim.compare("inf tanh' (limit at ±∞)", claimed=0.0,
                  measured=D.derivative_extremum(activation="tanh", extremum="inf", method="sympy"))
    edges = {}
    for dtype in ("float32", "float16"):
        # Where autograd's tanh' becomes exactly 0: the saturated tail {|f'| < smallest subnormal}.
        x0 = edges[dtype] = S.saturation_edge(activation="tanh", epsilon=_subnormal(dtype), lo=0.0, hi=32.0,
                                              points=2 ** 17, dtype=dtype, device=device)
        claim.compare(f"tanh'(x) > 0 in torch.{dtype} at x = {x0:.3f}", claimed=0.0,
                      measured=D.derivative_at(activation="tanh", x=x0.value, dtype=dtype, device=device),
                      relation=">", atol=0.0, outside="finite-precision evaluation")
    claim.correct(f"exactly, tanh'(x) ∈ (0, 1] with peak {peak:g} at x = 0 "
                  f"({peak.value / sigmoid_peak.value:g}× σ''s peak); but autograd's tanh' is exactly 0 for "
                  f"|x| ≥ {edges['float32']:.3f} in float32 and |x| ≥ {edges['float16']:.3f} in float16")


ACT03 = ("sigmoid", "tanh", "relu", "gelu", "gelu_tanh")


@pytest.mark.claim("ACT-03")
def test_common_derivatives_at_most_one(claim, device):
    """ACT-03 (000 §主要"罪魁祸首"): common activations' derivatives are at most 1.

    sup |f'| is the recipe the activation contract's derivative-bound clause uses.
    """
    for name in ACT03:
        named = name in ("sigmoid", "tanh", "relu")
        outside = None if named else "GELU is not among the activations named"
        claim.compare(f"sup {name}'(x)", claimed=1.0, measured=D.derivative_extremum(activation=name, device=device),
                      relation="<=", outside=outside)
        claim.compare(f"sup {name}'(x) (sympy)", claimed=1.0,
                      measured=D.derivative_extremum(activation=name, method="sympy"), relation="<=", outside=outside)
    gelu = D.derivative_extremum(activation="gelu", method="sympy")
    at = D.derivative_extremum(activation="gelu", method="sympy", quantity="argmax")
    claim.correct(f"true of sigmoid (≤ 1/4), tanh (≤ 1) and ReLU (≤ 1), but not of every common activation: "
                  f"GELU' reaches {gelu:.4f} at x = {at:.4f} (√2)")


DTYPES = ("float16", "bfloat16", "float32", "float64")


@pytest.mark.claim("ACT-04")
def test_relu_derivative_one_when_active(claim, device):
    """ACT-04 (000, 003 §4, 004 原则3.3.1): ReLU's derivative is 1 wherever x > 0."""
    for dtype in DTYPES:
        info = torch.finfo(getattr(torch, dtype))
        # inf of relu' over (0, max]: a log-grid from the smallest subnormal, the ends and a search.
        low = D.derivative_extremum(activation="relu", extremum="inf", absolute=False, lo=_subnormal(dtype),
                                    hi=float(info.max) / 2, points=2001, spacing="log", ends=(), dtype=dtype,
                                    device=device)
        claim.compare(f"relu'(x) = 1 for every x > 0 representable in torch.{dtype}", claimed=1.0, measured=low,
                      atol=0.0)
    claim.compare("min relu' on a log-grid of (1e-40, 1e30)", claimed=1.0, atol=0.0,
                  measured=D.derivative_extremum(activation="relu", extremum="inf", absolute=False, lo=1e-40,
                                               hi=1e30, points=1000, spacing="log", ends=(), device=device))
    claim.note(f"at the kink autograd returns relu'(0) = {D.derivative_at(activation='relu', x=0.0):g}")


RELU_FAMILY = ("relu", "leaky_relu", "prelu", "elu")


@pytest.mark.claim("ACT-05")
def test_relu_family_derivative_product_no_longer_decays(claim, device):
    """ACT-05 (003 §4): with ReLU and its variants the product of f' factors is no longer a source of decay."""
    exact = {}
    for name in RELU_FAMILY:
        exact[name] = D.derivative_rms(activation=name)
        claim.compare(f"√E[{name}'(z)²], z~N(0,1) (exact, sympy)", claimed=1.0, measured=exact[name], atol=0.02)
        # Gradient energy kept by one diag(f'(z)) factor, per sample row: ‖f'(z)⊙g‖/‖g‖ with g = 1.
        claim.compare(f"autograd ‖{name}'(z)⊙1‖/‖1‖ matches the exact value", claimed=exact[name].value, atol=0.0,
                      measured=D.derivative_rms(activation=name, method="sample", device=device))
    claim.correct(f"f' = 1 for z > 0, but at Gaussian pre-activations each diag(f') keeps only "
                  f"{exact['relu']:.4f} (ReLU, Leaky ReLU) to {exact['elu']:.4f} (ELU) of the gradient norm per "
                  f"layer; the product still decays unless the weights compensate (He's factor 2)")


@pytest.mark.claim("ACT-06")
def test_gelu_derivative_mostly_near_one(claim, device):
    """ACT-06 (004 原则3.3.2): GELU's derivative is close to 1 in most regions."""
    hi = D.derivative_extremum(activation="gelu", absolute=False, method="sympy")
    lo = D.derivative_extremum(activation="gelu", extremum="inf", absolute=False, method="sympy")
    claim.compare("sup GELU' (exact, at x = √2)", claimed=1.0, measured=hi, atol=0.1,
                  outside="the sup is not the claim; reported because it exceeds 1")
    claim.compare("inf GELU' (exact, at x = −√2)", claimed=0.0, measured=lo, relation=">=", atol=0.0,
                  outside="the claim does not say GELU' is non-negative")
    near = dict(activation="gelu", center=1.0, radius=0.1, inclusive=True, lo=-6.0, hi=6.0, points=1200001,
                device=device)
    frac_gauss = S.derivative_share(**near, weight="normal")
    frac_interval = S.derivative_share(**near, weight="uniform")
    claim.compare("share of z~N(0,1) with |GELU'(z) − 1| ≤ 0.1", claimed=0.5, measured=frac_gauss,
                  relation=">=", atol=0.0)
    claim.compare("share of [−6, 6] with |GELU'(x) − 1| ≤ 0.1", claimed=0.5, measured=frac_interval,
                  relation=">=", atol=0.0)
    xs, ys = D.curve("gelu", -6.0, 6.0, 201, device)
    claim.curve("gelu-derivative", "GELU' (float64, torch autograd)", xs, ys, xlabel="x", ylabel="f'(x)")
    claim.correct(f"GELU' = Φ(x) + xφ(x) ranges over [{lo:.4f}, {hi:.4f}]; it is within 0.1 of 1 on only "
                  f"{frac_gauss.value:.1%} of N(0,1) inputs and {frac_interval.value:.1%} of [−6, 6] (≈ 0 for x ≪ 0)")


@pytest.mark.claim("ACT-07")
def test_relu_has_no_zero_derivative(claim, device):
    """ACT-07 (004 原则3.3.1): ReLU has a non-zero derivative everywhere and does not saturate."""
    # x = 0 is the kink (autograd's subgradient choice 0); look away from it.
    zero = find_counterexample(st.floats(-10, 10).filter(lambda x: x != 0.0),
                               lambda x: D.derivative_at(activation="relu", x=x, device=device).value == 0.0)
    at = 1.0 if zero is None else zero   # where the search looked last: a point with relu' ≠ 0 if none found
    claim.compare("a real x with relu'(x) = 0 (Hypothesis)", claimed=0.0, relation=">", atol=0.0,
                  measured=D.derivative_at(activation="relu", x=at, device=device), counterexample={"x": zero})
    share = S.sampled_derivative_share(activation="relu", device=device)
    claim.compare("share of z~N(0,1) with relu'(z) = 0 (gradient saturation, Def. 3.3.2)", claimed=0.0,
                  measured=share, atol=0.0)
    claim.correct(f"ReLU' = 0 on the whole half-line x ≤ 0 ({share:.3f} of N(0,1) inputs, e.g. x = {at:g}): "
                  f"ReLU is free of saturation only on x > 0; Leaky ReLU/PReLU/ELU are the variants with non-zero "
                  f"derivative")

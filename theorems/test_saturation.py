"""Saturation claims (catalogue: gradcore/claims/saturation.toml), 004 §3.3.1.

Saturation regions are solved exactly with sympy on the activations' sympy twins and
probed with Hypothesis; numeric spot checks use torch's functions.
"""
import math
import textwrap

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import strategies as st

from gradcore import activations as A
from gradcore.verify.search import find_counterexample

X = sp.Symbol("x", real=True)
EPS = sp.Symbol("epsilon", positive=True)


def _snippet(code: str) -> str:
    """A counterexample's copy-paste reproduction: ``code`` without its common indentation."""
    return textwrap.dedent(code).strip()


def _sigmoid_threshold() -> sp.Expr:
    """x₂(ε) > 0 with σ'(x₂) = ε, from σ' = s(1 − s) and x = logit(s)."""
    s = sp.Symbol("s", positive=True)
    roots = sp.solve(sp.Eq(s * (1 - s), EPS), s)
    upper = max(roots, key=lambda r: float(r.subs(EPS, sp.Rational(1, 100))))
    return sp.simplify(sp.log(upper / (1 - upper)))


def _sigma_prime(x: float) -> float:
    return float(A.get("sigmoid").derivative(torch.tensor([x], dtype=torch.float64))[0])


@pytest.mark.claim("SAT-01")
def test_output_vs_gradient_saturation(claim):
    """004 §3.3.1: "这两个定义密切相关但并不等价 … 输出饱和往往伴随梯度饱和"."""
    _, sig = A.get("sigmoid").sympy_expr(X)
    _, dsig = A.get("sigmoid").sympy_derivative(X)
    dist = sp.Symbol("d", positive=True)  # d_σ = distance of σ(x) to the nearer asymptote
    identity = sp.simplify(dsig - sig * (1 - sig))
    claim.check("σ' ≡ σ(1 − σ) = d_σ(1 − d_σ): output and gradient saturation coincide for sigmoid",
                claimed=0.0, measured=float(identity), holds=identity == 0)
    delta = sp.solve(sp.Eq(dist * (1 - dist), EPS), dist)
    claim.check("{σ' < ε} = {d_σ < δ(ε)} has a closed-form δ (roots of d(1−d) = ε)", claimed=2,
                measured=len(delta), atol=0)
    _, th = A.get("tanh").sympy_expr(X)
    _, dth = A.get("tanh").sympy_derivative(X)
    claim.check("tanh' ≡ 1 − tanh²: {tanh' < ε} = {|tanh| > √(1−ε)}", claimed=0.0,
                measured=float(sp.simplify(dth - (1 - th**2))), holds=sp.simplify(dth - (1 - th**2)) == 0)
    # Not equivalent in general: GELU's derivative vanishes at x* = −√2 while GELU(x*) is far
    # from its asymptotic value 0 (x → −∞); there is gradient saturation without output saturation.
    _, gelu = A.get("gelu").sympy_expr(X)
    _, dgelu = A.get("gelu").sympy_derivative(X)
    x_star = sp.nsolve(dgelu, X, -0.75)
    claim.check("|GELU'(x*)| at its stationary point x* ≈ −0.75", claimed=0.0, measured=float(dgelu.subs(X, x_star)),
                atol=1e-12)
    gap = abs(float(gelu.subs(X, x_star)))
    claim.check("distance of GELU(x*) from its asymptote 0 (no output saturation)", claimed=0.05,
                measured=gap, relation=">")
    claim.note(f"GELU stationary point x* = {float(x_star):.6f}, GELU(x*) = {-gap:.6f}")


@pytest.mark.claim("SAT-02")
def test_sigmoid_saturation_region_solvable(claim):
    """004 定理3.3.1: "对于任意ε > 0，饱和区域可以精确计算 … 两个解x₁ < x₂，饱和区域为(−∞, x₁) ∪ (x₂, +∞)"."""
    x2 = _sigmoid_threshold()
    _, dsig = A.get("sigmoid").sympy_derivative(X)
    for eps in (sp.Rational(1, 1000), sp.Rational(1, 100), sp.Rational(1, 10), sp.Rational(6, 25)):
        t = x2.subs(EPS, eps)
        claim.check(f"σ'(x₂) = ε at ε = {eps}", claimed=float(eps), measured=float(dsig.subs(X, t)), atol=1e-12)
        claim.check(f"x₁ = −x₂ at ε = {eps} (σ' even)", claimed=-float(t), measured=float(-t), atol=1e-12)
        inside = _sigma_prime(float(t) * 1.01) < float(eps) and _sigma_prime(float(t) * 0.99) > float(eps)
        claim.check(f"σ' < ε exactly beyond x₂ at ε = {eps} (torch)", claimed=1, measured=float(inside), holds=inside)

    s = sp.Symbol("s")
    coeffs = sp.lambdify(EPS, sp.Poly(s * (1 - s) - EPS, s).all_coeffs())

    def two_real_roots(eps: float) -> bool:
        roots = np.roots(coeffs(eps))
        return int(np.sum(np.abs(roots.imag) < 1e-12)) == 2 and abs(roots[0] - roots[1]) > 1e-12

    bad = find_counterexample(st.floats(1e-6, 10.0), lambda e: not two_real_roots(e))
    claim.check("every ε > 0 gives two solutions x₁ < x₂ (Hypothesis)", claimed=0, measured=bad or 0.0,
                holds=bad is None, counterexample={"epsilon": bad, "sup_sigma_prime": 0.25, "snippet": _snippet(f"""
                    import numpy as np, torch
                    from gradcore.activations import get
                    eps = {bad!r}
                    sup = get('sigmoid').derivative(torch.linspace(-50, 50, 100001, dtype=torch.float64)).max().item()
                    roots = np.roots([-1.0, 1.0, -eps])  # sigma'(x) = s(1 - s) = eps with s = sigma(x)
                    real = [r.real for r in roots if abs(r.imag) < 1e-12 and 0 < r.real < 1]
                    print("epsilon =", eps, ": sup sigma' =", sup, "; solutions x of sigma'(x) = epsilon: measured",
                          len(set(real)), "claimed 2")
                """)})
    claim.correct(f"two solutions exist only for 0 < ε < 1/4: x₂ = −x₁ = {sp.sstr(x2)}; for ε = 1/4 the region is "
                  f"ℝ∖{{0}} and for ε > 1/4 (e.g. Hypothesis's ε = {bad}) it is all of ℝ")


@pytest.mark.claim("SAT-03")
def test_sigmoid_threshold_at_eps_001(claim):
    """004 定理3.3.1: "当ε = 0.01时，|x| ≥ 3即进入显著饱和区域"."""
    x2 = float(_sigmoid_threshold().subs(EPS, sp.Rational(1, 100)))
    at3 = _sigma_prime(3.0)
    claim.check("exact x₂ for ε = 0.01", claimed=3.0, measured=x2, atol=0.05,
                counterexample={"epsilon": 0.01, "x2": x2, "snippet": _snippet("""
                    import math, torch
                    from gradcore.activations import get
                    eps = 0.01
                    s = (1 + math.sqrt(1 - 4 * eps)) / 2  # upper root of s(1 - s) = eps, s = sigma(x2)
                    x2 = math.log(s / (1 - s))
                    d = get('sigmoid').derivative(torch.tensor([x2], dtype=torch.float64))[0].item()
                    print("x2 with sigma'(x2) = 0.01: measured", x2, "(sigma'(x2) =", d, ") claimed 3.0")
                """)})
    claim.check("max σ'(x) over |x| ≥ 3 (attained at |x| = 3)", claimed=0.01, measured=at3, relation="<",
                dtype=torch.float64, counterexample={"x": 3.0, "sigma_prime": at3, "snippet": _snippet("""
                    import torch
                    from gradcore.activations import get
                    d = get('sigmoid').derivative(torch.tensor([3.0], dtype=torch.float64))[0].item()
                    print("sigma'(3): measured", d, "claimed < 0.01")
                """)})
    claim.correct(f"σ'(3) = {at3:.4f} > 0.01; for ε = 0.01 the saturation region is |x| > {x2:.4f} "
                  f"(|x| ≥ 3 corresponds to ε = {at3:.4f})")


@pytest.mark.claim("SAT-04")
def test_sigmoid_saturation_depth_at_4(claim, device):
    """004 §3.3.1 饱和深度: "当|x| ≥ 4时，d_σ(x) ≤ 0.018"."""
    _, sig = A.get("sigmoid").sympy_expr(X)
    d_sigma = sp.Min(sig, 1 - sig)
    exact = d_sigma.subs(X, 4)
    claim.check("d_σ(4) = 1/(1 + e⁴) (exact)", claimed=0.018, measured=float(exact), relation="<=")
    xs = torch.cat([torch.linspace(4, 40, 10001), -torch.linspace(4, 40, 10001)]).double().to(device)
    s = A.get("sigmoid")(xs)
    sup = float(torch.minimum(s, 1 - s).max())
    claim.check("sup of d_σ over |x| ≥ 4 (torch, float64 grid)", claimed=0.018, measured=sup, relation="<=",
                dtype=torch.float64)
    claim.note(f"margin: 0.018 − d_σ(4) = {0.018 - float(exact):.2e}")


@pytest.mark.claim("SAT-05")
def test_tanh_saturation_region(claim):
    """004 定理3.3.2: "Tanh函数的梯度饱和区域为 S_tanh = {x | |tanh(x)| > 1 − ε}"."""
    def mismatch(pair: tuple[float, float]) -> bool:
        eps, x = pair
        t = math.tanh(x)
        return abs(t) > 1 - eps and 1 - t * t >= eps

    bad = find_counterexample(st.tuples(st.floats(1e-4, 0.5), st.floats(-10, 10)), mismatch)
    eps, x_bad = bad if bad is not None else (float("nan"), float("nan"))
    claim.check("no (ε, x) with |tanh x| > 1 − ε but tanh'(x) ≥ ε (Hypothesis)", claimed=0, measured=x_bad,
                holds=bad is None, counterexample={"epsilon": eps, "x": x_bad, "tanh_prime": 1 - math.tanh(x_bad) ** 2,
                                                   "snippet": _snippet(f"""
                    import torch
                    from gradcore.activations import get
                    x, eps = {x_bad!r}, {eps!r}
                    t = torch.tanh(torch.tensor(x, dtype=torch.float64)).item()
                    d = get('tanh').derivative(torch.tensor([x], dtype=torch.float64))[0].item()
                    print("x =", x, "epsilon =", eps, ": |tanh x| > 1 - epsilon is", abs(t) > 1 - eps,
                          "; tanh'(x): measured", d, "claimed < epsilon")
                """)})
    e = sp.Rational(1, 100)
    stated = float(sp.atanh(1 - e))
    gradient = float(sp.atanh(sp.sqrt(1 - e)))
    claim.check("boundary at ε = 0.01: artanh(1 − ε) vs the gradient region's artanh(√(1 − ε))",
                claimed=gradient, measured=stated, atol=1e-3, counterexample={"epsilon": 0.01, "stated": stated,
                                                                               "gradient_region": gradient,
                                                                               "snippet": _snippet("""
                    import math, torch
                    from gradcore.activations import get
                    eps = 0.01
                    stated, gradient = math.atanh(1 - eps), math.atanh(math.sqrt(1 - eps))
                    d = get('tanh').derivative(torch.tensor([stated, gradient], dtype=torch.float64)).tolist()
                    print("boundary of {|tanh x| > 1 - eps}: measured", stated, "(tanh' there", d[0], ")",
                          "claimed the boundary of {tanh' < eps}:", gradient, "(tanh' there", d[1], ")")
                """)})
    # The stated set is exactly the gradient region for the threshold 2ε − ε².
    t = sp.Symbol("t", positive=True)
    implied = sp.simplify(1 - (1 - EPS) ** 2)
    claim.check("{|tanh| > 1 − ε} = {tanh' < 2ε − ε²} (sympy)", claimed=0.0,
                measured=float(sp.simplify((1 - t**2).subs(t, 1 - EPS) - implied)),
                holds=sp.simplify((1 - t**2).subs(t, 1 - EPS) - implied) == 0)
    claim.correct(f"{{|tanh x| > 1 − ε}} = {{tanh' < 2ε − ε²}}; the gradient region {{tanh' < ε}} is "
                  f"{{|tanh x| > √(1 − ε)}}, e.g. |x| > {gradient:.4f} for ε = 0.01, not |x| > {stated:.4f}")


@pytest.mark.claim("SAT-06")
def test_sigmoid_saturates_for_negative_inputs_too(claim):
    """004 定理3.3.2: "与Sigmoid相比 … Tanh的输出以零为中心，这使得负输入也会进入饱和区域"."""
    _, dsig = A.get("sigmoid").sympy_derivative(X)
    odd_part = sp.simplify(dsig.subs(X, -X) - dsig)
    claim.check("σ'(−x) − σ'(x) ≡ 0: the sigmoid's saturation region is symmetric too", claimed=0.0,
                measured=float(odd_part), holds=odd_part == 0)
    # The claimed contrast needs σ' ≥ ε on every negative input; search for one below ε = 0.01.
    neg = find_counterexample(st.floats(-50, -1e-3), lambda x: _sigma_prime(x) < 0.01)
    at = _sigma_prime(neg) if neg is not None else float("nan")
    claim.check("no x < 0 with σ'(x) < 0.01 (sigmoid without negative-input saturation; Hypothesis)",
                claimed=0, measured=at, holds=neg is None,
                counterexample={"x": neg, "sigma_prime": at, "snippet": _snippet(f"""
                    import torch
                    from gradcore.activations import get
                    x = {neg!r}
                    d = get('sigmoid').derivative(torch.tensor([x, -x], dtype=torch.float64)).tolist()
                    print("sigma'(x) at x =", x, ": measured", d[0], "claimed >= 0.01 for x < 0",
                          "(sigma'(-x) =", d[1], ")")
                """)})
    if neg is not None:
        claim.correct(f"σ'(−x) = σ'(x), so sigmoid saturates for negative inputs exactly as for positive ones "
                      f"(e.g. σ'({neg:g}) = {at:.4f}); zero-centring changes tanh's output, not the symmetry of saturation")

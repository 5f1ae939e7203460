"""Activation-function claims (catalogue: gradcore/claims/activations.toml).

Functions and derivatives are torch's (``gradcore.activations``), checked against their
exact sympy twins; sup/inf claims are searched with Hypothesis.
"""
import math
import textwrap

import pytest
import sympy as sp
import torch
from hypothesis import strategies as st

from gradcore import activations as A
from gradcore.verify.search import find_counterexample, maximize


def _snippet(code: str) -> str:
    """A counterexample's copy-paste reproduction: ``code`` without its common indentation."""
    return textwrap.dedent(code).strip()


def _deriv(name: str, x: float, dtype=torch.float64, device="cpu") -> float:
    return float(A.get(name).derivative(torch.tensor([x], dtype=dtype, device=device))[0])


@pytest.mark.claim("ACT-01")
def test_sigmoid_derivative_maximum(claim):
    """003 §2.b / 004 §3.3.1: "最大值仅为 0.25"."""
    x = sp.symbols("x", real=True)
    sigma = 1 / (1 + sp.exp(-x))
    d = sp.diff(sigma, x)
    critical = sp.solve(sp.Eq(sp.diff(d, x), 0), x)
    peak = sp.nsimplify(max(d.subs(x, c) for c in critical))
    claim.check("max σ'(x)", claimed=0.25, measured=float(peak))
    claim.check("argmax σ'(x)", claimed=0.0, measured=float(critical[0]))


def _zero_derivative_threshold(name: str, dtype: torch.dtype, device: str) -> float:
    """Smallest grid point x > 0 from which f'(x) evaluates to exactly 0 in ``dtype``."""
    xs = torch.linspace(0, 32, 2**17, dtype=torch.float64, device=device).to(dtype).unique()
    nonzero = (A.get(name).derivative(xs) != 0).nonzero()
    return float(xs[int(nonzero.max()) + 1])


@pytest.mark.claim("ACT-02")
def test_tanh_derivative_range(claim, device):
    """003 §2.b: "`tanh'(x) = 1 - tanh²(x)` 的取值范围是 `(0, 1]`"; 004 定理3.3.2: "Tanh的导数峰值是1而非0.25"."""
    x = sp.symbols("x", real=True)
    _, d = A.get("tanh").sympy_derivative(x)
    _, ds = A.get("sigmoid").sympy_derivative(x)
    crit = sp.solve(sp.diff(d, x), x)
    peak = max(d.subs(x, c) for c in crit)
    sigmoid_peak = max(ds.subs(x, c) for c in sp.solve(sp.diff(ds, x), x))
    claim.check("max tanh'(x)", claimed=1.0, measured=float(peak))
    claim.check("argmax tanh'(x)", claimed=0.0, measured=float(crit[0]))
    claim.check("tanh' peak / σ' peak", claimed=4.0, measured=float(peak / sigmoid_peak))
    # (0, 1]: tanh' = sech² > 0 everywhere, and its infimum 0 is a limit, never attained.
    residual = sp.simplify(d - 1 / sp.cosh(x) ** 2)
    claim.check("tanh' ≡ sech² (so tanh' > 0)", claimed=0.0, measured=float(residual), holds=residual == 0)
    inf = min(sp.limit(d, x, sp.oo), sp.limit(d, x, -sp.oo))
    claim.check("inf tanh' (limit at ±∞)", claimed=0.0, measured=float(inf))
    thresholds = {}
    for dtype in (torch.float32, torch.float16):
        x0 = thresholds[dtype] = _zero_derivative_threshold("tanh", dtype, device)
        claim.check(f"tanh'(x) > 0 in {dtype} at x = {x0:.3f}", claimed=0.0,
                    measured=_deriv("tanh", x0, dtype, device), relation=">", atol=0.0,
                    outside="finite-precision evaluation", dtype=dtype,
                    counterexample={"x": x0, "dtype": str(dtype), "tanh'": 0.0, "snippet": _snippet(f"""
                        import math, torch
                        from gradcore.activations import get
                        x = {x0!r}
                        d = get('tanh').derivative(torch.tensor([x], dtype={dtype}))[0].item()
                        print("tanh'(x) in {dtype} at x =", x, ": measured", d, "claimed > 0",
                              "(exact 1 - tanh(x)^2 =", 1 - math.tanh(x) ** 2, ")")
                    """)})
    t32, t16 = thresholds[torch.float32], thresholds[torch.float16]
    claim.correct(f"exactly, tanh'(x) ∈ (0, 1] with peak 1 at x = 0 (4× σ''s peak); but autograd's "
                  f"tanh' is exactly 0 for |x| ≥ {t32:.3f} in float32 and |x| ≥ {t16:.3f} in float16")


_GRID = torch.linspace(-30, 30, 600001, dtype=torch.float64)


@pytest.mark.claim("ACT-03")
def test_common_derivatives_at_most_one(claim, device):
    """000 §主要"罪魁祸首": "Sigmoid、Tanh、ReLU 这些常用激活函数的导数都小于或等于1"."""
    xs = st.floats(-30, 30, allow_nan=False)
    grid = _GRID.to(device)
    for name in ("sigmoid", "tanh", "relu", "gelu", "gelu_tanh"):
        x_star, best = maximize(xs, lambda x, n=name: _deriv(n, x, device=device))
        sup = max(best, float(A.get(name).derivative(grid).max()))
        at = x_star if best >= sup else float(grid[A.get(name).derivative(grid).argmax()])
        named = name in ("sigmoid", "tanh", "relu")
        claim.check(f"sup {name}'(x)", claimed=1.0, measured=sup, relation="<=", dtype=torch.float64,
                    outside=None if named else "GELU is not among the activations named",
                    counterexample=None if named else {
                        "activation": name, "x": at, "derivative": sup, "snippet": _snippet(f"""
                            import torch
                            from gradcore.activations import get
                            x = {at!r}
                            d = get({name!r}).derivative(torch.tensor([x], dtype=torch.float64))[0].item()
                            print("{name}'(x) at x =", x, ": measured", d, "claimed <= 1.0")
                        """)})
    gelu_sup = float(A.get("gelu").derivative(torch.tensor([math.sqrt(2)], dtype=torch.float64))[0])
    claim.correct(f"true of sigmoid (≤ 1/4), tanh (≤ 1) and ReLU (≤ 1), but not of every common activation: "
                  f"GELU' reaches {gelu_sup:.4f} at x = √2")


_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@pytest.mark.claim("ACT-04")
def test_relu_derivative_one_when_active(claim, device):
    """000: "ReLU 激活函数，其导数在激活区为 1"; 003 §4: "ReLU在输入大于0时，其导数恒为1"; 004 原则3.3.1."""
    for dtype in _DTYPES:
        tiny = torch.finfo(dtype).tiny * torch.finfo(dtype).eps  # smallest subnormal
        strat = st.floats(min_value=float(tiny), max_value=float(torch.finfo(dtype).max) / 2)
        bad = find_counterexample(
            strat, lambda x, dt=dtype: float(torch.tensor(x, dtype=dt)) > 0
            and _deriv("relu", x, dt, device) != 1.0)
        claim.check(f"relu'(x) = 1 for every x > 0 representable in {dtype}", claimed=1.0,
                    measured=1.0 if bad is None else _deriv("relu", bad, dtype, device),
                    dtype=dtype, atol=0.0)
    grid = torch.logspace(-40, 30, 1000, dtype=torch.float64, device=device)
    claim.check("min relu' on a log-grid of (1e-40, 1e30)", claimed=1.0,
                measured=float(A.get("relu").derivative(grid).min()), atol=0.0)
    claim.note(f"at the kink autograd returns relu'(0) = {_deriv('relu', 0.0)}")


def _mean_sq_derivative_exact(name: str) -> sp.Expr:
    """E[f'(z)²] for z ~ N(0, 1), exactly from the sympy twin."""
    z, d = A.get(name).sympy_derivative()
    phi = sp.exp(-z**2 / 2) / sp.sqrt(2 * sp.pi)
    pos = sp.integrate(sp.simplify(d.subs(z, sp.Symbol("p", positive=True)) ** 2
                                   * phi.subs(z, sp.Symbol("p", positive=True))),
                       (sp.Symbol("p", positive=True), 0, sp.oo))
    n = sp.Symbol("n", negative=True)
    neg = sp.integrate(sp.simplify(d.subs(z, n) ** 2 * phi.subs(z, n)), (n, -sp.oo, 0))
    return sp.simplify(pos + neg)


@pytest.mark.claim("ACT-05")
def test_relu_family_derivative_product_no_longer_decays(claim, device):
    """003 §4: "ReLU … 及其变体 (Leaky ReLU, PReLU, ELU) … 连乘项 `f'(zₙ) * ... * f'(zᵢ)` 不再是衰减的源头"."""
    g = torch.Generator(device="cpu").manual_seed(0)
    z = torch.randn(8, 200000, generator=g, dtype=torch.float64).to(device)
    for name in ("relu", "leaky_relu", "prelu", "elu"):
        exact = math.sqrt(float(_mean_sq_derivative_exact(name)))
        # Gradient energy kept by one diag(f'(z)) factor, per sample row: ‖f'(z)⊙g‖/‖g‖ with g = 1.
        rows = A.get(name).derivative(z).pow(2).mean(dim=1).sqrt()
        mean, se = float(rows.mean()), float(rows.std() / math.sqrt(len(rows)))
        claim.check(f"√E[{name}'(z)²], z~N(0,1) (exact, sympy)", claimed=1.0, measured=exact, atol=0.02,
                    counterexample={"activation": name, "z": "N(0,1)", "factor_per_layer": exact,
                                    "snippet": _snippet(f"""
                        import torch
                        from gradcore.activations import get
                        g = torch.Generator().manual_seed(0)
                        z = torch.randn(8, 200000, generator=g, dtype=torch.float64)
                        rows = get({name!r}).derivative(z).pow(2).mean(dim=1).sqrt()  # ||f'(z)*1|| / ||1|| per row
                        print("sqrt(E[{name}'(z)^2]), z ~ N(0,1): exact {exact!r}, autograd estimate",
                              rows.mean().item(), "| claimed 1.0")
                    """)})
        claim.check(f"autograd ‖{name}'(z)⊙1‖/‖1‖ matches the exact value", claimed=exact, measured=mean,
                    interval=(mean - 4 * se - 1e-4, mean + 4 * se + 1e-4), atol=0.0, dtype=torch.float64)
    relu = math.sqrt(float(_mean_sq_derivative_exact("relu")))
    elu = math.sqrt(float(_mean_sq_derivative_exact("elu")))
    claim.correct(f"f' = 1 for z > 0, but at Gaussian pre-activations each diag(f') keeps only "
                  f"{relu:.4f} (ReLU, Leaky ReLU) to {elu:.4f} (ELU) of the gradient norm per layer; "
                  f"the product still decays unless the weights compensate (He's factor 2)")


@pytest.mark.claim("ACT-06")
def test_gelu_derivative_mostly_near_one(claim, device):
    """004 原则3.3.2: "GELU的设计考虑了这一点——其导数在大多数区域都接近1"."""
    x, d = A.get("gelu").sympy_derivative()
    critical = sp.solve(sp.diff(d, x), x)
    values = sorted(float(d.subs(x, c)) for c in critical)
    lo, hi = values[0], values[-1]

    def at_extremum(at: float, value: float, claimed: str) -> str:
        return _snippet(f"""
            import torch
            from gradcore.activations import get
            x = {at!r}
            d = get('gelu').derivative(torch.tensor([x], dtype=torch.float64))[0].item()
            print("GELU'(x) at x =", x, ": measured", d, "(exact {value!r}) claimed {claimed}")
        """)

    claim.check("sup GELU' (exact, at x = √2)", claimed=1.0, measured=hi, atol=0.1,
                outside="the sup is not the claim; reported because it exceeds 1",
                counterexample={"x": math.sqrt(2), "gelu'": hi,
                                "snippet": at_extremum(math.sqrt(2), hi, "1.0 (within 0.1)")})
    claim.check("inf GELU' (exact, at x = −√2)", claimed=0.0, measured=lo, relation=">=", atol=0.0,
                outside="the claim does not say GELU' is non-negative",
                counterexample={"x": -math.sqrt(2), "gelu'": lo, "snippet": at_extremum(-math.sqrt(2), lo, ">= 0")})
    grid = torch.linspace(-6, 6, 1200001, dtype=torch.float64, device=device)
    near = (A.get("gelu").derivative(grid) - 1).abs() <= 0.1
    frac_interval = float(near.double().mean())
    weights = torch.exp(-grid**2 / 2)
    frac_gauss = float((weights * near).sum() / weights.sum())
    snippet = _snippet("""
        import torch
        from gradcore.activations import get
        grid = torch.linspace(-6, 6, 1200001, dtype=torch.float64)
        near = (get('gelu').derivative(grid) - 1).abs() <= 0.1  # |GELU'(x) - 1| <= 0.1
        w = torch.exp(-grid ** 2 / 2)  # N(0,1) density, up to a constant
        print("share of z ~ N(0,1) with |GELU'(z) - 1| <= 0.1: measured", ((w * near).sum() / w.sum()).item(),
              "claimed >= 0.5")
        print("share of [-6, 6] with |GELU'(x) - 1| <= 0.1: measured", near.double().mean().item(), "claimed >= 0.5")
    """)
    claim.check("share of z~N(0,1) with |GELU'(z) − 1| ≤ 0.1", claimed=0.5, measured=frac_gauss,
                relation=">=", atol=0.0, counterexample={"region": "|f'-1| <= 0.1", "z": "N(0,1)",
                                                         "share": frac_gauss, "snippet": snippet})
    claim.check("share of [−6, 6] with |GELU'(x) − 1| ≤ 0.1", claimed=0.5, measured=frac_interval,
                relation=">=", atol=0.0, counterexample={"interval": [-6, 6], "share": frac_interval,
                                                         "snippet": snippet})
    claim.curve("gelu-derivative", "GELU' (float64, torch autograd)", grid[::6000].cpu(),
                A.get("gelu").derivative(grid[::6000]).cpu(), xlabel="x", ylabel="f'(x)")
    claim.correct(f"GELU' = Φ(x) + xφ(x) ranges over [{lo:.4f}, {hi:.4f}]; it is within 0.1 of 1 on only "
                  f"{frac_gauss:.1%} of N(0,1) inputs and {frac_interval:.1%} of [−6, 6] (≈ 0 for x ≪ 0)")


@pytest.mark.claim("ACT-07")
def test_relu_has_no_zero_derivative(claim, device):
    """004 原则3.3.1: "在整个输入范围内都有非零导数 … ReLU通过分段线性的设计实现了这一点 … 不存在饱和问题"."""
    # x = 0 is the kink (autograd's subgradient choice 0); look away from it.
    zero = find_counterexample(st.floats(-10, 10).filter(lambda x: x != 0.0),
                               lambda x: _deriv("relu", x, device=device) == 0.0)
    claim.check("a real x with relu'(x) = 0 (Hypothesis)", claimed=0.0,
                measured=float("nan") if zero is None else zero,
                holds=zero is None, counterexample={"x": zero, "relu'": 0.0, "snippet": _snippet(f"""
                    import torch
                    from gradcore.activations import get
                    x = {zero!r}
                    d = get('relu').derivative(torch.tensor([x], dtype=torch.float64))[0].item()
                    print("relu'(x) at x =", x, ": measured", d, "claimed non-zero everywhere")
                """)})
    g = torch.Generator(device="cpu").manual_seed(0)
    z = torch.randn(400000, generator=g, dtype=torch.float64).to(device)
    share = float((A.get("relu").derivative(z) == 0).double().mean())
    se = math.sqrt(share * (1 - share) / z.numel())
    claim.check("share of z~N(0,1) with relu'(z) = 0 (gradient saturation, Def. 3.3.2)", claimed=0.0,
                measured=share, interval=(share - 1.96 * se, share + 1.96 * se), atol=0.0,
                counterexample={"z": "N(0,1)", "share_zero_derivative": share, "snippet": _snippet("""
                    import torch
                    from gradcore.activations import get
                    g = torch.Generator().manual_seed(0)
                    z = torch.randn(400000, generator=g, dtype=torch.float64)
                    share = (get('relu').derivative(z) == 0).double().mean().item()
                    print("share of z ~ N(0,1) with relu'(z) = 0: measured", share, "claimed 0.0")
                """)})
    claim.correct(f"ReLU' = 0 on the whole half-line x ≤ 0 ({share:.3f} of N(0,1) inputs): ReLU is free of "
                  f"saturation only on x > 0; Leaky ReLU/PReLU/ELU are the variants with non-zero derivative")

"""Gradient-clipping claims (catalogue: gradcore/claims/clipping.toml).

Everything runs through gradcore.clipping, i.e. torch's own clip_grad_norm_/clip_grad_value_.
"""
import math

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradcore.clipping import clip_by_norm, clip_by_value, cosine, total_norm
from gradcore.stats import mean_ci
from gradcore.verify.search import find_counterexample, maximize

SQRT_2_PI = math.sqrt(2 / math.pi)


def _vec(dtype, lo=-1e4, hi=1e4, max_d=64):
    return hnp.arrays(dtype, st.integers(1, max_d), elements=st.floats(lo, hi, width=64 if dtype == np.float64 else 32))


def _norm_clip_case(dtype):
    """(g, θ) with ‖g‖ > θ ≥ 0.1, so torch's +1e-6 on the norm is below 1e-5 relative."""
    return st.tuples(_vec(dtype), st.floats(0.1, 1e3)).filter(lambda a: np.linalg.norm(a[0].astype(np.float64)) > a[1])


_NORM_CLIP_SNIPPET = """import torch
from gradcore.clipping import clip_by_norm, total_norm
g = torch.tensor({g}, dtype={dtype})
theta = {theta!r}
clipped = clip_by_norm(g, theta)
print("clipped g':", clipped)
print("measured ||g'||/theta =", total_norm(clipped) / theta, " claimed 1.0")
"""


@pytest.mark.claim("CLIP-01")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_norm_clipping_rescales_to_threshold(claim, device, dtype):
    """003 §4 梯度裁剪: "如果 ||g|| > θ，则更新梯度为 g' = (θ / ||g||) * g … 方向不变"; 002 §梯度裁剪;
    004 Definition 3.3.5."""
    npdt = np.float32 if dtype == torch.float32 else np.float64

    def norm_error(case):
        g, theta = torch.as_tensor(case[0], device=device), case[1]
        return abs(total_norm(clip_by_norm(g, theta)) / theta - 1.0)

    def angle_error(case):
        g = torch.as_tensor(case[0], device=device)
        return 1.0 - cosine(clip_by_norm(g, case[1]), g)

    worst_case, worst = maximize(_norm_clip_case(npdt), norm_error)
    claim.check("max |‖g'‖/θ − 1| over ‖g‖ > θ (Hypothesis)", claimed=0.0, measured=worst, dtype=dtype)
    _, worst_angle = maximize(_norm_clip_case(npdt), angle_error)
    claim.check("max 1 − cos(g', g) over ‖g‖ > θ (Hypothesis)", claimed=0.0, measured=worst_angle, dtype=dtype)
    untouched = find_counterexample(
        st.tuples(_vec(npdt, -1.0, 1.0, 16), st.floats(10.0, 1e3)),
        lambda c: not torch.equal(clip_by_norm(torch.as_tensor(c[0], device=device), c[1]),
                                  torch.as_tensor(c[0], device=device)))
    claim.check("‖g‖ ≤ θ leaves g unchanged (no counterexample found)", claimed=1, measured=untouched is None,
                holds=untouched is None, dtype=dtype)

    tiny = torch.tensor([1e-5, 0.0], dtype=dtype, device=device)
    ratio_tiny = total_norm(clip_by_norm(tiny, 1e-6)) / 1e-6
    claim.check("‖g'‖/θ for ‖g‖ = 1e-5, θ = 1e-6 (torch divides by ‖g‖ + 1e-6)", claimed=1.0,
                measured=ratio_tiny, outside="‖g‖ comparable to torch's eps 1e-6", dtype=dtype,
                counterexample={"g": [1e-5, 0.0], "theta": 1e-6, "dtype": str(dtype),
                                "snippet": _NORM_CLIP_SNIPPET.format(g="[1e-05, 0.0]", dtype=dtype, theta=1e-6)})
    big = 1e20 if dtype == torch.float32 else 1e160
    huge = torch.full((3,), big, dtype=dtype, device=device)
    ratio_huge = total_norm(clip_by_norm(huge, 1.0)) / 1.0
    claim.check(f"‖g'‖/θ for g = {big:g}·(1,1,1), θ = 1 (the norm overflows {dtype})", claimed=1.0,
                measured=ratio_huge, outside="‖g‖² overflows the dtype", dtype=dtype,
                counterexample={"g": [big] * 3, "theta": 1.0, "dtype": str(dtype),
                                "snippet": _NORM_CLIP_SNIPPET.format(g=repr([big] * 3), dtype=dtype, theta=1.0)})
    claim.correct(f"g' = θg/‖g‖ holds to {worst:.1e} (norm) and {worst_angle:.1e} (1−cos) in {dtype} when "
                  f"1e-6 ≪ ‖g‖ and ‖g‖² is representable; torch's clip_grad_norm_ scales by θ/(‖g‖+1e-6), "
                  f"giving ‖g'‖/θ = {ratio_tiny:.3f} at ‖g‖ = 1e-5, and returns ‖g'‖/θ = {ratio_huge:g} "
                  f"when ‖g‖ overflows ({big:g}·(1,1,1))")


_STEP_SNIPPET = """import torch
from gradcore.clipping import clip_by_norm
g0 = torch.full(({d},), {g!r}, dtype=torch.float64)   # constant raw gradient, norm {d}**0.5 * {g!r}
theta, lr, steps = {theta!r}, {lr!r}, {steps}
p = torch.nn.Parameter(torch.zeros({d}, dtype=torch.float64))
opt = torch.optim.{opt}([p], lr=lr{kw})
for _ in range(steps):
    before = p.detach().clone()
    p.grad = clip_by_norm(g0, theta)   # ||p.grad|| = theta
    opt.step()
ratio = float((p.detach() - before).norm()) / (lr * theta)
print("{opt}{kw}: measured ||dw||/(lr*theta) at step", steps, "=", ratio, " claimed <= 1.0")
"""


@pytest.mark.claim("CLIP-02")
def test_clipped_sgd_step_bounded(claim, device):
    """002 §梯度裁剪: "这种操作有效地将更新步长限制在学习率 η 与阈值 θ 的乘积之内"."""
    dtype = torch.float64

    def step_ratio(case, opt_cls=torch.optim.SGD, steps=1, **kw):
        g0, theta, lr = torch.as_tensor(case[0], device=device), case[1], case[2]
        p = torch.nn.Parameter(torch.zeros_like(g0))
        opt = opt_cls([p], lr=lr, **kw)
        for _ in range(steps):
            before = p.detach().clone()
            p.grad = clip_by_norm(g0, theta)
            opt.step()
        return float((p.detach() - before).norm()) / (lr * theta)

    cases = st.tuples(_vec(np.float64, -1e6, 1e6), st.floats(1e-2, 1e2), st.floats(1e-4, 1.0))
    case, worst = maximize(cases, step_ratio)
    claim.check("max ‖Δw‖/(ηθ), plain SGD, one step (Hypothesis)", claimed=1.0, measured=worst,
                relation="<=", dtype=dtype)
    g = np.full(16, 100.0)
    mom = step_ratio((g, 1.0, 0.1), steps=100, momentum=0.9)
    claim.check("‖Δw‖/(ηθ), SGD momentum 0.9, step 100, constant gradient", claimed=1.0, measured=mom,
                relation="<=", outside="SGD with momentum", dtype=dtype,
                counterexample={"g": "100·ones(16)", "theta": 1.0, "lr": 0.1, "momentum": 0.9, "steps": 100,
                                "snippet": _STEP_SNIPPET.format(d=16, g=100.0, theta=1.0, lr=0.1, steps=100,
                                                                opt="SGD", kw=", momentum=0.9")})
    adam = step_ratio((g, 1.0, 0.1), opt_cls=torch.optim.Adam, steps=1)
    claim.check("‖Δw‖/(ηθ), Adam, first step, d = 16", claimed=1.0, measured=adam, relation="<=",
                outside="adaptive optimisers (Adam)", dtype=dtype,
                counterexample={"g": "100·ones(16)", "theta": 1.0, "lr": 0.1, "optimizer": "Adam",
                                "snippet": _STEP_SNIPPET.format(d=16, g=100.0, theta=1.0, lr=0.1, steps=1,
                                                                opt="Adam", kw="")})
    claim.correct(f"‖Δw‖ ≤ ηθ holds for plain SGD (worst ratio {worst:.6f}); with momentum 0.9 the step "
                  f"reaches {mom:.2f}·ηθ (→ ηθ/(1−μ)), and Adam's first step is {adam:.2f}·ηθ (= √d/θ, "
                  f"independent of clipping)")


@pytest.mark.claim("CLIP-03")
def test_value_clipping_can_change_direction(claim, device):
    """002 §梯度裁剪: "按值裁剪…可能会改变梯度向量的原始方向"; 004 §3.3.2: "按值裁剪可能改变梯度的方向"."""
    def turned(case):
        g = torch.as_tensor(case[0], device=device)
        return float(g.abs().max()) > 0 and cosine(clip_by_value(g, case[1]), g) < 1 - 1e-9

    found = find_counterexample(st.tuples(_vec(np.float64, -100, 100, 8), st.floats(0.1, 10.0)), turned)
    cos_found = cosine(clip_by_value(torch.as_tensor(found[0]), found[1]), torch.as_tensor(found[0])) if found else 1.0
    claim.check("a gradient whose direction value clipping changes exists (cos < 1)", claimed=1.0,
                measured=cos_found, relation="<", rtol=0.0, atol=0.0, dtype=torch.float64,
                counterexample={"g": [float(a) for a in found[0]], "tau": float(found[1])} if found else None)
    unchanged = find_counterexample(
        st.tuples(_vec(np.float64, -1.0, 1.0, 8), st.floats(1.0, 10.0)),
        lambda c: not torch.equal(clip_by_value(torch.as_tensor(c[0], device=device), c[1]),
                                  torch.as_tensor(c[0], device=device)))
    claim.check("no change when ‖g‖∞ ≤ τ (no counterexample found)", claimed=1, measured=unchanged is None,
                holds=unchanged is None)
    claim.note(f"smallest example found: g = {[float(a) for a in found[0]] if found else None}, "
               f"τ = {float(found[1]) if found else None}, "
               f"cos = {cos_found:.4f}")


def _cos_limit_symbolic():
    """cos(clip_c(X), X) as d → ∞ for X ~ N(0,1), c = τ/s, and its limit c → 0⁺ (sympy)."""
    x, c = sp.symbols("x c", positive=True)
    phi = sp.exp(-x**2 / 2) / sp.sqrt(2 * sp.pi)
    e_xclip = 2 * (sp.integrate(x**2 * phi, (x, 0, c)) + c * sp.integrate(x * phi, (x, c, sp.oo)))
    e_clip2 = 2 * (sp.integrate(x**2 * phi, (x, 0, c)) + c**2 * sp.integrate(phi, (x, c, sp.oo)))
    cos_inf = e_xclip / sp.sqrt(e_clip2)
    return c, cos_inf, sp.limit(cos_inf, c, 0, "+"), sp.simplify(e_xclip)


_COSINE_SAMPLERS = {
    "gaussian": "    g = scale * torch.randn(d, generator=gen, dtype=torch.float32)\n",
    "laplace": ("    u = torch.rand(d, generator=gen, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)\n"
                "    x = -torch.sign(u - 0.5) * torch.log1p(-2 * (u - 0.5).abs())   # Laplace(0, 1)\n"
                "    g = (scale * x).to(torch.float32)\n"),
    "student_t": ("    u = torch.rand(d, generator=gen, dtype=torch.float64)   # drawn (unused) as in the theorem\n"
                  "    z = torch.randn(d, generator=gen, dtype=torch.float64)\n"
                  "    chi2 = torch.randn(d, {nu}, generator=gen, dtype=torch.float64).pow(2).sum(1)\n"
                  "    g = (scale * z / torch.sqrt(chi2 / {nu})).to(torch.float32)   # Student-t({nu})\n"),
}


def _cosine_snippet(kind: str, d: int, scale: float, tau: float, seeds: int) -> str:
    """Copy-paste reproduction of one cos(clip_value(g), g) measurement of CLIP-04."""
    if kind.startswith("student_t"):
        sampler = _COSINE_SAMPLERS["student_t"].format(nu=int(kind[len("student_t"):]))
    else:
        sampler = _COSINE_SAMPLERS[kind]
    return ("import math, torch\n"
            "from gradcore.clipping import clip_by_value, cosine\n"
            "from gradcore.stats import mean_ci\n"
            f"d, scale, tau = {d}, {scale!r}, {tau!r}\n"
            "cos = []\n"
            f"for seed in range({seeds}):\n"
            "    gen = torch.Generator().manual_seed(seed)\n"
            + sampler +
            "    cos.append(cosine(clip_by_value(g, tau), g))\n"
            "m, lo, hi = mean_ci(cos)\n"
            f"print({kind!r}, 'd =', d, 's/tau =', scale / tau, ': measured mean cos =', m, "
            "'95% CI', (lo, hi), ' claimed sqrt(2/pi) =', math.sqrt(2 / math.pi))\n")


@pytest.mark.claim("CLIP-04")
def test_value_clipping_cosine_limit(claim, device):
    """002 §梯度裁剪: "按值裁剪…其与原始梯度的余弦相似度收敛到一个小于1的常数（具体为 √(2/π)）"."""
    dtype, seeds, tau = torch.float32, 6, 1.0
    c, cos_inf, lim, e_xclip = _cos_limit_symbolic()
    claim.check("lim_{τ/s→0} lim_{d→∞} cos, Gaussian (sympy)", claimed=SQRT_2_PI, measured=float(lim), atol=1e-12)
    cos_at = sp.lambdify(c, cos_inf, "math")

    def sample(kind, d, scale, seed):
        g = torch.Generator().manual_seed(seed)
        if kind == "gaussian":
            return scale * torch.randn(d, generator=g, dtype=dtype).to(device)
        u = torch.rand(d, generator=g, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
        if kind == "laplace":
            x = -torch.sign(u - 0.5) * torch.log1p(-2 * (u - 0.5).abs())
        else:  # Student-t with ν degrees of freedom: z / sqrt(χ²_ν/ν)
            nu = {"student_t2": 2, "student_t3": 3}[kind]
            z = torch.randn(d, generator=g, dtype=torch.float64)
            chi2 = torch.randn(d, nu, generator=g, dtype=torch.float64).pow(2).sum(1)
            x = z / torch.sqrt(chi2 / nu)
        return (scale * x).to(dtype=dtype, device=device)

    def cos_ci(kind, d, scale):
        """Mean cosine over the seeds and its 95% interval (lo, hi)."""
        vals = []
        for s in range(seeds):
            g = sample(kind, d, scale, s)
            vals.append(cosine(clip_by_value(g, tau), g))
        m, lo, hi = mean_ci(vals)
        return m, (lo, hi)

    ds = [4, 64, 1024, 16384, 65536]
    for ratio in [1.0, 10.0, 1000.0]:
        means = [cos_ci("gaussian", d, ratio * tau)[0] for d in ds]
        claim.curve("clip-value-cosine-vs-d", f"Gaussian, s/τ = {ratio:g}, {seeds} seeds, float32", ds, means,
                    xlabel="dimension d", ylabel="cos(clip_value(g), g)", logx=True)
    claim.curve("clip-value-cosine-vs-d", "√(2/π)", ds, [SQRT_2_PI] * len(ds), xlabel="dimension d",
                ylabel="cos(clip_value(g), g)", logx=True)
    big = 65536
    cos_g, ci_g = cos_ci("gaussian", big, 1000.0 * tau)
    claim.check(f"cos, Gaussian, d = {big}, s/τ = 1000 ({seeds} seeds, 95% CI)", claimed=SQRT_2_PI,
                measured=cos_g, interval=ci_g, dtype=dtype)

    ratios = [0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 1000.0]
    measured_r = [cos_ci("gaussian", 16384, r * tau)[0] for r in ratios]
    claim.curve("clip-value-cosine-vs-scale", f"measured, Gaussian, d = 16384, {seeds} seeds", ratios, measured_r,
                xlabel="scale / threshold s/τ", ylabel="cosine", logx=True, kind="scatter")
    fine = list(np.logspace(-0.5, 3, 40))
    claim.curve("clip-value-cosine-vs-scale", "d → ∞ closed form (sympy)", fine, [cos_at(1 / r) for r in fine],
                xlabel="scale / threshold s/τ", ylabel="cosine", logx=True)
    claim.curve("clip-value-cosine-vs-scale", "√(2/π)", fine, [SQRT_2_PI] * len(fine),
                xlabel="scale / threshold s/τ", ylabel="cosine", logx=True)
    worst_fit = max(abs(m - cos_at(1 / r)) for m, r in zip(measured_r, ratios))
    claim.check("max |measured − closed form cos(τ/s)| over s/τ, d = 16384", claimed=0.0, measured=worst_fit,
                atol=0.005, outside="finite s/τ (closed form, not the claimed constant)", dtype=dtype)

    outside = {}
    for label, kind, d, ratio, why in [
            ("s = τ", "gaussian", big, 1.0, "scale comparable to the threshold"),
            ("small d", "gaussian", 4, 1000.0, "small dimension"),
            ("Laplace", "laplace", big, 1000.0, "Laplace (non-Gaussian) coordinates"),
            ("Student-t(3)", "student_t3", big, 1000.0, "heavy-tailed coordinates"),
            ("Student-t(2)", "student_t2", big, 1000.0, "infinite-variance coordinates")]:
        m, ci = cos_ci(kind, d, ratio * tau)
        outside[label] = m
        claim.check(f"cos, {label}, d = {d}, s/τ = {ratio:g} ({seeds} seeds, 95% CI)", claimed=SQRT_2_PI, measured=m, interval=ci,
                    outside=why, dtype=dtype,
                    counterexample={"distribution": kind, "d": d, "scale_over_tau": ratio, "seeds": seeds,
                                    "snippet": _cosine_snippet(kind, d, ratio * tau, tau, seeds)})
    t2 = [cos_ci("student_t2", d, 1000.0 * tau)[0] for d in ds]
    claim.curve("clip-value-cosine-vs-d", f"Student-t(2), s/τ = 1000, {seeds} seeds", ds, t2,
                xlabel="dimension d", ylabel="cos(clip_value(g), g)", logx=True)
    claim.correct(
        f"cos → E|X|/√E[X²] as d → ∞ and s/τ → ∞ for i.i.d. finite-variance coordinates: √(2/π) = {SQRT_2_PI:.4f} "
        f"only for Gaussian (measured {cos_g:.4f}); Laplace gives {outside['Laplace']:.4f} (1/√2), Student-t(3) "
        f"{outside['Student-t(3)']:.4f} (2/π), Student-t(2) {outside['Student-t(2)']:.4f} and falling with d "
        f"({t2[0]:.3f} → {t2[-1]:.3f}); at finite s/τ the limit is {e_xclip}/√E[clip²] with c = τ/s "
        f"(s = τ: {outside['s = τ']:.4f}); at d = 4 it is {outside['small d']:.4f}")

"""Weight-decay / L2-regularisation claims (catalogue: gradcore/claims/weight_decay.toml)."""
import functools
import math

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradcore.spectral import spectral_norm, spectral_radius
from gradcore.verify.search import find_counterexample, maximize
from gradcore.weight_decay import decay_only, decay_step, l2_penalty


def _square(max_n=6, lo=-10.0, hi=10.0):
    return st.integers(1, max_n).flatmap(
        lambda n: hnp.arrays(np.float64, (n, n), elements=st.floats(lo, hi)))


@pytest.mark.claim("WD-01")
def test_decay_update_rule(claim, device):
    """002 §L2 正则化与隐式稳定: "更新规则变为 W_{k+1} = W_k − η(∇L_data + λW_k) … 更新简化为 W_{k+1} = (1 − ηλ)W_k"."""
    eta, lam = sp.symbols("eta lambda", positive=True)
    W = sp.Matrix(3, 3, sp.symbols("w0:9"))
    G = sp.Matrix(3, 3, sp.symbols("g0:9"))
    penalty = lam / 2 * sum(w**2 for w in W)
    grad_pen = W.applyfunc(lambda w: sp.diff(penalty, w))
    update = W - eta * (G + grad_pen)
    residual = sp.simplify(update.subs({g: 0 for g in G}) - (1 - eta * lam) * W)
    claim.check("sympy: (W − η(0 + ∇ λ/2‖W‖_F²)) − (1−ηλ)W, number of nonzero entries", claimed=0,
                measured=sum(1 for r in residual if r != 0))
    claim.check("sympy: ∇ λ/2‖W‖_F² − λW, number of nonzero entries", claimed=0,
                measured=sum(1 for r in (grad_pen - lam * W) if r != 0))
    for dtype in (torch.float32, torch.float64):
        Wt = torch.randn(5, 5, dtype=dtype, device=device)
        p = torch.nn.Parameter(Wt.clone())
        p.grad = torch.zeros_like(Wt)
        torch.optim.SGD([p], lr=0.1, weight_decay=0.5).step()
        diff = float((p.detach() - (1 - 0.1 * 0.5) * Wt).abs().max())
        claim.check("torch.optim.SGD(weight_decay=λ), zero data gradient: max |W₁ − (1−ηλ)W₀|", claimed=0.0,
                    measured=diff, atol=8 * torch.finfo(dtype).eps, dtype=dtype)
        Wg = Wt.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(l2_penalty(Wg, 0.5), Wg)
        claim.check("autograd ∇ λ/2‖W‖_F² vs λW: max abs diff", claimed=0.0,
                    measured=float((g - 0.5 * Wt).abs().max()), atol=0.0, dtype=dtype)


def _shrinks(W: torch.Tensor, c: float) -> bool:
    W1 = decay_step(W, torch.zeros_like(W), c, 1.0)
    return bool(torch.linalg.matrix_norm(W1) < torch.linalg.matrix_norm(W))


_FLOAT32_DECAY_SNIPPET = """import torch
from gradcore.weight_decay import decay_step
W = torch.tensor({W}, dtype=torch.float32)
c = {c!r}   # eta * lambda (lr = c, weight_decay = 1)
W1 = decay_step(W, torch.zeros_like(W), c, 1.0)
n0, n1 = float(torch.linalg.matrix_norm(W)), float(torch.linalg.matrix_norm(W1))
print("eta*lambda =", c, ": ||W0||_F =", n0, " ||W1||_F =", n1, " W1 == W0:", torch.equal(W1, W))
print("measured: step shrinks ||W||_F:", n1 < n0, " claimed: True for every 0 < eta*lambda < 1")
"""


@pytest.mark.claim("WD-02")
def test_decay_shrinks_to_zero(claim, device):
    """002 §L2 正则化与隐式稳定: "只要…满足 0 < ηλ < 1，这个更新过程就会不断地将权重矩阵 W 向零收缩"."""
    cases = st.tuples(_square(4, -100, 100).filter(lambda a: np.abs(a).max() > 1e-3), st.floats(1e-12, 0.999))
    found = find_counterexample(cases, lambda a: not _shrinks(torch.as_tensor(a[0], device=device), a[1]))
    claim.check("float64: a step with 0 < ηλ < 1 that does not shrink ‖W‖_F (Hypothesis, none expected)",
                claimed=0, measured=0 if found is None else 1, dtype=torch.float64)
    W0 = torch.randn(6, 6, dtype=torch.float64, device=device)
    ratios = []
    for c in (0.01, 0.3, 0.9):
        Wk = decay_only(W0, c, 1.0, 50)
        ratios.append(float(torch.linalg.matrix_norm(Wk) / torch.linalg.matrix_norm(W0)))
        claim.check(f"‖W_50‖/‖W_0‖ at ηλ = {c} vs (1−ηλ)^50", claimed=(1 - c) ** 50, measured=ratios[-1],
                    rtol=1e-12, dtype=torch.float64)
    wide = float(torch.linalg.matrix_norm(decay_only(W0, 1.5, 1.0, 50)) / torch.linalg.matrix_norm(W0))
    claim.check("ηλ = 1.5 (outside the stated range) still shrinks: ‖W_50‖/‖W_0‖ < 1", claimed=1.0,
                measured=wide, relation="<", outside="1 ≤ ηλ < 2", dtype=torch.float64)

    W32 = torch.randn(8, 8, device=device)
    f32 = find_counterexample(st.floats(1e-12, 0.999), lambda c: not _shrinks(W32, c))
    lo, hi = 2.0**-40, 0.5  # bisection for the largest ηλ at which a float32 step leaves W unchanged
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if not _shrinks(W32, mid) else (lo, mid)
    claim.check("float32: ‖W₁‖_F < ‖W₀‖_F for every 0 < ηλ < 1 (Hypothesis counterexample → 0)", claimed=1,
                measured=0 if f32 is not None else 1, outside="ηλ below float32 resolution", dtype=torch.float32,
                counterexample={"eta_lambda": f32, "W": "randn(8, 8) float32",
                                "snippet": _FLOAT32_DECAY_SNIPPET.format(W=W32.cpu().tolist(), c=f32)})
    claim.correct(f"‖W_k‖ = (1−ηλ)^k‖W_0‖ → 0 for 0 < ηλ < 1 (measured to 1e-12 in float64; also for 1 ≤ ηλ < 2, "
                  f"measured ratio {wide:.2e} at ηλ = 1.5), but in float32 a decay step does not shrink ‖W‖ for "
                  f"ηλ ≤ {lo:.3g} (measured; ≈ 2^{math.log2(lo):.1f}), so tiny ηλ never shrinks W")


@pytest.mark.claim("WD-03")
def test_symmetric_norm_equals_radius(claim, device):
    """002 §L2 正则化与隐式稳定: "对于对称矩阵 W，其算子2-范数等于其谱半径"."""
    def sym_gap(a):
        W = torch.as_tensor(a + a.T, device=device)
        return abs(spectral_norm(W) - spectral_radius(W)) / max(spectral_norm(W), 1e-300)

    sym = _square().filter(lambda a: np.abs(a).max() > 1e-3)
    _, worst = maximize(sym, sym_gap)
    claim.check("max |‖W‖₂ − ρ(W)|/‖W‖₂ over symmetric W (Hypothesis)", claimed=0.0, measured=worst,
                atol=1e-12, dtype=torch.float64)
    below = find_counterexample(_square(), lambda a: spectral_norm(torch.as_tensor(a, device=device))
                                < spectral_radius(torch.as_tensor(a, device=device)) * (1 - 1e-12))
    claim.check("general W: ‖W‖₂ ≥ ρ(W) (counterexample search, none expected)", claimed=0,
                measured=0 if below is None else 1, outside="non-symmetric W", dtype=torch.float64)
    J = torch.tensor([[0.5, 10.0], [0.0, 0.5]], dtype=torch.float64, device=device)
    claim.note(f"non-normal W = [[0.5, 10], [0, 0.5]]: ‖W‖₂ = {spectral_norm(J):.3f}, ρ(W) = {spectral_radius(J):.3f}"
               " — equality needs normality, and only ‖W‖₂ ≥ ρ(W) holds in general")


def _orth(n, gen, dtype):
    return torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=dtype))[0]


_RNN_SNIPPET = """import torch
from gradcore.spectral import spectral_radius
from gradcore.weight_decay import decay_step
# GD with weight decay on a linear RNN h_t = W h_(t-1), T = 4, n = 4, fitted to data from rho = 1.2 dynamics
lam, steps, lr = {lam!r}, {steps}, {lr!r}
dtype, n, T, N = torch.float64, 4, 4, 16
gen = torch.Generator().manual_seed(0)
orth = lambda: torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=dtype))[0]
w_true = 1.2 * orth()
q = orth()
W = q @ (1.3 * torch.eye(n, dtype=dtype) + 0.1 * torch.triu(torch.ones(n, n, dtype=dtype), 1)) @ q.T
H0 = torch.randn(n, N, generator=gen, dtype=dtype)
Y = torch.linalg.matrix_power(w_true, T) @ H0
rho0 = spectral_radius(W)
for _ in range(steps):
    Wr = W.clone().requires_grad_(True)
    loss = 0.5 * (torch.linalg.matrix_power(Wr, T) @ H0 - Y).pow(2).sum() / N
    (g,) = torch.autograd.grad(loss, Wr)
    W = decay_step(W, g, lr, lam)
print("weight decay", lam, ", lr", lr, ": rho(W_0) =", rho0, ", measured rho(W) after", steps,
      "steps =", spectral_radius(W), " claimed < 1.0")
"""


def _rnn_snippet(lam: float, steps: int, lr: float) -> str:
    """Copy-paste reproduction of :func:`_train_linear_rnn` (CPU)."""
    return _RNN_SNIPPET.format(lam=lam, steps=steps, lr=lr)


@functools.lru_cache(maxsize=None)
def _train_linear_rnn(device: str, lam: float, steps: int = 600, lr: float = 0.005):
    """GD with weight decay on a linear RNN h_t = W h_{t−1}, T = 4, fit to data from ρ = 1.2 dynamics.

    Returns ρ(W_k) for every step k; W_0 is non-normal with ρ(W_0) = 1.3.
    """
    dtype, n, T, N = torch.float64, 4, 4, 16
    gen = torch.Generator().manual_seed(0)
    w_true = (1.2 * _orth(n, gen, dtype)).to(device)
    q = _orth(n, gen, dtype)
    W = (q @ (1.3 * torch.eye(n, dtype=dtype) + 0.1 * torch.triu(torch.ones(n, n, dtype=dtype), 1)) @ q.T).to(device)
    H0 = torch.randn(n, N, generator=gen, dtype=dtype).to(device)
    Y = torch.linalg.matrix_power(w_true, T) @ H0
    rhos = [spectral_radius(W)]
    for _ in range(steps):
        Wr = W.clone().requires_grad_(True)
        loss = 0.5 * (torch.linalg.matrix_power(Wr, T) @ H0 - Y).pow(2).sum() / N
        (g,) = torch.autograd.grad(loss, Wr)
        W = decay_step(W, g, lr, lam)
        rhos.append(spectral_radius(W))
    return rhos, W


@pytest.mark.claim("WD-04")
def test_decay_pulls_spectral_radius_below_one(claim, device):
    """002 §L2 正则化与隐式稳定: "权重衰减直接导致谱半径的缩小 … 经过足够多的更新步骤后，它也可能被“拉回”到小于1的稳定区域"."""
    def radius_error(case):
        W, c = torch.as_tensor(case[0], device=device), case[1]
        Wd = decay_only(W, c, 1.0, 1)
        return abs(spectral_radius(Wd) - (1 - c) * spectral_radius(W)) / max(spectral_radius(W), 1e-12)

    _, worst = maximize(st.tuples(_square(5).filter(lambda a: np.abs(a).max() > 0.1), st.floats(1e-3, 0.999)),
                        radius_error)
    claim.check("max |ρ((1−ηλ)W) − (1−ηλ)ρ(W)|/ρ(W) over non-symmetric W (Hypothesis)", claimed=0.0,
                measured=worst, atol=1e-9, dtype=torch.float64)
    lr, lam = 0.005, 0.1
    pure = []
    (rho0,), W = _train_linear_rnn(device, lam, steps=0)
    k_measured = None
    for k in range(2000):
        pure.append(spectral_radius(W))
        if pure[-1] < 1 and k_measured is None:
            k_measured = k
            break
        W = decay_only(W, lr, lam, 1)
    k_pred = math.floor(math.log(rho0) / -math.log(1 - lr * lam)) + 1
    claim.check(f"first k with ρ(W_k) < 1, pure decay from non-normal W_0 (ρ₀ = {rho0:.2f}, ηλ = {lr * lam:g})",
                claimed=k_pred, measured=k_measured, atol=0.0, dtype=torch.float64)
    rhos, _ = _train_linear_rnn(device, lam)
    ks = list(range(len(rhos)))
    claim.curve("wd-radius-vs-steps", f"pure decay, ηλ = {lr * lam:g}", list(range(len(pure))), pure,
                xlabel="update step k", ylabel="ρ(W_k)", logy=True)
    claim.curve("wd-radius-vs-steps", f"with linear-RNN data gradient, λ = {lam:g}, η = {lr:g}", ks, rhos,
                xlabel="update step k", ylabel="ρ(W_k)", logy=True)
    claim.curve("wd-radius-vs-steps", "ρ = 1", ks, [1.0] * len(ks), xlabel="update step k", ylabel="ρ(W_k)", logy=True)
    claim.check(f"ρ(W_k) after {len(rhos) - 1} GD steps with the data gradient (> {k_pred}-step prediction)",
                claimed=1.0, measured=rhos[-1], relation="<", outside="data gradient present",
                dtype=torch.float64,
                counterexample={"model": "linear RNN h_t = W h_{t-1}, T = 4, n = 4, targets from ρ = 1.2 dynamics",
                                "lr": lr, "weight_decay": lam, "steps": len(rhos) - 1,
                                "snippet": _rnn_snippet(lam, len(rhos) - 1, lr)})
    claim.correct(f"ρ((1−ηλ)W) = (1−ηλ)ρ(W) for every W (worst relative error {worst:.1e}; symmetry is not "
                  f"needed), so pure decay takes k* = ⌊ln ρ₀/−ln(1−ηλ)⌋+1 = {k_measured} steps from ρ₀ = {rho0:.2f}; "
                  f"with the data gradient of a linear RNN fitted to ρ = 1.2 dynamics, ρ stays {rhos[-1]:.3f} "
                  f"after {len(rhos) - 1} steps at λ = {lam:g} — decay wins only when it dominates the data gradient")


@pytest.mark.claim("WD-05")
def test_l2_limits_weight_size(claim, device):
    """003 §4 解决梯度爆炸 › 权重正则化: "通过在损失函数中增加权重的惩罚项，来限制权重的大小，间接防止权重变得过大而引发梯度爆炸"."""
    lams = [0.0, 0.01, 0.1, 1.0, 10.0, 100.0]

    def ridge_norms(case):
        X, y = torch.as_tensor(case[0], device=device), torch.as_tensor(case[1], device=device)
        eye = torch.eye(X.shape[1], dtype=X.dtype, device=device)
        return [float(torch.linalg.lstsq(X.T @ X + l * eye, X.T @ y).solution.norm()) for l in lams[1:]]

    data = st.integers(2, 6).flatmap(lambda d: st.tuples(
        hnp.arrays(np.float64, (12, d), elements=st.floats(-5, 5)), hnp.arrays(np.float64, 12, elements=st.floats(-5, 5))))

    def increase(case):
        n = ridge_norms(case)
        return max(b - a for a, b in zip(n, n[1:]))

    _, worst = maximize(data, increase)
    claim.check("ridge: max increase of ‖W_λ‖ as λ grows (Hypothesis; ≤ 0 means monotone)", claimed=0.0,
                measured=worst, relation="<=", atol=1e-9, dtype=torch.float64)

    def bound_violation(case):
        X, y = torch.as_tensor(case[0], device=device), torch.as_tensor(case[1], device=device)
        eye = torch.eye(X.shape[1], dtype=X.dtype, device=device)
        out = []
        for l in lams[1:]:
            w = torch.linalg.lstsq(X.T @ X + l * eye, X.T @ y).solution
            out.append(float(w.pow(2).sum()) - float(y.pow(2).sum()) / l)  # ‖w‖² ≤ 2L(0)/λ, L = ½‖Xw−y‖²
        return max(out)

    _, worst_bound = maximize(data, bound_violation)
    claim.check("ridge: max(‖W_λ‖² − 2L(0)/λ) (≤ 0: the penalty bounds the weights)", claimed=0.0,
                measured=worst_bound, relation="<=", atol=1e-9, dtype=torch.float64)
    rnn_lams = [0.0, 0.1, 1.0, 3.0, 10.0]
    final = [_train_linear_rnn(device, l)[0][-1] for l in rnn_lams]
    claim.curve("wd-final-radius-vs-lambda", "linear RNN, 600 GD steps, η = 0.005", rnn_lams, final,
                xlabel="weight decay λ", ylabel="ρ(W) after training")
    claim.check("linear RNN trained with λ = 1: ρ(W) < 1 (no explosion)", claimed=1.0, measured=final[2],
                relation="<", outside="the data demand ρ > 1", dtype=torch.float64,
                counterexample={"model": "linear RNN of WD-04", "weight_decay": 1.0, "rho_final": final[2],
                                "snippet": _rnn_snippet(rnn_lams[2], 600, 0.005)})
    threshold = next((l for l, r in zip(rnn_lams, final) if r < 1), None)
    claim.correct("L2 does bound the weights (ridge ‖W_λ‖ is non-increasing in λ and ‖W_λ‖² ≤ 2L(0)/λ), but it "
                  "prevents ρ > 1 only when λ is large: the linear RNN ends with ρ = "
                  + ", ".join(f"{r:.3f}" for r in final) + f" for λ = {rnn_lams}; first λ with ρ < 1: {threshold}")

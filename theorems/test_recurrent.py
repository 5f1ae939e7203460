"""Recurrent-network claims (catalogue: gradcore/claims/recurrent.toml).

Models and BPTT come from gradcore.recurrent; gradients are torch autograd's.
"""
import math

import numpy as np
import pytest
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradcore import recurrent as R
from gradcore.spectral import spectral_norm, spectral_radius
from gradcore.stats import mean_ci
from gradcore.verify.search import find_counterexample, maximize

DT = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _matrices(n: int, bound: float = 1.5):
    return hnp.arrays(np.float64, (n, n), elements=st.floats(-bound, bound, allow_nan=False, width=64))


def _backward_rate(W: torch.Tensor, T: int, start: int, seed: int = 0) -> tuple[float, torch.Tensor]:
    """Per-step rate of ‖(Wᵀ)^t g‖ (BPTT through h_t = W h_{t-1}), fitted from t = start."""
    g = torch.randn(W.shape[0], generator=_gen(seed), dtype=DT).to(W.device)
    norms = R.bptt_gradient_norms(R.linear_step(W), torch.zeros_like(g), T, grad_output=g).flip(0)
    return R.growth_rate(norms, start), norms / norms[0]


@pytest.mark.claim("RNN-01")
def test_unrolled_rnn_is_weight_shared_deep_net(claim, device):
    """003 §3.b: "RNN在时间步上展开后，相当于一个权重共享的、非常深的网络。同一个权重矩阵 W 被连乘了 T 次"."""
    def diffs(ex):
        W0, T = torch.tensor(ex[0], device=device), ex[1]
        U = torch.eye(3, dtype=DT, device=device)
        xs = torch.linspace(-1, 1, 3 * T, dtype=DT, device=device).reshape(T, 3)
        h0 = torch.full((3,), 0.3, dtype=DT, device=device)
        g = torch.tensor([1.0, -2.0, 0.5], dtype=DT, device=device)
        # shared W: autograd through the unrolled RNN
        W = W0.clone().requires_grad_(True)
        (R.rnn_unroll(W, U, xs, h0)[-1] @ g).backward()
        # deep net: T layers with their own (equal) copies W_1..W_T
        layers = [W0.clone().requires_grad_(True) for _ in range(T)]
        h = h0
        for t, Wt in enumerate(layers):
            h = torch.tanh(Wt @ h + U @ xs[t])
        (h @ g).backward()
        tied = float((W.grad - sum(Wt.grad for Wt in layers)).abs().max())
        # linear RNN: BPTT to h_0 multiplies by the same Wᵀ T times
        lin = R.bptt_gradient_norms(R.linear_step(W0), h0, T, grad_output=g)[0]
        power = float((torch.linalg.matrix_power(W0.T, T) @ g).norm())
        return tied, abs(float(lin) - power) / max(power, 1e-300)

    strategy = st.tuples(_matrices(3), st.integers(1, 8))
    ex_tied, worst_tied = maximize(strategy, lambda ex: diffs(ex)[0], max_examples=25)
    ex_pow, worst_pow = maximize(strategy, lambda ex: diffs(ex)[1], max_examples=25)
    claim.check("max |∂L/∂W (shared) − Σ_t ∂L/∂W_t (deep net)|, tanh RNN", claimed=0.0,
                measured=worst_tied, atol=1e-10, dtype=DT)
    claim.check("max rel. |‖∂L/∂h_0‖ − ‖(Wᵀ)^T g‖|, linear RNN", claimed=0.0,
                measured=worst_pow, atol=1e-10, dtype=DT)


_TYPICAL_STATE_SNIPPET = """import torch
from gradcore import recurrent as R
from gradcore.spectral import spectral_norm
f64 = torch.float64
gen = torch.Generator().manual_seed(1)
W = R.gaussian_matrix(64, 1.5, generator=gen)   # N(0, 1.5^2/64)
xs = torch.randn(21, 64, generator=gen, dtype=f64)   # input std 1
step = R.elman_step(W, torch.eye(64, dtype=f64), xs)   # h_t = tanh(W h_(t-1) + x_t)
h = R.unroll(step, torch.zeros(64, dtype=f64), 20)[-1]
ratio = spectral_norm(R.step_jacobian(step, h, 21)) / spectral_norm(W)
print("measured ||dh_t/dh_(t-1)|| / ||W|| =", ratio, " claimed 1.0")
"""


@pytest.mark.claim("RNN-02")
def test_step_jacobian_norm_equals_weight_norm(claim, device):
    """004 §3.3.2 定理3.3.4: "‖∂h_t/∂h_{t−1}‖ = ‖W‖" for h_t = W h_{t−1}."""
    def gap_linear(a):
        W = torch.tensor(a, device=device)
        J = R.step_jacobian(R.linear_step(W), torch.ones(4, dtype=DT, device=device))
        return abs(spectral_norm(J) - spectral_norm(W))

    def ratio_tanh(ex):
        W, x = torch.tensor(ex[0], device=device), torch.tensor(ex[1], device=device)
        step = R.elman_step(W, torch.eye(4, dtype=DT, device=device), x[None])
        return spectral_norm(R.step_jacobian(step, torch.full((4,), 0.1, dtype=DT, device=device))) / max(spectral_norm(W), 1e-12)

    _, worst = maximize(_matrices(4), gap_linear, max_examples=30)
    claim.check("max |‖∂h_t/∂h_{t−1}‖ − ‖W‖|, linear RNN", claimed=0.0, measured=worst, atol=1e-10, dtype=DT)
    vecs = hnp.arrays(np.float64, (4,), elements=st.floats(-3, 3, allow_nan=False, width=64))
    _, worst_ratio = maximize(st.tuples(_matrices(4), vecs), ratio_tanh, max_examples=30)
    claim.check("max ‖J_tanh‖/‖W‖ (upper bound side)", claimed=1.0, measured=worst_ratio,
                relation="<=", atol=1e-12, dtype=DT)
    # typical tanh RNN state: Gaussian W (gain 1.5), unit input drive, after a burn-in
    gen = _gen(1)
    W = R.gaussian_matrix(64, 1.5, generator=gen, device=device)
    xs = torch.randn(21, 64, generator=gen, dtype=DT).to(device)
    step = R.elman_step(W, torch.eye(64, dtype=DT, device=device), xs)
    h = R.unroll(step, torch.zeros(64, dtype=DT, device=device), 20)[-1]
    ratio = spectral_norm(R.step_jacobian(step, h, 21)) / spectral_norm(W)
    claim.check("‖J_tanh‖/‖W‖ at a typical tanh-RNN state (n=64, gain 1.5, input std 1)", claimed=1.0,
                measured=ratio, rtol=0.01, dtype=DT, outside="σ = tanh instead of the linear simplification",
                counterexample={"n": 64, "gain": 1.5, "input_std": 1.0, "seed": 1, "ratio": ratio,
                                "snippet": _TYPICAL_STATE_SNIPPET})
    claim.correct(f"‖∂h_t/∂h_{{t−1}}‖ = ‖W‖ holds exactly for the linear RNN (max gap {worst:.1e}); "
                  f"for the tanh RNN only ‖J‖ ≤ ‖W‖ (max ratio found {worst_ratio:.3f}), "
                  f"and at a typical state ‖J‖ = {ratio:.3f}·‖W‖")


_GAUSSIAN_RATE_SNIPPET = """import numpy as np, torch
from gradcore import recurrent as R
from gradcore.spectral import spectral_norm, spectral_radius
from gradcore.stats import mean_ci
f64 = torch.float64
T, start = {T}, {start}
rates, norms, rhos = [], [], []
for seed in range({seeds}):
    W = R.gaussian_matrix({n}, {gain!r}, generator=torch.Generator().manual_seed(seed))
    g = torch.randn({n}, generator=torch.Generator().manual_seed(seed), dtype=f64)   # dL/dh_T
    norms_back = R.bptt_gradient_norms(R.linear_step(W), torch.zeros({n}, dtype=f64), T, grad_output=g).flip(0)
    rates.append(R.growth_rate(norms_back, start))   # per-step rate of ||(W^T)^t g||, fitted from t = start
    norms.append(spectral_norm(W))
    rhos.append(spectral_radius(W))
m, lo, hi = mean_ci(rates)
print("seed 0: ||W|| =", norms[0], " rho(W) =", rhos[0], " rate =", rates[0])
print("measured mean per-step rate =", m, "95% CI", (lo, hi), " claimed mean ||W|| =", float(np.mean(norms)),
      " (mean rho(W) =", float(np.mean(rhos)), ")")
"""

_NONNORMAL_RATE_SNIPPET = """import torch
from gradcore import recurrent as R
from gradcore.spectral import spectral_norm, spectral_radius
W = R.nonnormal_matrix(16, 0.9, 3.0, generator=torch.Generator().manual_seed(7))
ts = list(range(0, 81, 4))
pw = [float(torch.linalg.matrix_norm(torch.linalg.matrix_power(W.T, t), ord=2)) for t in ts]
rate = R.growth_rate(torch.tensor(pw[10:], dtype=torch.float64)) ** (1 / 4)
print("sigma_max(W) =", spectral_norm(W), " rho(W) =", spectral_radius(W), " ||(W^T)^80|| =", pw[-1])
print("measured per-step rate of ||(W^T)^T|| =", rate, " claimed sigma_max = 3.0")
"""


@pytest.mark.claim("RNN-03")
def test_gradient_grows_like_norm_power(claim, device):
    """004 §3.3.2 定理3.3.4: "如果‖W‖>1，则沿时间步T反向传播后，梯度范数约为‖W‖^T"; 003 §3.b: "其范数会以 λᵀ 的速度增长（λ 是最大奇异值）"."""
    T, start = 100, 40
    # normal W: σ_max = ρ, the claim's rate is exact
    Wn = R.normal_matrix(32, 1.05, generator=_gen(0), device=device)
    rate_n, curve_n = _backward_rate(Wn, T, start)
    claim.check("per-step rate of ‖(Wᵀ)^t g‖, normal W, ‖W‖ = ρ = 1.05", claimed=spectral_norm(Wn),
                measured=rate_n, rtol=1e-6, dtype=DT)
    # Gaussian init N(0, g²/n): ‖W‖ ≈ 2g > 1 while ρ ≈ g < 1
    norms_, rhos, rates, bounds = [], [], [], []
    for seed in range(5):
        W = R.gaussian_matrix(64, 0.8, generator=_gen(seed), device=device)
        r, curve = _backward_rate(W, T, start, seed)
        norms_.append(spectral_norm(W)); rhos.append(spectral_radius(W)); rates.append(r)
        bounds.append(float(curve[-1]) / spectral_norm(W) ** T)
    rate, lo, hi = mean_ci(rates)
    sig, rho = float(np.mean(norms_)), float(np.mean(rhos))
    snippet = _GAUSSIAN_RATE_SNIPPET.format(n=64, gain=0.8, seeds=5, T=T, start=start)
    claim.check("per-step rate, Gaussian W (n=64, gain 0.8, 5 seeds) vs mean ‖W‖", claimed=sig, measured=rate,
                interval=(lo, hi), rtol=0.05, dtype=DT,
                counterexample={"n": 64, "gain": 0.8, "seed": 0, "norm_W": norms_[0], "rho_W": rhos[0],
                                "rate": rates[0], "snippet": snippet})
    claim.check("same rate vs mean ρ(W) (the corrected rate)", claimed=rho, measured=rate, interval=(lo, hi),
                rtol=0.05, dtype=DT)
    claim.check("‖(Wᵀ)^T g‖ / (‖W‖^T ‖g‖), T=100 (‖W‖^T is an upper bound)", claimed=1.0,
                measured=max(bounds), relation="<=", dtype=DT)
    # non-normal W: ρ = 0.9, σ_max = 3: ‖W^T‖ → 0 though σ_max > 1
    Wx = R.nonnormal_matrix(16, 0.9, 3.0, generator=_gen(7), device=device)
    ts = list(range(0, 81, 4))
    pw = [float(torch.linalg.matrix_norm(torch.linalg.matrix_power(Wx.T, t), ord=2)) for t in ts]
    pn = [float(torch.linalg.matrix_norm(torch.linalg.matrix_power(Wn.T, t), ord=2)) for t in ts]
    rate_x = R.growth_rate(torch.tensor(pw[10:], dtype=DT)) ** (1 / 4)
    claim.check("per-step rate of ‖(Wᵀ)^T‖, non-normal W (ρ=0.9, σ_max=3)", claimed=3.0, measured=rate_x,
                rtol=0.05, dtype=DT,
                counterexample={"n": 16, "rho": 0.9, "sigma_max": 3.0, "seed": 7, "norm_W80": pw[-1],
                                "snippet": _NONNORMAL_RATE_SNIPPET})
    for label, ys in (("non-normal W, ρ=0.9, σ_max=3 (n=16)", pw), ("normal W = 1.05·Q (n=32)", pn)):
        claim.curve("rnn-matrix-power-norm", label, ts, ys, xlabel="T", ylabel="‖(Wᵀ)^T‖₂", logy=True)
    claim.curve("rnn-matrix-power-norm", "σ_max^T = 3^T", ts[:8], [3.0 ** t for t in ts[:8]], xlabel="T",
                ylabel="‖(Wᵀ)^T‖₂", logy=True)
    claim.curve("rnn-matrix-power-norm", "ρ^T = 0.9^T", ts, [0.9 ** t for t in ts], xlabel="T",
                ylabel="‖(Wᵀ)^T‖₂", logy=True)
    claim.correct(f"‖W‖^T is only an upper bound (ratio ≤ {max(bounds):.1e} at T=100); the asymptotic per-step "
                  f"rate is ρ(W): Gaussian W with mean ‖W‖ = {sig:.2f} > 1 has rate {rate:.3f} "
                  f"[{lo:.3f}, {hi:.3f}] ≈ ρ = {rho:.3f}, so the gradient vanishes; a non-normal W with "
                  f"σ_max = 3, ρ = 0.9 has ‖(Wᵀ)^80‖ = {pw[-1]:.2e} (rate {rate_x:.3f})")


_STABLE_SUBSPACE_SNIPPET = """import torch
from gradcore import recurrent as R
from gradcore.spectral import spectral_radius
Q = R.random_orthogonal(24, generator=torch.Generator().manual_seed(4))
lam = torch.linspace(0.5, -0.5, 24, dtype=torch.float64)
lam[0] = 1.5
W = Q @ torch.diag(lam) @ Q.T   # rho(W) = 1.5
h0 = Q[:, 1]                    # eigenvector of the eigenvalue 0.5
rate = R.growth_rate(R.linear_rnn(W, h0, 40).norm(dim=-1))
print("measured per-step rate of ||h_t|| =", rate, " claimed rho(W) =", spectral_radius(W))
"""

_TRANSIENT_SNIPPET = """import torch
from gradcore import recurrent as R
from gradcore.spectral import spectral_norm, spectral_radius
W = R.nonnormal_matrix(24, 0.9, 2.5, generator=torch.Generator().manual_seed(2))
amp = max(float(torch.linalg.matrix_norm(torch.linalg.matrix_power(W, t), ord=2)) for t in range(41))
print("rho(W) =", spectral_radius(W), " sigma_max(W) =", spectral_norm(W))
print("measured max_t ||h_t||/||h_0|| (= max_t ||W^t||, t <= 40) =", amp, " claimed <= 1.0")
"""


@pytest.mark.claim("RNN-04")
def test_spectral_radius_decides_growth(claim, device):
    """004 §3.3.2 矩阵谱半径与稳定性: "如果ρ(W)>1，则‖h_t‖随t指数增长…如果ρ(W)<1，则‖h_t‖随t指数衰减"; 002 §L2 正则化与隐式稳定."""
    T, start = 120, 60
    h0 = torch.randn(24, generator=_gen(3), dtype=DT).to(device)
    for rho in (1.1, 0.9):
        for kind, W in (("normal", R.normal_matrix(24, rho, generator=_gen(1), device=device)),
                        ("non-normal σ_max=2.5", R.nonnormal_matrix(24, rho, 2.5, generator=_gen(2), device=device))):
            hs = R.linear_rnn(W, h0, T).norm(dim=-1)
            claim.check(f"per-step rate of ‖h_t‖, {kind}, ρ={rho}", claimed=rho,
                        measured=R.growth_rate(hs, start), rtol=0.01, dtype=DT)
            grad_rate, _ = _backward_rate(W, T, start)
            claim.check(f"per-step rate of the BPTT gradient, {kind}, ρ={rho}", claimed=rho,
                        measured=grad_rate, rtol=0.01, dtype=DT)
            claim.curve("rnn-state-norm", f"{kind}, ρ={rho} (n=24)", range(T + 1), hs / hs[0],
                        xlabel="t", ylabel="‖h_t‖/‖h_0‖", logy=True)
    # ρ > 1, but h_0 in the stable eigenspace: W = Q diag(1.5, 0.5, …) Qᵀ, h_0 = Q e_2
    Q = R.random_orthogonal(24, generator=_gen(4), device=device)
    lam = torch.linspace(0.5, -0.5, 24, dtype=DT, device=device)
    lam[0] = 1.5
    W = Q @ torch.diag(lam) @ Q.T
    stable = R.growth_rate(R.linear_rnn(W, Q[:, 1], 40).norm(dim=-1))
    claim.check("per-step rate of ‖h_t‖, ρ(W)=1.5, h_0 in the stable eigenspace", claimed=spectral_radius(W),
                measured=stable, rtol=0.01, dtype=DT, outside="h_0 in a stable invariant subspace (non-generic)",
                counterexample={"eigenvalues": "1.5, then 0.5 … −0.5", "h0": "eigenvector of 0.5", "rate": stable,
                                "snippet": _STABLE_SUBSPACE_SNIPPET})
    # ρ < 1 but non-normal: transient amplification before the decay
    Wx = R.nonnormal_matrix(24, 0.9, 2.5, generator=_gen(2), device=device)
    _, amp = maximize(hnp.arrays(np.float64, (24,), elements=st.floats(-1, 1, width=64)).filter(lambda a: np.abs(a).max() > 0.1),
                      lambda a: float(R.linear_rnn(Wx, torch.tensor(a, device=device), 40).norm(dim=-1).max()
                                      / np.linalg.norm(a)), max_examples=30)
    worst = max(amp, float(max(torch.linalg.matrix_norm(torch.linalg.matrix_power(Wx, t), ord=2) for t in range(41))))
    claim.check("max_t ‖h_t‖/‖h_0‖, ρ=0.9, σ_max=2.5 (decay from the start)", claimed=1.0, measured=worst,
                relation="<=", dtype=DT, outside="transient regime of a non-normal W",
                counterexample={"n": 24, "rho": 0.9, "sigma_max": 2.5, "seed": 2, "max_amplification": worst,
                                "snippet": _TRANSIENT_SNIPPET})
    claim.correct(f"the asymptotic rate of ‖h_t‖ is ρ(W) for generic h_0; h_0 in a stable eigenspace of a "
                  f"ρ=1.5 matrix decays at {stable:.3f}/step, and a non-normal W with ρ=0.9 first amplifies "
                  f"‖h_t‖ up to {worst:.1f}× before decaying")


_EIGEN_RATE_SNIPPET = """import torch
from gradcore import recurrent as R
W = torch.tensor({W}, dtype=torch.float64)
T, start = {T}, {start}
eig = torch.linalg.eigvals(W)
g = torch.randn(W.shape[0], generator=torch.Generator().manual_seed(0), dtype=torch.float64)   # dL/dh_T
norms = R.bptt_gradient_norms(R.linear_step(W), torch.zeros_like(g), T, grad_output=g).flip(0)
print("eigenvalues", eig.tolist(), " largest real part =", float(eig.real.max()), " rho =", float(eig.abs().max()))
print("measured BPTT per-step rate =", R.growth_rate(norms, start), " claimed <= 1.0 (largest eigenvalue < 1)")
"""


@pytest.mark.claim("RNN-05")
def test_largest_eigenvalue_criterion(claim, device):
    """000 §RNN的特殊性: "如果这个矩阵的最大特征值大于1，梯度就会在时间序列上指数级增长"."""
    T, start = 80, 30
    Q = R.random_orthogonal(8, generator=_gen(5), device=device)
    lam = torch.tensor([1.2, 0.6, 0.4, 0.2, 0.0, -0.2, -0.4, -0.6], dtype=DT, device=device)
    rate_pos, _ = _backward_rate(Q @ torch.diag(lam) @ Q.T, T, start)
    claim.check("rate with largest eigenvalue 1.2", claimed=1.0, measured=rate_pos, relation=">", dtype=DT)
    claim.check("that rate equals the largest eigenvalue", claimed=1.2, measured=rate_pos, rtol=1e-3, dtype=DT)

    def explodes_below_one(a):
        W = torch.tensor(a, device=device)
        eig = torch.linalg.eigvals(W)
        return float(eig.real.max()) < 1 and float(eig.abs().max()) > 1.1
    cx = find_counterexample(_matrices(2, 2.0), explodes_below_one)
    W = torch.tensor(cx, device=device)
    rate_cx, _ = _backward_rate(W, T, start)
    lam_max = float(torch.linalg.eigvals(W).real.max())
    rot = 1.2 * torch.tensor([[math.cos(1.0), -math.sin(1.0)], [math.sin(1.0), math.cos(1.0)]], dtype=DT, device=device)
    rate_rot, _ = _backward_rate(rot, T, start)
    for name, r, ce in (("rate, searched W with largest (real part of) eigenvalue < 1", rate_cx,
                         {"W": cx, "largest_eigenvalue": lam_max, "rate": rate_cx,
                          "snippet": _EIGEN_RATE_SNIPPET.format(W=cx.tolist(), T=T, start=start)}),
                        ("rate, 1.2·rotation(1 rad): eigenvalues 1.2e^{±i}, real part 0.65", rate_rot,
                         {"W": rot, "rate": rate_rot,
                          "snippet": _EIGEN_RATE_SNIPPET.format(W=rot.tolist(), T=T, start=start)})):
        claim.check(name + " (should not explode under the criterion)", claimed=1.0, measured=r, relation="<=",
                    dtype=DT, outside="reading 'largest eigenvalue > 1' as the criterion (λ_max ≤ 1 ⇒ no explosion)",
                    counterexample=ce)
    claim.correct(f"λ_max > 1 suffices (rate {rate_pos:.3f} = λ_max), but the criterion is ρ(W) = max|λ|: "
                  f"W = {cx.tolist()} has largest eigenvalue {lam_max:.2f} < 1 yet grows at {rate_cx:.3f}/step; "
                  f"a 1.2-scaled rotation (complex eigenvalues) grows at {rate_rot:.3f}/step")


@pytest.mark.claim("RNN-06")
def test_bptt_may_grow_when_sigma_max_above_one(claim, device):
    """002 §直接干预：梯度裁剪技术: "如果该权重矩阵的最大奇异值大于1，梯度范数可能随序列长度呈指数增长"."""
    T = 60
    W = R.normal_matrix(16, 1.1, generator=_gen(0), device=device)
    xs = torch.zeros(T, 16, dtype=DT, device=device)
    lin, curve = _backward_rate(W, T, 0)
    claim.check("BPTT rate, linear RNN, W = 1.1·Q (σ_max = 1.1)", claimed=1.0, measured=lin, relation=">", dtype=DT)
    rates = []
    for seed in range(4):
        Wg = R.gaussian_matrix(64, 2.0, generator=_gen(seed), device=device)
        norms = R.bptt_gradient_norms(R.elman_step(Wg, torch.eye(64, dtype=DT, device=device), xs.new_zeros(T, 64)),
                                      torch.randn(64, generator=_gen(seed + 10), dtype=DT).to(device), T)
        rates.append(R.growth_rate(norms.flip(0), 10))
    m, lo, hi = mean_ci(rates)
    claim.check("BPTT rate, tanh RNN, Gaussian W gain 2 (σ_max≈4), no input, 4 seeds", claimed=1.0, measured=m,
                interval=(lo, hi), relation=">", dtype=DT)
    claim.curve("rnn-bptt-growth", "linear RNN, W=1.1·Q (n=16)", range(T + 1), curve, xlabel="steps back",
                ylabel="‖∂L/∂h_{T−k}‖/‖∂L/∂h_T‖", logy=True)


_TANH_PRODUCT_SNIPPET = """import torch
from gradcore import recurrent as R
from gradcore.spectral import spectral_norm
f64 = torch.float64
W = torch.tensor({W}, dtype=f64)    # non-normal, rho = 0.3, sigma_max = 3
xs = torch.tensor({xs}, dtype=f64)
T = {T}
step = R.elman_step(W, torch.eye(3, dtype=f64), xs)   # h_t = tanh(W h_(t-1) + x_t)
P = torch.eye(3, dtype=f64)
for t, h in enumerate(R.unroll(step, torch.full((3,), 0.2, dtype=f64), T)[:-1], 1):
    P = R.step_jacobian(step, h.detach(), t) @ P   # dh_T/dh_0
lin = spectral_norm(torch.linalg.matrix_power(W, T))   # linear RNN's gain ||W^T||
print("||dh_T/dh_0|| (tanh) =", spectral_norm(P), " ||W^T|| =", lin, " ||W||^T =", spectral_norm(W) ** T)
print("measured ||dh_T/dh_0|| / ||W^T|| =", spectral_norm(P) / lin, " claimed <= 1.0")
"""


@pytest.mark.claim("RNN-07")
def test_tanh_rnn_gradient_below_linear_bound(claim, device):
    """004 §3.3.2: "RNN的隐藏状态更新为h_t = σ(W h_{t−1} + U x_t)" analysed through the simplification h_t = W h_{t−1}."""
    T = 6
    def ratio(ex):
        W, xs = torch.tensor(ex[0], device=device), torch.tensor(ex[1], device=device)
        step = R.elman_step(W, torch.eye(3, dtype=DT, device=device), xs)
        P = torch.eye(3, dtype=DT, device=device)
        for t, h in enumerate(R.unroll(step, torch.full((3,), 0.2, dtype=DT, device=device), T)[:-1], 1):
            P = R.step_jacobian(step, h.detach(), t) @ P
        lin = float(torch.linalg.matrix_norm(torch.linalg.matrix_power(W, T), ord=2))
        return spectral_norm(P) / max(spectral_norm(W) ** T, 1e-300), spectral_norm(P) / max(lin, 1e-300)
    xs = hnp.arrays(np.float64, (T, 3), elements=st.floats(-2, 2, width=64))
    _, worst = maximize(st.tuples(_matrices(3, 2.0), xs), lambda ex: ratio(ex)[0], max_examples=30)
    claim.check("max ‖∂h_T/∂h_0‖_tanh / ‖W‖^T (T=6, n=3)", claimed=1.0, measured=worst, relation="<=",
                atol=1e-12, dtype=DT)
    # non-normal W with ρ = 0.3, σ_max = 3: the linear RNN's W^T nearly cancels; tanh' breaks it
    Wx = R.nonnormal_matrix(3, 0.3, 3.0, generator=_gen(18), device=device)
    ex, worst_lin = maximize(xs, lambda a: ratio((Wx.cpu().numpy(), a))[1], max_examples=30)
    claim.check("max ‖∂h_T/∂h_0‖_tanh / ‖W^T‖, non-normal W (ρ=0.3, σ_max=3)", claimed=1.0, measured=worst_lin,
                relation="<=", atol=1e-12, dtype=DT, outside="bounding by the linear RNN's gain ‖W^T‖ rather than ‖W‖^T",
                counterexample={"W": Wx, "xs": ex, "h0": [0.2] * 3, "ratio": worst_lin,
                                "snippet": _TANH_PRODUCT_SNIPPET.format(W=Wx.cpu().tolist(), xs=np.asarray(ex).tolist(),
                                                                       T=T)})
    claim.correct(f"the tanh RNN's Jacobian product obeys ‖∏ diag(tanh')W‖ ≤ ‖W‖^T (max ratio {worst:.3f}), "
                  f"but not ≤ ‖W^T‖ of the linear RNN: ratio up to {worst_lin:.3g} (tanh' breaks the cancellation "
                  f"of a non-normal W)")


_DRIVEN_TANH_SNIPPET = """import numpy as np, torch
from gradcore import recurrent as R
from gradcore.spectral import spectral_norm
from gradcore.stats import mean_ci
f64 = torch.float64
n, gain, drive, T = {n}, {gain!r}, {drive!r}, {T}
rates, norms = [], []
for seed in range({seeds}):
    gen = torch.Generator().manual_seed(100 * seed + int(10 * gain))
    W = R.gaussian_matrix(n, gain, generator=gen)
    xs = torch.randn(T, n, generator=gen, dtype=f64)
    h0 = torch.randn(n, generator=gen, dtype=f64)
    step = R.elman_step(W, drive * torch.eye(n, dtype=f64), xs)   # h_t = tanh(W h_(t-1) + drive x_t)
    rates.append(R.growth_rate(R.bptt_gradient_norms(step, h0, T).flip(0), 10))
    norms.append(spectral_norm(W))
m, lo, hi = mean_ci(rates)
print("mean ||W|| =", float(np.mean(norms)), " input std", drive)
print("measured mean BPTT per-step rate =", m, "95% CI", (lo, hi), " claimed > 1.0 (explodes)")
"""


@pytest.mark.claim("RNN-08")
def test_large_weight_norm_explodes_through_tanh(claim, device):
    """003 §3.b / 000: "虽然激活函数的导数可能小于1，但只要权重矩阵的范数足够大且持续大于1，就足以引发梯度爆炸"."""
    n, T, seeds = 64, 50, 4
    gains = (0.8, 1.2, 2.0, 3.0, 4.0, 6.0)
    table = {}
    for drive in (0.0, 3.0):
        means = []
        for g in gains:
            rates, norms_ = [], []
            for seed in range(seeds):
                gen = _gen(100 * seed + int(10 * g))
                W = R.gaussian_matrix(n, g, generator=gen, device=device)
                xs = torch.randn(T, n, generator=gen, dtype=DT).to(device)
                h0 = torch.randn(n, generator=gen, dtype=DT).to(device)
                step = R.elman_step(W, drive * torch.eye(n, dtype=DT, device=device), xs)
                rates.append(R.growth_rate(R.bptt_gradient_norms(step, h0, T).flip(0), 10))
                norms_.append(spectral_norm(W))
            table[drive, g] = (*mean_ci(rates), float(np.mean(norms_)))
            means.append(table[drive, g][0])
        claim.curve("rnn-tanh-rate-vs-gain", f"input std {drive} (n={n}, {seeds} seeds)", gains, means,
                    xlabel="gain g (W ~ N(0, g²/n))", ylabel="BPTT per-step rate")
    top = gains[-1]
    for drive in (0.0, 3.0):
        m, lo, hi, nw = table[drive, top]
        claim.check(f"rate at gain {top} (‖W‖≈{nw:.1f}), input std {drive}", claimed=1.0, measured=m,
                    interval=(lo, hi), relation=">", dtype=DT)
    m, lo, hi, nw = table[3.0, 2.0]
    claim.check(f"rate at gain 2 (‖W‖≈{nw:.1f} > 1), input std 3", claimed=1.0, measured=m, interval=(lo, hi),
                relation=">", dtype=DT, outside="‖W‖ > 1 but below the drive-dependent threshold",
                counterexample={"n": n, "gain": 2.0, "norm_W": nw, "input_std": 3.0, "rate": m,
                                "snippet": _DRIVEN_TANH_SNIPPET.format(n=n, gain=2.0, drive=3.0, T=T, seeds=seeds)})
    thresholds, norm_at = {}, {}
    for drive in (0.0, 3.0):
        ms = [table[drive, g][0] for g in gains]
        k = next(i for i, r in enumerate(ms) if r > 1)
        g0, g1, r0, r1 = gains[k - 1], gains[k], ms[k - 1], ms[k]
        thresholds[drive] = g0 + (1 - r0) * (g1 - g0) / (r1 - r0) if k else gains[0]
        norm_at[drive] = float(np.interp(thresholds[drive], gains, [table[drive, g][3] for g in gains]))
    claim.correct(f"through tanh, a large ‖W‖ explodes only above a gain threshold that grows with the input drive: "
                  f"g* ≈ {thresholds[0.0]:.2f} (‖W‖ ≈ {norm_at[0.0]:.1f}) with no input, g* ≈ {thresholds[3.0]:.2f} "
                  f"(‖W‖ ≈ {norm_at[3.0]:.1f}) with input std 3; at g=2, ‖W‖ ≈ {nw:.1f}, input std 3 the "
                  f"gradient vanishes at {m:.3f}/step")

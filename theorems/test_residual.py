"""Residual-connection claims (catalogue: gradcore/claims/residual.toml)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import strategies as st
from torch import nn

from gradcore.jacobian import chain_jacobians, jacobian, jacobian_operator
from gradcore.residual import (Residual, ScaledResidual, block_jacobian, branch_lipschitz_bound,
                               mlp_branch, residual_stack, safe_scaling)
from gradcore.stats import per_seed_slope_ci
from gradcore.verify.search import find_counterexample, maximize

F64 = torch.float64
ACT_DERIV = {"tanh": lambda z: 1 - torch.tanh(z) ** 2, "relu": lambda z: (z > 0).to(z.dtype),
             "sigmoid": lambda z: torch.sigmoid(z) * (1 - torch.sigmoid(z))}


def _branch(seed: int, width: int, gain: float, act: str, dtype: torch.dtype, device: str) -> nn.Sequential:
    torch.manual_seed(seed)
    return mlp_branch(width, activation=act, gain=gain, dtype=dtype, device=device)


def _branch_jac_closed_form(f: nn.Sequential, x: torch.Tensor, act: str) -> torch.Tensor:
    """F'(x) = W₂ diag(σ'(W₁x)) W₁, written out by hand (independent of autograd)."""
    w1, w2 = f[0].weight.detach(), f[2].weight.detach()
    return w2 @ torch.diag(ACT_DERIV[act](w1 @ x)) @ w1


def _grad_ratio(net: nn.Module, x: torch.Tensor, g: torch.Tensor) -> float:
    """‖(∂net/∂x)ᵀ g‖ / ‖g‖: how much one backward pass scales the gradient g."""
    return float(jacobian_operator(net, x).rmatvec(g).detach().norm() / g.norm())


BRANCHES = st.tuples(st.integers(0, 2 ** 16), st.integers(1, 10), st.floats(0.0, 3.0),
                     st.sampled_from(sorted(ACT_DERIV)))


@pytest.mark.claim("RES-01")
def test_residual_jacobian_identity_plus_branch(claim, device):
    """004 §3.3.2 eq (3.3.7): "∂ŷ/∂x = I + ∂F/∂x"; 002 §残差与密集连接: "雅可比矩阵变为 I + f_l'(x_l)"."""
    for dtype in (torch.float32, F64):
        def error(p):
            seed, width, gain, act = p
            f = _branch(seed, width, gain, act, dtype, device)
            x = torch.randn(width, dtype=dtype, device=device)
            ref = torch.eye(width, dtype=dtype, device=device) + _branch_jac_closed_form(f, x, act)
            return float((block_jacobian(Residual(f), x).detach() - ref).abs().max() / ref.abs().max())
        worst, err = maximize(BRANCHES, error)
        claim.check("max relative |autograd ∂ŷ/∂x − (I + W₂diag(σ')W₁)| over searched blocks",
                    claimed=0.0, measured=err, atol=512 * torch.finfo(dtype).eps, dtype=dtype)


@pytest.mark.claim("RES-02")
def test_small_branch_keeps_jacobian_near_identity(claim, device):
    """004 §3.3.2: "即使∂F/∂x很小，∂ŷ/∂x ≈ I确保了梯度可以直接通过恒等映射传递"."""
    def excess(p):
        # how far the gradient gain through I + F' leaves [1 − ε, 1 + ε], ε = ‖F'‖₂
        seed, width, gain, act = p
        f = _branch(seed, width, gain, act, F64, device)
        x = torch.randn(width, dtype=F64, device=device)
        eps = float(torch.linalg.matrix_norm(_branch_jac_closed_form(f, x, act), ord=2))
        sv = torch.linalg.svdvals(block_jacobian(Residual(f), x).detach())
        return float((sv - 1).abs().max()) - eps
    small = st.tuples(st.integers(0, 2 ** 16), st.integers(1, 10), st.floats(0.0, 0.3),
                      st.sampled_from(sorted(ACT_DERIV)))
    worst, ex = maximize(small, excess)
    claim.check("max over blocks of max_i |σ_i(I+F') − 1| − ‖F'‖₂ (≤ 0: gain within 1 ± ‖F'‖)",
                claimed=0.0, measured=ex, relation="<=", atol=1e-12, dtype=F64)
    ratios = []
    for seed in range(20):
        f = _branch(seed, 16, 0.05, "tanh", F64, device)
        x, g = torch.randn(16, dtype=F64, device=device), torch.randn(16, dtype=F64, device=device)
        ratios.append(_grad_ratio(Residual(f), x, g))
    dev = max(abs(r - 1) for r in ratios)
    claim.check("max |‖(I+F')ᵀg‖/‖g‖ − 1|, 20 tanh branches of gain 0.05, width 16",
                claimed=0.0, measured=dev, atol=0.1, dtype=F64)


def _stack_gradients(widths_seed: tuple[int, int, int], device: str):
    """A residual stack, its states x_l, branch Jacobians F'_l and autograd ∂L/∂x_l."""
    width, depth, seed = widths_seed
    blocks = [Residual(_branch(seed + l, width, 1.0, "tanh", F64, device)) for l in range(depth)]
    gen = torch.Generator().manual_seed(seed)
    xs = [torch.randn(width, generator=gen, dtype=F64).to(device).requires_grad_(True)]
    for b in blocks:
        xs.append(b(xs[-1]))
    c = torch.randn(width, generator=gen, dtype=F64).to(device)
    grads = torch.autograd.grad((xs[-1] * c).sum(), xs)
    jac_f = [jacobian(b.f, x.detach()).detach() for b, x in zip(blocks, xs)]
    return [g.detach() for g in grads], jac_f


@pytest.mark.claim("RES-03")
def test_residual_backward_recursion(claim, device):
    """004 §3.3.2 eq (3.3.8): "∂L/∂x_l = ∂L/∂x_{l+1}(I + ∂F/∂x_l)" (row-vector convention)."""
    worst = 0.0
    for seed in range(5):
        grads, jac_f = _stack_gradients((6, 5, 10 * seed), device)
        eye = torch.eye(6, dtype=F64, device=device)
        for l in range(5):
            pred = grads[l + 1] @ (eye + jac_f[l])
            worst = max(worst, float((pred - grads[l]).norm() / grads[l].norm()))
    claim.check("max relative error of eq 3.3.8 vs autograd, 5 stacks × 5 blocks, width 6",
                claimed=0.0, measured=worst, atol=1e-12, dtype=F64)


def _order_errors(p: tuple[int, int, int], device: str) -> tuple[float, float]:
    """Relative error vs autograd of Π_{l=1..L}(I+F'_l) (as written) and of Π_{l=L..1}."""
    grads, jac_f = _stack_gradients(p, device)
    eye = torch.eye(p[0], dtype=F64, device=device)
    written, reversed_ = grads[-1], grads[-1]
    for j in jac_f:
        written = written @ (eye + j)
    for j in reversed(jac_f):
        reversed_ = reversed_ @ (eye + j)
    scale = float(grads[0].norm())
    return float((written - grads[0]).norm()) / scale, float((reversed_ - grads[0]).norm()) / scale


_ORDER_SNIPPET = """import functools, torch
from gradcore.residual import Residual, mlp_branch, residual_stack
from gradcore.jacobian import jacobian
w, L, f64 = {w}, {L}, torch.float64
written_err, reversed_err = [], []
for s in {seeds}:
    blocks = []
    for l in range(L):
        torch.manual_seed(s + l); blocks.append(Residual(mlp_branch(w, dtype=f64)))
    g = torch.Generator().manual_seed(s)
    x, c = torch.randn(w, generator=g, dtype=f64), torch.randn(w, generator=g, dtype=f64)
    xs = [x]
    for b in blocks: xs.append(b(xs[-1]).detach())
    J = [torch.eye(w, dtype=f64) + jacobian(b.f, xi).detach() for b, xi in zip(blocks, xs)]   # I + dF/dx_l
    auto = torch.func.vjp(residual_stack(blocks), x)[1](c)[0].detach()   # autograd dL/dx_1, dL/dx_(L+1) = c
    written = c @ functools.reduce(torch.matmul, J)          # (I+F'_1)(I+F'_2)...(I+F'_L), as written
    reversed_ = c @ functools.reduce(torch.matmul, J[::-1])  # (I+F'_L)...(I+F'_1)
    written_err.append(float((written - auto).norm() / auto.norm()))
    reversed_err.append(float((reversed_ - auto).norm() / auto.norm()))
print("width", w, "blocks", L, "seeds", {seeds}, ": relative error of the order l = L..1 =", reversed_err)
print("measured relative error of the written order l = 1..L (mean over seeds) =",
      sum(written_err) / len(written_err), " claimed 0.0")
"""


@pytest.mark.claim("RES-04")
def test_residual_product_order(claim, device):
    """004 §3.3.2 eq (3.3.9): "∂L/∂x_1 = ∂L/∂x_{L+1} ∏_{l=1}^L (I + ∂F/∂x_l)"."""
    space = st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(0, 20))
    ex = find_counterexample(space, lambda p: _order_errors(p, device)[0] > 1e-6)
    assert ex is not None, "no counterexample: the written order always matched autograd"
    written, reversed_ = _order_errors(ex, device)
    width, depth, seed = ex
    claim.check("relative error of ∏_{l=1..L} (left to right) vs autograd, shrunk example",
                claimed=0.0, measured=written, atol=1e-9, dtype=F64,
                counterexample={"width": width, "blocks": depth, "seed": seed, "relative_error": written,
                                "snippet": _ORDER_SNIPPET.format(w=width, L=depth, seeds=[seed])})
    claim.check("relative error of ∏_{l=L..1} (right to left) vs autograd, same example",
                claimed=0.0, measured=reversed_, atol=1e-9, dtype=F64)
    typical = float(np.mean([_order_errors((6, 5, 10 * s), device)[0] for s in range(5)]))
    claim.check("mean relative error of the written order, 5 stacks × 5 blocks, width 6",
                claimed=0.0, measured=typical, atol=1e-9, dtype=F64,
                counterexample={"width": 6, "blocks": 5, "seeds": [0, 10, 20, 30, 40],
                                "snippet": _ORDER_SNIPPET.format(w=6, L=5, seeds=[10 * s for s in range(5)])})
    scalar = max(_order_errors((1, 6, s), device)[0] for s in range(5))
    claim.check("written order, width 1 (commuting Jacobians), 5 stacks of 6 blocks",
                claimed=0.0, measured=scalar, atol=1e-9, dtype=F64)
    claim.correct(f"∂L/∂x_1 = ∂L/∂x_{{L+1}} (I+∂F/∂x_L)(I+∂F/∂x_{{L-1}})…(I+∂F/∂x_1): the product "
                  f"runs l = L…1 (error {reversed_:.1e} vs autograd); the written order l = 1…L is off "
                  f"by {written:.2f} (relative) for width {width}, {depth} blocks ({typical:.2f} on average "
                  f"for width 6, 5 blocks), and agrees only when the Jacobians commute (width 1: {scalar:.1e}).")


_BLOCK_SNIPPET = """import torch
from gradcore.residual import ScaledResidual, block_jacobian, mlp_branch
torch.manual_seed({seed})
f = mlp_branch({width}, activation={act!r}, gain={gain!r}, dtype=torch.float64)
x = torch.randn({width}, dtype=torch.float64)
J = block_jacobian(ScaledResidual(f, {alpha!r}, {beta!r}), x).detach()   # (1-beta) I + alpha F'(x)
sv = torch.linalg.svdvals(J)
{what}
"""
_MIN_GAIN = ('print("measured min_g ||J^T g||/||g|| = sigma_min(I + F\'(x)) =", float(sv.min()), '
             '" claimed >= 1.0 (identity path loses nothing)")')
_MAX_GAIN = 'print("measured ||(1-beta) I + alpha F\'(x)||_2 =", float(sv.max()), " claimed <= 1.0")'

_HALF_SNIPPET = """import torch
from torch import nn
from gradcore.jacobian import jacobian_operator
from gradcore.residual import Residual, residual_stack
f64 = torch.float64
half = nn.Linear(8, 8, bias=False).to(f64)
with torch.no_grad():
    half.weight.copy_(-0.5 * torch.eye(8, dtype=f64))   # F(x) = -x/2
net = residual_stack([Residual(half)] * 16)            # 16 blocks x + F(x) = x/2
gen = torch.Generator().manual_seed(0)
x, g = torch.randn(8, generator=gen, dtype=f64), torch.randn(8, generator=gen, dtype=f64)
ratio = float(jacobian_operator(net, x).rmatvec(g).detach().norm() / g.norm())
print("measured ||dL/dx_1|| / ||dL/dx_17|| =", ratio, " (2^-16 =", 2.0 ** -16, ") claimed >= 1.0")
"""


@pytest.mark.claim("RES-05")
def test_identity_path_lossless_lower_bound(claim, device):
    """004 §3.3.2: "残差连接的核心数学保证是：梯度至少可以通过恒等路径（I部分）无衰减地传播"."""
    def shrink(p):
        # 1 − min_g ‖(I+F')ᵀg‖/‖g‖ = 1 − σ_min(I + F')
        seed, width, gain, act = p
        f = _branch(seed, max(width, 2), gain, act, F64, device)
        x = torch.randn(max(width, 2), dtype=F64, device=device)
        return 1.0 - float(torch.linalg.svdvals(block_jacobian(Residual(f), x).detach()).min())
    worst, s = maximize(BRANCHES, shrink)
    seed, width, gain, act = worst
    claim.check("min over searched blocks and g of ‖(I+F')ᵀg‖/‖g‖", claimed=1.0, measured=1.0 - s,
                relation=">=", atol=1e-9, dtype=F64,
                counterexample={"seed": seed, "width": max(width, 2), "gain": gain, "activation": act,
                                "snippet": _BLOCK_SNIPPET.format(seed=seed, width=max(width, 2), act=act, gain=gain,
                                                                 alpha=1.0, beta=0.0, what=_MIN_GAIN)})
    below, total = 0, 0
    for seed in range(10):
        f = _branch(seed, 16, 1.0, "tanh", F64, device)
        x = torch.randn(16, dtype=F64, device=device)
        for _ in range(10):
            below += _grad_ratio(Residual(f), x, torch.randn(16, dtype=F64, device=device)) < 1.0
            total += 1
    claim.note(f"{below}/{total} random (block, g) pairs at Kaiming init (tanh, width 16) shrink the gradient")
    half = nn.Linear(8, 8, bias=False).to(device=device, dtype=F64)
    with torch.no_grad():
        half.weight.copy_(-0.5 * torch.eye(8, dtype=F64))
    deep = _grad_ratio(residual_stack([Residual(half)] * 16), torch.randn(8, dtype=F64, device=device),
                       torch.randn(8, dtype=F64, device=device))
    claim.check("‖∂L/∂x_1‖/‖∂L/∂x_17‖ through 16 blocks with F = −x/2", claimed=1.0, measured=deep,
                relation=">=", atol=1e-9, dtype=F64,
                counterexample={"branch": "F(x) = -x/2 (nn.Linear, weight -I/2)", "blocks": 16, "ratio": deep,
                                "snippet": _HALF_SNIPPET})
    claim.correct(f"the identity path bounds the gain below only by 1 − ‖F'‖₂ (Weyl; measured in RES-02), not by 1: searched "
                  f"random blocks reach min ratio {1 - s:.3f}; {below}/{total} random (block, g) pairs "
                  f"shrink the gradient; F = −x/2 over 16 blocks gives {deep:.2e} = 2^-16.")


def _he_relu_stack(depth: int, seed: int, width: int, device: str) -> nn.Sequential:
    return residual_stack([Residual(_branch(1000 * seed + l, width, math.sqrt(2), "relu", F64, device))
                           for l in range(depth)])


@pytest.mark.claim("RES-06")
def test_residual_explosion_when_block_norm_exceeds_one(claim, device):
    """002 §残差与密集连接: "如果 … 持续使 ‖I + f_l'(x_l)‖₂ > 1，梯度爆炸依然可能发生"."""
    depths, width, seeds = [4, 8, 16, 24], 16, range(4)
    ratios = np.zeros((len(seeds), len(depths)))
    block_norms = []
    for i, seed in enumerate(seeds):
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(width, generator=gen, dtype=F64).to(device)
        g = torch.randn(width, generator=gen, dtype=F64).to(device)
        for j, depth in enumerate(depths):
            net = _he_relu_stack(depth, seed, width, device)
            ratios[i, j] = _grad_ratio(net, x, g)
        block_norms += [float(torch.linalg.matrix_norm(J.detach(), ord=2)) for J in chain_jacobians(list(net), x)]
    rate, lo, hi = per_seed_slope_ci(depths, ratios)
    log_norm = float(np.mean(np.log(block_norms)))
    claim.check("fraction of blocks with ‖I + f'‖₂ > 1 (He-init ReLU branches)", claimed=1.0,
                measured=float(np.mean(np.array(block_norms) > 1)), dtype=F64)
    claim.check("per-block growth rate d log‖∂L/∂x_1‖ / dL", claimed=0.0, measured=rate,
                relation=">", interval=(lo, hi), dtype=F64)
    claim.check("growth rate ≤ mean log ‖I + f'_l‖₂ (submultiplicativity)", claimed=log_norm,
                measured=rate, relation="<=", dtype=F64)
    claim.note(f"gradient grows ×{math.exp(rate):.3f} per block; mean ‖I+f'‖₂ = {math.exp(log_norm):.3f}")
    claim.curve("residual-explosion", f"He-ReLU residual stack, width {width}, {len(seeds)} seeds",
                depths, np.exp(np.log(ratios).mean(0)), xlabel="blocks L", ylabel="‖∂L/∂x_1‖/‖∂L/∂x_L+1‖",
                logy=True)


def _scaled_block_norm(p, alpha_of, device: str) -> float:
    seed, width, gain, act, beta = p
    f = _branch(seed, width, gain, act, F64, device)
    alpha = alpha_of(branch_lipschitz_bound(f), beta)
    x = torch.randn(width, dtype=F64, device=device)
    return float(torch.linalg.matrix_norm(block_jacobian(ScaledResidual(f, alpha, beta), x).detach(), ord=2))


@pytest.mark.claim("RES-07")
def test_scaled_residual_spectral_norm(claim, device):
    """002 §残差与密集连接: "(1−β)x_l + α f_l(x_l)，可以通过仔细选择缩放因子 α 和 β 来保证每层雅可比矩阵的谱范数小于等于1"."""
    space = st.tuples(st.integers(0, 2 ** 16), st.integers(1, 10), st.floats(0.05, 3.0),
                      st.sampled_from(sorted(ACT_DERIV)), st.floats(0.0, 2.0))
    worst, top = maximize(space, lambda p: _scaled_block_norm(p, safe_scaling, device))
    claim.check("max ‖(1−β)I + αF'‖₂ with α = (1 − |1−β|)/Lip(f) over searched blocks", claimed=1.0,
                measured=top, relation="<=", atol=1e-12, dtype=F64)
    # the plain residual (α = 1, β = 0) on 20 random Kaiming-init tanh branches, width 8
    plain = [(seed, 8, 1.0, "tanh", 0.0) for seed in range(20)]
    norms = [_scaled_block_norm(p, lambda lip, b: 1.0, device) for p in plain]
    n_ex = max(norms)
    seed, width, gain, act, beta = plain[int(np.argmax(norms))]
    claim.note(f"{sum(n > 1 for n in norms)}/20 plain residual blocks have ‖I + F'‖₂ > 1")
    claim.check("max ‖I + F'‖₂ for α = 1, β = 0 (|1−β| + α·Lip > 1), 20 branches", claimed=1.0, measured=n_ex,
                relation="<=", dtype=F64, outside="|1−β| + |α|·Lip(f) > 1",
                counterexample={"seed": seed, "width": width, "gain": gain, "activation": act,
                                "alpha": 1.0, "beta": 0.0, "norm": n_ex,
                                "snippet": _BLOCK_SNIPPET.format(seed=seed, width=width, act=act, gain=gain,
                                                                 alpha=1.0, beta=0.0, what=_MAX_GAIN)})
    beta, ratios = 0.1, []
    for seed in range(4):
        fs = [_branch(100 * seed + l, 16, 1.0, "tanh", F64, device) for l in range(32)]
        net = residual_stack([ScaledResidual(f, safe_scaling(branch_lipschitz_bound(f), beta), beta) for f in fs])
        ratios.append(_grad_ratio(net, torch.randn(16, dtype=F64, device=device),
                                  torch.randn(16, dtype=F64, device=device)))
    vanish = float(np.exp(np.mean(np.log(ratios))))
    claim.correct(f"sufficient condition |1−β| + |α|·Lip(f) ≤ 1 (measured max norm {top:.4f}); the plain "
                  f"residual α=1, β=0 violates it (norm {n_ex:.3f}). β = 0 forces α = 0, and with β = {beta} "
                  f"the gradient after 32 blocks is ×{vanish:.2e}: explosion is traded for vanishing.")


_HE_RELU_SNIPPET = """import math, torch
from gradcore.jacobian import jacobian_operator
from gradcore.residual import Residual, mlp_branch, residual_stack
f64, width, depth = torch.float64, {width}, {depth}
logs = []
for s in range({seeds}):
    blocks = []
    for l in range(depth):   # x + W2 relu(W1 x), Kaiming normal x sqrt(2)
        torch.manual_seed(1000 * s + l)
        blocks.append(Residual(mlp_branch(width, activation="relu", gain=math.sqrt(2), dtype=f64)))
    net = residual_stack(blocks)
    x, g = torch.randn(width, dtype=f64), torch.randn(width, dtype=f64)
    logs.append(math.log(float(jacobian_operator(net, x).rmatvec(g).detach().norm() / g.norm())))
rate = sum(logs) / len(logs) / depth
print("gradient gain through", depth, "blocks (geometric mean over seeds) =", math.exp(rate * depth))
print("measured per-block log-gradient growth =", rate, " claimed <= 0.0 (no explosion)")
"""


@pytest.mark.claim("RES-08")
def test_identity_shortcut_avoids_multiplicative_decay(claim, device):
    """003 §4 残差连接: "梯度 … 直接通过 +x 这个恒等连接传递下去，避免了经过多层非线性变换和权重矩阵的连乘衰减"."""
    depths, width, seeds = [2, 16, 32, 48], 16, range(4)
    kinds = ("plain", "residual", "scaled")
    ratios = {k: np.zeros((len(seeds), len(depths))) for k in kinds}
    for i, seed in enumerate(seeds):
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(width, generator=gen, dtype=F64).to(device)
        g = torch.randn(width, generator=gen, dtype=F64).to(device)
        for j, depth in enumerate(depths):
            torch.manual_seed(1000 * seed + depth)
            layers = [nn.Sequential(nn.Linear(width, width, bias=False), nn.Tanh()) for _ in range(depth)]
            for layer in layers:
                nn.init.kaiming_normal_(layer[0].weight, nonlinearity="linear")
                layer.to(device, F64)
            # the same layers H_l with and without the +x shortcut
            ratios["plain"][i, j] = _grad_ratio(nn.Sequential(*layers), x, g)
            ratios["residual"][i, j] = _grad_ratio(residual_stack(Residual(h) for h in layers), x, g)
            ratios["scaled"][i, j] = _grad_ratio(residual_stack(
                ScaledResidual(h, 0.1 / branch_lipschitz_bound(h), 0.1) for h in layers), x, g)
    slope = {k: per_seed_slope_ci(depths, r) for k, r in ratios.items()}
    claim.check("plain tanh net: per-layer log-gradient slope (decay < 0)", claimed=0.0,
                measured=slope["plain"][0], relation="<", interval=slope["plain"][1:], dtype=F64)
    claim.check("same layers with +x: per-layer log-gradient slope (no decay: ≥ 0)", claimed=0.0,
                measured=slope["residual"][0], relation=">=", interval=slope["residual"][1:], dtype=F64)
    for k in kinds:
        claim.curve("residual-vs-plain-depth", f"{k} (tanh, width {width}, {len(seeds)} seeds)", depths,
                    np.exp(np.log(ratios[k]).mean(0)), xlabel="depth L", ylabel="‖∂L/∂x_1‖/‖∂L/∂x_L+1‖",
                    logy=True)
    he = [_grad_ratio(_he_relu_stack(32, s, width, device), torch.randn(width, dtype=F64, device=device),
                      torch.randn(width, dtype=F64, device=device)) for s in seeds]
    he_rate = float(np.mean(np.log(he))) / 32
    claim.check("002's 'or explosion': per-block log-gradient growth of a He-ReLU residual stack (≤ 0)",
                claimed=0.0, measured=he_rate, relation="<=", atol=0.01, dtype=F64,
                outside="branches with ‖I + f'‖₂ > 1 (002's own caveat, RES-06)",
                counterexample={"branch": "Linear-ReLU-Linear, Kaiming normal × √2, width 16", "blocks": 32,
                                "gradient_gain": float(np.exp(np.mean(np.log(he)))),
                                "snippet": _HE_RELU_SNIPPET.format(width=width, depth=32, seeds=len(seeds))})
    claim.correct(f"the shortcut removes the decay (slope {slope['residual'][0]:+.3f}/layer vs plain "
                  f"{slope['plain'][0]:+.3f}) but does not prevent explosion: a He-init ReLU residual stack "
                  f"grows ×{math.exp(he_rate):.2f} per block; the safely scaled form decays "
                  f"({slope['scaled'][0]:+.3f}/layer).")

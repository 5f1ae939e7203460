"""Gradient paths through residual blocks: identity-path gains, product order, scaled bounds.

RES-01…RES-08, LIT-11 and the residual contract (with STAB-02…STAB-04 on a user's stack) measure
here. A block is ŷ = x + F(x) or the scaled (1−β)x + αF(x) of :mod:`gradcore.residual` around its
Linear–activation–Linear branch (:func:`gradcore.residual.mlp_branch`); a user's block comes in as a ``Given`` factory
``width -> nn.Module`` acting on (batch, width).

Branch weights are drawn by ``nn.init.kaiming_normal_`` in float32 and then cast to float64.
ATen draws a float32 normal tensor of ≥ 16 elements with a vectorised Box–Muller (Sleef
log/cos) under AVX2/AVX-512 and a scalar one otherwise (``ATEN_CPU_CAPABILITY=default``), so
the last bit of a weight depends on the CPU's kernel path: a value computed from these weights
is known to float32 precision, not float64 — this is why RES-06's rate moved 2e-7 relative
between CPUs. Numeric values built on such weights carry ``conditioning=DRAWN_F32``.
"""
from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import nn

from .. import _validate as v
from .. import probes
from ..errors import MeasurementError
from ..jacobian import chain_jacobians, jacobian, jacobian_operator
from ..residual import (Residual, ScaledResidual, block_jacobian, branch_lipschitz_bound, fixup_scale, mlp_branch,
                        relu_branch, residual_stack, safe_scaling)
from ..stats import MEAN_METHOD, PER_SEED_SLOPES, mean_ci, per_seed_slope_ci, proportion_ci
from .candidates import structured_vectors
from .measurement import EPS, Given, Kind, Measurement, recipe
from . import transfer
from .search import search
from .searched import search_bound
from .seeding import seeded
from .stability import transposed_product_residual

F64 = torch.float64
# A float64 computation on float32-drawn weights (see the module docstring): float32 precision.
DRAWN_F32 = EPS["float32"] / EPS["float64"]
SHORTCUT_FORMS = ("plain", "residual", "scaled")
ACT_DERIV: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": lambda z: 1 - torch.tanh(z) ** 2, "relu": lambda z: (z > 0).to(z.dtype),
    "sigmoid": lambda z: torch.sigmoid(z) * (1 - torch.sigmoid(z))}


def _sample(seed: int, width: int, gain: float, activation: str, *, dtype: torch.dtype = F64,
            draws: int = 1) -> tuple[nn.Sequential, list[torch.Tensor]]:
    """A branch drawn from ``seed`` and then ``draws`` N(0, I) vectors from the same stream (CPU)."""
    (f,), xs = _branches([seed], width, gain, activation, draws, dtype=dtype)
    return f, xs


def _gain(net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, g: torch.Tensor) -> float:
    """‖(∂net/∂x)ᵀ g‖ / ‖g‖: how much one backward pass scales the gradient g."""
    return float(jacobian_operator(net, x).rmatvec(g).detach().norm() / g.norm())


def _closed_form(f: nn.Sequential, x: torch.Tensor, activation: str) -> torch.Tensor:
    """F'(x) = W₂ diag(σ'(W₁x)) W₁, written out by hand (independent of autograd)."""
    w1, w2 = f[0].weight.detach(), f[2].weight.detach()
    return w2 @ torch.diag(ACT_DERIV[activation](w1 @ x)) @ w1


@recipe
def branch_jacobian_error(*, seed: int, width: int, gain: float, activation: str, dtype: str = "float64",
                          device: str = "cpu") -> Measurement:
    """RES-01: max |autograd ∂ŷ/∂x − (I + W₂diag(σ')W₁)| / max |I + W₂diag(σ')W₁| for one block."""
    dt = probes.FLOAT_DTYPES[v.choice(dtype, "dtype", ("float32", "float64"))]
    f, (x,) = _sample(seed, width, gain, activation, dtype=dt)
    f, x = f.to(device), x.to(device)
    ref = torch.eye(width, dtype=dt, device=device) + _closed_form(f, x, activation)
    err = float((block_jacobian(Residual(f), x) - ref).abs().max() / ref.abs().max())
    # Two evaluations of the same product differ by rounding only; 512 ulp of the dtype bound it.
    return Measurement(err, Kind.ROUNDING, dtype, device, {"width": width}, bound=512 * EPS[dtype])


@recipe
def gain_band_excess(*, seed: int, width: int, gain: float, activation: str, device: str = "cpu") -> Measurement:
    """RES-02: max_i |σ_i(I + F') − 1| − ‖F'‖₂ for one block (≤ 0 by Weyl; = 0 when F' = 0 or
    width 1, so its supremum is a rounding residual)."""
    f, (x,) = _sample(seed, width, gain, activation)
    f, x = f.to(device), x.to(device)
    excess = band_excess(block_jacobian(Residual(f), x), _closed_form(f, x, activation))
    return Measurement(excess, Kind.ROUNDING, "float64", device, {"width": width}, bound=1e-12)


def band_excess(block: torch.Tensor, branch: torch.Tensor) -> float:
    """RES-02: max_i |σ_i(block) − 1| − ‖branch‖₂ for a block Jacobian I + branch (≤ 0 by Weyl)."""
    eps = float(torch.linalg.matrix_norm(branch, ord=2))
    sv = torch.linalg.svdvals(block)
    return float((sv - 1).abs().max()) - eps


@recipe
def gradient_gain_deviation(*, seed: int, width: int = 16, gain: float = 0.05, activation: str = "tanh",
                            device: str = "cpu") -> Measurement:
    """RES-02: |‖(I + F')ᵀg‖/‖g‖ − 1| for one block and one random gradient g."""
    f, (x, g) = _sample(seed, width, gain, activation, draws=2)
    dev = abs(_gain(Residual(f.to(device)), x.to(device), g.to(device)) - 1)
    return Measurement(dev, Kind.NUMERIC, "float64", device, {"width": width}, conditioning=DRAWN_F32)


@functools.lru_cache(maxsize=64)
def _stack_gradients(width: int, depth: int, seed: int, device: str
                     ) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Autograd ∂L/∂x_l of a tanh residual stack (L = ⟨x_{L+1}, c⟩) and its branch Jacobians F'_l."""
    blocks = [Residual(_sample(seed + l, width, 1.0, "tanh")[0].to(device)) for l in range(depth)]
    gen = torch.Generator().manual_seed(seed)
    xs = [torch.randn(width, generator=gen, dtype=F64).to(device).requires_grad_(True)]
    for b in blocks:
        xs.append(b(xs[-1]))
    c = torch.randn(width, generator=gen, dtype=F64).to(device)
    grads = torch.autograd.grad((xs[-1] * c).sum(), xs)
    jac_f = [jacobian(b.f, x.detach()).detach() for b, x in zip(blocks, xs)]
    return tuple(g.detach() for g in grads), tuple(jac_f)


@recipe
def backward_recursion_error(*, width: int = 6, depth: int = 5, seed: int, device: str = "cpu") -> Measurement:
    """RES-03: max over blocks of ‖∂L/∂x_{l+1}(I + F'_l) − ∂L/∂x_l‖ / ‖∂L/∂x_l‖ (eq 3.3.8 vs autograd)."""
    grads, jac_f = _stack_gradients(width, depth, seed, device)
    worst = recursion_error(grads, _plus_identity(jac_f))
    return Measurement(worst, Kind.ROUNDING, "float64", device, {"width": width, "blocks": depth}, bound=1e-12)


def _plus_identity(jac_f: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The block Jacobians I + F'_l of branch Jacobians F'_l."""
    eye = torch.eye(jac_f[0].shape[0], dtype=jac_f[0].dtype, device=jac_f[0].device)
    return [eye + j for j in jac_f]


def recursion_error(grads: Sequence[torch.Tensor], jacs: Sequence[torch.Tensor]) -> float:
    """RES-03: max over blocks l of ‖∂L/∂x_{l+1} J_l − ∂L/∂x_l‖ / ‖∂L/∂x_l‖ (row vectors), for autograd's
    gradients ``grads`` at the D + 1 block inputs and outputs and the D block Jacobians ``jacs``."""
    return max(float((grads[l + 1] @ jacs[l] - grads[l]).norm() / grads[l].norm()) for l in range(len(jacs)))


def order_error(grads: Sequence[torch.Tensor], jacs: Sequence[torch.Tensor], order: str) -> float:
    """RES-04: relative error vs autograd's ∂L/∂x_1 of ∂L/∂x_{L+1} J_1 J_2 ⋯ J_L ("written", eq 3.3.9 as
    printed) or ∂L/∂x_{L+1} J_L ⋯ J_1 ("reversed", the chain rule's order)."""
    prod = grads[-1]
    for j in (jacs if order == "written" else jacs[::-1]):
        prod = prod @ j
    return float((prod - grads[0]).norm() / grads[0].norm())


def _order_error(width: int, depth: int, seed: int, order: str, device: str) -> float:
    grads, jac_f = _stack_gradients(width, depth, seed, device)
    return order_error(grads, _plus_identity(jac_f), order)


@recipe
def product_order_error(*, width: int, depth: int, seed: int, order: str = "written",
                        device: str = "cpu") -> Measurement:
    """RES-04: relative error vs autograd of ∂L/∂x_{L+1} ∏(I + F'_l) multiplied in ``order``:
    "written" (l = 1…L, eq 3.3.9 as printed) or "reversed" (l = L…1)."""
    v.choice(order, "order", ("written", "reversed"))
    err = _order_error(width, depth, seed, order, device)
    sizes = {"width": width, "blocks": depth}
    if order == "reversed" or width == 1:
        # the chain rule's order, or scalars that commute: the two sides differ by rounding only
        return Measurement(err, Kind.ROUNDING, "float64", device, sizes, bound=1e-9)
    return Measurement(err, Kind.NUMERIC, "float64", device, sizes, conditioning=DRAWN_F32)


@recipe
def mean_product_order_error(*, width: int = 6, depth: int = 5, seeds: tuple[int, ...] = (0, 10, 20, 30, 40),
                             device: str = "cpu") -> Measurement:
    """RES-04: mean over stacks of the written order's relative error, with its Student-t interval."""
    mean, lo, hi = mean_ci([_order_error(width, depth, s, "written", device) for s in seeds])
    return Measurement(mean, Kind.STATISTICAL, "float64", device,
                       {"width": width, "blocks": depth, "seeds": len(seeds)},
                       interval=(lo, hi), method=MEAN_METHOD, n=len(seeds))


def _singular(jac: torch.Tensor, which: str, *, device: str, sizes: dict, conditioning: float) -> Measurement:
    """σ_max or σ_min of a Jacobian whose entries are known to relative precision ``conditioning`` × ulp.

    An entry perturbation moves every σ_i by up to about its size times ‖J‖₂ = σ_max (Weyl), so
    σ_min's relative precision is σ_max/σ_min times worse; a σ_min below what float64 resolves at
    the scale of σ_max is a rounding residual, not a number.
    """
    sv = torch.linalg.svdvals(jac.detach())
    smax, smin = float(sv.max()), float(sv.min())
    if which == "max":
        return Measurement(smax, Kind.NUMERIC, "float64", device, sizes, conditioning=conditioning)
    floor = jac.shape[0] * EPS["float64"] * smax
    if smin <= floor:
        return Measurement(smin, Kind.ROUNDING, "float64", device, sizes, bound=floor,
                           witness=f"below float64's resolution {floor:.1e} at σ_max = {smax:.3g}")
    return Measurement(smin, Kind.NUMERIC, "float64", device, sizes, conditioning=conditioning * smax / smin)


@recipe
def identity_path_min_gain(*, seed: int, width: int, gain: float, activation: str,
                           device: str = "cpu") -> Measurement:
    """RES-05: min over g of ‖(I + F')ᵀg‖/‖g‖ = σ_min(I + F'(x)) for one block."""
    f, (x,) = _sample(seed, width, gain, activation)
    return _singular(block_jacobian(Residual(f.to(device)), x.to(device)), "min", device=device,
                     sizes={"width": width}, conditioning=DRAWN_F32)


@recipe
def shrinking_share(*, blocks: int = 10, directions: int = 10, width: int = 16, gain: float = 1.0,
                    activation: str = "tanh", device: str = "cpu") -> Measurement:
    """RES-05: share of random (block, g) pairs with ‖(I + F')ᵀg‖ < ‖g‖, with its Wilson interval."""
    below = 0
    for seed in range(blocks):
        f, (x, *gs) = _sample(seed, width, gain, activation, draws=1 + directions)
        below += sum(_gain(Residual(f.to(device)), x.to(device), g.to(device)) < 1.0 for g in gs)
    p, lo, hi = proportion_ci(below, blocks * directions)
    return Measurement(p, Kind.STATISTICAL, "float64", device,
                       {"width": width, "blocks": blocks, "directions": directions},
                       interval=(lo, hi), method="Wilson 95% interval of a proportion", n=blocks * directions)


@recipe
def half_branch_stack_gain(*, blocks: int = 16, width: int = 8, device: str = "cpu") -> Measurement:
    """RES-05: ‖∂L/∂x_1‖/‖∂L/∂x_{L+1}‖ through ``blocks`` blocks x + F(x) with F = −x/2.

    Each backward step multiplies the gradient by 1/2 exactly, so the value is 2^-blocks exactly
    whatever x and g are.
    """
    half = nn.Linear(width, width, bias=False).to(device=device, dtype=F64)
    with torch.no_grad():
        half.weight.copy_(-0.5 * torch.eye(width, dtype=F64))
    gen = torch.Generator().manual_seed(0)
    x, g = (torch.randn(width, generator=gen, dtype=F64).to(device) for _ in range(2))
    ratio = _gain(residual_stack([Residual(half)] * blocks), x, g)
    return Measurement(ratio, Kind.EXACT, "float64", device, {"width": width, "blocks": blocks})


def _branches(seeds: Sequence[int], width: int, gain: float, activation: str, draws: int = 2, *,
              dtype: torch.dtype = F64) -> tuple[list[nn.Sequential], list[torch.Tensor]]:
    """Branches drawn one per seed in ``seeds``, then ``draws`` N(0, I) vectors continuing the last
    seed's stream (CPU)."""
    with torch.random.fork_rng(devices=[]):
        branches = []
        for s in seeds:
            torch.manual_seed(s)
            branches.append(mlp_branch(width, activation=activation, gain=gain, dtype=dtype))
        return branches, [torch.randn(width, dtype=dtype) for _ in range(draws)]


def _he_relu_stack(depth: int, seed: int, width: int, device: str) -> tuple[nn.Sequential, torch.Tensor, torch.Tensor]:
    """Residual stack of He-init ReLU branches (branch l drawn from 1000·seed + l) and the x, g drawn
    after it from the same stream."""
    branches, (x, g) = _branches([1000 * seed + l for l in range(depth)], width, math.sqrt(2), "relu")
    return residual_stack(Residual(f.to(device)) for f in branches), x.to(device), g.to(device)


@functools.lru_cache(maxsize=16)
def _he_relu_growth(depths: tuple[int, ...], width: int, seeds: int, device: str
                    ) -> tuple[tuple[tuple[float, ...], ...], tuple[float, ...]]:
    """RES-06's ratios ‖∂L/∂x_1‖/‖∂L/∂x_{L+1}‖ (seeds × depths; x, g from Generator(seed)) and
    ‖I + f'_l‖₂ of every block of the deepest stack of each seed."""
    ratios, norms = [], []
    for seed in range(seeds):
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(width, generator=gen, dtype=F64).to(device)
        g = torch.randn(width, generator=gen, dtype=F64).to(device)
        row = []
        for depth in depths:
            net = _he_relu_stack(depth, seed, width, device)[0]
            row.append(_gain(net, x, g))
        ratios.append(tuple(row))
        norms += [float(torch.linalg.matrix_norm(J.detach(), ord=2)) for J in chain_jacobians(list(net), x)]
    return tuple(ratios), tuple(norms)


def he_relu_curve(*, depths: Sequence[int] = (4, 8, 16, 24), width: int = 16, seeds: int = 4,
                  device: str = "cpu") -> list[float]:
    """RES-06's figure: the geometric mean over seeds of the gradient ratio at each depth."""
    ratios = np.array(_he_relu_growth(tuple(depths), width, seeds, device)[0])
    return list(np.exp(np.log(ratios).mean(0)))


@recipe
def he_relu_growth_rate(*, depths: tuple[int, ...] = (4, 8, 16, 24), width: int = 16, seeds: int = 4,
                        device: str = "cpu") -> Measurement:
    """RES-06: per-block growth rate d log‖∂L/∂x_1‖ / dL of a He-init ReLU residual stack: the mean
    over seeds of each seed's fitted slope, with its Student-t interval (an estimate over seeds)."""
    ratios = _he_relu_growth(tuple(depths), width, seeds, device)[0]
    rate, lo, hi = per_seed_slope_ci(depths, ratios)
    return Measurement(rate, Kind.STATISTICAL, "float64", device,
                       {"depths": list(depths), "width": width, "seeds": seeds},
                       interval=(lo, hi), method=PER_SEED_SLOPES, n=seeds)


@recipe
def he_relu_block_norms(*, quantity: str, depths: tuple[int, ...] = (4, 8, 16, 24), width: int = 16,
                        seeds: int = 4, device: str = "cpu") -> Measurement:
    """RES-06: over the blocks of the deepest He-init ReLU stack of each seed, the share with
    ‖I + f'_l‖₂ > 1 (``quantity="share above 1"``) or the mean of log ‖I + f'_l‖₂ ("mean log")."""
    v.choice(quantity, "quantity", ("share above 1", "mean log"))
    norms = np.array(_he_relu_growth(tuple(depths), width, seeds, device)[1])
    value = float(np.mean(norms > 1)) if quantity == "share above 1" else float(np.mean(np.log(norms)))
    return Measurement(value, Kind.NUMERIC, "float64", device, {"depth": max(depths), "width": width,
                                                               "seeds": seeds}, conditioning=DRAWN_F32)


@functools.lru_cache(maxsize=16)
def _shortcut_ratios(depths: tuple[int, ...], width: int, seeds: int, device: str
                     ) -> dict[str, tuple[tuple[float, ...], ...]]:
    """RES-08: gradient ratios (seeds × depths) through the same tanh layers H_l without a
    shortcut ("plain"), with +x ("residual"), and safely scaled with β = 0.1 ("scaled")."""
    out: dict[str, list[list[float]]] = {k: [] for k in SHORTCUT_FORMS}
    for seed in range(seeds):
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(width, generator=gen, dtype=F64).to(device)
        g = torch.randn(width, generator=gen, dtype=F64).to(device)
        rows = {k: [] for k in SHORTCUT_FORMS}
        for depth in depths:
            with seeded(1000 * seed + depth):
                layers = [nn.Sequential(nn.Linear(width, width, bias=False), nn.Tanh()) for _ in range(depth)]
                for layer in layers:
                    nn.init.kaiming_normal_(layer[0].weight, nonlinearity="linear")
            layers = [layer.to(device, F64) for layer in layers]
            rows["plain"].append(_gain(nn.Sequential(*layers), x, g))
            rows["residual"].append(_gain(residual_stack(Residual(h) for h in layers), x, g))
            rows["scaled"].append(_gain(residual_stack(
                ScaledResidual(h, 0.1 / branch_lipschitz_bound(h), 0.1) for h in layers), x, g))
        for k in SHORTCUT_FORMS:
            out[k].append(rows[k])
    return {k: tuple(tuple(r) for r in rs) for k, rs in out.items()}


def shortcut_curve(*, form: str, depths: Sequence[int] = (2, 16, 32, 48), width: int = 16, seeds: int = 4,
                   device: str = "cpu") -> list[float]:
    """RES-08's figure: geometric mean over seeds of the gradient ratio at each depth for ``form``."""
    ratios = np.array(_shortcut_ratios(tuple(depths), width, seeds, device)[form])
    return list(np.exp(np.log(ratios).mean(0)))


@recipe
def shortcut_depth_slope(*, form: str, depths: tuple[int, ...] = (2, 16, 32, 48), width: int = 16,
                         seeds: int = 4, device: str = "cpu") -> Measurement:
    """RES-08: per-layer slope of log‖∂L/∂x_1‖/‖∂L/∂x_{L+1}‖ against depth through the same tanh
    layers in ``form`` "plain", "residual" (+x) or "scaled" (β = 0.1, safe α); mean of per-seed slopes."""
    v.choice(form, "form", SHORTCUT_FORMS)
    slope, lo, hi = per_seed_slope_ci(depths, _shortcut_ratios(tuple(depths), width, seeds, device)[form])
    return Measurement(slope, Kind.STATISTICAL, "float64", device,
                       {"depths": list(depths), "width": width, "seeds": seeds},
                       interval=(lo, hi), method=PER_SEED_SLOPES, n=seeds)


@recipe
def he_relu_log_growth(*, depth: int = 32, width: int = 16, seeds: int = 4, device: str = "cpu") -> Measurement:
    """RES-08: per-block log-gradient growth log(‖∂L/∂x_1‖/‖∂L/∂x_{L+1}‖)/L of a He-init ReLU residual
    stack (x, g drawn after the stack), mean over seeds with its Student-t interval."""
    rates = []
    for seed in range(seeds):
        net, x, g = _he_relu_stack(depth, seed, width, device)
        rates.append(math.log(_gain(net, x, g)) / depth)
    mean, lo, hi = mean_ci(rates)
    return Measurement(mean, Kind.STATISTICAL, "float64", device, {"blocks": depth, "width": width, "seeds": seeds},
                       interval=(lo, hi), method=MEAN_METHOD, n=seeds)


def _scaled_block(seed: int, width: int, gain: float, activation: str, beta: float, alpha: float | None
                  ) -> tuple[ScaledResidual, torch.Tensor]:
    f, (x,) = _sample(seed, width, gain, activation)
    a = safe_scaling(branch_lipschitz_bound(f), beta) if alpha is None else alpha
    return ScaledResidual(f, a, beta), x


@recipe
def scaled_block_norm(*, seed: int, width: int, gain: float, activation: str, beta: float,
                      alpha: float | None = None, device: str = "cpu") -> Measurement:
    """RES-07: ‖(1−β)I + αF'(x)‖₂ for one block; ``alpha=None`` takes the safe α = (1 − |1−β|)/Lip(f)."""
    block, x = _scaled_block(seed, width, gain, activation, beta, alpha)
    return _singular(block_jacobian(block.to(device), x.to(device)), "max", device=device, sizes={"width": width},
                     conditioning=DRAWN_F32)


@recipe
def safely_scaled_stack_gain(*, beta: float = 0.1, depth: int = 32, width: int = 16, seeds: int = 4,
                             device: str = "cpu") -> Measurement:
    """RES-07: geometric mean over seeds of the gradient ratio through ``depth`` safely scaled tanh
    blocks (branch l of seed s drawn from 100·s + l; x, g drawn after), with its Student-t interval."""
    logs = []
    for seed in range(seeds):
        fs, (x, g) = _branches([100 * seed + l for l in range(depth)], width, 1.0, "tanh")
        net = residual_stack(ScaledResidual(f.to(device), safe_scaling(branch_lipschitz_bound(f), beta), beta)
                             for f in fs)
        logs.append(math.log(_gain(net, x.to(device), g.to(device))))
    mean, lo, hi = mean_ci(logs)
    return Measurement(math.exp(mean), Kind.STATISTICAL, "float64", device,
                       {"blocks": depth, "width": width, "seeds": seeds},
                       interval=(math.exp(lo), math.exp(hi)), method=f"exp of the {MEAN_METHOD} of log ratios",
                       n=seeds)


# --- a user's block (the residual contract) -------------------------------------------------------

def build_block(make: object, width: int, device: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """A fresh block from a ``width -> nn.Module`` factory (or a module used as it is), in float64.

    Batch-norm layers inside keep normalising by the batch's statistics (training mode) but stop
    tracking running statistics: their in-place update inside a ``torch.func`` transform fails
    (pytorch#85533), and the measured map is the same without it.
    """
    m = make if isinstance(make, nn.Module) else make(width)  # type: ignore[operator]
    if not isinstance(m, nn.Module):
        return m
    m = m.to(device=device, dtype=F64)
    for layer in m.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.training:
            layer.track_running_stats = False
    return m


PROBE_BATCH = 2   # a batch-statistics layer (BatchNorm) needs more than one sample


def _batch_map(block: Callable[[torch.Tensor], torch.Tensor], batch: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The block as a map of the flattened (batch, width) input: its Jacobian is block-diagonal
    (one block per sample) unless the block mixes samples, as batch normalisation does."""
    def through(t: torch.Tensor) -> torch.Tensor:
        return block(t.reshape(batch, -1)).reshape(-1)
    return through


def _stack(blocks: Sequence[Callable[[torch.Tensor], torch.Tensor]]) -> Callable[[torch.Tensor], torch.Tensor]:
    def through(h: torch.Tensor) -> torch.Tensor:
        for b in blocks:
            h = b(h)
        return h
    return through


def sample_batch(*, width: int, x_seed: int, device: str = "cpu") -> torch.Tensor:
    """The probe input of the user-stack recipes: PROBE_BATCH rows N(0, I) from ``Generator(x_seed)``."""
    return torch.randn(PROBE_BATCH, width, generator=torch.Generator().manual_seed(x_seed), dtype=F64).to(device)


@recipe
def user_block_norm_at(*, make: Given, width: int, seed: int, x: list[list[float]],
                       device: str = "cpu") -> Measurement:
    """RES-06/RES-07 for a user's block at one point: ‖∂block/∂x‖₂ for the (batch, width) input ``x``
    (the Jacobian of the whole batch map), the block built by ``make(width)`` from torch's
    generator seeded with ``seed``. A non-finite Jacobian is an explosion (∞)."""
    with seeded(seed):
        block = build_block(make, width, device)
    xs = torch.tensor(x, dtype=F64, device=device)
    jac = jacobian(_batch_map(block, xs.shape[0]), xs.reshape(-1), check_finite=False).detach()
    sizes = {"width": width, "batch": xs.shape[0]}
    if not bool(torch.isfinite(jac).all()):
        return Measurement(math.inf, Kind.NUMERIC, "float64", device, sizes,
                           witness="the Jacobian has non-finite entries (explosion)")
    return _singular(jac, "max", device=device, sizes=sizes, conditioning=DRAWN_F32)


def _block_inputs(width: int) -> st.SearchStrategy[tuple[int, np.ndarray]]:
    """A block seed and a (PROBE_BATCH, width) input: entries in [-1, 1] times 10^p, p in -2..2."""
    rows = hnp.arrays(np.float64, (PROBE_BATCH, width), elements=st.floats(-1.0, 1.0, allow_nan=False))
    scaled = st.builds(lambda a, p: a * 10.0 ** p, rows, st.integers(-2, 2))
    return st.tuples(st.integers(0, 2 ** 20), scaled)


def _block_candidates(width: int, seed: int, draws: int) -> list[tuple[str, tuple[int, np.ndarray]]]:
    """``draws`` blocks (seeds seed + 10 + k) at Gaussian inputs (Generator(seed + 20 + k)), and the
    first block at structured inputs: all-ones, alternating and one-hot rows, scales 0.1 to 10,
    each beside a Gaussian row."""
    def gauss(k: int) -> np.ndarray:
        gen = torch.Generator().manual_seed(seed + 20 + k)
        return torch.randn(PROBE_BATCH, width, generator=gen, dtype=F64).numpy()

    out = [(f"block seed {seed + 10 + k}, Gaussian x (seed {seed + 20 + k})", (seed + 10 + k, gauss(k)))
           for k in range(draws)]
    out += [(f"block seed {seed + 10}, {label} beside a Gaussian row", (seed + 10, np.stack([vec, gauss(0)[1]])))
            for label, vec in structured_vectors(width, (0.1, 1.0, 10.0))]
    return out


@recipe
def user_block_norm_bound(*, make: Given, width: int, seed: int = 0, draws: int = 8, profile: str = "ci",
                          device: str = "cpu") -> Measurement:
    """RES-06/RES-07 for a user's block: sup over block draws and inputs of ‖∂block/∂x‖₂, a search
    lower bound. Scored first: ``draws`` Gaussian blocks and inputs and structured inputs
    (:func:`_block_candidates`); then a Hypothesis search over the block's seed and its input.
    The reproduction evaluates :func:`user_block_norm_at` at the winning point."""
    def norm(example: tuple[int, np.ndarray]) -> float:
        return user_block_norm_at(make=make, width=width, seed=int(example[0]), x=example[1].tolist(),
                                  device=device).value

    found = search(_block_inputs(width), norm, candidates=_block_candidates(width, seed, draws), profile=profile)
    block_seed, x = int(found.example[0]), found.example[1].tolist()
    point = user_block_norm_at(make=make, width=width, seed=block_seed, x=x, device=device)
    return search_bound(found, point, draws=draws, profile=profile).with_(
        witness={"source": found.source, "seed": block_seed, "x": x})


@recipe
def user_stack_singular_value(*, make: Given, which: str, width: int, depth: int, seed: int, x_seed: int,
                              device: str = "cpu") -> Measurement:
    """RES-05 for a user's block: σ_min or σ_max (``which``) of ∂x_D/∂x_0 through ``depth`` blocks for a
    batch of PROBE_BATCH inputs (the extreme over the samples unless a block mixes them), built in turn
    by ``make(width)`` from torch's generator seeded with ``seed``."""
    v.choice(which, "which", ("min", "max"))
    with seeded(seed):
        blocks = [build_block(make, width, device) for _ in range(depth)]
    x = sample_batch(width=width, x_seed=x_seed, device=device)
    # the Jacobian of a product of `depth` blocks: entry errors grow with depth
    jac = jacobian(_batch_map(_stack(blocks), PROBE_BATCH), x.reshape(-1))
    return _singular(jac, which, device=device, sizes={"width": width, "depth": depth},
                     conditioning=DRAWN_F32 * depth)


@recipe
def user_stack_transfer_factor(*, make: Given, width: int, depth: int, batch: int, seeds: int, seed: int = 0,
                               device: str = "cpu") -> Measurement:
    """RES-05/RES-08 for a user's block: λ = (‖g_0‖/‖g_D‖)^{1/D} through ``depth`` blocks for L = ⟨h_D, r⟩,
    network s drawn from seed + 1000 + s and x, r from Generator(seed + 2000 + s), (seed + 3000 + s);
    mean over ``seeds`` networks with its Student-t interval. A non-finite output or gradient norm
    is an explosion (λ = ∞), a vanished gradient a dead network (λ = 0)."""
    factors = []
    for s in range(seeds):
        with seeded(seed + 1000 + s):
            blocks = [build_block(make, width, device) for _ in range(depth)]
        x, r = (torch.randn(batch, width, generator=torch.Generator().manual_seed(seed + off + s), dtype=F64)
                .to(device) for off in (2000, 3000))
        factors.append(transfer.network_factor(blocks, x, r)[0])   # the one per-network λ (∞ explosion, 0 dead)
    return transfer.summary(factors, dtype="float64", device=device,
                            sizes={"depth": depth, "width": width, "batch": batch, "seeds": seeds})


# --- the chain rule through a stack of a user's blocks (RES-01…RES-04, STAB-02…STAB-04) ------------

FD_STEP = 1e-6
# Central differences in float64 at unit-scale inputs: truncation ≈ h²·|f‴|/6 and rounding ≈ ε·|f|/h,
# both near 1e-10 relative; a backward pass that is not the map's derivative is off by O(1).
FD_TOLERANCE = 1e-6
CHAIN_QUANTITIES = ("block", "band", "recursion", "product", "written")
PRODUCT_QUANTITIES = ("ratio", "sigma max", "sigma max min", "kappa")


def difference_jacobian(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """∂f/∂x of a map of a flat ``x`` by central differences of its values, without autograd: column j
    is (f(x + h_j e_j) − f(x − h_j e_j)) / 2h_j with h_j = FD_STEP·max(1, |x_j|)."""
    x = x.detach()
    cols = []
    for j in range(x.numel()):
        e = torch.zeros_like(x)
        e[j] = FD_STEP * max(1.0, abs(float(x[j])))
        cols.append(((f(x + e) - f(x - e)) / (2 * e[j])).detach())
    return torch.stack(cols, dim=1)


def _fixed_noise(block: Callable[[torch.Tensor], torch.Tensor], seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The block with torch's generator reseeded before every call: a stochastic block (dropout,
    stochastic depth) becomes the one deterministic map its backward pass differentiates."""
    def call(t: torch.Tensor) -> torch.Tensor:
        with seeded(seed):
            return block(t)
    return call


Chain = tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]


def _chain(make: object, width: int, depth: int, seed: int, x_seed: int, device: str) -> Chain:
    """:func:`_chained`, computed once for the several quantities a clause reads off it; a module instance
    (which a caller may change between calls) or a factory that cannot be hashed is measured afresh."""
    try:
        hash(make)
    except TypeError:
        return _chained(make, width, depth, seed, x_seed, device)
    if isinstance(make, nn.Module):
        return _chained(make, width, depth, seed, x_seed, device)
    return _cached_chain(make, width, depth, seed, x_seed, device)


def _chained(make: object, width: int, depth: int, seed: int, x_seed: int, device: str) -> Chain:
    """Through ``depth`` blocks of ``make`` (built in turn from ``seed``) on a PROBE_BATCH batch: autograd's
    ∂L/∂x_l at every block input and the output (L = ⟨x_D, c⟩, x and c from Generator(x_seed)), and each
    block's Jacobian at its own input by autograd (reverse mode, one backward pass per output) and by
    central differences."""
    with seeded(seed):
        blocks = [build_block(make, width, device) for _ in range(depth)]
    maps = [_batch_map(_fixed_noise(b, seed + 1 + l), PROBE_BATCH) for l, b in enumerate(blocks)]
    gen = torch.Generator().manual_seed(x_seed)
    xs = [torch.randn(PROBE_BATCH * width, generator=gen, dtype=F64).to(device).requires_grad_(True)]
    c = torch.randn(PROBE_BATCH * width, generator=gen, dtype=F64).to(device)
    for f in maps:
        xs.append(f(xs[-1]))
    grads = [g.detach() for g in torch.autograd.grad((xs[-1] * c).sum(), xs)]
    # plain reverse mode, as backward() runs it (torch.func refuses autograd.Functions without setup_context)
    auto = [torch.autograd.functional.jacobian(f, h.detach()).detach() for f, h in zip(maps, xs)]
    diff = [difference_jacobian(f, h) for f, h in zip(maps, xs)]
    return grads, auto, diff


_cached_chain = functools.lru_cache(maxsize=4)(_chained)


def _chain_value(quantity: str, grads: list[torch.Tensor], auto: list[torch.Tensor],
                 diff: list[torch.Tensor]) -> float:
    if quantity == "block":                 # autograd's block Jacobian against the map's derivative
        return max(float((a - d).abs().max() / d.abs().max().clamp_min(EPS["float64"])) for a, d in zip(auto, diff))
    if quantity == "band":                  # how far the backward gains leave 1 ± ‖∂block/∂x − I‖₂ (0 inside)
        eye = torch.eye(diff[0].shape[0], dtype=F64, device=diff[0].device)
        return max(0.0, *(band_excess(a, d - eye) for a, d in zip(auto, diff)))
    if quantity == "recursion":
        return recursion_error(grads, diff)
    if quantity == "product":               # J_1ᵀ⋯J_Dᵀ g_D: the chain rule's order
        return transposed_product_residual(diff, grads[-1], grads[0])
    return order_error(grads, diff, "written")


def _exploded(tensors: Sequence[torch.Tensor], device: str, sizes: dict) -> Measurement | None:
    """∞ (an explosion, a finding) when a gradient or Jacobian through the stack is not finite."""
    if all(bool(torch.isfinite(t).all()) for t in tensors):
        return None
    return Measurement(math.inf, Kind.NUMERIC, "float64", device, sizes,
                       witness="a gradient or Jacobian through the stack is not finite (explosion)")


@recipe
def user_chain_rule_error(*, make: Given, quantity: str, width: int, depth: int, seed: int, x_seed: int,
                          device: str = "cpu") -> Measurement:
    """RES-01…RES-04, STAB-02 for a user's block, through ``depth`` blocks (:func:`_chain`), each block's
    Jacobian J_l taken by central differences of its values (independent of autograd):
    ``"block"`` max_l max|autograd J_l − J_l| / max|J_l| (RES-01); ``"band"`` how far
    max_i |σ_i(autograd J_l) − 1| exceeds ‖J_l − I‖₂, 0 inside the band (RES-02: 0 by Weyl, a
    residual); ``"recursion"`` eq 3.3.8's
    error (RES-03); ``"product"`` J_1ᵀ⋯J_Dᵀ g_D against g_0 (STAB-02, RES-04's chain-rule order);
    ``"written"`` eq 3.3.9's printed order against g_0 (RES-04; O(1) unless the J_l commute)."""
    v.choice(quantity, "quantity", CHAIN_QUANTITIES)
    grads, auto, diff = _chain(make, width, depth, seed, x_seed, device)
    sizes = {"width": width, "blocks": depth, "batch": PROBE_BATCH}
    exploded = _exploded((*grads, *auto, *diff), device, sizes)
    if exploded is not None:
        return exploded
    value = _chain_value(quantity, grads, auto, diff)
    if quantity == "written":
        return Measurement(value, Kind.NUMERIC, "float64", device, sizes, conditioning=1 / FD_TOLERANCE)
    # a difference quotient's error scales with the Jacobian it estimates; errors add up along the stack
    scale = max(1.0, *(float(torch.linalg.matrix_norm(d, ord=2)) for d in diff)) if quantity == "band" else 1.0
    return Measurement(value, Kind.ROUNDING, "float64", device, sizes, bound=FD_TOLERANCE * depth * scale)


def _product_value(quantity: str, auto: list[torch.Tensor], diff: list[torch.Tensor]) -> float:
    sv = [torch.linalg.svdvals(d) for d in diff]
    if quantity == "kappa":
        return max(float(s[0] / s[-1]) if float(s[-1]) > 0 else math.inf for s in sv)
    if quantity != "ratio":
        return (max if quantity == "sigma max" else min)(float(s[0]) for s in sv)
    stack = auto[0]
    for a in auto[1:]:
        stack = a @ stack                    # J_D ⋯ J_1 as autograd differentiates each block
    bound = math.prod(float(s[0]) for s in sv)
    return 0.0 if bound == 0 else float(torch.linalg.matrix_norm(stack, ord=2)) / bound


@recipe
def user_stack_product_ratio(*, make: Given, quantity: str, width: int, depth: int, seed: int, x_seed: int,
                             device: str = "cpu") -> Measurement:
    """STAB-03/STAB-04 for a user's block, through ``depth`` blocks (:func:`_chain`), per-block Jacobians
    J_l by central differences: ``"ratio"`` ‖J_D⋯J_1‖₂ of autograd's block Jacobians over Π_l ‖J_l‖₂
    (≤ 1 when autograd differentiates the blocks; 1 when the J_l align); ``"sigma max"`` /
    ``"sigma max min"`` the largest / smallest ‖J_l‖₂ over blocks; ``"kappa"`` the largest κ(J_l)."""
    v.choice(quantity, "quantity", PRODUCT_QUANTITIES)
    _, auto, diff = _chain(make, width, depth, seed, x_seed, device)
    sizes = {"width": width, "blocks": depth, "batch": PROBE_BATCH}
    exploded = _exploded((*auto, *diff), device, sizes)
    if exploded is not None:
        return exploded
    return Measurement(_product_value(quantity, auto, diff), Kind.NUMERIC, "float64", device, sizes,
                       conditioning=1 / FD_TOLERANCE)


# LIT-11 (Zhang, Dauphin & Ma 2019, Fixup): how one SGD step's function change depends on depth
# for each way of scaling the L residual branches of m He-initialised ReLU layers.
FIXUP_RULES = ("fixup", "fixup-nonzero-last", "he", "inverse-sqrt-depth")
FIXUP_AXES = ("log depth", "depth")


def _fixup_branch(rule: str, blocks: int, layers: int, width: int) -> nn.Sequential:
    """``rule``: "fixup" (× L^(−1/(2m−2)), last layer 0), "fixup-nonzero-last" (the rescaling only,
    the case Fixup's §3 analysis treats), "he" (unscaled He init) or "inverse-sqrt-depth" (× L^(−1/2))."""
    v.choice(rule, "rule", FIXUP_RULES)
    scale = fixup_scale(blocks, layers) if rule.startswith("fixup") else 1.0 if rule == "he" else blocks ** -0.5
    return relu_branch(width, layers, scale=scale, zero_last=rule == "fixup")


@functools.lru_cache(maxsize=None)
def _sgd_function_change(rule: str, blocks: int, layers: int, width: int, batch: int, seed: int) -> float:
    """lim_{η→0} |F(θ − η∇F) − F(θ)|/η = ‖∇_θ F‖² for F the mean over a batch of vᵀ x_L.

    The readout v ~ N(0, I/width) is fixed (not trained), so the change comes from the branches;
    network, batch and v are drawn from ``seed`` in float64.
    """
    with seeded(seed):
        net = residual_stack(Residual(_fixup_branch(rule, blocks, layers, width)) for _ in range(blocks))
        x = torch.randn(batch, width, dtype=F64)
        readout = torch.randn(width, dtype=F64) / math.sqrt(width)
    return first_order_change((net(x) @ readout).mean(), list(net.parameters()))


def sgd_function_changes(*, rule: str, layers: int, depths: Sequence[int], width: int = 64, batch: int = 32,
                         seeds: int = 4) -> np.ndarray:
    """(seeds, depths) array of the first-order function change per unit step (for slopes and figures)."""
    return np.array([[_sgd_function_change(rule, d, layers, width, batch, s) for d in depths] for s in range(seeds)])


@recipe
def sgd_change_slope(*, rule: str, layers: int, depths: tuple[int, ...] = (4, 16, 64, 256),
                     axis: str = "log depth", width: int = 64, batch: int = 32, seeds: int = 4) -> Measurement:
    """LIT-11: slope of log(Δf/η) against log L (``axis="log depth"``: the exponent p of Δf ∝ L^p,
    0 when the change is depth-independent) or against L (``"depth"``: the log-growth per block);
    Δf/η is :func:`_sgd_function_change`'s first-order change; mean of per-seed slopes."""
    v.choice(axis, "axis", FIXUP_AXES)
    changes = sgd_function_changes(rule=rule, layers=layers, depths=depths, width=width, batch=batch, seeds=seeds)
    slope, lo, hi = per_seed_slope_ci(depths, changes, log_x=axis == "log depth")
    return Measurement(slope, Kind.STATISTICAL, "float64", "cpu",
                       {"depths": list(depths), "layers per branch": layers, "width": width, "batch": batch,
                        "seeds": seeds}, interval=(lo, hi), method=PER_SEED_SLOPES, n=seeds)


def first_order_change(out: torch.Tensor, params: list[torch.Tensor]) -> float:
    """lim_{η→0} |F(θ − η∇F) − F(θ)|/η = ‖∇_θ F‖² for the scalar F = ``out`` of parameters ``params``."""
    grads = torch.autograd.grad(out, params)
    return float(sum(g.pow(2).sum() for g in grads))


def _takes_depth(make: object) -> bool:
    """Whether a block factory takes the stack's depth as ``depth=`` (Fixup's scaling depends on it)."""
    if isinstance(make, nn.Module):
        return False
    try:
        return "depth" in inspect.signature(make).parameters   # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _user_function_change(make: object, depth: int, width: int, batch: int, seed: int, device: str) -> float:
    """LIT-11's first-order change for ``depth`` blocks of ``make`` (told ``depth=`` where it takes it), then
    the batch and the fixed readout v ~ N(0, I/width), drawn from ``seed``; F is the batch mean of vᵀ x_L."""
    told = functools.partial(make, depth=depth) if _takes_depth(make) else make   # type: ignore[arg-type]
    with seeded(seed):
        blocks = [build_block(told, width, device) for _ in range(depth)]
        x = torch.randn(batch, width, dtype=F64).to(device)
        readout = torch.randn(width, dtype=F64).to(device) / math.sqrt(width)
    # a parameter shared between blocks is one parameter
    params = list({id(p): p for b in blocks if isinstance(b, nn.Module) for p in b.parameters() if p.requires_grad}
                  .values())
    if not params:
        raise MeasurementError("the block has no trainable parameters: an SGD step changes nothing")
    return first_order_change((_stack(blocks)(x) @ readout).mean(), params)


@recipe
def user_sgd_change_slope(*, make: Given, depths: tuple[int, ...] = (4, 8, 16, 32), width: int, batch: int = 16,
                          seeds: int, seed: int = 0, device: str = "cpu") -> Measurement:
    """LIT-11 for a user's block: the exponent p of Δf/η ∝ L^p over stacks of L = ``depths`` blocks (network
    s drawn from seed + s), Δf/η the first-order function change of one SGD step; mean of per-seed slopes
    with its Student-t interval. A non-finite change is an explosion (∞)."""
    changes = [[_user_function_change(make, d, width, batch, seed + s, device) for d in depths] for s in range(seeds)]
    sizes = {"depths": list(depths), "width": width, "batch": batch, "seeds": seeds}
    flat = [c for row in changes for c in row]
    if not all(math.isfinite(c) for c in flat):
        return Measurement(math.inf, Kind.NUMERIC, "float64", device, sizes,
                           witness="one SGD step's function change overflows (explosion)")
    if min(flat) <= 0:
        raise MeasurementError("one SGD step leaves the output unchanged (‖∇_θF‖² = 0): no depth exponent")
    slope, lo, hi = per_seed_slope_ci(depths, changes, log_x=True)
    return Measurement(slope, Kind.STATISTICAL, "float64", device, sizes, interval=(lo, hi), method=PER_SEED_SLOPES,
                       n=seeds)

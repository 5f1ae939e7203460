"""Recipes for volume-preserving flows (claims FLOW-01..03), built with gradcore.flows.

Every layer is drawn from an explicit seed: linear layers W = U diag(s) Vᵀ from a
``torch.Generator``, NICE couplings from one too (their weights are drawn in float64,
which torch draws identically on every CPU). σ_max comes from the dense Jacobian's SVD
(exact to rounding, not an iteration stopped by a tolerance). A user's flow layer (``gradcore check``,
kind ``flow``) is passed as ``Given``: a factory ``dim -> layer`` whose layers map a (batch, dim)
input to ``y`` or ``(y, logdet)`` (:func:`flow_output`), built under :func:`~.seeding.seeded`.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .. import flows as F
from ..jacobian import jacobian, jacobian_operator
from ..stats import PER_SEED_SLOPES, per_seed_slope_ci
from .measurement import EPS, Kind, Measurement, recipe
from .seeding import seeded

F64 = torch.float64
DTYPES = {"float32": torch.float32, "float64": torch.float64}
DIM, SEEDS, KS = 16, 4, (1, 4, 8, 16, 32)


Map = Callable[[torch.Tensor], torch.Tensor]


def flow_output(layer: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(y, logdet)`` of a flow layer on a batch ``x``: its forward's ``(y, logdet)`` pair (RealNVP,
    nflows), else ``log_abs_det_jacobian(x, y)`` (torch.distributions), else 0 for a layer that
    declares ``volume_preserving = True`` (NICE); ``logdet`` None when the layer reports none."""
    out = layer(x)
    if isinstance(out, tuple):
        return out[0], (out[1] if len(out) > 1 else None)
    if callable(getattr(layer, "log_abs_det_jacobian", None)):
        return out, layer.log_abs_det_jacobian(x, out)
    if getattr(layer, "volume_preserving", False) is True:
        return out, torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
    return out, None


def flow_inverse(layer: Any, y: torch.Tensor) -> torch.Tensor:
    """``layer.inverse(y)`` (the first element when it returns ``(x, logdet)``)."""
    out = layer.inverse(y)
    return out[0] if isinstance(out, tuple) else out


def user_layer(make: Any, seed: int, device: str) -> Any:
    """``make(DIM)`` drawn from torch's generator seeded ``seed``, in float64 on ``device``."""
    with seeded(seed):
        layer = make(DIM)
    return layer.to(device=device, dtype=F64) if isinstance(layer, torch.nn.Module) else layer


def sample_map(layer: Any) -> Map:
    """A user's layer as a map of one sample (run as a batch of one, since flows act on batches)."""
    return lambda x: flow_output(layer, x[None])[0][0]


def _layer(layer: Any, param: float, seed: int, device: str) -> Any:
    """One layer from ``torch.Generator().manual_seed(seed)`` (linear: κ = param; coupling: scale), or
    a user's factory's layer (a map of one sample) drawn from torch's generator seeded ``seed``."""
    if not isinstance(layer, str):
        return sample_map(user_layer(layer, seed, device))
    gen = torch.Generator().manual_seed(seed)
    if layer == "linear":
        return F.VolumePreservingLinear(DIM, param, generator=gen, dtype=F64, device=device)
    return F.AdditiveCoupling(DIM, scale=param, generator=gen, dtype=F64, device=device)


def stack(layer: Any, param: float, depth: int, seed: int, dtype: str = "float64",
          device: str = "cpu") -> Any:
    """``depth`` layers drawn in turn from one generator seeded 1000·seed + depth (linear: κ =
    param; coupling: shear scale = param, alternating halves); a user's factory's layer i drawn from
    torch's generator seeded 1000·seed + i, as maps of one sample (``stack[:k]``: the first k)."""
    if not isinstance(layer, str):
        return Composed([sample_map(user_layer(layer, 1000 * seed + i, device)) for i in range(depth)])
    gen = torch.Generator().manual_seed(1000 * seed + depth)
    if layer == "linear":
        return F.flow_stack(F.VolumePreservingLinear(DIM, param, generator=gen, dtype=DTYPES[dtype], device=device)
                            for _ in range(depth))
    return F.flow_stack(F.AdditiveCoupling(DIM, scale=param, flip=bool(i % 2), generator=gen, dtype=F64,
                                           device=device) for i in range(depth))


class Composed:
    """Maps applied in order; slicing keeps the first ones (like ``nn.Sequential``)."""

    def __init__(self, maps: list[Map]) -> None:
        self.maps = maps

    def __getitem__(self, k: slice) -> Composed:
        return Composed(self.maps[k])

    def __iter__(self) -> Any:
        return iter(self.maps)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for f in self.maps:
            x = f(x)
        return x


def _point(seed: int, dim: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    return torch.randn(dim, generator=torch.Generator().manual_seed(seed), dtype=F64).to(device=device, dtype=dtype)


@recipe
def log_det(*, layer: str = "linear", param: float = 100.0, seed: int = 0, x_seed: int = 1,
            device: str = "cpu") -> Measurement:
    """FLOW-01: log|det J| of one layer at one point (0 exactly: a rounding residual).

    Bound: the claim's 1e-10 for W = U diag(s) Vᵀ (LU of a 16×16 matrix with condition
    number κ ≤ 1e4 loses up to ~64·κ·ε ≈ 1.4e-10 in float64); 1e-12 for a coupling,
    whose Jacobian [[I, 0], [t', I]] is unit triangular (only the LU's pivoting rounds)."""
    f = _layer(layer, param, seed, device)
    value = F.log_abs_det_jacobian(f, _point(x_seed, DIM, F64, device))
    return Measurement(value, Kind.ROUNDING, "float64", device, {"dim": DIM},
                       bound=1e-10 if layer == "linear" else 1e-12)


@recipe
def sigma_max(*, layer: Any = "linear", param: float = 100.0, seed: int = 0, x_seed: int = 1,
              device: str = "cpu") -> Measurement:
    """FLOW-01: σ_max of one layer's Jacobian (dense, ``torch.linalg.matrix_norm(ord=2)``), float64.

    A singular value is perfectly conditioned (|Δσ| ≤ ‖ΔJ‖): the SVD's backward-stable
    rounding and tanh's last-bit differences between kernels move it by a few ulps."""
    f = _layer(layer, param, seed, device)
    jac = jacobian(f, _point(x_seed, DIM, F64, device)).detach()
    return Measurement(float(torch.linalg.matrix_norm(jac, ord=2)), Kind.NUMERIC, "float64", device,
                       {"dim": DIM}, conditioning=4.0)


@recipe
def sigma_min(*, layer: Any = "linear", param: float = 100.0, seed: int = 0, x_seed: int = 1,
              device: str = "cpu") -> Measurement:
    """FLOW-01: σ_min of one layer's Jacobian at the point of :func:`sigma_max` (dense SVD, float64;
    a singular value moves by at most ‖ΔJ‖, so its tolerance is σ_max's)."""
    f = _layer(layer, param, seed, device)
    jac = jacobian(f, _point(x_seed, DIM, F64, device)).detach()
    s = torch.linalg.svdvals(jac)
    return Measurement(float(s[-1]), Kind.NUMERIC, "float64", device, {"dim": DIM},
                       conditioning=4.0 * float(s[0] / s[-1]) if float(s[-1]) > 0 else 4.0)


@recipe
def logdet_residual(*, layer: Any, seed: int = 0, x_seeds: tuple[int, ...] = (1, 2, 3),
                    scales: tuple[float, ...] = (1.0, 3.0), device: str = "cpu") -> Measurement:
    """FLOW-01 for a user's layer (``Given`` factory): max over the points scale·N(0, I) (one per x seed
    and scale) of |the log-determinant the layer reports − log|det J|| (slogdet of autograd's dense
    Jacobian, :func:`gradcore.flows.log_abs_det_jacobian`), float64: a rounding residual.

    Bound 64·dim·ε·(κ(J) + |log det J|): LU loses up to ~dim·κ·ε relatively in the pivots, the
    layer's own sum of log-scales ~dim·ε·|log det|; a reported logdet that is NaN or inf is ∞."""
    f = user_layer(layer, seed, device)
    worst, kappa, size = 0.0, 1.0, 0.0
    for x_seed in x_seeds:
        for scale in scales:
            x = scale * _point(x_seed, DIM, F64, device)
            reported = flow_output(f, x[None])[1]
            if reported is None:
                return Measurement(math.inf, Kind.ROUNDING, "float64", device, {"dim": DIM}, bound=0.0)
            true = F.log_abs_det_jacobian(sample_map(f), x)
            s = torch.linalg.svdvals(jacobian(sample_map(f), x).detach())
            kappa, size = max(kappa, float(s[0] / s[-1])), max(size, abs(true))
            gap = abs(float(torch.as_tensor(reported).detach().reshape(-1)[0]) - true)
            worst = max(worst, gap if math.isfinite(gap) else math.inf)
    bound = 64 * DIM * EPS["float64"] * (kappa + size)
    return Measurement(worst, Kind.ROUNDING, "float64", device, {"dim": DIM, "points": len(x_seeds) * len(scales)},
                       bound=bound)


@recipe
def round_trip(*, layer: Any, seed: int = 0, x_seed: int = 1, batch: int = 8, device: str = "cpu") -> Measurement:
    """Invertibility of a user's layer: max |inverse(forward(x)) − x| / max(1, max|x|) over a N(0, I)
    batch, float64 (rounding; bound 1e-9, a well-conditioned inverse's ~dim·κ·ε with room for κ ~ 1e4)."""
    f = user_layer(layer, seed, device)
    x = torch.randn(batch, DIM, generator=torch.Generator().manual_seed(x_seed), dtype=F64).to(device)
    with torch.no_grad():
        back = flow_inverse(f, flow_output(f, x)[0])
    gap = float((back - x).abs().max()) / max(1.0, float(x.abs().max()))
    return Measurement(gap if math.isfinite(gap) else math.inf, Kind.ROUNDING, "float64", device,
                       {"dim": DIM, "batch": batch}, bound=1e-9)


@recipe
def stack_log_det(*, kappa: float = 16.0, depth: int = 32, seed: int = 0, x_seed: int = 1,
                  device: str = "cpu") -> Measurement:
    """FLOW-02: Σ_k log|det J_k| along the forward pass of a linear stack (0: rounding).

    Summed per layer as a flow computes it (the product's own slogdet is ill-conditioned
    at κ_total ≈ 1e14 and loses ~0.3 in float64); bound 1e-9, the claim's tolerance
    (≥ depth × 64·κ·ε ≈ 7e-12)."""
    h, total = _point(x_seed, DIM, F64, device), 0.0
    for layer in stack("linear", kappa, depth, seed, device=device):
        total += F.log_abs_det_jacobian(layer, h)
        h = layer(h).detach()
    return Measurement(total, Kind.ROUNDING, "float64", device, {"dim": DIM, "depth": depth}, bound=1e-9)


def _gains(layer: Any, *args: Any) -> tuple[tuple[float, ...], ...]:
    """:func:`_stack_gains`, cached when the layer (a name, a factory) can be a cache key."""
    try:
        return _stack_gains(layer, *args)
    except TypeError as e:
        if "unhashable" not in str(e):
            raise
        return _stack_gains.__wrapped__(layer, *args)


@functools.lru_cache(maxsize=32)
def _stack_gains(layer: Any, param: float, seeds: int, ks: tuple[int, ...], device: str) -> tuple[tuple[float, ...], ...]:
    """‖(∂f/∂x)ᵀ g‖/‖g‖ for each seed (rows) and the first K layers of one stack (columns)."""
    out = []
    for seed in range(seeds):
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(DIM, generator=gen, dtype=F64).to(device)
        g = torch.randn(DIM, generator=gen, dtype=F64).to(device)
        net = stack(layer, param, ks[-1], seed, device=device)
        out.append(tuple(float(jacobian_operator(net[:k], x).rmatvec(g).detach().norm() / g.norm()) for k in ks))
    return tuple(out)


def gains(*, layer: Any = "linear", param: float = 16.0, seeds: int = SEEDS, ks: tuple[int, ...] = KS,
          device: str = "cpu") -> np.ndarray:
    """FLOW-02 figure: the gradient gains of :func:`growth_rate`, seeds × depths."""
    return np.array(_gains(layer, param, seeds, tuple(ks), device))


@recipe
def growth_rate(*, layer: Any = "linear", param: float = 16.0, seeds: int = SEEDS, ks: tuple[int, ...] = KS,
                device: str = "cpu") -> Measurement:
    """FLOW-02/03: per-layer log-growth of the input gradient, mean of per-seed slopes (Student-t CI);
    ``layer`` a name or a user's factory (``Given``; ``param`` unused), stacked as :func:`stack` does."""
    m, lo, hi = per_seed_slope_ci(list(ks), gains(layer=layer, param=param, seeds=seeds, ks=ks, device=device))
    return Measurement(m, Kind.STATISTICAL, "float64", device,
                       {"layer": layer if isinstance(layer, str) else "given", "param": param, "dim": DIM, "depths": list(ks), "seeds": seeds},
                       interval=(lo, hi), method=PER_SEED_SLOPES, n=seeds)


@recipe
def orthogonal_stack_residual(*, depth: int = 64, seed: int = 0, dtype: str = "float64",
                              device: str = "cpu") -> Measurement:
    """FLOW-03: max |σ_i − 1| of a ``depth``-layer orthogonal (κ = 1) stack's Jacobian (0: rounding).

    Each orthogonal factor carries ~ε of rounding: bound ≈ 1e-5 (float32) / 1e-12 (float64),
    the claim's tolerance (≥ depth·√DIM·ε)."""
    net = stack("linear", 1.0, depth, seed, dtype=dtype, device=device)
    jac = jacobian(net, torch.zeros(DIM, dtype=DTYPES[dtype], device=device)).detach()
    residual = float((torch.linalg.svdvals(jac) - 1).abs().max())
    return Measurement(residual, Kind.ROUNDING, dtype, device, {"dim": DIM, "depth": depth},
                       bound=1e-5 if dtype == "float32" else 1e-12)

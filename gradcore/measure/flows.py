"""Recipes for volume-preserving flows (claims FLOW-01..03), built with gradcore.flows.

Every layer is drawn from an explicit seed: linear layers W = U diag(s) Vᵀ from a
``torch.Generator``, NICE couplings from one too (their weights are drawn in float64,
which torch draws identically on every CPU). σ_max comes from the dense Jacobian's SVD
(exact to rounding, not an iteration stopped by a tolerance).
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from .. import flows as F
from ..jacobian import jacobian, jacobian_operator
from ..stats import PER_SEED_SLOPES, per_seed_slope_ci
from .measurement import Kind, Measurement, recipe

F64 = torch.float64
DTYPES = {"float32": torch.float32, "float64": torch.float64}
DIM, SEEDS, KS = 16, 4, (1, 4, 8, 16, 32)


def _layer(layer: str, param: float, seed: int, device: str) -> torch.nn.Module:
    """One layer from ``torch.Generator().manual_seed(seed)`` (linear: κ = param; coupling: scale)."""
    gen = torch.Generator().manual_seed(seed)
    if layer == "linear":
        return F.VolumePreservingLinear(DIM, param, generator=gen, dtype=F64, device=device)
    return F.AdditiveCoupling(DIM, scale=param, generator=gen, dtype=F64, device=device)


def stack(layer: str, param: float, depth: int, seed: int, dtype: str = "float64",
          device: str = "cpu") -> torch.nn.Sequential:
    """``depth`` layers drawn in turn from one generator seeded 1000·seed + depth (linear: κ =
    param; coupling: shear scale = param, alternating halves)."""
    gen = torch.Generator().manual_seed(1000 * seed + depth)
    if layer == "linear":
        return F.flow_stack(F.VolumePreservingLinear(DIM, param, generator=gen, dtype=DTYPES[dtype], device=device)
                            for _ in range(depth))
    return F.flow_stack(F.AdditiveCoupling(DIM, scale=param, flip=bool(i % 2), generator=gen, dtype=F64,
                                           device=device) for i in range(depth))


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
def sigma_max(*, layer: str = "linear", param: float = 100.0, seed: int = 0, x_seed: int = 1,
              device: str = "cpu") -> Measurement:
    """FLOW-01: σ_max of one layer's Jacobian (dense, ``torch.linalg.matrix_norm(ord=2)``), float64.

    A singular value is perfectly conditioned (|Δσ| ≤ ‖ΔJ‖): the SVD's backward-stable
    rounding and tanh's last-bit differences between kernels move it by a few ulps."""
    f = _layer(layer, param, seed, device)
    jac = jacobian(f, _point(x_seed, DIM, F64, device)).detach()
    return Measurement(float(torch.linalg.matrix_norm(jac, ord=2)), Kind.NUMERIC, "float64", device,
                       {"dim": DIM}, conditioning=4.0)


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


@functools.lru_cache(maxsize=32)
def _gains(layer: str, param: float, seeds: int, ks: tuple[int, ...], device: str) -> tuple[tuple[float, ...], ...]:
    """‖(∂f/∂x)ᵀ g‖/‖g‖ for each seed (rows) and the first K layers of one stack (columns)."""
    out = []
    for seed in range(seeds):
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(DIM, generator=gen, dtype=F64).to(device)
        g = torch.randn(DIM, generator=gen, dtype=F64).to(device)
        net = stack(layer, param, ks[-1], seed, device=device)
        out.append(tuple(float(jacobian_operator(net[:k], x).rmatvec(g).detach().norm() / g.norm()) for k in ks))
    return tuple(out)


def gains(*, layer: str = "linear", param: float = 16.0, seeds: int = SEEDS, ks: tuple[int, ...] = KS,
          device: str = "cpu") -> np.ndarray:
    """FLOW-02 figure: the gradient gains of :func:`growth_rate`, seeds × depths."""
    return np.array(_gains(layer, param, seeds, tuple(ks), device))


@recipe
def growth_rate(*, layer: str = "linear", param: float = 16.0, seeds: int = SEEDS, ks: tuple[int, ...] = KS,
                device: str = "cpu") -> Measurement:
    """FLOW-02/03: per-layer log-growth of the input gradient, mean of per-seed slopes (Student-t CI)."""
    m, lo, hi = per_seed_slope_ci(list(ks), gains(layer=layer, param=param, seeds=seeds, ks=ks, device=device))
    return Measurement(m, Kind.STATISTICAL, "float64", device,
                       {"layer": layer, "param": param, "dim": DIM, "depths": list(ks), "seeds": seeds},
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

"""Jacobian growth of DenseNet-style blocks with the number of connections k (DENSE-01, DENSE-02).

A block of :class:`gradcore.dense.DenseBlock` with k layers, seed s and k drawn from torch's
generator seeded with 1000·s + k (x ~ N(0, I) drawn after it from the same stream); its
input–output Jacobian norm ‖∂block/∂x‖₂ by :func:`gradcore.dense.jacobian_norm`. Each estimate
is the mean over seeds of a per-seed slope of log‖J‖₂, with its Student-t interval. A user's block
comes in as a ``Given`` factory ``(k, width) -> module`` mapping (batch, width) to (batch, features),
drawn the same way (``gradcore check``'s ``dense`` kind).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import _validate as v
from ..dense import AGGREGATIONS, DenseBlock, jacobian_norm
from ..jacobian import jacobian
from ..stats import MEAN_METHOD, mean_ci, per_seed_slope_ci
from .measurement import Given, Kind, Measurement, recipe
from .residual import PER_SEED_SLOPES
from .seeding import seeded

F64 = torch.float64
AXES = ("log k", "k")


@functools.lru_cache(maxsize=1024)
def _norm(aggregation: str, activation: str, gain: float, k: int, width: int, seed: int, device: str) -> float:
    """‖∂block/∂x‖₂ of one dense block with k layers drawn from seed 1000·seed + k."""
    with seeded(1000 * seed + k):
        block = DenseBlock(k, width, aggregation, activation=activation, gain=gain, dtype=F64)
        x = torch.randn(width, dtype=F64)
    return jacobian_norm(block.to(device), x.to(device))


def _norms(aggregation: str, activation: str, gain: float, ks: Sequence[int], width: int, seeds: int,
           device: str) -> np.ndarray:
    """‖∂block/∂x‖₂ for each seed (rows) and number of connections k (columns)."""
    v.choice(aggregation, "aggregation", AGGREGATIONS)
    return np.array([[_norm(aggregation, activation, gain, k, width, s, device) for k in ks] for s in range(seeds)])


def jacobian_curve(*, aggregation: str, activation: str, gain: float, ks: Sequence[int], width: int = 16,
                   seeds: int = 5, device: str = "cpu") -> list[float]:
    """The figure's curve: the geometric mean over seeds of ‖∂block/∂x‖₂ at each k."""
    norms = _norms(aggregation, activation, gain, ks, width, seeds, device)
    return list(np.exp(np.log(norms).mean(0)))


@recipe
def jacobian_slope(*, aggregation: str, activation: str, gain: float, ks: tuple[int, ...] = (2, 4, 8, 16, 32),
                   axis: str = "log k", width: int = 16, seeds: int = 5, device: str = "cpu") -> Measurement:
    """DENSE-01/02: slope of log‖∂block/∂x‖₂ against log k (``axis="log k"``: the exponent p of
    ‖J‖ ∝ k^p) or against k (``"k"``: the per-connection log-growth rate); mean of per-seed slopes."""
    v.choice(axis, "axis", AXES)
    return _slope(_norms(aggregation, activation, gain, ks, width, seeds, device), ks, axis, width, device)


def _slope(norms: np.ndarray, ks: Sequence[int], axis: str, width: int, device: str) -> Measurement:
    """Mean over seeds (rows) of the per-seed slope of log‖J‖₂ on (log) k; ∞ when a norm overflowed,
    −∞ when one vanished (no logarithm)."""
    sizes = {"k": list(ks), "width": width, "seeds": len(norms)}
    if not np.isfinite(norms).all() or (norms <= 0).any():
        worst = math.inf if not np.isfinite(norms).all() else -math.inf
        return Measurement(worst, Kind.STATISTICAL, "float64", device, sizes, interval=(worst, worst),
                           method=PER_SEED_SLOPES, n=len(norms))
    slope, lo, hi = per_seed_slope_ci(ks, norms, log_x=axis == "log k")
    return Measurement(slope, Kind.STATISTICAL, "float64", device, sizes, interval=(lo, hi), method=PER_SEED_SLOPES,
                       n=len(norms))


@recipe
def sum_over_concat(*, activation: str, gain: float, k: int = 16, width: int = 16, seeds: int = 5,
                    device: str = "cpu") -> Measurement:
    """DENSE-02: log(‖J_sum‖₂ / ‖J_concat‖₂) at k connections, same seeds, mean over seeds."""
    ratio = [np.log(_norm("sum", activation, gain, k, width, s, device) /
                    _norm("concat", activation, gain, k, width, s, device)) for s in range(seeds)]
    mean, lo, hi = mean_ci(ratio)
    return Measurement(mean, Kind.STATISTICAL, "float64", device, {"k": k, "width": width, "seeds": seeds},
                       interval=(lo, hi), method=MEAN_METHOD, n=seeds)


def build_block(make: Any, k: int, width: int, device: str) -> Any:
    """A user's block with ``k`` layers (``make(k, width)``), a module moved to float64 on ``device`` in
    eval mode: the Jacobian is of one sample, so batch statistics (BatchNorm) are the running ones."""
    block = make(k, width)
    return block.to(device=device, dtype=F64).eval() if isinstance(block, nn.Module) else block


def _user_norm(make: Any, k: int, width: int, seed: int, device: str) -> float:
    """‖∂block/∂x‖₂ of a user's block with k layers, drawn like :func:`_norm` (seed 1000·seed + k)."""
    with seeded(1000 * seed + k):
        block = build_block(make, k, width, device)
        x = torch.randn(width, dtype=F64)
    jac = jacobian(lambda t: block(t.unsqueeze(0)).reshape(-1), x.to(device), check_finite=False).detach()
    if not bool(torch.isfinite(jac).all()):
        return math.inf
    return float(torch.linalg.matrix_norm(jac, ord=2))


def _user_norms(make: Any, ks: Sequence[int], width: int, seeds: int, device: str) -> np.ndarray:
    return np.array([[_user_norm(make, k, width, s, device) for k in ks] for s in range(seeds)])


@recipe
def user_jacobian_slope(*, make: Given, ks: tuple[int, ...] = (2, 4, 8, 16), axis: str = "log k", width: int = 16,
                        seeds: int = 5, device: str = "cpu") -> Measurement:
    """DENSE-01 for a user's block factory ``make(k, width)``: slope of log‖∂block/∂x‖₂ against log k
    (the exponent p of ‖J‖ ∝ k^p) or k; mean of per-seed slopes with its Student-t interval."""
    v.choice(axis, "axis", AXES)
    return _slope(_user_norms(make, ks, width, seeds, device), ks, axis, width, device)


@recipe
def sum_over_user(*, make: Given, activation: str = "tanh", gain: float = 1.0, k: int = 16, width: int = 16,
                  seeds: int = 5, device: str = "cpu") -> Measurement:
    """DENSE-02 for a user's block: log(‖J_sum‖₂ / ‖J_user‖₂) at k layers, gradcore's summing DenseBlock
    (``activation``, ``gain``) against the user's, same seeds; mean over seeds (∞: the user's vanished)."""
    ratio = [np.log(_norm("sum", activation, gain, k, width, s, device)) - np.log(_user_norm(make, k, width, s, device))
             for s in range(seeds)]
    sizes = {"k": k, "width": width, "seeds": seeds}
    if not np.isfinite(ratio).all():
        worst = -math.inf if any(r == -math.inf for r in ratio) else math.inf
        return Measurement(worst, Kind.STATISTICAL, "float64", device, sizes, interval=(worst, worst),
                           method=MEAN_METHOD, n=seeds)
    mean, lo, hi = mean_ci(ratio)
    return Measurement(mean, Kind.STATISTICAL, "float64", device, sizes, interval=(lo, hi), method=MEAN_METHOD,
                       n=seeds)

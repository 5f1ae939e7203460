"""Jacobian growth of DenseNet-style blocks with the number of connections k (DENSE-01, DENSE-02).

A block of :class:`gradcore.dense.DenseBlock` with k layers, seed s and k drawn from torch's
generator seeded with 1000·s + k (x ~ N(0, I) drawn after it from the same stream); its
input–output Jacobian norm ‖∂block/∂x‖₂ by :func:`gradcore.dense.jacobian_norm`. Each estimate
is the mean over seeds of a per-seed slope of log‖J‖₂, with its Student-t interval.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from .. import _validate as v
from ..dense import AGGREGATIONS, DenseBlock, jacobian_norm
from ..stats import MEAN_METHOD, mean_ci, per_seed_slope_ci
from .measurement import Kind, Measurement, recipe
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
    norms = _norms(aggregation, activation, gain, ks, width, seeds, device)
    slope, lo, hi = per_seed_slope_ci(ks, norms, log_x=axis == "log k")
    return Measurement(slope, Kind.STATISTICAL, "float64", device, {"k": list(ks), "width": width, "seeds": seeds},
                       interval=(lo, hi), method=PER_SEED_SLOPES, n=seeds)


@recipe
def sum_over_concat(*, activation: str, gain: float, k: int = 16, width: int = 16, seeds: int = 5,
                    device: str = "cpu") -> Measurement:
    """DENSE-02: log(‖J_sum‖₂ / ‖J_concat‖₂) at k connections, same seeds, mean over seeds."""
    ratio = [np.log(_norm("sum", activation, gain, k, width, s, device) /
                    _norm("concat", activation, gain, k, width, s, device)) for s in range(seeds)]
    mean, lo, hi = mean_ci(ratio)
    return Measurement(mean, Kind.STATISTICAL, "float64", device, {"k": k, "width": width, "seeds": seeds},
                       interval=(lo, hi), method=MEAN_METHOD, n=seeds)

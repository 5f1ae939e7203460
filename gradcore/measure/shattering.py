"""Shattered gradients (LIT-13, Balduzzi et al. 2017): how alike the gradients of nearby inputs stay.

The probe follows the paper's Figure 1: a scalar input on a 1-D grid through a deep ReLU net,
and the gradient df/dx at every grid point (the grid, 256 points in [−2, 2], and the width 200
are gradcore's choices). The lag-1 autocorrelation ρ₁ of those gradients (the correlation between
neighbouring points) is ≈ 1 for a smooth function and ≈ 0 for white noise. Blocks are
BN → ReLU → Linear, He-initialised, stacked plainly or with identity skips; BN normalises over the
grid as its batch (``batch_norm=False`` drops it). Everything is drawn from ``seed`` in float64.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import _validate as v
from ..stats import MEAN_METHOD, PER_SEED_LOGLOG_SLOPES, PER_SEED_SLOPES, mean_ci, per_seed_slope_ci
from .measurement import Kind, Measurement, recipe
from .seeding import seeded

F64 = torch.float64
ARCHITECTURES = ("feedforward", "resnet")
GRID = {"points": 256, "low": -2.0, "high": 2.0, "width": 200}


class GridBlock(nn.Module):
    """BN → ReLU → Linear, He-initialised. BN normalises with the batch's mean and (biased) variance
    held fixed under differentiation (torch's ``F.batch_norm`` given those statistics), so that a
    point's output depends on its own input only and df/dx is that point's derivative; plain
    autograd through training-mode BN would add every other point's dependence on x_i."""

    def __init__(self, width: int, batch_norm: bool) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(width, dtype=F64) if batch_norm else None
        self.linear = nn.Linear(width, width, dtype=F64)
        nn.init.kaiming_normal_(self.linear.weight, nonlinearity="relu")
        nn.init.zeros_(self.linear.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.norm is not None:
            mean, var = h.mean(0).detach(), h.var(0, unbiased=False).detach()
            h = F.batch_norm(h, mean, var, self.norm.weight, self.norm.bias, False, 0.0, self.norm.eps)
        return self.linear(torch.relu(h))


def grid_gradients(*, architecture: str, depth: int, seed: int, batch_norm: bool = True) -> np.ndarray:
    """df/dx at each grid point for one seeded net of ``depth`` blocks (x_{l+1} = x_l + B(x_l) for
    "resnet", B(x_l) for "feedforward"), between a Linear 1 → width and a Linear width → 1."""
    v.choice(architecture, "architecture", ARCHITECTURES)
    depth = v.integer(depth, "depth", minimum=1)
    width = GRID["width"]
    with seeded(seed):
        first = nn.Linear(1, width, dtype=F64)
        blocks = [GridBlock(width, batch_norm) for _ in range(depth)]
        last = nn.Linear(width, 1, dtype=F64)
    x = torch.linspace(GRID["low"], GRID["high"], GRID["points"], dtype=F64)[:, None].requires_grad_(True)
    h = first(x)
    for b in blocks:
        h = h + b(h) if architecture == "resnet" else b(h)
    (g,) = torch.autograd.grad(last(h).sum(), x)   # f_i depends on x_i alone: the sum's gradient is df_i/dx_i
    return g[:, 0].detach().numpy()


def lag1_correlation(g: np.ndarray) -> float:
    """Sample autocorrelation of a sequence at lag 1: Σ (g_i − ḡ)(g_{i+1} − ḡ) / Σ (g_i − ḡ)²."""
    c = np.asarray(g, dtype=float) - np.mean(g)
    return float((c[:-1] * c[1:]).sum() / (c * c).sum())


@functools.lru_cache(maxsize=None)
def _correlation(architecture: str, depth: int, seed: int, batch_norm: bool) -> float:
    return lag1_correlation(grid_gradients(architecture=architecture, depth=depth, seed=seed, batch_norm=batch_norm))


def correlations(*, architecture: str, depths: Sequence[int], seeds: int = 8, batch_norm: bool = True) -> np.ndarray:
    """(seeds, depths) array of ρ₁ (for slopes and figures)."""
    return np.array([[_correlation(architecture, d, s, batch_norm) for d in depths] for s in range(seeds)])


def _sizes(**sizes: object) -> dict:
    return {**sizes, "grid points": GRID["points"], "width": GRID["width"]}


@recipe
def gradient_correlation(*, architecture: str, depth: int, seeds: int = 8, batch_norm: bool = True) -> Measurement:
    """LIT-13: ρ₁ of the grid gradients at ``depth``, mean over ``seeds`` nets (Student-t interval)."""
    value, lo, hi = mean_ci(correlations(architecture=architecture, depths=(depth,), seeds=seeds,
                                         batch_norm=batch_norm)[:, 0])
    return Measurement(value, Kind.STATISTICAL, "float64", "cpu",
                       _sizes(depth=depth, seeds=seeds, batch_norm=batch_norm), interval=(lo, hi),
                       method=MEAN_METHOD, n=seeds)


@recipe
def gradient_correlation_slope(*, architecture: str, depths: tuple[int, ...], axis: str = "depth",
                               seeds: int = 8, batch_norm: bool = True) -> Measurement:
    """LIT-13: per net, the slope of log ρ₁ against depth (``axis="depth"``: the log-decay per block,
    < 0 for an exponential decay) or against log depth (``"log depth"``: the exponent p of ρ₁ ∝ L^p,
    > −1 for a sublinear decay); Student-t interval over nets. Every ρ₁ must be positive."""
    v.choice(axis, "axis", ("depth", "log depth"))
    rho = correlations(architecture=architecture, depths=depths, seeds=seeds, batch_norm=batch_norm)
    if (rho <= 0).any():
        v.fail("depths", f"ρ₁ ≤ 0 at some depth in {list(depths)}: no logarithm (the gradients are already noise)")
    value, lo, hi = per_seed_slope_ci(depths, rho, log_x=axis == "log depth")
    return Measurement(value, Kind.STATISTICAL, "float64", "cpu",
                       _sizes(depths=list(depths), seeds=seeds, batch_norm=batch_norm), interval=(lo, hi),
                       method=PER_SEED_SLOPES if axis == "depth" else PER_SEED_LOGLOG_SLOPES, n=seeds)


@recipe
def correlation_offset_change(*, architecture: str = "feedforward", depth: int = 16, seed: int = 0,
                              offset: float = 10.0, batch_norm: bool = True) -> Measurement:
    """LIT-13: |ρ₁(g + offset·std(g)) − ρ₁(g)| for one net's grid gradients g. ρ₁ is a correlation: it
    subtracts the mean, so a constant added to every gradient leaves it unchanged (0 up to rounding);
    a ρ₁ taken without centring would move by O(1) towards 1."""
    g = grid_gradients(architecture=architecture, depth=depth, seed=seed, batch_norm=batch_norm)
    change = abs(lag1_correlation(g + offset * np.std(g)) - lag1_correlation(g))
    # Centring values offset·std away from their mean loses ~offset ulp of the spread per entry:
    # ~1e-15 at offset 10, well inside 1e-12.
    return Measurement(change, Kind.ROUNDING, "float64", "cpu", _sizes(depth=depth, seed=seed, offset=offset),
                       bound=1e-12)

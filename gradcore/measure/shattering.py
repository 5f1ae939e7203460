"""Shattered gradients (LIT-13, Balduzzi et al. 2017): how alike the gradients of nearby inputs stay.

The probe follows the paper's Figure 1: a scalar input on a 1-D grid through a deep ReLU net,
and the gradient df/dx at every grid point (the grid, 256 points in [−2, 2], and the width 200
are gradcore's choices). The lag-1 autocorrelation ρ₁ of those gradients (the correlation between
neighbouring points) is ≈ 1 for a smooth function and ≈ 0 for white noise. Blocks are
BN → ReLU → Linear, He-initialised, stacked plainly or with identity skips; BN normalises over the
grid as its batch (``batch_norm=False`` drops it). Everything is drawn from ``seed`` in float64.
The norm contract puts a user's layer in BN's place (``make=``, smaller ``width`` and ``points``), its
batch statistics held fixed by :func:`held_fixed`.
"""
from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import _validate as v
from ..errors import NotApplicable
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
    autograd through training-mode BN would add every other point's dependence on x_i.

    ``make`` (a ``width -> module`` factory, a module — copied per block — or a function of the
    batch) puts a user's norm in BN's place; :func:`held_fixed` makes its statistics fixed."""

    def __init__(self, width: int, batch_norm: bool, make: Any = None) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(width, dtype=F64) if batch_norm and make is None else None
        self.user = None if make is None else _user_norm(make, width)
        self.held = ""            # how the user's norm was held fixed (see held_fixed)
        self.linear = nn.Linear(width, width, dtype=F64)
        nn.init.kaiming_normal_(self.linear.weight, nonlinearity="relu")
        nn.init.zeros_(self.linear.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.norm is not None:
            mean, var = h.mean(0).detach(), h.var(0, unbiased=False).detach()
            h = F.batch_norm(h, mean, var, self.norm.weight, self.norm.bias, False, 0.0, self.norm.eps)
        elif self.user is not None:
            h, self.held = held_fixed(self.user, h)
        return self.linear(torch.relu(h))


def _user_norm(make: Any, width: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The user's layer in float64, training mode (a module instance is copied: one per block)."""
    layer = copy.deepcopy(make) if isinstance(make, nn.Module) else make(width)
    return layer.to(dtype=F64).train() if isinstance(layer, nn.Module) else layer


PER_SAMPLE = "per sample (one sample's output does not depend on the batch): autograd per point"
RUNNING = ("running statistics set to the grid batch's mean and biased variance, evaluated in eval mode "
           "(reproduces its training-mode output on the grid)")
MATCH_TOL = 1e-9     # relative: what a per-sample or fixed-statistics output may differ by (float64 rounding)


def held_fixed(layer: Callable[[torch.Tensor], torch.Tensor], h: torch.Tensor) -> tuple[torch.Tensor, str]:
    """The layer's output on the batch ``h`` with its batch statistics held fixed, so that df_i/dx_i
    is point i's own derivative (LIT-13's fixed-statistics derivative for any norm), and how:

    - a per-sample layer (the first half of ``h`` maps as it does inside the whole batch): as it is;
    - a BatchNorm-like layer (submodules with ``running_mean``, ``running_var`` and ``momentum``): on a
      copy in eval mode whose such submodules take, by a forward pre-hook, the mean and biased variance
      of their own input over every dimension but the channels as running statistics — accepted only
      if that reproduces the training-mode output on ``h``;
    - anything else raises :class:`NotApplicable` with the reason."""
    with torch.no_grad():
        ref = layer(h)
        per_sample = _close(layer(h[:len(h) // 2]), ref[:len(h) // 2])
    if per_sample:
        return layer(h), PER_SAMPLE
    if not any(map(_has_running_statistics, _modules(layer))):
        raise NotApplicable("one sample's output depends on the rest of the batch and the layer has no running "
                            "statistics (running_mean, running_var, momentum) to hold the batch's fixed, so "
                            "df/dx at a grid point would not be that point's own derivative")
    fixed = copy.deepcopy(layer).eval()
    for m in filter(_has_running_statistics, fixed.modules()):
        m.register_forward_pre_hook(_set_running_statistics)
    y = fixed(h)
    if not _close(y.detach(), ref):
        raise NotApplicable("setting its running statistics to the batch's mean and biased variance in eval "
                            "mode does not reproduce its training-mode output, so they cannot hold its "
                            "batch statistics fixed")
    return y, RUNNING


def _modules(layer: Any) -> list[nn.Module]:
    return list(layer.modules()) if isinstance(layer, nn.Module) else []


def _has_running_statistics(m: nn.Module) -> bool:
    return all(hasattr(m, a) for a in ("running_mean", "running_var", "momentum"))


def _set_running_statistics(m: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
    """Forward pre-hook: the module's running statistics become its input's, as constants."""
    x = inputs[0].detach()
    dims = [d for d in range(x.dim()) if d != 1]      # every dimension but the channels
    m.running_mean = x.mean(dims)
    m.running_var = x.var(dims, unbiased=False)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    scale = max(1.0, float(b.abs().max())) if b.numel() else 1.0
    return a.shape == b.shape and bool(torch.isfinite(b).all()) and float((a - b).abs().max()) <= MATCH_TOL * scale
def grid_gradients(*, architecture: str, depth: int, seed: int, batch_norm: bool = True, make: Any = None,
                   width: int | None = None, points: int | None = None) -> np.ndarray:
    """df/dx at each grid point for one seeded net of ``depth`` blocks (x_{l+1} = x_l + B(x_l) for
    "resnet", B(x_l) for "feedforward"), between a Linear 1 → width and a Linear width → 1.
    ``make`` puts a user's norm in BN's place; ``width`` and ``points`` default to GRID's."""
    return _grid_run(architecture, depth, seed, batch_norm, make, width, points)[0]


def _grid_run(architecture: str, depth: int, seed: int, batch_norm: bool, make: Any, width: int | None,
              points: int | None) -> tuple[np.ndarray, set[str]]:
    """The grid gradients and how the user's norm was held fixed in each block (empty without one)."""
    v.choice(architecture, "architecture", ARCHITECTURES)
    depth = v.integer(depth, "depth", minimum=1)
    width = GRID["width"] if width is None else v.integer(width, "width", minimum=1)
    points = GRID["points"] if points is None else v.integer(points, "points", minimum=4)
    with seeded(seed):
        first = nn.Linear(1, width, dtype=F64)
        blocks = [GridBlock(width, batch_norm, make) for _ in range(depth)]
        last = nn.Linear(width, 1, dtype=F64)
    x = torch.linspace(GRID["low"], GRID["high"], points, dtype=F64)[:, None].requires_grad_(True)
    h = first(x)
    for b in blocks:
        h = h + b(h) if architecture == "resnet" else b(h)
    (g,) = torch.autograd.grad(last(h).sum(), x)   # f_i depends on x_i alone: the sum's gradient is df_i/dx_i
    return g[:, 0].detach().numpy(), {b.held for b in blocks if b.held}


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


def _rho(architecture: str, depths: Sequence[int], seeds: int, batch_norm: bool, make: Any, width: int | None,
         points: int | None) -> tuple[np.ndarray, dict]:
    """ρ₁ as :func:`correlations` (cached for gradcore's own BN nets), and the sizes to record: with a
    user's norm or other sizes, measured afresh, the sizes saying how its statistics were held fixed."""
    if make is None and width is None and points is None:
        return correlations(architecture=architecture, depths=depths, seeds=seeds, batch_norm=batch_norm), _sizes()
    runs = [[_grid_run(architecture, d, s, batch_norm, make, width, points) for d in depths] for s in range(seeds)]
    held = sorted(set().union(*(h for row in runs for _, h in row)))
    sizes = _sizes(width=width or GRID["width"], points=points or GRID["points"],
                   norm="BN" if make is None else "the user's")
    rho = np.array([[lag1_correlation(_defined(g, d)) for d, (g, _) in zip(depths, row)] for row in runs])
    return rho, {**sizes, "statistics": "; ".join(held)}


def _defined(g: np.ndarray, depth: int) -> np.ndarray:
    """``g`` when its ρ₁ is defined; else NotApplicable saying why (a finding about the layer, not a number)."""
    if not np.isfinite(g).all():
        raise NotApplicable(f"df/dx is not finite at depth {depth} (overflow): ρ₁ is undefined")
    if np.ptp(g) <= 1e-12 * max(float(np.abs(g).max()), 1e-300):
        raise NotApplicable(f"df/dx is the same at every grid point at depth {depth} (a linear function): "
                            "ρ₁ is undefined")
    return g


def _sizes(**sizes: object) -> dict:
    width, points = sizes.pop("width", GRID["width"]), sizes.pop("points", GRID["points"])
    return {**sizes, "grid points": points, "width": width}


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
                               seeds: int = 8, batch_norm: bool = True, log_rho: bool = True, make: Any = None,
                               width: int | None = None, points: int | None = None) -> Measurement:
    """LIT-13: per net, the slope of log ρ₁ against depth (``axis="depth"``: the log-decay per block,
    < 0 for an exponential decay) or against log depth (``"log depth"``: the exponent p of ρ₁ ∝ L^p,
    > −1 for a sublinear decay); Student-t interval over nets. Every ρ₁ must be positive.
    ``log_rho=False`` fits ρ₁ itself (defined where ρ₁ reaches 0). ``make`` puts a user's norm
    (a Given ``width -> module`` factory) in BN's place, held fixed as :func:`held_fixed` says;
    ``width`` and ``points`` default to GRID's."""
    v.choice(axis, "axis", ("depth", "log depth"))
    rho, sizes = _rho(architecture, depths, seeds, batch_norm, make, width, points)
    if log_rho and (rho <= 0).any():
        v.fail("depths", f"ρ₁ ≤ 0 at some depth in {list(depths)}: no logarithm (the gradients are already noise)")
    value, lo, hi = per_seed_slope_ci(depths, rho, log_x=axis == "log depth", log_y=log_rho)
    return Measurement(value, Kind.STATISTICAL, "float64", "cpu",
                       {"depths": list(depths), "seeds": seeds, "batch_norm": batch_norm, **sizes}, interval=(lo, hi),
                       method=PER_SEED_SLOPES if axis == "depth" else PER_SEED_LOGLOG_SLOPES, n=seeds)


@recipe
def skip_slope_gap(*, depths: tuple[int, ...], seeds: int = 8, batch_norm: bool = True, make: Any = None,
                   width: int | None = None, points: int | None = None) -> Measurement:
    """LIT-13: per seed, the per-block slope of ρ₁ with identity skips minus that of the feedforward
    net (the same seed draws the same weights), Student-t interval over seeds: > 0 when skips slow
    the decay. Arguments as :func:`gradient_correlation_slope`'s."""
    runs = {a: _rho(a, depths, seeds, batch_norm, make, width, points) for a in ARCHITECTURES}
    slopes = {a: np.array([np.polyfit(depths, r, 1)[0] for r in rho]) for a, (rho, _) in runs.items()}
    value, lo, hi = mean_ci(slopes["resnet"] - slopes["feedforward"])
    sizes = runs["feedforward"][1]
    return Measurement(value, Kind.STATISTICAL, "float64", "cpu",
                       {"depths": list(depths), "seeds": seeds, "batch_norm": batch_norm, **sizes}, interval=(lo, hi),
                       method=MEAN_METHOD, n=seeds)


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

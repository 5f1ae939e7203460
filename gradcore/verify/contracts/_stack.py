"""Gradient transfer through a stack of layers, shared by the kind contracts.

The per-layer transfer factor λ of 004 §3.3.1 (累积衰减模型: "设平均每层的梯度传递因子
为λ") is ``gradcore.probes.transfer_factor(...).geometric`` = (‖g_0‖/‖g_D‖)^{1/D} of the
norms ``gradcore.probes.layer_gradient_norms`` measures, with L = ⟨h_D, r⟩ for a random r
(so the output gradient is isotropic), averaged over seeds with a 95 % interval.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ... import probes
from ...stats import mean_ci
from .base import Settings

Layer = Callable[[torch.Tensor], torch.Tensor]


def transfer_factor(build: Callable[[int], Sequence[Layer]], *, depth: int, width: int, batch: int,
                    settings: Settings, dtype: torch.dtype = torch.float64) -> dict[str, float]:
    """λ = (‖g_0‖/‖g_D‖)^{1/D} over ``settings.seeds`` networks; mean and 95 % CI.

    ``build(seed)`` returns the ``depth`` layers of one freshly initialised network.
    """
    factors = []
    for s in range(settings.seeds):
        torch.manual_seed(settings.seed + 1000 + s)
        layers = build(s)
        x = settings.randn(batch, width, offset=2000 + s, dtype=dtype)
        r = settings.randn(batch, width, offset=3000 + s, dtype=dtype)
        forward_finite: list[bool] = []

        def loss(out: torch.Tensor, r: torch.Tensor = r) -> torch.Tensor:
            forward_finite.append(bool(torch.isfinite(out).all()))
            return (out * r).sum()

        norms = probes.layer_gradient_norms(layers, x, loss=loss)
        factors.append(factor_of(norms) if all(forward_finite) else math.inf)
    lam, lo, hi = summarise(factors)
    return {"lambda": lam, "lambda_lo": lo, "lambda_hi": hi}


def summarise(factors: list[float]) -> tuple[float, float, float]:
    """Mean and 95 % interval of per-network factors; (∞, ∞, ∞) when any network exploded
    (one overflowing network is an explosion, not a number to average)."""
    if any(math.isinf(f) for f in factors):
        return math.inf, math.inf, math.inf
    return mean_ci(factors)


def factor_of(norms: torch.Tensor) -> float:
    """λ of one network: ∞ when a gradient norm is non-finite (it overflowed: explosion, or a
    NaN born of an overflow), 0 when one vanished exactly, else the geometric mean factor."""
    if not bool(torch.isfinite(norms).all()):
        return math.inf
    if not bool((norms > 0).all()):
        return 0.0
    factor = probes.transfer_factor(norms).geometric
    return factor if math.isfinite(factor) else math.inf


def linear_layers(depth: int, width: int, init: Callable[[torch.Tensor], object],
                  settings: Settings, dtype: torch.dtype = torch.float64) -> list[nn.Linear]:
    """``depth`` square ``nn.Linear`` layers whose weights ``init`` fills (zero biases)."""
    layers = []
    for _ in range(depth):
        lin = nn.Linear(width, width).to(device=settings.device, dtype=dtype)
        with torch.no_grad():
            init(lin.weight)
            lin.bias.zero_()
        layers.append(lin)
    return layers


def depth_to(lam: float, factor: float) -> float | None:
    """Layers until the gradient has shrunk (λ < 1) or grown (λ > 1) by ``factor``."""
    if lam <= 0 or lam == 1.0:
        return None
    return abs(math.log(factor) / math.log(lam))

"""Gradient transfer through a stack of layers, for contracts whose layers the recipe cannot build.

The per-layer transfer factor λ of 004 §3.3.1 is measured by one routine,
:mod:`gradcore.measure.transfer`: the activation, initialiser and norm contracts call its
recipe through :func:`banded_transfer` (enough networks to decide the band); :func:`transfer_factor`
here serves a contract that builds its own layers (residual blocks) with the same per-network
factor and summary.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ...measure import Measurement, transfer
from ..verdicts import within
from .base import Settings

Layer = Callable[[torch.Tensor], torch.Tensor]


def transfer_factor(build: Callable[[int], Sequence[Layer]], *, depth: int, width: int, batch: int,
                    settings: Settings, dtype: torch.dtype = torch.float64) -> dict[str, float]:
    """λ over ``settings.seeds`` networks ``build(seed)`` (mean and 95 % interval), by
    :func:`gradcore.measure.transfer.network_factor` and :func:`~gradcore.measure.transfer.summary`."""
    factors = []
    for s in range(settings.seeds):
        torch.manual_seed(settings.seed + 1000 + s)
        layers = build(s)
        x = settings.randn(batch, width, offset=2000 + s, dtype=dtype)
        r = settings.randn(batch, width, offset=3000 + s, dtype=dtype)
        factors.append(transfer.network_factor(layers, x, r)[0])
    m = transfer.summary(factors, dtype=str(dtype), device=settings.device,
                         sizes={"depth": depth, "width": width, "batch": batch, "seeds": settings.seeds})
    return {"lambda": m.value, "lambda_lo": m.interval[0], "lambda_hi": m.interval[1]}


SEEDS = (10, 40)   # networks per λ estimate: 10 first, 40 when 10 leave the decision open


def banded_transfer(band: tuple[float, float], **arguments: object) -> Measurement:
    """The recipe's λ with enough networks to decide whether it lies in ``band``.

    λ's spread over networks depends on the technique (GELU at He init: σ ≈ 0.055 per network,
    so 10 networks straddle 0.9); an undecided interval is measured again with the larger
    sample. The seeds used are in the Measurement's sizes and its reproduction.
    """
    m = transfer.transfer_factor(seeds=SEEDS[0], **arguments)
    if within(m.interval, *band) is None:
        m = transfer.transfer_factor(seeds=SEEDS[-1], **arguments)
    return m


def depth_to(lam: float, factor: float) -> float | None:
    """Layers until the gradient has shrunk (λ < 1) or grown (λ > 1) by ``factor``."""
    if lam <= 0 or lam == 1.0 or not math.isfinite(lam):
        return None
    return abs(math.log(factor) / math.log(lam))

"""The per-layer transfer factor λ for the kind contracts, decided with enough networks.

λ of 004 §3.3.1 is measured by one routine, :mod:`gradcore.measure.transfer`: the activation,
initialiser and norm contracts call its recipe through :func:`banded_transfer`; the residual
contract's user-stack recipe (:mod:`gradcore.measure.residual`) uses the same per-network
factor and summary.
"""
from __future__ import annotations

import math
from collections.abc import Callable

from ...measure import Measurement, transfer
from ..verdicts import within

SEEDS = (10, 40)   # networks per λ estimate: 10 first, 40 when 10 leave the decision open


def sequential(measure: Callable[[int], Measurement], decide: Callable[[Measurement], bool | None],
               sizes: tuple[int, ...]) -> Measurement:
    """``measure(n)`` at each draw count of ``sizes`` in turn, stopping at the first whose interval
    decides (``decide`` is not None); the last size is the cap. The n used is in the result's sizes."""
    for n in sizes:
        m = measure(n)
        if decide(m) is not None:
            break
    return m


def banded_transfer(band: tuple[float, float], **arguments: object) -> Measurement:
    """The recipe's λ with enough networks to decide whether it lies in ``band``.

    λ's spread over networks depends on the technique (GELU at He init: σ ≈ 0.055 per network,
    so 10 networks straddle 0.9); an undecided interval is measured again with the larger
    sample. The seeds used are in the Measurement's sizes and its reproduction.
    """
    return sequential(lambda n: transfer.transfer_factor(seeds=n, **arguments),
                      lambda m: within(m.interval, *band), SEEDS)


def undecided_note(m: Measurement, what: str) -> str:
    """Why a clause is undecided: its interval still straddles ``what`` at the draw cap (networks or inputs)."""
    lo, hi = m.interval
    return (f"could not be decided: the 95% interval [{lo:.4f}, {hi:.4f}] still straddles {what} with "
            f"{m.sizes['seeds']} draws (cap {SEEDS[-1]})")


def depth_to(lam: float, factor: float) -> float | None:
    """Layers until the gradient has shrunk (λ < 1) or grown (λ > 1) by ``factor``."""
    if lam <= 0 or lam == 1.0 or not math.isfinite(lam):
        return None
    return abs(math.log(factor) / math.log(lam))

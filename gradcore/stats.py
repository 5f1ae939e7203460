"""Estimates with 95 % confidence intervals, shared by statistical theorems and contracts.

Claims about random networks are decided from an interval, never from one sample
(see :meth:`gradcore.verify.record.ClaimRecorder.check` with ``interval=``).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from . import _validate as v

Z95 = 1.959963984540054


def mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95 % normal interval mean ± z·SE (zero width for one value)."""
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        v.fail("values", "expected at least one value")
    if not np.isfinite(a).all():
        v.fail("values", "contains NaN or infinite values")
    half = Z95 * a.std(ddof=1) / math.sqrt(a.size) if a.size > 1 else 0.0
    return float(a.mean()), float(a.mean() - half), float(a.mean() + half)


def slope_ci(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares slope of y on x with its 95 % normal interval (needs ≥ 3 points)."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xa.shape != ya.shape or xa.ndim != 1:
        v.fail("y", f"shape {ya.shape} does not match x shape {xa.shape}")
    if xa.size < 3:
        v.fail("x", f"expected at least 3 points, got {xa.size}")
    if not (np.isfinite(xa).all() and np.isfinite(ya).all()):
        v.fail("y", "contains NaN or infinite values")
    xc = xa - xa.mean()
    sxx = float((xc ** 2).sum())
    if sxx == 0:
        v.fail("x", "all x values are equal")
    slope = float((xc * (ya - ya.mean())).sum() / sxx)
    resid = ya - ya.mean() - slope * xc
    half = Z95 * math.sqrt(float((resid ** 2).sum()) / (xa.size - 2) / sxx)
    return slope, slope - half, slope + half


def loglog_exponent(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """Exponent p of y ∝ x^p fitted on log–log axes, with its 95 % interval."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if (xa <= 0).any() or (ya <= 0).any():
        v.fail("y", "a power law needs positive x and y")
    return slope_ci(np.log(xa), np.log(ya))


def per_seed_slope_ci(x: Sequence[float], ys: Sequence[Sequence[float]], *, log_y: bool = True
                      ) -> tuple[float, float, float]:
    """Mean over seeds of each seed's slope of (log) y on x, with the 95 % interval across seeds."""
    slopes = [np.polyfit(np.asarray(x, float), np.log(np.asarray(y, float)) if log_y else np.asarray(y, float), 1)[0]
              for y in ys]
    return mean_ci(slopes)

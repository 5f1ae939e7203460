"""Estimates with 95 % confidence intervals, shared by statistical theorems and contracts.

Claims about random networks are decided from an interval, never from one sample
(see :meth:`gradcore.verify.record.ClaimRecorder.check` with ``interval=``). Intervals
of means and slopes use Student's t with the residual degrees of freedom, so that 3
seeds cover 95 % and not the ~81 % of mean ± 1.96·SE (``tests/test_stats.py``
simulates the coverage); proportions use Wilson's score interval.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import special as _special   # scipy.stats's own quantile functions, without its 1 s import

from . import _validate as v

LEVEL = 0.95
Z95 = float(_special.ndtri(0.5 + LEVEL / 2))
MEAN_METHOD = "Student-t 95% interval of the mean"
SLOPE_METHOD = "Student-t 95% interval of the least-squares slope"
PER_SEED_SLOPES = f"{MEAN_METHOD} of per-seed least-squares slopes"
PER_SEED_LOGLOG_SLOPES = f"{MEAN_METHOD} of per-seed log-log slopes"


def t_quantile(df: int) -> float:
    """The two-sided 95 % quantile of Student's t with ``df`` ≥ 1 degrees of freedom."""
    return float(_special.stdtrit(v.integer(df, "df", minimum=1), 0.5 + LEVEL / 2))


def mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and its 95 % Student-t interval mean ± t_{n−1}·SE (needs ≥ 2 values)."""
    a = v.reals(values, "values")
    if a.ndim != 1 or a.size < 2:
        v.fail("values", f"an interval needs at least 2 values, got {a.size}")
    if not np.isfinite(a).all():
        v.fail("values", "contains NaN or infinite values")
    with np.errstate(over="ignore", invalid="ignore"):
        half = t_quantile(a.size - 1) * a.std(ddof=1) / math.sqrt(a.size)
        out = float(a.mean()), float(a.mean() - half), float(a.mean() + half)
    return out if all(map(math.isfinite, out)) else _scaled_mean_ci(a)


def _scaled_mean_ci(a: np.ndarray) -> tuple[float, float, float]:
    """mean_ci of values near the float64 limit: (a/s) then × s, s = max|a| (a² overflowed);
    an error when the interval itself lies beyond ±1.8e308."""
    s = float(np.abs(a).max())
    u = a / s
    mean, half = u.mean(), t_quantile(a.size - 1) * u.std(ddof=1) / math.sqrt(a.size)
    with np.errstate(over="ignore"):
        out = float(s * mean), float(s * (mean - half)), float(s * (mean + half))
    if not all(map(math.isfinite, out)):
        v.fail("values", f"the 95% interval overflows float64 (mean {out[0]:.3g}, half-width "
                         f"{half:.3g} × {s:.3g}); rescale the values")
    return out


def proportion_ci(successes: int, n: int) -> tuple[float, float, float]:
    """A proportion and its 95 % Wilson score interval (sound near 0 and 1, unlike p ± z·SE)."""
    v.integer(n, "n", minimum=1)
    v.integer(successes, "successes", minimum=0)
    if successes > n:
        v.fail("successes", f"{successes} exceeds n = {n}")
    p, z2 = successes / n, Z95 ** 2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return p, max(0.0, centre - half), min(1.0, centre + half)


def slope_ci(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares slope of y on x with its 95 % Student-t interval (n − 2 dof; needs ≥ 3 points)."""
    xa, ya = v.reals(x, "x"), v.reals(y, "y")
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
    with np.errstate(over="ignore", invalid="ignore"):
        slope = float((xc * (ya - ya.mean())).sum() / sxx)
        resid = ya - ya.mean() - slope * xc
        half = t_quantile(xa.size - 2) * math.sqrt(float((resid ** 2).sum()) / (xa.size - 2) / sxx)
    if not (math.isfinite(sxx) and math.isfinite(slope) and math.isfinite(half)):
        v.fail("y", "the least-squares fit overflows float64 (values near ±1e154 or beyond); rescale x and y")
    return slope, slope - half, slope + half


def loglog_exponent(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """Exponent p of y ∝ x^p fitted on log–log axes, with its 95 % interval."""
    xa, ya = v.reals(x, "x"), v.reals(y, "y")
    if (xa <= 0).any() or (ya <= 0).any():
        v.fail("y", "a power law needs positive x and y")
    return slope_ci(np.log(xa), np.log(ya))


def per_seed_slope_ci(x: Sequence[float], ys: Sequence[Sequence[float]], *, log_x: bool = False,
                      log_y: bool = True) -> tuple[float, float, float]:
    """Mean over seeds of each seed's slope of (log) y on (log) x, with the 95 % interval across seeds."""
    xs = v.reals(x, "x")
    if xs.ndim != 1 or np.unique(xs).size < 2 or not np.isfinite(xs).all():
        v.fail("x", f"a slope needs at least 2 distinct x values, all finite, got {xs.tolist()}")
    if any(np.shape(y) != xs.shape for y in ys):
        v.fail("ys", f"every seed needs one y per x ({xs.size})")
    ys = [v.reals(y, f"ys[{i}]") for i, y in enumerate(ys)]
    if log_y and any((y <= 0).any() for y in ys):
        v.fail("ys", "a log axis needs positive y")
    if log_x:
        if (xs <= 0).any():
            v.fail("x", "a log axis needs positive x")
        xs = np.log(xs)
    slopes = [np.polyfit(xs, np.log(y) if log_y else y, 1)[0] for y in ys]
    return mean_ci(slopes)

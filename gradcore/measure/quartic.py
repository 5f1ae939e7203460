"""Gradient descent on f(x) = x⁴, with and without gradient-norm clipping (LIT-12).

Zhang, He, Sra & Jadbabaie 2020: f(x) = x⁴ is not L-smooth (f'' = 12x² grows with |x|), so
GD with a fixed step η diverges from far enough away — x ← x(1 − 4ηx²) grows in |x| once
|x₀| > 1/√(2η) — while clipped GD, whose step length is at most ηc, converges from anywhere.
Clipping is gradcore.clipping.clip_by_norm.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from .. import clipping
from . import optimisers
from .measurement import Kind, Measurement, recipe


def _run(x0: float, eta: float, steps: int, clip: float | None) -> float:
    """|x| after ``steps`` steps of (clipped) GD on x⁴ from x₀; inf once it overflows."""
    if clip is None:   # plain floats: the same float64 arithmetic, without per-step tensor overhead
        x = x0
        for _ in range(steps):
            x -= eta * 4 * x ** 3
            if abs(x) > 1e100:   # x³ would overflow a float next
                return math.inf
        return abs(x)
    x = torch.tensor([x0], dtype=torch.float64)
    for _ in range(steps):
        g = 4 * x ** 3
        x = x - eta * clipping.clip_by_norm(g, clip)
        if not bool(torch.isfinite(x).all()) or abs(float(x)) > 1e100:
            return math.inf
    return abs(float(x))


def _diverges(x0: float, eta: float, steps: int) -> bool:
    return _run(x0, eta, steps, None) > x0


@recipe
def gd_divergence_threshold(*, eta: float = 0.01, steps: int = 2000, iterations: int = 50) -> Measurement:
    """LIT-12: the |x₀| beyond which fixed-step GD on x⁴ ends farther out than it started.

    Bisection between 0 (converges) and 10/√η (diverges) on "|x_steps| > |x₀|". Near the
    threshold the multiplier |1 − 4ηx²| is 1 ± O(δ), so ``steps`` resolves it to ~1/(4·steps).
    """
    lo, hi = 0.0, 10 / math.sqrt(eta)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if _diverges(mid, eta, steps) else (mid, hi)
    # resolution ~ 1/(4·steps) relative, far above rounding: conditioning set to that (≈ 1e9 ulp)
    return Measurement(0.5 * (lo + hi), Kind.NUMERIC, "float64", "cpu", {"steps": steps, "η": eta},
                       conditioning=1e9)


def _run_optimiser(x0: float, optimiser: Any, steps: int) -> float:
    """|x| after ``steps`` steps of a user's optimiser on x⁴ from x₀ (gradient 4x³); inf once it overflows."""
    p = torch.nn.Parameter(torch.tensor([x0], dtype=torch.float64))
    opt = optimisers.build(optimiser, [p])
    for _ in range(steps):
        x = optimisers.stepped(opt, p, 4 * p.detach() ** 3)
        if not bool(torch.isfinite(x).all()) or abs(float(x)) > 1e100:
            return math.inf
    return abs(float(p.detach()))


@recipe
def final_distance(*, x0: float = 100.0, eta: float = 0.01, steps: int = 2000, clip: float = 10.0,
                   optimiser: Any = None) -> Measurement:
    """LIT-12: |x| after ``steps`` GD steps on x⁴ from x₀ (``clip`` > 0: gradient-norm clipping at clip;
    ``optimiser``: that many of a user's optimiser's steps instead, η and clip unused)."""
    value = _run(x0, eta, steps, clip if clip > 0 else None) if optimiser is None else \
        _run_optimiser(x0, optimiser, steps)
    # a long deterministic iteration; values agree across platforms to ~steps ulp
    return Measurement(value, Kind.NUMERIC, "float64", "cpu", {"steps": steps, "η": eta},
                       conditioning=float(steps))

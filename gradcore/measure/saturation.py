"""Saturation of an activation: where its gradient (or output) saturates and how much of the input does.

004 §3.3.1 defines the gradient saturation region S = {x : |f'(x)| < ε} (Def. 3.3.2,
Theorem 3.3.1) and output saturation as f(x) near an asymptote (Def. 3.3.1, the depth
d_σ). SAT-01..06, ACT-02/06/07 and the activation contract's saturation clause measure
through these recipes. The activation is a registry name or a :class:`~gradcore.measure.Given`
user object, as in :mod:`gradcore.measure.derivative`.
"""
from __future__ import annotations

import math
from typing import Any

import mpmath
import numpy as np
import sympy as sp
import torch

from ..errors import InputError
from .candidates import grid
from .derivative import DPS, RANGE, X, derivative, expr_of, fn_of, memo, mp_eval, roots, slope, tail, torch_dtype
from .measurement import Kind, Measurement, recipe
from .profiles import hypothesis_overrides, pinned_generation
from .search import maximize

SIDES = ("left", "right")


# --- the edge of a saturated tail --------------------------------------------------------

@recipe
def saturation_edge(*, activation: Any, epsilon: float = 0.01, side: str = "right", of: str = "gradient",
                    method: str = "grid", lo: float = -RANGE, hi: float = RANGE, points: int = 8001,
                    dtype: str = "float64", device: str = "cpu") -> Measurement:
    """SAT-02/03/05, ACT-02, contract saturation: where the ``side`` tail's saturation begins.

    ``of="gradient"``: the region {|f'| < ε}; ``of="output"``: {|f − a| < ε}, a = lim f at
    that side. NaN when that tail is not saturated at the end of [lo, hi].
    ``method="grid"`` (gradient only): the innermost point of the saturated tail on a
    ``points``-point grid of [lo, hi] rounded to ``dtype`` and evaluated there (with ε the
    dtype's smallest subnormal this is where f' becomes exactly 0). ``method="sympy"``:
    the outermost root of (f'² − ε²) (or ((f − a)² − ε²)) at 30 digits.
    """
    if side not in SIDES or of not in ("gradient", "output"):
        raise InputError("saturation_edge: side must be 'left' or 'right', of 'gradient' or 'output'")
    sizes = {"epsilon": epsilon, "domain": [lo, hi]}
    if method == "sympy":
        value = _symbolic_edge(activation, float(epsilon), side, of, lo, hi)
        return Measurement(value, Kind.NUMERIC, torch.float64, device, sizes, method="mpmath.findroot, 30 digits")
    if method != "grid" or of != "gradient":
        raise InputError("saturation_edge: method 'grid' (gradient only) or 'sympy'")
    xs, d = _slope_grid(activation, lo, hi, points, dtype, device)
    return Measurement(_tail_edge(d < epsilon, xs, side), Kind.NUMERIC, dtype, device,
                       {**sizes, "grid points": points}, method="grid")


@memo
def _slope_grid(activation: Any, lo: float, hi: float, points: int, dtype: str,
                device: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, |f'(x)|) on a grid rounded to ``dtype`` (distinct points only), |f'| in float64, +inf where non-finite."""
    dt = torch_dtype(dtype)
    xs = torch.linspace(lo, hi, points, dtype=torch.float64, device=device).to(dt).unique()
    return xs.double().cpu().numpy(), slope(fn_of(activation, device, dt), xs, absolute=True).cpu().numpy()


def _tail_edge(sat: np.ndarray, xs: np.ndarray, side: str) -> float:
    """The innermost grid point of the saturated ``side`` tail (NaN when that tail is not saturated)."""
    seq, pts = (sat, xs) if side == "left" else (sat[::-1], xs[::-1])
    if not seq[0]:
        return math.nan
    unsat = np.flatnonzero(~seq)
    return float(pts[-1] if unsat.size == 0 else pts[unsat[0] - 1])


@memo
def _symbolic_edge(activation: Any, epsilon: float, side: str, of: str, lo: float, hi: float) -> float:
    expr = expr_of(activation)
    sign = -1 if side == "left" else 1
    if of == "gradient":
        gap = sp.diff(expr, X)
    else:
        asymptote, _ = tail(expr, sp.lambdify(X, expr, "mpmath"), sign)
        gap = expr - asymptote
    eps = sp.nsimplify(epsilon, rational=True)
    g = gap ** 2 - eps ** 2
    with mpmath.workdps(DPS):
        end = mp_eval(sp.lambdify(X, g, "mpmath"), hi if side == "right" else lo)
        if end is None or end >= 0:   # the tail is not saturated at the end of the domain
            return math.nan
        found = roots(g, lo, hi)
    if not found:
        return lo if side == "left" else hi
    return float(min(found) if side == "left" else max(found))


# --- how much of the input saturates -----------------------------------------------------

@recipe
def derivative_share(*, activation: Any, center: float = 0.0, radius: float = 0.01, inclusive: bool = False,
                     weight: str = "uniform", lo: float = -RANGE, hi: float = RANGE, points: int = 8001,
                     device: str = "cpu") -> Measurement:
    """ACT-06, contract saturation: the share of [lo, hi] (``weight="uniform"``) or of N(0, 1)
    restricted to it (``weight="normal"``) where |f'(x) − center| < radius (≤ when ``inclusive``),
    on a ``points``-point float64 grid. With center 0, radius ε it is the saturated share."""
    xs = torch.linspace(lo, hi, points, dtype=torch.float64, device=device)
    d = derivative(fn_of(activation, device, torch.float64), xs).double()
    dist = (d - center).abs()
    inside = (dist <= radius) if inclusive else (dist < radius)
    if weight == "uniform":
        w = torch.ones_like(xs)
    elif weight == "normal":
        w = torch.exp(-xs ** 2 / 2)
    else:
        raise InputError(f"weight: expected 'uniform' or 'normal', got {weight!r}")
    share = float((w * inside).sum() / w.sum())
    return Measurement(share, Kind.NUMERIC, torch.float64, device, {"domain": [lo, hi], "grid points": points},
                       method=f"{weight}-weighted grid")


@recipe
def sampled_derivative_share(*, activation: Any, center: float = 0.0, radius: float = 0.0, inclusive: bool = True,
                             samples: int = 400000, seed: int = 0, device: str = "cpu") -> Measurement:
    """ACT-07: the share of z ~ N(0, 1) with |f'(z) − center| ≤ radius (< unless ``inclusive``),
    from ``samples`` seeded draws, with its Wilson interval."""
    from ..stats import proportion_ci

    g = torch.Generator(device="cpu").manual_seed(seed)
    z = torch.randn(samples, generator=g, dtype=torch.float64).to(device)
    dist = (derivative(fn_of(activation, device, torch.float64), z) - center).abs()
    hits = int(((dist <= radius) if inclusive else (dist < radius)).sum())
    p, lo, hi = proportion_ci(hits, samples)
    return Measurement(p, Kind.STATISTICAL, torch.float64, device, {"samples": samples, "seed": seed},
                       interval=(lo, hi), method="Wilson 95% interval of a proportion", n=samples)


@recipe
def level_crossings(*, activation: Any, level: float, lo: float = -RANGE, hi: float = RANGE,
                    points: int = 80001, device: str = "cpu") -> Measurement:
    """SAT-02: how many x solve f'(x) = level: sign changes of f' − level on a float64 grid."""
    return Measurement(crossings(activation, level, lo, hi, points, device), Kind.NUMERIC, torch.float64, device,
                       {"domain": [lo, hi], "grid points": points}, method="sign changes on a grid")


def crossings(activation: Any, level: float, lo: float = -RANGE, hi: float = RANGE, points: int = 80001,
              device: str = "cpu") -> int:
    """The count :func:`level_crossings` records (plain, for searches that call it many times)."""
    d = _derivative_grid(activation, lo, hi, points, device) - level
    s = np.sign(d)
    return int(np.sum(s == 0) + np.sum(s[:-1] * s[1:] < 0))


@memo
def _derivative_grid(activation: Any, lo: float, hi: float, points: int, device: str) -> np.ndarray:
    xs = torch.linspace(lo, hi, points, dtype=torch.float64, device=device)
    return derivative(fn_of(activation, device, torch.float64), xs).cpu().numpy()


# --- output saturation ------------------------------------------------------------------

@memo
def _asymptotes(activation: Any) -> tuple[sp.Expr, ...]:
    """The finite limits of f at -∞ and +∞ (from the sympy form)."""
    expr = expr_of(activation)
    f = sp.lambdify(X, expr, "mpmath")
    with mpmath.workdps(DPS):
        limits = [tail(expr, f, side) for side in (-1, 1)]
    found = tuple(v for v, exact in limits if exact and v.is_finite)
    if not found:
        raise InputError(f"activation: f = {expr} has no finite asymptote")
    return found


@recipe
def output_distance(*, activation: Any, x: float) -> Measurement:
    """SAT-04: d(x) = distance of f(x) from its nearer asymptote (d_σ = min(σ, 1 − σ)), exactly at 30 digits."""
    expr = expr_of(activation)
    point = sp.nsimplify(x, rational=True)
    value = min(sp.N(sp.Abs(expr.subs(X, point) - a), DPS) for a in _asymptotes(activation))
    return Measurement(float(value), Kind.NUMERIC, torch.float64, method="sympy, 30 digits")


@recipe
def output_distance_sup(*, activation: Any, beyond: float = 4.0, to: float = RANGE, points: int = 10001,
                        profile: str = "ci", device: str = "cpu") -> Measurement:
    """SAT-04: sup of d(x) over beyond ≤ |x| ≤ to by search (float64 grids on both sides, their
    ends and a Hypothesis search): a lower bound on the sup."""
    from hypothesis import strategies as st

    fn = fn_of(activation, device, torch.float64)
    asym = [float(a) for a in _asymptotes(activation)]

    def distance(xs: list[float]) -> list[float]:
        y = fn(torch.tensor(xs, dtype=torch.float64, device=device))
        return torch.stack([(y - a).abs() for a in asym]).min(dim=0).values.cpu().tolist()

    candidates = grid(beyond, to, points) + grid(-to, -beyond, points)
    table = dict(zip((x for _, x in candidates), distance([x for _, x in candidates])))
    with pinned_generation(profile):
        found = maximize(st.one_of(st.floats(beyond, to), st.floats(-to, -beyond)),
                         lambda x: table[x] if x in table else distance([x])[0], candidates=candidates,
                         **hypothesis_overrides(profile))
    return found.bound(dtype=torch.float64, device=device,
                       sizes={"domain": f"{beyond} ≤ |x| ≤ {to}", "grid points": 2 * points, "profile": profile})

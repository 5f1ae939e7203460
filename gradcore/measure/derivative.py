"""Derivatives of an activation: f'(x) at a point, sup/inf of f' or |f'|, identities, roots.

ACT-01..07, SAT-01 and the activation contract (``gradcore check``) measure through
these recipes. The activation is a registry name (``gradcore.activations.get``) or, in a
contract, the user's object passed as :class:`~gradcore.measure.Given` (a callable, an
``nn.Module`` class or instance, or an object with ``fn`` and an optional ``sympy`` form).

f' is torch's autograd. An extremum of f' is measured two ways: ``method="sympy"`` from
the exact form (critical points at 30 digits, tails by limits; EXACT when the winner is
identified exactly and its value is exactly representable, NUMERIC otherwise), and
``method="search"`` always (a dense grid, the domain ends, a Hypothesis search and a zoom
around the best point; a SEARCH bound, since a search only bounds a supremum from below).
A non-finite f or f' anywhere in the probed domain counts as |f'| = +inf: explosion,
never 0.
"""
from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Hashable
from typing import Any

import mpmath
import numpy as np
import sympy as sp
import torch
from torch import nn

from ..errors import CheckError, InputError
from .candidates import grid
from .measurement import Kind, Measurement, recipe
from .profiles import hypothesis_overrides, pinned_generation
from .search import Found, maximize, minimize

X = sp.Symbol("x", real=True)
DPS = 30                                # working digits of every symbolic evaluation
RANGE = 40.0                            # the probed domain [-RANGE, RANGE] of f'
TAILS = (-1e6, -1e3, 1e3, 1e6)          # far points beyond the grid: ℝ's "ends"
SYMBOLIC_POINTS = 2001                  # grid on which sign changes bracket critical points
Fn = Callable[[torch.Tensor], torch.Tensor]


# --- the activation ----------------------------------------------------------------------

def callable_of(obj: Any) -> Fn:
    """The tensor function of a registry name, an Activation, an nn.Module class/instance or a callable."""
    if isinstance(obj, str):
        from .. import activations

        return activations.get(obj).fn
    if hasattr(obj, "fn") and callable(obj.fn):   # gradcore.activations.Activation and look-alikes
        return obj.fn
    if inspect.isclass(obj) and issubclass(obj, nn.Module):
        try:
            return obj()
        except TypeError as e:
            raise CheckError(f"cannot instantiate {obj.__name__}() without arguments: {e}") from None
    if not callable(obj):
        raise CheckError(f"{type(obj).__name__} object is not callable")
    return obj


def sympy_form(obj: Any) -> sp.Expr | None:
    """f(x) in the real symbol :data:`X`, from the object's ``sympy`` form (None when it has none)."""
    if isinstance(obj, str):
        from .. import activations

        obj = activations.get(obj)
    form = getattr(obj, "sympy", None)
    if form is None:
        return None
    expr = form(X) if callable(form) else sp.sympify(form)
    free = expr.free_symbols
    if len(free) > 1:
        raise CheckError(f"sympy form {expr} has more than one free symbol")
    return as_piecewise(expr.subs(next(iter(free)), X) if free else sp.sympify(expr))


PIECEWISE = (sp.Abs, sp.Heaviside, sp.sign, sp.Max, sp.Min)


def as_piecewise(expr: sp.Expr) -> sp.Expr:
    """A form written with Abs, Heaviside, sign, Max or Min rewritten as one Piecewise: their
    derivatives are sign and DiracDelta terms the symbolic extremum cannot evaluate, while a
    Piecewise is differentiated piece by piece. Other forms are returned unchanged."""
    if not expr.has(*PIECEWISE):
        return expr
    return sp.piecewise_fold(expr.rewrite(sp.Piecewise))


def fn_of(activation: Any, device: str, dtype: torch.dtype) -> Fn:
    fn = callable_of(activation)
    if isinstance(fn, nn.Module):
        fn = fn.to(device=device, dtype=dtype)
    return fn


def expr_of(activation: Any) -> sp.Expr:
    expr = sympy_form(activation)
    if expr is None:
        raise InputError(f"activation: {activation!r} has no sympy form")
    return expr


def derivative(fn: Fn, x: torch.Tensor) -> torch.Tensor:
    """f'(x) elementwise by autograd (f is elementwise, so the VJP with ones is f').

    A function whose output does not depend on its input (a constant) has f' = 0, which
    autograd reports as "does not require grad"; it is measured as 0, not as an error.
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        y = fn(x)
    if not isinstance(y, torch.Tensor) or not y.requires_grad:
        return torch.zeros_like(x.detach())
    (g,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
    return torch.zeros_like(x.detach()) if g is None else g.detach()


def slope(fn: Fn, x: torch.Tensor, absolute: bool) -> torch.Tensor:
    """f' (or |f'|) in float64, +inf wherever f or f' is not finite (explosion, never 0)."""
    with torch.enable_grad():
        d = derivative(fn, x)
    y = fn(x.detach())
    d = (d.abs() if absolute else d).double()
    bad = ~torch.isfinite(d) | ~torch.isfinite(y.detach()).reshape(d.shape)
    return torch.where(bad, torch.full_like(d, math.inf), d)


def torch_dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise InputError(f"dtype: unknown torch dtype {name!r}")
    return dtype


def memo(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``functools.lru_cache`` that computes uncached when an argument (a user's object) is unhashable."""
    cached = functools.lru_cache(maxsize=256)(fn)

    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        if all(isinstance(a, Hashable) for a in args):
            try:
                return cached(*args)
            except TypeError:   # hashable by type, unhashable by content (e.g. a tuple of lists)
                pass
        return fn(*args)

    return call


# --- f' at points ------------------------------------------------------------------------

@recipe
def derivative_at(*, activation: Any, x: float, dtype: str = "float64", device: str = "cpu") -> Measurement:
    """ACT-02/04/07, SAT-02/03/05/06: f'(x) by autograd in ``dtype`` (x rounded to ``dtype`` first)."""
    dt = torch_dtype(dtype)
    t = torch.tensor([x], dtype=torch.float64, device=device).to(dt)
    value = float(derivative(fn_of(activation, device, dt), t)[0])
    return Measurement(value, Kind.NUMERIC, dt, device, {"x": float(t[0])})


def curve(activation: Any, lo: float, hi: float, points: int, device: str = "cpu") -> tuple[list[float], list[float]]:
    """(x, f'(x)) on a float64 grid, for a figure."""
    xs = torch.linspace(lo, hi, points, dtype=torch.float64, device=device)
    return xs.cpu().tolist(), derivative(fn_of(activation, device, torch.float64), xs).cpu().tolist()


# --- sup / inf of f' or |f'| -----------------------------------------------------------

@recipe
def derivative_extremum(*, activation: Any, extremum: str = "sup", absolute: bool = True,
                        method: str = "search", quantity: str = "value", lo: float = -RANGE, hi: float = RANGE,
                        points: int = 40001, spacing: str = "linear", ends: tuple[float, ...] = TAILS,
                        profile: str = "ci", dtype: str = "float64", device: str = "cpu") -> Measurement:
    """ACT-01/02/03/04/06, contract derivative-bound: sup or inf over x of |f'(x)| (or f'(x)).

    ``quantity="argmax"`` gives where it is attained (±inf for a limit at a tail).
    ``method="sympy"`` works on ℝ from the sympy form: f' at every root of f'' in [lo, hi]
    (and of f' itself when ``absolute``, where |f'| = 0) found at 30 digits, and f''s limits
    at ±∞. ``method="search"`` scores a ``points``-point ``spacing`` grid of [lo, hi], the
    ``ends`` beyond it, a Hypothesis search under ``profile`` and a zoom around the best
    point, all in ``dtype``: a lower bound on a sup (upper on an inf), never the sup itself.
    """
    if extremum not in ("sup", "inf") or quantity not in ("value", "argmax"):
        raise InputError("derivative_extremum: extremum must be 'sup' or 'inf', quantity 'value' or 'argmax'")
    if method == "sympy":
        value, at, value_exact, at_exact = _symbolic_extremum(activation, extremum, absolute, lo, hi)
        sizes = {"domain": "ℝ", "critical-point grid": [lo, hi, SYMBOLIC_POINTS], "digits": DPS}
        v, exact = (value, value_exact) if quantity == "value" else (at, at_exact)
        return Measurement(v, Kind.EXACT if exact else Kind.NUMERIC, torch.float64, device, sizes,
                           method="sympy")
    if method != "search":
        raise InputError(f"derivative_extremum: method must be 'sympy' or 'search', got {method!r}")
    found = _searched_extremum(activation, extremum, absolute, lo, hi, points, spacing, tuple(ends), profile,
                               dtype, device)
    sizes = {"domain": [lo, hi], "grid points": points, "spacing": spacing, "profile": profile}
    if quantity == "argmax":
        return Measurement(found.example, Kind.NUMERIC, dtype, device, sizes, witness=found.source)
    return found.bound(dtype=dtype, device=device, sizes=sizes, direction="lower" if extremum == "sup" else "upper")


def _grid(lo: float, hi: float, points: int, spacing: str) -> list[tuple[str, float]]:
    if spacing == "linear":
        return grid(lo, hi, points)
    if spacing == "log" and 0 < lo < hi:
        return [(f"log-grid x = {x:.6g}", float(x)) for x in np.geomspace(lo, hi, points)]
    raise InputError(f"spacing: 'linear', or 'log' with 0 < lo < hi; got {spacing!r} on [{lo}, {hi}]")


@memo
def _searched_extremum(activation: Any, extremum: str, absolute: bool, lo: float, hi: float, points: int,
                       spacing: str, ends: tuple[float, ...], profile: str, dtype: str, device: str) -> Any:
    from hypothesis import strategies as st

    dt = torch_dtype(dtype)
    fn = fn_of(activation, device, dt)

    def batch(xs: list[float]) -> list[float]:
        t = torch.tensor(xs, dtype=torch.float64, device=device).to(dt)
        return slope(fn, t, absolute).cpu().tolist()

    candidates = _grid(lo, hi, points, spacing) + [(f"domain end x = {e:g}", float(e)) for e in ends]
    # f' of every candidate in one vectorised call; the search scores the rest one by one.
    table = dict(zip((x for _, x in candidates), batch([x for _, x in candidates])))

    def objective(x: float) -> float:
        return table[x] if x in table else batch([x])[0]

    search = maximize if extremum == "sup" else minimize
    with pinned_generation(profile):
        found = search(st.floats(lo, hi, allow_nan=False, allow_infinity=False), objective,
                       candidates=candidates, **hypothesis_overrides(profile))
    if spacing == "linear" and math.isfinite(found.value):
        found = _zoom(found, batch, (hi - lo) / max(points - 1, 1), extremum)
    x = float(torch.tensor(found.example, dtype=torch.float64).to(dt))  # the point as evaluated
    return Found(x, found.value, found.source)


def _zoom(found: Any, batch: Callable[[list[float]], list[float]], step: float, extremum: str) -> Any:
    """Refine the best point on ever finer local grids (a grid alone is off by ~step² at a smooth peak)."""
    better = (lambda a, b: a > b) if extremum == "sup" else (lambda a, b: a < b)
    for _ in range(3):
        local = np.linspace(found.example - step, found.example + step, 2001).tolist()
        values = batch(local)
        j = int(np.argmax(values) if extremum == "sup" else np.argmin(values))
        if better(values[j], found.value):
            found = Found(local[j], values[j], found.source if found.source.startswith("zoom") else
                          f"zoom around {found.source}")
        step /= 1000
    return found


@memo
def _symbolic_extremum(activation: Any, extremum: str, absolute: bool, lo: float,
                       hi: float) -> tuple[float, float, bool, bool]:
    """(value, where, value exact?, where exact?) of the extremum of f' (or |f'|) over ℝ."""
    d1, cands = _candidates(activation, absolute, lo, hi)
    key = (lambda v: abs(v)) if absolute else (lambda v: v)
    pick = max if extremum == "sup" else min
    value, at, how = pick(cands, key=lambda c: _real(key(c[0])))
    if how is None:
        return float(key(value)), at, False, False
    if how == "limit":
        return _float(key(value)), at, _representable(key(value)), True
    point = _identify(*how)   # a root: identify it exactly, if it is a simple number
    if point is None:
        return float(key(value)), at, False, False
    value = sp.simplify(d1.subs(X, point))
    return _float(key(value)), float(point), _representable(key(value)), _representable(point)


@memo
def _candidates(activation: Any, absolute: bool, lo: float, hi: float) -> tuple[sp.Expr, list[tuple[Any, float, Any]]]:
    """f' and every candidate extremum of it: (value, where, how) for the two tails and each
    root of f'' (and of f' when ``absolute``) in [lo, hi]; ``how`` is "limit", (root, g) or None."""
    d1 = sp.diff(expr_of(activation), X)
    d2 = sp.diff(d1, X)
    f1 = sp.lambdify(X, d1, "mpmath")
    cands: list[tuple[Any, float, Any]] = []
    with mpmath.workdps(DPS):
        for side in (-1, 1):
            value, exact = tail(d1, f1, side)
            if value is not None:
                cands.append((value, side * math.inf, "limit" if exact else None))
        for g in (d2, d1) if absolute else (d2,):
            for root in roots(g, lo, hi):
                value = mp_eval(f1, root)
                if value is not None:
                    cands.append((value, float(root), (root, g)))
    if not cands:
        raise InputError(f"activation: f' = {d1} could not be evaluated on [{lo}, {hi}]")
    return d1, cands


def tail(d1: sp.Expr, f1: Callable[[Any], Any], side: int) -> tuple[Any, bool]:
    """lim f'(x) as x → side·∞: (value, exact?).

    f' at ±10⁴ and ±10⁵ at 30 digits: when both agree to 25 digits with a simple rational
    (0, 1, a slope), that is the limit; otherwise ``sympy.limit`` (slow, so only then),
    and failing that the value at ±10⁵.
    """
    near, far = mp_eval(f1, side * 10 ** 4), mp_eval(f1, side * 10 ** 5)
    if near is not None and far is not None and abs(near - far) < mpmath.mpf(10) ** (5 - DPS):
        guess = sp.nsimplify(mpmath.nstr(far, DPS - 5), tolerance=10.0 ** (5 - DPS), rational=True)
        if guess.q <= 1000 and abs(mpmath.mpf(guess.p) / guess.q - far) < mpmath.mpf(10) ** (5 - DPS):
            return guess, True
    lim = _limit(d1, side)
    return (lim, True) if lim is not None else (far, False)


def _limit(d1: sp.Expr, side: int) -> sp.Expr | None:
    """lim f'(x) at x → side·∞ exactly (for a Piecewise, of the piece that holds there), else None."""
    expr = d1
    if expr.has(sp.Piecewise):
        expr = sp.piecewise_fold(expr)
        if isinstance(expr, sp.Piecewise):
            expr = next((e for e, c in expr.args if bool(c.subs(X, side * 10 ** 6))), None)
            if expr is None:
                return None
    try:
        lim = sp.limit(expr, X, side * sp.oo)
    except (NotImplementedError, ValueError, TypeError):
        return None
    return lim if lim.is_real or lim in (sp.oo, -sp.oo) else None


def roots(g: sp.Expr, lo: float, hi: float) -> list[Any]:
    """Roots of g in [lo, hi]: sign changes on a float64 grid, refined by ``mpmath.findroot`` at 30 digits."""
    grid = np.linspace(lo, hi, SYMBOLIC_POINTS)
    vals = _scan(g, grid)
    gm = sp.lambdify(X, g, "mpmath")
    out = []
    for a, b, fa, fb in zip(grid, grid[1:], vals, vals[1:]):
        if not (np.isfinite(fa) and np.isfinite(fb)) or fa * fb > 0:
            continue
        out.append(mpmath.mpf(a) if fa == 0 else mpmath.mpf(b) if fb == 0 else _refine(gm, a, b))
    return out


def _scan(g: sp.Expr, grid: np.ndarray) -> np.ndarray:
    """g on the grid in float64 (vectorised; per point at 30 digits where numpy cannot evaluate it)."""
    try:
        with np.errstate(all="ignore"):
            vals = np.broadcast_to(np.asarray(sp.lambdify(X, g, ["numpy", "scipy"])(grid), dtype=float), grid.shape)
        if np.isfinite(vals).all():
            return vals
    except Exception:   # a form numpy cannot print or evaluate: fall back to mpmath
        vals = np.full(grid.shape, np.nan)
    gm = sp.lambdify(X, g, "mpmath")
    out = vals.copy()
    for i in np.flatnonzero(~np.isfinite(vals)):
        v = mp_eval(gm, grid[i])
        out[i] = float(v) if v is not None else np.nan
    return out


def _refine(g: Callable[[Any], Any], a: float, b: float) -> Any:
    a, b = mpmath.mpf(a), mpmath.mpf(b)
    try:
        return mpmath.findroot(g, (a, b), solver="anderson")
    except (ValueError, ZeroDivisionError):
        return (a + b) / 2


def mp_eval(f: Callable[[Any], Any], t: Any) -> Any:
    try:
        out = f(mpmath.mpf(t))
        out = mpmath.mpf(out) if not isinstance(out, mpmath.mpf) else out
    except (ValueError, ZeroDivisionError, OverflowError, TypeError):
        return None
    return out if mpmath.isfinite(out) else None


def _real(v: Any) -> float:
    return float(v) if not isinstance(v, sp.Basic) or v.is_finite else (math.inf if v == sp.oo else -math.inf)


def _float(v: sp.Expr) -> float:
    if v in (sp.oo, -sp.oo):
        return math.inf if v == sp.oo else -math.inf
    return float(sp.N(v, DPS))


def _identify(root: Any, g: sp.Expr) -> sp.Expr | None:
    """The exact root of ``g`` that the 30-digit ``root`` approximates, when it is a simple number."""
    if abs(root) < mpmath.mpf(10) ** (5 - DPS):
        point = sp.Integer(0)
    else:
        point = sp.nsimplify(mpmath.nstr(root, DPS - 5), tolerance=10.0 ** (10 - DPS))
        if any(abs(r.p) > 1000 or r.q > 1000 for r in point.atoms(sp.Rational)) or sp.count_ops(point) > 6:
            return None
    return point if sp.simplify(g.subs(X, point)) == 0 else None


def _representable(v: sp.Expr) -> bool:
    """Whether the exact ``v`` is a float64 exactly (or ±inf): then the value is EXACT."""
    if v in (sp.oo, -sp.oo):
        return True
    return bool(v.is_Rational) and sp.Rational(float(v)) == v


# --- identities and roots of f' -----------------------------------------------------------

@recipe
def derivative_identity(*, activation: Any, form: str) -> Measurement:
    """ACT-02, SAT-01/06: max |f'(x) − form(x)|; 0 EXACT when sympy proves f' ≡ form.

    ``form`` is sympy source in ``x`` with ``f(·)`` (the activation) and ``df(·)`` (f'),
    e.g. ``"f(x)*(1 - f(x))"``, ``"sech(x)**2"``, ``"df(-x)"``. When sympy cannot simplify
    the residual to 0, its largest magnitude on a 30-digit grid of [-RANGE, RANGE] is
    returned (NUMERIC).
    """
    expr = expr_of(activation)
    t = sp.Dummy("t", real=True)
    d1 = sp.diff(expr, X)
    other = sp.sympify(form, locals={"x": X, "f": sp.Lambda(t, expr.subs(X, t)),
                                     "df": sp.Lambda(t, d1.subs(X, t))})
    residual = sp.simplify(d1 - other)
    if residual == 0:
        return Measurement(0.0, Kind.EXACT, torch.float64, sizes={"form": form}, method="sympy")
    r = sp.lambdify(X, residual, "mpmath")
    with mpmath.workdps(DPS):
        worst = max(abs(float(mp_eval(r, x) or 0.0)) for x in np.linspace(-RANGE, RANGE, SYMBOLIC_POINTS))
    return Measurement(worst, Kind.NUMERIC, torch.float64, sizes={"form": form}, method="sympy + 30-digit grid")


@recipe
def derivative_root(*, activation: Any, lo: float, hi: float, quantity: str = "x") -> Measurement:
    """SAT-01: the stationary point x* (f'(x*) = 0) of f in [lo, hi] at 30 digits.

    ``quantity``: ``"x"`` (x*), ``"f"`` (f(x*)) or ``"residual"`` (f'(x*), a rounding
    residual: the 30-digit root rounded to float64 leaves |f'| ≲ 1e-15).
    """
    expr = expr_of(activation)
    d1 = sp.diff(expr, X)
    with mpmath.workdps(DPS):
        found = roots(d1, lo, hi)
        d1 = sp.lambdify(X, d1, "mpmath")
        if len(found) != 1:
            raise InputError(f"derivative_root: f' has {len(found)} roots in [{lo}, {hi}], expected one")
        root = found[0]
        value = {"x": root, "f": sp.lambdify(X, expr, "mpmath")(root), "residual": d1(mpmath.mpf(float(root)))}
    if quantity not in value:
        raise InputError(f"quantity: expected 'x', 'f' or 'residual', got {quantity!r}")
    if quantity == "residual":
        return Measurement(float(value[quantity]), Kind.ROUNDING, torch.float64, bound=1e-12, method="mpmath")
    return Measurement(float(value[quantity]), Kind.NUMERIC, torch.float64, method="mpmath.findroot, 30 digits")


# --- Gaussian pre-activations ---------------------------------------------------------------

@recipe
def derivative_rms(*, activation: Any, method: str = "sympy", rows: int = 8, samples: int = 200000,
                   seed: int = 0, device: str = "cpu") -> Measurement:
    """ACT-05: √E[f'(z)²], z ~ N(0, 1): the share of gradient norm one diag(f'(z)) keeps.

    ``method="sympy"``: the integral exactly (NUMERIC: evaluated at 30 digits).
    ``method="sample"``: ‖f'(z)⊙1‖/‖1‖ for ``rows`` seeded rows of ``samples`` draws each,
    the mean over rows with its Student-t interval (STATISTICAL).
    """
    if method == "sympy":
        value = float(sp.N(sp.sqrt(_mean_square(activation)), DPS))
        return Measurement(value, Kind.NUMERIC, torch.float64, device, method="sympy integral")
    if method != "sample":
        raise InputError(f"method: expected 'sympy' or 'sample', got {method!r}")
    from ..stats import MEAN_METHOD, mean_ci

    g = torch.Generator(device="cpu").manual_seed(seed)
    z = torch.randn(rows, samples, generator=g, dtype=torch.float64).to(device)
    per_row = derivative(fn_of(activation, device, torch.float64), z).pow(2).mean(dim=1).sqrt()
    mean, lo, hi = mean_ci(per_row.cpu().tolist())
    return Measurement(mean, Kind.STATISTICAL, torch.float64, device, {"rows": rows, "samples per row": samples,
                                                                        "seed": seed},
                       interval=(lo, hi), method=MEAN_METHOD, n=rows)


@memo
def _mean_square(activation: Any) -> sp.Expr:
    """E[f'(z)²] for z ~ N(0, 1), integrated exactly on each half-line (Piecewise forms split at 0)."""
    d1 = sp.diff(expr_of(activation), X)
    phi = sp.exp(-X ** 2 / 2) / sp.sqrt(2 * sp.pi)
    pos, neg = sp.Symbol("p", positive=True), sp.Symbol("n", negative=True)
    total = sp.Integer(0)
    for s, bounds in ((pos, (0, sp.oo)), (neg, (-sp.oo, 0))):
        total += sp.integrate(sp.simplify((d1 ** 2 * phi).subs(X, s)), (s, *bounds))
    return sp.simplify(total)

"""Recipes for gradient clipping (claims CLIP-01..04; the clipping contract).

What is measured is torch's own implementation: :mod:`gradcore.clipping` runs
``torch.nn.utils.get_total_norm``/``clip_grads_with_norm_`` (norm clipping, i.e.
``clip_grad_norm_``) and ``clip_grad_value_`` on clones. A rule is named by a plain
string (``"norm"``: ``NormClip(threshold)``, ``"value"``: ``ValueClip(threshold)``) or
passed as :class:`~gradcore.measure.Given` (a user's rule in ``gradcore check``).

Every searched supremum scores structured candidates first (scaled all-ones,
alternating and one-hot vectors, and a spike over a plateau): coordinate-wise rules
are at their extremes there, and random draws rarely hit them.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy as sp
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .. import clipping as C
from . import optimisers
from .candidates import structured_vectors
from .measurement import Kind, Measurement, recipe
from .search import Found, search
from .searched import residual_bound

Rule = Callable[[list[torch.Tensor]], list[torch.Tensor]]
DTYPES = {"float32": torch.float32, "float64": torch.float64}
NP_DTYPES = {"float32": np.float32, "float64": np.float64}
# the contract's gradient search: values in [-1, 1] (d = 2..12) times 10^power
POWERS = range(-3, 31)
DIMS = (2, 12)
SIZES = {"d": f"{DIMS[0]}..{DIMS[1]}", "scale": f"1e{POWERS[0]}..1e{POWERS[-1]}"}
NO_DIRECTION = -2.0   # scores a lost direction (NaN cosine) below every cosine


def _rule(rule: Any, threshold: float) -> Rule:
    if rule == "norm":
        return C.NormClip(threshold)
    if rule == "value":
        return C.ValueClip(threshold)
    if callable(rule):
        return rule
    raise ValueError(f"rule: expected 'norm', 'value' or a callable, got {rule!r}")


def apply(rule: Rule, grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """The rule's output on clones of ``grads``, as a list (a bare tensor is wrapped)."""
    out = rule([g.clone() for g in grads])
    return [out] if isinstance(out, torch.Tensor) else list(out)


def flat(gs: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.reshape(-1).double() for g in gs])


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """cos(a, b) in float64 after rescaling by the largest entry (never overflows);
    NaN when either has no direction (zero or non-finite)."""
    a, b = a / a.abs().max().clamp_min(1e-300), b / b.abs().max().clamp_min(1e-300)
    na, nb = a.norm(), b.norm()
    if na == 0 or nb == 0 or not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return float("nan")
    return float(torch.dot(a, b) / (na * nb))


def gradient(example: tuple[list[float], int], device: str = "cpu") -> list[torch.Tensor]:
    """The float32 gradient ``values × 10^power`` of one search example."""
    vals, power = example
    return [torch.tensor(vals, dtype=torch.float32, device=device) * (10.0 ** power)]


def _gradients() -> st.SearchStrategy[tuple[list[float], int]]:
    values = st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=DIMS[0], max_size=DIMS[1])
    values = values.filter(lambda v: any(abs(x) > 1e-3 for x in v))
    return st.tuples(values, st.integers(POWERS[0], POWERS[-1]))


def gradient_candidates() -> list[tuple[str, tuple[list[float], int]]]:
    """Structured gradients in the search's own form: all-ones, alternating, one-hot and a
    spike of 1 over a plateau of 10^-k (value clipping's worst cosine), at every power."""
    out = []
    for d in DIMS:
        shapes = [(label.split(" × ")[0], [float(x) for x in vec]) for label, vec in structured_vectors(d, (1.0,))]
        shapes += [(f"spike over 1e-{k} plateau", [1.0] + [10.0 ** -k] * (d - 1)) for k in (1, 2, 3)]
        out += [(f"{name}, d={d}, × 1e{p}", (vals, p)) for name, vals in shapes for p in POWERS]
    return out


def _cos_of(rule: Rule, example: tuple[list[float], int], device: str) -> float:
    g = gradient(example, device)
    if not bool(torch.isfinite(g[0]).all()):
        return 1.0
    return cosine(flat(g), flat(apply(rule, g)))


def _witnessed(found: Found[Any], m: Measurement) -> Measurement:
    return m.with_(witness={"source": found.source, "example": found.example})


@recipe
def worst_cosine(*, rule: Any = "value", threshold: float = 1.0, profile: str = "ci",
                 device: str = "cpu") -> Measurement:
    """CLIP-01/03, contract clause ``direction``: inf over g of cos(clip(g), g) (search upper bound).

    NaN when the worst gradient leaves no direction (the rule returned zero or non-finite)."""
    clip = _rule(rule, threshold)
    score = lambda e: NO_DIRECTION if math.isnan(c := _cos_of(clip, e, device)) else c  # noqa: E731
    found = search(_gradients(), score, candidates=gradient_candidates(), profile=profile, minimise=True)
    m = _witnessed(found, found.bound(dtype="float32", device=device, direction="upper", sizes=SIZES))
    return m.with_(value=math.nan) if found.value == NO_DIRECTION else m


@recipe
def clipped_norm(*, rule: Any = "norm", threshold: float = 1.0, g: tuple[float, ...] | list[float] = (),
                 d: int = 0, scale: float = 1.0, seed: int = 0, dtype: str = "float32",
                 device: str = "cpu") -> Measurement:
    """CLIP-01/02: ‖clip(g)‖ for the given g, or for scale·N(0, I_d) drawn from ``seed`` when d > 0."""
    clip = _rule(rule, threshold)
    grads = [_given_or_gaussian(g, d, scale, seed, dtype, device)]
    return Measurement(float(flat(apply(clip, grads)).norm()), Kind.NUMERIC, dtype, device,
                       {"d": len(grads[0])})


def _given_or_gaussian(g: Any, d: int, scale: float, seed: int, dtype: str, device: str) -> torch.Tensor:
    if d > 0:
        gen = torch.Generator().manual_seed(seed)
        return (torch.randn(d, generator=gen, dtype=DTYPES[dtype]) * scale).to(device)
    return torch.tensor(list(g), dtype=DTYPES[dtype], device=device)


@recipe
def gaussian_cosine(*, rule: Any = "value", threshold: float = 1.0, d: int = 4096, scale: float = 1e3,
                    seed: int = 21, device: str = "cpu") -> Measurement:
    """Contract clause ``direction``: cos(clip(g), g) for one float32 g = scale·N(0, I_d) (seed)."""
    clip = _rule(rule, threshold)
    g = [_given_or_gaussian((), d, scale, seed, "float32", device)]
    return Measurement(cosine(flat(g), flat(apply(clip, g))), Kind.NUMERIC, "float32", device, {"d": d})


@recipe
def relative_change(*, rule: Any = "norm", threshold: float = 1.0, d: int = 64, scale: float = 1e-4,
                    seed: int = 41, device: str = "cpu") -> Measurement:
    """Contract clause ``below-threshold``: ‖clip(g) − g‖/‖g‖ for g = scale·N(0, I_d), float32."""
    clip = _rule(rule, threshold)
    g = [_given_or_gaussian((), d, scale, seed, "float32", device)]
    change = float((flat(apply(clip, g)) - flat(g)).norm() / flat(g).norm())
    return Measurement(change, Kind.NUMERIC, "float32", device, {"d": d})


@recipe
def zero_output(*, rule: Any = "norm", threshold: float = 1.0, d: int = 8, device: str = "cpu") -> Measurement:
    """Contract clause ``zero``: max |clip(0)| (inf when the rule returns NaN: a 0/0)."""
    out = flat(apply(_rule(rule, threshold), [torch.zeros(d, dtype=torch.float32, device=device)]))
    return Measurement(float(out.abs().nan_to_num(nan=math.inf).max()), Kind.EXACT, "float32", device, {"d": d})


# --- lists of gradients (the clipping contract): tensors of several shapes, scales and dtypes ---

# a list's tensor: (values in [-1, 1], power p, dtype); its entries are values × 10^p cast to the dtype
Piece = tuple[list[float], int, str]
LIST_DTYPES = {"float16": torch.float16, "float32": torch.float32, "float64": torch.float64}
LIST_POWERS = {"float16": range(-3, 5), "float32": range(-3, 31), "float64": range(-3, 31)}
LIST_SIZES = {"tensors": "1..4", "d per tensor": "1..8", "dtypes": "float16, float32, float64",
              "scale": "1e-3..1e30 (float16: ..1e4)"}


def gradient_list(example: list[Piece], device: str = "cpu") -> list[torch.Tensor]:
    """The gradients of one list example: each piece's values × 10^p, built in float64 and cast."""
    return [(torch.tensor(vals, dtype=torch.float64) * 10.0 ** power).to(LIST_DTYPES[dtype]).to(device)
            for vals, power, dtype in example]


def _pieces() -> st.SearchStrategy[list[Piece]]:
    def piece(dtype: str) -> st.SearchStrategy[Piece]:
        values = st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=1, max_size=8)
        powers = LIST_POWERS[dtype]
        return st.tuples(values, st.integers(powers[0], powers[-1]), st.just(dtype))
    return st.lists(st.sampled_from(tuple(LIST_DTYPES)).flatmap(piece), min_size=1, max_size=4)


def list_candidates() -> list[tuple[str, list[Piece]]]:
    """Structured lists: one large tensor beside a small one (per-tensor rules lose the list's
    direction there), equal tensors at one scale, mixed dtypes (a float16 tensor beside a float32
    one), and the single-tensor candidates of :func:`gradient_candidates` as one-tensor lists."""
    out: list[tuple[str, list[Piece]]] = []
    for big in (1, 3, 6, 30):
        for gap in (1, 2, 4):
            out.append((f"[3, 4] × 1e{big} beside [0.3, 0.4] × 1e{big - gap}",
                        [([0.3, 0.4], big + 1, "float32"), ([0.3, 0.4], big - gap, "float32")]))
    out += [("float16 [0.5]*4 × 1e4 beside float32 [0.5]*4 × 1e0",
             [([0.5] * 4, 4, "float16"), ([0.5] * 4, 0, "float32")]),
            ("float16 [1, -1] × 1e-3 beside float64 [1, 1, 1] × 1e3",
             [([1.0, -1.0], -3, "float16"), ([1.0] * 3, 3, "float64")]),
            ("float16 [0.6, 0.8] × 1e4 (‖g‖ > 65504 in float16)",
             [([0.6, 0.8], 4, "float16"), ([0.6, 0.8], 4, "float16")])]
    out += [(label, [(vals, power, "float32")]) for label, (vals, power) in gradient_candidates()]
    return out


def _defined(g: list[torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in g) and bool(flat(g).abs().max() > 0)


def _list_norm(g: list[torch.Tensor]) -> float:
    """‖g‖ of the whole list in float64, rescaled so that it never overflows."""
    f = flat(g)
    m = float(f.abs().max())
    return m * float((f / m).norm()) if m > 0 else 0.0


@recipe
def worst_list_cosine(*, rule: Any, threshold: float = 1.0, profile: str = "ci", device: str = "cpu") -> Measurement:
    """Contract clause ``direction``: inf over finite lists of gradients g of cos(clip(g), g), the
    list viewed as one vector (search upper bound). A list whose clipped output has no direction
    (zero or non-finite) is not a cosine: it is recorded in the witness as ``lost`` (‖g‖, dtypes,
    what came out, the example) and the value is the worst cosine among the others."""
    clip, lost = _rule(rule, threshold), []

    def score(example: list[Piece]) -> float:
        g = gradient_list(example, device)
        if not _defined(g):
            return 1.0
        out = flat(apply(clip, g))
        c = cosine(flat(g), out)
        if math.isnan(c):
            lost.append(example)
            return 1.0
        return c

    found = search(_pieces(), score, candidates=list_candidates(), profile=profile, minimise=True)
    m = found.bound(dtype="mixed", device=device, direction="upper", sizes=LIST_SIZES)
    return m.with_(witness={"source": found.source, "example": found.example,
                            "lost": _loss(clip, min(lost, key=lambda e: _list_norm(gradient_list(e))), device)
                            if lost else None})


def _loss(clip: Rule, example: list[Piece], device: str) -> dict[str, Any]:
    """What the rule did to a finite list it left without a direction (the smallest ‖g‖ found)."""
    g = gradient_list(example, device)
    out = flat(apply(clip, g))
    what = "non-finite values" if not bool(torch.isfinite(out).all()) else "zero"
    return {"‖g‖": _list_norm(g), "dtypes": sorted({d for _, _, d in example}), "output": what, "example": example}


@recipe
def max_list_clipped_norm(*, rule: Any, threshold: float = 1.0, profile: str = "ci",
                          device: str = "cpu") -> Measurement:
    """Contract clause ``step-bound``: sup over finite lists of gradients of ‖clip(g)‖ (search lower
    bound; a non-finite output norm is ∞, an explosion)."""
    clip = _rule(rule, threshold)

    def norm(example: list[Piece]) -> float:
        g = gradient_list(example, device)
        if not all(bool(torch.isfinite(t).all()) for t in g):
            return 0.0
        n = float(flat(apply(clip, g)).norm())
        return n if math.isfinite(n) else math.inf

    found = search(_pieces(), norm, candidates=list_candidates(), profile=profile)
    return _witnessed(found, found.bound(dtype="mixed", device=device, sizes=LIST_SIZES))


@recipe
def list_clipped_norm(*, rule: Any, threshold: float = 1.0, g: list[Piece], fill: float | None = None,
                      device: str = "cpu") -> Measurement:
    """‖clip(g)‖ for a list example ``g`` (``fill``: every entry of g's tensors set to ``fill``,
    same shapes and dtypes: the moderate case a bounded rule's sup is compared with)."""
    example = [([fill] * len(vals) if fill is not None else vals, 0 if fill is not None else power, dtype)
               for vals, power, dtype in g]
    out = flat(apply(_rule(rule, threshold), gradient_list(example, device)))
    return Measurement(float(out.norm()), Kind.NUMERIC, "mixed", device, {"tensors": len(g)})


# --- CLIP-01: norm clipping rescales to the threshold ---------------------------------

def _vec(dtype: str, lo: float = -1e4, hi: float = 1e4, max_d: int = 64) -> st.SearchStrategy[np.ndarray]:
    width = 64 if dtype == "float64" else 32
    return hnp.arrays(NP_DTYPES[dtype], st.integers(1, max_d), elements=st.floats(lo, hi, width=width))


def _norm_clip_cases(dtype: str) -> st.SearchStrategy[tuple[np.ndarray, float]]:
    """(g, θ) with ‖g‖ > θ ≥ 0.1, so torch's +1e-6 on the norm is below 1e-5 relative."""
    return st.tuples(_vec(dtype), st.floats(0.1, 1e3)).filter(
        lambda a: np.linalg.norm(a[0].astype(np.float64)) > a[1])


def _case_candidates(dtype: str, dims: tuple[int, ...], scales: tuple[float, ...], thetas: tuple[float, ...],
                     keep: Callable[[np.ndarray, float], bool]) -> list[tuple[str, tuple[np.ndarray, float]]]:
    return [(f"{label}, d={d}, θ={t:g}", (vec, t)) for d in dims
            for label, vec in structured_vectors(d, scales, NP_DTYPES[dtype]) for t in thetas if keep(vec, t)]


@recipe
def norm_clip_residual(*, quantity: str = "norm", dtype: str = "float32", profile: str = "ci",
                       device: str = "cpu") -> Measurement:
    """CLIP-01: sup over ‖g‖ > θ of |‖clip(g)‖/θ − 1| (``norm``) or 1 − cos(clip(g), g) (``angle``).

    Both are 0 in exact arithmetic up to torch's +1e-6 on the norm (≤ 1e-5 relative for
    θ ≥ 0.1): a rounding residual, bounded by the claim's 1e-5."""
    def error(case: tuple[np.ndarray, float]) -> float:
        g, theta = torch.as_tensor(case[0], device=device), case[1]
        if quantity == "norm":
            return abs(C.total_norm(C.clip_by_norm(g, theta)) / theta - 1.0)
        return 1.0 - C.cosine(C.clip_by_norm(g, theta), g)

    above = lambda g, t: float(np.linalg.norm(g.astype(np.float64))) > t  # noqa: E731
    cands = _case_candidates(dtype, (1, 2, 64), (0.1, 1.0, 10.0, 1e3, 1e4), (0.1, 1.0, 1e3), above)
    found = search(_norm_clip_cases(dtype), error, candidates=cands, profile=profile)
    return residual_bound(found, bound=1e-5, dtype=dtype, device=device, sizes={"d": "1..64"})


@recipe
def unchanged_residual(*, rule: str = "norm", profile: str = "ci", device: str = "cpu") -> Measurement:
    """CLIP-01/03: sup of max |clip(g) − g| below the threshold (‖g‖ ≤ θ for norm, ‖g‖∞ ≤ τ for value).

    torch scales by min(θ/(‖g‖+1e-6), 1) = 1 and clamps to [−τ, τ], both exact no-ops
    there, so the bound is 0."""
    if rule == "norm":
        cases, thetas, max_d = st.tuples(_vec("float64", -1.0, 1.0, 16), st.floats(10.0, 1e3)), (10.0, 1e3), 16
    else:
        cases, thetas, max_d = st.tuples(_vec("float64", -1.0, 1.0, 8), st.floats(1.0, 10.0)), (1.0, 10.0), 8

    def change(case: tuple[np.ndarray, float]) -> float:
        g = torch.as_tensor(case[0], device=device)
        out = C.clip_by_norm(g, case[1]) if rule == "norm" else C.clip_by_value(g, case[1])
        return float((out - g).abs().max())

    cands = _case_candidates("float64", (1, max_d), (1e-3, 0.1, 1.0), thetas, lambda g, t: True)
    found = search(cases, change, candidates=cands, profile=profile)
    return residual_bound(found, bound=0.0, dtype="float64", device=device, sizes={"d": f"1..{max_d}"})


@recipe
def norm_clip_ratio(*, g: list[float], theta: float, dtype: str = "float64", device: str = "cpu") -> Measurement:
    """CLIP-01: ‖clip_by_norm(g, θ)‖/θ for one g (torch's clip_grad_norm_ arithmetic)."""
    t = torch.tensor(g, dtype=DTYPES[dtype], device=device)
    ratio = C.total_norm(C.clip_by_norm(t, theta, torch_overflow=True)) / theta   # torch's zeros on overflow
    return Measurement(ratio, Kind.NUMERIC, dtype, device, {"d": len(g)})


# --- CLIP-02: the clipped step -----------------------------------------------------------

def _step_ratio(g0: torch.Tensor, theta: float, lr: float, optimizer: Any, steps: int, momentum: float) -> float:
    """‖Δw‖/(ηθ) of the last of ``steps`` optimiser steps fed the clipped constant gradient g0
    (``optimizer`` 'sgd', 'adam', or a user's optimiser with its own η: the optimiser contract)."""
    p = torch.nn.Parameter(torch.zeros_like(g0))
    if callable(optimizer):
        opt = optimisers.build(optimizer, [p])
        lr = optimisers.lr_of(opt)
    else:
        opt = torch.optim.Adam([p], lr=lr) if optimizer == "adam" else torch.optim.SGD([p], lr=lr, momentum=momentum)
    for _ in range(steps):
        before = p.detach().clone()
        p.grad = C.clip_by_norm(g0, theta)
        opt.step()
    return float((p.detach() - before).norm()) / (lr * theta)


@recipe
def sgd_step_ratio_bound(*, profile: str = "ci", device: str = "cpu") -> Measurement:
    """CLIP-02: sup over (g, θ, η) of ‖Δw‖/(ηθ) for one plain-SGD step on the clipped g (search bound)."""
    cases = st.tuples(_vec("float64", -1e6, 1e6), st.floats(1e-2, 1e2), st.floats(1e-4, 1.0))
    cands = [(f"{label}, θ={t:g}, η={lr:g}", (vec, t, lr))
             for label, vec in structured_vectors(64, (1e-3, 1.0, 1e3, 1e6)) for t in (1e-2, 1e2) for lr in (1e-4, 1.0)]
    found = search(cases, lambda c: _step_ratio(torch.as_tensor(c[0], device=device), c[1], c[2], "sgd", 1, 0.0),
                     candidates=cands, profile=profile)
    return found.bound(dtype="float64", device=device, sizes={"d": "1..64"})


@recipe
def optimiser_step_ratio_bound(*, optimiser: Any, profile: str = "ci", device: str = "cpu") -> Measurement:
    """CLIP-02 for any optimiser (the optimiser contract): sup over (g, θ) of ‖Δw‖/(ηθ) for its first
    step on the clipped g, η its own learning rate (search lower bound, structured g first)."""
    cases = st.tuples(_vec("float64", -1e6, 1e6, 16), st.floats(1e-2, 1e2))
    cands = [(f"{label}, θ={t:g}", (vec, t)) for label, vec in structured_vectors(16, (1e-3, 1.0, 1e3, 1e6))
             for t in (1e-2, 1.0, 1e2)]
    found = search(cases, lambda c: _step_ratio(torch.as_tensor(c[0], device=device), c[1], 1.0, optimiser, 1, 0.0),
                   candidates=cands, profile=profile)
    return _witnessed(found, found.bound(dtype="float64", device=device, sizes={"d": "1..16"}))


@recipe
def step_ratio(*, optimizer: Any = "sgd", d: int = 16, g: float = 100.0, theta: float = 1.0, lr: float = 0.1,
               steps: int = 1, momentum: float = 0.0, device: str = "cpu") -> Measurement:
    """CLIP-02: ‖Δw‖/(ηθ) at step ``steps`` for a constant raw gradient g·1_d, float64 (``optimizer``
    a user's optimiser: η is its own, ``lr`` and ``momentum`` unused)."""
    g0 = torch.full((d,), g, dtype=torch.float64, device=device)
    # momentum accumulates `steps` updates (each rounded): allow that many ulps
    return Measurement(_step_ratio(g0, theta, lr, optimizer, steps, momentum), Kind.NUMERIC, "float64", device,
                       {"d": d, "steps": steps}, conditioning=max(1.0, float(steps)))


# --- CLIP-04: value clipping's cosine ----------------------------------------------------

@functools.lru_cache(maxsize=1)
def _cos_limit() -> tuple[sp.Symbol, sp.Expr, sp.Expr, sp.Expr]:
    """cos(clip_c(X), X) as d → ∞ for X ~ N(0,1), c = τ/s, and its limit c → 0⁺ (sympy)."""
    x, c = sp.symbols("x c", positive=True)
    phi = sp.exp(-x**2 / 2) / sp.sqrt(2 * sp.pi)
    e_xclip = 2 * (sp.integrate(x**2 * phi, (x, 0, c)) + c * sp.integrate(x * phi, (x, c, sp.oo)))
    e_clip2 = 2 * (sp.integrate(x**2 * phi, (x, 0, c)) + c**2 * sp.integrate(phi, (x, c, sp.oo)))
    cos_inf = e_xclip / sp.sqrt(e_clip2)
    return c, cos_inf, sp.limit(cos_inf, c, 0, "+"), sp.simplify(e_xclip)


@recipe
def gaussian_cosine_limit() -> Measurement:
    """CLIP-04: lim_{τ/s→0} lim_{d→∞} cos(clip_value(g), g) for Gaussian g (sympy)."""
    return Measurement(float(_cos_limit()[2]), Kind.EXACT)


@functools.lru_cache(maxsize=1)
def _closed_form() -> Callable[[float], float]:
    c, cos_inf, _, _ = _cos_limit()
    return sp.lambdify(c, cos_inf, "math")


def closed_form_cosine(scale_over_tau: float) -> float:
    """CLIP-04: the d → ∞ cosine at finite s/τ (the sympy closed form, evaluated)."""
    return float(_closed_form()(1 / scale_over_tau))


def closed_form_numerator() -> str:
    return str(_cos_limit()[3])


def _sample(distribution: str, d: int, scale: float, seed: int, device: str) -> torch.Tensor:
    """scale·X, X i.i.d. gaussian | laplace | student_t<ν>, drawn from ``seed``, as float32."""
    g = torch.Generator().manual_seed(seed)
    if distribution == "gaussian":
        return scale * torch.randn(d, generator=g, dtype=torch.float32).to(device)
    u = torch.rand(d, generator=g, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    if distribution == "laplace":
        x = -torch.sign(u - 0.5) * torch.log1p(-2 * (u - 0.5).abs())
    else:  # Student-t with ν degrees of freedom: z / sqrt(χ²_ν/ν)
        nu = int(distribution.removeprefix("student_t"))
        z = torch.randn(d, generator=g, dtype=torch.float64)
        chi2 = torch.randn(d, nu, generator=g, dtype=torch.float64).pow(2).sum(1)
        x = z / torch.sqrt(chi2 / nu)
    return (scale * x).to(dtype=torch.float32, device=device)


@functools.lru_cache(maxsize=256)
def _cosines(distribution: str, d: int, scale: float, tau: float, seeds: int, device: str) -> tuple[float, ...]:
    out = []
    for s in range(seeds):
        g = _sample(distribution, d, scale, s, device)
        out.append(C.cosine(C.clip_by_value(g, tau), g))
    return tuple(out)


def _rule_cosines(rule: Rule, distribution: str, d: int, scale: float, seeds: int, device: str) -> list[float]:
    """cos(rule(g), g) on the same draws as :func:`_cosines` (NaN when the rule leaves no direction)."""
    return [cosine(flat([g]), flat(apply(rule, [g]))) for g in (_sample(distribution, d, scale, s, device)
                                                                 for s in range(seeds))]


@recipe
def value_clip_cosine(*, distribution: str = "gaussian", d: int = 65536, scale: float = 1000.0, tau: float = 1.0,
                      seeds: int = 6, device: str = "cpu", rule: Any = "value") -> Measurement:
    """CLIP-04: mean over seeds of cos(clip_value(g), g), g = scale·X i.i.d., float32, Student-t 95 % CI.

    ``rule``: "value" (clip_by_value at ``tau``) or a user's rule as Given (the clipping
    contract; ``tau`` unused, its own threshold applies): a NaN cosine (no direction left) makes
    the mean NaN, never a number."""
    from ..stats import MEAN_METHOD, mean_ci

    if rule == "value":
        values: Sequence[float] = _cosines(distribution, d, scale, tau, seeds, device)
    else:
        values = _rule_cosines(_rule(rule, tau), distribution, d, scale, seeds, device)
    if any(math.isnan(x) for x in values):
        m = lo = hi = math.nan
    else:
        m, lo, hi = mean_ci(values)
    size = {"s/τ": scale / tau} if rule == "value" else {"s": scale}
    return Measurement(m, Kind.STATISTICAL, "float32", device,
                       {"distribution": distribution, "d": d, **size, "seeds": seeds},
                       interval=(lo, hi), method=MEAN_METHOD, n=seeds)


@recipe
def closed_form_fit_error(*, d: int = 16384, ratios: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 1000.0),
                          tau: float = 1.0, seeds: int = 6, device: str = "cpu") -> Measurement:
    """CLIP-04: max over s/τ of |mean cos − closed-form cos(τ/s)|, Gaussian, float32."""
    err = max(abs(sum(_cosines("gaussian", d, r * tau, tau, seeds, device)) / seeds - closed_form_cosine(r))
              for r in ratios)
    # a difference of two ≈0.8 cosines ~1e-4 apart, each a float32 dot over d terms:
    # cancellation (~1e4) times the summation order of the float32 reductions
    return Measurement(err, Kind.NUMERIC, "float32", device, {"d": d, "seeds": seeds}, conditioning=1e4)

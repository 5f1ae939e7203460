"""Recipes for L2 regularisation / weight decay (claims WD-01..05), built on gradcore.weight_decay.

Matrices are drawn in float64 from explicit generators (cast to float32 where the
measurement is in float32), σ_max and ρ come from :mod:`gradcore.spectral`. Searches
score structured matrices first (:mod:`gradcore.measure.candidates`) and the domain's ends.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import sympy as sp
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .. import _validate as v
from ..spectral import spectral_norm, spectral_radius
from ..weight_decay import decay_only, decay_step, l2_penalty
from . import optimisers
from .measurement import EPS, Kind, Measurement, recipe
from .candidates import structured_matrices
from .search import search
from .searched import residual_bound

DTYPES = {"float32": torch.float32, "float64": torch.float64}
NP_DTYPES = {"float32": np.float32, "float64": np.float64}


def _randn(n: int, seed: int, dtype: str, device: str) -> torch.Tensor:
    # drawn in float64 (torch's float64 normal kernel is the same on every CPU), then cast
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, n, generator=g, dtype=torch.float64).to(device=device, dtype=DTYPES[dtype])


def _square(max_n: int = 6, lo: float = -10.0, hi: float = 10.0, dtype: str = "float64") -> st.SearchStrategy:
    width = 32 if dtype == "float32" else 64
    return st.integers(1, max_n).flatmap(
        lambda n: hnp.arrays(NP_DTYPES[dtype], (n, n), elements=st.floats(lo, hi, width=width)))


def _matrices(n: int, bound: float, dtype: str = "float64", symmetric: bool = False) -> list[tuple[str, np.ndarray]]:
    """The structured n×n candidates of :func:`gradcore.measure.candidates.structured_matrices`
    (scaled identity, all-ones, rank-one, one-hot, shifts), in ``dtype``; only the symmetric
    ones when ``symmetric``."""
    return [(f"{label} ({n}×{n})", m.astype(NP_DTYPES[dtype])) for label, m in structured_matrices(n, bound=bound)
            if not symmetric or np.array_equal(m, m.T)]


# --- WD-01: the decay update rule ------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _symbolic_residuals() -> tuple[int, int]:
    eta, lam = sp.symbols("eta lambda", positive=True)
    W = sp.Matrix(3, 3, sp.symbols("w0:9"))
    G = sp.Matrix(3, 3, sp.symbols("g0:9"))
    penalty = lam / 2 * sum(w**2 for w in W)
    grad_pen = W.applyfunc(lambda w: sp.diff(penalty, w))
    update = sp.simplify((W - eta * (G + grad_pen)).subs({g: 0 for g in G}) - (1 - eta * lam) * W)
    return sum(1 for r in update if r != 0), sum(1 for r in (grad_pen - lam * W) if r != 0)


@recipe
def symbolic_residual_terms(*, which: str = "update") -> Measurement:
    """WD-01 (sympy, 3×3 symbols): nonzero entries of (W − η(0 + ∇λ/2‖W‖²)) − (1−ηλ)W
    (``update``) or of ∇λ/2‖W‖² − λW (``gradient``)."""
    update, gradient = _symbolic_residuals()
    return Measurement(update if which == "update" else gradient, Kind.EXACT)


DECAY_REFERENCES = ("stated", "fitted")


@recipe
def sgd_decay_residual(*, dtype: str = "float64", lr: float = 0.1, weight_decay: float = 0.5, n: int = 5,
                       seed: int = 0, device: str = "cpu", optimiser: Any = None,
                       reference: str = "stated") -> Measurement:
    """WD-01: max |W₁ − (1−ηλ)W₀| for torch.optim.SGD(weight_decay=λ) with a zero data gradient.

    Rounding: SGD computes W − η(λW) and the reference (1−ηλ)W: a few ulps apart, bound 8ε.
    With ``optimiser`` (the optimiser contract) one step of it instead, η and λ its own (its
    stated ``weight_decay``; the witness says when it states none); ``reference`` "fitted"
    compares W₁ with c·W₀ for the least-squares c = ⟨W₁, W₀⟩/‖W₀‖² (is the step a uniform
    scaling at all?). Either residual is ∞ when W₁ is not finite; the bound is 8ε·max|W₀|.
    """
    v.choice(reference, "reference", DECAY_REFERENCES)
    W = _randn(n, seed, dtype, device)
    p = torch.nn.Parameter(W.clone())
    if optimiser is None:
        p.grad = torch.zeros_like(W)
        torch.optim.SGD([p], lr=lr, weight_decay=weight_decay).step()
        diff = float((p.detach() - (1 - lr * weight_decay) * W).abs().max())
        return Measurement(diff, Kind.ROUNDING, dtype, device, {"n": n}, bound=8 * EPS[dtype])
    opt = optimisers.build(optimiser, [p])
    W1 = optimisers.stepped(opt, p, torch.zeros_like(W))
    eta, lam = optimisers.lr_of(opt), optimisers.decay_of(opt, optimiser)
    c = float((W1.double() * W.double()).sum() / W.double().pow(2).sum())
    scale = (1 - eta * (lam or 0.0)) if reference == "stated" else c
    diff = float((W1 - scale * W).abs().max()) if bool(torch.isfinite(W1).all()) else math.inf
    witness = {"η": eta, "λ": lam if lam is not None else "none stated", "c = ⟨W₁, W₀⟩/‖W₀‖²": c}
    return Measurement(diff, Kind.ROUNDING, dtype, device, {"n": n}, witness=witness,
                       bound=8 * EPS[dtype] * float(W.abs().max()))


@recipe
def penalty_gradient_residual(*, dtype: str = "float64", weight_decay: float = 0.5, n: int = 5, seed: int = 0,
                              device: str = "cpu") -> Measurement:
    """WD-01: max |autograd ∇ λ/2‖W‖_F² − λW|: exactly 0 (λ/2·2w is a product by powers of two
    when λ = 0.5, exact in every dtype)."""
    W = _randn(n, seed, dtype, device).requires_grad_(True)
    (g,) = torch.autograd.grad(l2_penalty(W, weight_decay), W)
    return Measurement(float((g - weight_decay * W.detach()).abs().max()), Kind.EXACT, dtype, device, {"n": n})


# --- WD-02: decay shrinks W --------------------------------------------------------------------

def _norm_ratio(W: torch.Tensor, c: float, steps: int = 1, optimiser: Any = None) -> float:
    """‖W_k‖_F/‖W_0‖_F after ``steps`` decay steps at ηλ = c with no data gradient (``optimiser``:
    that many of its steps on a zero gradient instead)."""
    return float(torch.linalg.matrix_norm(_zero_gradient_steps(W, c, steps, optimiser))
                 / torch.linalg.matrix_norm(W))


def _zero_gradient_steps(W: torch.Tensor, c: float, steps: int, optimiser: Any) -> torch.Tensor:
    if optimiser is None:
        return decay_only(W, c, 1.0, steps)
    p = torch.nn.Parameter(W.clone())
    opt = optimisers.build(optimiser, [p])
    for _ in range(steps):
        out = optimisers.stepped(opt, p, torch.zeros_like(W))
    return out if steps else W


@recipe
def max_decay_norm_ratio(*, dtype: str = "float64", profile: str = "ci", device: str = "cpu") -> Measurement:
    """WD-02: sup over W (n ≤ 4, |w| ≤ 100) and 1e-12 ≤ ηλ < 1 of ‖W₁‖_F/‖W₀‖_F after one decay
    step (< 1: every step shrinks); a search bound, structured W and the ends of ηλ first."""
    cases = st.tuples(_square(4, -100, 100, dtype).filter(lambda a: np.abs(a).max() > 1e-3), st.floats(1e-12, 0.999))
    cands = [(f"{label}, ηλ = {c:g}", (m, c)) for n in (1, 4)
             for label, m in _matrices(n, 100.0, dtype) for c in (1e-12, 1e-6, 0.5, 0.999)]
    found = search(cases, lambda a: _norm_ratio(torch.as_tensor(a[0], device=device), a[1]), candidates=cands,
                     profile=profile)
    return found.bound(dtype=dtype, device=device, sizes={"n": "1..4"})


@recipe
def decay_norm_ratio(*, c: float = 0.3, steps: int = 50, n: int = 6, seed: int = 0, dtype: str = "float64",
                     device: str = "cpu", optimiser: Any = None) -> Measurement:
    """WD-02: ‖W_k‖_F/‖W_0‖_F after ``steps`` decay steps at ηλ = c (claimed (1−c)^k); with
    ``optimiser`` (the optimiser contract), after that many of its steps on a zero gradient (c unused)."""
    # each of the `steps` iterated products rounds once: allow that many ulps
    ratio = _norm_ratio(_randn(n, seed, dtype, device), c, steps, optimiser)
    return Measurement(ratio, Kind.NUMERIC, dtype, device,
                       {"n": n, "steps": steps}, conditioning=max(1.0, float(steps)))


@recipe
def float32_no_shrink_threshold(*, n: int = 8, seed: int = 0, device: str = "cpu") -> Measurement:
    """WD-02: the largest ηλ (bisection over [2^-40, 0.5]) at which a float32 decay step leaves
    ‖W‖_F unchanged: W − ηλW rounds back to W once ηλ is below half an ulp of each entry."""
    W = _randn(n, seed, "float32", device)
    lo, hi = 2.0 ** -40, 0.5
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if _norm_ratio(W, mid) >= 1.0 else (lo, mid)
    # where rounding flips from "unchanged" to "shrunk" depends on the norm's summation order
    return Measurement(lo, Kind.NUMERIC, "float32", device, {"n": n}, conditioning=1e3)


# --- WD-03: symmetric ‖W‖₂ = ρ(W) -------------------------------------------------------------

def _gap(W: torch.Tensor) -> float:
    """(‖W‖₂ − ρ(W)) / ‖W‖₂."""
    norm = spectral_norm(W)
    return (norm - spectral_radius(W)) / max(norm, 1e-300)


@recipe
def symmetric_norm_radius_gap(*, profile: str = "ci", device: str = "cpu") -> Measurement:
    """WD-03: sup over symmetric W (n ≤ 6, |w| ≤ 20) of |‖W‖₂ − ρ(W)|/‖W‖₂: 0 up to rounding
    (two LAPACK routines on the same matrix; bound 1e-12 ≈ 4500 ε)."""
    sym = _square().filter(lambda a: np.abs(a).max() > 1e-3).map(lambda a: a + a.T)
    cands = [c for n in (1, 6) for c in _matrices(n, 20.0, symmetric=True)]
    found = search(sym, lambda a: abs(_gap(torch.as_tensor(a, device=device))), candidates=cands,
                     profile=profile)
    return residual_bound(found, bound=1e-12, dtype="float64", device=device, sizes={"n": "1..6"})


@recipe
def general_norm_radius_gap(*, profile: str = "ci", device: str = "cpu") -> Measurement:
    """WD-03: inf over general W (n ≤ 6, |w| ≤ 10) of (‖W‖₂ − ρ(W))/‖W‖₂ (≥ 0: ‖W‖₂ ≥ ρ(W)); the
    infimum 0 is attained at normal W (structured candidates), so what is left is rounding."""
    cands = [c for n in (1, 6) for c in _matrices(n, 10.0)]
    found = search(_square(), lambda a: _gap(torch.as_tensor(a, device=device)), candidates=cands, minimise=True,
                     profile=profile)
    return residual_bound(found, bound=1e-12, dtype="float64", device=device, sizes={"n": "1..6"})


@recipe
def nonnormal_example(*, quantity: str = "norm", a: float = 0.5, b: float = 10.0, device: str = "cpu") -> Measurement:
    """WD-03 note: ‖W‖₂ (``norm``) or ρ(W) (``radius``) of the non-normal W = [[a, b], [0, a]]."""
    W = torch.tensor([[a, b], [0.0, a]], dtype=torch.float64, device=device)
    return Measurement(spectral_norm(W) if quantity == "norm" else spectral_radius(W), Kind.NUMERIC, "float64",
                       device, {"n": 2})


# --- WD-04/05: decay and the spectral radius -----------------------------------------------------

@recipe
def decay_radius_residual(*, profile: str = "ci", device: str = "cpu") -> Measurement:
    """WD-04: sup over non-symmetric W (n ≤ 5) and ηλ of |ρ((1−ηλ)W) − (1−ηλ)ρ(W)|/ρ(W): 0 up to
    rounding of the eigenvalue iteration (bound 1e-9; defective W would make it ε^{1/n})."""
    cases = st.tuples(_square(5).filter(lambda a: np.abs(a).max() > 0.1), st.floats(1e-3, 0.999))
    cands = [(f"{label}, ηλ = {c:g}", (m, c)) for n in (1, 5) for label, m in _matrices(n, 10.0)
             for c in (1e-3, 0.999)]

    def error(case: tuple[np.ndarray, float]) -> float:
        W, c = torch.as_tensor(case[0], device=device), case[1]
        rho = spectral_radius(W)
        return abs(spectral_radius(decay_only(W, c, 1.0, 1)) - (1 - c) * rho) / max(rho, 1e-12)

    found = search(cases, error, candidates=cands, profile=profile)
    return residual_bound(found, bound=1e-9, dtype="float64", device=device, sizes={"n": "1..5"})


def _orth(n: int, gen: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=dtype))[0]


@functools.lru_cache(maxsize=None)
def rnn_radii(lam: float, steps: int = 600, lr: float = 0.005, device: str = "cpu") -> tuple[tuple[float, ...], Any]:
    """GD with weight decay on a linear RNN h_t = W h_{t−1}, T = 4, fit to data from ρ = 1.2 dynamics.

    Returns ρ(W_k) for every step k and the last W; W_0 is non-normal with ρ(W_0) = 1.3."""
    return _rnn_train(steps, device, lambda W, g: decay_step(W, g, lr, lam))


def _optimiser_rnn_radii(optimiser: Any, steps: int, device: str) -> tuple[tuple[float, ...], Any]:
    """:func:`rnn_radii` with a user's optimiser (its own η and decay) in place of GD + decay."""
    holder: dict[str, Any] = {}

    def step(W: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        if not holder:
            holder["p"] = torch.nn.Parameter(W.clone())
            holder["opt"] = optimisers.build(optimiser, [holder["p"]])
        return optimisers.stepped(holder["opt"], holder["p"], g)

    return _rnn_train(steps, device, step)


def _rnn_train(steps: int, device: str, step: Any) -> tuple[tuple[float, ...], Any]:
    """ρ(W_k) of ``steps`` updates W ← step(W, ∇L(W)) of the linear RNN, ∞ once W is not finite."""
    dtype, n, T, N = torch.float64, 4, 4, 16
    gen = torch.Generator().manual_seed(0)
    w_true = (1.2 * _orth(n, gen, dtype)).to(device)
    q = _orth(n, gen, dtype)
    W = (q @ (1.3 * torch.eye(n, dtype=dtype) + 0.1 * torch.triu(torch.ones(n, n, dtype=dtype), 1)) @ q.T).to(device)
    H0 = torch.randn(n, N, generator=gen, dtype=dtype).to(device)
    Y = torch.linalg.matrix_power(w_true, T) @ H0
    rhos = [spectral_radius(W)]
    for _ in range(steps):
        Wr = W.clone().requires_grad_(True)
        loss = 0.5 * (torch.linalg.matrix_power(Wr, T) @ H0 - Y).pow(2).sum() / N
        (g,) = torch.autograd.grad(loss, Wr)
        W = step(W, g)
        if not bool(torch.isfinite(W).all()):   # an exploded update: ρ = ∞, not a LAPACK error
            rhos.append(math.inf)
            break
        rhos.append(spectral_radius(W))
    return tuple(rhos), W


@recipe
def rnn_radius(*, lam: float = 0.1, steps: int = 600, lr: float = 0.005, device: str = "cpu",
               optimiser: Any = None) -> Measurement:
    """WD-04/05: ρ(W) after ``steps`` GD steps with weight decay λ on the linear RNN of :func:`rnn_radii`
    (``optimiser``: that many of its steps instead, λ and lr unused)."""
    # 600 iterated GD steps contract towards a fixed point (rounding does not grow), but each
    # step's matrix powers and eigenvalues round differently across kernels: 1e3 × the ulps
    radii = rnn_radii(lam, steps, lr, device) if optimiser is None else _optimiser_rnn_radii(optimiser, steps, device)
    return Measurement(radii[0][-1], Kind.NUMERIC, "float64", device,
                       {"n": 4, "T": 4, "steps": steps}, conditioning=1e3)


def pure_decay_radii(lr: float = 0.005, lam: float = 0.1, limit: int = 2000, device: str = "cpu") -> list[float]:
    """WD-04 figure: ρ(W_k) under pure decay from the RNN's W_0 until it drops below 1."""
    W, out = rnn_radii(lam, 0, lr, device)[1], []
    for _ in range(limit):
        out.append(spectral_radius(W))
        if out[-1] < 1:
            break
        W = decay_only(W, lr, lam, 1)
    return out


@recipe
def pure_decay_steps_below_one(*, lr: float = 0.005, lam: float = 0.1, device: str = "cpu") -> Measurement:
    """WD-04: the first k with ρ(W_k) < 1 under pure decay from the RNN's W_0 (ρ₀ = 1.3).

    An integer count; ρ₀(1−ηλ)^k crosses 1 0.4 steps from an integer, far from rounding."""
    return Measurement(len(pure_decay_radii(lr, lam, device=device)) - 1, Kind.EXACT, "float64", device, {"n": 4})


# --- WD-05: ridge regression ---------------------------------------------------------------------

LAMBDAS = (0.01, 0.1, 1.0, 10.0, 100.0)


def _ridge(X: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    eye = torch.eye(X.shape[1], dtype=X.dtype, device=X.device)
    return torch.linalg.lstsq(X.T @ X + lam * eye, X.T @ y).solution


def _ridge_data() -> st.SearchStrategy:
    return st.integers(2, 6).flatmap(lambda d: st.tuples(
        hnp.arrays(np.float64, (12, d), elements=st.floats(-5, 5)), hnp.arrays(np.float64, 12, elements=st.floats(-5, 5))))


def _ridge_candidates() -> list[tuple[str, tuple[np.ndarray, np.ndarray]]]:
    out = []
    for d in (2, 6):
        for xname, X in (("all-ones X", np.ones((12, d))), ("X = [I; 0]", np.eye(12, d)),
                         ("alternating X", np.outer((-1.0) ** np.arange(12), np.ones(d)))):
            for yname, y in (("y = 0", np.zeros(12)), ("all-ones y", np.ones(12)), ("y = 5·1", 5 * np.ones(12))):
                out.append((f"{xname}, {yname}, d = {d}", (5 * X if "ones" in xname else X, y)))
    return out


def _ridge_objective(quantity: str, device: str):
    def norm_increase(case: tuple[np.ndarray, np.ndarray]) -> float:
        X, y = torch.as_tensor(case[0], device=device), torch.as_tensor(case[1], device=device)
        norms = [float(_ridge(X, y, lam).norm()) for lam in LAMBDAS]
        return max(b - a for a, b in zip(norms, norms[1:]))

    def bound_violation(case: tuple[np.ndarray, np.ndarray]) -> float:
        X, y = torch.as_tensor(case[0], device=device), torch.as_tensor(case[1], device=device)
        # ‖w_λ‖² ≤ 2L(0)/λ with L = ½‖Xw − y‖²
        return max(float(_ridge(X, y, lam).pow(2).sum()) - float(y.pow(2).sum()) / lam for lam in LAMBDAS)

    return norm_increase if quantity == "norm_increase" else bound_violation


@recipe
def ridge_residual(*, quantity: str = "norm_increase", profile: str = "ci", device: str = "cpu") -> Measurement:
    """WD-05: sup over data (12 × d, d ≤ 6, |x|, |y| ≤ 5) of the largest increase of ‖w_λ‖ as λ grows
    (``norm_increase``) or of ‖w_λ‖² − 2L(0)/λ (``bound_violation``); both ≤ 0, attained (= 0) at
    y = 0, so the value is rounding (bound 1e-9)."""
    found = search(_ridge_data(), _ridge_objective(quantity, device), candidates=_ridge_candidates(),
                     profile=profile)
    return residual_bound(found, bound=1e-9, dtype="float64", device=device, sizes={"rows": 12, "d": "2..6"})

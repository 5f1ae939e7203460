"""Attention measured: logit variance, softmax saturation and gain, query-gradient growth (ATTN-*).

Attention itself is torch's ``F.scaled_dot_product_attention`` (through
:func:`gradcore.attention.attention`, ``scale=1`` for the unscaled variant) and the softmax
is ``torch.softmax``: these recipes measure torch's implementation. Random q, k, v and the
upstream gradient come from explicit ``torch.Generator`` seeds on the CPU (float32), then
move to the device. Exponents in d_k are fitted per seed and carry a Student-t interval
across seeds (:func:`gradcore.stats.per_seed_slope_ci`).

The technique contract (:mod:`gradcore.verify.contracts.attention`) applies the ``attend``
recipes to a user's ``attend(q, k, v)`` passed as :class:`~gradcore.measure.Given`.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import sympy as sp
import torch

from .. import attention as at
from ..errors import MeasurementError
from ..jacobian import jacobian
from ..spectral import spectral_norm, spectral_radius
from ..stats import MEAN_METHOD, SLOPE_METHOD, loglog_exponent, mean_ci, per_seed_slope_ci
from .measurement import Kind, Measurement, recipe

D_KS = (4, 16, 64, 256, 1024)
N_KEYS, N_QUERIES, D_V, HEADS = 16, 32, 16, 4
STATISTICS = ("var", "max", "entropy", "entropy_ratio", "grad")


# --- ATTN-01: Var(qᵀk) -----------------------------------------------------------------------

def _variance_formula() -> tuple[sp.Expr, tuple[sp.Symbol, ...]]:
    """Var(Σ_i q_i k_i) for independent components: d(E[q²]E[k²] − (E q E k)²), by sympy."""
    d, mq, mk, vq, vk = sp.symbols("d mu_q mu_k v_q v_k", real=True)
    term = sp.expand((vq + mq ** 2) * (vk + mk ** 2) - (mq * mk) ** 2)
    return sp.factor(d * term), (d, mq, mk, vq, vk)


def dot_product_variance_formula() -> str:
    """The general formula as text (for corrected statements)."""
    return str(_variance_formula()[0])


@recipe
def dot_product_variance(*, form: str = "general", d_k: int = 64, mu_q: float = 0.0, mu_k: float = 0.0,
                         var_q: float = 2.0, var_k: float = 0.5) -> Measurement:
    """ATTN-01: Var(qᵀk) in closed form (sympy, exact rational arithmetic on the given values).

    ``form``: "general" d(v_q v_k + μ_q² v_k + μ_k² v_q); "seed" d·v_q·v_k (eq. 3.3.6);
    "residual" general − seed, simplified symbolically at μ_q = μ_k = 0 then evaluated.
    """
    general, (d, mq, mk, vq, vk) = _variance_formula()
    at_values = {d: d_k, mq: sp.nsimplify(mu_q), mk: sp.nsimplify(mu_k), vq: sp.nsimplify(var_q),
                 vk: sp.nsimplify(var_k)}
    expr = {"general": general, "seed": d * vq * vk,
            "residual": sp.simplify((general - d * vq * vk).subs({mq: 0, mk: 0}))}[form]
    value = expr.subs(at_values)
    return Measurement(float(value), Kind.EXACT, "sympy", None, {"d_k": d_k})


@recipe
def dot_product_variance_mc(*, d_k: int = 64, n: int = 20000, mu_q: float = 0.0, mu_k: float = 0.0,
                            var_q: float = 2.0, var_k: float = 0.5, seed: int = 1,
                            device: str = "cpu") -> Measurement:
    """ATTN-01: Monte Carlo Var(qᵀk) over ``n`` independent Gaussian pairs (float64): the mean of
    (qᵀk − mean)² with its Student-t interval."""
    g = torch.Generator().manual_seed(seed)
    q = (torch.randn(n, d_k, generator=g, dtype=torch.float64) * math.sqrt(var_q) + mu_q).to(device)
    k = (torch.randn(n, d_k, generator=g, dtype=torch.float64) * math.sqrt(var_k) + mu_k).to(device)
    dots = (q * k).sum(-1)
    value, lo, hi = mean_ci(((dots - dots.mean()) ** 2).cpu().numpy())
    return Measurement(value, Kind.STATISTICAL, "float64", device, {"d_k": d_k, "samples": n, "seed": seed},
                       interval=(lo, hi), method=MEAN_METHOD, n=n)


# --- ATTN-02/03/04: the d_k sweep ------------------------------------------------------------

def _draw(d_k: int, seed: int, device: str, std_q: float, std_k: float) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    q = (torch.randn(HEADS, N_QUERIES, d_k, generator=g) * std_q).to(device).requires_grad_(True)
    k = (torch.randn(HEADS, N_KEYS, d_k, generator=g) * std_k).to(device)
    val = torch.randn(HEADS, N_KEYS, D_V, generator=g).to(device)
    upstream = torch.randn(HEADS, N_QUERIES, D_V, generator=g).to(device)
    return q, k, val, upstream


@functools.lru_cache(maxsize=256)
def _stats(d_k: int, seed: int, scaled: bool, std_q: float, std_k: float, device: str) -> dict[str, float]:
    """One draw: logit variance, mean max weight, mean row entropy (and / log n_k), mean ‖∂L/∂q‖
    for L = ⟨G, softmax(QKᵀ·c)V⟩ with a Gaussian G."""
    q, k, val, upstream = _draw(d_k, seed, device, std_q, std_k)
    at.attention(q, k, val, scaled=scaled).backward(upstream)
    with torch.no_grad():
        a = at.attention_weights(q, k, scaled)
        entropy = float(at.attention_entropy(a).mean())
        return {"var": float(at.attention_logits(q, k, scaled=scaled).var()), "max": float(a.max(-1).values.mean()),
                "entropy": entropy, "entropy_ratio": entropy / math.log(N_KEYS),
                "grad": float(q.grad.norm(dim=-1).mean())}


def sweep(*, statistic: str, scaled: bool, d_ks: tuple[int, ...] = D_KS, seeds: int = 4, std_q: float = 1.0,
          std_k: float = 1.0, device: str = "cpu") -> np.ndarray:
    """The statistic for each d_k (rows) and seed (columns); shared, cached draws (for curves and fits)."""
    return np.array([[_stats(d, s, scaled, std_q, std_k, device)[statistic] for s in range(seeds)] for d in d_ks])


def _sizes(d_ks: tuple[int, ...], seeds: int) -> dict[str, Any]:
    return {"d_k": list(d_ks), "seeds": seeds, "heads": HEADS, "queries": N_QUERIES, "keys": N_KEYS, "d_v": D_V}


@recipe
def attention_statistic(*, statistic: str, scaled: bool, d_ks: tuple[int, ...] = (1024,), seeds: int = 4,
                        std_q: float = 1.0, std_k: float = 1.0, device: str = "cpu") -> Measurement:
    """ATTN-02/04: the mean of ``statistic`` over every (d_k in ``d_ks``, seed) draw, Student-t interval.

    ``statistic``: "var" (logit variance), "max" (mean largest attention weight), "entropy"
    (mean row entropy, nats), "entropy_ratio" (entropy / log n_keys), "grad" (mean ‖∂L/∂q_i‖).
    q ~ N(0, std_q²), k ~ N(0, std_k²), float32, torch's scaled_dot_product_attention.
    """
    values = sweep(statistic=statistic, scaled=scaled, d_ks=d_ks, seeds=seeds, std_q=std_q, std_k=std_k,
                   device=device).ravel()
    value, lo, hi = mean_ci(values)
    return Measurement(value, Kind.STATISTICAL, "float32", device, _sizes(d_ks, seeds), interval=(lo, hi),
                       method=MEAN_METHOD, n=len(values))


@recipe
def attention_exponent(*, statistic: str, scaled: bool, d_ks: tuple[int, ...] = D_KS, seeds: int = 4,
                       device: str = "cpu") -> Measurement:
    """ATTN-02/03/04: exponent p of statistic ∝ d_k^p, each seed's log–log slope, Student-t across seeds."""
    ys = sweep(statistic=statistic, scaled=scaled, d_ks=d_ks, seeds=seeds, device=device)
    value, lo, hi = per_seed_slope_ci(np.log(d_ks), ys.T)
    return Measurement(value, Kind.STATISTICAL, "float32", device, _sizes(d_ks, seeds), interval=(lo, hi),
                       method=f"per-seed log–log slopes, {MEAN_METHOD}", n=seeds)


@functools.lru_cache(maxsize=64)
def _raw_gradients(d_ks: tuple[int, ...], n: int, seed: int, device: str) -> tuple[float, ...]:
    """Mean ‖∂(qᵀk)/∂q‖ = mean ‖k‖ over n pairs for each d_k (float32, autograd)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for d in d_ks:
        q = torch.randn(n, d, generator=g).to(device).requires_grad_(True)
        k = torch.randn(n, d, generator=g).to(device)
        (q * k).sum().backward()
        out.append(float(q.grad.norm(dim=-1).mean()))
    return tuple(out)


def raw_query_gradients(*, d_ks: tuple[int, ...] = D_KS, n: int = N_QUERIES, seed: int = 0,
                        device: str = "cpu") -> list[float]:
    """The per-d_k values :func:`raw_query_gradient_exponent` fits (for curves)."""
    return list(_raw_gradients(tuple(d_ks), n, seed, device))


@recipe
def raw_query_gradient_exponent(*, d_ks: tuple[int, ...] = D_KS, n: int = N_QUERIES, seed: int = 0,
                                device: str = "cpu") -> Measurement:
    """ATTN-03: exponent of mean ‖∂(qᵀk)/∂q‖ in d_k for the raw dot product (log–log least squares,
    Student-t interval of the slope over the d_k points)."""
    value, lo, hi = loglog_exponent(d_ks, _raw_gradients(tuple(d_ks), n, seed, device))
    return Measurement(value, Kind.STATISTICAL, "float32", device, {"d_k": list(d_ks), "pairs": n, "seed": seed},
                       interval=(lo, hi), method=SLOPE_METHOD, n=len(d_ks))


# --- ATTN-05: the softmax gain -----------------------------------------------------------------

@recipe
def softmax_gain(*, z: list[float], scale: float = 1.0, device: str = "cpu") -> Measurement:
    """ATTN-05: ‖∂softmax/∂z‖₂ of torch.softmax at scale·z (float64, dense Jacobian)."""
    zt = torch.tensor(z, dtype=torch.float64).to(device) * scale
    gain = spectral_norm(jacobian(lambda t: torch.softmax(t, -1), zt))
    # A tiny gain (a saturated softmax, ~e^{−scale·gap}) is a product of exponentials: its
    # relative rounding is a few ulp of the exponent scale·gap, up to ~1e3 here.
    return Measurement(gain, Kind.NUMERIC, "float64", device, {"n": len(z), "scale": scale}, conditioning=1e3)


# --- ATTN-06: the attention matrix's spectrum ----------------------------------------------------

def _deviations(a: torch.Tensor) -> dict[str, float]:
    eig = torch.linalg.eigvals(a.cpu()).abs()
    return {"min entry": float(-a.min().clamp(max=0)), "row sum − 1": float((a.sum(-1) - 1).abs().max()),
            "ρ(A) − 1": abs(float(eig.max()) - 1), "max|λ| − 1": float((eig - 1).clamp(min=0).max())}


DEVIATIONS = ("all", "min entry", "row sum − 1", "ρ(A) − 1", "max|λ| − 1")


@recipe
def attention_matrix_deviation(*, qk: tuple[list[list[float]], list[list[float]]], part: str = "all",
                               bound: float = 1e-10, device: str = "cpu") -> Measurement:
    """ATTN-06: how far A = softmax(QKᵀ/√d_k) (float64, square) is from non-negative, row-stochastic
    with ρ(A) = 1 and every |λ| ≤ 1: the largest of those deviations ("all") or one ``part``.
    A rounding residual, judged against ``bound``."""
    q, k = (torch.tensor(m, dtype=torch.float64).to(device) for m in qk)
    parts = _deviations(at.attention_weights(q, k, scaled=True))
    value = max(parts.values()) if part == "all" else parts[part]
    return Measurement(value, Kind.ROUNDING, "float64", device, {"n": len(qk[0])}, bound=bound)


# --- the attention contract ------------------------------------------------------------------------

Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


CONTRACT_D, CONTRACT_V = 32, 16   # the attention contract's d_k for A = attend(q, k, I), and its value width


def _contract_draw(length: int, widths: tuple[int, ...], seeds: tuple[int, ...], device: str) -> list[torch.Tensor]:
    """N(0, 1) float64 tensors (length × width), each from its own seed (as the contract's settings draw)."""
    return [torch.randn(length, w, generator=torch.Generator().manual_seed(s), dtype=torch.float64).to(device)
            for w, s in zip(widths, seeds)]


def attend_weights(attend: Attend, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """A black-box variant's attention matrix, read off as attend(q, k, I) (values = identity)."""
    return attend(q, k, torch.eye(k.shape[0], dtype=q.dtype, device=q.device))


ROW_PARTS = ("min entry", "row sum − 1", "ρ(A) − 1")


def _row_part(a: torch.Tensor, part: str) -> float:
    if not bool(torch.isfinite(a).all()):
        return -math.inf if part == "min entry" else math.inf
    if part == "min entry":
        return min(0.0, float(a.min()))
    return float((a.sum(-1) - 1).abs().max()) if part == "row sum − 1" else abs(spectral_radius(a) - 1)


@recipe
def attend_row_stochastic(*, attend: Any, part: str, length: int = 16, d: int = CONTRACT_D, seeds: int = 3,
                          seed: int = 0, device: str = "cpu") -> Measurement:
    """ATTN-06 (attention contract): the worst over ``seeds`` draws of one deviation of A = attend(q, k, I)
    from a row-stochastic matrix with ρ(A) = 1: "min entry" (min(0, min A_ij), a rounding residual
    within −1e-12), "row sum − 1" (max |Σ_j A_ij − 1|) or "ρ(A) − 1" (|ρ(A) − 1|), both within 1e-9.
    A non-finite matrix is the worst possible (∓∞). q, k ~ N(0, 1) (L × d, float64; draw s seeded
    seed + 10 + s and seed + 20 + s)."""
    values = []
    for s in range(seeds):
        q, k = _contract_draw(length, (d, d), (seed + 10 + s, seed + 20 + s), device)
        values.append(_row_part(attend_weights(attend, q, k).detach(), part))
    worst = min(values) if part == "min entry" else max(values)
    return Measurement(worst, Kind.ROUNDING, "float64", device, {"L": length, "d_k": d, "seeds": seeds},
                       bound=1e-12 if part == "min entry" else 1e-9)


def _attend_values(attend: Attend, statistic: str, d: int, length: int, seeds: int, seed: int,
                   device: str, scale: float = 1.0, d_v: int = CONTRACT_V) -> list[float]:
    """One value per draw s: q, k, v, r ~ N(0, 1) seeded seed + 100/200/300/400 + s (the contract's draws),
    the queries multiplied by ``scale`` (the gradient is taken w.r.t. the scaled queries)."""
    values = []
    for s in range(seeds):
        q, k, v, r = _contract_draw(length, (d, d, d_v, d_v),
                                    tuple(seed + o + s for o in (100, 200, 300, 400)), device)
        q = q * scale
        if statistic == "grad":
            q = q.requires_grad_(True)
            (g,) = torch.autograd.grad((attend(q, k, v) * r).sum(), q)
            values.append(float(g.norm(dim=-1).mean()))
        elif statistic == "logit_var":
            with torch.no_grad():
                values.append(_logit_variance(attend_weights(attend, q, k)))
        else:
            with torch.no_grad():
                values.append(float(attend_weights(attend, q, k).max(-1).values.mean()))
    return values


def _logit_variance(a: torch.Tensor) -> float:
    """Mean over rows of the variance across keys of log A_ij: a softmax's logits up to each row's
    constant, so for logits c·q·k_j it estimates c²·E‖q‖² = c²·d_k (ATTN-01, LIT-01). ∞ when the
    matrix is not finite; a zero or negative weight is no softmax of finite logits: not measurable."""
    if not bool(torch.isfinite(a).all()):
        return math.inf
    if not bool((a > 0).all()):
        raise MeasurementError("the attention matrix has zero or negative weights: it is no softmax of finite "
                               "logits, so its logits cannot be read from log A")
    return float(torch.log(a).var(dim=-1, unbiased=True).mean())


def _mean(values: list[float], sizes: dict[str, Any], device: str) -> Measurement:
    """Mean with its Student-t interval; ∞ (interval [∞, ∞]) when a value is not finite."""
    if all(math.isfinite(x) for x in values):
        value, lo, hi = mean_ci(values)
    else:
        value = lo = hi = math.inf
    return Measurement(value, Kind.STATISTICAL, "float64", device, sizes, interval=(lo, hi), method=MEAN_METHOD,
                       n=len(values))


@recipe
def attend_statistic(*, attend: Any, statistic: str, d: int, length: int = 16, seeds: int = 3, seed: int = 0,
                     device: str = "cpu", scale: float = 1.0, d_v: int = CONTRACT_V) -> Measurement:
    """ATTN-02/03/04/05 (attention contract): the mean over ``seeds`` draws at d_k = ``d`` of "max" (mean
    largest weight of attend(q, k, I)), "grad" (mean ‖∂⟨attend(q, k, v), r⟩/∂q_i‖) or "logit_var" (ATTN-01,
    LIT-01: the variance across keys of log A, i.e. of a softmax's logits); q ~ N(0, scale²), k, v, r ~
    N(0, 1) (L × d, L × d_v, float64). Student-t interval; a non-finite value makes the estimate ∞."""
    sizes = {"L": length, "d_k": d, "seeds": seeds, **({"query scale": scale} if scale != 1.0 else {}),
             **({"d_v": d_v} if d_v != CONTRACT_V else {})}
    return _mean(_attend_values(attend, statistic, d, length, seeds, seed, device, scale, d_v), sizes, device)


@recipe
def attend_gradient_exponent(*, attend: Any, d_ks: tuple[int, ...] = (16, 64, 256), length: int = 16, seeds: int = 3,
                             seed: int = 0, device: str = "cpu", statistic: str = "grad") -> Measurement:
    """ATTN-03/04 (attention contract): exponent p in ‖∂⟨attend(q, k, v), r⟩/∂q_i‖ ∝ d_k^p: each draw's
    log–log slope over ``d_ks``, Student-t interval across draws; ∞ when a gradient is not finite or
    vanished (no power law to fit). ``statistic`` "logit_var": the exponent of the logits' variance
    (ATTN-01, LIT-01: 1 for the raw dot product q·k; 0 with 1/√d_k)."""
    per_d = [_attend_values(attend, statistic, d, length, seeds, seed, device) for d in d_ks]
    sizes = {"L": length, "d_k": list(d_ks), "seeds": seeds}
    if not all(math.isfinite(g) and g > 0 for row in per_d for g in row):
        return Measurement(math.inf, Kind.STATISTICAL, "float64", device, sizes, interval=(math.inf, math.inf),
                           method=SLOPE_METHOD, n=seeds)
    value, lo, hi = per_seed_slope_ci(np.log(d_ks), np.array(per_d).T)
    return Measurement(value, Kind.STATISTICAL, "float64", device, sizes, interval=(lo, hi),
                       method=f"per-draw log–log slopes, {MEAN_METHOD}", n=seeds)

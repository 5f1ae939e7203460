"""Recipes for diffusion loss weighting and time-dependent clipping (claims DIFF-01..04).

Built with :mod:`gradcore.diffusion` (DDPM linear schedule, loss weightings, per-time-step
gradients of an MLP ε-denoiser, clipping by ``torch.nn.utils.clip_grad_norm_``). The
denoiser's weights come from ``torch.manual_seed(seed)`` inside a forked RNG (nn.Linear
draws from the global generator), so a recipe never reads or changes the caller's RNG.
"""
from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .. import _validate as v
from .. import diffusion as D
from ..stats import MEAN_METHOD, mean_ci
from .measurement import Kind, Measurement, recipe
from .search import search

# one time grid for all gradient measurements: every decade of t from 1 to T = 1000
T_GRID = tuple(torch.unique(torch.logspace(0, 3, 40).round().long()).tolist())
DIM, BATCH = 16, 64
# Schedule quantities: 1 − ᾱ_1 = β_1 ≈ 1e-4 loses four digits to cancellation and ᾱ_T is
# a cumulative product of T = 1000 rounded factors, so allow 1e4 × the dtype's ulps.
SCHEDULE_CONDITIONING = 1e4


def _schedule(T: int, beta_start: float, beta_end: float, device: str) -> D.Schedule:
    return D.linear_schedule(T, beta_start, beta_end, device=device)


# --- a technique of the diffusion contract: a schedule or a loss weighting ---------------------

T_STEPS = 1000     # the DDPM horizon every schedule is measured over (the Denoiser's time embedding)
SCHEDULE_ARGS = ("t",)             # ᾱ(t), t = 1..T as float64
WEIGHTING_ARGS = ("snr", "sigma")  # w(SNR) on the ε-loss; EDM's λ(σ) on the denoiser (x₀) loss


@dataclass(frozen=True)
class GivenSchedule(D.Schedule):
    """A schedule given by its ᾱ_1..ᾱ_T, kept as given (β_t = 1 − ᾱ_t/ᾱ_{t−1} only for the VLB weight)."""

    given: torch.Tensor | None = None

    @property
    def alpha_bar(self) -> torch.Tensor:
        return self.given


@dataclass(frozen=True)
class Technique:
    """gradcore's own schedule × weighting: ``schedule`` 'linear' (DDPM, Ho et al. 2020) or 'cosine'
    (Nichol & Dhariwal 2021, s = 0.008, β ≤ 0.999); ``weighting`` one of gradcore.diffusion.WEIGHTINGS."""

    schedule: str = "linear"
    weighting: str = "eps"


def cosine_alpha_bar(t: torch.Tensor) -> torch.Tensor:
    """ᾱ_t = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s)·π/2), s = 0.008, with β_t clipped to 0.999."""
    s, T = 0.008, T_STEPS
    f = torch.cos((torch.arange(0, T + 1, dtype=torch.float64, device=t.device) / T + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, 0)[t.long() - 1]


def role(technique: Any) -> str | None:
    """'schedule' (a tensor, a gradcore Schedule or a function of ``t``), 'weighting' (a function of
    ``snr`` or ``sigma``), 'builtin' (a :class:`Technique`), or None: by type and parameter name only."""
    if isinstance(technique, Technique):
        return "builtin"
    if isinstance(technique, (torch.Tensor, D.Schedule)):
        return "schedule"
    name = _only_parameter(technique)
    return "schedule" if name in SCHEDULE_ARGS else "weighting" if name in WEIGHTING_ARGS else None


def _only_parameter(fn: Any) -> str | None:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    required = [p.name for p in params if p.default is p.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return required[0] if len(required) == 1 else None


def resolve(technique: Any, device: str = "cpu") -> tuple[D.Schedule, torch.Tensor]:
    """The schedule and the ε-loss weights v(t), t = 1..T (float64) a technique stands for.

    A schedule is weighted by L_simple (v = 1); a weighting is put on the DDPM linear schedule,
    ``sigma``'s λ(σ) becoming v = λ(σ)·σ² (‖x̂₀ − x₀‖² = σ²‖ε̂ − ε‖², σ² = 1/SNR). InputError,
    naming the problem, for a non-finite schedule, ᾱ outside (0, 1], an increasing ᾱ (a negative
    β), the wrong length, or a weight that is not finite and positive at every t.
    """
    kind = role(technique)
    if kind is None:
        v.fail("technique", "expected ᾱ_t as a tensor or a function of t, or a loss weighting as a function of "
                            f"snr or sigma; got {type(technique).__name__}")
    t = torch.arange(1, T_STEPS + 1, dtype=torch.float64, device=device)
    if kind == "builtin":
        v.choice(technique.schedule, "schedule", ("linear", "cosine"))
        sched = D.linear_schedule(device=device) if technique.schedule == "linear" else \
            _given_schedule(cosine_alpha_bar(t))
        return sched, D.loss_weight(technique.weighting, sched)
    if kind == "schedule":
        ab = technique.alpha_bar if isinstance(technique, D.Schedule) else \
            technique if isinstance(technique, torch.Tensor) else technique(t)
        return _given_schedule(_alpha_bar(ab, device)), torch.ones(T_STEPS, dtype=torch.float64, device=device)
    sched = D.linear_schedule(device=device)
    if _only_parameter(technique) == "snr":
        return sched, _weights(technique(sched.snr.clone()))
    sigma = sched.snr.reciprocal().sqrt()
    return sched, _weights(technique(sigma.clone()) * sigma ** 2)


def _given_schedule(ab: torch.Tensor) -> GivenSchedule:
    previous = torch.cat([ab.new_ones(1), ab[:-1]])
    return GivenSchedule(betas=1 - ab / previous, given=ab)


def _alpha_bar(ab: Any, device: str) -> torch.Tensor:
    ab = v.tensor(ab, "alpha_bar", finite=False, ndim=1)
    if ab.numel() != T_STEPS:
        v.fail("alpha_bar", f"wrong length: expected ᾱ_1..ᾱ_{T_STEPS} ({T_STEPS} values), got {ab.numel()}")
    ab = ab.detach().to(device=device, dtype=torch.float64)
    if not bool(torch.isfinite(ab).all()):
        v.fail("alpha_bar", f"non-finite schedule: ᾱ_t is NaN or infinite at t = {_first(~torch.isfinite(ab))}")
    if not bool(((ab > 0) & (ab <= 1)).all()):
        bad = _first(~((ab > 0) & (ab <= 1)))
        v.fail("alpha_bar", f"ᾱ_t must lie in (0, 1]; ᾱ_{bad} = {float(ab[bad - 1]):.3g}")
    if bool((ab[1:] > ab[:-1]).any()):
        v.fail("alpha_bar", f"ᾱ_t increases at t = {_first(ab[1:] > ab[:-1]) + 1}: a negative β_t "
                            "(the forward process would remove noise); ᾱ must not increase")
    if float(ab[0]) == 1.0:
        v.fail("alpha_bar", "ᾱ_1 = 1 (no noise at t = 1): non-finite schedule, SNR(1) is infinite")
    return ab


def _weights(w: Any) -> torch.Tensor:
    w = v.tensor(w, "weighting", finite=False)
    if tuple(w.shape) != (T_STEPS,):
        v.fail("weighting", f"expected one weight per time step, shape ({T_STEPS},), got {tuple(w.shape)}")
    w = w.detach().double()
    if not bool((torch.isfinite(w) & (w > 0)).all()):
        bad = _first(~(torch.isfinite(w) & (w > 0)))
        v.fail("weighting", f"the loss weight must be finite and > 0 at every t; v({bad}) = {float(w[bad - 1]):.3g}")
    single = w.float()
    if not bool((torch.isfinite(single) & (single > 0)).all()):   # per-step gradients are measured in float32
        bad = _first(~(torch.isfinite(single) & (single > 0)))
        v.fail("weighting", f"v({bad}) = {float(w[bad - 1]):.3g} is outside float32's range, the dtype the "
                            "per-step gradients are measured in")
    return w


def _first(mask: torch.Tensor) -> int:
    return int(mask.nonzero()[0]) + 1


@recipe
def snr(*, quantity: str = "first", T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
        device: str = "cpu", technique: Any = None) -> Measurement:
    """DIFF-01: SNR(1) (``first``), SNR(T) (``last``) or max_t SNR(t+1) − SNR(t) (``max_step``), float64;
    of ``technique``'s schedule when given (:func:`resolve`), else of the linear one."""
    s = (_schedule(T, beta_start, beta_end, device) if technique is None else resolve(technique, device)[0]).snr
    value = {"first": s[0], "last": s[-1], "max_step": s.diff().max()}[quantity]
    # max_step is a difference of two SNRs ~50× its size near t = T: more cancellation
    cond = SCHEDULE_CONDITIONING * (100 if quantity == "max_step" else 1)
    return Measurement(float(value), Kind.NUMERIC, "float64", device, {"T": T}, conditioning=cond)


def _max_snr_step(betas: torch.Tensor) -> float:
    """max_t SNR(t+1)/SNR(t) − 1 where float64 still resolves SNR(t+1) (−1 when nowhere).

    Once ᾱ_t leaves the normal range products round to equal (or zero) values: that is
    underflow, not a property of the schedule."""
    s = D.schedule_from_betas(betas).snr
    resolved = s[1:] > torch.finfo(s.dtype).tiny
    steps = (s[1:] / s[:-1] - 1)[resolved]
    return float(steps.max()) if steps.numel() else -1.0


@recipe
def max_snr_step_bound(*, profile: str = "ci", device: str = "cpu") -> Measurement:
    """DIFF-01: sup over β-schedules in (0, 1)^T, T ≤ 60, of max_t SNR(t+1)/SNR(t) − 1 (< 0:
    strictly decreasing); a search bound, constant and alternating schedules scored first."""
    betas = hnp.arrays(float, st.integers(2, 60), elements=st.floats(1e-6, 1 - 1e-6))
    ends = (1e-6, 1e-3, 0.5, 1 - 1e-6)
    cands = [(f"constant β = {b:g}, T = {n}", torch.full((n,), b, dtype=torch.float64).numpy())
             for b in ends for n in (2, 60)]
    cands += [(f"alternating β = {a:g}, {b:g}, T = 60", torch.tensor([a, b] * 30, dtype=torch.float64).numpy())
              for a in ends for b in ends if a != b]
    found = search(betas, lambda b: _max_snr_step(torch.tensor(b, device=device)), candidates=cands,
                     profile=profile, max_examples=200)
    return found.bound(dtype="float64", device=device, sizes={"T": "2..60"})


@recipe
def loss_weight_ratio(*, weighting: str = "snr", T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
                      device: str = "cpu", technique: Any = None) -> Measurement:
    """DIFF-02: v(1)/v(T) for one loss weighting on the DDPM linear schedule (``technique``'s own
    weights when given), float64."""
    w = D.loss_weight(weighting, _schedule(T, beta_start, beta_end, device)) if technique is None else \
        resolve(technique, device)[1]
    return Measurement(float(w[0] / w[-1]), Kind.NUMERIC, "float64", device, {"T": T},
                       conditioning=SCHEDULE_CONDITIONING)


def loss_weights(weighting: str, device: str = "cpu") -> torch.Tensor:
    """DIFF-01 figure: v(t), t = 1..T, on the linear schedule."""
    return D.loss_weight(weighting, D.linear_schedule(device=device))


@functools.lru_cache(maxsize=8)
def raw_gradients(seed: int, device: str = "cpu") -> torch.Tensor:
    """Unweighted per-step gradients ∇θ ℓ_t (rows, t in T_GRID) of a fresh MLP ε-denoiser (float32)."""
    return _raw_gradients(seed, device, D.linear_schedule(device=device))


_GIVEN_RAW: dict[tuple[int, str, bytes], torch.Tensor] = {}


def _given_raw_gradients(seed: int, device: str, schedule: D.Schedule) -> torch.Tensor:
    """:func:`raw_gradients` on a technique's schedule, cached by its ᾱ (a check measures one schedule
    in several clauses, and the built-in weightings share the linear schedule)."""
    key = (seed, device, schedule.alpha_bar.detach().cpu().double().numpy().tobytes())
    if key not in _GIVEN_RAW:
        if len(_GIVEN_RAW) >= 32:
            _GIVEN_RAW.pop(next(iter(_GIVEN_RAW)))
        _GIVEN_RAW[key] = _raw_gradients(seed, device, schedule)
    return _GIVEN_RAW[key]


def _raw_gradients(seed: int, device: str, schedule: D.Schedule) -> torch.Tensor:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = D.Denoiser(DIM).to(device)
    g = torch.Generator().manual_seed(10_000 + seed)
    x0 = torch.randn(len(T_GRID), BATCH, DIM, generator=g).to(device)
    t = torch.tensor(T_GRID, device=device)
    return D.per_timestep_gradients(model, x0, t, schedule, generator=g)


def _grid_weights(weighting: str, device: str) -> torch.Tensor:
    return D.loss_weight(weighting, D.linear_schedule(device=device)).float()[torch.tensor(T_GRID, device=device) - 1]


def _setting(weighting: str, technique: Any, device: str) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """(v(t) on T_GRID, v(t) for every t, seed → raw gradients), float32: the named weighting on the
    linear schedule, or ``technique``'s schedule and weights (:func:`resolve`)."""
    if technique is None:
        full = D.loss_weight(weighting, D.linear_schedule(device=device)).float()
        return _grid_weights(weighting, device), full, functools.partial(raw_gradients, device=device)
    schedule, weights = resolve(technique, device)
    full = weights.float()
    return full[torch.tensor(T_GRID, device=device) - 1], full, \
        functools.partial(_given_raw_gradients, device=device, schedule=schedule)


def weighted_norms(weighting: str, seed: int = 0, device: str = "cpu", technique: Any = None) -> torch.Tensor:
    """DIFF-03 figure: ‖∇θ v(t)ℓ_t‖ over T_GRID for one seed."""
    w, _, gradients = _setting(weighting, technique, device)
    return w * gradients(seed).norm(dim=1)


@recipe
def weighted_gradient_spike(*, weighting: str = "snr", seeds: int = 4, device: str = "cpu",
                            technique: Any = None) -> Measurement:
    """DIFF-03: ‖∇θ v(1)ℓ_1‖ / median_t ‖∇θ v(t)ℓ_t‖, mean over seeds with its Student-t 95 % CI."""
    per_seed = []
    for seed in range(seeds):
        e = weighted_norms(weighting, seed, device, technique)
        per_seed.append(float(e[0] / e.median()))
    m, lo, hi = mean_ci(per_seed)
    return Measurement(m, Kind.STATISTICAL, "float32", device,
                       {"seeds": seeds, "model": "MLP 16-64-64-16", "batch": BATCH, "time steps": len(T_GRID)},
                       interval=(lo, hi), method=MEAN_METHOD, n=seeds)


def raw_gradient_spread(seeds: int = 4, device: str = "cpu") -> float:
    """DIFF-03 note: the largest max_t/min_t ‖∇θ ℓ_t‖ (unweighted) over the seeds."""
    return max(float(r.max() / r.min()) for r in (raw_gradients(s, device).norm(dim=1) for s in range(seeds)))


# --- DIFF-04: time-dependent clipping ------------------------------------------------------------

def _kappa(rule: str, G: torch.Tensor, w: torch.Tensor) -> float:
    weighted = w * G.norm(dim=1)
    # "min": half the smallest weighted norm, so that clipping is active at every t
    return 0.5 * float(weighted.min()) if rule == "min" else float(weighted.median())


def contributions(scheme: str, kappa: str, seed: int = 0, weighting: str = "snr", device: str = "cpu",
                  technique: Any = None) -> torch.Tensor:
    """DIFF-04 figure: effective contributions e(t) over T_GRID for one seed."""
    w, full, gradients = _setting(weighting, technique, device)
    G = gradients(seed)
    return D.effective_contributions(G, torch.tensor(T_GRID, device=device), full, scheme, _kappa(kappa, G, w))


@recipe
def contribution_spread(*, scheme: str = "time_dependent", kappa: str = "min", weighting: str = "snr",
                        seeds: int = 3, device: str = "cpu", technique: Any = None) -> Measurement:
    """DIFF-04: worst over seeds of max_t/min_t e(t) for a clipping scheme and κ rule (``min``:
    κ = ½ min_t v(t)‖∇ℓ_t‖, clipping active at every t; ``median``: κ = the median), float32.

    Per-step gradients come from float32 matmuls whose accumulation order differs between
    kernels; a ratio of two of them, clipped or not: allow 100 × the ulps."""
    worst = max(D.spread(contributions(scheme, kappa, seed, weighting, device, technique))[0]
                for seed in range(seeds))
    return Measurement(worst, Kind.NUMERIC, "float32", device, {"seeds": seeds, "time steps": len(T_GRID)},
                       conditioning=100.0)


@recipe
def clip_weight_equivalence(*, seed: int = 0, weighting: str = "snr", device: str = "cpu") -> Measurement:
    """DIFF-04: max_t relative |v(t)·clip_{κ/v(t)}(∇ℓ_t) − clip_κ(v(t)∇ℓ_t)| (κ = median): 0 up to
    float32 rounding (bound 1e-5 ≈ 100 ε₃₂)."""
    G, w = raw_gradients(seed, device), _grid_weights(weighting, device)
    full = D.loss_weight(weighting, D.linear_schedule(device=device)).float()
    t = torch.tensor(T_GRID, device=device)
    kappa = _kappa("median", G, w)
    same = (w[:, None] * D.clip_time_dependent(G, t, kappa / full)
            - D.clip_time_dependent(w[:, None] * G, t, torch.full_like(full, kappa))).norm(dim=1)
    found = float((same / (w * G.norm(dim=1))).max())
    return Measurement(found, Kind.ROUNDING, "float32", device, {"time steps": len(T_GRID)}, bound=1e-5)

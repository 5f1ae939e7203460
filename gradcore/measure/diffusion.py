"""Recipes for diffusion loss weighting and time-dependent clipping (claims DIFF-01..04).

Built with :mod:`gradcore.diffusion` (DDPM linear schedule, loss weightings, per-time-step
gradients of an MLP ε-denoiser, clipping by ``torch.nn.utils.clip_grad_norm_``). The
denoiser's weights come from ``torch.manual_seed(seed)`` inside a forked RNG (nn.Linear
draws from the global generator), so a recipe never reads or changes the caller's RNG.
"""
from __future__ import annotations

import functools

import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

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


@recipe
def snr(*, quantity: str = "first", T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
        device: str = "cpu") -> Measurement:
    """DIFF-01: SNR(1) (``first``), SNR(T) (``last``) or max_t SNR(t+1) − SNR(t) (``max_step``), float64."""
    s = _schedule(T, beta_start, beta_end, device).snr
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
                      device: str = "cpu") -> Measurement:
    """DIFF-02: v(1)/v(T) for one loss weighting on the DDPM linear schedule, float64."""
    w = D.loss_weight(weighting, _schedule(T, beta_start, beta_end, device))
    return Measurement(float(w[0] / w[-1]), Kind.NUMERIC, "float64", device, {"T": T},
                       conditioning=SCHEDULE_CONDITIONING)


def loss_weights(weighting: str, device: str = "cpu") -> torch.Tensor:
    """DIFF-01 figure: v(t), t = 1..T, on the linear schedule."""
    return D.loss_weight(weighting, D.linear_schedule(device=device))


@functools.lru_cache(maxsize=8)
def raw_gradients(seed: int, device: str = "cpu") -> torch.Tensor:
    """Unweighted per-step gradients ∇θ ℓ_t (rows, t in T_GRID) of a fresh MLP ε-denoiser (float32)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = D.Denoiser(DIM).to(device)
    g = torch.Generator().manual_seed(10_000 + seed)
    x0 = torch.randn(len(T_GRID), BATCH, DIM, generator=g).to(device)
    t = torch.tensor(T_GRID, device=device)
    return D.per_timestep_gradients(model, x0, t, D.linear_schedule(device=device), generator=g)


def _grid_weights(weighting: str, device: str) -> torch.Tensor:
    return D.loss_weight(weighting, D.linear_schedule(device=device)).float()[torch.tensor(T_GRID, device=device) - 1]


def weighted_norms(weighting: str, seed: int = 0, device: str = "cpu") -> torch.Tensor:
    """DIFF-03 figure: ‖∇θ v(t)ℓ_t‖ over T_GRID for one seed."""
    return _grid_weights(weighting, device) * raw_gradients(seed, device).norm(dim=1)


@recipe
def weighted_gradient_spike(*, weighting: str = "snr", seeds: int = 4, device: str = "cpu") -> Measurement:
    """DIFF-03: ‖∇θ v(1)ℓ_1‖ / median_t ‖∇θ v(t)ℓ_t‖, mean over seeds with its Student-t 95 % CI."""
    per_seed = []
    for seed in range(seeds):
        e = weighted_norms(weighting, seed, device)
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


def contributions(scheme: str, kappa: str, seed: int = 0, weighting: str = "snr", device: str = "cpu") -> torch.Tensor:
    """DIFF-04 figure: effective contributions e(t) over T_GRID for one seed."""
    G, w = raw_gradients(seed, device), _grid_weights(weighting, device)
    full = D.loss_weight(weighting, D.linear_schedule(device=device)).float()
    return D.effective_contributions(G, torch.tensor(T_GRID, device=device), full, scheme, _kappa(kappa, G, w))


@recipe
def contribution_spread(*, scheme: str = "time_dependent", kappa: str = "min", weighting: str = "snr",
                        seeds: int = 3, device: str = "cpu") -> Measurement:
    """DIFF-04: worst over seeds of max_t/min_t e(t) for a clipping scheme and κ rule (``min``:
    κ = ½ min_t v(t)‖∇ℓ_t‖, clipping active at every t; ``median``: κ = the median), float32.

    Per-step gradients come from float32 matmuls whose accumulation order differs between
    kernels; a ratio of two of them, clipped or not: allow 100 × the ulps."""
    worst = max(D.spread(contributions(scheme, kappa, seed, weighting, device))[0] for seed in range(seeds))
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

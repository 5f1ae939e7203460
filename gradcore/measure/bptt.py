"""Pascanu, Mikolov & Bengio 2013 §2.1: the sufficient condition for vanishing BPTT gradients (LIT-07).

For x_t = W σ(x_{t−1}) + b (their eq. 11) with |σ'| ≤ γ, ‖∂x_t/∂x_k‖ ≤ η^{t−k} with
η = γ·λ₁ < 1 whenever λ₁ = ‖W‖₂ < 1/γ (γ = 1 for tanh, 1/4 for sigmoid). The recipes look
for a trajectory that breaks the geometric bound: random recurrent matrices (gradcore.recurrent)
and the structured worst case, an orthogonal W scaled to λ₁ with b placing the fixed point
at x = 0, where σ' = γ exactly.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .. import activations as acts
from .. import recurrent as R
from ..spectral import spectral_norm
from .measurement import Kind, Measurement, recipe
from .recurrent import F64, cell_stepper, pair_state, recurrent_weight, rescale_recurrent, seeded_cell
from .search import search

GAMMA = {"tanh": 1.0, "sigmoid": 0.25}   # sup |σ'|, attained at 0


def _candidates(activation: str, lam: float, width: int, seeds: int):
    """(label, W, b, x₀): random non-normal and Gaussian-direction W at ‖W‖₂ = λ₁, then the worst case."""
    sigma = acts.get(activation)
    for s in range(seeds):
        g = torch.Generator().manual_seed(s)
        w = R.nonnormal_matrix(width, 0.5 * lam, lam, generator=g)
        yield f"non-normal W, seed {s}", w, torch.randn(width, generator=g, dtype=torch.float64), \
            torch.randn(width, generator=g, dtype=torch.float64)
    w = R.normal_matrix(width, lam, generator=torch.Generator().manual_seed(0))
    zero = torch.zeros(width, dtype=torch.float64)
    yield "λ₁·orthogonal W, fixed point x = 0", w, -w @ sigma(zero), zero


def _log_ratios(activation: str, w: torch.Tensor, b: torch.Tensor, x0: torch.Tensor, steps: int,
                eta: float) -> list[float]:
    """log(‖∂x_t/∂x_0‖₂ / η^t) for t = 1..steps along the trajectory from x₀."""
    sigma = acts.get(activation)
    step = lambda x, t: w @ sigma(x) + b   # noqa: E731  (their eq. 11 without input)
    return product_log_ratios(step, x0, steps, eta)


def product_log_ratios(step: R.Step, x0: torch.Tensor, steps: int, eta: float) -> list[float]:
    """log(‖∂x_t/∂x_0‖₂ / η^t) for t = 1..steps along the trajectory of ``step`` from x₀ (1-D);
    −inf once the product vanished exactly, +inf once it overflowed."""
    states = R.unroll(step, x0, steps)
    product = torch.eye(len(x0), dtype=torch.float64, device=x0.device)
    out = []
    for t in range(1, steps + 1):
        product = R.step_jacobian(step, states[t - 1].detach(), t).detach() @ product
        norm = float(torch.linalg.matrix_norm(product, ord=2))
        out.append((math.log(norm) if 0 < norm < math.inf else -math.inf if norm == 0 else math.inf)
                   - t * math.log(eta))
    return out


@recipe
def geometric_bound_excess(*, activation: str = "tanh", lam_fraction: float = 0.9, width: int = 16,
                           steps: int = 30, seeds: int = 4) -> Measurement:
    """LIT-07: max over trajectories and t of ‖∂x_t/∂x_0‖₂ / η^t, with λ₁ = lam_fraction/γ, η = γλ₁.

    A search bound (the largest ratio seen; ≤ 1 is the claim), the worst-case candidate included.
    """
    gamma = GAMMA[activation]
    lam, eta = lam_fraction / gamma, lam_fraction
    best, where = -math.inf, ""
    for label, w, b, x0 in _candidates(activation, lam, width, seeds):
        r = max(_log_ratios(activation, w, b, x0, steps, eta))
        if r > best:
            best, where = r, label
    return Measurement(math.exp(best), Kind.SEARCH, "float64", "cpu",
                       {"width": width, "steps": steps, "random W": seeds}, direction="lower", witness=where)


@recipe
def bptt_rate(*, activation: str = "sigmoid", lam_fraction: float = 0.9, width: int = 16, steps: int = 30,
              seed: int = 0) -> Measurement:
    """LIT-07: the per-step rate of ‖∂x_t/∂x_0‖₂ on one random trajectory (non-normal W, ‖W‖₂ = λ₁)."""
    gamma = GAMMA[activation]
    _, w, b, x0 = next(c for i, c in enumerate(_candidates(activation, lam_fraction / gamma, width, seed + 1))
                       if i == seed)
    logs = _log_ratios(activation, w, b, x0, steps, 1.0)
    # fitted over `steps` products of Jacobians: ~steps ulp per log, conditioning 1e3
    return Measurement(math.exp((logs[-1] - logs[0]) / (steps - 1)), Kind.NUMERIC, "float64", "cpu",
                       {"width": width, "steps": steps}, conditioning=1e3)


# ---------------------------------------------------------------- a user's cell (RNN-07, LIT-07)

def _trajectory_candidates(steps: int, input_size: int, width: int) -> list[tuple[str, Any]]:
    """Structured (inputs, initial state): x = 0 / all ± / alternating in t, state 0 or 0.2·1."""
    rows = {"x = 0": np.zeros((steps, input_size)), "x all +1": np.ones((steps, input_size)),
            "x all −1": -np.ones((steps, input_size)),
            "x alternating in t": np.outer((-1.0) ** np.arange(steps), np.ones(input_size))}
    states = {"s_0 = 0": np.zeros(width), "s_0 = 0.2·1": np.full(width, 0.2)}
    return [(f"{a}, {b}", (x, s)) for a, x in rows.items() for b, s in states.items()]


@recipe
def cell_weight_bound(*, cell: Any = "RNNCell", weight_norm: float | None = None, input_size: int = 8,
                      hidden: int = 32, steps: int = 6, seed: int = 0, profile: str = "ci",
                      device: str = "cpu") -> Measurement:
    """RNN-07, LIT-07 for a cell with a square recurrent weight W = ``weight_hh``: the largest
    ‖∂s_t/∂s_0‖₂ / ‖W‖₂^t over t ≤ ``steps`` and searched trajectories (inputs in [−2, 2], initial
    state in [−1, 1], structured candidates first).

    ≤ 1 is the claim for s_t = σ(W s_{t−1} + U x_t + b) with γ = sup|σ'| ≤ 1 (tanh, ReLU): RNN-07 at the
    cell's default init from ``seed``; LIT-07 with W first rescaled to ``weight_norm`` < 1/γ (η = ‖W‖₂).
    A search bound (a lower bound on the supremum).
    """
    c = seeded_cell(cell, input_size, hidden, seed, device)
    if weight_norm is not None:
        rescale_recurrent(c, hidden, weight_norm, square=True)
    eta = spectral_norm(recurrent_weight(c, hidden, square=True).detach())
    pair = pair_state(c, torch.zeros(1, input_size, dtype=F64, device=device), hidden)
    width = 2 * hidden if pair else hidden

    def log_ratio(example: Any) -> float:
        xs, s0 = (torch.tensor(np.asarray(a), dtype=F64, device=device) for a in example)
        step = cell_stepper(c, xs[:, None, :], hidden, pair)
        return max(product_log_ratios(lambda u, t: step(u[None], t)[0], s0, steps, eta))

    strategy = st.tuples(hnp.arrays(np.float64, (steps, input_size), elements=st.floats(-2, 2, width=64)),
                         hnp.arrays(np.float64, (width,), elements=st.floats(-1, 1, width=64)))
    found = search(strategy, log_ratio, candidates=_trajectory_candidates(steps, input_size, width), profile=profile)
    return Measurement(math.exp(found.value), Kind.SEARCH, F64, device,
                       {"hidden": hidden, "steps": steps, "‖W‖₂": eta}, direction="lower", witness=found.source)

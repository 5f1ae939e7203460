"""Pascanu, Mikolov & Bengio 2013 §2.1: the sufficient condition for vanishing BPTT gradients (LIT-07).

For x_t = W σ(x_{t−1}) + b (their eq. 11) with |σ'| ≤ γ, ‖∂x_t/∂x_k‖ ≤ η^{t−k} with
η = γ·λ₁ < 1 whenever λ₁ = ‖W‖₂ < 1/γ (γ = 1 for tanh, 1/4 for sigmoid). The recipes look
for a trajectory that breaks the geometric bound: random recurrent matrices (gradcore.recurrent)
and the structured worst case, an orthogonal W scaled to λ₁ with b placing the fixed point
at x = 0, where σ' = γ exactly.
"""
from __future__ import annotations

import math

import torch

from .. import activations as acts
from .. import recurrent as R
from .measurement import Kind, Measurement, recipe

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
    states = R.unroll(step, x0, steps)
    product = torch.eye(len(x0), dtype=torch.float64)
    out = []
    for t in range(1, steps + 1):
        product = R.step_jacobian(step, states[t - 1], t) @ product
        out.append(math.log(float(torch.linalg.matrix_norm(product, ord=2))) - t * math.log(eta))
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

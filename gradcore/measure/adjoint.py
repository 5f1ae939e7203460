"""Recipes for optimal-control costates against backpropagation (CTRL-01, CTRL-02).

The costates λ_t = J_tᵀ λ_{t+1} (gradcore.adjoint.costates) are the backpropagated state
gradients; their growth per step is the adjoint dynamics' stability (002 §数值稳定性与最优控制的观点).
A user's step map (kind ``dynamics``) runs through the same residual (:func:`step_costate_residual`).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..adjoint import backprop_state_gradients, costates
from .measurement import Kind, Measurement, recipe
from .recurrent import F64, gen
from .seeding import seeded

COSTATE_TOLERANCE = {"float32": 1e-5, "float64": 1e-12}   # max relative residual over an 8-layer net


def mlp(kind: str, depth: int, width: int, dtype: torch.dtype, device: str) -> list[Callable[[torch.Tensor], Any]]:
    """``depth`` layers of a tanh / relu MLP or residual blocks x + W₂ relu(W₁ x) (torch default init)."""
    layers = []
    for _ in range(depth):
        lin = torch.nn.Linear(width, width, dtype=dtype).to(device)
        if kind == "tanh":
            layers.append(torch.nn.Sequential(lin, torch.nn.Tanh()))
        elif kind == "relu":
            layers.append(torch.nn.Sequential(lin, torch.nn.ReLU()))
        else:
            inner = torch.nn.Sequential(lin, torch.nn.ReLU(), torch.nn.Linear(width, width, dtype=dtype).to(device))
            layers.append(lambda x, f=inner: x + f(x))
    return layers


@recipe
def costate_residual(*, kind: str = "tanh", depth: int = 8, width: int = 12, seed: int = 0, dtype: str = "float64",
                     device: str = "cpu") -> Measurement:
    """CTRL-01: max_t |λ_t − ∂J/∂x_t| / max|∂J/∂x_t| for J = ½‖x_L − target‖² (rounding; bound 1e-5 in
    float32, 1e-12 in float64). Layers, x_0 and the target are drawn from ``seed`` in that order."""
    dt = getattr(torch, dtype)
    with seeded(seed):
        layers = mlp(kind, depth, width, dt, device)
        x0, target = torch.randn(width, dtype=dt).to(device), torch.randn(width, dtype=dt).to(device)
    return Measurement(_residual(layers, x0, target), Kind.ROUNDING, dt, device, {"depth": depth, "width": width},
                       bound=COSTATE_TOLERANCE[dtype])


def _residual(layers: list[Callable[[torch.Tensor], Any]], x0: torch.Tensor, target: torch.Tensor) -> float:
    """max_t |λ_t − ∂J/∂x_t| / max|∂J/∂x_t| for J = ½‖x_L − target‖² (inf when a gradient is not finite)."""
    loss = lambda x: 0.5 * (x - target).pow(2).sum()  # noqa: E731
    sol, ref = costates(layers, x0, loss), backprop_state_gradients(layers, x0, loss)
    scale = max(float(g.abs().max()) for g in ref)
    diff = max(float((lam - g).abs().max()) for lam, g in zip(sol.costates, ref)) / scale
    return diff if math.isfinite(diff) else math.inf


@recipe
def step_costate_residual(*, step: Any, h: float, dim: int, T: int = 8, seed: int = 0,
                          device: str = "cpu") -> Measurement:
    """CTRL-01 for a step map (kind ``dynamics``): :func:`costate_residual`'s residual through T steps
    x_{t+1} = step(x_t, h) (each a batch of one), x_0 then the target ~ N(0, I) from ``seed``; float64
    rounding, bound 1e-12 (a deterministic step's costates are its backprop gradients)."""
    g = gen(seed)
    x0, target = (torch.randn(dim, generator=g, dtype=F64).to(device) for _ in range(2))
    layers = [lambda x: step(x[None], h)[0]] * T
    return Measurement(_residual(layers, x0, target), Kind.ROUNDING, F64, device, {"T": T, "n": dim},
                       bound=COSTATE_TOLERANCE["float64"])


def transition_growth(layers: list[Callable[[torch.Tensor], Any]], x0: torch.Tensor) -> float:
    """‖λ_0‖/‖λ_T‖ per step, with Φ(x) = Σx so that λ_T = (1, …, 1)."""
    lam0 = costates(layers, x0, lambda x: x.sum()).costates[0]
    return (float(lam0.norm()) / x0.numel() ** 0.5) ** (1 / len(layers))


def costate_matrix(rho: float, seed: int, device: str) -> torch.Tensor:
    """Q [[ρ, .5, 0], [0, .9ρ, .5], [0, 0, .7ρ]] Qᵀ, Q orthogonal from N(0, 1) by QR: non-normal, ρ(W) = ρ."""
    Q = torch.linalg.qr(torch.randn(3, 3, generator=gen(seed), dtype=F64))[0]
    T = torch.tensor([[rho, 0.5, 0.0], [0.0, 0.9 * rho, 0.5], [0.0, 0.0, 0.7 * rho]], dtype=F64)
    return (Q @ T @ Q.T).to(device)


@recipe
def costate_growth_rate(*, rho: float = 1.05, T: int = 120, seed: int = 4, device: str = "cpu") -> Measurement:
    """CTRL-02: per-step costate growth ‖λ_0‖^{1/T} through x_{t+1} = W x_t (W = :func:`costate_matrix`)."""
    W = costate_matrix(rho, seed, device)
    rate = transition_growth([lambda x, W=W: W @ x] * T, torch.ones(3, dtype=F64, device=device))
    # a T-fold product of a non-normal W
    return Measurement(rate, Kind.NUMERIC, F64, device, {"T": T}, conditioning=1e4)


@recipe
def alternating_costate_rate(*, A: Any, B: Any, T: int = 40, device: str = "cpu") -> Measurement:
    """CTRL-02: per-step costate growth through time-varying linear layers A, B, A, B, … (T layers)."""
    Am, Bm = (torch.tensor(M, dtype=F64, device=device) for M in (A, B))
    layers = [(lambda x, M=(Am if t % 2 == 0 else Bm): M @ x) for t in range(T)]
    rate = transition_growth(layers, torch.ones(Am.shape[0], dtype=F64, device=device))
    return Measurement(rate, Kind.NUMERIC, F64, device, {"T": T})

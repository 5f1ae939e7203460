"""Discrete-time optimal-control costates of a layered network, computed without autograd's
end-to-end backward.

Seed 002 §数值稳定性与最优控制的观点: with states x_{t+1} = f_t(x_t) and terminal cost
J = Φ(x_L), the Lagrange multipliers (costates) obey λ_L = ∇Φ(x_L) and
λ_t = (∂f_t/∂x_t)ᵀ λ_{t+1}; the document says ∇_{x_t} J equals λ_t exactly. Here the
recursion is run with explicit per-layer Jacobians (``gradcore.jacobian.chain_jacobians``)
so it can be compared with :func:`backprop_state_gradients`, which uses autograd.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from . import _validate as v
from .jacobian import TensorFn, chain_jacobians, jacobian

Loss = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class AdjointSolution:
    """States x_0..x_L, costates λ_0..λ_L (shaped like the states) and layer Jacobians."""

    states: list[torch.Tensor]
    costates: list[torch.Tensor]
    jacobians: list[torch.Tensor]


def forward_states(layers: Sequence[TensorFn], x0: torch.Tensor) -> list[torch.Tensor]:
    """x_0, x_1 = f_0(x_0), …, x_L = f_{L-1}(x_{L-1})."""
    xs = [v.tensor(x0, "x0")]
    for i, f in enumerate(_layers(layers)):
        xs.append(f(xs[-1]))
    return xs


def _layers(layers: Sequence[TensorFn]) -> list[TensorFn]:
    """The layers, each wrapped so that its failure on a state names it (``layers[i]``)."""
    if len(layers) == 0:
        v.fail("layers", "expected at least one layer")
    for i, f in enumerate(layers):
        if not callable(f):
            v.fail(f"layers[{i}]", f"expected a callable, got {type(f).__name__}")
    return [v.guarded(f, f"layers[{i}]") for i, f in enumerate(layers)]


def _scalar(loss: Loss, x: torch.Tensor) -> torch.Tensor:
    out = v.guarded(loss, "loss")(x)
    if out.numel() != 1:
        v.fail("loss", f"must return a scalar, got shape {tuple(out.shape)}")
    return out


def costates(layers: Sequence[TensorFn], x0: torch.Tensor, loss: Loss) -> AdjointSolution:
    """Run the forward pass, then the costate recursion λ_t = J_tᵀ λ_{t+1} from λ_L = ∇Φ(x_L)."""
    if not callable(loss):
        v.fail("loss", f"expected a callable, got {type(loss).__name__}")
    with torch.no_grad():
        states = forward_states(layers, x0)
    # Detached: these are measurements, not part of a graph over the layers' parameters.
    jacs = [J.detach() for J in chain_jacobians(list(layers), states[0])]
    terminal = jacobian(v.guarded(loss, "loss"), states[-1]).detach()
    if terminal.shape[0] != 1:
        v.fail("loss", f"must return a scalar, got {terminal.shape[0]} outputs")
    lam = terminal[0]
    lams = [lam]
    for J in reversed(jacs):
        lam = J.T @ lam
        lams.append(lam)
    lams.reverse()
    shaped = [l.reshape(x.shape) for l, x in zip(lams, states)]
    return AdjointSolution(states, shaped, jacs)


def backprop_state_gradients(layers: Sequence[TensorFn], x0: torch.Tensor,
                             loss: Loss) -> list[torch.Tensor]:
    """∂J/∂x_t for every state by autograd's backward through the whole network (reference)."""
    if not callable(loss):
        v.fail("loss", f"expected a callable, got {type(loss).__name__}")
    fs = _layers(layers)
    x = v.tensor(x0, "x0").detach().requires_grad_(True)
    xs = [x]
    for f in fs:
        xs.append(f(xs[-1]))
    return list(torch.autograd.grad(_scalar(loss, xs[-1]), xs))

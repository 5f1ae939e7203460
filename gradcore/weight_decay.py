"""L2 regularisation / weight decay as an SGD update.

Seed 002 §L2 正则化与隐式稳定: the penalty λ/2‖W‖_F² adds λW to the gradient, so one step is
W_{k+1} = W_k − η(∇L_data + λW_k), and with ∇L_data = 0 it is W_{k+1} = (1 − ηλ)W_k.
:func:`decay_step` follows torch.optim.SGD's weight_decay arithmetic (d_p = grad + λW,
then W − η d_p), so it can be compared with the optimiser bit for bit.
"""
from __future__ import annotations

import torch

from . import _validate as v


def l2_penalty(W: torch.Tensor, weight_decay: float) -> torch.Tensor:
    """λ/2 ‖W‖_F² (all entries of ``W``), a differentiable scalar tensor."""
    W = v.tensor(W, "W")
    weight_decay = v.real(weight_decay, "weight_decay", nonnegative=True)
    return 0.5 * weight_decay * W.pow(2).sum()


def decay_step(W: torch.Tensor, grad: torch.Tensor, lr: float, weight_decay: float) -> torch.Tensor:
    """One SGD step with L2 weight decay: W − η(grad + λW), as a new tensor."""
    W = v.tensor(W, "W")
    grad = v.tensor(grad, "grad")
    v.same_shape(W, grad, "W", "grad")
    if grad.dtype != W.dtype:
        v.fail("grad", f"dtype {grad.dtype} does not match W dtype {W.dtype}")
    lr = v.real(lr, "lr", positive=True)
    weight_decay = v.real(weight_decay, "weight_decay", nonnegative=True)
    d_p = grad.add(W, alpha=weight_decay)
    return W.add(d_p, alpha=-lr)


def decay_only(W: torch.Tensor, lr: float, weight_decay: float, steps: int) -> torch.Tensor:
    """``steps`` decay steps with no data gradient (iterated, not the closed form (1−ηλ)^k W)."""
    W = v.tensor(W, "W")
    steps = v.integer(steps, "steps", minimum=0)
    zero = torch.zeros_like(W)
    for _ in range(steps):
        W = decay_step(W, zero, lr, weight_decay)
    return W

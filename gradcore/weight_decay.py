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
    return v.finite_result(0.5 * weight_decay * W.pow(2).sum(), "W",
                           f"λ/2·‖W‖_F² overflows {W.dtype}; compute it in a wider dtype")


def decay_step(W: torch.Tensor, grad: torch.Tensor, lr: float, weight_decay: float) -> torch.Tensor:
    """One SGD step with L2 weight decay: W − η(grad + λW), as a new tensor."""
    W = v.tensor(W, "W")
    grad = v.tensor(grad, "grad")
    v.same_shape(W, grad, "W", "grad")
    v.same_dtype(W, grad, "W", "grad")
    lr, weight_decay = _rates(W, lr, weight_decay)
    return _overflow_checked(_step(W, grad, lr, weight_decay), W.dtype, "")


def decay_only(W: torch.Tensor, lr: float, weight_decay: float, steps: int) -> torch.Tensor:
    """``steps`` decay steps with no data gradient (iterated, not the closed form (1−ηλ)^k W)."""
    W = v.tensor(W, "W")
    steps = v.integer(steps, "steps", minimum=0)
    lr, weight_decay = _rates(W, lr, weight_decay)
    zero = torch.zeros_like(W)
    for k in range(1, steps + 1):
        W = _overflow_checked(_step(W, zero, lr, weight_decay), W.dtype, f" at step {k} of {steps}")
    return W


def _rates(W: torch.Tensor, lr: object, weight_decay: object) -> tuple[float, float]:
    """η > 0 and λ ≥ 0, each representable in W's dtype (torch cannot pass 1e300 as a float32 alpha)."""
    lr = v.fits(v.real(lr, "lr", positive=True), W.dtype, "lr")
    weight_decay = v.fits(v.real(weight_decay, "weight_decay", nonnegative=True), W.dtype, "weight_decay")
    return lr, weight_decay


def _step(W: torch.Tensor, grad: torch.Tensor, lr: float, weight_decay: float) -> torch.Tensor:
    # torch.optim.SGD's arithmetic: d_p = grad + λW, then W − η d_p
    d_p = grad.add(W, alpha=weight_decay)
    return W.add(d_p, alpha=-lr)


def _overflow_checked(W: torch.Tensor, dtype: torch.dtype, where: str) -> torch.Tensor:
    return v.finite_result(W, "lr", f"the update W − η(grad + λW) overflows {dtype}{where}; "
                                    "take a smaller lr or weight_decay")

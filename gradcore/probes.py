"""Gradient-flow probes: how the backpropagated gradient changes layer by layer.

They measure the quantities the documents reason about: the per-layer gradient norms
‖∂L/∂h_l‖ (003 §1, 000 §链式法则), the average per-layer transfer factor λ
(004 §3.3.1 "累积衰减模型"), and the depth at which a finite-precision gradient overflows
to inf/NaN (000 "数值溢出", 003 §3.a) or underflows to exactly zero
(004 "0.1^{100} … 在数值上完全不可检测"). All gradients are torch autograd's.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from . import _validate as v

Tensor = torch.Tensor
Layer = Callable[[Tensor], Tensor]
Loss = Callable[[Tensor], Tensor]
FLOAT_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16,
                "float32": torch.float32, "float64": torch.float64}


def sum_loss(out: Tensor) -> Tensor:
    """L = Σ h_L, whose gradient ∂L/∂h_L is all ones whatever the forward scale."""
    return out.sum()


def _layers(layers: Sequence[Layer]) -> list[Layer]:
    if len(layers) == 0:
        v.fail("model_layers", "expected at least one layer")
    for i, layer in enumerate(layers):
        if not callable(layer):
            v.fail(f"model_layers[{i}]", f"expected a callable, got {type(layer).__name__}")
    return list(layers)


def layer_gradients(model_layers: Sequence[Layer], x: Tensor, loss: Loss = sum_loss) -> list[Tensor]:
    """[∂L/∂h_0, …, ∂L/∂h_L] where h_0 = x and h_l = model_layers[l-1](h_{l-1})."""
    layers = _layers(model_layers)
    x = v.tensor(x, "x")
    hs = [x.detach().clone().requires_grad_(True)]
    for i, layer in enumerate(layers):
        out = v.guarded(layer, f"model_layers[{i}]", tensor_out=False)(hs[-1])
        hs.append(v.tensor(out, f"model_layers[{i}] output", finite=False, nonempty=False))
    out = v.guarded(loss, "loss", tensor_out=False)(hs[-1])
    if not isinstance(out, torch.Tensor) or out.numel() != 1:
        v.fail("loss", f"must return a scalar tensor, got {type(out).__name__}"
                       + (f" of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else ""))
    # A layer that ignores its input (a constant) cuts the graph: the gradient there is 0.
    live = [i for i, h in enumerate(hs) if h.requires_grad]
    grads = dict(zip(live, torch.autograd.grad(out, [hs[i] for i in live], allow_unused=True))) \
        if out.requires_grad else {}
    return [g if (g := grads.get(i)) is not None else torch.zeros_like(h) for i, h in enumerate(hs)]


def layer_gradient_norms(model_layers: Sequence[Layer], x: Tensor, loss: Loss = sum_loss) -> Tensor:
    """‖∂L/∂h_l‖ (Frobenius over the batch) for l = 0 … L, as a float64 tensor of length L+1.

    A gradient that overflows the layers' dtype is returned as inf (or NaN) on purpose: that is
    the event :func:`overflow_depth` looks for (000 "数值溢出").
    """
    grads = layer_gradients(model_layers, x, loss)
    return torch.stack([g.double().norm() for g in grads])


@dataclass(frozen=True)
class TransferFit:
    """Per-layer gradient transfer factor λ with ‖∂L/∂h_l‖ ≈ c·λ^{L-l}."""

    geometric: float  # (‖g_0‖/‖g_L‖)^{1/L}
    fitted: float  # exp of the least-squares slope of log‖g_l‖ against L − l
    r2: float  # coefficient of determination of that log-linear fit


def transfer_factor(norms: Tensor) -> TransferFit:
    """λ from gradient norms [‖g_0‖, …, ‖g_L‖] (as returned by :func:`layer_gradient_norms`)."""
    norms = v.tensor(norms, "norms", ndim=1)
    if norms.numel() < 2:
        v.fail("norms", "expected at least two layers' norms")
    if bool((norms <= 0).any()):
        v.fail("norms", "must be positive (a gradient underflowed to zero)")
    logs = norms.double().log()
    steps = torch.arange(len(logs) - 1, -1, -1, dtype=torch.float64, device=logs.device)
    depth = len(logs) - 1
    geometric = math.exp(float(logs[0] - logs[-1]) / depth)
    a = torch.stack([steps, torch.ones_like(steps)], dim=1)
    slope, intercept = torch.linalg.lstsq(a, logs.unsqueeze(1)).solution.squeeze(1)
    resid = logs - (slope * steps + intercept)
    total = ((logs - logs.mean()) ** 2).sum()
    r2 = 1.0 - float((resid**2).sum() / total) if float(total) > 0 else 1.0
    return TransferFit(geometric, math.exp(float(slope)), r2)


def _dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, str):
        return FLOAT_DTYPES[v.choice(dtype, "dtype", FLOAT_DTYPES)]
    if dtype not in FLOAT_DTYPES.values():
        v.fail("dtype", f"expected one of {', '.join(FLOAT_DTYPES)}, got {dtype}")
    return dtype


def _first_true(pred: Callable[[int], bool], max_depth: int) -> int | None:
    """Smallest d in 1…max_depth with pred(d), by galloping then bisection (pred monotone in d)."""
    lo, hi = 0, 1
    while not pred(hi):
        if hi == max_depth:
            return None
        lo, hi = hi, min(2 * hi, max_depth)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if pred(mid) else (mid, hi)
    return hi


def _scan(make_layer: Callable[[int], Layer], x: Tensor, dtype: torch.dtype | str, max_depth: int,
          loss: Loss, stop: Callable[[Tensor], bool]) -> int | None:
    """The first depth d ≤ max_depth whose input gradient ∂L/∂x satisfies ``stop``.

    Assumes that once a depth stops, deeper chains stop too (true of overflow and underflow
    in chains with a steady per-layer factor), so only O(log max_depth) depths are run.
    """
    if not callable(make_layer):
        v.fail("make_layer", f"expected a callable, got {type(make_layer).__name__}")
    max_depth = v.integer(max_depth, "max_depth", minimum=1)
    dt = _dtype(dtype)
    x = v.tensor(x, "x").to(dt)
    layers: list[Layer] = []

    def stops(depth: int) -> bool:
        while len(layers) < depth:
            layer = make_layer(len(layers))
            layers.append(layer.to(dt) if isinstance(layer, torch.nn.Module) else layer)
        return stop(layer_gradients(layers[:depth], x, loss)[0])

    return _first_true(stops, max_depth)


def overflow_depth(make_layer: Callable[[int], Layer], x: Tensor, dtype: torch.dtype | str,
                   max_depth: int, loss: Loss = sum_loss) -> int | None:
    """Smallest depth at which ∂L/∂x, computed in ``dtype``, holds an inf or NaN (None if never).

    ``make_layer(l)`` builds layer l; modules are cast to ``dtype``. Depth d uses layers 0…d-1.
    """
    return _scan(make_layer, x, dtype, max_depth, loss, lambda g: not bool(torch.isfinite(g).all()))


def underflow_depth(make_layer: Callable[[int], Layer], x: Tensor, dtype: torch.dtype | str,
                    max_depth: int, loss: Loss = sum_loss) -> int | None:
    """Smallest depth at which ∂L/∂x, computed in ``dtype``, is exactly zero everywhere (None if never)."""
    return _scan(make_layer, x, dtype, max_depth, loss, lambda g: not bool(g.any()))

"""Input pullbacks of convolutions, BatchNorm and GELU written as plain torch ops, so that the transpose
trick of :class:`gradcore.jacobian.JacobianOperator` (J u as the pullback of the pullback) is cheap.

The audit differentiates a block only with respect to its input stream, its weights frozen. ATen's
own pullbacks are correct but their derivatives — what every J u product replays — are slow on a
CPU: a convolution's double backward loops over groups (a depthwise conv's J u costs ~60× its Jᵀw),
BatchNorm's is a long composite, GELU's recomputes gelu'(x) at every product. Here the forward is ATen's own call (the same values, bit for bit)
and the pullback w ↦ Jᵀw is ``conv_transpose2d`` or BatchNorm's closed-form backward, whose own
derivative in w is one convolution or a few reductions. Only the derivative in w is exact (x's
statistics are constants of the pullback): the audit needs J and Jᵀ at one x, never second
derivatives in x. Parameters that require grad keep ATen's pullbacks.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode


def _pair(value: Any) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)  # type: ignore[return-value]


class _Conv2d(torch.autograd.Function):
    """conv2d with frozen weights: Jᵀw = conv_transpose2d(w), whose derivative in w is conv2d."""

    @staticmethod
    def forward(x, weight, bias, stride, padding, dilation, groups):   # type: ignore[override]
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, _, stride, padding, dilation, groups = inputs
        ctx.save_for_backward(weight)
        ctx.geometry = (tuple(x.shape[-2:]), stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, g):   # type: ignore[override]
        (weight,) = ctx.saved_tensors
        size, stride, padding, dilation, groups = ctx.geometry
        # the rows a strided conv never reads: conv_transpose2d's output_padding restores x's size
        reached = [(g.shape[-2 + i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (weight.shape[-2 + i] - 1) + 1
                   for i in range(2)]
        extra = tuple(size[i] - reached[i] for i in range(2))
        gx = F.conv_transpose2d(g, weight, None, stride, padding, extra, groups, dilation)
        return gx, None, None, None, None, None, None


class _BatchNorm(torch.autograd.Function):
    """batch_norm with frozen γ, β: the closed-form input pullback, γ/s·(g − ḡ − x̂·mean(g x̂)) with the
    batch's statistics, or γ/s·g with the running ones."""

    @staticmethod
    def forward(x, running_mean, running_var, weight, bias, training, momentum, eps):   # type: ignore[override]
        return F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, running_mean, running_var, weight, _, training, _, eps = inputs
        dims = [0] + list(range(2, x.ndim))
        shape = [1, -1] + [1] * (x.ndim - 2)
        batch = training or running_mean is None
        var = x.var(dim=dims, unbiased=False, keepdim=True) if batch else running_var.reshape(shape)
        inv = (var + eps).rsqrt()
        scale = inv if weight is None else inv * weight.reshape(shape)
        xhat = (x - x.mean(dim=dims, keepdim=True)) * inv if batch else None
        ctx.save_for_backward(scale, xhat)
        ctx.dims = dims

    @staticmethod
    def backward(ctx, g):   # type: ignore[override]
        scale, xhat = ctx.saved_tensors
        if xhat is not None:
            g = g - g.mean(dim=ctx.dims, keepdim=True) - xhat * (g * xhat).mean(dim=ctx.dims, keepdim=True)
        return scale * g, None, None, None, None, None, None, None


class _Gelu(torch.autograd.Function):
    """gelu: Jᵀw = gelu'(x)·w with gelu'(x) computed once (ATen's own derivative), not at every product."""

    @staticmethod
    def forward(x, approximate):   # type: ignore[override]
        return F.gelu(x, approximate=approximate)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, approximate = inputs
        ctx.save_for_backward(torch.ops.aten.gelu_backward(torch.ones_like(x), x, approximate=approximate))

    @staticmethod
    def backward(ctx, g):   # type: ignore[override]
        (slope,) = ctx.saved_tensors
        return g * slope, None


_CONVS = (F.conv2d, torch.conv2d)
_NORMS = (F.batch_norm,)


def _frozen(*tensors: Any) -> bool:
    return all(not (isinstance(t, torch.Tensor) and t.requires_grad) for t in tensors)


def _conv(args: tuple, kwargs: dict) -> torch.Tensor | None:
    names, defaults = ("bias", "stride", "padding", "dilation", "groups"), (None, 1, 0, 1, 1)
    x, weight, *rest = args
    bias, stride, padding, dilation, groups = list(rest) + [
        kwargs.get(n, d) for n, d in zip(names[len(rest):], defaults[len(rest):])]
    if x.ndim != 4 or isinstance(padding, str) or not _frozen(weight, bias):
        return None   # padding="same" / unbatched input: ATen's pullback
    return _Conv2d.apply(x, weight, bias, _pair(stride), _pair(padding), _pair(dilation), groups)


def _norm(args: tuple, kwargs: dict) -> torch.Tensor | None:
    names = ("running_mean", "running_var", "weight", "bias", "training", "momentum", "eps")
    defaults = (None, None, None, None, False, 0.1, 1e-5)
    x, *rest = args
    vals = list(rest) + [kwargs.get(n, d) for n, d in zip(names[len(rest):], defaults[len(rest):])]
    if x.ndim < 2 or not _frozen(*vals[:4]) or (not vals[4] and vals[0] is None):
        return None
    return _BatchNorm.apply(x, *vals)


class CheapPullbacks(TorchFunctionMode):
    """While active, gelu, and conv2d and batch_norm calls with frozen parameters, record the pullbacks above."""

    def __torch_function__(self, fn, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if fn in _CONVS:
            out = _conv(args, kwargs)
        elif fn in _NORMS:
            out = _norm(args, kwargs)
        elif fn is F.gelu:
            out = _Gelu.apply(args[0], kwargs.get("approximate", args[1] if len(args) > 1 else "none"))
        else:
            out = None
        return fn(*args, **kwargs) if out is None else out

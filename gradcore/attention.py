"""Scaled and unscaled dot-product attention, its weights and their entropy.

The seeds claim the 1/√d_k factor keeps the logits' variance near 1 and the softmax
out of saturation (004 §3.3.2 eq. 3.3.6 and §3.3.3 "注意力权重的谱结构"; 002
"注意力机制中的缩放"). Attention itself is torch's
``F.scaled_dot_product_attention`` (``scale=1`` for the unscaled variant), so the
theorems measure torch's implementation.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import _validate as v


def _qk(q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    q = v.tensor(q, "q", min_ndim=2)
    k = v.tensor(k, "k", min_ndim=2)
    if q.shape[-1] != k.shape[-1]:
        v.fail("k", f"key dimension {k.shape[-1]} does not match query dimension {q.shape[-1]}")
    if q.dtype != k.dtype:
        v.fail("k", f"dtype {k.dtype} does not match q dtype {q.dtype}")
    v.same_device(q, k, "q", "k")
    try:
        torch.broadcast_shapes(q.shape[:-2], k.shape[:-2])
    except RuntimeError:
        v.fail("k", f"batch dims {tuple(k.shape[:-2])} do not broadcast with q's {tuple(q.shape[:-2])}")
    return q, k


def _finite(out: torch.Tensor, what: str) -> torch.Tensor:
    # |q|·|k| beyond the dtype's range gives ±inf logits, and softmax turns those into NaN
    return v.finite_result(out, "q", f"{what} overflows {out.dtype}; scale q and k down or use a wider dtype")


def scale_factor(d_k: int, scaled: bool) -> float:
    """The factor multiplying QKᵀ: 1/√d_k when ``scaled``, else 1."""
    d_k = v.integer(d_k, "d_k", minimum=1)
    return 1.0 / math.sqrt(d_k) if scaled else 1.0


def attention_logits(q: torch.Tensor, k: torch.Tensor, *, scaled: bool = True) -> torch.Tensor:
    """S = QKᵀ/√d_k (or QKᵀ when not ``scaled``); ``q`` is (..., n_q, d_k), ``k`` (..., n_k, d_k)."""
    q, k = _qk(q, k)
    return _finite((q @ k.transpose(-2, -1)) * scale_factor(q.shape[-1], scaled), "QKᵀ")


def attention_weights(q: torch.Tensor, k: torch.Tensor, scaled: bool = True) -> torch.Tensor:
    """A = softmax(QKᵀ/√d_k) over the keys (004 §3.3.3): non-negative and row-stochastic."""
    return torch.softmax(attention_logits(q, k, scaled=scaled), dim=-1)


def attention(q: torch.Tensor, k: torch.Tensor, val: torch.Tensor, *, scaled: bool = True) -> torch.Tensor:
    """softmax(QKᵀ/√d_k) V through torch's ``F.scaled_dot_product_attention``."""
    q, k = _qk(q, k)
    val = v.tensor(val, "v", min_ndim=2)
    if val.shape[-2] != k.shape[-2]:
        v.fail("v", f"has {val.shape[-2]} positions, k has {k.shape[-2]}")
    if val.dtype != q.dtype:
        v.fail("v", f"dtype {val.dtype} does not match q dtype {q.dtype}")
    v.same_device(q, val, "q", "v")
    try:
        torch.broadcast_shapes(q.shape[:-2], val.shape[:-2])
    except RuntimeError:
        v.fail("v", f"batch dims {tuple(val.shape[:-2])} do not broadcast with q's {tuple(q.shape[:-2])}")
    return _finite(F.scaled_dot_product_attention(q, k, val, scale=None if scaled else 1.0), "softmax(QKᵀ)V")


def unscaled_attention(q: torch.Tensor, k: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
    """softmax(QKᵀ) V: attention without the 1/√d_k factor the seeds argue for."""
    return attention(q, k, val, scaled=False)


def attention_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Shannon entropy −Σ_j A_ij log A_ij (nats) of each row; 0 for one-hot, log n_k for uniform."""
    a = v.tensor(weights, "weights", min_ndim=1)
    if bool((a < 0).any()):
        v.fail("weights", "has negative entries; expected attention probabilities")
    rows = a.sum(-1)
    if not torch.allclose(rows, torch.ones_like(rows), atol=1e-3 * a.shape[-1]):
        v.fail("weights", "rows do not sum to 1; expected attention probabilities")
    return -torch.special.xlogy(a, a).sum(-1)

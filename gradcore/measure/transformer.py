"""Pre-LN and Post-LN Transformer blocks measured: which formula a block computes, and how much of
the output gradient the identity path carries to the input (PLN-*).

Blocks are :mod:`gradcore.transformer`'s (whose state dict loads into torch's
``nn.TransformerEncoderLayer``); the formula gaps compare a written formula with torch's own
``nn.TransformerEncoderLayer(norm_first=…)``, so torch's implementation is what is measured.
Module initialisers draw from torch's global generator, so every network is built inside
:func:`seeded` (a forked CPU generator seeded explicitly): it depends on ``seed`` alone.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
from torch import nn

from .. import transformer as tr
from ..stats import MEAN_METHOD, mean_ci
from .seeding import seeded
from .measurement import Kind, Measurement, recipe

D_MODEL, HEADS, D_FF = 32, 4, 64


Block = tr.PreLNBlock | tr.PostLNBlock
FORMULAS: dict[str, Callable[[Block, torch.Tensor], torch.Tensor]] = {
    # Def. 3.3.12 as written: LN after each sublayer's residual addition
    "ln_after_add": lambda b, x: (lambda h: b.norm2(h + b.ffn(h)))(b.norm1(x + b.attn(x))),
    # LN at the input of each sublayer, inside the residual branch
    "ln_before_sublayer": lambda b, x: (lambda y: y + b.ffn(b.norm2(y)))(x + b.attn(b.norm1(x))),
    # the literal reading "LN between attention and FFN" only
    "ln_between": lambda b, x: (lambda w: w + b.ffn(b.norm2(w)))(x + b.attn(x)),
}


@recipe
def block_formula_gap(*, formula: str, norm_first: bool, bound: float | None = None, d_model: int = D_MODEL,
                      heads: int = HEADS, d_ff: int = D_FF, seed: int = 0, device: str = "cpu") -> Measurement:
    """PLN-01/03: ‖formula(x) − torch TransformerEncoderLayer(norm_first)(x)‖ / ‖torch(x)‖ (float32).

    ``formula``: "ln_after_add" (Def. 3.3.12: h = LN₁(x + Attn(x)), LN₂(h + FFN(h))),
    "ln_before_sublayer" (x + Attn(LN₁(x)), then + FFN(LN₂(·))) or "ln_between" (LN only between
    attention and FFN). Both sides share one block's weights (built from ``seed``); x ~ N(0, 1) of
    shape (2, 6, d_model). With ``bound`` the gap is a rounding residual that must stay within it.
    """
    with seeded(seed):
        b = tr.block("pre", d_model, heads, d_ff)
        ref = nn.TransformerEncoderLayer(d_model, heads, d_ff, dropout=0.0, batch_first=True, norm_first=norm_first)
    b, ref = b.to(device), ref.to(device)
    ref.load_state_dict(b.state_dict())
    x = torch.randn(2, 6, d_model, generator=torch.Generator().manual_seed(seed)).to(device)
    with torch.no_grad():
        want = ref(x)
        gap = float((FORMULAS[formula](b, x) - want).norm() / want.norm())
    sizes = {"d_model": d_model, "heads": heads, "d_ff": d_ff}
    if bound is not None:
        return Measurement(gap, Kind.ROUNDING, "float32", device, sizes, bound=bound)
    # A relative gap between two O(1) float32 block outputs: a few ulp per accumulated sum.
    return Measurement(gap, Kind.NUMERIC, "float32", device, sizes, conditioning=10.0)


@functools.lru_cache(maxsize=128)
def _gradients(kind: str, depth: int, seed: int, d_model: int, heads: int, d_ff: int,
               device: str) -> tuple[float, float]:
    """(⟨∂L/∂x₀, g⟩/‖g‖², ‖∂L/∂x₀‖/‖g‖) of one stack at init for L = ⟨g, output⟩, g ~ N(0, 1):
    the share of the output gradient the identity path carries unchanged, and the input gradient's
    size. Network, input and g come from ``seeded(seed)`` (drawn on the CPU, then moved)."""
    with seeded(seed):
        model = tr.stack(kind, depth, d_model, heads, d_ff)
        x = torch.randn(2, 8, d_model)
        g = torch.randn(2, 8, d_model)
    model, x, g = model.to(device), x.to(device).requires_grad_(True), g.to(device)
    model(x).backward(g)
    return float((x.grad * g).sum() / g.pow(2).sum()), float(x.grad.norm() / g.norm())


@recipe
def identity_path_share(*, kind: str, depth: int, seeds: int = 3, d_model: int = D_MODEL, heads: int = HEADS,
                        d_ff: int = D_FF, device: str = "cpu") -> Measurement:
    """PLN-02: mean over ``seeds`` stacks of ⟨∂L/∂x₀, ∂L/∂x_L⟩ / ‖∂L/∂x_L‖² (1 when the input receives
    the output gradient unchanged), with its Student-t interval; float32, ``kind`` "pre" or "post"."""
    shares = [_gradients(kind, depth, s, d_model, heads, d_ff, device)[0] for s in range(seeds)]
    value, lo, hi = mean_ci(shares)
    return Measurement(value, Kind.STATISTICAL, "float32", device,
                       {"depth": depth, "seeds": seeds, "d_model": d_model, "heads": heads, "d_ff": d_ff},
                       interval=(lo, hi), method=MEAN_METHOD, n=seeds)


def input_gradient_ratio(*, kind: str, depth: int, seeds: int = 3, d_model: int = D_MODEL, heads: int = HEADS,
                         d_ff: int = D_FF, device: str = "cpu") -> float:
    """Geometric mean over the same stacks of ‖∂L/∂x₀‖ / ‖∂L/∂x_L‖ (for curves and notes)."""
    ratios = [_gradients(kind, depth, s, d_model, heads, d_ff, device)[1] for s in range(seeds)]
    return math.exp(sum(math.log(r) for r in ratios) / len(ratios))


def layer_gradients(*, kind: str, depth: int = 16, seed: int = 0, d_model: int = D_MODEL, heads: int = HEADS,
                    d_ff: int = D_FF, device: str = "cpu") -> list[float]:
    """‖∂L/∂θ_l‖ per block of one stack (gradcore.transformer.gradient_profile), for curves."""
    with seeded(seed):
        model = tr.stack(kind, depth, d_model, heads, d_ff)
        x, up = torch.randn(4, 8, d_model), torch.randn(4, 8, d_model)
    return tr.gradient_profile(model.to(device), x.to(device), up.to(device)).param.cpu().tolist()

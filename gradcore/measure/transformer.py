"""Pre-LN and Post-LN Transformer blocks measured: which formula a block computes, and how much of
the output gradient the identity path carries to the input (PLN-*).

Blocks are :mod:`gradcore.transformer`'s (whose state dict loads into torch's
``nn.TransformerEncoderLayer``); the formula gaps compare a written formula with torch's own
``nn.TransformerEncoderLayer(norm_first=…)``, so torch's implementation is what is measured.
Module initialisers draw from torch's global generator, so every network is built inside
:func:`seeded` (a forked CPU generator seeded explicitly): it depends on ``seed`` alone.

A user's block (``gradcore check``, kind ``transformer``) is passed as ``kind``: a factory
``d -> block`` (a :class:`~gradcore.measure.Given`) whose blocks map (batch, tokens, d) to the same
shape; the stacks below are then ``depth`` freshly drawn blocks of it, in eval mode (dropout off).
"""
from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import transformer as tr
from ..errors import InputError
from ..stats import MEAN_METHOD, PER_SEED_LOGLOG_SLOPES, PER_SEED_SLOPES, mean_ci, per_seed_slope_ci
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


class FreshCopies:
    """A block instance as a factory ``d -> block`` at its own width: each call a deep copy whose
    parameters its submodules' ``reset_parameters`` draw afresh (torch's init: a custom init is not
    kept; pass a factory to keep it)."""

    def __init__(self, block: nn.Module) -> None:
        self.block = block

    def __repr__(self) -> str:
        return f"FreshCopies({self.block!r})"

    def __call__(self, d_model: int) -> nn.Module:
        made = copy.deepcopy(self.block)
        for m in made.modules():
            reset = getattr(m, "reset_parameters", None) or getattr(m, "_reset_parameters", None)
            if callable(reset):
                reset()
        return made


def user_block(make: Any, d_model: int) -> nn.Module:
    """``make(d_model)`` in eval mode (dropout off: the claims are about the network at init)."""
    block = make(d_model)
    if not isinstance(block, nn.Module):
        raise InputError(f"kind: the factory returned {type(block).__name__}, expected an nn.Module block")
    return block.eval()


def build_stack(kind: Any, depth: int, d_model: int, heads: int, d_ff: int, final_norm: bool = False
                ) -> nn.Sequential:
    """gradcore's ``kind`` ("pre"/"post") stack, or ``depth`` blocks of a user's factory drawn in turn
    (``heads`` and ``d_ff`` are then the factory's business), optionally closed by a LayerNorm."""
    if isinstance(kind, str):
        return tr.stack(kind, depth, d_model, heads, d_ff, final_norm=final_norm)
    layers = [user_block(kind, d_model) for _ in range(depth)]
    return nn.Sequential(*layers, *([nn.LayerNorm(d_model)] if final_norm else []))


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


PLACEMENT_PARTS = ("output rms", "passthrough")


@recipe
def block_placement(*, kind: Any, part: str, d_model: int = D_MODEL, scale: float = 100.0, seed: int = 0,
                    device: str = "cpu") -> Measurement:
    """PLN-01/03 (transformer contract): where a block's LayerNorm sits, measured on one block (``kind``
    "pre", "post" or a factory ``d -> block``) at x ~ N(0, scale²) of shape (2, 8, d_model), float64.
    ``part`` "output rms": max over tokens of |RMS(y_t) − 1|, 0 when the block's output is normalised
    (Post-LN, DeepNorm: LN after the residual addition); "passthrough": ‖y − x‖ / ‖x‖, which falls like
    1/scale when the input reaches the output un-normalised (Pre-LN, sandwich-LN: LN inside the branch)."""
    if part not in PLACEMENT_PARTS:
        raise InputError(f"part: expected one of {', '.join(PLACEMENT_PARTS)}, got {part!r}")
    with seeded(seed):
        block = build_stack(kind, 1, d_model, HEADS, D_FF)[0].double().to(device)
        x = (torch.randn(2, 8, d_model, dtype=torch.float64) * scale).to(device)
    with torch.no_grad():
        y = block(x)
    if part == "output rms":
        value = float((y.pow(2).mean(-1).sqrt() - 1).abs().max())
    else:
        value = float((y - x).norm() / x.norm())
    # a deterministic float64 value: rounding of a few ulp per accumulated sum over d_model
    return Measurement(value if math.isfinite(value) else math.inf, Kind.NUMERIC, "float64", device,
                       {"d_model": d_model, "scale": scale, "tokens": 16}, conditioning=float(d_model))


def _cached_for_builtins(maxsize: int | None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``functools.lru_cache`` for gradcore's own kinds ("pre", "post"); a user's factory is measured afresh
    each time (it may be unhashable, or change between checks)."""
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        cached = functools.lru_cache(maxsize=maxsize)(fn)

        @functools.wraps(fn)
        def call(kind: Any, *args: Any) -> Any:
            return (cached if isinstance(kind, str) else fn)(kind, *args)
        return call
    return wrap


@_cached_for_builtins(maxsize=128)
def _gradients(kind: Any, depth: int, seed: int, d_model: int, heads: int, d_ff: int,
               device: str) -> tuple[float, float]:
    """(⟨∂L/∂x₀, g⟩/‖g‖², ‖∂L/∂x₀‖/‖g‖) of one stack at init for L = ⟨g, output⟩, g ~ N(0, 1):
    the share of the output gradient the identity path carries unchanged, and the input gradient's
    size. Network, input and g come from ``seeded(seed)`` (drawn on the CPU, then moved)."""
    with seeded(seed):
        model = build_stack(kind, depth, d_model, heads, d_ff)
        x = torch.randn(2, 8, d_model)
        g = torch.randn(2, 8, d_model)
    model, x, g = model.to(device), x.to(device).requires_grad_(True), g.to(device)
    model(x).backward(g)
    return float((x.grad * g).sum() / g.pow(2).sum()), float(x.grad.norm() / g.norm())


@recipe
def identity_path_share(*, kind: Any, depth: int, seeds: int = 3, d_model: int = D_MODEL, heads: int = HEADS,
                        d_ff: int = D_FF, device: str = "cpu") -> Measurement:
    """PLN-02: mean over ``seeds`` stacks of ⟨∂L/∂x₀, ∂L/∂x_L⟩ / ‖∂L/∂x_L‖² (1 when the input receives
    the output gradient unchanged), with its Student-t interval; float32, ``kind`` "pre", "post" or a
    factory ``d -> block`` (a user's, built at ``d_model``)."""
    shares = [_gradients(kind, depth, s, d_model, heads, d_ff, device)[0] for s in range(seeds)]
    value, lo, hi = mean_ci(shares)
    return Measurement(value, Kind.STATISTICAL, "float32", device,
                       {"depth": depth, "seeds": seeds, "d_model": d_model, "heads": heads, "d_ff": d_ff},
                       interval=(lo, hi), method=MEAN_METHOD, n=seeds)


def input_gradient_ratio(*, kind: Any, depth: int, seeds: int = 3, d_model: int = D_MODEL, heads: int = HEADS,
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


# Xiong et al. 2020 (LIT-10): width d = d_ff = 64, 4 heads, Xavier-Gaussian weights and zero biases
# (their §3 setting), 4 sequences of 16 tokens with x ~ N(0, I_d) per token, float64.
XIONG = {"d_model": 64, "heads": 4, "d_ff": 64, "batch": 4, "tokens": 16}


def _xiong_stack(kind: Any, depth: int, seed: int, final_norm: bool = False, d_model: int = XIONG["d_model"]
                 ) -> tuple[nn.Sequential, torch.Tensor, torch.Tensor]:
    """A seeded float64 stack initialised as in Xiong et al. §3 (d_ff = d; a user's factory keeps its
    own init), an input x and an output gradient g."""
    p = XIONG
    with seeded(seed):
        # cast before drawing: float64 normals come from one kernel on every CPU, float32 ones do not
        model = build_stack(kind, depth, d_model, p["heads"], d_model, final_norm=final_norm).double()
        if isinstance(kind, str):
            tr.xavier_init_(model)
        x, g = (torch.randn(p["batch"], p["tokens"], d_model, dtype=torch.float64) for _ in range(2))
    return model, x, g


def _mean_square(t: torch.Tensor) -> float:
    return float(t.pow(2).sum(-1).mean() / t.shape[-1])


@_cached_for_builtins(maxsize=None)
def _residual_norms(kind: Any, depth: int, seed: int, d_model: int = XIONG["d_model"]) -> tuple[float, ...]:
    """E‖r_l‖²/d per block; for a user's block r_l is its output, the residual stream x_{l+1}."""
    model, x, _ = _xiong_stack(kind, depth, seed, d_model=d_model)
    if isinstance(kind, str):
        return tuple(tr.residual_norms(model, x).tolist())
    norms = []
    with torch.no_grad():
        for block in model:
            x = block(x)
            norms.append(_mean_square(x))
    return tuple(norms)


def _xiong_sizes(d_model: int = XIONG["d_model"], **sizes: object) -> dict:
    return {**sizes, "d_model": d_model, "d_ff": d_model, "tokens": XIONG["batch"] * XIONG["tokens"]}


def residual_norm_rows(kind: Any, depth: int = 16, seeds: int = 8, d_model: int = XIONG["d_model"]) -> np.ndarray:
    """LIT-10: (seeds, depth) array of E‖r_l‖²/d, one stack per seed (for estimates, figures, notes)."""
    return np.array([_residual_norms(kind, depth, s, d_model) for s in range(seeds)])


def _estimate(ci: tuple[float, float, float], seeds: int, sizes: dict, method: str = MEAN_METHOD) -> Measurement:
    """(value, low, high) over ``seeds`` stacks as a statistical measurement at Xiong et al.'s sizes."""
    value, lo, hi = ci
    return Measurement(value, Kind.STATISTICAL, "float64", "cpu", _xiong_sizes(**sizes, seeds=seeds),
                       interval=(lo, hi), method=method, n=seeds)


@recipe
def residual_norm(*, kind: Any, layer: int, depth: int = 16, seeds: int = 8,
                  d_model: int = XIONG["d_model"]) -> Measurement:
    """LIT-10: E‖r_l‖²/d at block ``layer`` (1-based) of a ``depth``-block stack, Student-t interval over
    ``seeds`` stacks. r_l is x^{post,5}_l for Post-LN, x^{pre}_{l+1} for Pre-LN
    (:func:`gradcore.transformer.residual_norms`), a user's block's output for a factory ``kind``."""
    if not 1 <= layer <= depth:
        raise InputError(f"layer: expected 1 … depth = {depth}, got {layer}")
    at_layer = residual_norm_rows(kind, depth, seeds, d_model)[:, layer - 1]
    return _estimate(mean_ci(at_layer), seeds, {"layer": layer, "depth": depth, "d_model": d_model})


@recipe
def residual_norm_average(*, kind: str = "post", depth: int = 16, seeds: int = 8) -> Measurement:
    """LIT-10: per stack, E‖r_l‖²/d averaged over its blocks; Student-t interval over stacks
    (Xiong et al.'s Lemma: 3/2 at every block of a Post-LN stack)."""
    return _estimate(mean_ci(residual_norm_rows(kind, depth, seeds).mean(axis=1)), seeds, {"depth": depth})


@recipe
def residual_norm_slope(*, kind: Any = "post", depth: int = 16, seeds: int = 8,
                        d_model: int = XIONG["d_model"]) -> Measurement:
    """LIT-10: per stack, the least-squares slope of E‖r_l‖²/d on l; Student-t interval over stacks
    (0 when the norm does not change with depth, as the Lemma says of Post-LN)."""
    rows = residual_norm_rows(kind, depth, seeds, d_model)
    ci = per_seed_slope_ci(list(range(1, depth + 1)), rows, log_y=False)
    return _estimate(ci, seeds, {"depth": depth, "d_model": d_model}, PER_SEED_SLOPES)


@recipe
def residual_norm_increment(*, kind: Any = "pre", depth: int = 16, seeds: int = 8,
                            d_model: int = XIONG["d_model"]) -> Measurement:
    """LIT-10: per stack, the mean over blocks l of (E‖r_l‖²/d − 1)/l, the average growth per block;
    Student-t interval over stacks. The Lemma's Pre-LN bounds (1 + l/2)d ≤ E‖x_l‖² ≤ (1 + 3l/2)d
    put it in [1/2, 3/2]."""
    rows = residual_norm_rows(kind, depth, seeds, d_model)
    ci = mean_ci(((rows - 1) / np.arange(1, depth + 1)).mean(axis=1))
    return _estimate(ci, seeds, {"depth": depth, "d_model": d_model})


def residual_norm_curve(*, kind: str, depth: int = 16, seeds: int = 8) -> tuple[list[int], list[float]]:
    """LIT-10 curve: block l and the mean over seeds of E‖r_l‖²/d (for figures)."""
    return list(range(1, depth + 1)), residual_norm_rows(kind, depth, seeds).mean(axis=0).tolist()


@_cached_for_builtins(maxsize=None)
def _last_ffn_gradient(kind: Any, depth: int, seed: int, d_model: int = XIONG["d_model"]) -> float:
    """‖∂L/∂W^{2,L}‖_F, the last block's second FFN weight, for L = ⟨g, output⟩ (Pre-LN with its final LN);
    for a user's factory, ‖∂L/∂θ_L‖ over all the last block's parameters, the stack closed by a LayerNorm
    (Pre-LN's; LN(LN(x)) = LN(x) for a block whose output is already normalised)."""
    user = not isinstance(kind, str)
    model, x, g = _xiong_stack(kind, depth, seed, final_norm=user or kind == "pre", d_model=d_model)
    model(x).backward(g)
    if user:
        grads = [p.grad for p in model[depth - 1].parameters() if p.grad is not None]
        return math.sqrt(sum(float(g.pow(2).sum()) for g in grads))
    return float(model[depth - 1].linear2.weight.grad.norm())


def last_ffn_gradients(*, kind: Any, depths: tuple[int, ...], seeds: int,
                       d_model: int = XIONG["d_model"]) -> list[list[float]]:
    """Per seed, ‖∂L/∂W^{2,L}‖_F at each depth (for the exponent and figures)."""
    return [[_last_ffn_gradient(kind, d, s, d_model) for d in depths] for s in range(seeds)]


@recipe
def last_ffn_gradient_exponent(*, kind: Any, depths: tuple[int, ...] = (2, 4, 8, 16, 32, 64),
                               seeds: int = 6, d_model: int = XIONG["d_model"]) -> Measurement:
    """LIT-10: the exponent p of ‖∂L/∂W^{2,L}‖_F ∝ L^p, one log–log slope per seed (a stack per depth
    and seed), with its Student-t interval. Xiong et al.'s Theorem 1 bounds the norm by O(d√(ln d))
    for Post-LN (p = 0) and O(d√(ln d / L)) for Pre-LN (p = −1/2). A factory ``kind``: the gradient
    over the last block's parameters (:func:`_last_ffn_gradient`)."""
    per_seed = last_ffn_gradients(kind=kind, depths=depths, seeds=seeds, d_model=d_model)
    ci = per_seed_slope_ci([math.log(d) for d in depths], per_seed)
    return _estimate(ci, seeds, {"depths": list(depths), "d_model": d_model}, PER_SEED_LOGLOG_SLOPES)

"""Contracts for skip architectures: concatenating dense blocks and encoder–decoders with long skips.

``dense``: a factory ``make(k, width)`` building a block of k layers that maps (batch, width) to
(batch, features) — DenseNet-like. Claims DENSE-01 (002 §残差与密集连接: with concatenation the
Jacobian norm grows "大致为 √k") and DENSE-02 (concatenation propagates gradients more stably than
summation), measured by :mod:`gradcore.measure.dense` on the user's block.

``unet``: a factory ``make(depth)`` building an encoder–decoder of ``depth`` levels that maps
N×C×16×16 to a 4-D output — U-Net-like. Claim UNET-01 (long skips shorten the gradient path to the
first encoder layer), measured by :mod:`gradcore.measure.unet` on the user's model against
gradcore's U-Net with its skips off. A factory whose depth (or k) cannot be varied is refused.
"""
from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import nn

from ...dense import DenseBlock
from ...measure import dense as D
from ...measure import unet as U
from ...unet import UNet
from ..verdicts import decide
from .base import Clause, Outcome, Settings, callable_or_fail
from ...errors import CheckError
from .contract import Contract, Subject
from .convolution import shaped_output

WIDTH, KS = 16, (2, 4, 8, 16)
SQRT_K = 0.5 + 0.1           # DENSE-01's exponent 1/2 with the claim's tolerance
DEPTHS, SIDE = (1, 2, 3, 4), 16
SHORTER = 0.5                # UNET-01: the skips at least halve the decay rate per level


def _size(m: Any) -> int | None:
    return sum(p.numel() for p in m.parameters()) if isinstance(m, nn.Module) else None


def _build(obj: Any, args: tuple[int, ...], must: str) -> Any:
    try:
        return obj(*args)
    except Exception as e:
        call = f"make({', '.join(map(str, args))})"
        raise CheckError(f"{must}; {call} failed: {type(e).__name__}: {e}") from None


# --- dense ------------------------------------------------------------------------------------

DENSE_MUST = "a dense-block factory must accept (k, width) and return a module mapping (batch, width) to (batch, …)"


def _factory(obj: Any, refusal: str) -> Any:
    """``obj`` as a factory: callable, and not a module built already (``refusal``: its size cannot vary)."""
    callable_or_fail(obj)
    if isinstance(obj, nn.Module):
        raise CheckError(refusal)
    return obj


def dense_prepare(obj: Any, settings: Settings) -> Any:
    return _factory(obj, f"{DENSE_MUST}, not a module built already (its k cannot be varied)")


def dense_smoke(obj: Any, settings: Settings) -> None:
    blocks = [_build(obj, (k, WIDTH), DENSE_MUST) for k in KS[:2]]
    x = settings.randn(4, WIDTH, offset=13)
    for k, block in zip(KS[:2], blocks):
        if not callable(block):
            raise CheckError(f"{DENSE_MUST}; make({k}, {WIDTH}) returned {type(block).__name__}")
        block = block.to(device=settings.device, dtype=torch.float64) if isinstance(block, nn.Module) else block
        shaped_output(block, x, f"block make({k}, {WIDTH})", "must map (batch, width) to (batch, features);")
    sizes = [_size(b) for b in blocks]
    if None not in sizes and sizes[0] == sizes[1]:
        raise CheckError(f"make(k, {WIDTH}) built {sizes[0]} parameters for both k = {KS[0]} and {KS[1]}: "
                         "the factory must add layers as k grows")


def _takes(obj: Any, count: int) -> str | None:
    """Inference: why ``obj`` is no factory of ``count`` arguments (an instance, or a call that cannot
    bind them; a class is asked about its constructor), or None."""
    if isinstance(obj, nn.Module):
        return "it is an nn.Module instance, not a factory"
    try:
        inspect.signature(obj).bind(*range(1, count + 1))
        return None
    except (TypeError, ValueError):
        return f"it cannot be called with {count} positional argument(s)"


def sqrt_k_growth(s: Subject, settings: Settings) -> Outcome:
    p = D.user_jacobian_slope(make=s.given, ks=KS, width=WIDTH, seeds=settings.seeds + 2, device=settings.device)
    holds = decide("<=", SQRT_K, p.value, 0.0, p.interval)
    lo, hi = p.interval
    cex = None if holds is not False else {"k": list(KS), "width": WIDTH, "exponent p": p, "snippet": p.reproduction}
    constants = {"exponent p of ‖J‖₂ ∝ k^p": p, "p 95% CI": f"[{lo:.3f}, {hi:.3f}]", "k": str(list(KS))}
    return Outcome(holds, constants, cex, note="" if holds is not None else "the interval straddles 0.6")


def versus_sum(s: Subject, settings: Settings) -> Outcome:
    k = KS[-1]
    gap = D.sum_over_user(make=s.given, k=k, width=WIDTH, seeds=settings.seeds + 2, device=settings.device)
    holds = decide(">", 0.0, gap.value, 0.0, gap.interval)
    return Outcome(holds, {f"log(‖J_sum‖₂/‖J‖₂) at k = {k}": gap,
                           "ratio": math.exp(gap.value) if abs(gap.value) < 700 else gap.value,
                           "summing block": "gradcore DenseBlock, tanh, gain 1"})


DENSE_CLAUSES = (
    Clause("sqrt-k-growth", ("DENSE-01",),
           f"‖∂out/∂x‖₂ grows no faster than √k in the number of layers k: exponent p ≤ {SQRT_K:g} "
           f"(k = {', '.join(map(str, KS))}, width {WIDTH})", sqrt_k_growth),
    Clause("versus-sum", ("DENSE-02",),
           f"at k = {KS[-1]} the block's Jacobian norm is below a summing dense block's (tanh, gain 1)",
           versus_sum, gate=False),
)


def concat_relu_he(k: int, width: int) -> DenseBlock:
    """Concatenating dense block, ReLU with He gain √2 (variance-preserving, DENSE-01's assumption)."""
    return DenseBlock(k, width, "concat", activation="relu", gain=math.sqrt(2))


def summing_block(k: int, width: int) -> DenseBlock:
    """The same layers aggregated by summation (DENSE-02's contrast)."""
    return DenseBlock(k, width, "sum")


def dense_objects() -> dict[str, Any]:
    return {"DenseBlock (concat, tanh)": DenseBlock, "concat, ReLU, He gain": concat_relu_he,
            "sum, tanh": summing_block}


# --- unet -------------------------------------------------------------------------------------

UNET_MUST = "an encoder–decoder factory must accept the depth (number of levels) and return an nn.Module"


def _unet_output(net: Any, depth: int, settings: Settings) -> torch.Tensor:
    first = U.first_conv(net) if isinstance(net, nn.Module) else None
    if first is None:
        raise CheckError(f"{UNET_MUST}; make({depth}) returned {type(net).__name__}")
    x = settings.randn(2, first.in_channels, SIDE, SIDE, offset=17, dtype=torch.float32)
    return shaped_output(net.to(device=settings.device, dtype=torch.float32), x, f"model make({depth})",
                         "must map N×C×H×W to N×C′×H′×W′;")


def unet_prepare(obj: Any, settings: Settings) -> Any:
    return _factory(obj, f"{UNET_MUST}, not a model built already (its depth cannot be varied)")


def unet_smoke(obj: Any, settings: Settings) -> None:
    nets = [_build(obj, (d,), UNET_MUST) for d in DEPTHS[:2]]
    try:
        firsts = [U.first_conv(n).in_channels if isinstance(n, nn.Module) else None for n in nets]
    except Exception as e:
        raise CheckError(f"{UNET_MUST} holding an nn.Conv2d: {e}") from None
    if firsts[0] != firsts[1]:
        raise CheckError(f"make(1) and make(2) take {firsts[0]} and {firsts[1]} input channels: the argument must "
                         "be the depth, not a width")
    for d, net in zip(DEPTHS[:2], nets):
        _unet_output(net, d, settings)
    if _size(nets[0]) == _size(nets[1]):
        raise CheckError("make(1) and make(2) built the same number of parameters: the factory must build a "
                         "deeper model for a larger depth")


def long_skips(s: Subject, settings: Settings) -> Outcome:
    kw = dict(make=s.given, depths=DEPTHS, side=SIDE, seeds=settings.seeds, device=settings.device)
    ratio, slope = U.user_path_length_ratio(**kw), U.user_first_layer_slope(**kw)
    plain = U.first_layer_slope(skips=False, depths=DEPTHS, side=SIDE, seeds=settings.seeds, device=settings.device)
    holds = decide("<", SHORTER, ratio.value, 0.0, ratio.interval)
    lo, hi = ratio.interval
    constants = {"decay per level / U-Net without skips": ratio, "ratio 95% CI": f"[{lo:.3f}, {hi:.3f}]",
                 "slope of log‖∂L/∂W_1‖ per level": slope, "same, gradcore U-Net without skips": plain}
    cex = None if holds is not False else {"depths": list(DEPTHS), "input": f"2 × C × {SIDE} × {SIDE}",
                                           "ratio": ratio, "snippet": ratio.reproduction}
    return Outcome(holds, constants, cex)


UNET_CLAUSES = (
    Clause("long-skips", ("UNET-01",),
           f"the first encoder conv's gradient decays per level less than {SHORTER:g}× as fast as in gradcore's "
           f"U-Net with its long skips off (depths {', '.join(map(str, DEPTHS))})", long_skips),
)


def unet_with_skips(depth: int) -> UNet:
    """gradcore's U-Net as UNET-01 measures it: 8 channels, ReLU, long skips on."""
    return UNet(depth, 8)


def unet_without_skips(depth: int) -> UNet:
    """The same U-Net with zeros in place of the encoder maps (no long skips)."""
    return UNet(depth, 8, skips=False)


def unet_objects() -> dict[str, Any]:
    return {"UNet (long skips)": unet_with_skips, "UNet, skips off": unet_without_skips}


class DenseContract(Contract):
    """A factory ``make(k, width)`` of dense blocks whose k can be varied."""

    kind, binding, clauses = "dense", "make", DENSE_CLAUSES
    prepare, smoke = staticmethod(dense_prepare), staticmethod(dense_smoke)
    excludes, objects = staticmethod(lambda obj: _takes(obj, 2)), staticmethod(dense_objects)


class UNetContract(Contract):
    """A factory ``make(depth)`` of encoder–decoders whose depth can be varied."""

    kind, binding, clauses = "unet", "make", UNET_CLAUSES
    prepare, smoke = staticmethod(unet_prepare), staticmethod(unet_smoke)
    excludes, objects = staticmethod(lambda obj: _takes(obj, 1)), staticmethod(unet_objects)

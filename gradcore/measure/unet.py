"""How much U-Net long skips shorten the gradient path to the first layer (UNET-01).

One :class:`gradcore.unet.UNet` per seed s and depth d, drawn from torch's generator seeded with
100·s + d, is measured with its skips on and off (the same weights; zeros replace the encoder
maps): ‖∂⟨net(x), c⟩/∂W_1‖_F by :func:`gradcore.unet.first_layer_grad_norm`, with x and the
cotangent c drawn from ``Generator(s)``. Float32 convolutions; every estimate is over seeds. A user's
encoder–decoder comes in as a ``Given`` factory ``depth -> module`` (``gradcore check``'s ``unet``
kind), drawn and probed the same way, its first layer the first ``nn.Conv2d`` it holds.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..stats import MEAN_METHOD, mean_ci
from ..unet import UNet, first_layer_grad_norm
from .measurement import Given, Kind, Measurement, recipe
from .seeding import seeded

SIZES = ("depths", "channels", "side", "seeds")


@functools.lru_cache(maxsize=16)
def _grad_norms(depths: tuple[int, ...], channels: int, side: int, seeds: int, device: str
                ) -> dict[bool, np.ndarray]:
    """‖∂L/∂W_1‖_F with skips (True) and without (False): seeds (rows) × depths (columns)."""
    grads = {True: np.zeros((seeds, len(depths))), False: np.zeros((seeds, len(depths)))}
    for seed in range(seeds):
        for j, depth in enumerate(depths):
            with seeded(100 * seed + depth):
                net = UNet(depth, channels).to(device)
            gen = torch.Generator().manual_seed(seed)
            x = torch.randn(2, 1, side, side, generator=gen).to(device)
            cotangent = torch.randn(2, 1, side, side, generator=gen).to(device)
            for skips in (True, False):
                net.skips = skips
                grads[skips][seed, j] = first_layer_grad_norm(net, x, cotangent)
    return grads


def _slopes(depths: tuple[int, ...], channels: int, side: int, seeds: int, device: str, skips: bool) -> np.ndarray:
    """Each seed's least-squares slope of log‖∂L/∂W_1‖ per U-Net level."""
    return np.array([np.polyfit(depths, np.log(r), 1)[0]
                     for r in _grad_norms(depths, channels, side, seeds, device)[skips]])


def _estimate(values: Sequence[float], sizes: dict, device: str) -> Measurement:
    mean, lo, hi = mean_ci(values)
    return Measurement(mean, Kind.STATISTICAL, "float32", device, sizes, interval=(lo, hi), method=MEAN_METHOD,
                       n=len(values))


def gradient_curve(*, skips: bool, depths: Sequence[int] = (1, 2, 3, 4), channels: int = 8, side: int = 16,
                   seeds: int = 3, device: str = "cpu") -> list[float]:
    """The figure's curve: geometric mean over seeds of ‖∂L/∂W_1‖_F at each depth."""
    return list(np.exp(np.log(_grad_norms(tuple(depths), channels, side, seeds, device)[skips]).mean(0)))


@recipe
def first_layer_slope(*, skips: bool, depths: tuple[int, ...] = (1, 2, 3, 4), channels: int = 8, side: int = 16,
                      seeds: int = 3, device: str = "cpu") -> Measurement:
    """UNET-01: slope of log‖∂L/∂W_1‖ per U-Net level (mean over seeds of per-seed slopes)."""
    sizes = dict(zip(SIZES, (list(depths), channels, side, seeds)))
    return _estimate(_slopes(tuple(depths), channels, side, seeds, device, skips), sizes, device)


@recipe
def path_length_ratio(*, depths: tuple[int, ...] = (1, 2, 3, 4), channels: int = 8, side: int = 16,
                      seeds: int = 3, device: str = "cpu") -> Measurement:
    """UNET-01: decay rate per level with skips / without, per seed: the decay is proportional to the
    effective path length, so this is how much the skips shorten it."""
    with_, without = (_slopes(tuple(depths), channels, side, seeds, device, s) for s in (True, False))
    return _estimate(with_ / without, dict(zip(SIZES, (list(depths), channels, side, seeds))), device)


@recipe
def skip_gain(*, depth: int = 4, depths: tuple[int, ...] = (1, 2, 3, 4), channels: int = 8, side: int = 16,
              seeds: int = 3, device: str = "cpu") -> Measurement:
    """UNET-01: log(‖∂L/∂W_1‖ with skips / without) at ``depth`` (one of ``depths``), mean over seeds."""
    grads = _grad_norms(tuple(depths), channels, side, seeds, device)
    j = list(depths).index(depth)
    return _estimate(np.log(grads[True][:, j] / grads[False][:, j]), {"depth": depth, "channels": channels,
                                                                       "side": side, "seeds": seeds}, device)


def first_conv(net: nn.Module) -> nn.Conv2d:
    """The shallowest layer: ``net.first_layer`` when it has one, else the first nn.Conv2d it holds."""
    layer = getattr(net, "first_layer", None)
    layer = layer if isinstance(layer, nn.Conv2d) else next((m for m in net.modules() if isinstance(m, nn.Conv2d)),
                                                             None)
    if layer is None:
        raise InputError("make: the model holds no nn.Conv2d, so it has no first convolution to measure")
    return layer


def user_grad_norm(make: Any, depth: int, seed: int, side: int, device: str) -> float:
    """‖∂⟨net(x), c⟩/∂W_1‖_F of ``make(depth)`` drawn from seed 100·seed + depth, x (2 × C_in × side²)
    then c (the output's shape) from ``Generator(seed)``, float32; ∞ when it overflows."""
    with seeded(100 * seed + depth):
        net = make(depth).to(device=device, dtype=torch.float32)
    first = first_conv(net)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, first.in_channels, side, side, generator=gen).to(device)
    out = net(x)
    cotangent = torch.randn(out.shape, generator=gen).to(device)
    (grad,) = torch.autograd.grad((out * cotangent).sum(), first.weight)
    norm = float(grad.norm())
    return norm if math.isfinite(norm) else math.inf


def _user_slopes(make: Any, depths: tuple[int, ...], side: int, seeds: int, device: str) -> np.ndarray:
    """Each seed's slope of log‖∂L/∂W_1‖ per level for the user's model (−∞: the gradient vanished,
    ∞: it overflowed)."""
    slopes = []
    for seed in range(seeds):
        norms = np.array([user_grad_norm(make, d, seed, side, device) for d in depths])
        slopes.append(np.polyfit(depths, np.log(norms), 1)[0] if np.isfinite(norms).all() and (norms > 0).all()
                      else (math.inf if not np.isfinite(norms).all() else -math.inf))
    return np.array(slopes)


def _open_estimate(values: np.ndarray, sizes: dict, device: str) -> Measurement:
    """``_estimate``, or ±∞ with a degenerate interval when some value is not finite."""
    if np.isfinite(values).all():
        return _estimate(values, sizes, device)
    worst = float(values[~np.isfinite(values)][0])
    return Measurement(worst, Kind.STATISTICAL, "float32", device, sizes, interval=(worst, worst),
                       method=MEAN_METHOD, n=len(values))


@recipe
def user_first_layer_slope(*, make: Given, depths: tuple[int, ...] = (1, 2, 3, 4), side: int = 16, seeds: int = 3,
                           device: str = "cpu") -> Measurement:
    """UNET-01 for a user's model ``make(depth)``: slope of log‖∂L/∂W_1‖ per level, mean over seeds."""
    return _open_estimate(_user_slopes(make, tuple(depths), side, seeds, device),
                          {"depths": list(depths), "side": side, "seeds": seeds}, device)


@recipe
def user_path_length_ratio(*, make: Given, depths: tuple[int, ...] = (1, 2, 3, 4), side: int = 16, seeds: int = 3,
                           channels: int = 8, device: str = "cpu") -> Measurement:
    """UNET-01 for a user's model: per seed, its decay rate per level / that of gradcore's U-Net
    (``channels``) with the long skips off (the theorem's no-skip slopes); mean over seeds."""
    user = _user_slopes(make, tuple(depths), side, seeds, device)
    plain = _slopes(tuple(depths), channels, side, seeds, device, False)
    return _open_estimate(user / plain, {"depths": list(depths), "side": side, "seeds": seeds,
                                         "baseline channels": channels}, device)

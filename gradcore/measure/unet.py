"""How much U-Net long skips shorten the gradient path to the first layer (UNET-01).

One :class:`gradcore.unet.UNet` per seed s and depth d, drawn from torch's generator seeded with
100·s + d, is measured with its skips on and off (the same weights; zeros replace the encoder
maps): ‖∂⟨net(x), c⟩/∂W_1‖_F by :func:`gradcore.unet.first_layer_grad_norm`, with x and the
cotangent c drawn from ``Generator(s)``. Float32 convolutions; every estimate is over seeds.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from ..stats import MEAN_METHOD, mean_ci
from ..unet import UNet, first_layer_grad_norm
from .measurement import Kind, Measurement, recipe
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

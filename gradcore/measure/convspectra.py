"""Singular values of a convolution: per-frequency SVDs against the dense operator (LIT-02).

Sedghi, Gupta & Long 2019 (Theorem 6): the singular values of a circular multi-channel 2-D
convolution on an n×m input are the union over the n·m frequencies (u, v) of the singular
values of the c_out×c_in transfer matrix K̂(u, v). gradcore.conv computes them that way; the
reference is the SVD of the dense Jacobian (gradcore.jacobian) of the same layer.
"""
from __future__ import annotations

import torch

from .. import conv as C
from ..jacobian import jacobian
from .measurement import Kind, Measurement, recipe


def _layer(kind: str, channels: int, kernel_size: int, padding_mode: str, seed: int) -> torch.nn.Module:
    return C.make_conv(kind, channels, kernel_size, padding_mode=padding_mode,
                       generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _dense_singular_values(layer: torch.nn.Module, channels: int, n: int, m: int) -> torch.Tensor:
    shape = (1, channels, n, m)
    dense = jacobian(lambda x: layer(x.reshape(shape)).reshape(-1), torch.zeros(channels * n * m,
                                                                                 dtype=torch.float64))
    return torch.linalg.svdvals(dense.detach()).sort(descending=True).values


@recipe
def conv_spectrum_residual(*, kind: str = "standard", channels: int = 3, kernel_size: int = 3, n: int = 8,
                           m: int = 8, padding_mode: str = "circular", seed: int = 0) -> Measurement:
    """LIT-02: max_i |σ_i(dense) − σ_i(per-frequency)| / σ_max, both sorted, float64.

    ``padding_mode`` 'zeros' measures how far the circular theorem is from a zero-padded layer.
    """
    layer = _layer(kind, channels, kernel_size, padding_mode, seed)
    dense = _dense_singular_values(layer, channels, n, m)
    with torch.no_grad():
        # the per-frequency SVDs of the *circular* operator with the same weights
        fft = C.conv_singular_values(_layer(kind, channels, kernel_size, "circular", seed), n, m)
    residual = float((dense - fft).abs().max() / dense[0])
    # backward-stable SVDs of an N×N operator (N = c·n·m) and FFTs: a few N ulp of σ_max
    bound = 16 * channels * n * m * 2.0 ** -52
    return Measurement(residual, Kind.ROUNDING, "float64", "cpu",
                       {"channels": channels, "n×m": f"{n}×{m}", "kernel": kernel_size}, bound=bound)

"""2-D convolutions at He initialisation and their exact operator spectra.

002 §架构设计中的梯度稳定性 › 归一化层与架构细节 ("卷积类型的选择", claims CONV-01..04)
compares the Jacobian spectral norm of a depthwise separable convolution with that
of a standard one, "基于傅里叶分析". The layers here are ``torch.nn.Conv2d``
(stride 1, padding k//2, circular or zero padding) initialised with
``torch.nn.init.kaiming_normal_`` (fan_in, ReLU gain). A circular convolution is
block-diagonalised by the 2-D DFT (Sedghi, Gupta & Long 2019): its singular values on
an n×m input are those of the c_out×c_in matrices K̂(u, v) at the n·m frequencies,
and a composition of circular convolutions multiplies these matrices per frequency.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from . import _validate as v

PADDING_MODES = ("circular", "zeros")
KINDS = ("standard", "depthwise", "pointwise", "separable")


def _he_conv(c_in: int, c_out: int, k: int, groups: int, padding_mode: str,
             generator: torch.Generator | None, device: torch.device | str | None,
             dtype: torch.dtype | None) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, groups=groups, bias=False,
                     padding_mode=padding_mode, device=device, dtype=dtype)
    with torch.no_grad():
        nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu", generator=generator)
    return conv


def _check(channels: int, kernel_size: int, padding_mode: str) -> tuple[int, int, str]:
    channels = v.integer(channels, "channels", minimum=1)
    kernel_size = v.integer(kernel_size, "kernel_size", minimum=1)
    if kernel_size % 2 == 0:
        v.fail("kernel_size", f"must be odd so that padding k//2 keeps the size, got {kernel_size}")
    return channels, kernel_size, v.choice(padding_mode, "padding_mode", PADDING_MODES)


def make_conv(kind: str, channels: int, kernel_size: int = 3, *, padding_mode: str = "circular",
              generator: torch.Generator | None = None, device: torch.device | str | None = None,
              dtype: torch.dtype | None = None) -> nn.Module:
    """A He-initialised channels→channels convolution of the given ``kind``.

    ``standard``: k×k dense; ``depthwise``: k×k with groups=channels; ``pointwise``:
    1×1; ``separable``: depthwise k×k then pointwise 1×1, with no activation between
    (an ``nn.Sequential``). Weights come from ``generator`` when given.
    """
    kind = v.choice(kind, "kind", KINDS)
    c, k, mode = _check(channels, kernel_size, padding_mode)
    if dtype is not None:
        v.float_dtype(dtype)
    args = (generator, device, dtype)
    if kind == "standard":
        return _he_conv(c, c, k, 1, mode, *args)
    if kind == "depthwise":
        return _he_conv(c, c, k, c, mode, *args)
    if kind == "pointwise":
        return _he_conv(c, c, 1, 1, mode, *args)
    return nn.Sequential(_he_conv(c, c, k, c, mode, *args), _he_conv(c, c, 1, 1, mode, *args))


def standard_conv(channels: int, kernel_size: int = 3, **kw) -> nn.Module:
    return make_conv("standard", channels, kernel_size, **kw)


def depthwise_conv(channels: int, kernel_size: int = 3, **kw) -> nn.Module:
    return make_conv("depthwise", channels, kernel_size, **kw)


def pointwise_conv(channels: int, **kw) -> nn.Module:
    return make_conv("pointwise", channels, 1, **kw)


def separable_conv(channels: int, kernel_size: int = 3, **kw) -> nn.Module:
    return make_conv("separable", channels, kernel_size, **kw)


def frequency_response(weight: torch.Tensor, n: int, m: int, *, groups: int = 1,
                       onesided: bool = False) -> torch.Tensor:
    """K̂(u, v): the c_out×c_in transfer matrices of a circular conv at every frequency.

    ``weight`` has ``nn.Conv2d`` layout (c_out, c_in/groups, kh, kw). Returns a complex
    tensor (n, m, c_out, c_in). The kernel's placement and PyTorch's cross-correlation
    only change each K̂(u, v) by a unimodular scalar or a conjugation, which leaves
    singular values, and products of responses, unchanged. ``onesided`` keeps only the
    frequencies v ≤ m//2 (``rfft2``): a real kernel has K̂(−u, −v) = conj K̂(u, v), so these
    already hold every distinct singular value (enough for σ_max, at half the cost).
    """
    weight = v.tensor(weight, "weight", ndim=4, low_precision=False)   # no half-precision FFT on the CPU
    groups = v.integer(groups, "groups", minimum=1)
    n = v.integer(n, "n", minimum=weight.shape[2])
    m = v.integer(m, "m", minimum=weight.shape[3])
    c_out, c_in_g = weight.shape[:2]
    if c_out % groups:
        v.fail("groups", f"must divide c_out={c_out}, got {groups}")
    fft = torch.fft.rfft2 if onesided else torch.fft.fft2
    blocks = fft(weight, s=(n, m)).permute(2, 3, 0, 1).contiguous()  # (n, m', c_out, c_in/g)
    if groups == 1:
        return blocks
    # block-diagonal over groups: broadcast each block against the groups×groups identity
    blocks = blocks.reshape(n, blocks.shape[1], groups, c_out // groups, 1, c_in_g)
    eye = torch.eye(groups, dtype=blocks.dtype, device=blocks.device).reshape(groups, 1, groups, 1)
    return (blocks * eye).reshape(n, blocks.shape[1], c_out, groups * c_in_g)


def _is_depthwise(layer: nn.Conv2d) -> bool:
    return layer.groups == layer.in_channels == layer.out_channels


def module_response(module: nn.Module, n: int, m: int, *, onesided: bool = False) -> torch.Tensor:
    """Per-frequency transfer matrices of a circular ``nn.Conv2d`` or a Sequential of them.

    A composition applies its layers in order, so the matrices multiply right to left:
    K̂ = K̂_L ⋯ K̂_1 at each frequency. Depthwise layers stay diagonal (a vector per
    frequency) so that multiplying by them costs O(C²), not O(C³).
    """
    layers = list(module) if isinstance(module, nn.Sequential) else [module]
    if not layers:
        v.fail("module", "expected at least one convolution")
    out, diagonal = None, False
    for i, layer in enumerate(layers):
        if not isinstance(layer, nn.Conv2d):
            v.fail("module", f"layer {i} is {type(layer).__name__}, expected nn.Conv2d")
        if layer.padding_mode != "circular" or layer.stride != (1, 1) or layer.dilation != (1, 1):
            v.fail("module", f"layer {i}: the DFT diagonalises only stride-1, undilated, circular convolutions")
        if _is_depthwise(layer):
            d = frequency_response(layer.weight.detach(), n, m, groups=1, onesided=onesided)[..., 0]
            if out is None:
                out, diagonal = d, True
            else:  # diag(d) @ out scales rows
                out = d * out if diagonal else d[..., None] * out
            continue
        r = frequency_response(layer.weight.detach(), n, m, groups=layer.groups, onesided=onesided)
        if out is not None:  # r @ diag(out) scales columns
            r = r * out[..., None, :] if diagonal else r @ out
        out, diagonal = r, False
    return torch.diag_embed(out) if diagonal else out


def conv_singular_values(weight: torch.Tensor | nn.Module, n: int, m: int, *,
                         groups: int = 1) -> torch.Tensor:
    """All singular values of a circular convolution on an n×m input, descending.

    ``weight`` is a Conv2d weight (with ``groups``) or a circular conv module / Sequential
    of them (a composition). Exact, via the 2-D DFT and batched ``torch.linalg.svdvals``
    (Sedghi, Gupta & Long 2019) — on the one-sided half of the frequencies only: a real
    kernel has K̂(−u, −v) = conj K̂(u, v), the same singular values, so each mirrored
    column's values are counted twice instead of being computed twice.
    """
    resp = _response(weight, n, m, groups)
    svals = v.finite_result(torch.linalg.svdvals(resp), "weight",   # (n, m//2 + 1, min(c_out, c_in))
                            f"its singular values overflow {resp.real.dtype}; use float64")
    counts = _mirror_counts(m, resp.shape[1], resp.device)
    return svals.repeat_interleave(counts, dim=1).flatten().sort(descending=True).values


def _response(weight: torch.Tensor | nn.Module, n: int, m: int, groups: int) -> torch.Tensor:
    if isinstance(weight, nn.Module):
        return module_response(weight, n, m, onesided=True)
    return frequency_response(weight, n, m, groups=groups, onesided=True)


def _mirror_counts(m: int, columns: int, device: torch.device) -> torch.Tensor:
    # the one-sided half holds v = 0 (and v = m/2 for even m) once, every other column twice
    counts = torch.full((columns,), 2, dtype=torch.long, device=device)
    counts[0] = 1
    if m % 2 == 0:
        counts[-1] = 1
    return counts


def _top_singular_value(resp: torch.Tensor) -> float:
    """max over frequencies of σ_max(K̂(u, v)), from the Hermitian Gram matrix of the smaller side.

    ``eigvalsh`` of K̂ᴴK̂ (or K̂K̂ᴴ) skips the bidiagonalisation an SVD needs; its
    absolute error ε·σ_max² is a relative error ε on σ_max, so squaring costs no
    accuracy at the top. (Batched Lanczos over the frequencies needs ~C/2 steps of
    batched matrix–vector products, which measured slower than this on CPU.)
    """
    gram = resp.mH @ resp if resp.shape[-1] <= resp.shape[-2] else resp @ resp.mH
    return float(torch.linalg.eigvalsh(gram)[..., -1].max().clamp_min(0).sqrt())


def _gains(resp: torch.Tensor, n: int, m: int) -> tuple[float, float]:
    top, rms = _unscaled_gains(resp, n, m)
    if math.isfinite(top) and math.isfinite(rms):
        return top, rms
    # squares of a response near the dtype's limit overflow: both gains are homogeneous of degree 1
    scale = float(resp.abs().amax())
    if not math.isfinite(scale):
        v.fail("weight", f"its frequency response overflows {resp.real.dtype}; use a smaller kernel or float64")
    top, rms = _unscaled_gains(resp / scale, n, m)
    if not math.isfinite(top * scale):
        v.fail("weight", f"the convolution's gain overflows float64 ({top:.3g} × {scale:.3g})")
    return top * scale, rms * scale


def _unscaled_gains(resp: torch.Tensor, n: int, m: int) -> tuple[float, float]:
    twice = _mirror_counts(m, resp.shape[1], resp.device).to(resp.real.dtype)
    frob2 = (resp.abs().square().sum((-2, -1)) * twice).sum()
    rms = float((frob2 / (n * m * resp.shape[-1])).sqrt())
    return _top_singular_value(resp), rms


def conv_spectral_norm(weight: torch.Tensor | nn.Module, n: int, m: int, *, groups: int = 1) -> float:
    """σ_max of a circular convolution (or composition) on an n×m input, from half the spectrum."""
    return conv_gains(weight, n, m, groups=groups)[0]


def conv_rms_gain(weight: torch.Tensor | nn.Module, n: int, m: int, *, groups: int = 1) -> float:
    """‖J‖_F/√(n·m·c_in): the root-mean-square norm gain E‖Jx‖/‖x‖ on isotropic random x.

    Parseval gives ‖J‖_F² = Σ_{u,v} ‖K̂(u, v)‖_F², so no SVD is needed.
    """
    resp = _response(weight, n, m, groups)
    return _gains(resp, n, m)[1]


def conv_gains(weight: torch.Tensor | nn.Module, n: int, m: int, *, groups: int = 1) -> tuple[float, float]:
    """(σ_max, RMS gain) of a circular convolution from one one-sided spectrum."""
    return _gains(_response(weight, n, m, groups), n, m)


def relu_stack(blocks: Sequence[nn.Module], *, inner_relu: bool = False) -> nn.Sequential:
    """Each block followed by ReLU; with ``inner_relu`` a separable block also gets one
    between its depthwise and pointwise halves (MobileNet style)."""
    if len(blocks) == 0:
        v.fail("blocks", "expected at least one block")
    for i, b in enumerate(blocks):
        v.module(b, f"blocks[{i}]")
    layers: list[nn.Module] = []
    for b in blocks:
        if inner_relu and isinstance(b, nn.Sequential):
            for sub in b:
                layers += [sub, nn.ReLU()]
        else:
            layers += [b, nn.ReLU()]
    return nn.Sequential(*layers)

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

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from . import _validate as v
from . import lanczos

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


def _check_circular(layer: nn.Module, i: int) -> None:
    if not isinstance(layer, nn.Conv2d):
        v.fail("module", f"layer {i} is {type(layer).__name__}, expected nn.Conv2d")
    if layer.padding_mode != "circular" or layer.stride != (1, 1) or layer.dilation != (1, 1):
        v.fail("module", f"layer {i}: the DFT diagonalises only stride-1, undilated, circular convolutions")


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
        _check_circular(layer, i)
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


def _gram_top(resp: torch.Tensor) -> torch.Tensor:
    """σ_max(K̂(u, v)) of every block, from ``eigvalsh`` of the Hermitian Gram matrix of the smaller side."""
    gram = resp.mH @ resp if resp.shape[-1] <= resp.shape[-2] else resp @ resp.mH
    return torch.linalg.eigvalsh(gram)[..., -1].clamp_min(0).sqrt()


def _top_singular_value(resp: torch.Tensor) -> float:
    """max over frequencies of σ_max(K̂(u, v)), from the Hermitian Gram matrix of the smaller side.

    ``eigvalsh`` of K̂ᴴK̂ (or K̂K̂ᴴ) skips the bidiagonalisation an SVD needs; its
    absolute error ε·σ_max² is a relative error ε on σ_max, so squaring costs no
    accuracy at the top. O(C³) per frequency: ``conv_gains`` keeps it (the RMS gain needs the
    whole spectrum anyway); σ_max alone goes through :func:`top_frequency`.
    """
    return float(_gram_top(resp).max())


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
    """σ_max of a circular convolution (or composition) on an n×m input, from half the spectrum.

    By iteration per frequency (:func:`top_frequency`): Lanczos on every transfer matrix at once,
    the frequencies that cannot hold the maximum dropped, the few left solved exactly. Relative
    error ≤ 1e-9 in float64 (tests against the dense SVD); a float32 weight is measured in float32,
    to ≤ 2e-5 relative like CONV-01's per-frequency SVDs. Dropping a block on its Ritz value is
    what every Lanczos solver does, not a proof: where a certificate is needed (a bound a contract
    relies on) use :func:`conv_gains`, which solves every block, or :func:`conv_sigma_bracket`.
    """
    return top_frequency(weight, n, m, groups=groups).sigma


def conv_rms_gain(weight: torch.Tensor | nn.Module, n: int, m: int, *, groups: int = 1) -> float:
    """‖J‖_F/√(n·m·c_in): the root-mean-square norm gain E‖Jx‖/‖x‖ on isotropic random x.

    Parseval gives ‖J‖_F² = Σ_{u,v} ‖K̂(u, v)‖_F², so no SVD is needed.
    """
    resp = _response(weight, n, m, groups)
    return _gains(resp, n, m)[1]


def conv_gains(weight: torch.Tensor | nn.Module, n: int, m: int, *, groups: int = 1) -> tuple[float, float]:
    """(σ_max, RMS gain) of a circular convolution from one one-sided spectrum."""
    return _gains(_response(weight, n, m, groups), n, m)


# --- σ_max by iteration per frequency (issue 19) -------------------------------------------------

@dataclass(frozen=True)
class TopFrequency:
    """σ_max of a circular convolution and the frequency block holding it (see ``top_frequency``)."""

    sigma: float                 # max over the frequency blocks of σ_max(K̂(u, v))
    frequency: tuple[int, int]   # (u, v) of that block, v ≤ m//2 (its mirror (−u, −v) has the same σ)
    group: int                   # the group holding it (0 without groups)
    right: torch.Tensor          # (c_in/groups,) complex unit top right singular vector of that block
    candidates: int              # blocks the float32 sieve left for the final iteration
    blocks: int                  # frequency blocks in all: groups × n·(m//2 + 1)
    steps: int                   # Lanczos steps (each one product with every block left and its adjoint)
    # sigma is exact (to rounding) when the candidates were solved by eigh (side ≤ 128), else the
    # best Ritz value, within rtol below


def _phases(n: int, m: int, kh: int, kw: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(n·(m//2+1), kh·kw): e^{−2πi(u·a/n + v·b/m)}, the DFT of each kernel tap at each one-sided frequency."""
    u = torch.arange(n, dtype=torch.float64, device=device)[:, None, None, None]
    v = torch.arange(m // 2 + 1, dtype=torch.float64, device=device)[None, :, None, None]
    a = torch.arange(kh, dtype=torch.float64, device=device)[None, None, :, None]
    b = torch.arange(kw, dtype=torch.float64, device=device)[None, None, None, :]
    angle = -2 * math.pi * (torch.remainder(u * a, n) / n + torch.remainder(v * b, m) / m)
    return torch.polar(torch.ones_like(angle), angle).reshape((m // 2 + 1) * n, kh * kw).to(dtype)


def _mixing(phase: torch.Tensor) -> torch.Tensor:
    """(F, 2, 2T) real [[a, −b], [b, a]] for phases a + ib: [Re y; Im y] = it @ [Re z_t; Im z_t]_t."""
    a, b = phase.real, phase.imag
    return torch.stack([torch.cat([a, -b], -1), torch.cat([b, a], -1)], 1)


class _Blocks:
    """Products with the frequency blocks; ``members`` maps the iteration's member indices to blocks."""

    count: int
    co: int
    ci: int
    freqs: int
    members: torch.Tensor | None = None

    def restricted(self, members: torch.Tensor) -> "_Blocks":
        out = copy.copy(self)
        out.members = members if self.members is None else self.members[members]
        return out

    def _map(self, idx: torch.Tensor) -> torch.Tensor:
        return idx if self.members is None else self.members[idx]


class _TapBlocks(_Blocks):
    """K̂(u, v) = Σ_taps e^{−iω·tap} W_tap applied without being formed: one real GEMM with the
    stacked taps per product for all the frequencies left (C·taps·C per frequency against C² for
    a formed block, but no n·m·C² spectrum in memory), then a 2 × 2·taps real mixing per frequency."""

    def __init__(self, weight: torch.Tensor, n: int, m: int) -> None:
        self.co, self.ci, kh, kw = weight.shape
        self.taps = kh * kw
        self.phase = _phases(n, m, kh, kw, _COMPLEX[weight.dtype], weight.device)
        self.mix, self.mix_conj = _mixing(self.phase), _mixing(self.phase.conj())
        self.count = self.freqs = self.phase.shape[0]
        w = weight.reshape(self.co, self.ci, self.taps)
        self.fwd = w.permute(1, 2, 0).reshape(self.ci, self.taps * self.co)   # columns (tap, o)
        self.bwd = w.permute(0, 2, 1).reshape(self.co, self.taps * self.ci)   # columns (tap, i)
        self.flat = w.permute(2, 0, 1).reshape(self.taps, self.co * self.ci)  # rows: taps

    def _apply(self, mix: torch.Tensor, x: torch.Tensor, mats: torch.Tensor, width: int) -> torch.Tensor:
        # rows (member, re/im) through the stacked taps in one GEMM, then each member's phases
        z = (torch.view_as_real(x).mT.reshape(-1, x.shape[-1]) @ mats).reshape(len(x), 2 * self.taps, width)
        y = mix @ z                                                    # (b, 2, width): [Re; Im]
        return torch.complex(y[:, 0], y[:, 1])

    def matvec(self, idx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self._apply(self.mix[self._map(idx)], x, self.fwd, self.co)

    def rmatvec(self, idx: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._apply(self.mix_conj[self._map(idx)], y, self.bwd, self.ci)

    def dense(self, idx: torch.Tensor) -> torch.Tensor:
        ph = self.phase[self._map(idx)]
        return torch.complex(ph.real @ self.flat, ph.imag @ self.flat).reshape(-1, self.co, self.ci)


class _DenseBlocks(_Blocks):
    """Blocks formed in memory, (count, c_out, c_in): a composition's per-frequency products, or
    the (C/groups)² blocks of a grouped conv, one per group and frequency (group-major)."""

    def __init__(self, blocks: torch.Tensor, freqs: int) -> None:
        self.blocks = blocks
        self.count, self.co, self.ci = blocks.shape
        self.freqs = freqs

    def dense(self, idx: torch.Tensor) -> torch.Tensor:
        return self.blocks if self.members is None and len(idx) == self.count else self.blocks[self._map(idx)]

    def matvec(self, idx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return (self.dense(idx) @ x[..., None])[..., 0]

    def rmatvec(self, idx: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (y.conj()[:, None, :] @ self.dense(idx))[:, 0].conj()


_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}
_EXACT_SIDE = 128   # up to this (smaller) block side the candidates are solved by eigh, O(C³) each


def _exact_top(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(σ_max, unit top right singular vector) of each block, from the smaller Hermitian Gram matrix
    (``eigh``: its ε·σ_max² absolute error is ε relative on σ_max)."""
    tall = blocks.shape[-1] <= blocks.shape[-2]
    lam, vec = torch.linalg.eigh(blocks.mH @ blocks if tall else blocks @ blocks.mH)
    sigma, top = lam[..., -1].clamp_min(0).sqrt(), vec[..., -1]
    if not tall:   # a left vector u: the right one is K̂ᴴu / σ
        top = (blocks.mH @ top[..., None])[..., 0]
        top = top / torch.linalg.vector_norm(top, dim=-1, keepdim=True).clamp_min(torch.finfo(lam.dtype).tiny)
    return sigma, top


def _grouped_blocks(weight: torch.Tensor, groups: int, n: int, m: int) -> torch.Tensor:
    """(groups·F, c_out/g, c_in/g): each group's K̂_g(u, v), formed from the taps by one real GEMM."""
    c_out, c_in_g, kh, kw = weight.shape
    phase = _phases(n, m, kh, kw, _COMPLEX[weight.dtype], weight.device)             # (F, taps)
    w = weight.reshape(groups, c_out // groups * c_in_g, kh * kw).permute(2, 0, 1).reshape(kh * kw, -1)
    resp = torch.cat([phase.real, phase.imag]) @ w                                   # (2F, g·co·ci)
    resp = torch.complex(resp[:len(phase)], resp[len(phase):])
    return resp.reshape(len(phase), groups, c_out // groups, c_in_g).transpose(0, 1).reshape(-1, c_out // groups, c_in_g)


@dataclass(frozen=True)
class _Spectrum:
    """A circular conv's one-sided blocks, to be built in a chosen precision and scale."""

    source: torch.Tensor   # the kernel (c_out, c_in/g, kh, kw), or blocks already formed (count, co, ci)
    groups: int
    n: int
    m: int

    @property
    def real(self) -> torch.dtype:
        return self.source.real.dtype

    def at(self, dtype: torch.dtype, factor: float) -> _Blocks:
        """The blocks × ``factor`` (a power of two: exact) in ``dtype``."""
        # scaled in double precision: 1/2^e may be subnormal in float32
        if self.source.is_complex():
            return _DenseBlocks((self.source.to(torch.complex128) * factor).to(_COMPLEX[dtype]), self.source.shape[0])
        w = (self.source.to(torch.float64) * factor).to(dtype)
        if self.groups == 1:
            return _TapBlocks(w, self.n, self.m)
        return _DenseBlocks(_grouped_blocks(w, self.groups, self.n, self.m), self.n * (self.m // 2 + 1))

    def scale(self) -> float:
        """2^e just above the largest kernel entry (or block entry): dividing by it is exact."""
        top = float(self.source.abs().amax())
        if not math.isfinite(top):
            v.fail("weight", f"its frequency response overflows {self.real}; use a smaller kernel or float64")
        return 0.0 if top == 0.0 else 2.0 ** math.frexp(top)[1]


def _spectrum(weight: torch.Tensor | nn.Module, n: int, m: int, groups: int) -> _Spectrum:
    """The one-sided frequency blocks of a circular conv (a kernel's taps) or of a composition (formed)."""
    if isinstance(weight, nn.Module):
        layers = list(weight) if isinstance(weight, nn.Sequential) else [weight]
        if len(layers) != 1 or not isinstance(layers[0], nn.Conv2d):
            resp = module_response(weight, n, m, onesided=True)
            return _Spectrum(resp.reshape(-1, *resp.shape[-2:]), 1, n, m)
        _check_circular(layers[0], 0)
        weight, groups = layers[0].weight.detach(), layers[0].groups
    weight = v.tensor(weight, "weight", ndim=4, low_precision=False)
    groups = v.integer(groups, "groups", minimum=1)
    n = v.integer(n, "n", minimum=weight.shape[2])
    m = v.integer(m, "m", minimum=weight.shape[3])
    if weight.shape[0] % groups:
        v.fail("groups", f"must divide c_out={weight.shape[0]}, got {groups}")
    if weight.shape[2:] == (1, 1):   # a 1×1 kernel has the same block at every frequency
        n = m = 1
    return _Spectrum(weight, groups, n, m)


def top_frequency(weight: torch.Tensor | nn.Module, n: int, m: int, *, groups: int = 1,
                  rtol: float | None = None, seed: int = 0) -> TopFrequency:
    """σ_max of a circular convolution (or composition) on an n×m input by iteration per frequency.

    The blocks are the one-sided transfer matrices K̂(u, v), v ≤ m//2 (a real kernel has
    K̂(−u, −v) = conj K̂(u, v)), one per group. Golub–Kahan–Lanczos runs on all of them in
    lock-step (:func:`gradcore.lanczos.batch_max_singular_value`, one GEMM per product for all
    frequencies), and a block whose Ritz value plus residual falls below the best Ritz value is
    dropped. Two passes: a sieve in float32 without reorthogonalisation (blocks dropped only
    when 1e-4 below the best, far above float32 rounding) until at most 8 are left; then the
    candidates in the weight's dtype — solved exactly (``eigh`` of the smaller Gram matrix, as
    ``conv_gains`` does for every block) when their smaller side is ≤ 128, otherwise by the
    same Lanczos fully reorthogonalised, started from the sieve's vectors, until every one left
    has Ritz value + residual ≤ (1 + rtol)·best, whose best Ritz value is returned: below σ_max
    by at most ``rtol`` relative (default 1e-10 in float64, 64·ε in float32, the residuals'
    rounding floor). A float32 weight is measured in float32.
    """
    spec = _spectrum(weight, n, m, groups)
    rtol = max(1e-10, 64 * torch.finfo(spec.real).eps) if rtol is None else v.real(rtol, "rtol", positive=True)
    scale = spec.scale()
    exact = spec.at(spec.real, 1 / scale if scale else 1.0)
    gen = torch.Generator().manual_seed(seed)
    start = torch.randn(exact.count, exact.ci, dtype=_COMPLEX[spec.real], generator=gen).to(spec.source.device)
    if scale == 0.0:
        return TopFrequency(0.0, (0, 0), 0, start[0] / torch.linalg.vector_norm(start[0]), 0, exact.count, 0)
    total, steps = exact.count, min(exact.ci, exact.co + 1)   # a Krylov space this large makes the Ritz value exact
    members, sieved = torch.arange(exact.count, device=start.device), 0
    if exact.count > _SIEVE_KEEP and min(exact.co, exact.ci) > _SIEVE_SIDE:
        sieve = spec.at(torch.float32, 1 / scale) if spec.real != torch.float32 else exact
        res = lanczos.batch_max_singular_value(sieve.matvec, sieve.rmatvec, start.to(_COMPLEX[torch.float32]),
                                               rtol=_SIEVE_MARGIN, max_steps=steps, keep=_SIEVE_KEEP,
                                               margin=_SIEVE_MARGIN, reorthogonalise=False)
        members, start, sieved = res.active, res.right.to(start.dtype), res.steps
        exact = exact.restricted(members)
    if min(exact.co, exact.ci) <= _EXACT_SIDE:
        blocks = exact.dense(torch.arange(len(members), device=start.device))
        best, final = int(_gram_top(blocks).argmax()), 0
        sigma, right = (t[0] for t in _exact_top(blocks[best:best + 1]))
        sigma = float(sigma)
    else:
        res = lanczos.batch_max_singular_value(exact.matvec, exact.rmatvec, start, rtol=rtol, max_steps=steps)
        best, final = res.best, res.steps
        sigma, right = float(res.lower[best]), res.right[int((res.active == best).nonzero()[0, 0])]
    sigma = v.fits(sigma * scale, spec.real, "weight")
    block = int(members[best])
    f, m1 = block % exact.freqs, spec.m // 2 + 1
    return TopFrequency(sigma, (f // m1, f % m1), block // exact.freqs, right, len(members), total, sieved + final)


_SIEVE_KEEP = 8        # blocks left when the float32 sieve hands over
_SIEVE_SIDE = 16       # up to this side eigvalsh of every block costs less than the sieve (measured)
_SIEVE_MARGIN = 1e-4   # the sieve keeps every block within this of the best (float32 rounding ≪ it)


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


# --- certified brackets lower ≤ σ_max ≤ upper for any nn.Conv2d ----------------------------------

@dataclass(frozen=True)
class SigmaBracket:
    """lower ≤ σ_max(layer on an n×m input) ≤ upper, both certified (see ``conv_sigma_bracket``)."""

    lower: float          # ‖layer(v)‖/‖v‖ for the Lanczos right vector v, rounding allowance off
    upper: float          # Gram-iteration bound on the embedding circular conv, rounding allowance on
    grid: tuple[int, int] # the circular grid N×M whose operator norm bounds the layer's
    gram_iters: int       # Gram iterations taken
    steps: int            # Lanczos steps taken for the lower bound

    @property
    def gap(self) -> float:
        """upper / lower − 1: how far apart the two certificates are."""
        return self.upper / self.lower - 1 if self.lower > 0 else math.inf


def _dilated_weight(layer: nn.Conv2d) -> torch.Tensor:
    """The kernel with dilation written out as zeros: a dilated conv is a plain conv with it."""
    w = layer.weight.detach().to(torch.float64)
    dh, dw = layer.dilation
    if (dh, dw) == (1, 1):
        return w
    c_out, c_in, kh, kw = w.shape
    out = w.new_zeros(c_out, c_in, dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    out[:, :, ::dh, ::dw] = w
    return out


def embedding_grid(layer: nn.Conv2d, n: int, m: int) -> tuple[int, int]:
    """The N×M grid of a circular convolution whose norm bounds ``layer``'s on n×m inputs.

    Zero padding p then a 'valid' correlation with the (dilated) kernel reads only the padded
    (n+2p)×(m+2p) grid without wrapping, so it is R ∘ C ∘ E on any grid at least that large:
    E the zero-padding isometry, C the circular correlation (strided like the layer), R the
    selection of the valid outputs — a coordinate projection, ‖R‖ ≤ 1. Hence ‖layer‖ ≤ ‖C‖.
    The grid is rounded up to a multiple of the stride, where C has an exact stride-1 form
    (:func:`polyphase_weight`). Circular padding with output no larger than the input selects
    outputs of the circular correlation on n×m itself (N×M = n×m).
    """
    kh, kw = _dilated_weight(layer).shape[2:]
    ph, pw = layer.padding if isinstance(layer.padding, tuple) else (None, None)
    if ph is None:
        v.fail("layer", f"padding={layer.padding!r}: give integer padding")
    if layer.padding_mode == "circular":
        if 2 * ph > kh - 1 or 2 * pw > kw - 1:
            v.fail("layer", "circular padding wider than (kernel−1)/2 repeats outputs; the bound needs it no wider")
        return n, m
    if layer.padding_mode != "zeros":
        v.fail("layer", f"padding_mode {layer.padding_mode!r}: only 'zeros' and 'circular' are bounded")
    sh, sw = layer.stride
    return -(-max(n + 2 * ph, kh) // sh) * sh, -(-max(m + 2 * pw, kw) // sw) * sw


def polyphase_weight(weight: torch.Tensor, stride: tuple[int, int]) -> torch.Tensor:
    """The stride-1 kernel equal to a stride-s circular correlation after a polyphase split.

    On an N×M grid with s | N, M: y[t] = Σ_a w[a]·x[s·t + a] = Σ_{β,α} w[s·α + β]·x_β[t + α] with
    x_β[t'] = x[s·t' + β] — a stride-1 circular correlation on (N/s)×(M/s) whose input channels
    are (channel, β₁, β₂) (channel-major, so groups stay contiguous) and whose kernel is
    w_poly[o, (i, β), α] = w[o, i, s·α + β] (zero past the kernel). The split is a permutation
    of the input, so both operators have the same singular values (Sedghi et al. 2019 §3.2).
    """
    s1, s2 = stride
    c_out, c_in, kh, kw = weight.shape
    kh2, kw2 = -(-kh // s1), -(-kw // s2)
    w = torch.nn.functional.pad(weight, (0, kw2 * s2 - kw, 0, kh2 * s1 - kh))
    w = w.reshape(c_out, c_in, kh2, s1, kw2, s2).permute(0, 1, 3, 5, 2, 4)
    return w.reshape(c_out, c_in * s1 * s2, kh2, kw2)


def _circular_form(layer: nn.Conv2d, n: int, m: int) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
    """(stride-1 kernel, its grid, the embedding grid N×M): the circular conv bounding ``layer``."""
    grid = embedding_grid(layer, n, m)
    stride = layer.stride if all(g % s == 0 for g, s in zip(grid, layer.stride)) else (1, 1)
    w = polyphase_weight(_dilated_weight(layer), stride)
    return w, (grid[0] // stride[0], grid[1] // stride[1]), grid


def _frequency_input(top: TopFrequency, layer: nn.Conv2d, small: tuple[int, int], grid: tuple[int, int],
                     n: int, m: int) -> torch.Tensor:
    """Two real inputs (2, c_in, n, m) from the top frequency's singular vector r at ω: Re and Im of
    conj(r)·e^{iω·p} on the small grid, un-split to the N×M grid, cut to the layer's input window.

    For a correlation, conj(r)·e^{iω·p} ↦ e^{iω·p}·conj(K̂(ω) r): both parts reach σ exactly on the
    circular conv (one of them may vanish at a self-conjugate ω)."""
    s1, s2 = grid[0] // small[0], grid[1] // small[1]
    c_in, groups = layer.in_channels, layer.groups
    width = top.right.shape[0]
    r = top.right.new_zeros(groups * width)
    r[top.group * width:(top.group + 1) * width] = top.right.conj()
    p = torch.arange(small[0], dtype=torch.float64)[:, None] * (top.frequency[0] / small[0])
    q = torch.arange(small[1], dtype=torch.float64)[None, :] * (top.frequency[1] / small[1])
    wave = torch.polar(torch.ones_like(p + q), 2 * math.pi * (p + q)).to(r.device)
    z = r[:, None, None].to(torch.complex128) * wave                             # (c_in·s1·s2, small)
    z = z.reshape(c_in, s1, s2, *small).permute(0, 3, 1, 4, 2).reshape(c_in, *grid)
    ph, pw = layer.padding if layer.padding_mode == "zeros" else (0, 0)
    z = z[:, ph:ph + n, pw:pw + m]
    return torch.stack([z.real, z.imag])


def gram_upper_bound(resp: torch.Tensor, iters: int, *, target: float = 0.0) -> list[float]:
    """max over frequencies of ‖G_t‖_F^{1/2^t} ≥ σ_max, G_0 = K̂(u, v), G_{s+1} = G_sᴴG_s.

    Gram iteration (Delattre, Barthélemy, Araujo & Allauzen, ICML 2023, §3; its use for
    circular and zero-padded layers: Delattre, Barthélemy & Allauzen 2024, arXiv 2402.00240).
    σ_max(GᴴG) = σ_max(G)² and σ_max ≤ ‖·‖_F give σ_max(K̂) ≤ ‖G_t‖_F^{2^{-t}} for every t,
    with no convergence assumption; the overestimate is (Σ_i (σ_i/σ_1)^{2^{t+1}})^{2^{-t-1}} ≤
    r^{2^{-t-1}} for rank r, so it falls doubly exponentially. Each iterate is rescaled to unit
    Frobenius norm (the scale kept in logarithms). Returns the bound after each iteration,
    stopping early once it is ≤ ``target``. A frequency whose own bound is ≤ ``target`` already
    cannot lift the maximum above it: it leaves the iteration (its bound kept), so later Gram
    products run on the frequencies still above the target only.
    """
    g = resp.reshape(-1, *resp.shape[-2:])
    if g.shape[-1] > g.shape[-2]:
        g = g.mH
    log_scale = torch.zeros(g.shape[0], dtype=torch.float64, device=g.device)
    log_target = math.log(target) if target > 0 else -math.inf
    settled = torch.tensor(-math.inf, dtype=torch.float64)   # the largest log bound of those that left
    bounds = []
    for t in range(iters + 1):
        fro = torch.linalg.matrix_norm(g).clamp_min(torch.finfo(torch.float64).tiny)
        logs = (fro.log() + log_scale) / 2 ** t
        bounds.append(float(torch.maximum(logs.max(), settled).exp()))
        if t == iters or bounds[-1] <= target:
            break
        above = logs > log_target
        if not bool(above.all()):
            settled = torch.maximum(settled, logs[~above].max())
            g, fro, log_scale = g[above], fro[above], log_scale[above]
        g = g / fro[:, None, None]
        log_scale = 2 * (log_scale + fro.log())
        g = g.mH @ g
    return bounds


def _rounding_allowance(c: int, taps: int, iters: int) -> float:
    # first-order float64 rounding: FFT and products of length c·taps, then each Gram product
    # (a length-c sum per entry, Frobenius error ≤ √c·γ_c relative); generous by a factor 16
    u = 2.0 ** -53
    return 16 * u * (c * taps + (iters + 1) * c ** 1.5)


def _float64_copy(layer: nn.Conv2d) -> nn.Conv2d:
    probe = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                      padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=False,
                      padding_mode=layer.padding_mode, dtype=torch.float64, device=layer.weight.device)
    with torch.no_grad():
        probe.weight.copy_(layer.weight.detach())
    probe.weight.requires_grad_(False)
    return probe


def _gain(probe: nn.Conv2d, x: torch.Tensor) -> float:
    """max over the rows x_i of ‖layer(x_i)‖/‖x_i‖ (rows of zero norm skipped)."""
    with torch.no_grad():
        num = torch.linalg.vector_norm(probe(x).flatten(1), dim=1)
    den = torch.linalg.vector_norm(x.flatten(1), dim=1)
    return float((num / den)[den > 0].max())


def _is_exact(layer: nn.Conv2d, grid: tuple[int, int], small: tuple[int, int]) -> bool:
    """The layer is its whole circular form: circular padding (k−1)/2 and every strided row kept."""
    k = _dilated_weight(layer).shape[2:]
    full = all(2 * p == kk - 1 for p, kk in zip(layer.padding, k))
    return layer.padding_mode == "circular" and full and tuple(g // s for g, s in zip(grid, small)) == layer.stride


def conv_sigma_bracket(layer: nn.Conv2d, n: int, m: int, *, gram_iters: int = 10, rtol: float = 1e-6,
                       lanczos_tol: float = 1e-6, seed: int = 0) -> SigmaBracket:
    """Certified lower ≤ σ_max ≤ upper for an ``nn.Conv2d`` on (c_in, n, m) inputs, computed in float64.

    Any padding ('zeros' or 'circular'), stride, dilation and groups.
    *Upper* — theorem: for the circular correlation C on the grid N×M of :func:`embedding_grid`
    (strided like the layer; in its exact stride-1 polyphase form, :func:`polyphase_weight`,
    where the stride divides the grid), ‖layer‖₂ ≤ ‖C‖₂ = max_{(u,v)} σ_max(K̂(u, v)) (Sedghi,
    Gupta & Long 2019, Thm 6, for the equality), and σ_max(K̂) ≤ ‖G_t‖_F^{2^{-t}} for the Gram
    iterates (:func:`gram_upper_bound`; Delattre et al. 2023/2024). The iteration stops once
    upper ≤ (1 + rtol)·max(lower, σ_max(C)) or after ``gram_iters``; a rounding allowance is added.
    *Lower*: σ_max ≥ ‖layer(x)‖/‖x‖ for any x ≠ 0, less a rounding allowance, at x built from
    the top frequency of C (:func:`top_frequency`, :func:`_frequency_input`) — exact when the
    layer is C itself (circular padding (k−1)/2, every strided output kept: no Lanczos runs) —
    and otherwise at the top right Lanczos vector of the layer itself (matrix-free, to
    ``lanczos_tol``), started from that x. For zero padding the bracket holds the gap between
    the padded and the circular operator (Delattre et al. 2024 bound that gap as n grows).
    """
    from .jacobian import jacobian_operator  # noqa: PLC0415  (conv stays import-light)

    if not isinstance(layer, nn.Conv2d):
        v.fail("layer", f"expected an nn.Conv2d, got {type(layer).__name__}")
    n = v.integer(n, "n", minimum=1)
    m = v.integer(m, "m", minimum=1)
    gram_iters = v.integer(gram_iters, "gram_iters", minimum=0)
    rtol = v.real(rtol, "rtol", positive=True)
    lanczos_tol = v.real(lanczos_tol, "lanczos_tol", positive=True)
    w, small, grid = _circular_form(layer, n, m)
    probe = _float64_copy(layer)
    top = top_frequency(w.to(torch.float64), *small, groups=layer.groups, seed=seed)
    x0 = _frequency_input(top, layer, small, grid, n, m)
    ratio, steps = _gain(probe, x0), 0
    if not _is_exact(layer, grid, small):
        op = jacobian_operator(probe, torch.zeros_like(x0[0])[None])
        start = x0[int(torch.linalg.vector_norm(x0.flatten(1), dim=1).argmax())].reshape(1, -1)
        # plus an equal share of a random vector: a start near a lower singular vector alone could
        # meet the residual test there before the top one shows (the premise of a random start)
        noise = torch.randn(start.shape, dtype=start.dtype, generator=torch.Generator().manual_seed(seed))
        start = start / start.norm() + noise.to(start.device) / noise.norm()
        trip = lanczos.bidiagonalise(lambda u: op.matvec(u.reshape(op.x.shape)).reshape(1, -1),
                                     lambda y: op.rmatvec(y.reshape(op.out_shape)).reshape(1, -1),
                                     start, k=1, tol=lanczos_tol, max_steps=start.shape[1], check_every=2)
        ratio, steps = max(ratio, _gain(probe, trip.right[0].reshape(1, *x0.shape[1:]))), trip.steps
    c, taps = max(w.shape[0], w.shape[1] * layer.groups), w.shape[2] * w.shape[3]
    lower = ratio * (1 - _rounding_allowance(c, taps, 0))
    resp = frequency_response(w.to(torch.float64), *small, groups=layer.groups, onesided=True)
    allowance = 1 + _rounding_allowance(c, taps, gram_iters)
    # the bound cannot fall below the circular σ_max (top.sigma): stopping within rtol of it saves the
    # iterations a zero-padded layer's lower bound could never justify; the bound stays certified
    bounds = gram_upper_bound(resp, gram_iters, target=(1 + rtol) * max(lower, top.sigma) / allowance)
    return SigmaBracket(lower, bounds[-1] * allowance, grid, len(bounds) - 1, steps)

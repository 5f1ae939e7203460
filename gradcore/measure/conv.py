"""Recipes for convolution spectra at He initialisation (claims CONV-01..04).

Built on the public functions of :mod:`gradcore.conv` (``make_conv``,
``conv_singular_values``, ``conv_gains``, ``relu_stack``): σ_max of a circular
convolution exactly via the 2-D DFT, of a zero-padded one from the dense autograd
Jacobian. Every convolution is drawn from an explicit ``torch.Generator``.
"""
from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from hypothesis import strategies as st
from torch import nn

from .. import _validate as v
from .. import conv as Cv
from ..jacobian import jacobian, jacobian_operator
from ..spectral import operator_singular_values
from ..stats import MEAN_METHOD, mean_ci, proportion_ci, slope_ci
from .measurement import Given, Kind, Measurement, recipe
from .search import search
from .searched import residual_bound
from .seeding import seeded

DTYPES = {"float32": torch.float32, "float64": torch.float64}
CHANNELS = (4, 8, 16, 32, 64)
KERNELS = (3, 5)
SIZES = (8, 16, 32)
SEEDS = (0, 1, 2)
WILSON = "Wilson score 95% interval of a proportion"


# --- CONV-01: FFT singular values equal the dense Jacobian's -------------------------------

def _fft_error(case: tuple[str, int, int, int, int, int], dtype: str, device: str) -> float:
    kind, c, k, dn, dm, seed = case
    conv = Cv.make_conv(kind, c, k, generator=torch.Generator().manual_seed(seed), dtype=DTYPES[dtype]).to(device)
    n, m = k + dn, k + dm
    fft = Cv.conv_singular_values(conv, n, m)
    x = torch.zeros(1, c, n, m, dtype=DTYPES[dtype], device=device)
    dense = torch.linalg.svdvals(jacobian(conv, x)).detach()
    return float((fft - dense).abs().max() / dense.max().clamp(min=1e-30))


@recipe
def fft_dense_residual(*, dtype: str = "float64", max_examples: int = 15, profile: str = "ci",
                       device: str = "cpu") -> Measurement:
    """CONV-01: max relative |σ_FFT − σ_dense| over searched convolutions (a rounding residual).

    Bound (the claim's): 1e-9 in float64, 2e-5 in float32 (≈ 170 ε₃₂: the SVD of a ≤ 196-dim
    Jacobian and the per-frequency SVDs each err by O(√N·ε) relative to σ_max)."""
    cases = st.tuples(st.sampled_from(Cv.KINDS), st.integers(1, 4), st.sampled_from([1, 3, 5]),
                      st.integers(0, 3), st.integers(0, 3), st.integers(0, 1000))
    # corners of the domain for every kind: the smallest case, and the widest kernel on
    # the most non-square input (the dense Jacobian of the largest corner costs seconds)
    corners = [(kind, 1, 1, 0, 0, 0) for kind in Cv.KINDS] + [(kind, 4, 5, 0, 3, 0) for kind in Cv.KINDS]
    found = search(cases, lambda case: _fft_error(case, dtype, device),
                     candidates=[(f"corner {c}", c) for c in corners],
                     profile=profile, max_examples=max_examples)
    return residual_bound(found, bound=1e-9 if dtype == "float64" else 2e-5, dtype=dtype, device=device,
                          sizes={"channels": "1..4", "kernel": "1, 3, 5", "input": "k..k+3"})


# --- the He-init sweeps of CONV-02/03 ----------------------------------------------------------

def _pair(c: int, k: int, seed: int, padding_mode: str, device: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    g = torch.Generator().manual_seed(seed * 100_003 + c * 101 + k)
    std = Cv.make_conv("standard", c, k, padding_mode=padding_mode, generator=g).to(device)
    sep = Cv.make_conv("separable", c, k, padding_mode=padding_mode, generator=g).to(device)
    return std, sep


@functools.lru_cache(maxsize=2)
def circular_sweep(device: str = "cpu") -> tuple[dict, ...]:
    """σ_max and RMS-gain ratios separable/standard, exact via FFT, over C × k × n × seed (float32)."""
    rows = []
    for c in CHANNELS:
        for k in KERNELS:
            for n in SIZES:
                for s in SEEDS:
                    std, sep = _pair(c, k, s, "circular", device)
                    gd, gs = Cv.conv_gains(std, n, n), Cv.conv_gains(sep, n, n)
                    rows.append(dict(c=c, k=k, n=n, seed=s, ratio=gs[0] / gd[0], rms_ratio=gs[1] / gd[1]))
    return tuple(rows)


@functools.lru_cache(maxsize=2)
def zero_padding_sweep(device: str = "cpu") -> tuple[dict, ...]:
    """Zero padding: σ_max ratio from the dense autograd Jacobian (C ∈ {4, 8}, k = 3, n = 6, 6 seeds)."""
    rows = []
    for c in (4, 8):
        for s in range(6):
            std, sep = _pair(c, 3, s, "zeros", device)
            x = torch.zeros(1, c, 6, 6, device=device)
            norms = [float(torch.linalg.matrix_norm(jacobian(m, x).detach(), ord=2)) for m in (std, sep)]
            rows.append(dict(c=c, k=3, n=6, seed=s, ratio=norms[1] / norms[0]))
    return tuple(rows)


def _sweep(padding: str, device: str) -> tuple[dict, ...]:
    return circular_sweep(device) if padding == "circular" else zero_padding_sweep(device)


def _sizes(padding: str, rows: tuple[dict, ...]) -> dict:
    return {"padding": padding, "draws": len(rows), "channels": sorted({r["c"] for r in rows}),
            "kernels": sorted({r["k"] for r in rows}), "inputs": sorted({r["n"] for r in rows})}


@recipe
def separable_larger_fraction(*, padding: str = "circular", device: str = "cpu") -> Measurement:
    """CONV-02: share of draws with σ_max(separable) > σ_max(standard), Wilson 95 % CI."""
    rows = _sweep(padding, device)
    p, lo, hi = proportion_ci(sum(r["ratio"] > 1 for r in rows), len(rows))
    return Measurement(p, Kind.STATISTICAL, "float32", device, _sizes(padding, rows), interval=(lo, hi),
                       method=WILSON, n=len(rows))


def _bootstrap_median(x: torch.Tensor, reps: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Median and its percentile-bootstrap 95 % interval (seeded resamples)."""
    idx = torch.randint(0, len(x), (reps, len(x)), generator=torch.Generator().manual_seed(seed))
    meds = x[idx].median(dim=1).values
    return float(x.median()), float(meds.quantile(0.025)), float(meds.quantile(0.975))


@recipe
def separable_ratio_median(*, padding: str = "circular", device: str = "cpu") -> Measurement:
    """CONV-03: median over draws of σ_max(separable)/σ_max(standard), bootstrap 95 % CI."""
    rows = _sweep(padding, device)
    med, lo, hi = _bootstrap_median(torch.tensor([r["ratio"] for r in rows], dtype=torch.float64))
    return Measurement(med, Kind.STATISTICAL, "float32", device, _sizes(padding, rows), interval=(lo, hi),
                       method="percentile-bootstrap 95% interval of the median (1000 resamples, seed 0)",
                       n=len(rows))


@recipe
def rms_gain_ratio(*, device: str = "cpu") -> Measurement:
    """CONV-03: mean over circular draws of ‖J_sep‖_F/‖J_std‖_F (RMS gains), Student-t 95 % CI."""
    rows = circular_sweep(device)
    m, lo, hi = mean_ci([r["rms_ratio"] for r in rows])
    return Measurement(m, Kind.STATISTICAL, "float32", device, _sizes("circular", rows), interval=(lo, hi),
                       method=MEAN_METHOD, n=len(rows))


def ratio_quantiles(q: float, k: int, device: str = "cpu") -> list[float]:
    """CONV-03 figure: the q-quantile of the circular σ_max ratio at kernel k, for each C."""
    rows = circular_sweep(device)
    return [float(torch.tensor([r["ratio"] for r in rows if r["c"] == c and r["k"] == k]).quantile(q))
            for c in CHANNELS]


def ratio_medians_by(key: str, device: str = "cpu") -> dict[int, float]:
    """CONV-03: median circular σ_max ratio for each value of ``key`` ("c" or "n")."""
    rows = circular_sweep(device)
    return {v: float(torch.tensor([r["ratio"] for r in rows if r[key] == v], dtype=torch.float64).median())
            for v in sorted({r[key] for r in rows})}


def ratio_trend_with_channels(device: str = "cpu") -> float:
    """CONV-03: least-squares slope of log ratio on log C over the circular draws."""
    rows = circular_sweep(device)
    return slope_ci([math.log(r["c"]) for r in rows], [math.log(r["ratio"]) for r in rows])[0]


def ratio_iqr(device: str = "cpu") -> tuple[float, float]:
    ratios = torch.tensor([r["ratio"] for r in circular_sweep(device)], dtype=torch.float64)
    return float(ratios.quantile(0.25)), float(ratios.quantile(0.75))


# --- CONV-04: gradient amplification through ReLU stacks ------------------------------------

@functools.lru_cache(maxsize=64)
def _amplification(kind: str, inner_relu: bool, seed: int, device: str, blocks: int) -> float:
    g = torch.Generator().manual_seed(seed)
    net = Cv.relu_stack([Cv.make_conv(kind, 16, 3, generator=g) for _ in range(blocks)],
                        inner_relu=inner_relu).to(device)
    return _input_gain(net, g, device)


def _input_gain(net: nn.Module, g: torch.Generator, device: str) -> float:
    """‖∂⟨net(x), c⟩/∂x‖/‖c‖ for x (4×16×8×8) and then c drawn from ``g``: ∞ when it overflows."""
    x = torch.randn(4, 16, 8, 8, generator=g).to(device).requires_grad_(True)
    y = net(x)
    cot = torch.randn(y.shape, generator=g).to(device)
    (gx,) = torch.autograd.grad(y, x, cot)
    gain = float(gx.norm() / cot.norm())
    return gain if math.isfinite(gain) else math.inf


@recipe
def amplification_ratio(*, inner_relu: bool = False, blocks: int = 8, seeds: int = 6,
                        device: str = "cpu") -> Measurement:
    """CONV-04: geometric-mean ratio of input-gradient amplification, separable vs standard
    ReLU stacks (C = 16, k = 3, 8×8 inputs), exp of the Student-t 95 % CI of the mean log ratio."""
    diffs = [math.log(_amplification("separable", inner_relu, s, device, blocks))
             - math.log(_amplification("standard", False, s, device, blocks)) for s in range(seeds)]
    m, lo, hi = mean_ci(diffs)
    return Measurement(math.exp(m), Kind.STATISTICAL, "float32", device,
                       {"blocks": blocks, "channels": 16, "kernel": 3, "input": 8, "seeds": seeds,
                        "inner_relu": inner_relu},
                       interval=(math.exp(lo), math.exp(hi)), method=f"exp of the {MEAN_METHOD} of log ratios",
                       n=seeds)


@recipe
def standard_block_gain(*, blocks: int = 8, seeds: int = 6, device: str = "cpu") -> Measurement:
    """CONV-04: per-block gradient gain of the standard-conv ReLU stack (geometric mean over seeds)."""
    logs = [math.log(_amplification("standard", False, s, device, blocks)) for s in range(seeds)]
    m, lo, hi = mean_ci(logs)
    return Measurement(math.exp(m / blocks), Kind.STATISTICAL, "float32", device, {"blocks": blocks, "seeds": seeds},
                       interval=(math.exp(lo / blocks), math.exp(hi / blocks)),
                       method=f"exp of the {MEAN_METHOD} of log gains, per block", n=seeds)


# --- a user's convolution (the ``convolution`` kind of ``gradcore check``) ---------------------

F64 = torch.float64
# elementwise activations with their Lipschitz constants: a Sequential of convolutions and these
# has ‖J‖₂ ≤ Π (per-layer bounds) at every input
LIPSCHITZ = {nn.ReLU: 1.0, nn.ReLU6: 1.0, nn.Tanh: 1.0, nn.Hardtanh: 1.0, nn.Identity: 1.0, nn.Sigmoid: 0.25}


def build_layer(make: Any, channels: int, seed: int, device: str, dtype: torch.dtype = F64) -> Any:
    """A fresh layer from a ``channels -> module`` factory (torch's generator seeded with ``seed``),
    or a copy of a module given as it is; a module is moved to ``device``/``dtype``."""
    if isinstance(make, nn.Module):
        layer = copy.deepcopy(make)
    else:
        with seeded(seed):
            layer = make(channels)
    return layer.to(device=device, dtype=dtype) if isinstance(layer, nn.Module) else layer


def _flatten(module: Any) -> list[nn.Module] | None:
    """The layers of a (nested) Sequential of Conv2d and LIPSCHITZ activations, else None."""
    if isinstance(module, nn.Sequential):
        parts = [_flatten(m) for m in module]
        return None if any(p is None for p in parts) else [m for p in parts for m in p]  # type: ignore[union-attr]
    if isinstance(module, nn.Conv2d) or type(module) in LIPSCHITZ or (
            isinstance(module, nn.LeakyReLU) and abs(module.negative_slope) <= 1):
        return [module]
    return None


def _span(conv: nn.Conv2d) -> tuple[int, int]:
    """The dilated kernel's extent d·(k − 1) + 1 per spatial dimension."""
    return tuple(d * (k - 1) + 1 for d, k in zip(conv.dilation, conv.kernel_size))  # type: ignore[return-value]


def _total_padding(conv: nn.Conv2d) -> tuple[int, int]:
    """Zeros or wrapped entries added per spatial dimension, both sides together."""
    if conv.padding == "valid":
        return (0, 0)
    if conv.padding == "same":
        return tuple(s - 1 for s in _span(conv))   # type: ignore[return-value]
    return tuple(2 * p for p in conv.padding)   # type: ignore[return-value]


def _dilated_weight(conv: nn.Conv2d) -> torch.Tensor:
    w = conv.weight.detach()
    if conv.dilation == (1, 1):
        return w
    out = w.new_zeros(*w.shape[:2], *_span(conv))
    out[..., ::conv.dilation[0], ::conv.dilation[1]] = w
    return out


def _conv_bound(conv: nn.Conv2d, h: int, w: int) -> tuple[float, bool, tuple[int, int]] | None:
    """(bound on σ_max of the layer on an h×w input, whether it is exact, output size), or None.

    Circular padding p (both sides together) with p ≤ d(k−1): the layer's rows are distinct rows of
    the circular convolution on h×w (all of them, exactly, for stride 1 and p = d(k−1)). Zero padding:
    the layer is a row selection of the circular convolution on (h + 2q)×(w + 2q), q = max(p, d(k−1)), applied
    to the zero-embedded input, so that convolution's exact σ_max bounds it; a stride selects rows.
    """
    span, pad = _span(conv), _total_padding(conv)
    size = tuple((n + p - s) // st + 1 for n, p, s, st in zip((h, w), pad, span, conv.stride))
    if min(size) < 1:
        return None
    if conv.padding_mode == "circular":
        if any(p > s - 1 for p, s in zip(pad, span)) or h < span[0] or w < span[1]:
            return None
        exact = conv.stride == (1, 1) and all(p == s - 1 for p, s in zip(pad, span))
        grid = (h, w)
    elif conv.padding_mode == "zeros":
        exact, grid = False, tuple(n + 2 * max(p, s - 1) for n, p, s in zip((h, w), pad, span))
    else:   # reflect / replicate repeat input entries: no circular operator contains them
        return None
    # conv_gains solves every frequency block (eigvalsh): a certificate. conv_spectral_norm's pruned
    # iteration is faster but drops blocks on Ritz values, which is no proof.
    return Cv.conv_gains(_dilated_weight(conv), *grid, groups=conv.groups)[0], exact, size  # type: ignore[misc]


def certified_upper_bound(layer: Any, h: int, w: int) -> tuple[float, str] | None:
    """An upper bound on σ_max(∂layer/∂x) at every input of size h×w, and how it was obtained;
    None when gradcore cannot certify one (a module it cannot see through).

    The one place the bound is chosen: exact per-frequency SVDs (CONV-01, LIT-02) for circular
    stride-1 convolutions, the circular σ_max on an enlarged grid for zero padding and strides,
    and the product of per-layer bounds (× the activations' Lipschitz constants) for a Sequential.
    """
    layers = _flatten(layer)
    if not layers or not any(isinstance(m, nn.Conv2d) for m in layers):
        return None
    bound, exact, size = 1.0, True, (h, w)
    for m in layers:
        if isinstance(m, nn.Conv2d):
            got = _conv_bound(m, *size)
            if got is None:
                return None
            b, e, size = got
            bound, exact = bound * b, exact and e
        else:
            bound *= LIPSCHITZ.get(type(m), 1.0)
            exact = exact and isinstance(m, nn.Identity)
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    if exact and len(convs) > 1:   # a composition of circular convolutions: multiply per frequency
        return Cv.conv_gains(nn.Sequential(*convs), h, w)[0], "exact (per-frequency SVDs of the composition)"
    if exact:
        return bound, "exact (per-frequency SVDs)"
    return bound, "certified (circular embedding per conv × activation Lipschitz constants)"


def probe_input(*, channels: int, side: int, seed: int, device: str = "cpu", batch: int = 1) -> torch.Tensor:
    """The probe x ~ N(0, I), shape (batch, channels, side, side), float64, from ``Generator(seed)``."""
    return torch.randn(batch, channels, side, side, generator=torch.Generator().manual_seed(seed),
                       dtype=F64).to(device)


def _eval(layer: Any) -> Any:
    """The layer at inference: a fixed operator (a parametrisation's power iteration, dropout and
    batch statistics do not change between the products Lanczos takes)."""
    return layer.eval() if isinstance(layer, nn.Module) else layer


SIGMA_SIZES = ("channels", "side")


@recipe
def layer_sigma(*, make: Given, bound: str, channels: int = 8, side: int = 8, seed: int = 0,
                device: str = "cpu") -> Measurement:
    """CONV-01/LIT-02 on a user's layer: σ_max of its Jacobian at x ~ N(0, I) (float64, eval mode).

    ``bound="lower"``: Golub–Kahan–Lanczos on the layer itself (a Ritz value: never above σ_max;
    converged to 1e-10 or run to the full input dimension). ``"upper"``: :func:`certified_upper_bound`
    from the layer's weights (∞ when none can be certified; exact for a circular stride-1 conv).
    """
    v.choice(bound, "bound", ("lower", "upper"))
    layer = _eval(build_layer(make, channels, seed, device))
    sizes = {"channels": channels, "side": side}
    if bound == "upper":
        with torch.no_grad():
            got = certified_upper_bound(layer, side, side)
        value, how = got if got is not None else (math.inf, "none (not a Sequential of nn.Conv2d and "
                                                            "Lipschitz activations)")
        kind = Kind.NUMERIC if how.startswith("exact") else Kind.SEARCH
        return Measurement(value, kind, "float64", device, sizes, witness=how,
                           direction=None if kind is Kind.NUMERIC else "upper", conditioning=channels * side)
    value, how = _lanczos(layer, channels, side, seed, device)
    return Measurement(value, Kind.SEARCH, "float64", device, sizes, direction="lower", witness=how)


def _lanczos(layer: Any, channels: int, side: int, seed: int, device: str) -> tuple[float, str]:
    """The top Ritz value of the layer's Jacobian at the probe input (∞ when not finite)."""
    x = probe_input(channels=channels, side=side, seed=seed + 1, device=device)
    spec = operator_singular_values(layer, x, 1, tol=1e-10, seed=seed, method="lanczos")
    value = float(spec.values[0])
    state = "converged" if spec.converged else "not converged"
    return value if math.isfinite(value) else math.inf, f"{spec.steps} steps, {state}"


@recipe
def layer_rms_gain(*, make: Given, channels: int = 8, side: int = 8, probes: int = 32, seed: int = 0,
                   device: str = "cpu") -> Measurement:
    """CONV-03 on a user's layer: the RMS gain ‖J‖_F/√N (N = channels·side²) at x ~ N(0, I), from
    ``probes`` Hutchinson probes z ~ N(0, I): ‖Jz‖²/N is unbiased for ‖J‖_F²/N; the Student-t
    interval of its mean, square-rooted (float64, eval mode)."""
    layer = _eval(build_layer(make, channels, seed, device))
    x = probe_input(channels=channels, side=side, seed=seed + 1, device=device)
    g = torch.Generator().manual_seed(seed + 2)
    op, n = jacobian_operator(layer, x), x.numel()   # linearised once; each probe replays it
    samples = [float(op.matvec(torch.randn(x.shape, generator=g, dtype=F64).to(device)).pow(2).sum()) / n
               for _ in range(probes)]
    if not all(math.isfinite(s) for s in samples):
        return Measurement(math.inf, Kind.STATISTICAL, "float64", device, {"channels": channels, "side": side},
                           interval=(math.inf, math.inf), method=MEAN_METHOD, n=probes)
    m, lo, hi = mean_ci(samples)
    root = lambda t: math.sqrt(max(t, 0.0))   # noqa: E731
    return Measurement(root(m), Kind.STATISTICAL, "float64", device,
                       {"channels": channels, "side": side, "probes": probes}, interval=(root(lo), root(hi)),
                       method=f"square root of the {MEAN_METHOD} of ‖Jz‖²/N (Hutchinson)", n=probes)


def _user_gain(make: Any, seed: int, device: str, blocks: int) -> float:
    """CONV-04's input-gradient amplification through ``blocks`` (layer → ReLU) of the user's layer
    (16 channels; a factory's layers drawn in turn from torch's generator seeded with ``seed``, a
    module repeated; float32)."""
    with seeded(seed):
        layers = [copy.deepcopy(make) if isinstance(make, nn.Module) else make(16) for _ in range(blocks)]
    layers = [m.to(device=device, dtype=torch.float32) if isinstance(m, nn.Module) else _Wrap(m) for m in layers]
    return _input_gain(Cv.relu_stack(layers), torch.Generator().manual_seed(seed), device)


class _Wrap(nn.Module):
    """A plain callable as a module (for relu_stack)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


@recipe
def user_amplification_ratio(*, make: Given, blocks: int = 8, seeds: int = 6, device: str = "cpu") -> Measurement:
    """CONV-04 for a user's layer: geometric-mean ratio of input-gradient amplification through
    ``blocks`` (layer → ReLU) blocks, the user's layer (16 channels, its own initialisation) against
    gradcore's He-initialised standard 3×3 convolution (the theorem's stack, same seeds); exp of the
    Student-t 95 % CI of the mean log ratio. An overflowing gradient is an explosion (∞)."""
    diffs = [math.log(max(_user_gain(make, s, device, blocks), 1e-300))
             - math.log(_amplification("standard", False, s, device, blocks)) for s in range(seeds)]
    sizes = {"blocks": blocks, "channels": 16, "input": 8, "seeds": seeds}
    if not all(math.isfinite(d) for d in diffs):
        return Measurement(math.inf, Kind.STATISTICAL, "float32", device, sizes, interval=(math.inf, math.inf),
                           method=f"exp of the {MEAN_METHOD} of log ratios", n=seeds)
    m, lo, hi = mean_ci(diffs)
    return Measurement(math.exp(m), Kind.STATISTICAL, "float32", device, sizes,
                       interval=(math.exp(lo), math.exp(hi)), method=f"exp of the {MEAN_METHOD} of log ratios",
                       n=seeds)


def _sigma_max(layer: Any, channels: int, side: int, seed: int, device: str) -> float:
    """σ_max: exact when gradcore.conv's per-frequency SVDs give it, else Lanczos on the layer."""
    with torch.no_grad():
        got = certified_upper_bound(layer, side, side)
    if got is not None and got[1].startswith("exact"):
        return got[0]
    return _lanczos(layer, channels, side, seed, device)[0]


@functools.lru_cache(maxsize=8)
def _cached_ratios(make: Any, draws: int, channels: int, side: int, device: str) -> tuple[float, ...]:
    return _ratios(make, draws, channels, side, device)


def _ratios(make: Any, draws: int, channels: int, side: int, device: str) -> tuple[float, ...]:
    """CONV-02/03 for a user's layer: σ_max(layer)/σ_max(standard) per draw s (the layer from seed s,
    gradcore's He-initialised circular standard 3×3 conv from Generator(s); float64, eval mode)."""
    rows = []
    for s in range(draws):
        user = _sigma_max(_eval(build_layer(make, channels, s, device)), channels, side, s, device)
        std = Cv.make_conv("standard", channels, 3, generator=torch.Generator().manual_seed(s), dtype=F64)
        rows.append(user / Cv.conv_spectral_norm(std.to(device), side, side))
    return tuple(rows)


def user_ratios(make: Any, draws: int, channels: int, side: int, device: str) -> tuple[float, ...]:
    try:
        return _cached_ratios(make, draws, channels, side, device)
    except TypeError as e:   # an unhashable technique is measured afresh
        if "unhashable" not in str(e):
            raise
        return _ratios(make, draws, channels, side, device)


@recipe
def user_larger_fraction(*, make: Given, draws: int = 12, channels: int = 8, side: int = 8,
                         device: str = "cpu") -> Measurement:
    """CONV-02 for a user's layer: share of draws with σ_max(layer) > σ_max(He standard conv), Wilson 95 % CI."""
    rows = user_ratios(make, draws, channels, side, device)
    p, lo, hi = proportion_ci(sum(r > 1 for r in rows), len(rows))
    return Measurement(p, Kind.STATISTICAL, "float64", device, {"draws": draws, "channels": channels, "side": side},
                       interval=(lo, hi), method=WILSON, n=len(rows))


@recipe
def user_ratio_median(*, make: Given, draws: int = 12, channels: int = 8, side: int = 8,
                      device: str = "cpu") -> Measurement:
    """CONV-03 for a user's layer: median over draws of σ_max(layer)/σ_max(He standard conv), bootstrap 95 % CI."""
    rows = user_ratios(make, draws, channels, side, device)
    if not all(math.isfinite(r) for r in rows):
        return Measurement(math.inf, Kind.STATISTICAL, "float64", device, {"draws": draws}, interval=(math.inf,
                           math.inf), method="non-finite σ_max", n=len(rows))
    med, lo, hi = _bootstrap_median(torch.tensor(rows, dtype=torch.float64))
    return Measurement(med, Kind.STATISTICAL, "float64", device, {"draws": draws, "channels": channels, "side": side},
                       interval=(lo, hi), method="percentile-bootstrap 95% interval of the median (1000 resamples, "
                                                 "seed 0)", n=len(rows))

"""Recipes for convolution spectra at He initialisation (claims CONV-01..04).

Built on the public functions of :mod:`gradcore.conv` (``make_conv``,
``conv_singular_values``, ``conv_gains``, ``relu_stack``): σ_max of a circular
convolution exactly via the 2-D DFT, of a zero-padded one from the dense autograd
Jacobian. Every convolution is drawn from an explicit ``torch.Generator``.
"""
from __future__ import annotations

import functools
import math

import torch
from hypothesis import strategies as st

from .. import conv as Cv
from ..jacobian import jacobian
from ..stats import MEAN_METHOD, mean_ci, proportion_ci, slope_ci
from .measurement import Kind, Measurement, recipe
from .search import search
from .searched import residual_bound

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
    x = torch.randn(4, 16, 8, 8, generator=g).to(device).requires_grad_(True)
    y = net(x)
    cot = torch.randn(y.shape, generator=g).to(device)
    (gx,) = torch.autograd.grad(y, x, cot)
    return float(gx.norm() / cot.norm())


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

"""Normalisation layers measured: definitions, moments, Jacobian gains, batch dependence (NORM-*).

The layers are torch's own (``nn.BatchNorm1d``, ``nn.LayerNorm``, ``nn.RMSNorm``, built by
:mod:`gradcore.normalisation`): every recipe here measures torch's implementation. Inputs a search
found come in as plain lists, so a reproduction re-evaluates the very example; random draws
come from explicit ``torch.Generator`` seeds on the CPU (the same numbers on every device).
A recipe given ``bound=`` records a residual that is ~0 in exact arithmetic (ROUNDING,
judged only against that bound); without it the value is NUMERIC.

The technique contract (:mod:`gradcore.verify.contracts.norm`) applies the ``make`` recipes
to a user's layer factory passed as :class:`~gradcore.measure.Given`.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import nn

from .. import _validate as v
from .. import normalisation as norms
from ..jacobian import jacobian
from ..spectral import spectral_norm
from ..stats import SLOPE_METHOD, slope_ci
from .measurement import Kind, Measurement, recipe
from .profiles import hypothesis_overrides
from .search import search

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _value(value: float, bound: float | None, dtype: str, device: str, sizes: dict[str, Any],
           conditioning: float = 1.0) -> Measurement:
    """NUMERIC, or ROUNDING within ``bound`` when the caller says the value is a residual."""
    if bound is None:
        return Measurement(value, Kind.NUMERIC, dtype, device, sizes, conditioning=conditioning)
    return Measurement(value, Kind.ROUNDING, dtype, device, sizes, bound=bound)


def _tensor(x: Sequence[Any], dtype: str, device: str) -> torch.Tensor:
    return torch.tensor(x, dtype=DTYPES[dtype]).to(device)


# --- NORM-01: BatchNorm's Definition 3.3.10 -------------------------------------------------

@recipe
def batchnorm_definition_gap(*, variance: str = "biased", m: int = 8, features: int = 5, eps: float = 1e-5,
                             seed: int = 0, bound: float | None = None, dtype: str = "float64",
                             device: str = "cpu") -> Measurement:
    """NORM-01: max |torch BatchNorm1d (training mode) − γ(x − μ_B)/√(σ²_B + ε) + β| over a batch.

    ``variance`` "biased" writes σ²_B = 1/m Σ (x − μ_B)² (Definition 3.3.10), "unbiased" the
    1/(m − 1) estimator. The batch has per-feature scales 0.5…3 and mean 1; γ ~ U(0.5, 2),
    β ~ U(−1, 1).
    """
    g = torch.Generator().manual_seed(seed)
    dt = DTYPES[dtype]
    x = (torch.randn(m, features, generator=g, dtype=dt) * torch.linspace(0.5, 3, features, dtype=dt) + 1).to(device)
    bn = norms.batch_norm(features, eps=eps).to(device, dt).train()
    with torch.no_grad():
        bn.weight.copy_(torch.empty(features, dtype=dt).uniform_(0.5, 2.0, generator=g))
        bn.bias.copy_(torch.empty(features, dtype=dt).uniform_(-1.0, 1.0, generator=g))
        mu = x.mean(0)
        var = ((x - mu) ** 2).mean(0) if variance == "biased" else x.var(0, unbiased=True)
        gap = float((bn(x) - (bn.weight * (x - mu) / torch.sqrt(var + eps) + bn.bias)).abs().max())
    return _value(gap, bound, dtype, device, {"m": m, "features": features})


# --- NORM-02: BatchNorm's output moments ----------------------------------------------------

MOMENTS = ("variance", "variance_gap", "abs_mean")


@recipe
def bn_output_moment(*, x: list[float], moment: str = "variance", eps: float = 1e-5, bound: float | None = None,
                     device: str = "cpu") -> Measurement:
    """NORM-02: a moment of BatchNorm1d(affine=False) applied to the one-feature batch ``x`` (float64).

    ``moment``: "variance" (biased output variance, σ²_B/(σ²_B + ε) in exact arithmetic),
    "variance_gap" (|variance − 1|) or "abs_mean" (|batch mean of the output|, 0 in exact arithmetic).
    """
    bn = norms.batch_norm(1, eps=eps, affine=False).to(device, torch.float64).train()
    with torch.no_grad():
        y = bn(_tensor(x, "float64", device).view(-1, 1))
    var = float(y.var(unbiased=False))
    value = {"variance": var, "variance_gap": abs(var - 1.0), "abs_mean": abs(float(y.mean()))}[moment]
    return _value(value, bound, "float64", device, {"m": len(x)})


# --- NORM-03: BatchNorm's Jacobian gain -----------------------------------------------------

@recipe
def bn_jacobian_norm(*, x: list[float], gamma: float = 1.5, eps: float = 1e-5, quantity: str = "norm",
                     bound: float | None = None, device: str = "cpu") -> Measurement:
    """NORM-03: ‖∂BN(x)/∂x‖₂ of torch's BatchNorm1d (γ = ``gamma``) on the one-feature batch ``x``.

    ``quantity`` "norm" is the spectral norm of the dense Jacobian over the batch; "relative_gap"
    is |‖J‖₂ − γ/√(σ²_B + ε)| / (γ/√(σ²_B + ε)), the distance to the σ-bound the seed states.
    """
    bn = norms.batch_norm(1, eps=eps).to(device, torch.float64)
    with torch.no_grad():
        bn.weight.fill_(gamma)
    xt = _tensor(x, "float64", device).view(-1, 1)
    measured = spectral_norm(norms.module_jacobian(bn, xt))
    predicted = gamma / math.sqrt(float(xt.var(unbiased=False)) + eps)
    value = measured if quantity == "norm" else abs(measured - predicted) / predicted
    # An SVD of an m × m matrix: a few ulp per singular value, 1e1 covers it.
    return _value(value, bound, "float64", device, {"m": len(x)}, conditioning=10.0)


# --- NORM-04: BatchNorm in deep sigmoid/tanh nets -------------------------------------------

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


@functools.lru_cache(maxsize=512)
def _first_last_ratio(activation: str, batchnorm: bool, depth: int, width: int, batch: int, seed: int,
                      device: str) -> float:
    """‖∂L/∂W_1‖ / ‖∂L/∂W_depth‖ at Xavier-normal init (zero biases), L = ⟨r, output⟩ with random r
    (float32; weights, input and r from ``torch.Generator(seed)`` on the CPU)."""
    g = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for _ in range(depth):
        lin = nn.Linear(width, width)
        with torch.no_grad():
            nn.init.xavier_normal_(lin.weight, generator=g)
            lin.bias.zero_()
        layers += [lin, norms.batch_norm(width)] if batchnorm else [lin]
        layers.append(ACTIVATIONS[activation]())
    net = nn.Sequential(*layers).to(device).train()
    x = torch.randn(batch, width, generator=g).to(device)
    out = net(x)
    out.backward(torch.randn(out.shape, generator=g).to(device))
    lins = [m for m in net if isinstance(m, nn.Linear)]
    return float(lins[0].weight.grad.norm() / lins[-1].weight.grad.norm())


def first_last_ratios(*, activation: str, batchnorm: bool, depth: int, seeds: int = 3, width: int = 32,
                      batch: int = 32, device: str = "cpu") -> list[float]:
    """The per-seed ratios :func:`bn_gradient_factor` fits (for curves)."""
    return [_first_last_ratio(activation, batchnorm, depth, width, batch, s, device) for s in range(seeds)]


@recipe
def bn_gradient_factor(*, activation: str = "sigmoid", batchnorm: bool = True, depths: tuple[int, ...] = (4, 8, 16, 24),
                       seeds: int = 3, width: int = 32, batch: int = 32, device: str = "cpu") -> Measurement:
    """NORM-04: per-layer gradient factor exp(slope) of log(‖∂L/∂W_1‖/‖∂L/∂W_L‖) on depth − 1.

    A Linear(width) → [BatchNorm1d] → activation stack at Xavier-normal init, one network per
    (depth, seed); the slope's Student-t interval is over all depth × seed points.
    """
    xs, ys = [], []
    for depth in depths:
        for r in first_last_ratios(activation=activation, batchnorm=batchnorm, depth=depth, seeds=seeds,
                                   width=width, batch=batch, device=device):
            xs.append(depth - 1)
            ys.append(math.log(r))
    slope, lo, hi = slope_ci(xs, ys)
    return Measurement(math.exp(slope), Kind.STATISTICAL, "float32", device,
                       {"depths": list(depths), "seeds": seeds, "width": width, "batch": batch},
                       interval=(math.exp(lo), math.exp(hi)), method=f"exp of the {SLOPE_METHOD}", n=len(xs))


# --- NORM-05: batch (in)dependence ------------------------------------------------------------

def _layer(make: Any, width: int, dtype: torch.dtype, device: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """A layer from a ``width -> module`` factory, a module instance or a plain function of the batch,
    in training mode on ``device``/``dtype`` (what a norm contract's subject is)."""
    if isinstance(make, str):          # a gradcore.normalisation factory by name
        make = getattr(norms, make)
    layer = make if isinstance(make, nn.Module) else make(width)
    if isinstance(layer, nn.Module):
        layer = layer.to(device=device, dtype=dtype).train()
        for sub in layer.modules():   # running-stat updates break torch.func transforms
            if getattr(sub, "track_running_stats", False):
                sub.track_running_stats = False
    return layer


def _finite_or_inf(value: float) -> float:
    """A non-finite measured gap or gain is an explosion, never a small number."""
    return value if math.isfinite(value) else math.inf


@recipe
def ln_batch_dependence(*, others: list[list[float]], features: int = 6, seed: int = 0, bound: float | None = None,
                        device: str = "cpu") -> Measurement:
    """NORM-05: how much torch's LayerNorm output and Jacobian for one probe sample depend on the
    rest of the batch ``others`` (rows of ``features`` values), float64.

    The value is the largest of: |Δ output of the probe|, |Δ its own Jacobian block| (batch vs alone)
    and the largest cross-sample Jacobian entry. The probe is 2·N(0, 1) + 0.5, γ ~ U(0.5, 2).
    """
    g = torch.Generator().manual_seed(seed)
    probe = (torch.randn(1, features, generator=g, dtype=torch.float64) * 2 + 0.5).to(device)
    ln = norms.layer_norm(features).to(device, torch.float64)
    with torch.no_grad():
        ln.weight.copy_(torch.empty(features, dtype=torch.float64).uniform_(0.5, 2.0, generator=g))
    x = torch.cat([probe, _tensor(others, "float64", device).view(-1, features)])
    alone_y, alone_j = ln(probe).detach(), norms.module_jacobian(ln, probe)
    jac = norms.module_jacobian(ln, x).reshape(len(x), features, len(x), features)
    parts = ((ln(x).detach()[0] - alone_y[0]).abs().max(), (jac[0, :, 0, :] - alone_j).abs().max(),
             jac[0, :, 1:, :].abs().max() if len(x) > 1 else torch.zeros(()))
    return _value(max(float(p) for p in parts), bound, "float64", device, {"features": features, "batch": len(x)})


@recipe
def batch_dependence(*, make: Any, width: int = 16, sizes: tuple[int, ...] = (2, 8, 64), shift: float = 0.0,
                     seed: int = 0, bound: float | None = None, dtype: str = "float64",
                     device: str = "cpu") -> Measurement:
    """NORM-05 and the norm contract: how far sample 0's output moves with the rest of the batch.

    ``make`` builds the layer (a gradcore.normalisation factory name such as "batch_norm" — torch's
    modules —, or a Given ``width -> module`` factory, module, or function of the batch). x is N(0, 1) of shape
    (max(sizes), width). With ``shift = 0``: max |layer(x[:s])[0] − layer(x)[0]| over the smaller
    ``sizes``; with a shift: |layer(x)[0] − layer(x with rows 1… shifted by ``shift``)[0]|.
    Non-finite outputs give ∞ (the layer is not measurable there, never "independent").
    """
    dt = DTYPES[dtype]
    x = torch.randn(max(sizes), width, generator=torch.Generator().manual_seed(seed), dtype=dt).to(device)
    layer = _layer(make, width, dt, device)
    with torch.no_grad():
        full = layer(x)[0]
        if shift:
            moved = torch.cat([x[:1], x[1:] + shift])
            gaps = [(layer(moved)[0] - full).abs().max()]
        else:
            gaps = [(layer(x[:s])[0] - full).abs().max() for s in sizes if s < len(x)]
    value = max(_finite_or_inf(float(t)) for t in gaps)
    return _value(value, bound, dtype, device, {"width": width, "batch sizes": list(sizes)})


# --- NORM-01 / NORM-02 (norm contract): standardisation over the axis a layer normalises ------

AXES = {0: "the batch", 1: "the features"}
MOMENT_GAPS = ("worst", "abs_mean", "variance_gap", "unbiased_variance_gap")
MIN_SPREAD = 0.1       # NORM-02's assumption σ ≥ 0.1: σ² ≫ any usual ε


def _output(make: Any, x: torch.Tensor) -> torch.Tensor | None:
    """The layer's training-mode output on ``x``; None when it is not finite (nothing to judge as small)."""
    layer = _layer(make, x.shape[1], x.dtype, str(x.device))
    with torch.no_grad():
        y = layer(x)
    return y if bool(torch.isfinite(y).all()) else None


def _moment_gaps(y: torch.Tensor | None, axis: int) -> dict[str, float]:
    """Worst slice along ``axis``: |mean|, |biased variance − 1| and |unbiased variance − 1| (∞ when
    the output is not finite)."""
    if y is None:
        return dict.fromkeys(MOMENT_GAPS, math.inf)
    gaps = {"abs_mean": float(y.mean(axis).abs().max()),
            "variance_gap": float((y.var(axis, unbiased=False) - 1).abs().max()),
            "unbiased_variance_gap": float((y.var(axis, unbiased=True) - 1).abs().max())}
    return {"worst": max(gaps["abs_mean"], gaps["variance_gap"]), **gaps}


def centred_axes(make: Any, x: torch.Tensor, tol: float = 0.05) -> dict[int, float]:
    """Which axes the layer centres its output over, judged on one probe batch ``x``: every slice's
    |mean| ≤ ``tol`` × the output's RMS. Returns each axis's worst |mean| / RMS (what the verdict
    on applicability rests on); a non-finite output centres nothing (∞)."""
    y = _output(make, x)
    if y is None:
        return {axis: math.inf for axis in AXES}
    rms = max(float(y.pow(2).mean().sqrt()), 1e-300)
    return {axis: float(y.mean(axis).abs().max()) / rms for axis in AXES}


def _axis(axis: Any) -> int:
    """``axis`` checked: 0 (the batch) or 1 (the features)."""
    if isinstance(axis, bool) or axis not in AXES:
        v.fail("axis", f"expected 0 (the batch) or 1 (the features), got {axis!r}")
    return int(axis)


def _spread_ok(x: torch.Tensor, axis: int, min_spread: float) -> bool:
    return x.shape[axis] >= 2 and bool((x.std(axis, unbiased=False) >= min_spread).all())


@recipe
def norm_output_moments(*, make: Any, x: list[list[float]], axis: int, moment: str = "worst",
                        dtype: str = "float64", device: str = "cpu") -> Measurement:
    """NORM-01/NORM-02 (norm contract): the layer's output on the batch ``x`` (rows are samples) over
    ``axis`` (0 the batch, 1 the features), worst slice. ``moment``: "abs_mean" |mean|; "variance_gap"
    |biased variance − 1| (NORM-02; a layer dividing by the unbiased estimator leaves (n − 1)/n,
    NORM-01); "worst" the larger of the two; "unbiased_variance_gap" |unbiased variance − 1| (0 for
    a layer that divides by the unbiased estimator). ∞ when the output is not finite."""
    v.choice(moment, "moment", MOMENT_GAPS)
    axis = _axis(axis)
    xt = _tensor(x, dtype, device)
    return Measurement(_moment_gaps(_output(make, xt), axis)[moment], Kind.NUMERIC, dtype, device,
                       {"batch": len(x), "width": len(x[0]) if x else 0, "axis": AXES[axis]}, conditioning=10.0)


def _moment_candidates(axis: int, width: int, seeds: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """Batches of 2, 3 and 8 rows: N(0, 1) draws per seed and structured checkerboard, ramp and
    one-hot-plus-offset batches, each at spreads 0.1 … 1e3 about offsets 0 and 3 (the smallest
    batches are where a biased and an unbiased variance differ most)."""
    out = []
    for m in (2, 3, 8):
        ramp = np.add.outer(np.linspace(-1, 1, m), np.linspace(-1, 1, width)) / 2
        shapes = {"checkerboard": _checkerboard(m, width).numpy(), "ramp": ramp,
                  "one-hot": np.eye(m, width) * 4 - 1}
        for k in range(seeds):
            shapes[f"N(0,1) seed {seed + k}"] = torch.randn(
                m, width, generator=torch.Generator().manual_seed(seed + k), dtype=torch.float64).numpy()
        out += [(f"{name} × {s:g} + {c:g}, {m} rows", a * s + c) for name, a in shapes.items()
                for s in (0.1, 1.0, 1e3) for c in (0.0, 3.0)]
    return out


def _moment_batches(width: int) -> st.SearchStrategy[np.ndarray]:
    """2–12 rows of ``width`` entries in [−1, 1] times 10^p (p in −1..2) plus an offset 0, 0.5 or 3."""
    rows = st.integers(2, 12).flatmap(lambda m: hnp.arrays(np.float64, (m, width), elements=st.floats(-1.0, 1.0)))
    return st.builds(lambda a, p, c: a * 10.0 ** p + c, rows, st.integers(-1, 2), st.sampled_from((0.0, 0.5, 3.0)))


@recipe
def norm_standardisation(*, make: Any, axis: int, width: int = 16, seeds: int = 3, min_spread: float = MIN_SPREAD,
                         seed: int = 0, profile: str = "ci", device: str = "cpu") -> Measurement:
    """NORM-01/NORM-02 (norm contract): sup over batches whose every slice along ``axis`` has std ≥
    ``min_spread`` of the worst |mean| or |biased variance − 1| of the layer's output along ``axis``
    (float64). A search bound: structured and random candidates (:func:`_moment_candidates`) are
    scored first, then a Hypothesis search under ``profile`` over 2–12-row batches."""
    axis = _axis(axis)

    def gap(x: Any) -> float:
        xt = torch.as_tensor(x, dtype=torch.float64).to(device)
        if not _spread_ok(xt, axis, min_spread):
            return -math.inf          # outside the claim's assumption σ ≥ min_spread
        return _moment_gaps(_output(make, xt), axis)["worst"]

    found = search(_moment_batches(width), gap, candidates=_moment_candidates(axis, width, seeds, seed),
                   profile=profile)
    bound = found.bound(dtype="float64", device=device, sizes={"width": width, "axis": AXES[axis],
                                                              "min spread": min_spread, "profile": profile})
    return bound.with_(witness={"source": found.source, "example": np.asarray(found.example).tolist()})


# --- NORM-06 / NORM-07 (norm contract): an RMS-type layer against its definition and LayerNorm -----

RMS_REFERENCES = ("rms", "layer_norm")


def _rms_gap(make: Any, h: torch.Tensor, reference: str) -> float:
    """max |layer(h) − ref(h)| / max |ref(h)| over the rows of ``h``, γ̂ = layer(all-ones rows)
    (RMS(1) = 1: an RMS layer returns its γ there). ``reference`` "rms": h/RMS(h)⊙γ̂ (NORM-06);
    "layer_norm": torch's LayerNorm with weight γ̂, no bias and ε = 0 (NORM-07). ∞ when not finite."""
    y, gamma = _output(make, h), _output(make, torch.ones_like(h))
    if y is None or gamma is None:
        return math.inf
    if reference == "rms":
        ref = h / h.pow(2).mean(1, keepdim=True).sqrt() * gamma
    else:
        ref = torch.stack([nn.functional.layer_norm(row, row.shape, g, None, 0.0) for row, g in zip(h, gamma)])
    return _finite_or_inf(float((y - ref).abs().max() / ref.abs().max()))


@recipe
def norm_rms_gap(*, make: Any, h: list[list[float]], reference: str = "rms", dtype: str = "float32",
                 device: str = "cpu") -> Measurement:
    """NORM-06/NORM-07 (norm contract): the layer on the rows ``h`` against the RMS formula or
    torch's LayerNorm (:func:`_rms_gap`), relative, in ``dtype``."""
    v.choice(reference, "reference", RMS_REFERENCES)
    value = _rms_gap(make, _tensor(h, dtype, device), reference)
    return Measurement(value, Kind.NUMERIC, dtype, device, {"rows": len(h), "C": len(h[0]) if h else 0},
                       conditioning=10.0)


def _rms_candidates(width: int, centred: bool, seeds: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """Two-row batches: N(0, 1) draws, alternating and one-hot rows, at RMS 0.1 … 1e3 (centred
    per row when ``centred``)."""
    shapes = {"alternating": np.tile((-1.0) ** np.arange(width), (2, 1)), "one-hot": np.eye(2, width)}
    for k in range(seeds):
        shapes[f"N(0,1) seed {seed + k}"] = torch.randn(
            2, width, generator=torch.Generator().manual_seed(seed + k), dtype=torch.float64).numpy()
    out = []
    for name, a in shapes.items():
        a = a - a.mean(1, keepdims=True) if centred else a
        a = a / np.sqrt((a ** 2).mean(1, keepdims=True))
        out += [(f"{name}{' centred' if centred else ''}, RMS {s:g}", a * s) for s in (0.1, 1.0, 1e3)]
    return out


@recipe
def norm_rms_definition(*, make: Any, reference: str = "rms", width: int = 16, seeds: int = 3,
                        min_rms: float = MIN_SPREAD, seed: int = 0, profile: str = "ci",
                        device: str = "cpu") -> Measurement:
    """NORM-06 (``reference="rms"``: over rows with RMS ≥ ``min_rms``) and NORM-07 (``"layer_norm"``:
    over zero-mean rows with RMS ≥ ``min_rms``) for a user's layer: sup of :func:`_rms_gap` in
    float32, a search bound (structured candidates, then Hypothesis under ``profile``)."""
    v.choice(reference, "reference", RMS_REFERENCES)
    centred = reference == "layer_norm"

    def gap(h: Any) -> float:
        ht = torch.as_tensor(h, dtype=torch.float32).to(device)
        ht = ht - ht.mean(1, keepdim=True) if centred else ht
        if bool((ht.pow(2).mean(1).sqrt() < min_rms).any()):
            return -math.inf          # outside the assumption RMS(h) ≫ √ε
        return _rms_gap(make, ht, reference)

    found = search(_gain_batches(2, width), gap, candidates=_rms_candidates(width, centred, seeds, seed),
                   profile=profile)
    example = np.asarray(found.example, dtype=np.float32)
    example = example - example.mean(1, keepdims=True) if centred else example
    bound = found.bound(dtype="float32", device=device, sizes={"C": width, "min RMS": min_rms, "profile": profile})
    return bound.with_(witness={"source": found.source, "example": example.astype(float).tolist()})


# --- the norm contract's Jacobian gains -------------------------------------------------------

def _checkerboard(batch: int, width: int) -> torch.Tensor:
    return (-1.0) ** (torch.arange(batch).view(-1, 1) + torch.arange(width).view(1, -1))


def _gain_inputs(batch: int, width: int, seeds: int, scales: Sequence[float], seed: int,
                 dt: torch.dtype) -> list[tuple[str, torch.Tensor]]:
    """Random N(0,1)·scale + 0.5 batches per seed, and structured ones: checkerboard ±scale + 0.5,
    whose per-sample and per-feature stds all equal the scale (where LN, BN and RMSNorm reach
    ‖J‖₂·σ_min ≈ 1: every row and column is as spread as the smallest)."""
    out = []
    for k in range(seeds):
        g = torch.Generator().manual_seed(seed + 100 + k)
        z = torch.randn(batch, width, generator=g, dtype=dt)
        out += [(f"N(0,1) × {s:g} + 0.5, seed {seed + 100 + k}", z * s + 0.5) for s in scales]
    out += [(f"checkerboard × {s:g} + 0.5", _checkerboard(batch, width).to(dt) * s + 0.5) for s in scales]
    return out


def _sigma_min(x: torch.Tensor) -> float:
    """Smallest per-sample or per-feature standard deviation of the input."""
    return float(torch.cat([x.std(0, unbiased=False), x.std(1, unbiased=False)]).min())


def _jacobian_norm(make: Any, x: torch.Tensor) -> float:
    """‖∂layer(x)/∂x‖₂ over the whole batch; ∞ when the output or the Jacobian is not finite (an
    explosion or a NaN born of a division by a vanishing spread: either way no gain to report as small)."""
    layer = _layer(make, x.shape[1], x.dtype, str(x.device))
    with torch.no_grad():
        finite_out = bool(torch.isfinite(layer(x)).all())
    # A layer whose output is NaN may still have a finite (e.g. zero) Jacobian: unmeasurable, ∞.
    jac = jacobian(lambda t: layer(t), x, check_finite=False).detach()
    return spectral_norm(jac) if finite_out and bool(torch.isfinite(jac).all()) else math.inf


def _gain_batches(batch: int, width: int) -> st.SearchStrategy[np.ndarray]:
    """(batch, width) inputs: entries in [-1, 1] times 10^p (p in -2..1) plus an offset 0, 0.5 or 3."""
    entries = hnp.arrays(np.float64, (batch, width), elements=st.floats(-1.0, 1.0, allow_nan=False))
    return st.builds(lambda a, p, c: a * 10.0 ** p + c, entries, st.integers(-2, 1), st.sampled_from((0.0, 0.5, 3.0)))


@recipe
def norm_jacobian_sigma(*, make: Any, width: int = 16, batch: int = 8, seeds: int = 3,
                        scales: tuple[float, ...] = (0.1, 1.0, 10.0), seed: int = 0, profile: str = "ci",
                        device: str = "cpu") -> Measurement:
    """NORM-03 (norm contract): sup over inputs x of ‖∂y/∂x‖₂·σ_min, σ_min the smallest per-sample or
    per-feature std of x (float64, dense Jacobian over the whole batch).

    A search bound (the sup is at least this): random batches at each scale and structured
    checkerboard ones are scored first, then a Hypothesis search under ``profile`` over half-size
    batches of several scales and offsets. A non-finite Jacobian counts as ∞.
    """
    def ratio(x: Any) -> float:
        x = torch.as_tensor(x, dtype=torch.float64).to(device)
        if _sigma_min(x) == 0.0:
            return -math.inf      # σ_min = 0: the bound says nothing (ε-floor's case)
        gain = _jacobian_norm(make, x)
        return math.inf if math.isinf(gain) else gain * _sigma_min(x)

    candidates = [(label, x.numpy()) for label, x in _gain_inputs(batch, width, seeds, scales, seed, torch.float64)]
    # the search draws half batches: a dense Jacobian a quarter the size, and a smaller batch has
    # per-feature stds further apart (where batch statistics are extreme)
    found = search(_gain_batches(max(2, batch // 2), width), ratio, candidates=candidates, profile=profile)
    return found.bound(dtype="float64", device=device,
                       sizes={"width": width, "batch": batch, "seeds": seeds, "profile": profile})


@recipe
def norm_jacobian_norm(*, make: Any, scale: float, width: int = 16, batch: int = 8, seed: int = 200,
                       dtype: str = "float32", device: str = "cpu") -> Measurement:
    """NORM-03 ε floor (norm contract): ‖∂y/∂x‖₂ of the layer at x = scale·N(0, 1) (dense
    Jacobian over the batch); ∞ when the Jacobian is not finite."""
    dt = DTYPES[dtype]
    x = (scale * torch.randn(batch, width, generator=torch.Generator().manual_seed(seed), dtype=dt)).to(device)
    # An SVD of a (batch·width)² matrix whose gain is ~1/σ: float32 rounding of the Jacobian
    # entries moves σ_max by ~100 ulp; 1e2.
    return Measurement(_jacobian_norm(make, x), Kind.NUMERIC, dtype, device, {"width": width, "batch": batch},
                       conditioning=1e2)


FLOOR_SCALES = tuple(10.0 ** (-k / 2) for k in range(8, 17))   # 1e-4 … 1e-8 in half decades


def _floor_candidates(batch: int, width: int, seeds: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """Small-spread batches: N(0, 1) draws (``seeds`` of them) and a checkerboard at each half decade
    of :data:`FLOOR_SCALES`, about offsets 0 and 0.5 (an ε switched off for some band of variances
    shows at the scale that falls in the band)."""
    shapes = {"checkerboard": _checkerboard(batch, width).double().numpy()}
    for k in range(seeds):
        shapes[f"N(0,1) seed {seed + k}"] = torch.randn(
            batch, width, generator=torch.Generator().manual_seed(seed + k), dtype=torch.float64).numpy()
    return [(f"{name} × {s:.3g} + {c:g}", a * s + c) for s in FLOOR_SCALES for c in (0.0, 0.5)
            for name, a in shapes.items()]


@recipe
def norm_small_spread_gain(*, make: Any, width: int = 16, batch: int = 4, seeds: int = 1, seed: int = 200,
                           dtype: str = "float32", profile: str = "ci", device: str = "cpu") -> Measurement:
    """NORM-03 ε floor (norm contract): sup of ‖∂y/∂x‖₂ over inputs whose spread is 1e-4 … 1e-8
    (dense Jacobian over the batch, in ``dtype``). A search bound: structured and random candidates
    at every half decade (:func:`_floor_candidates`), then a Hypothesis search under ``profile`` over
    entries in [−1, 1]·10^p (p in [−8, −4]) about an offset 0 or 0.5, with a quarter of the profile's
    examples (each costs a dense Jacobian; the half-decade sweep already covers every scale). A
    non-finite Jacobian is ∞."""
    dt = DTYPES[dtype]
    strategy = st.builds(lambda a, p, c: a * 10.0 ** p + c,
                         hnp.arrays(np.float64, (batch, width), elements=st.floats(-1.0, 1.0)),
                         st.floats(-8.0, -4.0), st.sampled_from((0.0, 0.5)))
    found = search(strategy, lambda x: _jacobian_norm(make, torch.as_tensor(x, dtype=dt).to(device)),
                   candidates=_floor_candidates(batch, width, seeds, seed), profile=profile,
                   max_examples=max(10, hypothesis_overrides(profile)["max_examples"] // 4))
    bound = found.bound(dtype=dtype, device=device, sizes={"width": width, "batch": batch, "profile": profile})
    # float32 rounding of the Jacobian entries moves σ_max by ~100 ulp (as norm_jacobian_norm)
    return bound.with_(conditioning=1e2, witness={"source": found.source,
                                                   "example": np.asarray(found.example, dtype=float).tolist()})


@recipe
def norm_jacobian_at(*, make: Any, x: list[list[float]], dtype: str = "float32", device: str = "cpu") -> Measurement:
    """NORM-03 ε floor (norm contract): ‖∂y/∂x‖₂ of the layer at the batch ``x`` (a searched witness)."""
    xt = _tensor(x, dtype, device)
    return Measurement(_jacobian_norm(make, xt), Kind.NUMERIC, dtype, device,
                       {"width": xt.shape[1] if xt.ndim == 2 else 0, "batch": len(x)}, conditioning=1e2)


@recipe
def norm_finite_on_constant(*, make: Any, value: float = 0.5, width: int = 16, batch: int = 8,
                            dtype: str = "float32", device: str = "cpu") -> Measurement:
    """NORM-03 ε floor (norm contract): 1 when the layer's output and input gradient are finite on a
    constant batch (zero variance), else 0 (exact)."""
    layer = _layer(make, width, DTYPES[dtype], device)
    x = torch.full((batch, width), value, dtype=DTYPES[dtype], device=device, requires_grad=True)
    out = layer(x)
    (grad,) = torch.autograd.grad(out.sum(), x)
    finite = bool(torch.isfinite(out).all() and torch.isfinite(grad).all())
    return Measurement(float(finite), Kind.EXACT, dtype, device, {"width": width, "batch": batch})


# --- NORM-06 / NORM-07: RMSNorm against its definition and against LayerNorm -------------------

@recipe
def rmsnorm_definition_gap(*, h: list[float], eps: float | None = None, seed: int = 0, bound: float | None = None,
                           device: str = "cpu") -> Measurement:
    """NORM-06: max |torch RMSNorm(h) − h/√(mean h²)·γ| / max |h/√(mean h²)·γ| in float32
    (``eps=None``: torch's default finfo(float32).eps inside the root), γ ~ U(0.5, 2)."""
    rn = norms.rms_norm(len(h), eps=eps).to(device)
    with torch.no_grad():
        rn.weight.copy_(torch.empty(len(h)).uniform_(0.5, 2.0, generator=torch.Generator().manual_seed(seed)))
        ht = _tensor(h, "float32", device)
        formula = ht / torch.sqrt(ht.pow(2).mean()) * rn.weight
        gap = float((rn(ht) - formula).abs().max() / formula.abs().max())
    return _value(gap, bound, "float32", device, {"C": len(h)})


RMS_LN = ("output_gap", "jacobian_gap", "ln_mean_gain", "rms_mean_gain")


@recipe
def rmsnorm_vs_layernorm(*, quantity: str = "output_gap", shift: float = 0.0, features: int = 16, eps: float = 1e-6,
                         seed: int = 0, bound: float | None = None, device: str = "cpu") -> Measurement:
    """NORM-07: RMSNorm against LayerNorm (β = 0, the same γ ~ U(0.5, 2)) at h = h₀ + shift, h₀ a
    centred N(0, 1) draw (float64).

    ``quantity``: "output_gap" max |RMSNorm(h) − LN(h)|; "jacobian_gap" ‖J_RMS − J_LN‖₂ (the closed
    forms of gradcore.normalisation); "ln_mean_gain"/"rms_mean_gain" ‖J·1/√C‖, how much of the mean
    direction each Jacobian passes.
    """
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(features, generator=g, dtype=torch.float64)
    h = (h - h.mean() + shift).to(device)
    ln = norms.layer_norm(features, eps=eps).to(device, torch.float64)
    rn = norms.rms_norm(features, eps=eps).to(device, torch.float64)
    with torch.no_grad():
        ln.weight.copy_(torch.empty(features, dtype=torch.float64).uniform_(0.5, 2.0, generator=g))
        ln.bias.zero_()
        rn.weight.copy_(ln.weight)
        if quantity == "output_gap":
            return _value(float((rn(h) - ln(h)).abs().max()), bound, "float64", device, {"C": features})
    j_ln = norms.layernorm_jacobian(h, eps, ln.weight.detach())
    j_rms = norms.rmsnorm_jacobian(h, eps, rn.weight.detach())
    ones = torch.ones(features, dtype=torch.float64, device=device) / math.sqrt(features)
    value = {"jacobian_gap": lambda: spectral_norm(j_rms - j_ln), "ln_mean_gain": lambda: float((j_ln @ ones).norm()),
             "rms_mean_gain": lambda: float((j_rms @ ones).norm())}[quantity]()
    return _value(value, bound, "float64", device, {"C": features}, conditioning=10.0)



# --- NORM-03 / NORM-07: gradcore's closed forms and factories against torch's own modules ------

NORM_LAYERS: dict[str, tuple[type[nn.Module], Callable[..., torch.Tensor]]] = {
    "batch_norm": (nn.BatchNorm1d, norms.batchnorm_jacobian),
    "layer_norm": (nn.LayerNorm, norms.layernorm_jacobian),
    "rms_norm": (nn.RMSNorm, norms.rmsnorm_jacobian),
}
CLOSED_FORM_QUANTITIES = ("jacobian", "forward")


def _twin_layers(layer: str, features: int, eps: float, gamma: float | None,
                 g: torch.Generator, device: str) -> tuple[nn.Module, nn.Module]:
    """gradcore's factory module and torch.nn's own class built directly, with the same ε, γ and β
    (γ = ``gamma``, or U(0.5, 2) per feature when None; β ~ U(−1, 1) where the layer has one)."""
    ours = getattr(norms, layer)(features, eps=eps).to(device, torch.float64).train()
    theirs = NORM_LAYERS[layer][0](features, eps=eps).to(device, torch.float64).train()
    with torch.no_grad():
        weight = (torch.full((features,), gamma, dtype=torch.float64) if gamma is not None
                  else torch.empty(features, dtype=torch.float64).uniform_(0.5, 2.0, generator=g))
        for module in (ours, theirs):
            module.weight.copy_(weight)
        if getattr(ours, "bias", None) is not None:
            bias = torch.empty(features, dtype=torch.float64).uniform_(-1.0, 1.0, generator=g)
            ours.bias.copy_(bias)
            theirs.bias.copy_(bias)
    return ours, theirs


def _closed_form_residual(layer: str, quantity: str, x: torch.Tensor, eps: float, gamma: float | None,
                          g: torch.Generator) -> float:
    """max |gradcore − torch| / max |torch| for one input ``x`` (a batch of one feature for BatchNorm,
    one vector for LayerNorm and RMSNorm)."""
    batch = layer == "batch_norm"
    ours, theirs = _twin_layers(layer, 1 if batch else len(x), eps, gamma, g, str(x.device))
    inp = x.view(-1, 1) if batch else x
    if quantity == "forward":
        with torch.no_grad():
            mine, ref = ours(inp), theirs(inp)
    else:
        # plain autograd through torch's module, independent of gradcore's own Jacobian helpers
        ref = torch.autograd.functional.jacobian(theirs, inp).reshape(len(x), len(x))
        mine = NORM_LAYERS[layer][1](x, eps, theirs.weight.detach())
    return float((mine - ref).abs().max() / ref.abs().max())


@recipe
def closed_form_gap(*, layer: str, quantity: str = "jacobian", size: int, eps: float,
                    gamma: float | None = None, scales: tuple[float, ...] = (1.0, 1e-3), seed: int = 0,
                    bound: float | None = None, device: str = "cpu") -> Measurement:
    """NORM-03/NORM-07: gradcore against torch.nn's own module (float64), the largest relative gap
    over inputs x = scale·(N(0, 1) + 0.5) of ``size`` values, one per scale.

    ``layer`` "batch_norm" (one feature over a batch of ``size``), "layer_norm" or "rms_norm" (one
    vector of ``size``). ``quantity`` "jacobian": gradcore's closed-form Jacobian against torch
    autograd of ``torch.nn.BatchNorm1d/LayerNorm/RMSNorm``; "forward": the output of gradcore's
    factory module against the torch class built directly with the same ε. A small scale puts the
    spread near √ε, where a closed form that drops or misplaces ε is visibly off.
    """
    v.choice(layer, "layer", tuple(NORM_LAYERS))
    v.choice(quantity, "quantity", CLOSED_FORM_QUANTITIES)
    g = torch.Generator().manual_seed(seed)
    gaps = []
    for scale in scales:
        x = (scale * (torch.randn(size, generator=g, dtype=torch.float64) + 0.5)).to(device)
        gaps.append(_closed_form_residual(layer, quantity, x, eps, gamma, g))
    sizes = {"m" if layer == "batch_norm" else "C": size, "scales": list(scales)}
    return _value(max(gaps), bound, "float64", device, sizes, conditioning=10.0)

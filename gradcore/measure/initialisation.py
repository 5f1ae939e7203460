"""Weight initialisers measured: sampled Var(W), signal variance through a layer and through depth.

INIT-01/02/04/05/06 and the initialiser contract's fan-scaling clause. Every draw comes
from an explicit seed (:func:`gradcore.measure.transfer.seeded` for initialisers, which
take no generator); networks are built on the CPU and moved, so every device measures the
same weights.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import sympy as sp
import sympy.stats as ss
import torch

from .. import _validate as v
from .. import chains, initialisation as initialisers, probes
from ..stats import MEAN_METHOD, loglog_exponent, mean_ci, proportion_ci
from .measurement import Given, Kind, Measurement, recipe
from .seeding import seeded
from .transfer import streams

INPUTS = ("gaussian", "sigmoid")   # x ~ N(0, 1) or x = sigmoid(N(0, 1)) (mean ≈ 0.5)
SIGNALS = ("variance", "second_moment")


def _fill(init: str | Callable) -> Callable[[torch.Tensor], Any]:
    return initialisers.get(init) if isinstance(init, str) else init


def _statistical(values: list[float], dtype: str, device: str, sizes: dict[str, Any]) -> Measurement:
    mean, lo, hi = mean_ci(values)
    return Measurement(mean, Kind.STATISTICAL, dtype, device, sizes, interval=(lo, hi), method=MEAN_METHOD,
                       n=len(values))


def _weight(init: str | Callable, n_in: int, n_out: int, seed: int, device: str) -> torch.Tensor:
    w = torch.empty(n_out, n_in, dtype=torch.float64)
    with seeded(seed):
        _fill(init)(w)
    return w.to(device)


@recipe
def variance_ratio(*, init: str, n_in: int, n_out: int, draws: int = 10, seed: int = 0,
                   device: str = "cpu") -> Measurement:
    """INIT-01/05: sampled Var(W) of torch's initialiser over the Var(W) its formula prescribes
    (``gradcore.initialisation.variance``), mean over ``draws`` weights with a Student-t interval."""
    formula = initialisers.variance(init, n_in, n_out)
    ratios = [float(_weight(init, n_in, n_out, seed + k, device).var()) / formula for k in range(draws)]
    return _statistical(ratios, "float64", device, {"n_in": n_in, "n_out": n_out, "draws": draws})


@recipe
def weight_variance(*, init: str | Given, n: int, seed: int = 0, device: str = "cpu") -> Measurement:
    """Initialiser contract: n·Var(W) of one (n × n) weight drawn from ``seed`` (deterministic given it)."""
    return Measurement(n * float(_weight(init, n, n, seed, device).var()), Kind.NUMERIC, "float64", device,
                       {"n": n})


DRAW_STRIDE = 7919   # draw k of a fan n comes from seed + n + 7919·k: no two (fan, draw) pairs share a seed


def _draw_slope(init: str | Callable, fans: tuple[int, ...], seed: int, device: str) -> float:
    """The log–log slope of one draw's sampled Var(W) over the square fans (weight n from seed + n)."""
    return loglog_exponent(list(fans), [float(_weight(init, n, n, seed + n, device).var()) for n in fans])[0]


@recipe
def fan_exponent(*, init: str | Given, fans: tuple[int, ...] = (32, 128, 512), draws: int = 3, seed: int = 0,
                 device: str = "cpu") -> Measurement:
    """Initialiser contract (INIT-01/05/07): exponent p of Var(W) ∝ n^p over square weights of sizes
    ``fans``: per draw a log–log least-squares fit (draw k's weight n from seed + n + 7919·k), the
    mean over ``draws`` with its Student-t interval (an initialiser's randomness may reach its scale)."""
    slopes = [_draw_slope(init, tuple(fans), seed + DRAW_STRIDE * k, device) for k in range(draws)]
    return _statistical(slopes, "float64", device, {"fans": list(fans), "draws": draws})


def _inputs(kind: str, batch: int, n_in: int, g: torch.Generator) -> torch.Tensor:
    x = torch.randn(batch, n_in, generator=g, dtype=torch.float64)
    return torch.sigmoid(x) if kind == "sigmoid" else x


@recipe
def forward_variance_ratio(*, inputs: str, n_in: int = 256, n_out: int = 256, batch: int = 1024, seeds: int = 8,
                           seed: int = 0, device: str = "cpu") -> Measurement:
    """INIT-02: Var(y)/(n_in·Var(W)·Var(x)) for y = W x, W by xavier_normal, over inputs *and* units
    (the formula's randomness is in both x and W); mean over ``seeds`` (x, W) draws."""
    return _forward_ratio("xavier_normal", inputs, n_in, n_out, batch, seeds, seed, device)


@recipe
def init_forward_variance_ratio(*, init: str | Given, inputs: str = "gaussian", n_in: int = 256, n_out: int = 256,
                                batch: int = 1024, seeds: int = 8, seed: int = 0,
                                device: str = "cpu") -> Measurement:
    """INIT-02, initialiser contract: :func:`forward_variance_ratio` with W drawn by ``init`` (a
    gradcore.initialisation name or a user's initialiser as Given). 1 for zero-mean weights; a weight mean
    m adds n_in·m²·Var(x) to Var(y), so the ratio is E[w²]/Var(w) > 1."""
    return _forward_ratio(init, inputs, n_in, n_out, batch, seeds, seed, device)


def _forward_ratio(init: str | Callable, inputs: str, n_in: int, n_out: int, batch: int, seeds: int, seed: int,
                   device: str) -> Measurement:
    v.choice(inputs, "inputs", INPUTS)
    ratios = []
    for s in range(seeds):
        weights, g = streams(seed + s)
        x = _inputs(inputs, batch, n_in, g).to(device)
        w = _weight(init, n_in, n_out, weights, device)
        ratios.append(float((x @ w.T).var()) / (n_in * float(w.var()) * float(x.var())))
    if not all(math.isfinite(r) for r in ratios):   # a non-finite or constant weight: no ratio to average
        return Measurement(math.inf, Kind.STATISTICAL, "float64", device, interval=(math.inf, math.inf),
                           method=MEAN_METHOD, n=seeds, witness="Var(W) is 0 or a weight is not finite")
    return _statistical(ratios, "float64", device, {"n_in": n_in, "n_out": n_out, "batch": batch, "seeds": seeds})


@functools.lru_cache(maxsize=1)
def _forward_variance() -> tuple[sp.Expr, sp.Expr]:
    """Var(Σ_j w_j x_j) for n i.i.d. terms w ~ N(0, σ_w²), x ~ N(μ, σ_x²), and its gap to n·σ_w²·σ_x²."""
    n, sw, sx, mu = sp.symbols("n sigma_w sigma_x mu", positive=True)
    exact = sp.simplify(n * ss.variance(ss.Normal("w", 0, sw) * ss.Normal("x", mu, sx)))
    return exact, sp.simplify(exact - n * sw**2 * sx**2)


def forward_variance() -> sp.Expr:
    """The exact Var(y_i) of INIT-02 (sympy), for the corrected statement."""
    return _forward_variance()[0]


@recipe
def forward_variance_gap(*, mean: float = 0.0) -> Measurement:
    """INIT-02: Var(Σ_j w_j x_j) − n·Var(w)·Var(x) at E[x] = ``mean``, σ_w = σ_x = n = 1 (sympy, exact)."""
    gap = _forward_variance()[1]
    at = {s: (sp.nsimplify(mean) if s.name == "mu" else 1) for s in gap.free_symbols}
    return Measurement(float(gap.subs(at)), Kind.EXACT)


@recipe
def xavier_variance(*, n_in: int, n_out: int) -> Measurement:
    """INIT-03: the Var(W) = 2/(n_in + n_out) Xavier prescribes (exact rational, as a float)."""
    return Measurement(float(sp.Rational(2, n_in + n_out)), Kind.EXACT)


@recipe
def xavier_mean_gap(*, mean: str) -> Measurement:
    """INIT-03: 2/(n_in + n_out) minus the ``mean`` ("harmonic" or "geometric") of the forward and
    backward requirements 1/n_in, 1/n_out, simplified by sympy; exactly 0 when they are equal, else
    the gap at n_in = 100, n_out = 400."""
    a, b = sp.symbols("n_in n_out", positive=True)
    u, w = 1 / a, 1 / b
    means = {"harmonic": 2 / (1 / u + 1 / w), "geometric": sp.sqrt(u * w)}
    gap = sp.simplify(2 / (a + b) - means[v.choice(mean, "mean", means)])
    return Measurement(float(gap.subs({a: 100, b: 400})), Kind.EXACT)


def _network(activation: str, init: str, depth: int, width: int, seed: int, dtype: torch.dtype,
             device: str) -> torch.nn.Sequential:
    with seeded(seed):
        m = chains.feedforward(depth, width, activation, init, dtype=dtype)
    return m.to(device)


@functools.lru_cache(maxsize=64)
def _signal(activation: str, init: str, depth: int, width: int, batch: int, seed: int, signal: str,
            dtype: str, device: str) -> tuple[float, ...]:
    """Var(h_l) for l = 0…depth, or E[z_l²] for l = 1…depth, of one seeded network and input."""
    dt = probes.FLOAT_DTYPES[dtype]
    weights, g = streams(seed)
    m = _network(activation, init, depth, width, weights, dt, device)
    x = torch.randn(batch, width, generator=g, dtype=dt).to(device)
    with torch.no_grad():
        if signal == "variance":
            return tuple(float(h.var()) for h in chains.hidden_states(m, x))
        return tuple(float((z.double() ** 2).mean()) for z in chains.pre_activations(m, x))


def signal_curve(*, activation: str, init: str, depth: int, width: int, batch: int, seed: int, signal: str,
                 dtype: str = "float32", device: str = "cpu") -> list[float]:
    """The per-layer signal of one network (for a theorem's figure)."""
    return list(_signal(activation, init, depth, width, batch, seed, v.choice(signal, "signal", SIGNALS),
                        dtype, device))


@recipe
def variance_drift(*, activation: str, init: str, depth: int, widths: tuple[int, ...], batch: int, seeds: int,
                   seed: int = 0, dtype: str = "float32", device: str = "cpu") -> Measurement:
    """INIT-04: Var(h_depth)/Var(h_1) of feedforward networks, mean over ``widths`` × ``seeds``."""
    ratios = []
    for width in widths:
        for s in range(seeds):
            var = _signal(activation, init, depth, width, batch, seed + s, "variance", dtype, device)
            ratios.append(var[-1] / var[1])
    return _statistical(ratios, dtype, device, {"depth": depth, "widths": list(widths), "batch": batch,
                                                "seeds": seeds})


@recipe
def second_moment_factor(*, activation: str, init: str, depth: int, widths: tuple[int, ...], batch: int,
                         seeds: int, seed: int = 0, dtype: str = "float32", device: str = "cpu") -> Measurement:
    """INIT-06: per-layer factor (E[z_depth²]/E[z_1²])^{1/(depth−1)} of the pre-activations' second
    moment, mean over ``widths`` × ``seeds``."""
    factors = []
    for width in widths:
        for s in range(seeds):
            q = _signal(activation, init, depth, width, batch, seed + s, "second_moment", dtype, device)
            factors.append((q[-1] / q[0]) ** (1 / (depth - 1)))
    return _statistical(factors, dtype, device, {"depth": depth, "widths": list(widths), "batch": batch,
                                                 "seeds": seeds})


@recipe
def relu_zero_share(*, samples: int = 400000, seed: int = 0, device: str = "cpu") -> Measurement:
    """INIT-05: share of ReLU outputs exactly 0 for z ~ N(0, 1), with its Wilson interval."""
    z = torch.randn(samples, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(device)
    zeros = int((torch.relu(z) == 0).sum())
    p, lo, hi = proportion_ci(zeros, samples)
    return Measurement(p, Kind.STATISTICAL, "float64", device, {"samples": samples}, interval=(lo, hi),
                       method="Wilson 95% score interval", n=samples)


@recipe
def relu_second_moment() -> Measurement:
    """INIT-05: E[ReLU(z)²]/Var(z) for z ~ N(0, s²), exactly (sympy)."""
    s = sp.Symbol("s", positive=True)
    z = ss.Normal("z", 0, s)
    second = sp.simplify(ss.E(sp.Piecewise((z, z > 0), (0, True)) ** 2))
    return Measurement(float(sp.simplify(second / s**2)), Kind.EXACT)

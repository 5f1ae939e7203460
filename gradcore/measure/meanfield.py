"""Mean-field quantities of deep random nets and the spectra of their Jacobian products.

LIT-09 (Schoenholz et al. 2017 eqs. 3–5): the fixed point q* of the length map and
χ₁ = σ_w² E[φ'(√q* z)²], the per-layer ratio of back-propagated squared gradient norms,
with the tanh order-to-chaos transition at σ_w² = 1 when σ_b = 0.
LIT-08 (Pennington et al. 2017): the variance σ²_{JJᵀ} of the spectrum of JJᵀ grows with
depth in ReLU nets for Gaussian and orthogonal weights alike, and is 0 for orthogonal linear nets.
LIT-14 (Saxe et al. 2014 §3): products of orthogonal matrices keep every singular value 1
at any depth; products of scaled Gaussian matrices spread them with depth.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch
from scipy import optimize

from .. import activations as acts
from .. import chains
from .. import initialisation as inits
from ..jacobian import jacobian
from ..stats import MEAN_METHOD, PER_SEED_LOGLOG_SLOPES, mean_ci, per_seed_slope_ci
from .measurement import Kind, Measurement, recipe
from .signal import seeded_feedforward

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(161)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()   # E[f(z)], z ~ N(0, 1), by Gauss–Hermite quadrature
_PHI = {"tanh": (np.tanh, lambda x: 1 - np.tanh(x) ** 2)}


def _formula(activation: Any) -> bool:
    """Whether gradcore has φ, φ' in closed form for ``activation`` (else they are taken from torch)."""
    return isinstance(activation, str) and activation in _PHI


def _gauss(f) -> float:
    return float(np.dot(_WEIGHTS, f(_NODES)))


_Q_RANGE = (1e-14, 1e4)   # the bracket q* is searched in


def fixed_point_q(sigma_w2: float, sigma_b2: float = 0.0, activation: Any = "tanh") -> float:
    """q* solving q = σ_w² E[φ(√q z)²] + σ_b²; 0 when that map has no positive fixed point.

    For an activation other than gradcore's tanh formula (a registry name or a user's function),
    q* is searched the same way with φ evaluated by torch; where the map has no fixed point below
    the bracket's top (q grows without bound, or, for a homogeneous φ like ReLU at σ_w² = 2, every
    q is one) the top is returned: χ₁ of a homogeneous φ does not depend on q.
    """
    if not _formula(activation):
        return _generic_fixed_point(sigma_w2, sigma_b2, activation)
    phi, _ = _PHI[activation]

    def excess(q: float) -> float:   # divided by q so the trivial root q = 0 (σ_b = 0) is not found
        return (sigma_w2 * _gauss(lambda z: phi(math.sqrt(q) * z) ** 2) + sigma_b2) / q - 1

    lo, hi = _Q_RANGE
    if excess(lo) <= 0:
        return 0.0
    return float(optimize.brentq(excess, lo, hi, xtol=1e-15, rtol=1e-14, maxiter=500))


def _chi1(sigma_w2: float, sigma_b2: float, activation: Any) -> float:
    if not _formula(activation):
        return _generic_chi1(sigma_w2, sigma_b2, activation)
    _, dphi = _PHI[activation]
    q = fixed_point_q(sigma_w2, sigma_b2, activation)
    return sigma_w2 * _gauss(lambda z: dphi(math.sqrt(q) * z) ** 2)


# Any other activation: φ and φ' (autograd) on an even number of Gauss–Hermite nodes, so that no
# node sits on z = 0, where a kink (ReLU's) would weigh autograd's one-sided φ'(0) with ~6 % of the mass.
_EVEN_NODES, _EVEN_WEIGHTS = np.polynomial.hermite_e.hermegauss(160)
_EVEN_WEIGHTS = _EVEN_WEIGHTS / _EVEN_WEIGHTS.sum()


def _phi_moments(activation: Any, q: float) -> tuple[float, float]:
    """(E[φ(√q z)²], E[φ'(√q z)²]) for z ~ N(0, 1); +inf when φ or φ' is not finite at a node."""
    from .derivative import fn_of, slope

    fn = fn_of(activation, "cpu", torch.float64)
    x = torch.tensor(math.sqrt(q) * _EVEN_NODES, dtype=torch.float64)
    with torch.no_grad():
        y = fn(x.clone()).double()
    d = slope(fn, x, absolute=True)
    w = torch.tensor(_EVEN_WEIGHTS, dtype=torch.float64)
    m2 = float((w * y ** 2).sum()) if bool(torch.isfinite(y).all()) else math.inf
    return m2, float((w * d ** 2).sum())


def _generic_fixed_point(sigma_w2: float, sigma_b2: float, activation: Any) -> float:
    def excess(q: float) -> float:
        return (sigma_w2 * _phi_moments(activation, q)[0] + sigma_b2) / q - 1

    lo, hi = _Q_RANGE
    if excess(lo) <= 0:
        return 0.0
    if not excess(hi) < 0:
        return hi
    return float(optimize.brentq(excess, lo, hi, xtol=1e-15, rtol=1e-14, maxiter=500))


def _generic_chi1(sigma_w2: float, sigma_b2: float, activation: Any) -> float:
    # q* = 0 (an ordered phase without bias): χ₁ is the limit q → 0⁺, taken at the bracket's bottom
    q = max(_generic_fixed_point(sigma_w2, sigma_b2, activation), _Q_RANGE[0])
    return sigma_w2 * _phi_moments(activation, q)[1]


@recipe
def chi1(*, sigma_w2: float = 1.0, sigma_b2: float = 0.0, activation: Any = "tanh") -> Measurement:
    """LIT-09, activation contract: χ₁ = σ_w² ∫Dz φ'(√q* z)² by Gauss–Hermite quadrature at the fixed
    point q* (161 nodes for gradcore's tanh formula; 160 nodes, φ' by autograd, for any other
    activation: a registry name or a user's function as Given). +inf when φ' is not finite there."""
    # root-finding for q* then quadrature: a few hundred ulp, well inside 1e3 × 64 ulp
    nodes = len(_NODES) if _formula(activation) else len(_EVEN_NODES)
    return Measurement(_chi1(sigma_w2, sigma_b2, activation), Kind.NUMERIC, "float64", "cpu",
                       {"quadrature nodes": nodes}, conditioning=1e3)


@recipe
def fixed_point_length(*, sigma_w2: float = 1.0, sigma_b2: float = 0.0, activation: Any = "tanh") -> Measurement:
    """LIT-09, activation contract: the fixed point q* of the length map q ↦ σ_w² E[φ(√q z)²] + σ_b²
    (0: the signal dies out; the bracket's top 1e4: it grows without bound or every q is fixed)."""
    return Measurement(fixed_point_q(sigma_w2, sigma_b2, activation), Kind.NUMERIC, "float64", "cpu",
                       {"bracket": list(_Q_RANGE)}, conditioning=1e3)


@recipe
def critical_sigma_w2(*, sigma_b2: float = 0.0, activation: str = "tanh", lo: float = 0.5,
                      hi: float = 3.0) -> Measurement:
    """LIT-09: the σ_w² in [lo, hi] where χ₁ crosses 1 (Brent's method on χ₁ − 1)."""
    root = optimize.brentq(lambda s: _chi1(s, sigma_b2, activation) - 1, lo, hi, xtol=1e-13)
    # For tanh, σ_b = 0, χ₁ − 1 = O((σ_w² − 1)²) just above the transition (q* ≈ (σ_w² − 1)/2σ_w²
    # cancels the first order), so rounding in χ₁ moves the root by ~√ε: conditioning 1e8.
    return Measurement(float(root), Kind.NUMERIC, "float64", "cpu", {"bracket": f"[{lo}, {hi}]"},
                       conditioning=1e8)


@functools.lru_cache(maxsize=None)
def _gradient_ratios(sigma_w2: float, width: int, depth: int, burn_in: int, seeds: int) -> tuple[float, ...]:
    """Per seed: mean over layers l > burn_in of ‖∂L/∂h_{l−1}‖² / ‖∂L/∂h_l‖² (tanh net)."""
    out = []
    for s in range(seeds):
        net = seeded_feedforward(depth, width, "tanh", "normal", 15485863 + s,
                                 init_kwargs={"std": math.sqrt(sigma_w2 / width)})
        g = torch.Generator().manual_seed(s)
        hs = chains.hidden_states(net, torch.randn(width, generator=g, dtype=torch.float64).requires_grad_())
        cotangent = torch.randn(width, generator=g, dtype=torch.float64)
        grads = torch.autograd.grad((hs[-1] * cotangent).sum(), hs[:-1])
        sq = np.array([float(x.pow(2).sum()) for x in grads] + [float(cotangent.pow(2).sum())])
        out.append(float(np.mean((sq[:-1] / sq[1:])[burn_in:])))
    return tuple(out)


@recipe
def gradient_ratio(*, sigma_w2: float = 1.5, width: int = 256, depth: int = 30, burn_in: int = 10,
                   seeds: int = 5) -> Measurement:
    """LIT-09: the measured per-layer ratio of squared gradient norms in a random tanh net (σ_b = 0).

    Weights N(0, σ_w²/n); layers after ``burn_in``, where the length q_l has reached q*;
    mean over layers per seed (not geometric: no Jensen bias), Student-t interval across seeds.
    """
    values = list(_gradient_ratios(sigma_w2, width, depth, burn_in, seeds))
    mean, lo, hi = mean_ci(values)
    return Measurement(mean, Kind.STATISTICAL, "float64", "cpu",
                       {"width": width, "depth": depth, "burn-in layers": burn_in, "seeds": seeds},
                       interval=(lo, hi), method=MEAN_METHOD, n=seeds)


def _product(init: Any, width: int, depth: int, seed: int) -> torch.Tensor:
    """W_depth ⋯ W_1 for square weights: 'gaussian' N(0, 1/n), a gradcore.initialisation name ('orthogonal', ...)
    or a user's initialiser (a function filling a weight in place)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ws = [torch.empty(width, width, dtype=torch.float64) for _ in range(depth)]
        for w in ws:
            if isinstance(init, str) and init == "gaussian":
                inits.normal(w, std=1 / math.sqrt(width))
            else:   # 'orthogonal' or another gradcore.initialisation name, or a user's initialiser
                (inits.get(init) if isinstance(init, str) else init)(w)
    return chains.linear_network(ws)(torch.eye(width, dtype=torch.float64))


@recipe
def product_singular_deviation(*, init: str = "orthogonal", width: int = 64, depth: int = 100,
                               seed: int = 0) -> Measurement:
    """LIT-14: max_i |σ_i(W_depth ⋯ W_1) − 1| for orthogonal weights: a rounding residual."""
    sv = torch.linalg.svdvals(_product(init, width, depth, seed))
    # each orthogonal factor is orthogonal to ~√n ulp; depth products add up: allow depth·width ulp·10
    bound = 10 * depth * width * 2.0 ** -52
    return Measurement(float((sv - 1).abs().max()), Kind.ROUNDING, "float64", "cpu",
                       {"width": width, "depth": depth}, bound=bound)


@recipe
def product_log10_condition(*, init: Any = "gaussian", width: int = 32, depth: int = 8,
                            seed: int = 0) -> Measurement:
    """LIT-14, initialiser contract: log₁₀(σ_max/σ_min) of W_depth ⋯ W_1 (one seeded draw; ``init``
    'gaussian', a gradcore.initialisation name or a user's initialiser as Given); ∞ when the product is singular."""
    sv = torch.linalg.svdvals(_product(init, width, depth, seed))
    if not (bool(torch.isfinite(sv).all()) and float(sv[-1]) > 0):
        return Measurement(math.inf, Kind.NUMERIC, "float64", "cpu", {"width": width, "depth": depth})
    # σ_min of a deep Gaussian product is tiny: its relative rounding error is ~ε·cond (cond ≤ 1e12
    # at the depths measured), so the logarithm is known to ~1e12 × 64 ulp
    return Measurement(math.log10(float(sv[0] / sv[-1])), Kind.NUMERIC, "float64", "cpu",
                       {"width": width, "depth": depth}, conditioning=1e12)


# critical weight scale: σ_w² = 1 keeps a linear net's E tr JJᵀ/n at 1, σ_w² = 2 a ReLU net's
_CRITICAL_VAR = {"linear": 1.0, "relu": 2.0}
# gradcore.activations has no identity; a deep linear net is a feedforward chain with this one
_IDENTITY = acts.Activation("identity", lambda x: x, lambda x: x, "orthogonal")


def _init_args(activation: str, init: str, width: int) -> tuple[str, dict]:
    var = _CRITICAL_VAR[activation]
    if init == "orthogonal":
        return "orthogonal", {"gain": math.sqrt(var)}
    return "normal", {"std": math.sqrt(var / width)}


def _critical_net(activation: str, init: Any, width: int, depth: int, seed: int) -> torch.nn.Sequential:
    """A feedforward net at criticality: weights of gradcore's ``init`` ('gaussian', 'orthogonal') at
    σ_w², or a user's initialiser's weights each rescaled to second moment σ_w²/n."""
    act = _IDENTITY if activation == "linear" else activation
    if isinstance(init, str):
        name, kwargs = _init_args(activation, init, width)
        return seeded_feedforward(depth, width, act, name, 32452843 + seed, init_kwargs=kwargs)
    net = seeded_feedforward(depth, width, act, "normal", 32452843 + seed)   # shapes; every weight redrawn below
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(32452843 + seed)
        for linear in chains.linears(net):
            init(linear.weight)
            linear.weight.mul_(torch.sqrt(_CRITICAL_VAR[activation] / (width * linear.weight.pow(2).mean())))
    return net


def _spectrum_variances_of(activation: str, init: Any, width: int, depths: tuple[int, ...],
                           seed: int) -> tuple[float, ...]:
    """σ²_{JJᵀ} = m₂ − m₁² of the eigenvalues of JJᵀ, J the input–output Jacobian, at each depth."""
    net = _critical_net(activation, init, width, max(depths), seed)
    x = torch.randn(width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    out = []
    for depth in depths:
        jac = jacobian(net[:2 * depth], x).detach()
        eig = torch.linalg.svdvals(jac) ** 2
        out.append(float((eig ** 2).mean() - eig.mean() ** 2))
    return tuple(out)


_spectrum_variances = functools.lru_cache(maxsize=None)(_spectrum_variances_of)


def _variances(activation: str, init: Any, width: int, depths: tuple[int, ...], seed: int) -> tuple[float, ...]:
    # gradcore's own weights are cached (theorems ask several quantities of one net); a user's
    # initialiser is measured afresh (it may carry state, and its identity is no key)
    measure = _spectrum_variances if isinstance(init, str) else _spectrum_variances_of
    return measure(activation, init, width, tuple(depths), seed)


def spectrum_variance_curve(*, activation: str, init: str, width: int = 64, depths: tuple[int, ...] = (1, 2, 4, 8),
                            seeds: int = 8) -> tuple[list[int], list[float]]:
    """LIT-08 curve: depth and the mean over seeds of σ²_{JJᵀ} (for figures)."""
    per_seed = np.array([_variances(activation, init, width, depths, s) for s in range(seeds)])
    return list(depths), list(per_seed.mean(0))


@recipe
def spectrum_variance_exponent(*, activation: str = "linear", init: Any = "gaussian", width: int = 64,
                               depths: tuple[int, ...] = (1, 2, 4, 8), seeds: int = 8) -> Measurement:
    """LIT-08: p in σ²_{JJᵀ} ∝ depth^p at criticality (per-seed log–log slope, Student-t across seeds).

    Log–log per seed because σ²_{JJᵀ} of Gaussian ReLU nets is heavy-tailed across seeds. ``init``:
    'gaussian', 'orthogonal' or a user's initialiser as Given (each weight rescaled to σ_w²/n).
    """
    ys = [_variances(activation, init, width, depths, s) for s in range(seeds)]
    mean, lo, hi = per_seed_slope_ci(depths, ys, log_x=True)
    return Measurement(mean, Kind.STATISTICAL, "float64", "cpu",
                       {"width": width, "depths": list(depths), "seeds": seeds},
                       interval=(lo, hi), method=PER_SEED_LOGLOG_SLOPES, n=seeds)


@recipe
def spectrum_variance(*, activation: str = "linear", init: Any = "orthogonal", width: int = 64, depth: int = 8,
                      seed: int = 0) -> Measurement:
    """LIT-08: σ²_{JJᵀ} at one depth and seed. Within the rounding bound it is a rounding residual of an
    exact 0 (a linear orthogonal net: an isometry); above it, a deterministic value (a Gaussian net's
    spread), compared like any float64 number."""
    value = _variances(activation, init, width, (depth,), seed)[0]
    bound = 10 * depth * width * 2.0 ** -52
    if value <= bound:
        return Measurement(value, Kind.ROUNDING, "float64", "cpu", {"width": width, "depth": depth}, bound=bound)
    return Measurement(value, Kind.NUMERIC, "float64", "cpu", {"width": width, "depth": depth})

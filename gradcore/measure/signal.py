"""Variance recursions of signals through random layers, measured (literature claims).

LIT-01 (Vaswani et al. 2017 §3.2.1 fn. 4): Var(q·k) = d_k for unit-variance components.
LIT-05 (Glorot & Bengio 2010 eqs. 1, 15–16 and §4.2.2): n·Var of U[−1/√n, 1/√n] and the mean
singular value of the layer Jacobians of a 5-layer tanh net. LIT-06 (He et al. 2015
eqs. 9–10): Var[y_L]/Var[y_1] = ∏ ½ n_l Var[w_l] in a ReLU net.
Every draw comes from an explicit seed; estimates carry Student-t intervals over seeds.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import sympy as sp
import torch
from torch import nn

from .. import activations as acts
from .. import chains
from .. import initialisation as initialisers
from ..probes import FLOAT_DTYPES
from ..stats import MEAN_METHOD, mean_ci
from .measurement import Kind, Measurement, recipe


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def seeded_feedforward(depth: int, width: int, activation: str | acts.Activation, init: str, seed: int,
                       init_kwargs: dict | None = None, dtype: str = "float64") -> nn.Sequential:
    """chains.feedforward drawn under ``seed`` without touching the caller's global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return chains.feedforward(depth, width, activation, init, init_kwargs=init_kwargs,
                                  dtype=FLOAT_DTYPES[dtype])


def _statistical(values: list[float], sizes: dict, dtype: str, device: str) -> Measurement:
    mean, lo, hi = mean_ci(values)
    return Measurement(mean, Kind.STATISTICAL, dtype, device, sizes, interval=(lo, hi),
                       method=MEAN_METHOD, n=len(values))


@recipe
def dot_product_variance(*, d_k: int = 64, pairs: int = 4096, seeds: int = 8, scaled: bool = False,
                         seed: int = 0, device: str = "cpu", dtype: str = "float64") -> Measurement:
    """LIT-01: E[(q·k)²]/d_k (= Var(q·k)/d_k, the mean being 0) for q, k with i.i.d. N(0,1) entries.

    One estimate per seed (``pairs`` pairs each); the interval is across seeds. With
    ``scaled`` the score is q·k/√d_k, so the estimate is Var(q·k/√d_k)·(1/d_k)·d_k = Var.
    """
    values = []
    for s in range(seeds):
        g = _gen(seed * 1000 + s)
        q, k = (torch.randn(pairs, d_k, generator=g, dtype=FLOAT_DTYPES[dtype]) for _ in range(2))
        score = (q.to(device) * k.to(device)).sum(-1) / (math.sqrt(d_k) if scaled else 1.0)
        values.append(float((score ** 2).mean()) / (1.0 if scaled else d_k))
    return _statistical(values, {"d_k": d_k, "pairs": pairs, "seeds": seeds}, dtype, device)


@recipe
def dot_product_mean(*, d_k: int = 64, pairs: int = 4096, seeds: int = 8, seed: int = 0,
                     device: str = "cpu", dtype: str = "float64") -> Measurement:
    """LIT-01: E[q·k]/√d_k (the mean in units of the claimed standard deviation)."""
    values = []
    for s in range(seeds):
        g = _gen(seed * 1000 + s)
        q, k = (torch.randn(pairs, d_k, generator=g, dtype=FLOAT_DTYPES[dtype]) for _ in range(2))
        values.append(float((q.to(device) * k.to(device)).sum(-1).mean()) / math.sqrt(d_k))
    return _statistical(values, {"d_k": d_k, "pairs": pairs, "seeds": seeds}, dtype, device)


@recipe
def uniform_fan_in_variance() -> Measurement:
    """LIT-05: n·Var[W] for W ~ U[−1/√n, 1/√n] (Glorot & Bengio's 'standard' init, eq. 15), by sympy."""
    w, n = sp.symbols("w n", positive=True)
    a = 1 / sp.sqrt(n)
    var = sp.integrate(w ** 2 / (2 * a), (w, -a, a))   # the mean is 0 by symmetry
    value = sp.nsimplify(sp.simplify(n * var))
    if value.free_symbols:
        raise AssertionError(f"n·Var depends on n: {value}")
    return Measurement(float(value), Kind.EXACT, sizes={"n·Var": str(value)})


def _uniform_(weight: torch.Tensor, bound: float, g: torch.Generator) -> None:
    with torch.no_grad():
        weight.copy_((torch.rand(weight.shape, generator=g, dtype=weight.dtype) * 2 - 1) * bound)


GLOROT_INITS = ("standard", "normalized")


@functools.lru_cache(maxsize=None)
def _glorot_singular_means(init: str, width: int, depth: int, batch: int, seeds: int) -> tuple[float, ...]:
    """Per seed: mean singular value of J_i = ∂h_{i+1}/∂h_i over layers and inputs (tanh net)."""
    out = []
    for s in range(seeds):
        g = _gen(7919 + s)
        net = seeded_feedforward(depth, width, "tanh", "normal", s)
        for linear in chains.linears(net):
            if not (isinstance(init, str) and init in GLOROT_INITS):
                # gradcore's or a user's initialiser, drawn from the same seed stream
                fill = initialisers.get(init) if isinstance(init, str) else init
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(int(torch.randint(2**62, (1,), generator=g)))
                    with torch.no_grad():
                        fill(linear.weight)
                continue
            # eq. 1 'standard' U[−1/√n, 1/√n]; eq. 16 'normalized' U[±√6/√(n_in + n_out)]
            bound = 1 / math.sqrt(width) if init == "standard" else math.sqrt(6 / (2 * width))
            _uniform_(linear.weight, bound, g)
        x = torch.rand(batch, width, generator=g, dtype=torch.float64) * 2 - 1   # inputs in [−1, 1]
        with torch.no_grad():
            hs = chains.hidden_states(net, x)
        svs = []
        for linear, h in zip(chains.linears(net)[1:], hs[1:-1]):
            with torch.no_grad():
                z = linear(h)
            jac = (1 - torch.tanh(z) ** 2)[:, :, None] * linear.weight[None]   # diag(tanh'(z)) W
            jac = jac.detach()
            finite = bool(torch.isfinite(jac).all())   # svdvals cannot take a non-finite matrix
            svs.append(torch.linalg.svdvals(jac).mean() if finite else torch.tensor(math.inf, dtype=jac.dtype))
        out.append(float(torch.stack(svs).mean()))
    return tuple(out)


@recipe
def glorot_jacobian_singular_mean(*, init: Any = "normalized", width: int = 256, depth: int = 5,
                                  batch: int = 4, seeds: int = 6) -> Measurement:
    """LIT-05, initialiser contract: mean singular value of the layer-to-layer Jacobians of a
    ``depth``-layer tanh net.

    ``init`` 'standard' is U[−1/√n, 1/√n] (Glorot & Bengio eq. 1), 'normalized' their
    eq. 16; any other name is a gradcore.initialisation initialiser, and a user's initialiser (Given)
    fills each weight in place. Inputs uniform in
    [−1, 1]; the interval is across seeds. A non-finite Jacobian makes it +inf.
    """
    # a user's initialiser is drawn afresh (its identity is no cache key)
    means = _glorot_singular_means if isinstance(init, str) else _glorot_singular_means.__wrapped__
    values = list(means(init, width, depth, batch, seeds))
    if not all(math.isfinite(x) for x in values):
        return Measurement(math.inf, Kind.STATISTICAL, "float64", "cpu", interval=(math.inf, math.inf),
                           method=MEAN_METHOD, n=len(values), witness="a non-finite layer Jacobian")
    return _statistical(values, {"width": width, "depth": depth, "inputs per seed": batch, "seeds": seeds},
                        "float64", "cpu")


@functools.lru_cache(maxsize=None)
def _relu_variances(var_scale: float, depth: int, width: int, batch: int, seed: int) -> tuple[float, ...]:
    """Var[y_l] for l = 1..depth (mean of y² over units and a batch) in one seeded ReLU net."""
    net = seeded_feedforward(depth, width, "relu", "normal", 104729 + seed,
                             init_kwargs={"std": math.sqrt(var_scale / width)})
    return _pre_activation_variances(net, width, batch, seed)


def _filled_relu_variances(init: Any, depth: int, width: int, batch: int, seed: int) -> tuple[float, ...]:
    """:func:`_relu_variances` with every weight refilled by a user's initialiser (under the same seed)."""
    net = seeded_feedforward(depth, width, "relu", "normal", 104729 + seed)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(104729 + seed)
        for linear in chains.linears(net):
            init(linear.weight)
    return _pre_activation_variances(net, width, batch, seed)


def _pre_activation_variances(net: nn.Sequential, width: int, batch: int, seed: int) -> tuple[float, ...]:
    with torch.no_grad():
        ys = chains.pre_activations(net, torch.randn(batch, width, generator=_gen(seed), dtype=torch.float64))
    return tuple(float(y.pow(2).mean()) for y in ys)


@recipe
def relu_layer_gain(*, var_scale: float = 2.0, depth: int = 30, width: int = 256, batch: int = 32,
                    seeds: int = 6) -> Measurement:
    """LIT-06: the per-layer factor Var[y_{l+1}]/Var[y_l] of a ReLU net, averaged over its layers.

    He et al. eq. 9 is the product of these factors, each ½ n Var[w_l] = var_scale/2 in
    expectation (exactly: given y_l, z_{l+1} is symmetric, so E[ReLU(z)²] = ½ E[z²]).
    One average over the depth − 1 layer pairs per seed; Student-t interval across seeds.
    """
    values = []
    for s in range(seeds):
        q = np.array(_relu_variances(var_scale, depth, width, batch, s))
        values.append(float(np.mean(q[1:] / q[:-1])))
    return _statistical(values, {"depth": depth, "width": width, "batch": batch, "seeds": seeds},
                        "float64", "cpu")


@functools.lru_cache(maxsize=None)
def _relu_gains(var_scale: float, depth: int, width: int, batch: int, seeds: int) -> tuple[float, ...]:
    """Per seed: (Var[y_L]/Var[y_1]) / ∏_{l=2}^{L} ½ n Var[w_l], the measured over the eq. 9 gain."""
    predicted = (var_scale / 2) ** (depth - 1)
    out = []
    for s in range(seeds):
        q = _relu_variances(var_scale, depth, width, batch, s)
        out.append(q[-1] / q[0] / predicted)
    return tuple(out)


@recipe
def relu_variance_gain(*, var_scale: float = 2.0, depth: int = 30, width: int = 256, batch: int = 32,
                       seeds: int = 12) -> Measurement:
    """LIT-06: Var[y_L]/Var[y_1] in a ReLU net with Var[w] = var_scale/n, relative to He et al. eq. 9.

    Eq. 9 predicts ∏_{l=2}^{L} ½ n Var[w] = (var_scale/2)^{L−1}; the estimate is the mean over
    seeds of the measured/predicted ratio (a mean of ratios, not of logs: E[q_L/q_1] is what
    eq. 9 states, and the mean of log-ratios is biased low at finite width).
    """
    values = list(_relu_gains(var_scale, depth, width, batch, seeds))
    return _statistical(values, {"depth": depth, "width": width, "batch": batch, "seeds": seeds},
                        "float64", "cpu")


@recipe
def init_relu_layer_gain(*, init: Any, depth: int = 30, width: int = 256, batch: int = 32,
                         seeds: int = 6) -> Measurement:
    """LIT-06, initialiser contract: :func:`relu_layer_gain` with the weights filled by ``init``
    (a gradcore.initialisation name or a user's initialiser as Given): 1 when it keeps ReLU's forward
    variance (He et al. eq. 10), ½ n Var[w] in general. +inf when a variance is not finite or 0
    (the signal overflowed or died)."""
    fill = initialisers.get(init) if isinstance(init, str) else init
    values = []
    for s in range(seeds):
        q = np.array(_filled_relu_variances(fill, depth, width, batch, s))
        ok = bool(np.isfinite(q).all() and (q > 0).all())
        values.append(float(np.mean(q[1:] / q[:-1])) if ok else math.inf)
    if not all(math.isfinite(x) for x in values):
        return Measurement(math.inf, Kind.STATISTICAL, "float64", "cpu", interval=(math.inf, math.inf),
                           method=MEAN_METHOD, n=seeds, witness="a layer's variance overflowed or vanished")
    return _statistical(values, {"depth": depth, "width": width, "batch": batch, "seeds": seeds},
                        "float64", "cpu")


def relu_variance_profile(*, var_scale: float, depth: int = 30, width: int = 256, batch: int = 32,
                          seed: int = 0) -> tuple[list[int], list[float]]:
    """LIT-06 curve: layer l and Var[y_l]/Var[y_1] along one seeded net (for figures)."""
    q = np.array(_relu_variances(var_scale, depth, width, batch, seed))
    return list(range(1, depth + 1)), list(q / q[0])

"""Depth-product claims measured: chain-rule formulas against autograd, precision limits of deep chains.

DEPTH-01/02/03/04 (the documents' gradient formulas evaluated literally and compared with
torch autograd on real networks), DEPTH-07 (∏σ' and 0.25^n), DEPTH-09/10 (the depth at which
a linear chain's gradient underflows/overflows in a dtype) and DEPTH-11 (growth of the
weight gradients). The per-layer transfer factor λ (DEPTH-05/06/08) is
:mod:`gradcore.measure.transfer`.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import sympy as sp
import torch

from .. import _validate as v
from .. import activations, chains, probes
from ..jacobian import jacobian
from .candidates import grid, structured_vectors
from .measurement import Kind, Measurement, recipe
from .seeding import seeded

F64 = torch.float64


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _residual(value: float, bound: float, device: str) -> Measurement:
    return Measurement(value, Kind.ROUNDING, "float64", device, bound=bound)


# --- DEPTH-01: the chain-rule product of 000 §链式法则 ------------------------------------

def _sigmoid_net(width: int, depth: int, seed: int, device: str):
    """Weights, biases, input and target of 000's n-layer sigmoid network, from one generator."""
    g = torch.Generator().manual_seed(seed)
    ws = [torch.randn(width, width, generator=g, dtype=F64).to(device) for _ in range(depth)]
    bs = [torch.randn(width, generator=g, dtype=F64).to(device) * 0.1 for _ in range(depth)]
    x = torch.randn(width, generator=g, dtype=F64).to(device)
    y = torch.randn(width, generator=g, dtype=F64).to(device)
    return ws, bs, x, y


def _forward(ws, bs, x):
    zs, a = [], x
    for w, b in zip(ws, bs):
        zs.append(w @ a + b)
        a = torch.sigmoid(zs[-1])
    return zs, a


def _autograd_dW1(ws, bs, x, y) -> torch.Tensor:
    w1 = ws[0].clone().requires_grad_(True)
    _, a = _forward([w1, *ws[1:]], bs, x)
    return torch.autograd.grad(0.5 * ((a - y) ** 2).sum(), w1)[0]


CHAIN_FORMS = ("literal", "literal_times_first", "backprop")


@recipe
def chain_rule_formula(*, form: str, width: int, depth: int = 4, seed: int = 0, device: str = "cpu") -> Measurement:
    """DEPTH-01: 000's ∂L/∂W₁ formula vs autograd for L = ½‖a_n − y‖², sigmoid layers.

    ``form``: "literal" (∂L/∂a_n · ∂z₁/∂W₁ · ∏_{i≥2} σ'(z_i) W_i in the stated order),
    "literal_times_first" (the same times the missing σ'(z₁); width 1 only) or "backprop"
    ([D₁W₂ᵀD₂⋯W_nᵀD_n ∂L/∂a_n] xᵀ). Width 1: formula/autograd (a ratio, 1 when right);
    wider: ‖formula − autograd‖/‖autograd‖ (0 when right, a residual for "backprop").
    """
    v.choice(form, "form", CHAIN_FORMS)
    ds = activations.get("sigmoid").derivative
    ws, bs, x, y = _sigmoid_net(width, depth, seed, device)
    zs, a = _forward(ws, bs, x)
    exact = _autograd_dW1(ws, bs, x, y)
    if width == 1:
        literal = (a - y) * x
        for i in range(1, depth):
            literal = literal * ds(zs[i]) * ws[i]
        if form == "literal_times_first":
            literal = literal * ds(zs[0])
        # A product of 2·depth scalars: a few ulp each.
        return Measurement(float(literal.reshape(1, 1) / exact), Kind.NUMERIC, "float64", device,
                           {"width": 1, "depth": depth}, conditioning=4.0)
    if form == "backprop":
        g = a - y
        for i in range(depth - 1, 0, -1):
            g = ws[i].T @ (ds(zs[i]) * g)
        return _residual(_rel(torch.outer(ds(zs[0]) * g, x), exact), 1e-9, device)
    prod = torch.eye(width, dtype=F64, device=device)
    for i in range(1, depth):
        prod = prod @ (torch.diag(ds(zs[i])) @ ws[i])
    # Products of Gaussian matrices: conditioning grows with depth; 1e3 covers depth 4.
    return Measurement(_rel(torch.outer((a - y) @ prod, x), exact), Kind.NUMERIC, "float64", device,
                       {"width": width, "depth": depth}, conditioning=1e3)


@recipe
def first_layer_derivative(*, seed: int = 0, depth: int = 4, device: str = "cpu") -> Measurement:
    """DEPTH-01: σ'(z₁) of the width-1 network, the factor the literal formula drops."""
    ws, bs, x, _ = _sigmoid_net(1, depth, seed, device)
    zs, _ = _forward(ws, bs, x)
    return Measurement(float(activations.get("sigmoid").derivative(zs[0])[0]), Kind.NUMERIC, "float64", device)


# --- DEPTH-02: 003's separated product -----------------------------------------------------

def _separated_error(activation: str, init: str, width: int, depth: int, seed: int, device: str) -> float:
    """‖separated − autograd‖/‖autograd‖ of ∂L/∂z₁ for L = Σ h_n in one seeded network."""
    d = activations.get(activation).derivative
    with seeded(seed):
        m = chains.feedforward(depth, width, activation, init, dtype=F64)
        x = torch.randn(1, width, dtype=F64)
    m, x = m.to(device), x.to(device)
    zs = [z.detach() for z in chains.pre_activations(m, x)]
    ws = [lin.weight.detach() for lin in chains.linears(m)]
    true = d(zs[-1])   # autograd's order: ∂L/∂z₁ = D₁W₂ᵀD₂ ⋯ W_nᵀD_n 1 (row vectors)
    for i in range(len(ws) - 1, 0, -1):
        true = (true @ ws[i]) * d(zs[i - 1])
    sep = torch.ones_like(zs[-1])   # 003's form: all weights first, then every derivative vector
    for i in range(len(ws) - 1, 0, -1):
        sep = sep @ ws[i]
    for z in zs:
        sep = sep * d(z)
    return _rel(sep, true)


@recipe
def separated_product_error(*, activation: str, init: str, width: int = 32, depth: int = 8, seeds: int = 8,
                            seed: int = 0, device: str = "cpu") -> Measurement:
    """DEPTH-02: mean over seeded networks of ‖separated − backprop‖/‖backprop‖ for ∂L/∂z₁."""
    from ..stats import MEAN_METHOD, mean_ci

    errs = [_separated_error(activation, init, width, depth, seed + s, device) for s in range(seeds)]
    mean, lo, hi = mean_ci(errs)
    return Measurement(mean, Kind.STATISTICAL, "float64", device, {"width": width, "depth": depth, "seeds": seeds},
                       interval=(lo, hi), method=MEAN_METHOD, n=seeds)


@recipe
def separated_scalar_gap(*, depth: int = 5, seed: int = 3, device: str = "cpu") -> Measurement:
    """DEPTH-02: width 1, (separated product − backprop ∂L/∂z₁)/backprop (scalars commute: ~0)."""
    ws, bs, x, y = _sigmoid_net(1, depth, seed, device)
    zs, a = _forward(ws, bs, x)
    d = activations.get("sigmoid").derivative
    sep = float((a - y) * d(zs[-1]) * math.prod(float(w) for w in ws[1:]) * math.prod(float(d(z)) for z in zs[:-1]))
    chain = (a - y) * d(zs[-1])
    for i in range(depth - 1, 0, -1):
        chain = ws[i] * (d(zs[i - 1]) * chain)
    return _residual(abs(sep - float(chain)) / abs(float(chain)), 1e-9, device)


# --- DEPTH-03: 003 §1's linear network -----------------------------------------------------

@functools.lru_cache(maxsize=4)
def _linear_net(seed: int, device: str):
    g = torch.Generator().manual_seed(seed)
    w1, w2, w3 = (torch.randn(s, generator=g, dtype=F64).to(device) for s in ((4, 3), (5, 4), (2, 5)))
    x = torch.randn(3, generator=g, dtype=F64).to(device)
    c = torch.randn(2, generator=g, dtype=F64).to(device)
    shift = torch.randn(w1.shape, generator=g, dtype=F64).to(device)
    return w1, w2, w3, x, c, shift


LINEAR_QUANTITIES = ("formula_error", "w1_dependence", "yhat_l3_gap", "l3_l2_error", "l2_l1_error")


@recipe
def linear_chain(*, quantity: str, seed: int = 0, device: str = "cpu") -> Measurement:
    """DEPTH-03: ŷ = W₃W₂W₁x, L = cᵀŷ. ``quantity``: "formula_error" ‖∂L/∂W₁ − W₂ᵀW₃ᵀc xᵀ‖/‖·‖;
    "w1_dependence" relative change of ∂L/∂W₁ when W₁ is shifted by N(0, 1) (0: W₁ not involved);
    "yhat_l3_gap" ‖∂ŷ/∂L₃ − I‖ (0: W₃ not involved); "l3_l2_error", "l2_l1_error" ‖J − W‖/‖W‖."""
    v.choice(quantity, "quantity", LINEAR_QUANTITIES)
    w1, w2, w3, x, c, shift = _linear_net(seed, device)

    def grad_w1(w: torch.Tensor) -> torch.Tensor:
        return torch.func.grad(lambda w_: c @ chains.linear_network([w_, w2, w3])(x))(w)

    if quantity == "formula_error":
        return _residual(_rel(grad_w1(w1), torch.outer(w2.T @ w3.T @ c, x)), 1e-12, device)
    if quantity == "w1_dependence":
        # ∂L/∂W₁ of a linear loss does not read W₁: the change is exactly 0, not a rounding residual.
        return Measurement(_rel(grad_w1(w1 + shift), grad_w1(w1)), Kind.NUMERIC, "float64", device)
    if quantity == "yhat_l3_gap":
        eye = torch.eye(2, dtype=F64, device=device)
        return Measurement(float((jacobian(lambda t: t, w3 @ w2 @ w1 @ x) - eye).norm()), Kind.NUMERIC, "float64",
                           device)
    w, at = (w3, w2 @ w1 @ x) if quantity == "l3_l2_error" else (w2, w1 @ x)
    return _residual(_rel(jacobian(lambda t: w @ t, at), w), 1e-12, device)


# --- DEPTH-04: 004 Theorem 3.3.3's layer Jacobian ------------------------------------------

@functools.lru_cache(maxsize=4)
def _layer_cases(seed: int, device: str) -> dict[tuple[int, int], tuple[torch.Tensor, ...]]:
    """(W, b, h) for the 4×4 and 3×5 layers, drawn in that order from one generator."""
    g = torch.Generator().manual_seed(seed)
    cases = {}
    for n_out, n_in in ((4, 4), (3, 5)):
        w = torch.randn(n_out, n_in, generator=g, dtype=F64).to(device)
        b = torch.randn(n_out, generator=g, dtype=F64).to(device)
        h = torch.randn(n_in, generator=g, dtype=F64).to(device)
        cases[(n_out, n_in)] = (w, b, h)
    return cases


@recipe
def layer_jacobian_error(*, shape: tuple[int, int], form: str, seed: int = 0, device: str = "cpu") -> Measurement:
    """DEPTH-04: ‖form − J‖/‖J‖ for J = ∂σ(Wh + b)/∂h by autograd; ``form`` "diag_w" (diag(σ')W,
    a residual) or "stated" (diag(σ')Wᵀ; ∞ when the shapes do not conform)."""
    v.choice(form, "form", ("diag_w", "stated"))
    w, b, h = _layer_cases(seed, device)[tuple(shape)]
    jac = jacobian(lambda t: torch.sigmoid(w @ t + b), h)
    dz = torch.diag(activations.get("sigmoid").derivative(w @ h + b))
    if form == "diag_w":
        return _residual(_rel(dz @ w, jac), 1e-12, device)
    err = _rel(dz @ w.T, jac) if w.shape[0] == w.shape[1] else math.inf
    return Measurement(err, Kind.NUMERIC, "float64", device, {"n_out": w.shape[0], "n_in": w.shape[1]})


# --- DEPTH-07: ∏σ' and 0.25^n --------------------------------------------------------------

@recipe
def quarter_power(*, exponent: int, dtype: str = "float64", device: str = "cpu") -> Measurement:
    """DEPTH-07: 0.25^exponent computed in ``dtype`` (a power of two: exact, or exactly 0 once it underflows)."""
    dt = probes.FLOAT_DTYPES[dtype]
    return Measurement(float(torch.tensor(0.25, dtype=dt, device=device) ** exponent), Kind.EXACT, dtype, device)


@recipe
def quarter_power_exact(*, exponent: int) -> Measurement:
    """DEPTH-07: (1/4)^exponent as an exact rational (sympy), as the nearest float."""
    return Measurement(float(sp.Rational(1, 4) ** exponent), Kind.EXACT)


@recipe
def sigmoid_derivative_product(*, z: list[float], device: str = "cpu") -> Measurement:
    """DEPTH-07: ∏_i σ'(z_i) in float64 (a product of n factors ≤ 1/4: a few ulp each)."""
    ds = activations.get("sigmoid").derivative
    value = float(torch.prod(ds(torch.tensor(z, dtype=F64, device=device))))
    return Measurement(value, Kind.NUMERIC, "float64", device, {"n": len(z)}, conditioning=float(len(z)))


def sigmoid_product_candidates(n: int, lo: float, hi: float) -> list[tuple[str, list[float]]]:
    """Structured inputs for sup ∏σ'(z_i): constant vectors over a grid of [lo, hi] (z = 0 among
    them), and scaled all-ones, alternating and one-hot vectors."""
    constant = [(f"all z = {z:.4g}", [z] * n) for _, z in grid(lo, hi, 401)]
    shaped = [(label, [float(t) for t in vec]) for label, vec in structured_vectors(n, scales=(1e-3, 0.1, 1.0, 4.0))]
    return constant + shaped


@recipe
def stored(*, value: float, dtype: str, device: str = "cpu") -> Measurement:
    """DEPTH-09: ``value`` stored in ``dtype`` and read back (its nearest representable number, or 0)."""
    return Measurement(float(torch.tensor(value, dtype=probes.FLOAT_DTYPES[dtype], device=device)), Kind.EXACT,
                       dtype, device)


# --- DEPTH-09/10: the depth a linear chain's gradient underflows or overflows at -------------

def _scaled_orthogonal(n: int, gain: float) -> torch.nn.Linear:
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))
    lin = torch.nn.Linear(n, n, bias=False)
    with torch.no_grad():
        lin.weight.copy_(gain * q)
    return lin


@recipe
def chain_limit_depth(*, limit: str, gain: float, dtype: str, width: int = 8, batch: int = 2,
                      max_depth: int = 400, seed: int = 0, device: str = "cpu") -> Measurement:
    """DEPTH-09/10: the smallest depth at which ∂L/∂x of a chain of gain × orthogonal layers,
    computed in ``dtype``, is exactly 0 (``limit`` "underflow") or holds inf/NaN ("overflow");
    ∞ when it never does within ``max_depth``. The depth is an integer: compared exactly."""
    v.choice(limit, "limit", ("underflow", "overflow"))
    lin = _scaled_orthogonal(width, gain).to(device)
    with seeded(seed):
        x = torch.randn(batch, width)
    scan = probes.underflow_depth if limit == "underflow" else probes.overflow_depth
    d = scan(lambda l: lin, x.to(device), dtype, max_depth)
    return Measurement(math.inf if d is None else d, Kind.EXACT, dtype, device, {"width": width,
                                                                                 "max_depth": max_depth})


@recipe
def stack_limit_depth(*, limit: str, activation: Any, init: Any, dtype: str, width: int = 32, batch: int = 4,
                      max_depth: int = 128, seed: int = 0, device: str = "cpu") -> Measurement:
    """DEPTH-09/10, activation contract: through how many layers of a Linear → activation stack at
    ``init`` (:func:`gradcore.measure.transfer.stack`, network ``seed`` of a transfer sample) the
    gradient of L = Σ h_D, computed in ``dtype``, travels back before it is exactly 0 ("underflow")
    or holds inf/NaN ("overflow"): the smallest k with ∂L/∂h_(D−k) so, D = ``max_depth``; ∞ when
    none is. One backward pass reads every k (:func:`chain_limit_depth` reruns a chain per depth).
    ``activation`` and ``init`` are gradcore names or a user's objects as Given; one network: exact.
    """
    v.choice(limit, "limit", ("underflow", "overflow"))
    plain = all(isinstance(a, str) for a in (activation, init))
    # both limits come from one backward pass: cache it for gradcore's own techniques (a user's
    # object is measured afresh: it may carry state, and its identity is no key)
    depths = _limit_depths if plain else _limit_depths.__wrapped__
    k = depths(activation, init, dtype, width, batch, max_depth, seed, device)[0 if limit == "underflow" else 1]
    return Measurement(math.inf if k is None else k, Kind.EXACT, dtype, device,
                       {"width": width, "batch": batch, "max_depth": max_depth, "seed": seed})


@functools.lru_cache(maxsize=64)
def _limit_depths(activation: Any, init: Any, dtype: str, width: int, batch: int, max_depth: int, seed: int,
                  device: str) -> tuple[int | None, int | None]:
    """(underflow k, overflow k) of :func:`stack_limit_depth`, None where the gradient never gets there."""
    from .transfer import stack, streams   # transfer imports the activation helpers; import late

    dt = probes.FLOAT_DTYPES[dtype]
    weights, g = streams(seed)
    with seeded(weights):
        layers = stack(activation=activation, init=init, norm=None, width=width, depth=max_depth, gains=(1.0,),
                       spectral=None, dtype=F64, device=device)
    x = torch.randn(batch, width, generator=g, dtype=F64).to(device)
    grads = probes.layer_gradients([layer.to(dt) for layer in layers], x.to(dt))
    zero = next((k for k in range(1, max_depth + 1) if not bool(grads[max_depth - k].any())), None)
    bad = next((k for k in range(1, max_depth + 1) if not bool(torch.isfinite(grads[max_depth - k]).all())), None)
    return zero, bad


# --- DEPTH-11: growth of the weight gradients ----------------------------------------------

@functools.lru_cache(maxsize=8)
def _weight_gradient_norms(depth: int, width: int, batch: int, gain: float, seed: int, device: str) -> torch.Tensor:
    with seeded(seed):
        m = chains.feedforward(depth, width, "tanh", "xavier_normal", init_kwargs={"gain": gain}, dtype=F64)
        x = torch.randn(batch, width, dtype=F64)
    m = m.to(device)
    m(x.to(device)).sum().backward()
    return torch.stack([lin.weight.grad.norm() for lin in chains.linears(m)])


GROWTH_QUANTITIES = ("growth", "literal_ratio", "shifted_ratio", "r2")


@recipe
def weight_gradient_growth(*, quantity: str, depth: int = 12, width: int = 64, batch: int = 4, gain: float = 3.0,
                           seed: int = 0, device: str = "cpu") -> Measurement:
    """DEPTH-11: tanh network at gain × Xavier, L = Σ h_L. ``quantity``: "growth" C = (‖∂L/∂W_1‖/
    ‖∂L/∂W_L‖)^{1/(L−1)}; "literal_ratio" min_l ‖∂L/∂W_l‖/(C^L ‖∂L/∂W_L‖) (004's exponent L);
    "shifted_ratio" the same with exponent L − l; "r2" R² of the log-linear fit against L − l."""
    v.choice(quantity, "quantity", GROWTH_QUANTITIES)
    norms = _weight_gradient_norms(depth, width, batch, gain, seed, device)
    fit = probes.transfer_factor(norms)
    c = fit.geometric
    value = {"growth": c, "r2": fit.r2,
             "literal_ratio": min(float(norms[l] / norms[-1]) / c ** depth for l in range(depth)),
             "shifted_ratio": min(float(norms[l] / norms[-1]) / c ** (depth - 1 - l) for l in range(depth))}[quantity]
    # A depth-12 backward pass, a 12th root and powers of it: 1e3 covers the rounding.
    return Measurement(value, Kind.NUMERIC, "float64", device, {"depth": depth, "width": width, "batch": batch},
                       conditioning=1e3)

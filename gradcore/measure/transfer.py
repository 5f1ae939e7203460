"""The per-layer gradient transfer factor λ of a deep stack (004 §3.3.1 累积衰减模型).

DEPTH-05/06/07/08, INIT-07 and every technique contract that measures λ (activation,
initialiser, norm, residual) go through this module. One network's λ is
(‖g_0‖/‖g_D‖)^{1/D} of the norms :func:`gradcore.probes.layer_gradient_norms` reads, with
L = ⟨h_D, r⟩ for a Gaussian r (the output gradient is isotropic whatever the forward
scale); the estimate is the mean over ``seeds`` independently drawn networks with a
Student-t interval. Non-finite norms are an explosion (λ = ∞, never 0); a gradient that
vanished exactly is a dead network (λ = 0), and the witness says which happened.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .. import _validate as v
from .. import activations, chains, initialisation as initialisers, normalisation as norm_layers, probes
from ..stats import MEAN_METHOD, mean_ci
from .derivative import callable_of
from .measurement import Given, Kind, Measurement, recipe
from .seeding import seeded

Layer = Callable[[torch.Tensor], torch.Tensor]
QUANTITIES = ("lambda", "ratio", "max")
NORMS = ("batch_norm", "layer_norm", "rms_norm")


def streams(seed: int) -> tuple[int, torch.Generator]:
    """Two independent streams from one seed: a seed for the weights (drawn through
    :func:`seeded`) and a generator for inputs. Seeding both with ``seed`` itself would make
    the first weight matrix a rescaled copy of the input."""
    g = torch.Generator().manual_seed(seed)
    return int(torch.randint(2**62, (1,), generator=g)), g


def network_factor(layers: Sequence[Layer], x: torch.Tensor, r: torch.Tensor) -> tuple[float, float]:
    """(λ, ‖g_0‖/‖g_D‖) of one network for L = ⟨h_D, r⟩: ∞ when the forward output or a gradient
    norm is non-finite (an overflow: explosion, or a NaN born of one), 0 when a gradient vanished."""
    finite_out: list[bool] = []

    def loss(out: torch.Tensor) -> torch.Tensor:
        finite_out.append(bool(torch.isfinite(out).all()))
        return (out * r).sum()

    norms = probes.layer_gradient_norms(layers, x, loss=loss)
    if not (all(finite_out) and bool(torch.isfinite(norms).all())):
        return math.inf, math.inf
    if not bool((norms > 0).all()):
        return 0.0, 0.0
    lam = probes.transfer_factor(norms).geometric
    return (lam, float(norms[0] / norms[-1])) if math.isfinite(lam) else (math.inf, math.inf)


def witness(factors: Sequence[float]) -> str | None:
    """What the per-network factors say beyond their mean: explosions and dead networks."""
    exploded = sum(math.isinf(f) for f in factors)
    dead = sum(f == 0 for f in factors)
    said = []
    if exploded:
        said.append(f"{exploded} of {len(factors)} networks overflowed (a non-finite output or gradient norm: "
                    "explosion): λ = inf")
    if dead:
        said.append(f"{dead} of {len(factors)} networks are dead (a gradient vanished exactly): λ = 0 for them")
    return "; ".join(said) or None


def summary(factors: Sequence[float], *, dtype: str, device: str, sizes: dict[str, Any]) -> Measurement:
    """The mean of per-network factors with its Student-t interval; ∞ (interval [∞, ∞]) when any
    network exploded, since one overflowing network is an explosion, not a number to average."""
    if any(math.isinf(f) for f in factors):
        lam = lo = hi = math.inf
    else:
        lam, lo, hi = mean_ci(factors)
    return Measurement(lam, Kind.STATISTICAL, dtype, device, sizes, interval=(lo, hi), method=MEAN_METHOD,
                       n=len(factors), witness=witness(factors))


def _activation(activation: str | Callable | None) -> Layer:
    if activation is None:
        return nn.Identity()
    if isinstance(activation, str):
        return chains.Elementwise(activations.get(activation))
    # A user's object: its tensor function, as the activation contract reads it (.fn, a module class, ...).
    return chains.Elementwise(activations.Activation("given", callable_of(activation), None, ""))


def _initialiser(init: str | Callable) -> Callable[[torch.Tensor], Any]:
    return initialisers.get(init) if isinstance(init, str) else init


def _norm(norm: str | Callable | nn.Module | None, width: int) -> Layer:
    if norm is None:
        return nn.Identity()
    if isinstance(norm, str):
        v.choice(norm, "norm", NORMS)
        return getattr(norm_layers, norm)(width)
    # A module instance is used as it is in every layer (like a fixed layer), a factory is called;
    # a factory may return a plain function of the batch.
    layer = norm if isinstance(norm, nn.Module) else norm(width)
    return layer if isinstance(layer, nn.Module) else _Function(layer)


class _Function(nn.Module):
    """A plain function of the batch as a module (so it can sit in an ``nn.Sequential``)."""

    def __init__(self, fn: Layer) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def stack(*, activation: str | Callable | None, init: str | Callable, norm: Any, width: int, depth: int,
          gains: Sequence[float], spectral: float | None, dtype: torch.dtype, device: str) -> list[nn.Module]:
    """``depth`` blocks Linear(width, width, no bias) → norm → activation (the shape of
    :func:`gradcore.chains.blocks`), weights drawn by ``init`` and multiplied by ``gains`` cycled,
    then rescaled to spectral norm ``spectral`` when given. Built on the CPU, then moved."""
    fill, act = _initialiser(init), _activation(activation)
    blocks = []
    for l in range(depth):
        linear = nn.Linear(width, width, bias=False, dtype=dtype)
        with torch.no_grad():
            fill(linear.weight)
            linear.weight.mul_(gains[l % len(gains)])
        blocks.append(nn.Sequential(linear, _norm(norm, width), act))
    if spectral is not None:
        chains.rescale_spectral(nn.Sequential(*blocks), spectral)
    return [b.to(device=device, dtype=dtype).train() for b in blocks]


@functools.lru_cache(maxsize=256)
def _factors(activation: Any, init: Any, norm: Any, width: int, depth: int, batch: int, seeds: int, seed: int,
             gains: tuple[float, ...], spectral: float | None, dtype: str, device: str
             ) -> tuple[tuple[float, float], ...]:
    """(λ, ‖g_0‖/‖g_D‖) of each of ``seeds`` networks; network s is drawn from seed + s alone."""
    dt = probes.FLOAT_DTYPES[dtype]
    return tuple(network_factor(*_network(activation, init, norm, width, depth, batch, seed + s, gains, spectral, dt,
                                          device)) for s in range(seeds))


@recipe
def transfer_factor(*, activation: str | Given | None, init: str | Given, norm: str | Given | None = None,
                    width: int, depth: int, batch: int, seeds: int, seed: int = 0,
                    gains: tuple[float, ...] = (1.0,), spectral: float | None = None, quantity: str = "lambda",
                    dtype: str = "float64", device: str = "cpu") -> Measurement:
    """DEPTH-05/06/07/08, INIT-07 and the λ clauses: λ = (‖g_0‖/‖g_D‖)^{1/D} of a deep stack.

    ``activation`` (a gradcore.activations name, a function, or None for a linear chain),
    ``init`` (a gradcore.initialisation name or a fill function) and ``norm`` (a gradcore.normalisation name or a
    ``width -> module`` factory) build each block; ``gains`` multiply layer l's weight by
    ``gains[l % len(gains)]``; ``spectral`` rescales every weight to that spectral norm.
    ``quantity``: "lambda" (mean λ over seeds, Student-t interval), "ratio" (mean of the whole
    ratio ‖g_0‖/‖g_D‖ = λ^D, Student-t interval) or "max" (the largest per-network λ).
    """
    v.choice(quantity, "quantity", QUANTITIES)
    plain = all(isinstance(a, (str, type(None))) for a in (activation, init, norm))
    # Theorems ask several quantities of one set of networks: cache those; a user's object is
    # measured afresh (it may carry state, and its identity is no key).
    factors = _factors if plain else _factors.__wrapped__
    per = factors(activation, init, norm, width, depth, batch, seeds, seed, tuple(gains), spectral, dtype, device)
    sizes = {"depth": depth, "width": width, "batch": batch, "seeds": seeds}
    lams = [p[0] for p in per]
    if quantity == "max":
        # The product of `depth` backpropagated layers: rounding grows with depth; 1e2 covers it.
        return Measurement(max(lams), Kind.NUMERIC, dtype, device, sizes, conditioning=1e2, witness=witness(lams))
    values = lams if quantity == "lambda" else [p[1] for p in per]
    return summary(values, dtype=dtype, device=device, sizes=sizes).with_(witness=witness(lams))


def _network(activation: Any, init: Any, norm: Any, width: int, depth: int, batch: int, seed: int,
             gains: tuple[float, ...], spectral: float | None, dtype: torch.dtype, device: str
             ) -> tuple[list[nn.Module], torch.Tensor, torch.Tensor]:
    """Network ``seed`` of :func:`transfer_factor`'s sample: its blocks, input x and output weights r."""
    weights, g = streams(seed)
    with seeded(weights):
        layers = stack(activation=activation, init=init, norm=norm, width=width, depth=depth, gains=gains,
                       spectral=spectral, dtype=dtype, device=device)
    x = torch.randn(batch, width, generator=g, dtype=dtype).to(device)
    r = torch.randn(batch, width, generator=g, dtype=dtype).to(device)
    return layers, x, r


def gradient_profile(*, activation: str | None, init: str, width: int, depth: int, batch: int, seed: int = 0,
                     gains: tuple[float, ...] = (1.0,), spectral: float | None = None, dtype: str = "float64",
                     device: str = "cpu") -> list[float]:
    """‖g_{D−k}‖/‖g_D‖ for k = 0…D of network ``seed`` of :func:`transfer_factor`'s sample (a figure's curve)."""
    layers, x, r = _network(activation, init, None, width, depth, batch, seed, tuple(gains), spectral,
                            probes.FLOAT_DTYPES[dtype], device)
    norms = probes.layer_gradient_norms(layers, x, loss=lambda out: (out * r).sum())
    return (norms / norms[-1]).flip(0).tolist()


@recipe
def max_derivative(*, activation: str, init: str | Given, width: int, depth: int, batch: int, seeds: int, seed: int = 0,
                   gains: tuple[float, ...] = (1.0,), dtype: str = "float64", device: str = "cpu") -> Measurement:
    """DEPTH-06: the largest f'(z) over every pre-activation z of :func:`transfer_factor`'s networks
    (``init`` a gradcore.initialisation name or a user's initialiser as Given, as there)."""
    d = activations.get(activation).derivative
    best = -math.inf
    for s in range(seeds):
        layers, x, _ = _network(activation, init, None, width, depth, batch, seed + s, tuple(gains), None,
                                probes.FLOAT_DTYPES[dtype], device)
        h = x
        with torch.no_grad():
            for linear, norm, act in layers:
                z = linear(h)
                best = max(best, float(d(z).max()))
                h = act(norm(z))
    return Measurement(best, Kind.NUMERIC, dtype, device, {"depth": depth, "width": width, "batch": batch,
                                                           "seeds": seeds})

"""Recipes for recurrent networks: BPTT gradient rates, state growth rates, transient amplification.

One BPTT rate (:func:`step_rate`: ‖∂L/∂s_{T−k}‖ through :func:`gradcore.recurrent.bptt_gradient_norms`,
fitted per step from ``start`` steps back) serves every model — a linear RNN with a chosen
spectrum, an Elman RNN, torch's cells, a user's cell in ``gradcore check`` (RNN-03..08,
GATE-05, contract ``bptt-*``). Matrices come from :mod:`gradcore.recurrent` with explicit
generators; torch cells are initialised under :func:`seeded`, so no recipe reads the global RNG.
"""
from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from .. import recurrent as R
from ..errors import NotApplicable
from ..spectral import spectral_norm, spectral_radius
from ..stats import MEAN_METHOD, mean_ci
from .seeding import seeded
from .measurement import Kind, Measurement, recipe

F64 = torch.float64
# A rate fitted to the log-norms of a product of up to ~300 steps: each norm carries rounding
# of order steps·eps·κ(eigenvectors) (κ up to ~1e2 for the non-normal matrices here).
RATE_CONDITIONING = 1e4


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def over_seeds(values: Sequence[float], *, device: str, sizes: dict[str, Any]) -> Measurement:
    """The mean of per-seed values with its Student-t 95 % interval."""
    m, lo, hi = mean_ci(list(values))
    return Measurement(m, Kind.STATISTICAL, F64, device, sizes, interval=(lo, hi), method=MEAN_METHOD,
                       n=len(values))


# ---------------------------------------------------------------- the one BPTT rate

def step_rate(step: R.Step, s0: torch.Tensor, T: int, start: int,
              grad_output: torch.Tensor | None = None) -> float:
    """Per-step rate of ‖∂L/∂s_{T−k}‖ in k, fitted from k = ``start`` (geometric mean over a batch)."""
    return norms_rate(R.bptt_gradient_norms(step, s0, T, grad_output=grad_output).flip(0), start)


def norms_rate(norms: torch.Tensor, start: int) -> float:
    """The per-step rate of BPTT norms indexed by steps back (a batch: their geometric mean).

    A non-finite norm is an explosion (rate inf); a norm that underflowed to 0 a vanished gradient (0).
    """
    if not bool(torch.isfinite(norms).all()):
        return math.inf
    if not bool((norms > 0).all()):
        return 0.0
    if norms.ndim > 1:
        norms = norms.log().mean(1).exp()
    return R.growth_rate(norms, start)


def build_matrix(*, matrix: str, n: int, rho: float = 1.0, sigma_max: float = 1.0, gain: float = 1.0,
           entries: Any = None, seed: int = 0, device: str = "cpu") -> torch.Tensor:
    """A recurrent matrix by name: ``normal`` (ρ·Q), ``nonnormal`` (ρ, σ_max), ``gaussian`` (N(0, gain²/n)),
    ``eigen`` (Q diag(entries) Qᵀ) or ``given`` (the nested list ``entries``)."""
    if matrix == "normal":
        return R.normal_matrix(n, rho, generator=gen(seed), device=device)
    if matrix == "nonnormal":
        return R.nonnormal_matrix(n, rho, sigma_max, generator=gen(seed), device=device)
    if matrix == "gaussian":
        return R.gaussian_matrix(n, gain, generator=gen(seed), device=device)
    if matrix == "eigen":
        Q = R.random_orthogonal(len(entries), generator=gen(seed), device=device)
        return Q @ torch.diag(torch.tensor(entries, dtype=F64, device=device)) @ Q.T
    if matrix == "given":
        return torch.tensor(entries, dtype=F64, device=device)
    raise ValueError(f"matrix: unknown kind {matrix!r}")


def _spec(matrix_: str, n: int, rho: float, sigma_max: float, gain: float, entries: Any, seed: int,
          device: str) -> torch.Tensor:
    return build_matrix(matrix=matrix_, n=n, rho=rho, sigma_max=sigma_max, gain=gain, entries=entries, seed=seed,
                  device=device)


def _linear_norms(W: torch.Tensor, T: int, grad_seed: int) -> torch.Tensor:
    """‖(Wᵀ)^k g‖ for k = 0…T (BPTT through h_t = W h_{t−1}), g ~ N(0, I) from ``grad_seed``."""
    g = torch.randn(W.shape[0], generator=gen(grad_seed), dtype=F64).to(W.device)
    return R.bptt_gradient_norms(R.linear_step(W), torch.zeros_like(g), T, grad_output=g).flip(0)


@recipe
def linear_bptt_rate(*, matrix: str = "normal", n: int = 32, rho: float = 1.05, sigma_max: float = 3.0,
                     gain: float = 0.8, entries: Any = None, seed: int = 0, grad_seed: int = 0, T: int = 100,
                     start: int = 40, device: str = "cpu") -> Measurement:
    """RNN-03..06: per-step rate of the BPTT gradient ‖(Wᵀ)^k g‖ of the linear RNN h_t = W h_{t−1}."""
    W = _spec(matrix, n, rho, sigma_max, gain, entries, seed, device)
    g = torch.randn(W.shape[0], generator=gen(grad_seed), dtype=F64).to(device)
    rate = step_rate(R.linear_step(W), torch.zeros_like(g), T, start, grad_output=g)
    return Measurement(rate, Kind.NUMERIC, F64, device, {"n": W.shape[0], "T": T, "start": start},
                       conditioning=RATE_CONDITIONING)


def linear_bptt_curve(W: torch.Tensor, T: int, grad_seed: int = 0) -> list[float]:
    """‖∂L/∂h_{T−k}‖/‖∂L/∂h_T‖ for k = 0…T, for a figure."""
    norms = _linear_norms(W, T, grad_seed)
    return (norms / norms[0]).tolist()


@functools.lru_cache(maxsize=64)
def _gaussian_seed(n: int, gain: float, seed: int, T: int, start: int, device: str) -> tuple[float, float, float, float]:
    W = R.gaussian_matrix(n, gain, generator=gen(seed), device=device)
    norms = _linear_norms(W, T, seed)
    sig = spectral_norm(W)
    return R.growth_rate(norms, start), sig, spectral_radius(W), float(norms[-1] / norms[0]) / sig ** T


@recipe
def gaussian_bptt(*, quantity: str = "rate", n: int = 64, gain: float = 0.8, seeds: int = 5, T: int = 100,
                  start: int = 40, device: str = "cpu") -> Measurement:
    """RNN-03: Gaussian W ~ N(0, gain²/n), seeds 0…seeds−1 (W and g from the same seed).

    ``quantity``: ``rate`` (mean BPTT per-step rate), ``norm`` (mean ‖W‖₂), ``rho`` (mean ρ(W)),
    ``power_bound`` (max over seeds of ‖(Wᵀ)^T g‖/(‖W‖^T ‖g‖)).
    """
    runs = [_gaussian_seed(n, gain, s, T, start, device) for s in range(seeds)]
    sizes = {"n": n, "gain": gain, "seeds": seeds, "T": T}
    if quantity == "rate":
        return over_seeds([r[0] for r in runs], device=device, sizes=sizes)
    column = {"norm": 1, "rho": 2, "power_bound": 3}[quantity]
    values = [r[column] for r in runs]
    value = max(values) if quantity == "power_bound" else float(np.mean(values))
    return Measurement(value, Kind.NUMERIC, F64, device, sizes, conditioning=RATE_CONDITIONING)


def power_norms(W: torch.Tensor, ts: Sequence[int]) -> list[float]:
    """‖(Wᵀ)^t‖₂ for each t in ``ts``."""
    return [spectral_norm(torch.linalg.matrix_power(W.T, t)) for t in ts]


@recipe
def matrix_power_rate(*, matrix: str = "nonnormal", n: int = 16, rho: float = 0.9, sigma_max: float = 3.0,
                      seed: int = 7, T: int = 80, every: int = 4, start: int = 40,
                      device: str = "cpu") -> Measurement:
    """RNN-03: per-step rate of ‖(Wᵀ)^t‖₂, fitted on t = start, start+every, …, T."""
    W = _spec(matrix, n, rho, sigma_max, 1.0, None, seed, device)
    norms = torch.tensor(power_norms(W, range(start, T + 1, every)), dtype=F64)
    return Measurement(R.growth_rate(norms) ** (1 / every), Kind.NUMERIC, F64, device,
                       {"n": n, "T": T}, conditioning=RATE_CONDITIONING)


# ---------------------------------------------------------------- the state h_t = W h_{t−1}

@recipe
def state_growth_rate(*, matrix: str = "normal", n: int = 24, rho: float = 1.1, sigma_max: float = 2.5,
                      seed: int = 1, h0_seed: int = 3, T: int = 120, start: int = 60,
                      device: str = "cpu") -> Measurement:
    """RNN-04: per-step rate of ‖h_t‖ for h_t = W h_{t−1}, generic h_0 ~ N(0, I)."""
    W = _spec(matrix, n, rho, sigma_max, 1.0, None, seed, device)
    h0 = torch.randn(n, generator=gen(h0_seed), dtype=F64).to(device)
    rate = R.growth_rate(R.linear_rnn(W, h0, T).norm(dim=-1), start)
    return Measurement(rate, Kind.NUMERIC, F64, device, {"n": n, "T": T, "start": start},
                       conditioning=RATE_CONDITIONING)


def state_norm_curve(W: torch.Tensor, h0_seed: int, T: int) -> list[float]:
    """‖h_t‖/‖h_0‖ for t = 0…T, for a figure."""
    h0 = torch.randn(W.shape[0], generator=gen(h0_seed), dtype=F64).to(W.device)
    hs = R.linear_rnn(W, h0, T).norm(dim=-1)
    return (hs / hs[0]).tolist()


def stable_subspace_matrix(n: int, rho: float, stable: float, coupling: float, dtype: torch.dtype,
                           device: str) -> torch.Tensor:
    """W = [[S, c·1], [0, ρ]] with S = diag(stable, …, −stable) (n−1 entries): ρ(W) = max(ρ, stable).

    Block upper-triangular, so {h : h_n = 0} is invariant *in floating point too*: the last row
    of W is zero outside its last entry, and 0·x = 0 exactly, so rounding in S h can never
    move h_t out of the stable subspace.
    """
    W = torch.zeros(n, n, dtype=dtype, device=device)
    W[: n - 1, : n - 1] = torch.diag(torch.linspace(stable, -stable, n - 1, dtype=dtype, device=device))
    W[: n - 1, n - 1] = coupling
    W[n - 1, n - 1] = rho
    return W


@recipe
def stable_subspace(*, quantity: str = "rate", n: int = 24, rho: float = 1.5, stable: float = 0.5,
                    coupling: float = 1.0, T: int = 40, start: int = 0, dtype: str = "float64",
                    device: str = "cpu") -> Measurement:
    """RNN-04: ρ(W) = rho > 1 but h_0 = e_1 (eigenvector of ``stable``) in the stable invariant subspace.

    ``quantity``: ``rate`` (per-step rate of ‖h_t‖, which is stable^t exactly: powers of 1/2
    and the exact zeros below) or ``escape`` (max_t |h_t[n−1]|, the component along the
    unstable direction: exactly 0, whatever the rounding).
    """
    dt = getattr(torch, dtype)
    W = stable_subspace_matrix(n, rho, stable, coupling, dt, device)
    h0 = torch.zeros(n, dtype=dt, device=device)
    h0[0] = 1.0
    hs = R.linear_rnn(W, h0, T)
    sizes = {"n": n, "T": T}
    if quantity == "escape":
        return Measurement(float(hs[:, n - 1].abs().max()), Kind.EXACT, dt, device, sizes)
    # the norms are exact powers of `stable`; only log/exp in the fit round (a few ulp)
    return Measurement(R.growth_rate(hs.norm(dim=-1), start), Kind.NUMERIC, dt, device, sizes)


@recipe
def transient_amplification(*, n: int = 24, rho: float = 0.9, sigma_max: float = 2.5, seed: int = 2, T: int = 40,
                            device: str = "cpu") -> Measurement:
    """RNN-04: sup over h_0 of max_{t ≤ T} ‖h_t‖/‖h_0‖ = max_t ‖W^t‖₂ (exact sup, not a search), non-normal W."""
    W = R.nonnormal_matrix(n, rho, sigma_max, generator=gen(seed), device=device)
    amp = max(spectral_norm(torch.linalg.matrix_power(W, t)) for t in range(T + 1))
    # SVDs of powers of a non-normal matrix (κ(eigenvectors) ~ 1e2)
    return Measurement(amp, Kind.NUMERIC, F64, device, {"n": n, "T": T}, conditioning=1e3)


# ---------------------------------------------------------------- single-step and unrolled identities

def _grad(p: torch.Tensor) -> torch.Tensor:
    return p.grad if p.grad is not None else torch.zeros_like(p)


def tied_gradient_gap(params: Sequence[torch.Tensor], shared_loss: Callable[[list[torch.Tensor]], torch.Tensor],
                      untied_loss: Callable[[list[list[torch.Tensor]]], torch.Tensor],
                      T: int) -> tuple[float, float]:
    """RNN-01: (max |∂L/∂θ − Σ_t ∂L/∂θ_t|, max |∂L/∂θ|) over the tensors θ in ``params``.

    ``shared_loss(θ)`` runs the unrolled network with θ shared by all T steps;
    ``untied_loss(copies)`` runs the T-layer deep net whose layer t uses ``copies[t]``, a copy of θ.
    """
    shared = [p.detach().clone().requires_grad_(True) for p in params]
    shared_loss(shared).backward()
    copies = [[p.detach().clone().requires_grad_(True) for p in params] for _ in range(T)]
    untied_loss(copies).backward()
    gaps = [float((_grad(s) - sum(_grad(c[i]) for c in copies)).abs().max()) for i, s in enumerate(shared)]
    return max(gaps, default=0.0), max((float(_grad(s).abs().max()) for s in shared), default=0.0)


def _tied_residuals(W0: torch.Tensor, T: int) -> tuple[float, float]:
    device = W0.device
    U = torch.eye(3, dtype=F64, device=device)
    xs = torch.linspace(-1, 1, 3 * T, dtype=F64, device=device).reshape(T, 3)
    h0 = torch.full((3,), 0.3, dtype=F64, device=device)
    g = torch.tensor([1.0, -2.0, 0.5], dtype=F64, device=device)

    def deep_net(layers: list[list[torch.Tensor]]) -> torch.Tensor:   # T equal copies W_1..W_T
        h = h0
        for t, (Wt,) in enumerate(layers):
            h = torch.tanh(Wt @ h + U @ xs[t])
        return h @ g
    tied, _ = tied_gradient_gap([W0], lambda W: R.rnn_unroll(W[0], U, xs, h0)[-1] @ g, deep_net, T)
    lin = R.bptt_gradient_norms(R.linear_step(W0), h0, T, grad_output=g)[0]   # Wᵀ applied T times
    power = float((torch.linalg.matrix_power(W0.T, T) @ g).norm())
    return tied, abs(float(lin) - power) / max(power, 1e-300)


def tied_residual_value(W: Any, T: int, quantity: str, device: str) -> float:
    tied, power = _tied_residuals(torch.tensor(W, dtype=F64, device=device), T)
    return tied if quantity == "tied" else power


@recipe
def unrolled_residual(*, W: Any, T: int, quantity: str = "tied", device: str = "cpu") -> Measurement:
    """RNN-01 at one (W, T): ``tied`` max|∂L/∂W (shared) − Σ_t ∂L/∂W_t (deep net)| (tanh RNN, n=3) or
    ``power`` rel. |‖∂L/∂h_0‖ − ‖(Wᵀ)^T g‖| (linear RNN); rounding residuals (float64: 1e-10)."""
    return Measurement(tied_residual_value(W, T, quantity, device), Kind.ROUNDING, F64, device,
                       {"n": 3, "T": T}, bound=1e-10)


def step_norm_gap_value(W: Any, device: str) -> float:
    Wt = torch.tensor(W, dtype=F64, device=device)
    J = R.step_jacobian(R.linear_step(Wt), torch.ones(Wt.shape[0], dtype=F64, device=device))
    return abs(spectral_norm(J) - spectral_norm(Wt))


@recipe
def linear_step_gap(*, W: Any, device: str = "cpu") -> Measurement:
    """RNN-02: |‖∂h_t/∂h_{t−1}‖₂ − ‖W‖₂| of the linear RNN at W (a rounding residual, float64: 1e-10)."""
    return Measurement(step_norm_gap_value(W, device), Kind.ROUNDING, F64, device, {"n": len(W)}, bound=1e-10)


def tanh_step_ratio_value(W: Any, x: Any, h: float, device: str) -> float:
    Wt, xt = torch.tensor(W, dtype=F64, device=device), torch.tensor(x, dtype=F64, device=device)
    n = Wt.shape[0]
    step = R.elman_step(Wt, torch.eye(n, dtype=F64, device=device), xt[None])
    J = R.step_jacobian(step, torch.full((n,), h, dtype=F64, device=device))
    return spectral_norm(J) / max(spectral_norm(Wt), 1e-12)


@recipe
def tanh_step_ratio(*, W: Any, x: Any, h: float = 0.1, device: str = "cpu") -> Measurement:
    """RNN-02: ‖∂h_t/∂h_{t−1}‖/‖W‖ of h_t = tanh(W h_{t−1} + x) at h_{t−1} = h·1."""
    return Measurement(tanh_step_ratio_value(W, x, h, device), Kind.NUMERIC, F64, device, {"n": len(W)})


@recipe
def typical_tanh_ratio(*, n: int = 64, gain: float = 1.5, seed: int = 1, burn_in: int = 20,
                       device: str = "cpu") -> Measurement:
    """RNN-02: ‖∂h_t/∂h_{t−1}‖/‖W‖ at a typical tanh-RNN state (Gaussian W, unit input, after a burn-in)."""
    g = gen(seed)
    W = R.gaussian_matrix(n, gain, generator=g, device=device)
    xs = torch.randn(burn_in + 1, n, generator=g, dtype=F64).to(device)
    step = R.elman_step(W, torch.eye(n, dtype=F64, device=device), xs)
    h = R.unroll(step, torch.zeros(n, dtype=F64, device=device), burn_in)[-1]
    ratio = spectral_norm(R.step_jacobian(step, h, burn_in + 1)) / spectral_norm(W)
    # the state after a burn-in of a gain-1.5 tanh RNN carries the trajectory's amplified rounding
    return Measurement(ratio, Kind.NUMERIC, F64, device, {"n": n, "gain": gain, "burn_in": burn_in},
                       conditioning=1e3)


def tanh_product_ratio_value(W: Any, xs: Any, h0: float, against: str, device: str) -> float:
    Wt, xt = torch.tensor(W, dtype=F64, device=device), torch.tensor(xs, dtype=F64, device=device)
    n, T = Wt.shape[0], xt.shape[0]
    step = R.elman_step(Wt, torch.eye(n, dtype=F64, device=device), xt)
    P = torch.eye(n, dtype=F64, device=device)
    for t, h in enumerate(R.unroll(step, torch.full((n,), h0, dtype=F64, device=device), T)[:-1], 1):
        P = R.step_jacobian(step, h.detach(), t) @ P        # ∂h_T/∂h_0
    bound = spectral_norm(Wt) ** T if against == "norm_power" else spectral_norm(torch.linalg.matrix_power(Wt, T))
    return spectral_norm(P) / max(bound, 1e-300)


@recipe
def tanh_product_ratio(*, W: Any, xs: Any, h0: float = 0.2, against: str = "norm_power",
                       device: str = "cpu") -> Measurement:
    """RNN-07: ‖∂h_T/∂h_0‖ of h_t = tanh(W h_{t−1} + x_t) over ‖W‖^T (``norm_power``) or over the
    linear RNN's gain ‖W^T‖ (``linear_gain``)."""
    value = tanh_product_ratio_value(W, xs, h0, against, device)
    # ‖W^T‖ of a non-normal W nearly cancels (ρ^T ≪ σ_max^T): its rounding is amplified
    return Measurement(value, Kind.NUMERIC, F64, device, {"n": len(W), "T": len(xs)},
                       conditioning=1e3 if against == "linear_gain" else 1.0)


# ---------------------------------------------------------------- Elman RNN through tanh

@functools.lru_cache(maxsize=256)
def _elman_seed(n: int, gain: float, drive: float, T: int, start: int, seed: int, device: str) -> tuple[float, float]:
    g = gen(seed)
    W = R.gaussian_matrix(n, gain, generator=g, device=device)
    xs = torch.randn(T, n, generator=g, dtype=F64).to(device)
    h0 = torch.randn(n, generator=g, dtype=F64).to(device)
    step = R.elman_step(W, drive * torch.eye(n, dtype=F64, device=device), xs)
    return step_rate(step, h0, T, start), spectral_norm(W)


@recipe
def elman_bptt_rate(*, quantity: str = "rate", n: int = 64, gain: float = 2.0, drive: float = 0.0, T: int = 50,
                    start: int = 10, seeds: tuple[int, ...] = (0, 1, 2, 3), device: str = "cpu") -> Measurement:
    """RNN-06, RNN-08: h_t = tanh(W h_{t−1} + drive·x_t), W ~ N(0, gain²/n), x_t, h_0 ~ N(0, I), all drawn
    in that order from each seed. ``quantity``: ``rate`` (mean BPTT per-step rate over the seeds,
    default ∂L/∂h_T) or ``norm`` (mean ‖W‖₂)."""
    runs = [_elman_seed(n, gain, drive, T, start, s, device) for s in seeds]
    sizes = {"n": n, "gain": gain, "input_std": drive, "T": T, "seeds": len(seeds)}
    if quantity == "rate":
        return over_seeds([r[0] for r in runs], device=device, sizes=sizes)
    return Measurement(float(np.mean([r[1] for r in runs])), Kind.NUMERIC, F64, device, sizes)


# ---------------------------------------------------------------- cells: torch's and a user's

_TORCH_CELLS = {"RNNCell": nn.RNNCell, "GRUCell": nn.GRUCell, "LSTMCell": nn.LSTMCell}


def build_cell(cell: Any, input_size: int, hidden: int, device: str) -> Any:
    """An instance of ``cell``: a torch cell name, a factory ``(input_size, hidden) -> cell``, or a module."""
    make = _TORCH_CELLS[cell] if isinstance(cell, str) else cell
    built = make if isinstance(make, nn.Module) else make(input_size, hidden)
    return built.to(device=device, dtype=F64) if isinstance(built, nn.Module) else built


def pair_state(cell: Any, x: torch.Tensor, hidden: int) -> bool:
    """Whether the cell carries a pair (h, c): an nn.LSTMCell, or a cell that returns a tuple."""
    if isinstance(cell, nn.LSTMCell):
        return True
    h = torch.zeros(x.shape[0], hidden, dtype=F64, device=x.device)
    return isinstance(cell(x, h), tuple)


def cell_stepper(cell: Any, xs: torch.Tensor, hidden: int, pair: bool,
                 params: Callable[[int], dict[str, torch.Tensor]] | None = None) -> R.Step:
    """A step on the cell's full state; a pair state (h, c) is concatenated, as gradcore.recurrent.cell_step does.

    ``params(t)``: the parameters step t runs the cell with (``torch.func.functional_call``), instead of its own.
    """
    if params is None and isinstance(cell, tuple(_TORCH_CELLS.values())):
        return R.cell_step(cell, xs)

    def call(x: torch.Tensor, state: Any, t: int) -> Any:
        return cell(x, state) if params is None else functional_call(cell, params(t), (x, state))

    def step(s: torch.Tensor, t: int) -> torch.Tensor:
        out = call(xs[t - 1], (s[..., :hidden], s[..., hidden:]) if pair else s, t)
        return torch.cat(list(out), dim=-1) if isinstance(out, tuple) else out
    return step


def recurrent_weight(cell: Any, hidden: int, square: bool = False) -> torch.Tensor:
    """The cell's recurrent weight ``weight_hh`` (every nn.RNNCellBase has one), (k·hidden, hidden);
    ``square``: (hidden, hidden), the Elman cell's W. NotApplicable when the cell has none (a clause about W says nothing then)."""
    W = getattr(cell, "weight_hh", None)
    rows_ok = W is not None and W.ndim == 2 and (W.shape[0] == hidden if square else W.shape[0] % hidden == 0)
    if not (isinstance(W, torch.Tensor) and rows_ok and W.shape[1] == hidden):
        shape = f"({hidden}, {hidden})" if square else f"(k·{hidden}, {hidden})"
        raise NotApplicable(f"the cell exposes no recurrent weight weight_hh of shape {shape} "
                            "(nn.RNNCell's interface), so its ‖W‖ cannot be read")
    return W


def rescale_recurrent(cell: Any, hidden: int, norm: float, square: bool = False) -> None:
    """Scale the cell's ``weight_hh`` in place to spectral norm ``norm``."""
    W = recurrent_weight(cell, hidden, square)
    with torch.no_grad():
        W.mul_(norm / spectral_norm(W.detach()))


def seeded_cell(cell: Any, input_size: int, hidden: int, seed: int, device: str) -> Any:
    """The cell at its own default init from ``seed``; a module given as an instance is copied, so that
    what a recipe changes in it (its weights) never reaches the user's object."""
    with seeded(seed):
        c = build_cell(cell, input_size, hidden, device)
    return copy.deepcopy(c) if c is cell else c


def _forget_bias(cell: Any, hidden: int, bias: float) -> None:
    with torch.no_grad():
        cell.bias_ih[hidden:2 * hidden] = bias
        cell.bias_hh[hidden:2 * hidden] = 0.0


@functools.lru_cache(maxsize=64)
def _cell_norms(cell: Any, input_size: int, hidden: int, T: int, batch: int, seed: int, state_std: float,
                forget_bias: float | None, device: str, recurrent_norm: float | None = None) -> torch.Tensor:
    """BPTT norms (steps back × batch) of a cell initialised from ``seed``, inputs then h_0 drawn from it
    (``recurrent_norm``: its weight_hh first rescaled to that spectral norm)."""
    c = seeded_cell(cell, input_size, hidden, seed, device)
    if forget_bias is not None:
        _forget_bias(c, hidden, forget_bias)
    if recurrent_norm is not None:
        rescale_recurrent(c, hidden, recurrent_norm)
    g = gen(seed)
    xs = torch.randn(T, batch, input_size, generator=g, dtype=F64).to(device)
    pair = pair_state(c, xs[0], hidden)
    width = 2 * hidden if pair else hidden
    s0 = (state_std * torch.randn(batch, width, generator=g, dtype=F64) if state_std else
          torch.zeros(batch, width, dtype=F64)).to(device)
    return R.bptt_gradient_norms(cell_stepper(c, xs, hidden, pair), s0, T).flip(0).detach()


def cell_norms(cell: Any, *args: Any) -> torch.Tensor:
    """:func:`_cell_norms`, cached when the cell (a name, a class, a module) can be a cache key."""
    try:
        return _cell_norms(cell, *args)
    except TypeError as e:
        if "unhashable" not in str(e):
            raise
        return _cell_norms.__wrapped__(cell, *args)


@recipe
def cell_bptt_rate(*, cell: Any = "GRUCell", input_size: int = 8, hidden: int = 32, T: int = 60, batch: int = 16,
                   seeds: tuple[int, ...] = (0, 1, 2), state_std: float = 0.0, forget_bias: float | None = None,
                   start: int = 10, device: str = "cpu") -> Measurement:
    """GATE-05, contract ``bptt-*``: mean over seeds of the BPTT per-step rate of a recurrent cell.

    ``cell``: a torch cell name (``"GRUCell"``), or a factory ``(input_size, hidden) -> cell`` or a
    module (``Given``) whose ``cell(x, h)`` returns h, or (h, c) for a pair state. Per seed: the cell
    initialised from the seed, inputs x ~ N(0, I) of shape (T, batch, input) then the initial state
    (0, or state_std·N(0, I)) from a generator of that seed; the rate is fitted to the batch's
    geometric-mean norm from ``start`` steps back (∂L/∂s_T = 1/√width).
    """
    return _mean_cell_rate(cell, input_size, hidden, T, batch, seeds, state_std, forget_bias, start, device)


def _mean_cell_rate(cell: Any, input_size: int, hidden: int, T: int, batch: int, seeds: tuple[int, ...],
                    state_std: float, forget_bias: float | None, start: int, device: str,
                    recurrent_norm: float | None = None) -> Measurement:
    rates = [norms_rate(cell_norms(cell, input_size, hidden, T, batch, s, state_std, forget_bias, device,
                                   recurrent_norm), start) for s in seeds]
    sizes = {"hidden": hidden, "input": input_size, "T": T, "batch": batch, "seeds": len(seeds)}
    if recurrent_norm is not None:
        sizes["‖weight_hh‖₂"] = recurrent_norm
    if not all(math.isfinite(r) for r in rates):     # an exploded seed: the mean rate is inf
        return Measurement(math.inf, Kind.NUMERIC, F64, device, sizes)
    return over_seeds(rates, device=device, sizes=sizes)


@recipe
def cell_gain_bptt_rate(*, cell: Any = "RNNCell", recurrent_norm: float = 12.0, input_size: int = 8, hidden: int = 32,
                        T: int = 40, batch: int = 16, seeds: tuple[int, ...] = (0, 1, 2), state_std: float = 0.1,
                        start: int = 10, device: str = "cpu") -> Measurement:
    """RNN-08 for a cell: :func:`cell_bptt_rate` with the cell's recurrent weight ``weight_hh`` rescaled to
    spectral norm ``recurrent_norm`` after its default init (the theorem's largest gain, 6, has ‖W‖ ≈ 12)."""
    return _mean_cell_rate(cell, input_size, hidden, T, batch, seeds, state_std, None, start, device, recurrent_norm)


def cell_bptt_curve(*, cell: Any, input_size: int, hidden: int, T: int, batch: int, seeds: tuple[int, ...],
                    state_std: float = 0.0, forget_bias: float | None = None, start: int = 10,
                    device: str = "cpu") -> list[float]:
    """Mean over seeds of the batch's geometric-mean BPTT norm, k = 0…T steps back, for a figure."""
    curves = [cell_norms(cell, input_size, hidden, T, batch, s, state_std, forget_bias, device).log().mean(1).exp()
              for s in seeds]
    return torch.stack(curves).mean(0).tolist()


@recipe
def cell_bptt_peak(*, cell: Any = "GRUCell", input_size: int = 8, hidden: int = 32, T: int = 60, batch: int = 16,
                   seeds: tuple[int, ...] = (0, 1, 2), state_std: float = 0.0, forget_bias: float | None = None,
                   device: str = "cpu") -> Measurement:
    """RNN-04 for a cell: the largest transient amplification of the BPTT gradient, max over seeds and
    k ≤ T of ‖∂L/∂s_{T−k}‖/‖∂L/∂s_T‖ (the batch's geometric mean; the norms of :func:`cell_bptt_rate`).

    The largest value over the draws tried: a search bound on the supremum (inf when a norm overflowed)."""
    peaks = []
    for s in seeds:
        norms = cell_norms(cell, input_size, hidden, T, batch, s, state_std, forget_bias, device)
        if not bool(torch.isfinite(norms).all()):
            peaks.append(math.inf)
            continue
        curve = norms.log().mean(1).exp() if norms.ndim > 1 else norms
        peaks.append(float((curve / curve[0]).max()))
    k = int(np.argmax(peaks))
    return Measurement(peaks[k], Kind.SEARCH, F64, device,
                       {"hidden": hidden, "input": input_size, "T": T, "batch": batch, "seeds": len(seeds)},
                       direction="lower", witness=f"seed {seeds[k]}")


@recipe
def cell_step_spectrum(*, cell: Any = "GRUCell", quantity: str = "sigma_max", input_size: int = 8, hidden: int = 32,
                       burn_in: int = 20, seed: int = 0, device: str = "cpu") -> Measurement:
    """RNN-02/03 for a cell: σ_max (``sigma_max``) or ρ (``rho``) of the step Jacobian ∂s_t/∂s_{t−1} at a typical
    state: the cell initialised from ``seed``, run ``burn_in`` steps on inputs x ~ N(0, I) (then h_0 = 0) drawn
    from a generator of that seed, as :func:`cell_bptt_rate` draws them (batch 1)."""
    with seeded(seed):
        c = build_cell(cell, input_size, hidden, device)
    xs = torch.randn(burn_in + 1, 1, input_size, generator=gen(seed), dtype=F64).to(device)
    pair = pair_state(c, xs[0], hidden)
    step = cell_stepper(c, xs, hidden, pair)
    s = R.unroll(step, torch.zeros(1, 2 * hidden if pair else hidden, dtype=F64, device=device), burn_in)[-1]
    J = R.step_jacobian(lambda u, t: step(u[None], t)[0], s[0].detach(), burn_in + 1).detach()
    value = spectral_norm(J) if quantity == "sigma_max" else spectral_radius(J)
    # the state after a burn-in carries the trajectory's rounding; ρ of a non-normal J: conditioning 1e3
    return Measurement(value, Kind.NUMERIC, F64, device, {"hidden": hidden, "burn_in": burn_in}, conditioning=1e3)


def _cell_tied_gap(cell: Any, input_size: int, hidden: int, T: int, batch: int, seed: int,
                   device: str) -> tuple[float, float, int]:
    c = seeded_cell(cell, input_size, hidden, seed, device)
    g = gen(seed)
    xs = torch.randn(T, batch, input_size, generator=g, dtype=F64).to(device)
    pair = pair_state(c, xs[0], hidden)
    width = 2 * hidden if pair else hidden
    s0 = (0.1 * torch.randn(batch, width, generator=g, dtype=F64)).to(device)
    out = torch.randn(batch, width, generator=g, dtype=F64).to(device)
    named = list(c.named_parameters()) if isinstance(c, nn.Module) else []
    if not named:                   # nothing to share across steps
        return 0.0, 0.0, 0
    names = [n for n, _ in named]

    def loss(per_step: Callable[[int], Sequence[torch.Tensor]]) -> torch.Tensor:
        with seeded(seed + 1):      # a stochastic cell draws the same noise in both nets
            step = cell_stepper(c, xs, hidden, pair, params=lambda t: dict(zip(names, per_step(t))))
            return (R.unroll(step, s0, T)[-1] * out).sum()
    gap, scale = tied_gradient_gap([p for _, p in named], lambda ps: loss(lambda t: ps),
                                   lambda copies: loss(lambda t: copies[t - 1]), T)
    return gap, scale, len(named)


@recipe
def cell_tied_residual(*, cell: Any = "RNNCell", input_size: int = 8, hidden: int = 32, T: int = 8, batch: int = 2,
                       seed: int = 0, device: str = "cpu") -> Measurement:
    """RNN-01 for a cell: max |∂L/∂θ − Σ_t ∂L/∂θ_t| / max |∂L/∂θ| over the cell's parameters θ.

    ∂L/∂θ: autograd through the cell unrolled T steps (θ shared); ∂L/∂θ_t: the T-layer deep net whose
    layer t runs the cell with its own copy θ_t (``torch.func.functional_call``). The cell initialised
    from ``seed``; inputs, the state (0.1·N(0, I)) and ∂L/∂s_T (N(0, I)) drawn from it; both nets run
    from the same RNG state. Equal in exact arithmetic for any cell that is a function of (θ, x, h)
    alone: a rounding residual (float64: 1e-10); ∞ when a gradient overflowed.
    """
    gap, scale, n = _cell_tied_gap(cell, input_size, hidden, T, batch, seed, device)
    value = gap / scale if scale > 0 else gap
    sizes = {"hidden": hidden, "input": input_size, "T": T, "batch": batch, "parameters": n}
    return Measurement(value if math.isfinite(value) else math.inf, Kind.ROUNDING, F64, device, sizes, bound=1e-10)

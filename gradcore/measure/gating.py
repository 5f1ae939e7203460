"""Recipes for gated recurrent updates: the documents' gated step against torch's GRU, the step
Jacobian near z = 1 and z = 0, and gradient retention through a fixed gate (GATE-01..04).

The documents' update is :func:`gradcore.recurrent.gated_step`; torch's ``nn.GRUCell`` is
initialised under :func:`gradcore.measure.recurrent.seeded` and run through
:func:`gradcore.recurrent.cell_step`. Cell rates (GATE-05) are
:func:`gradcore.measure.recurrent.cell_bptt_rate`.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import recurrent as R
from ..spectral import spectral_norm
from ..stats import mean_ci
from .measurement import Kind, Measurement, recipe
from .recurrent import F64, gen, over_seeds
from .seeding import seeded

GEOMETRIC_METHOD = "Student-t 95% interval of the mean log, exponentiated (geometric mean)"


def _tensors(device: str, *arrays: Any) -> list[torch.Tensor]:
    return [torch.tensor(a, dtype=F64, device=device) for a in arrays]


def force_gates(cell: nn.GRUCell, z: float) -> None:
    """Make torch's GRU gates constant: reset r ≡ 1, update z ≡ z, no input to the candidate."""
    n = cell.hidden_size
    with torch.no_grad():
        cell.weight_ih.zero_()
        cell.weight_hh[: 2 * n].zero_()
        cell.bias_ih.zero_()
        cell.bias_hh.zero_()
        cell.bias_ih[:n] = 40.0          # σ(40) = 1 in float64
        cell.bias_ih[n: 2 * n] = math.log(z / (1 - z))


@recipe
def forced_gru_gap(*, n: int = 8, m: int = 4, z: float = 0.7, steps: int = 5, seed: int = 0,
                   device: str = "cpu") -> Measurement:
    """GATE-01: max |nn.GRUCell − gated_step| after ``steps`` steps with r ≡ 1, constant z, no input
    (a rounding residual, float64: 1e-12). Cell, inputs and h_0 are drawn from ``seed`` in that order."""
    with seeded(seed):
        cell = nn.GRUCell(m, n).to(dtype=F64)
        xs, h0 = torch.randn(steps, m, dtype=F64), torch.randn(n, dtype=F64)
    cell, xs, h0 = cell.to(device), xs.to(device), h0.to(device)
    force_gates(cell, z)
    W = cell.weight_hh[2 * n:].detach()
    ours = R.unroll(R.gated_stepper(W, torch.full((n,), z, dtype=F64, device=device)), h0, steps)[-1]
    gap = float((R.unroll_cell(cell, xs, h0)[-1] - ours).detach().abs().max())
    return Measurement(gap, Kind.ROUNDING, F64, device, {"n": n, "steps": steps}, bound=1e-12)


def _doc_jacobian_error(n: int, m: int, seed: int, device: str) -> float:
    """‖J_GRU − J_doc‖/‖J_GRU‖ at torch's default init: J_doc = diag(z) + diag((1−z) tanh') W_h."""
    with seeded(seed):
        cell = nn.GRUCell(m, n).to(dtype=F64)
        x, h = torch.randn(1, m, dtype=F64), 0.5 * torch.randn(n, dtype=F64)
    cell, x, h = cell.to(device), x.to(device), h.to(device)
    J = R.step_jacobian(R.cell_step(cell, x), h).detach()
    with torch.no_grad():
        gi, gh = cell.weight_ih @ x[0] + cell.bias_ih, cell.weight_hh @ h + cell.bias_hh
        z, r = torch.sigmoid(gi[n:2 * n] + gh[n:2 * n]), torch.sigmoid(gi[:n] + gh[:n])
        cand = torch.tanh(gi[2 * n:] + r * gh[2 * n:])
        J_doc = torch.diag(z) + torch.diag((1 - z) * (1 - cand ** 2)) @ cell.weight_hh[2 * n:]
    return spectral_norm(J - J_doc) / spectral_norm(J)


@recipe
def gru_doc_jacobian_error(*, n: int = 8, m: int = 4, seeds: tuple[int, ...] = (0, 1, 2, 3),
                           device: str = "cpu") -> Measurement:
    """GATE-01: mean over seeds of ‖J_GRU − J_doc‖/‖J_GRU‖ at torch's default init (x ~ N(0, I),
    h ~ N(0, 0.25 I)): what the documents' form leaves out of torch's GRU step Jacobian."""
    return over_seeds([_doc_jacobian_error(n, m, s, device) for s in seeds], device=device,
                      sizes={"n": n, "input": m, "seeds": len(seeds)})


def gated_jacobian_residual_value(W: Any, h: Any, z: Any, device: str) -> float:
    W, h, z = _tensors(device, W, h, z)
    J = R.step_jacobian(R.gated_stepper(W, z), h)
    closed = torch.diag(z) + torch.diag((1 - z) * (1 - torch.tanh(W @ h) ** 2)) @ W
    return float((J - closed).abs().max())


@recipe
def gated_jacobian_residual(*, W: Any, h: Any, z: Any, device: str = "cpu") -> Measurement:
    """GATE-02: max |autograd ∂h_t/∂h_{t−1} − (diag(z) + diag(1−z) diag(tanh') W)| (rounding, float64: 1e-12)."""
    return Measurement(gated_jacobian_residual_value(W, h, z, device), Kind.ROUNDING, F64, device,
                       {"n": len(h)}, bound=1e-12)


def gated_identity_excess_value(W: Any, h: Any, z: Any, device: str) -> float:
    W, h, z = _tensors(device, W, h, z)
    J = R.step_jacobian(R.gated_stepper(W, z), h)
    bound = float((1 - z.min()) * (1 + spectral_norm(W)))
    return spectral_norm(J - torch.eye(len(h), dtype=F64, device=device)) - bound


@recipe
def gated_identity_excess(*, W: Any, h: Any, z: Any, device: str = "cpu") -> Measurement:
    """GATE-02: ‖J − I‖₂ − (1 − z_min)(1 + ‖W‖₂) for the gated step at (W, h, z) (≤ 0 is the bound)."""
    return Measurement(gated_identity_excess_value(W, h, z, device), Kind.NUMERIC, F64, device, {"n": len(h)})


def gated_identity_gap_value(n: int, gain: float, leak: float, seed: int, h_seed: int, device: str) -> float:
    W = R.gaussian_matrix(n, gain, generator=gen(seed), device=device)
    h = torch.randn(n, generator=gen(h_seed), dtype=F64).to(device)
    J = R.step_jacobian(R.gated_stepper(W, torch.full((n,), 1 - leak, dtype=F64, device=device)), h)
    return spectral_norm(J - torch.eye(n, dtype=F64, device=device))


@recipe
def gated_identity_gap(*, n: int = 16, gain: float = 1.5, leak: float = 1e-6, seed: int = 0, h_seed: int = 1,
                       device: str = "cpu") -> Measurement:
    """GATE-02: ‖∂h_t/∂h_{t−1} − I‖₂ of the documents' gated step with z ≡ 1 − leak (Gaussian W)."""
    value = gated_identity_gap_value(n, gain, leak, seed, h_seed, device)
    # J − I cancels to O(leak) from entries O(1): the rounding of z = 1 − leak is amplified by 1/leak
    return Measurement(value, Kind.NUMERIC, F64, device, {"n": n, "gain": gain}, conditioning=max(1.0, 1 / leak))


@functools.lru_cache(maxsize=8)
def _biased_gru(n: int, m: int, seed: int, device: str) -> tuple[nn.GRUCell, torch.Tensor]:
    with seeded(seed):
        cell = nn.GRUCell(m, n).to(dtype=F64)
        x = torch.randn(1, m, dtype=F64)
    return cell.to(device), x.to(device)


def gru_identity_gap_value(n: int, m: int, bias: float, seed: int, h_seed: int, device: str) -> float:
    cell, x = _biased_gru(n, m, seed, device)
    with torch.no_grad():
        cell.bias_ih[n: 2 * n] = bias
    h = torch.randn(n, generator=gen(h_seed), dtype=F64).to(device)
    J = R.step_jacobian(R.cell_step(cell, x), h).detach()
    return spectral_norm(J - torch.eye(n, dtype=F64, device=device))


@recipe
def gru_identity_gap(*, n: int = 16, m: int = 4, bias: float = 12.0, seed: int = 0, h_seed: int = 1,
                     device: str = "cpu") -> Measurement:
    """GATE-02: ‖∂h_t/∂h_{t−1} − I‖₂ of torch's nn.GRUCell (default init from ``seed``) with the
    update-gate input bias set to ``bias`` (z ≈ σ(bias + …) → 1)."""
    value = gru_identity_gap_value(n, m, bias, seed, h_seed, device)
    # J − I cancels to O(1 − σ(bias)) from entries O(1)
    return Measurement(value, Kind.NUMERIC, F64, device, {"n": n, "bias": bias},
                       conditioning=max(1.0, 1 + math.exp(bias)))


def gated_zero_gap_value(W: Any, h: Any, device: str) -> float:
    W, h = _tensors(device, W, h)
    n = len(h)
    zero = torch.zeros_like(h)
    rnn = R.elman_step(W, torch.zeros(n, 1, dtype=F64, device=device), torch.zeros(1, 1, dtype=F64, device=device))
    d_state = float((R.gated_step(h, W, zero) - rnn(h, 1)).abs().max())
    d_jac = float((R.step_jacobian(R.gated_stepper(W, zero), h) - R.step_jacobian(rnn, h)).abs().max())
    return max(d_state, d_jac)


@recipe
def gated_zero_gap(*, W: Any, h: Any, device: str = "cpu") -> Measurement:
    """GATE-03: max |gated_step(z=0) − tanh(W h)| and of their Jacobians (rounding, float64: 1e-15)."""
    return Measurement(gated_zero_gap_value(W, h, device), Kind.ROUNDING, F64, device, {"n": len(h)}, bound=1e-15)


# ---------------------------------------------------------------- retention through a fixed gate

@functools.lru_cache(maxsize=16)
def _retention(n: int, gain: float, z: float, T: int, seeds: int, device: str) -> np.ndarray:
    """‖∂L/∂h_{T−k}‖/‖∂L/∂h_T‖ for k = 0…T, one row per seed (W from the seed, h_0 from seed + 50)."""
    rows = []
    for seed in range(seeds):
        W = R.gaussian_matrix(n, gain, generator=gen(seed), device=device)
        h0 = torch.randn(n, generator=gen(seed + 50), dtype=F64).to(device)
        norms = R.bptt_gradient_norms(R.gated_stepper(W, torch.full((n,), z, dtype=F64, device=device)), h0, T)
        rows.append((norms.flip(0) / norms[-1]).cpu().numpy())
    return np.stack(rows)


def retention_curve(*, n: int, gain: float, z: float, T: int, seeds: int, device: str) -> list[float]:
    """The geometric mean over seeds of the retention curve, for a figure."""
    return np.exp(np.log(_retention(n, gain, z, T, seeds, device)).mean(0)).tolist()


@recipe
def gated_retention(*, quantity: str = "retention", n: int = 32, gain: float = 1.0, z: float = 0.999, T: int = 300,
                    back: int = 100, seeds: int = 20, device: str = "cpu") -> Measurement:
    """GATE-04: gradient retention through the documents' gated step with a fixed gate z (W ~ N(0, gain²/n)).

    ``retention``: geometric mean over seeds of ‖∂L/∂h_{T−back}‖/‖∂L/∂h_T‖ with its interval;
    ``leak``: the per-step decay 1 − r of the mean curve (fitted from 50 steps back) over the gate's leak 1 − z.
    """
    runs = _retention(n, gain, z, T, seeds, device)
    sizes = {"n": n, "gain": gain, "z": z, "T": T, "seeds": seeds}
    if quantity == "leak":
        rate = R.growth_rate(torch.tensor(retention_curve(n=n, gain=gain, z=z, T=T, seeds=seeds, device=device)), 50)
        return Measurement((1 - rate) / (1 - z), Kind.NUMERIC, F64, device, sizes, conditioning=1e3)
    m, lo, hi = mean_ci(np.log(runs[:, back]).tolist())
    return Measurement(math.exp(m), Kind.STATISTICAL, F64, device, {**sizes, "back": back},
                       interval=(math.exp(lo), math.exp(hi)), method=GEOMETRIC_METHOD, n=seeds)

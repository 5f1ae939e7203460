"""Recipes for gated recurrent updates: the documents' gated step against torch's GRU, the step
Jacobian near z = 1 and z = 0, and gradient retention through a fixed gate (GATE-01..04).

The documents' update is :func:`gradcore.recurrent.gated_step`; torch's ``nn.GRUCell`` is
initialised under :func:`gradcore.measure.recurrent.seeded` and run through
:func:`gradcore.recurrent.cell_step`. Cell rates (GATE-05) are
:func:`gradcore.measure.recurrent.cell_bptt_rate`.
"""
from __future__ import annotations

import copy
import functools
import math
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import nn

from .. import recurrent as R
from ..errors import NotApplicable
from ..spectral import spectral_norm
from ..stats import mean_ci
from .measurement import Kind, Measurement, recipe
from .recurrent import F64, build_cell, cell_stepper, gen, over_seeds, seeded_cell
from .search import search
from .seeding import seeded

GEOMETRIC_METHOD = "Student-t 95% interval of the mean log, exponentiated (geometric mean)"


def _tensors(device: str, *arrays: Any) -> list[torch.Tensor]:
    return [torch.tensor(a, dtype=F64, device=device) for a in arrays]


def gru_layout(cell: Any, hidden: int) -> tuple[torch.Tensor, ...]:
    """The cell's (weight_ih, weight_hh, bias_ih, bias_hh) in torch's GRU layout: 3·hidden rows, reset, update
    and candidate in that order (nn.GRUCell and cells that keep its parameters). NotApplicable otherwise:
    a clause about the update gate says nothing about a cell without one it can set."""
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    got = [getattr(cell, k, None) for k in names]
    rows = [isinstance(t, torch.Tensor) and t.ndim in (1, 2) and t.shape[0] == 3 * hidden for t in got]
    if not all(rows) or got[0].ndim != 2 or got[1].shape != (3 * hidden, hidden) or got[2].ndim != 1 \
            or got[3].ndim != 1:
        raise NotApplicable(f"the cell does not keep torch's GRU layout (weight_ih, weight_hh of 3·{hidden} rows "
                            f"[reset, update, candidate], bias_ih, bias_hh of {3 * hidden}), so its update gate "
                            "cannot be set")
    return tuple(got)


def _logit(z: float) -> float:
    # σ(−40) = 4e−18 vanishes next to 1 in float64 (and σ(40) = 1): a gate forced shut (open)
    return -40.0 if z <= 0 else (40.0 if z >= 1 else math.log(z / (1 - z)))


def force_gates(cell: Any, z: float, hidden: int | None = None) -> None:
    """Make a GRU-layout cell's gates constant: reset r ≡ 1, update z ≡ z, no input to the candidate."""
    n = cell.hidden_size if hidden is None else hidden
    weight_ih, weight_hh, bias_ih, bias_hh = gru_layout(cell, n)
    with torch.no_grad():
        weight_ih.zero_()
        weight_hh[: 2 * n].zero_()
        bias_ih.zero_()
        bias_hh.zero_()
        bias_ih[:n] = 40.0          # σ(40) = 1 in float64
        bias_ih[n: 2 * n] = _logit(z)


def _state_step(cell: Any, x: torch.Tensor) -> R.Step:
    """The cell as a step on a 1-D state at the input ``x`` (1, m): torch's cells through gradcore.recurrent
    (unbatched), others as a batch of 1."""
    if type(cell) is nn.GRUCell:     # torch's own: unbatched, as the theorems run it
        return R.cell_step(cell, x)
    return lambda h, t: cell(x, h[None])[0]


def _unroll(cell: Any, xs: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """The cell's states h_1..h_T from h_0 (as :func:`_state_step` runs it)."""
    if type(cell) is nn.GRUCell:
        return R.unroll_cell(cell, xs, h0)[1:]
    states = R.unroll(cell_stepper(cell, xs[:, None], len(h0), False), h0[None], len(xs))
    return torch.stack(states[1:])[:, 0]


def _forced_jacobian_gap(cell: Any, W: torch.Tensor, z: torch.Tensor, h: torch.Tensor) -> float:
    """max |∂h'/∂h of the forced cell − that of the gated update| at h (the cell's input is zeroed)."""
    x = torch.zeros(1, gru_layout(cell, len(h))[0].shape[1], dtype=F64, device=h.device)
    J = R.step_jacobian(lambda u, t: cell(x, u[None])[0], h).detach()
    return float((J - R.step_jacobian(R.gated_stepper(W, z), h)).abs().max())


@recipe
def forced_gru_gap(*, cell: Any = "GRUCell", n: int = 8, m: int = 4, z: float = 0.7, steps: int = 5, seed: int = 0,
                   jacobian: bool = False, device: str = "cpu") -> Measurement:
    """GATE-01, GATE-03: max |cell − gated_step| after ``steps`` steps with r ≡ 1, constant z, no input
    (a rounding residual, float64: 1e-12); z = 0 is the gate shut (σ(−40)), where gated_step is tanh(W h).

    ``cell``: torch's ``"GRUCell"`` or a GRU-layout cell (factory ``(m, n) -> cell``); W is its candidate
    rows of weight_hh. Cell, inputs and h_0 are drawn from ``seed`` in that order. ``jacobian``: also the
    largest entry of the step Jacobians' difference at h_0."""
    with seeded(seed):
        c = build_cell(cell, m, n, device)
        xs, h0 = torch.randn(steps, m, dtype=F64), torch.randn(n, dtype=F64)
    c = copy.deepcopy(c) if c is cell else c
    xs, h0 = xs.to(device), h0.to(device)
    force_gates(c, z, n)
    W = c.weight_hh[2 * n:].detach()
    gate = torch.full((n,), max(z, 0.0), dtype=F64, device=device)
    ours = R.unroll(R.gated_stepper(W, gate), h0, steps)[-1]
    gap = float((_unroll(c, xs, h0)[-1] - ours).detach().abs().max())
    if jacobian:
        gap = max(gap, _forced_jacobian_gap(c, W, gate, h0))
    return Measurement(gap if math.isfinite(gap) else math.inf, Kind.ROUNDING, F64, device,
                       {"n": n, "steps": steps}, bound=1e-12)


def _doc_jacobian_error(n: int, m: int, seed: int, device: str, cell: Any = "GRUCell") -> float:
    """‖J_GRU − J_doc‖/‖J_GRU‖ at the cell's default init: J_doc = diag(z) + diag((1−z) tanh') W_h, with z, r
    and the candidate read from the cell's GRU-layout weights."""
    with seeded(seed):
        c = build_cell(cell, m, n, device)
        x, h = torch.randn(1, m, dtype=F64), 0.5 * torch.randn(n, dtype=F64)
    x, h = x.to(device), h.to(device)
    weight_ih, weight_hh, bias_ih, bias_hh = gru_layout(c, n)
    J = R.step_jacobian(_state_step(c, x), h).detach()
    with torch.no_grad():
        gi, gh = weight_ih @ x[0] + bias_ih, weight_hh @ h + bias_hh
        z, r = torch.sigmoid(gi[n:2 * n] + gh[n:2 * n]), torch.sigmoid(gi[:n] + gh[:n])
        cand = torch.tanh(gi[2 * n:] + r * gh[2 * n:])
        J_doc = torch.diag(z) + torch.diag((1 - z) * (1 - cand ** 2)) @ weight_hh[2 * n:]
    return spectral_norm(J - J_doc) / spectral_norm(J)


@recipe
def gru_doc_jacobian_error(*, cell: Any = "GRUCell", n: int = 8, m: int = 4, seeds: tuple[int, ...] = (0, 1, 2, 3),
                           device: str = "cpu") -> Measurement:
    """GATE-01: mean over seeds of ‖J_GRU − J_doc‖/‖J_GRU‖ at torch's default init (x ~ N(0, I),
    h ~ N(0, 0.25 I)): what the documents' form leaves out of torch's GRU step Jacobian (or a GRU-layout
    ``cell``'s)."""
    return over_seeds([_doc_jacobian_error(n, m, s, device, cell) for s in seeds], device=device,
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
def _biased_gru(n: int, m: int, seed: int, device: str, cell: Any = "GRUCell") -> tuple[Any, torch.Tensor]:
    with seeded(seed):
        c = build_cell(cell, m, n, device)
        x = torch.randn(1, m, dtype=F64)
    return (copy.deepcopy(c) if c is cell else c), x.to(device)


def _identity_gap(cell: Any, x: torch.Tensor, h: torch.Tensor, bias: float) -> float:
    """‖∂h'/∂h − I‖₂ of a GRU-layout cell at (x, h) with its update-gate input bias set to ``bias``."""
    n = len(h)
    bias_ih = gru_layout(cell, n)[2]
    with torch.no_grad():
        bias_ih[n: 2 * n] = bias
    J = R.step_jacobian(_state_step(cell, x), h).detach()
    return spectral_norm(J - torch.eye(n, dtype=F64, device=h.device))


def gru_identity_gap_value(n: int, m: int, bias: float, seed: int, h_seed: int, device: str,
                           cell: Any = "GRUCell") -> float:
    c, x = _biased_gru(n, m, seed, device, cell)
    h = torch.randn(n, generator=gen(h_seed), dtype=F64).to(device)
    return _identity_gap(c, x, h, bias)


@recipe
def gru_identity_gap(*, cell: Any = "GRUCell", n: int = 16, m: int = 4, bias: float = 12.0, seed: int = 0,
                     h_seed: int = 1, device: str = "cpu") -> Measurement:
    """GATE-02: ‖∂h_t/∂h_{t−1} − I‖₂ of torch's nn.GRUCell (or a GRU-layout ``cell``; default init from
    ``seed``) with the update-gate input bias set to ``bias`` (z ≈ σ(bias + …) → 1)."""
    value = gru_identity_gap_value(n, m, bias, seed, h_seed, device, cell)
    # J − I cancels to O(1 − σ(bias)) from entries O(1)
    return Measurement(value, Kind.NUMERIC, F64, device, {"n": n, "bias": bias},
                       conditioning=max(1.0, 1 + math.exp(bias)))


def _leak(bias: float) -> float:
    return 1 / (1 + math.exp(bias))     # 1 − σ(bias)


def _order(cell: Any, x: torch.Tensor, h: torch.Tensor, biases: tuple[float, float]) -> float:
    """log(‖J − I‖ at biases[1] / at biases[0]) over log of the leaks 1 − σ(b): 1 when ‖J − I‖ ∝ 1 − z.

    J = I at both biases is +inf (the bound holds exactly); a gap that is not finite, or that appears
    only at the larger bias, is −inf."""
    lo, hi = (_identity_gap(cell, x, h, b) for b in biases)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return -math.inf
    if hi == 0:
        return math.inf
    return math.log(hi / lo) / math.log(_leak(biases[1]) / _leak(biases[0])) if lo > 0 else -math.inf


def _state_candidates(n: int, m: int) -> list[tuple[str, Any]]:
    """Structured (h, x): h = 0, ±1, alternating, ½; x = 0, ±2 (the search's domain's ends)."""
    hs = {"h = 0": np.zeros(n), "h = 1": np.ones(n), "h = −1": -np.ones(n),
          "h alternating ±1": (-1.0) ** np.arange(n), "h = ½": np.full(n, 0.5)}
    xs = {"x = 0": np.zeros(m), "x = 2": np.full(m, 2.0), "x = −2": np.full(m, -2.0)}
    return [(f"{a}, {b}", (h, x)) for a, h in hs.items() for b, x in xs.items()]


@recipe
def gate_leak_order(*, cell: Any = "GRUCell", n: int = 32, m: int = 8, biases: tuple[float, float] = (12.0, 20.0),
                    seed: int = 0, profile: str = "ci", device: str = "cpu") -> Measurement:
    """GATE-02 for a GRU-layout cell: the order p of ‖∂h'/∂h − I‖₂ in the leak 1 − z as the update gate
    saturates, p = Δ log ‖J − I‖ / Δ log(1 − σ(b)) between the update-gate input biases ``biases``
    (1 − σ(b) shrinks by e^−8 from 12 to 20), minimised over searched states h ∈ [−1, 1]^n and inputs
    x ∈ [−2, 2]^m (structured candidates first). ‖J − I‖ → 0 linearly in 1 − z is p ≥ 1 up to O(1 − z);
    a gate wired so that z → 1 does not make the step the identity leaves p ≈ 0. The cell at its
    default init from ``seed``. A search bound (an upper bound on the infimum)."""
    c = seeded_cell(cell, m, n, seed, device)
    gru_layout(c, n)

    def order(example: Any) -> float:
        h, x = (torch.tensor(np.asarray(a), dtype=F64, device=device) for a in example)
        return _order(c, x[None], h, biases)

    strategy = st.tuples(hnp.arrays(np.float64, (n,), elements=st.floats(-1, 1, width=64)),
                         hnp.arrays(np.float64, (m,), elements=st.floats(-2, 2, width=64)))
    found = search(strategy, order, candidates=_state_candidates(n, m), profile=profile, minimise=True)
    return Measurement(found.value, Kind.SEARCH, F64, device, {"n": n, "input": m, "biases": list(biases)},
                       direction="upper", witness=found.source)


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

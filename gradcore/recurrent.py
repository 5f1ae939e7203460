"""Recurrent networks unrolled in time, and backpropagation through time (BPTT).

The documents analyse gradients in RNNs as products of one shared matrix
(000 §RNN的特殊性, 003 §3.b, 004 §3.3.2 Theorem 3.3.4) and in gated cells
(002 §循环网络中的门控机制, 003 §4). This module provides each model as a *step*
``s_t = step(s_{t-1}, t)`` so that one BPTT routine measures them all:

* the linear RNN ``h_t = W h_{t-1}`` (:func:`linear_rnn`, :func:`linear_step`);
* the Elman RNN ``h_t = σ(W h_{t-1} + U x_t)`` (:func:`rnn_unroll`, :class:`ElmanRNN`);
* the documents' gated update ``h_t = z ⊙ h_{t-1} + (1-z) ⊙ tanh(W h_{t-1})``
  (:func:`gated_step`);
* torch's own ``nn.RNNCell``/``nn.GRUCell``/``nn.LSTMCell`` (:func:`cell_step`,
  :func:`unroll_cell`) — here we measure torch's implementation, not a rewrite.

It also builds matrices with a prescribed spectral radius ρ and spectral norm σ_max,
normal or non-normal, to separate the two (004 Theorem 3.3.4 vs 矩阵谱半径与稳定性).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import _validate as v
from .jacobian import jacobian

Step = Callable[[torch.Tensor, int], torch.Tensor]
_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu, "identity": lambda a: a,
}
_CELLS = (nn.RNNCell, nn.GRUCell, nn.LSTMCell)


# ---------------------------------------------------------------- models as steps

def linear_step(W: torch.Tensor) -> Step:
    """The step ``h ↦ W h`` of the linear RNN (004 Theorem 3.3.4's simplification)."""
    W = v.matrix(W, "W", square=True)
    return lambda h, t: F.linear(h, W)


def linear_rnn(W: torch.Tensor, h0: torch.Tensor, T: int) -> torch.Tensor:
    """States ``h_0, …, h_T`` of ``h_t = W h_{t-1}``, stacked along a new leading dim."""
    W = v.matrix(W, "W", square=True)
    h0 = _state(h0, "h0", W.shape[0], like=W)
    return v.finite_steps(torch.stack(unroll(linear_step(W), h0, T)), "T", "the states")


def elman_step(W: torch.Tensor, U: torch.Tensor, xs: torch.Tensor,
               nonlinearity: str = "tanh") -> Step:
    """The step ``h ↦ σ(W h + U x_t)`` of an Elman RNN driven by inputs ``xs[t-1]``."""
    W = v.matrix(W, "W", square=True)
    U = v.matrix(U, "U")
    xs = v.tensor(xs, "xs", min_ndim=2)
    if U.shape[0] != W.shape[0]:
        v.fail("U", f"has {U.shape[0]} rows, W has {W.shape[0]}")
    if xs.shape[-1] != U.shape[1]:
        v.fail("xs", f"last dim {xs.shape[-1]} does not match U's {U.shape[1]} columns")
    v.same_dtype(W, U, "W", "U")
    v.same_dtype(W, xs, "W", "xs")
    act = _ACTIVATIONS[v.choice(nonlinearity, "nonlinearity", _ACTIVATIONS)]
    return lambda h, t: act(F.linear(h, W) + F.linear(xs[t - 1], U))


def rnn_unroll(W: torch.Tensor, U: torch.Tensor, xs: torch.Tensor, h0: torch.Tensor,
               nonlinearity: str = "tanh") -> torch.Tensor:
    """States ``h_0, …, h_T`` of ``h_t = σ(W h_{t-1} + U x_t)`` for ``T = len(xs)`` (004 §3.3.2).

    Without biases this is torch's ``nn.RNNCell`` form (``weight_hh = W``,
    ``weight_ih = U``); the unit tests check the two agree. ``sigmoid`` is offered
    because the documents' σ may be either, which ``nn.RNNCell`` does not support.
    """
    step = elman_step(W, U, xs, nonlinearity)
    h0 = _state(h0, "h0", W.shape[0], like=W)
    return v.finite_steps(torch.stack(unroll(step, h0, xs.shape[0])), "xs", "the states")


class ElmanRNN(nn.Module):
    """``h_t = σ(W h_{t-1} + U x_t)`` as a module with parameters ``W`` and ``U``."""

    def __init__(self, W: torch.Tensor, U: torch.Tensor, nonlinearity: str = "tanh") -> None:
        super().__init__()
        self.W = nn.Parameter(v.matrix(W, "W", square=True).clone())
        self.U = nn.Parameter(v.matrix(U, "U").clone())
        self.nonlinearity = v.choice(nonlinearity, "nonlinearity", _ACTIVATIONS)

    def forward(self, xs: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        return rnn_unroll(self.W, self.U, xs, h0, self.nonlinearity)


Gate = torch.Tensor | Callable[[torch.Tensor], torch.Tensor]


def gated_step(h: torch.Tensor, W: torch.Tensor, z: Gate) -> torch.Tensor:
    """``z ⊙ h + (1 − z) ⊙ tanh(W h)``, 002 §循环网络中的门控机制 (the documents' "GRU").

    ``z`` is a fixed gate tensor (broadcast against ``h``) or a callable (e.g. a
    module) mapping ``h`` to the gate; torch's real GRU also has a reset gate and
    input terms that this form leaves out.
    """
    W = v.matrix(W, "W", square=True)
    h = _state(h, "h", W.shape[0], like=W)
    gate = v.guarded(z, "z")(h) if callable(z) else v.tensor(z, "z")
    v.same_dtype(h, gate, "h", "z")
    return torch.lerp(torch.tanh(F.linear(h, W)), h, gate)


def gated_stepper(W: torch.Tensor, z: Gate) -> Step:
    """:func:`gated_step` as a step for :func:`unroll` and :func:`bptt_gradient_norms`."""
    return lambda h, t: gated_step(h, W, z)


def cell_step(cell: nn.Module, xs: torch.Tensor) -> Step:
    """Torch's ``nn.RNNCell``/``nn.GRUCell``/``nn.LSTMCell`` as a step on its full state.

    For the LSTM the state is ``[h, c]`` concatenated on the last dim, so that BPTT
    through the cell path is counted (the path the LSTM's gradient highway uses).
    """
    if not isinstance(cell, _CELLS):
        v.fail("cell", f"expected nn.RNNCell, nn.GRUCell or nn.LSTMCell, got {type(cell).__name__}")
    xs = v.tensor(xs, "xs", min_ndim=2)
    if xs.shape[-1] != cell.input_size:
        v.fail("xs", f"last dim {xs.shape[-1]} does not match the cell's input_size {cell.input_size}")
    v.module_input(cell, xs, "xs")
    if isinstance(cell, nn.LSTMCell):
        n = cell.hidden_size

        def lstm(s: torch.Tensor, t: int) -> torch.Tensor:
            h, c = cell(xs[t - 1], (s[..., :n], s[..., n:]))
            return torch.cat([h, c], dim=-1)
        return lstm
    return lambda h, t: cell(xs[t - 1], h)


def cell_state(cell: nn.Module, h0: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The full state :func:`cell_step` expects: ``h0``, or ``[h0, c0]`` for an LSTM (``c0 = 0`` if omitted)."""
    if isinstance(cell, nn.LSTMCell):
        h, c = h0 if isinstance(h0, tuple) else (h0, None)
        h = v.module_input(cell, _state(h, "h0", cell.hidden_size), "h0")
        c = torch.zeros_like(h) if c is None else _state(c, "c0", cell.hidden_size, like=h)
        return torch.cat([h, c], dim=-1)
    return v.module_input(cell, _state(h0, "h0", cell.hidden_size), "h0")


def unroll_cell(cell: nn.Module, xs: torch.Tensor,
                h0: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Hidden states ``h_0, …, h_T`` of a torch cell run over ``xs`` (``T = len(xs)``)."""
    states = unroll(cell_step(cell, xs), cell_state(cell, h0), xs.shape[0])
    return v.finite_steps(torch.stack(states)[..., : cell.hidden_size], "xs", "the states")


# ---------------------------------------------------------------- BPTT

def unroll(step: Step, s0: torch.Tensor, T: int) -> list[torch.Tensor]:
    """``[s_0, s_1, …, s_T]`` with ``s_t = step(s_{t-1}, t)``."""
    T = v.integer(T, "T", minimum=1)
    if not callable(step):
        v.fail("step", f"expected a callable, got {type(step).__name__}")
    s0 = v.tensor(s0, "s0", min_ndim=1, finite=False)
    step = v.guarded(step, "step")
    states = [s0]
    for t in range(1, T + 1):
        states.append(step(states[-1], t))
    return states


def bptt_gradient_norms(step: Step, s0: torch.Tensor, T: int,
                        grad_output: torch.Tensor | None = None) -> torch.Tensor:
    """‖∂L/∂s_t‖ for t = 0…T, with ``L = ⟨grad_output, s_T⟩`` (so ∂L/∂s_T = grad_output).

    ∂L/∂s_t = (∂s_T/∂s_t)ᵀ · grad_output is what BPTT sends back to step t
    (002 §直接干预, 004 §3.3.2). The default ``grad_output`` is all ones divided by
    √(state size). A batched state (``(B, n)``) gives norms of shape ``(T+1, B)``.
    """
    s0 = v.tensor(s0, "s0", min_ndim=1)
    if grad_output is None:
        grad_output = torch.ones_like(s0) / s0.shape[-1] ** 0.5
    grad_output = v.tensor(grad_output, "grad_output")
    with torch.enable_grad():
        start = s0.detach().requires_grad_(True)
        states = unroll(step, start, T)
        v.same_shape(states[-1], grad_output, "s_T", "grad_output")
        # ∂L/∂s_t of each *intermediate* state: autograd returns the total derivative
        # through every later step, which is exactly the BPTT signal at time t.
        grads = torch.autograd.grad(states[-1], states, grad_outputs=grad_output, allow_unused=True)
    norms = torch.stack([torch.zeros_like(s0[..., 0]) if g is None else g.norm(dim=-1) for g in grads])
    bad = ~torch.isfinite(norms.reshape(norms.shape[0], -1)).all(1)
    if bool(bad.any()):
        back = norms.shape[0] - 1 - int(bad.nonzero()[-1])
        v.fail("T", f"the BPTT gradient overflows {norms.dtype} {back} steps back from s_T; use fewer "
                    "steps or a wider dtype")
    return norms


def step_jacobian(step: Step, s: torch.Tensor, t: int = 1) -> torch.Tensor:
    """Dense ∂s_t/∂s_{t-1} of ``step`` at the 1-D state ``s`` (via gradcore.jacobian)."""
    s = v.tensor(s, "s", ndim=1)
    t = v.integer(t, "t", minimum=1)
    if not callable(step):
        v.fail("step", f"expected a callable, got {type(step).__name__}")
    return jacobian(v.guarded(lambda u: step(u, t), "step"), s)


def growth_rate(norms: torch.Tensor, start: int = 0) -> float:
    """Per-step geometric rate r of ``norms[t] ≈ C r^t`` by least squares on log-norms from ``start``."""
    norms = v.tensor(norms, "norms", ndim=1)
    start = v.integer(start, "start", minimum=0, maximum=norms.shape[0] - 2)
    y = norms[start:].double().log()
    if not bool(torch.isfinite(y).all()):
        v.fail("norms", "must be positive to fit a rate")
    t = torch.arange(y.shape[0], dtype=y.dtype, device=y.device)
    slope = ((t - t.mean()) * (y - y.mean())).sum() / ((t - t.mean()) ** 2).sum()
    return float(slope.exp())


# ---------------------------------------------------------------- matrices with chosen spectra

def _generator(generator: torch.Generator | None) -> torch.Generator:
    return generator if generator is not None else torch.Generator().manual_seed(0)


def random_orthogonal(n: int, *, generator: torch.Generator | None = None,
                      dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> torch.Tensor:
    """Haar-random orthogonal matrix, the QR-with-sign-fix recipe of ``nn.init.orthogonal_``."""
    n = v.integer(n, "n", minimum=1)
    v.float_dtype(dtype)
    a = torch.randn(n, n, generator=_generator(generator), dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r))
    return q.to(dtype=dtype, device=device)


def normal_matrix(n: int, rho: float, *, generator: torch.Generator | None = None,
                  dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> torch.Tensor:
    """``rho · Q`` with Q random orthogonal: normal, every |λ| = ρ = σ_max = rho."""
    rho = v.real(rho, "rho", positive=True)
    return v.finite_result(rho * random_orthogonal(n, generator=generator, dtype=dtype, device=device), "rho",
                           f"the entries overflow {dtype}")


def nonnormal_matrix(n: int, rho: float, sigma_max: float, *, generator: torch.Generator | None = None,
                     dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> torch.Tensor:
    """A real matrix with spectral radius ``rho`` and spectral norm ``sigma_max`` (≥ rho).

    Built as Q (D + s N) Qᵀ from a real Schur form: D diagonal with eigenvalues in
    [−ρ, ρ] (one equal to ρ), N strictly upper triangular. The eigenvalues do not
    depend on s, while ‖D + sN‖₂ is convex in s and ≥ ρ, hence non-decreasing for
    s ≥ 0: bisection on s hits ``sigma_max``.
    """
    n = v.integer(n, "n", minimum=2)
    rho = v.real(rho, "rho", positive=True)
    sigma_max = v.real(sigma_max, "sigma_max", positive=True)
    if sigma_max < rho:
        v.fail("sigma_max", f"must be >= rho = {rho}, got {sigma_max}")
    v.float_dtype(dtype)
    gen = _generator(generator)
    d = rho * (2 * torch.rand(n, generator=gen, dtype=torch.float64) - 1)
    d[0] = rho
    N = torch.triu(torch.randn(n, n, generator=gen, dtype=torch.float64), diagonal=1)
    norm = lambda s: float(torch.linalg.matrix_norm(torch.diag(d) + s * N, ord=2))  # noqa: E731
    lo, hi = 0.0, 1.0
    while norm(hi) < sigma_max:
        hi *= 2
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if norm(mid) < sigma_max else (lo, mid)
    q = random_orthogonal(n, generator=gen)
    return v.finite_result((q @ (torch.diag(d) + hi * N) @ q.T).to(dtype=dtype, device=device), "sigma_max",
                           f"the entries overflow {dtype}")


def gaussian_matrix(n: int, gain: float, *, generator: torch.Generator | None = None,
                    dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> torch.Tensor:
    """i.i.d. N(0, gain²/n) entries: ρ → gain but σ_max → 2·gain as n → ∞ (circular vs quarter-circle law)."""
    n = v.integer(n, "n", minimum=1)
    gain = v.real(gain, "gain", positive=True)
    v.float_dtype(dtype)
    w = torch.randn(n, n, generator=_generator(generator), dtype=torch.float64) * gain / n ** 0.5
    return v.finite_result(w.to(dtype=dtype, device=device), "gain", f"the entries overflow {dtype}")


def _state(h: object, name: str, n: int, like: torch.Tensor | None = None) -> torch.Tensor:
    h = v.tensor(h, name, min_ndim=1)
    if h.shape[-1] != n:
        v.fail(name, f"last dim {h.shape[-1]} does not match the hidden size {n}")
    if like is not None:
        v.same_dtype(like, h, "W" if name != "c0" else "h0", name)
        v.same_device(like, h, "W" if name != "c0" else "h0", name)
    return h


__all__: Sequence[str] = (
    "ElmanRNN", "bptt_gradient_norms", "cell_state", "cell_step", "elman_step", "gated_step",
    "gated_stepper", "gaussian_matrix", "growth_rate", "linear_rnn", "linear_step", "nonnormal_matrix",
    "normal_matrix", "random_orthogonal", "rnn_unroll", "step_jacobian", "unroll", "unroll_cell",
)

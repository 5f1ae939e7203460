"""Recipes for forward Euler on ẋ = Ax as a linear RNN (STAB-06, STAB-07).

Euler's iteration matrix I + hA (gradcore.dynamics) is the recurrent matrix of h_t = (I + hA) h_{t−1}:
its spectral radius decides both the divergence of the iterates and the growth of the BPTT
gradient (002 §数值稳定性与最优控制的观点). Systems are drawn from explicit generators. A user's step map
``step(x, h)`` on a (batch, n) state (``gradcore check``, kind ``dynamics``) is measured by the same
quantities: its iteration matrix ∂step/∂x, its stable-step bound, its BPTT rate.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..dynamics import euler_iteration_matrix, euler_stable, euler_trajectory, max_stable_step
from ..jacobian import jacobian
from ..spectral import spectral_norm, spectral_radius
from .measurement import Kind, Measurement, recipe
from .recurrent import F64, gen, over_seeds, step_rate
from .search import find_counterexample

FACTORS = (0.6, 0.95, 1.05, 1.4)     # h/h* on both sides of the stability boundary


def stable_matrix(M: torch.Tensor) -> torch.Tensor:
    """M − (‖M‖₂ + 0.1) I: every eigenvalue has real part ≤ −0.1 (a stable ODE)."""
    return M - (spectral_norm(M) + 0.1) * torch.eye(M.shape[0], dtype=M.dtype, device=M.device)


def _boundary_wrong(case: np.ndarray, device: str) -> bool:
    A = stable_matrix(torch.as_tensor(case, dtype=F64)).to(device)
    h = max_stable_step(A)
    return not (euler_stable(A, 0.999 * h) and not euler_stable(A, 1.001 * h))


@recipe
def euler_boundary_counterexamples(*, max_examples: int = 40, device: str = "cpu") -> Measurement:
    """STAB-06: 1 if a (derandomized) Hypothesis search finds a stable A where ρ(I+hA) < 1 ⇔ h < h* fails
    at h = h*(1 ∓ 0.001) (h* = min −2Reλ/|λ|²), else 0."""
    stable = st.integers(1, 5).flatmap(lambda n: hnp.arrays(np.float64, (n, n), elements=st.floats(-3, 3)))
    bad = find_counterexample(stable, lambda c: _boundary_wrong(c, device), max_examples=max_examples,
                              derandomize=True, database=None, deadline=None)
    return Measurement(0 if bad is None else 1, Kind.EXACT, F64, device, {"max_examples": max_examples})


@functools.lru_cache(maxsize=4)
def euler_trials(trials: int, n: int, steps: int, seed: int, device: str) -> tuple[dict[str, Any], ...]:
    """For random stable A and h = f·h* (f in FACTORS): whether x grew, its late per-step rate, ρ(I+hA), hλ."""
    g = gen(seed)
    rows = []
    for trial in range(trials):
        A = stable_matrix(torch.randn(n, n, generator=g, dtype=F64)).to(device)
        hs, lam = max_stable_step(A), torch.linalg.eigvals(A)
        for fac in FACTORS:
            h = fac * hs
            x = euler_trajectory(A, torch.randn(n, generator=g, dtype=F64).to(device), h, steps)
            rate = float(x[-1].norm() / x[steps // 2].norm()) ** (1 / (steps - steps // 2))
            rows.append({"trial": trial, "factor": fac, "grew": bool(x[-1].norm() > x[0].norm()), "rate": rate,
                         "rho": spectral_radius(euler_iteration_matrix(A, h)), "hlam": (h * lam).tolist()})
    return tuple(rows)


@recipe
def euler_trial_summary(*, quantity: str = "rate_error", trials: int = 12, n: int = 6, steps: int = 400, seed: int = 2,
                        device: str = "cpu") -> Measurement:
    """STAB-06 over random stable A (N(0,1) entries shifted stable) and h = f·h*, f in FACTORS:
    ``rate_error`` max |per-step rate of ‖x‖ over steps/2..steps − ρ(I+hA)|; ``mismatches`` the number
    of trajectories whose growth (‖x_steps‖ > ‖x_0‖) disagrees with h > h*."""
    rows = euler_trials(trials, n, steps, seed, device)
    sizes = {"trials": trials, "n": n, "steps": steps}
    if quantity == "mismatches":
        bad = sum(r["grew"] != (r["factor"] > 1) for r in rows)
        return Measurement(bad, Kind.EXACT, F64, device, sizes)
    # rates from norm ratios over 200 steps: rounding enters as (steps·eps)^(1/200)-level noise
    return Measurement(max(abs(r["rate"] - r["rho"]) for r in rows), Kind.NUMERIC, F64, device, sizes,
                       conditioning=1e4)


@recipe
def euler_radius(*, A: Any, h: float, device: str = "cpu") -> Measurement:
    """STAB-06: ρ(I + hA)."""
    return Measurement(spectral_radius(euler_iteration_matrix(torch.tensor(A, dtype=F64, device=device), h)),
                       Kind.NUMERIC, F64, device, {"n": len(A)})


def euler_system(n: int, seed: int, device: str) -> tuple[torch.Tensor, float, torch.Tensor]:
    """A stable A, its largest stable Euler step h*, and x_0, drawn in that order from ``seed``."""
    g = gen(seed)
    A = stable_matrix(torch.randn(n, n, generator=g, dtype=F64)).to(device)
    return A, max_stable_step(A), torch.randn(n, generator=g, dtype=F64).to(device)


@recipe
def euler_rnn(*, quantity: str = "rate", factor: float = 1.2, activation: str = "linear", n: int = 5, T: int = 300,
              seed: int = 3, device: str = "cpu") -> Measurement:
    """STAB-07: the RNN h_t = σ(W h_{t−1}) with W = I + h A, h = factor·h*, from h_0 = x_0.

    ``rate``: BPTT growth per step (‖∂L/∂h_0‖/‖h_T‖)^{1/T}, L = ½‖h_T‖²; ``gap``: max |h_t − Euler x_t|
    for the linear RNN (the same floating-point operations: exactly 0).
    """
    A, hs, x0 = euler_system(n, seed, device)
    W = euler_iteration_matrix(A, factor * hs)
    h0 = x0.clone().requires_grad_(True)
    h, states = h0, []
    for _ in range(T):
        h = W @ h if activation == "linear" else torch.tanh(W @ h)
        states.append(h)
    sizes = {"n": n, "T": T}
    if quantity == "gap":
        gap = float((torch.stack(states).detach() - euler_trajectory(A, x0, factor * hs, T)[1:]).abs().max())
        return Measurement(gap, Kind.EXACT, F64, device, sizes)
    (g0,) = torch.autograd.grad(h.pow(2).sum() / 2, h0)
    rate = (float(g0.norm()) / float(h.detach().norm())) ** (1 / T)
    # a rate over a 300-step product of a non-normal W
    return Measurement(rate, Kind.NUMERIC, F64, device, sizes, conditioning=1e4)


# ---------------------------------------------------------------- a step map x ↦ step(x, h) (kind ``dynamics``)

class EulerStep:
    """Forward Euler x ↦ (I + hA)x of ẋ = Ax (:func:`gradcore.dynamics.euler_iteration_matrix`) as a
    step map ``step(x, h)`` on a (batch, n) state: gradcore's own member of the ``dynamics`` kind."""

    def __init__(self, A: Any, h: float) -> None:
        self.A, self.h, self.dim = [[float(a) for a in row] for row in A], float(h), len(A)

    def __call__(self, x: torch.Tensor, h: float | None = None) -> torch.Tensor:
        M = euler_iteration_matrix(torch.tensor(self.A, dtype=x.dtype, device=x.device), self.h if h is None else h)
        return x @ M.T

    def __repr__(self) -> str:
        return f"EulerStep(A={self.A!r}, h={self.h!r})"


def iteration_matrix(step: Any, h: float, dim: int, device: str, at: torch.Tensor | None = None) -> torch.Tensor:
    """∂step(x, h)/∂x at x = ``at`` (default 0), float64: I + hA for Euler on ẋ = Ax."""
    x = torch.zeros(dim, dtype=F64, device=device) if at is None else at
    return jacobian(lambda u: step(u[None], h)[0], x).detach()


def linear_part(step: Any, h: float, dim: int, device: str) -> torch.Tensor | None:
    """The ODE's A = d/dh ∂step/∂x at h → 0 (forward difference at δ = 1e-7·h, error O(δ‖A‖²) + ε/δ), or
    None when the map is no consistent ODE step (∂step/∂x does not tend to I as h → 0)."""
    delta = 1e-7 * h
    J = iteration_matrix(step, delta, dim, device)
    eye = torch.eye(dim, dtype=F64, device=device)
    if float((J - eye).abs().max()) > 1e-3:
        return None
    return (J - eye) / delta


@recipe
def step_radius(*, step: Any, h: float, dim: int, device: str = "cpu") -> Measurement:
    """STAB-06 for a step map: ρ(∂step(x, h)/∂x) at x = 0, the iteration matrix's spectral radius
    (ρ(I + hA) for Euler; an eigenvalue of a non-normal matrix: conditioning 1e3)."""
    rho = spectral_radius(iteration_matrix(step, h, dim, device))
    return Measurement(rho, Kind.NUMERIC, F64, device, {"n": dim}, conditioning=1e3)


@recipe
def step_stability_bound(*, step: Any, h: float, dim: int, span: float = 64.0, device: str = "cpu") -> Measurement:
    """STAB-06 for a step map: the smallest step size h' in [h/span, h·span] with ρ(∂step(x, h')/∂x at 0) ≥ 1
    (a log grid of 49 points, then 60 bisections), inf when every h' there is stable; for Euler on a
    stable ẋ = Ax it is the exact bound min −2Reλ/|λ|² (:func:`gradcore.dynamics.max_stable_step`)."""
    def unstable(k: float) -> bool:
        return spectral_radius(iteration_matrix(step, k, dim, device)) >= 1.0

    grid = np.geomspace(h / span, h * span, 49)
    first = next((i for i, k in enumerate(grid) if unstable(float(k))), None)
    if first is None:
        return Measurement(np.inf, Kind.NUMERIC, F64, device, {"n": dim, "span": span})
    lo, hi = (0.0 if first == 0 else float(grid[first - 1])), float(grid[first])
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if unstable(mid) else (mid, hi)
    # the bisection stops at 2^-60 of the bracket; ρ near 1 is an eigenvalue's modulus (conditioning 1e3)
    return Measurement(hi, Kind.NUMERIC, F64, device, {"n": dim, "span": span}, conditioning=1e3)


@recipe
def linear_part_bound(*, step: Any, h: float, dim: int, device: str = "cpu") -> Measurement:
    """STAB-06: forward Euler's exact stable-step bound min −2Reλ/|λ|² for the step map's own ODE ẋ = Ax
    (A from :func:`linear_part`); 0 when A is unstable, NaN when the map is no consistent ODE step."""
    A = linear_part(step, h, dim, device)
    value = float("nan") if A is None else max_stable_step(A)
    # A from a forward difference: relative error ~ 1e-7·h‖A‖ + ε/(1e-7·h)
    return Measurement(value, Kind.NUMERIC, F64, device, {"n": dim}, conditioning=1e8)


@recipe
def step_bptt_rate(*, step: Any, h: float, dim: int, T: int = 60, start: int = 10, batch: int = 4,
                   seeds: tuple[int, ...] = (0, 1, 2), device: str = "cpu") -> Measurement:
    """STAB-07, CTRL-02 for a step map: BPTT per-step rate of ‖∂L/∂x_t‖ through T steps x_t = step(x_{t−1}, h)
    (:func:`gradcore.measure.recurrent.step_rate`, the one BPTT rate), x_0 ~ N(0, I) of shape (batch, dim)
    from each seed; the mean over seeds with its Student-t interval (inf when a seed exploded)."""
    rates = [step_rate(lambda s, t: step(s, h), torch.randn(batch, dim, generator=gen(s), dtype=F64).to(device),
                       T, start) for s in seeds]
    sizes = {"n": dim, "T": T, "batch": batch, "seeds": len(seeds)}
    if not all(np.isfinite(r) for r in rates):
        return Measurement(np.inf, Kind.NUMERIC, F64, device, sizes)
    return over_seeds(rates, device=device, sizes=sizes)

"""Forward Euler for the linear ODE ẋ = Ax and its stability region.

Seed 002 §数值稳定性与最优控制的观点: for a stable system (Re λ(A) < 0) an ill-chosen step h
gives an iteration matrix I + hA with ρ(I + hA) > 1 and a diverging numerical solution,
"the same mathematical phenomenon" as a recurrent matrix with spectral radius above 1.
Euler is stable iff |1 + hλ| < 1 for every eigenvalue λ of A.
"""
from __future__ import annotations

import torch

from . import _validate as v
from .spectral import spectral_radius


def euler_iteration_matrix(A: torch.Tensor, h: float) -> torch.Tensor:
    """I + hA: one Euler step x_{k+1} = (I + hA) x_k."""
    A = v.matrix(A, "A", square=True)
    h = v.real(h, "h", positive=True)
    M = torch.eye(A.shape[0], dtype=A.dtype, device=A.device) + h * A
    return v.finite_result(M, "h", f"I + hA overflows {A.dtype} (h = {h:g}, max|A| = {float(A.abs().max()):g})")


def euler_trajectory(A: torch.Tensor, x0: torch.Tensor, h: float, steps: int) -> torch.Tensor:
    """Euler iterates x_0, …, x_steps stacked as rows, shape (steps + 1, n)."""
    M = euler_iteration_matrix(A, h)
    x0 = v.tensor(x0, "x0", ndim=1)
    if x0.shape[0] != M.shape[0]:
        v.fail("x0", f"length {x0.shape[0]} does not match A of size {M.shape[0]}")
    if x0.dtype != M.dtype:
        v.fail("x0", f"dtype {x0.dtype} does not match A dtype {M.dtype}")
    steps = v.integer(steps, "steps", minimum=1)
    xs = [x0]
    for _ in range(steps):
        xs.append(M @ xs[-1])
    return v.finite_steps(torch.stack(xs), "steps", "the Euler iterates")


def euler_stable(A: torch.Tensor, h: float) -> bool:
    """Whether ρ(I + hA) < 1, i.e. the Euler iterates decay for every start."""
    return spectral_radius(euler_iteration_matrix(A, h)) < 1.0


def max_stable_step(A: torch.Tensor) -> float:
    """sup{h > 0 : ρ(I + hA) < 1} = min over eigenvalues λ of −2 Re λ / |λ|².

    |1 + hλ|² < 1 ⇔ h(2 Re λ + h|λ|²) < 0 ⇔ h < −2 Re λ/|λ|² (needs Re λ < 0). Returns 0.0
    when some eigenvalue has Re λ ≥ 0: then no positive step is stable.
    """
    A = v.matrix(A, "A", square=True)
    lam = torch.linalg.eigvals(A)
    if bool((lam.real >= 0).any()):
        return 0.0
    h = float((-2.0 * lam.real / lam.abs().pow(2)).min())
    if 0.0 < h < float("inf"):
        return h
    # |λ|² overflowed (h came out 0) or underflowed (inf): the same ratio without squaring
    h = float((-2.0 * (lam.real / lam.abs()) / lam.abs()).min())
    if not h < float("inf"):
        v.fail("A", f"its eigenvalues are so small that the stable step exceeds {A.dtype}'s range")
    return h

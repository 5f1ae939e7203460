"""Spectral quantities of matrices and of matrix-free operators.

Spectral norm σ_max, spectral radius ρ, condition number and effective rank
(004 §3.3.3 Definition 3.3.6, Theorem 3.3.6; 002 "数值稳定性与最优控制的观点").
Dense quantities use ``torch.linalg``; the matrix-free spectral norm runs power
iteration on JᵀJ through jvp/vjp when the Jacobian is too large to build.
"""
from __future__ import annotations

import torch

from . import _validate as v
from .jacobian import TensorFn, jacobian_operator


def singular_values(m: torch.Tensor) -> torch.Tensor:
    """Singular values of a matrix, descending (``torch.linalg.svdvals``)."""
    return torch.linalg.svdvals(v.matrix(m, "m"))


def spectral_norm(m: torch.Tensor) -> float:
    """Largest singular value σ_max(m) = ‖m‖₂."""
    return float(torch.linalg.matrix_norm(v.matrix(m, "m"), ord=2))


def spectral_radius(m: torch.Tensor) -> float:
    """ρ(m) = max |λ_i(m)| of a square matrix.

    Computed as s·ρ(m/s) with s = max|m_ij| (ρ is homogeneous). LAPACK's non-symmetric
    eigenvalue iteration can fail to converge on matrices mixing entries of very
    different magnitude; then a symmetric matrix is solved with ``eigvalsh`` and a
    general one once more with entries below eps·s set to zero (a relative perturbation
    of at most n·eps), before giving up with a one-line error.
    """
    m = v.matrix(m, "m", square=True)
    scale = float(m.abs().max())
    if scale == 0.0:
        return 0.0
    m = m / scale
    attempts = [lambda: torch.linalg.eigvals(m)]
    if torch.equal(m, m.mT):
        attempts.append(lambda: torch.linalg.eigvalsh(m))
    eps = torch.finfo(m.dtype).eps if m.is_floating_point() else torch.finfo(m.real.dtype).eps
    attempts.append(lambda: torch.linalg.eigvals(torch.where(m.abs() < eps, torch.zeros_like(m), m)))
    for attempt in attempts:
        try:
            return scale * float(attempt().abs().max())
        except torch.linalg.LinAlgError as e:
            error = e
    v.fail("m", f"the eigenvalue iteration did not converge ({error})")


def condition_number(m: torch.Tensor) -> float:
    """σ_max / σ_min (``inf`` for a singular matrix)."""
    return float(torch.linalg.cond(v.matrix(m, "m"), p=2))


def effective_rank(m: torch.Tensor, eps: float) -> int:
    """rank_ε(m) = max{k : σ_k ≥ ε} (004 §3.3.3 Definition 3.3.6)."""
    eps = v.real(eps, "eps", positive=True)
    return int((singular_values(m) >= eps).sum())


def operator_spectral_norm(f: TensorFn, x: torch.Tensor, *, iters: int = 200,
                           tol: float = 1e-7, seed: int = 0) -> float:
    """σ_max of the Jacobian of ``f`` at ``x`` by power iteration on JᵀJ, matrix-free.

    Converges to the top singular value from below; stops when the relative
    change falls under ``tol`` or after ``iters`` iterations.
    """
    iters = v.integer(iters, "iters", minimum=1)
    tol = v.real(tol, "tol", positive=True)
    op = jacobian_operator(f, x)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    u = torch.randn(op.in_shape, generator=gen, dtype=x.dtype).to(x.device)
    u = u / u.norm()
    sigma = 0.0
    for _ in range(iters):
        w = op.rmatvec(op.matvec(u)).detach()
        norm = float(w.norm())
        if norm == 0.0:
            return 0.0
        u = w / norm
        new_sigma = norm ** 0.5
        if abs(new_sigma - sigma) <= tol * new_sigma:
            return new_sigma
        sigma = new_sigma
    return sigma

"""Golub–Kahan–Lanczos bidiagonalisation: a few singular triplets of a linear map.

Lanczos on AᴴA run through products with A and Aᴴ only (Golub & Kahan 1965; Golub &
Van Loan, *Matrix Computations* §10.4). After k steps A V_k = U_k B_k and
Aᴴ U_k = V_k B_kᵀ + β_k v_{k+1} e_kᵀ with B_k upper bidiagonal, so a singular triplet
(σ, p, q) of B_k gives the Ritz triplet (σ, U_k p, V_k q) whose residual is known
without another product: ‖AᴴA v − σ² v‖ = σ·β_k·|p_k|. Working on A rather than on
the squared operator keeps small singular values accurate to ε·σ_max instead of
√ε·σ_max. Both bases are reorthogonalised in full (classical Gram–Schmidt twice), so
no spurious copies appear. A batch of independent maps runs in lock-step: the
per-frequency blocks of a convolution use the same code as one matrix-free Jacobian.

A Krylov space from one start vector holds one copy of a repeated singular value, so
of a multiple σ only one copy is returned among the top k.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import _validate as v

Product = Callable[[torch.Tensor], torch.Tensor]  # (batch, n) -> (batch, m) or back


@dataclass(frozen=True)
class Triplets:
    """k Ritz triplets per batch member, ``values`` descending (ascending for smallest)."""

    values: torch.Tensor      # (batch, k) real
    right: torch.Tensor       # (batch, k, n): right singular vectors v (inputs)
    left: torch.Tensor        # (batch, k, m): left singular vectors u (outputs)
    residuals: torch.Tensor   # (batch, k): ‖AᴴA v − σ² v‖ / σ²
    steps: int                # Lanczos steps taken (= products with A and with Aᴴ)
    tol: float

    @property
    def converged(self) -> bool:
        """Every triplet met the residual test (else ``max_steps`` ran out first)."""
        return bool((self.residuals <= self.tol).all())


class _Basis:
    """Orthonormal columns kept as rows of a buffer that doubles when full."""

    def __init__(self, batch: int, dim: int, like: torch.Tensor, capacity: int) -> None:
        self.rows = like.new_zeros(batch, capacity, dim)
        self.size = 0

    @property
    def used(self) -> torch.Tensor:
        return self.rows[:, :self.size]

    def orthogonalise(self, w: torch.Tensor) -> torch.Tensor:
        """w minus its projection on the basis, twice (CGS2: orthogonal to rounding)."""
        if self.size == 0:
            return w
        q = self.used
        qh = q.conj() if q.is_complex() else q
        w = w[..., None]
        for _ in range(2):
            w = w - q.mT @ (qh @ w)
        return w[..., 0]

    def append(self, w: torch.Tensor) -> None:
        if self.size == self.rows.shape[1]:
            self.rows = torch.cat([self.rows, torch.zeros_like(self.rows)], dim=1)
        self.rows[:, self.size] = w
        self.size += 1


def _normalised(w: torch.Tensor, floor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # a norm at rounding level of the operator's scale is an invariant subspace: stop there
    norm = torch.linalg.vector_norm(w, dim=-1)
    dead = norm <= floor
    norm = torch.where(dead, torch.zeros_like(norm), norm)
    return torch.where(dead[:, None], torch.zeros_like(w), w / norm.clamp_min(torch.finfo(norm.dtype).tiny)[:, None]), norm


def _bidiagonal(alphas: list[torch.Tensor], betas: list[torch.Tensor]) -> torch.Tensor:
    a = torch.stack(alphas, -1)
    b = torch.diag_embed(a)
    if len(betas) > 1:
        b = b + torch.diag_embed(torch.stack(betas[:-1], -1), offset=1)
    return b


def _ritz(alphas, betas, k: int, smallest: bool):
    """Singular triplets of B_k, the k wanted ones, and their relative residuals.

    The top end comes from ``eigh`` of the tridiagonal BᵀB (faster than an SVD; its
    ε·σ_max² absolute error is ε relative there); the bottom end needs the SVD of B.
    """
    b = _bidiagonal(alphas, betas)
    if smallest:
        p, s, qh = torch.linalg.svd(b)
        order = torch.arange(s.shape[-1] - 1, s.shape[-1] - k - 1, -1)
        s, p, q = s[:, order], p[:, :, order], qh.mT[:, :, order]
    else:
        lam, q = torch.linalg.eigh(b.mT @ b)
        s = lam.flip(-1)[:, :k].clamp_min(0).sqrt()
        q = q.flip(-1)[:, :, :k]
        p = (b @ q) / s.clamp_min(torch.finfo(s.dtype).tiny)[:, None, :]
    resid = betas[-1][:, None] * p[:, -1, :].abs()           # ‖Aᴴu − σv‖
    rel = resid / s.clamp_min(torch.finfo(s.dtype).tiny)      # = ‖AᴴAv − σ²v‖ / σ²
    rel = torch.where(s > 0, rel, torch.where(resid == 0, torch.zeros_like(rel), torch.full_like(rel, float("inf"))))
    return s, p, q, rel


def _arguments(matvec: object, rmatvec: object, start: object, k: object, tol: object,
               max_steps: object) -> tuple[torch.Tensor, int, float, int]:
    for name, f in (("matvec", matvec), ("rmatvec", rmatvec)):
        if not callable(f):
            v.fail(name, f"expected a callable, got {type(f).__name__}")
    start = v.tensor(start, "start", ndim=2, complex_ok=True)
    if not bool((torch.linalg.vector_norm(start, dim=-1) > 0).all()):
        v.fail("start", "every batch member needs a nonzero start vector")
    return (start, v.integer(k, "k", minimum=1), v.real(tol, "tol", positive=True),
            v.integer(max_steps, "max_steps", minimum=1))


def _checked(f: Product, name: str, start: torch.Tensor, width: int | None) -> Product:
    """``f`` whose result must be a (batch, width) tensor in the start vector's dtype (metadata
    checks only: a finiteness test would cost a device sync per product)."""
    f = v.guarded(f, name)

    def call(u: torch.Tensor) -> torch.Tensor:
        out = f(u)
        if out.ndim != 2 or out.shape[0] != u.shape[0] or (width is not None and out.shape[1] != width):
            want = f"({u.shape[0]}, {width if width is not None else '·'})"
            v.fail(name, f"must map {tuple(u.shape)} to {want}, got {tuple(out.shape)}")
        if out.dtype != start.dtype:
            v.fail(name, f"returned dtype {out.dtype}, the start vector is {start.dtype}")
        return out
    return call


def bidiagonalise(matvec: Product, rmatvec: Product, start: torch.Tensor, *, k: int, tol: float,
                  max_steps: int, smallest: bool = False, check_every: int = 1,
                  reorthogonalise: bool = True) -> Triplets:
    """Top (or bottom) ``k`` singular triplets of the batched map behind ``matvec``/``rmatvec``.

    ``start`` (batch, n) is the first right vector. Stops when every wanted triplet has
    ‖AᴴAv − σ²v‖ ≤ tol·σ², on an invariant subspace, or after ``max_steps`` steps (then
    ``residuals`` say how far it got). ``check_every`` spaces the small SVDs of B_k.
    ``reorthogonalise=False`` keeps only the three-term recurrence: enough for the top
    value alone (lost orthogonality adds ghost copies of converged values, Paige 1976,
    but never moves the largest Ritz value off σ_max), and the vectors are not returned.
    """
    start, k, tol, max_steps = _arguments(matvec, rmatvec, start, k, tol, max_steps)
    matvec, rmatvec = _checked(matvec, "matvec", start, None), _checked(rmatvec, "rmatvec", start, start.shape[1])
    batch, n = start.shape
    v = start / torch.linalg.vector_norm(start, dim=-1, keepdim=True)
    V = _Basis(batch, n, start, min(max_steps + 1, 64) if reorthogonalise else 1)
    U: _Basis | None = None
    alphas: list[torch.Tensor] = []
    betas: list[torch.Tensor] = []
    u_prev = None
    floor = None
    for step in range(1, max_steps + 1):
        if reorthogonalise:
            V.append(v)
        w = matvec(v)
        if U is None:
            U = _Basis(batch, w.shape[-1], w, min(max_steps, 64) if reorthogonalise else 1)
        if u_prev is not None:
            w = w - betas[-1][:, None].to(w.dtype) * u_prev
        if floor is None:
            floor = 64 * torch.finfo(w.real.dtype).eps * torch.linalg.vector_norm(w, dim=-1)
        u, alpha = _normalised(U.orthogonalise(w) if reorthogonalise else w, floor)
        w = rmatvec(u) - alpha[:, None].to(u.dtype) * v
        if reorthogonalise:
            U.append(u)
            w = V.orthogonalise(w)
        v, beta = _normalised(w, floor)
        alphas.append(alpha)
        betas.append(beta)
        floor = torch.maximum(floor, 64 * torch.finfo(w.real.dtype).eps * alpha)
        u_prev = u
        done = step == max_steps or step == n or bool((beta == 0).all() | (alpha == 0).all())
        if step >= k and (done or step % check_every == 0):
            s, p, q, rel = _ritz(alphas, betas, k, smallest)
            if done or bool((rel <= tol).all()):
                break
    kk = min(k, len(alphas))
    s, p, q, rel = _ritz(alphas, betas, kk, smallest)
    if not reorthogonalise:
        empty = start.new_zeros(batch, kk, 0)
        return Triplets(s, empty, empty, rel, len(alphas), tol)
    right = torch.einsum("bjn,bjk->bkn", V.rows[:, :len(alphas)], q.to(start.dtype))
    left = torch.einsum("bjm,bjk->bkm", U.used, p.to(start.dtype))
    return Triplets(s, right, left, rel, len(alphas), tol)

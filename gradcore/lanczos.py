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
        return w if self.size == 0 else _cgs2(self.used, w[..., None])[..., 0]

    def append(self, w: torch.Tensor) -> None:
        if self.size == self.rows.shape[1]:
            self.rows = torch.cat([self.rows, torch.zeros_like(self.rows)], dim=1)
        self.rows[:, self.size] = w
        self.size += 1


def _cgs2(q: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Columns of w (batch, dim, c) minus their projection on the rows of q (batch, j, dim), twice
    where once is not enough.

    The second pass runs only when the first removed more than 1 − 1/√2 of some column's norm
    (Daniel, Gragg, Kaufman & Stewart 1976): otherwise one pass already leaves it orthogonal to
    rounding. In Lanczos the three-term recurrence has removed nearly everything, so the second
    pass — two more matrix products, each a thread-pool round trip on a CPU — is rarely needed.
    """
    qh = q.conj() if q.is_complex() else q
    before = torch.linalg.vector_norm(w, dim=-2)
    w = w - q.mT @ (qh @ w)
    if bool((torch.linalg.vector_norm(w, dim=-2) * _DGKS < before).any()):
        w = w - q.mT @ (qh @ w)
    return w


_DGKS = 2 ** 0.5


def _row_norm(w: torch.Tensor) -> torch.Tensor:
    """‖w‖ along the last axis; a complex one as its real view (torch's complex norm kernel is
    ~100× slower on CPU)."""
    return torch.linalg.vector_norm(torch.view_as_real(w), dim=(-2, -1)) if w.is_complex() else \
        torch.linalg.vector_norm(w, dim=-1)


def _normalised(w: torch.Tensor, floor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # a norm at rounding level of the operator's scale is an invariant subspace: stop there
    norm = _row_norm(w)
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
    resid = betas[-1][:, None] * p[:, -1, :].abs()           # ‖Aᴴu − σv‖ = ‖AᴴAv − σ²v‖ / σ
    return s, p, q, relative_residual(resid, s)


def relative_residual(resid: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """resid / s, with 0/0 = 0 (an exact zero singular value) and x/0 = ∞ (an unconverged one)."""
    rel = resid / s.clamp_min(torch.finfo(s.dtype).tiny)
    return torch.where(s > 0, rel, torch.where(resid == 0, torch.zeros_like(rel), torch.full_like(rel, float("inf"))))


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


# --- block Golub–Kahan–Lanczos: b vectors per product ------------------------------------------

def _orthonormal_block(w: torch.Tensor, floor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """W = Q R for a block of rows w (batch, b, dim): Q's rows orthonormal, R (batch, b, b).

    From the thin SVD W = P S Hᴴ (Q = P, R = S Hᴴ) rather than a QR alone: it reveals rank, so a
    direction of W below ``floor`` (W is nearly rank-deficient: the Krylov space has met an
    invariant subspace there) gets a zero row in Q and in R instead of a random one. The SVD is
    reached through a Householder QR of Wᵀ and the SVD of its small factor (Chan 1982): the
    same factors, at a sixth of the cost of LAPACK's SVD of the tall matrix (1024 × 8, measured).
    """
    tall_q, small = torch.linalg.qr(w.mT)                        # w.mT = tall_q small
    p, s, hh = torch.linalg.svd(small, full_matrices=False)     # small = p diag(s) hh
    p = tall_q @ p
    live = s > floor[:, None]
    q = torch.where(live[:, None, :], p, torch.zeros_like(p)).mT
    r = torch.where(live[:, :, None], s[:, :, None].to(hh.dtype) * hh, torch.zeros_like(hh))
    return q, r


def _block_matrix(diag: list[torch.Tensor], upper: list[torch.Tensor]) -> torch.Tensor:
    """The block upper-bidiagonal 𝔅 with A V_j = U_j 𝔅: blocks A_i on the diagonal, B_iᴴ above it."""
    batch, b, _ = diag[0].shape
    j = len(diag)
    out = diag[0].new_zeros(batch, j * b, j * b)
    for i, a in enumerate(diag):
        out[:, i * b:(i + 1) * b, i * b:(i + 1) * b] = a
        if i + 1 < j:
            out[:, i * b:(i + 1) * b, (i + 1) * b:(i + 2) * b] = upper[i].mH
    return out


def _block_ritz(diag, upper, k: int):
    """Top ``k`` singular triplets of 𝔅 and their relative residuals ‖B_j p_last‖ / σ.

    Aᴴ U_j = V_j 𝔅ᴴ + V_{j+1} B_j E_jᴴ, so for 𝔅 q = σ p the Ritz pair (U_j p, V_j q) has
    ‖Aᴴu − σv‖ = ‖B_j p_last‖ (p_last: p's last block) and ‖AᴴAv − σ²v‖ / σ² = that / σ.
    """
    big = _block_matrix(diag, upper)
    lam, q = torch.linalg.eigh(big.mH @ big)
    s = lam.flip(-1)[:, :k].clamp_min(0).sqrt()
    q = q.flip(-1)[:, :, :k]
    tiny = torch.finfo(s.dtype).tiny
    p = (big @ q) / s.clamp_min(tiny)[:, None, :].to(q.dtype)
    b = diag[0].shape[-1]
    resid = torch.linalg.vector_norm(upper[-1] @ p[:, -b:, :], dim=1)
    return s, p, q, relative_residual(resid, s)


def block_bidiagonalise(matmat: Product, rmatmat: Product, start: torch.Tensor, *, k: int, tol: float,
                        max_steps: int) -> Triplets:
    """Top ``k`` singular triplets by block Golub–Kahan–Lanczos, ``b`` vectors per product.

    ``start`` (batch, b, n) holds the first block of right vectors; ``matmat`` maps
    (batch, b, n) → (batch, b, m) and ``rmatmat`` back, so each product passes over the
    operator (a network's weights) once for the whole block (Golub, Luk & Overton 1981).
    A block of b vectors also finds a singular value of multiplicity ≤ b. Both bases are
    reorthogonalised in full (CGS2). Stops when every wanted triplet has
    ‖AᴴAv − σ²v‖ ≤ tol·σ² — the certificate of :func:`bidiagonalise` — when the Krylov
    space is the whole input space, or after ``max_steps`` block steps; ``steps`` counts
    block steps (passes over the operator, each direction).
    """
    batch, b, n = start.shape
    v = _orthonormal_block(start, torch.zeros(batch, dtype=start.real.dtype, device=start.device))[0]
    cap = min(max_steps + 1, max(2, 64 // b)) * b
    V = _Basis(batch, n, start, cap)
    U: _Basis | None = None
    diag: list[torch.Tensor] = []
    upper: list[torch.Tensor] = []
    u_prev, floor = None, None
    for step in range(1, max_steps + 1):
        for row in v.unbind(1):
            V.append(row)
        w = matmat(v)
        if U is None:
            U = _Basis(batch, w.shape[-1], w, cap)
            floor = 64 * torch.finfo(w.real.dtype).eps * torch.linalg.vector_norm(w, dim=(-2, -1))
        if u_prev is not None:
            w = w - upper[-1].mH.mT @ u_prev          # rows: (U_{j-1} B_{j-1}ᴴ)ᵀ
        u, a = _orthonormal_block(_block_orthogonalise(U, w), floor)
        for row in u.unbind(1):
            U.append(row)
        z = rmatmat(u) - a.mH.mT @ v                   # rows of Aᴴ U_j − V_j A_jᴴ
        v, bb = _orthonormal_block(_block_orthogonalise(V, z), floor)
        diag.append(a)
        upper.append(bb)
        u_prev = u
        if step * b >= min(n, w.shape[-1]) or step == max_steps:
            break
        if step * b >= k and bool((_block_ritz(diag, upper, k)[3] <= tol).all()):
            break
    kk = min(k, len(diag) * b)
    s, p, q, rel = _block_ritz(diag, upper, kk)
    used = len(diag) * b
    right = torch.einsum("bjn,bjk->bkn", V.rows[:, :used], q.to(start.dtype))
    left = torch.einsum("bjm,bjk->bkm", U.used, p.to(start.dtype))
    return Triplets(s, right, left, rel, len(diag), tol)


def _block_orthogonalise(basis: _Basis, w: torch.Tensor) -> torch.Tensor:
    """Each row of w (batch, b, dim) minus its projection on the basis, twice (CGS2)."""
    return w if basis.size == 0 else _cgs2(basis.used, w.mT).mT


# --- the largest σ_max over a batch of small maps, pruning members that cannot hold it ------------

MemberProduct = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (members, vectors) -> products


@dataclass(frozen=True)
class BatchMaximum:
    """max over a batch of maps A_i of σ_max(A_i), from :func:`batch_max_singular_value`."""

    lower: torch.Tensor    # (batch,) top Ritz value θ_i ≤ σ_max(A_i), at the member's last check
    upper: torch.Tensor    # (batch,) θ_i + ‖A_iᴴu − θ_i v‖: σ_max(A_i) when θ_i tracks the top value
    active: torch.Tensor   # members left at the end; the holder of ``lower.max()`` is among them
    right: torch.Tensor    # (len(active), n) their top right Ritz vectors (unit norm)
    steps: int             # Lanczos steps taken by the longest-running member

    @property
    def best(self) -> int:
        """The member with the largest θ: max_i θ_i ≤ max_i σ_max(A_i) (a Rayleigh quotient)."""
        return int(self.lower.argmax())


class _Rows:
    """Per-member rows (members, capacity, dim) that follow pruning of members."""

    def __init__(self, like: torch.Tensor) -> None:
        self.rows = like.new_zeros(like.shape[0], 8, like.shape[1])
        self.size = 0

    def orthogonalise(self, w: torch.Tensor) -> torch.Tensor:
        """w minus its projection on the rows, twice (CGS2), as batched row-vector products."""
        q = self.rows[:, :self.size]
        for _ in range(2 if self.size else 0):
            w = w - ((w[:, None, :] @ q.mH) @ q)[:, 0]
        return w

    def append(self, w: torch.Tensor) -> None:
        if self.size == self.rows.shape[1]:
            self.rows = torch.cat([self.rows, torch.zeros_like(self.rows)], dim=1)
        self.rows[:, self.size] = w
        self.size += 1

    def keep(self, mask: torch.Tensor) -> None:
        self.rows = self.rows[mask, :max(self.size, 1)]


def batch_max_singular_value(matvec: MemberProduct, rmatvec: MemberProduct, start: torch.Tensor, *,
                             rtol: float, max_steps: int, check_every: int = 2, keep: int = 0,
                             margin: float = 0.0, reorthogonalise: bool = True) -> BatchMaximum:
    """max_i σ_max(A_i) over a batch of maps by Golub–Kahan–Lanczos on each, in lock-step.

    ``matvec(members, v)`` applies A_i for the listed members (a LongTensor) to the rows of v;
    ``rmatvec`` applies A_iᴴ. Every ``check_every`` steps each member's top Ritz value θ_i and
    residual ρ_i = ‖A_iᴴu − θ_i v‖ are read off the bidiagonal (no extra product); with
    L = max_i θ_i, a member with (θ_i + ρ_i)(1 + margin) < L is dropped — some singular value
    lies within ρ_i of θ_i, so if θ_i tracks A_i's top one (the premise of every Lanczos residual
    test) it cannot hold the maximum; ``margin`` covers rounding when the products are computed
    in lower precision than the answer needs — and the products shrink to the members left.
    Stops when every member left has θ_i + ρ_i ≤ (1 + rtol)·L, when at most ``keep`` are left,
    or after ``max_steps`` (with full reorthogonalisation, a Krylov space as large as the
    smaller side of A_i plus one makes θ_i exact). Without ``reorthogonalise`` only the
    three-term recurrence runs (Paige 1976: the top Ritz value still converges to σ_max; lost
    orthogonality only adds copies of converged values) and the Ritz vectors are approximate.
    """
    batch, n = start.shape
    real = start.real.dtype
    lower = torch.zeros(batch, dtype=real, device=start.device)
    upper = torch.full((batch,), torch.inf, dtype=real, device=start.device)
    members = torch.arange(batch, device=start.device)
    v = start / _row_norm(start)[:, None]
    V, U = _Rows(v), None
    alphas: list[torch.Tensor] = []
    betas: list[torch.Tensor] = []
    u_prev, floor, step = None, None, 0
    for step in range(1, max_steps + 1):
        V.append(v)
        w = matvec(members, v)
        if U is None:
            U = _Rows(w)
            floor = 64 * torch.finfo(real).eps * _row_norm(w)
        if u_prev is not None:
            w = w - betas[-1][:, None].to(w.dtype) * u_prev
        u, alpha = _normalised(U.orthogonalise(w) if reorthogonalise else w, floor)
        w = rmatvec(members, u) - alpha[:, None].to(u.dtype) * v
        v, beta = _normalised(V.orthogonalise(w) if reorthogonalise else w, floor)
        if reorthogonalise:
            U.append(u)
        alphas.append(alpha)
        betas.append(beta)
        u_prev = u
        last = step == max_steps or step >= n or bool((beta == 0).all())
        if not (last or step % check_every == 0):
            continue
        s, _, _, rel = _ritz(alphas, betas, 1, False)
        lower[members], upper[members] = s[:, 0], s[:, 0] * (1 + rel[:, 0])
        top = lower.max()
        if last or not bool((upper[members] > (1 + rtol) * top).any()) or len(members) <= keep:
            break
        live = upper[members] * (1 + margin) >= top
        if not bool(live.all()):
            members, v, u_prev, floor = members[live], v[live], u_prev[live], floor[live]
            alphas, betas = [a[live] for a in alphas], [b[live] for b in betas]
            V.keep(live)
            U.keep(live)
    _, _, q, _ = _ritz(alphas, betas, 1, False)
    right = (V.rows[:, :len(alphas)].mT @ q.to(start.dtype))[..., 0]
    return BatchMaximum(lower, upper, members, right / _row_norm(right)[:, None], step)

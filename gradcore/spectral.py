"""Spectral quantities of matrices and of matrix-free operators.

Spectral norm σ_max, spectral radius ρ, condition number and effective rank
(004 §3.3.3 Definition 3.3.6, Theorem 3.3.6; 002 "数值稳定性与最优控制的观点").
Dense quantities use ``torch.linalg``; matrix-free ones run Golub–Kahan–Lanczos
(Lanczos on JᵀJ) through products with J and Jᵀ when the Jacobian is too large to build.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import _validate as v
from . import lanczos
from .jacobian import JacobianOperator, TensorFn, jacobian_operator


def singular_values(m: torch.Tensor) -> torch.Tensor:
    """Singular values of a matrix, descending (``torch.linalg.svdvals``)."""
    m = v.matrix(m, "m")
    return v.finite_result(torch.linalg.svdvals(m), "m", _OVERFLOW.format(m.dtype))


_OVERFLOW = "its singular values overflow {}; convert it to float64 or scale it down"


def spectral_norm(m: torch.Tensor) -> float:
    """Largest singular value σ_max(m) = ‖m‖₂."""
    m = v.matrix(m, "m")
    return float(v.finite_result(torch.linalg.matrix_norm(m, ord=2), "m", _OVERFLOW.format(m.dtype)))


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
            unit = float(attempt().abs().max())
        except torch.linalg.LinAlgError as e:
            error = e
            continue
        if scale * unit == math.inf:
            v.fail("m", f"its spectral radius overflows float64 ({unit:.6g} × {scale:.6g})")
        return scale * unit
    v.fail("m", f"the eigenvalue iteration did not converge ({error})")


def condition_number(m: torch.Tensor) -> float:
    """σ_max / σ_min: ``inf`` for a singular matrix (the zero matrix included) and for one whose
    ratio exceeds the dtype's range (numerically singular)."""
    s = singular_values(m)
    # torch.linalg.cond gives 0/0 = NaN for the zero matrix; every singular matrix is ill-conditioned.
    return math.inf if float(s[-1]) == 0.0 else float(s[0] / s[-1])


def effective_rank(m: torch.Tensor, eps: float) -> int:
    """rank_ε(m) = max{k : σ_k ≥ ε} (004 §3.3.3 Definition 3.3.6)."""
    eps = v.real(eps, "eps", positive=True)
    return int((singular_values(m) >= eps).sum())


@dataclass(frozen=True)
class OperatorSpectrum:
    """k singular values of a Jacobian with their vectors and residuals."""

    values: torch.Tensor      # (k,), descending for "largest", ascending for "smallest"
    right: torch.Tensor       # (k, *x.shape): input directions v, J v = σ u
    left: torch.Tensor        # (k, *f(x).shape): output directions u
    residuals: torch.Tensor   # (k,): ‖JᵀJv − σ²v‖ / σ²
    steps: int                # Lanczos steps = products with J and with Jᵀ (of a block, with block > 1); 0 dense
    converged: bool           # every residual ≤ tol (else max_steps ran out)
    method: str = "lanczos"   # "lanczos", "block lanczos" or "dense" (J built whole, then LAPACK's SVD)


def default_tol(dtype: torch.dtype) -> float:
    """Residual tolerance: 1e-6 in float64 (σ to ≤ 5e-7 relative, whatever the gap), 1e-3 in float32.

    |θ² − σ²| ≤ ‖JᵀJv − θ²v‖ for some singular value σ (Bauer–Fike for a symmetric
    operator), so a residual of tol·θ² bounds the relative error of θ by tol/2. In
    float32 the products themselves carry ~√n·ε ≈ 1e-5 relative noise.
    """
    return 1e-6 if dtype in (torch.float64, torch.complex128) else 1e-3


DENSE_SIDE = 256
"""``method="auto"`` builds J whole when its smaller side is at most this (and it has at most
:data:`DENSE_ENTRIES` entries): one batched product over the smaller side and LAPACK's SVD then cost
less than the Lanczos steps (reports/benchmarks.md: the benchmark MLP at widths 256 and 512)."""
DENSE_ENTRIES = 1 << 22


def operator_singular_values(f: TensorFn, x: torch.Tensor, k: int = 1, *, which: str = "largest",
                             tol: float | None = None, max_steps: int | None = None,
                             seed: int = 0, block: int = 1, method: str = "auto") -> OperatorSpectrum:
    """Top (or bottom) ``k`` singular triplets of the Jacobian of ``f`` at ``x``: matrix-free, or from J
    built whole where it is small (``method``, below).

    Golub–Kahan–Lanczos (:mod:`gradcore.lanczos`: Lanczos on JᵀJ through products with J
    and Jᵀ, full reorthogonalisation) on the operator linearised once
    (:class:`gradcore.jacobian.JacobianOperator`). Stops when every wanted triplet has
    ‖JᵀJv − σ²v‖ ≤ tol·σ². ``which="smallest"`` ranges over the input space (σ_min of J
    when f(x) has at least as many entries as x; 0 otherwise) and converges slowly
    unless the bottom of the spectrum is well separated; ``max_steps`` defaults to the
    input size, where the Krylov space is the whole space and the answer is exact.

    ``block=b`` > 1 (``which="largest"``): block Lanczos, b vectors per product and
    ``max_steps`` block steps; it also finds a value of multiplicity ≤ b, which a single
    start vector sees once. On a CPU it measured slower than b = 1 at every width of
    reports/benchmarks.md: the steps fall by < b× (48 → 24 at b = 8 on the width-4096 MLP)
    while a block product costs 2–3 single ones there — autograd's backward of ``W @ x``
    batches into Wᵀ·(n × b), which MKL runs at 2–3× a matrix–vector product, against 1.5×
    for the forward W·(n × b). It pays where a product's cost is latency, not memory traffic.

    ``method="dense"`` (``which="largest"``, ``block=1``) builds J whole — one batched product
    over its smaller side through ``torch.func.vmap`` — and takes LAPACK's SVD: exact to rounding,
    with the same residuals, and faster than Lanczos on a small J. ``"auto"`` (the default) does
    so when ``min(f(x).numel(), x.numel()) ≤ DENSE_SIDE`` and J has at most ``DENSE_ENTRIES``
    entries, else runs Lanczos; ``"lanczos"`` always does. ``method`` of the result says which ran.
    """
    x = v.tensor(x, "x")
    if not x.is_floating_point():
        v.fail("x", f"expected a real floating-point tensor, got dtype {x.dtype}")
    k = v.integer(k, "k", minimum=1, maximum=x.numel())
    which = v.choice(which, "which", ("largest", "smallest"))
    tol = default_tol(x.dtype) if tol is None else v.real(tol, "tol", positive=True)
    max_steps = x.numel() if max_steps is None else v.integer(max_steps, "max_steps", minimum=k)
    block = v.integer(block, "block", minimum=1, maximum=x.numel())
    if block > 1 and which == "smallest":
        v.fail("block", "block Lanczos finds the largest values only; use block=1 for which='smallest'")
    method = v.choice(method, "method", ("auto", "lanczos", "dense"))
    if method == "dense" and (which == "smallest" or block > 1):
        v.fail("method", "method='dense' finds the largest values with block=1; use method='lanczos' for "
                         f"which={which!r}, block={block}")
    op = jacobian_operator(f, x)
    if method == "auto":
        method = "dense" if which == "largest" and block == 1 and _small(op) else "lanczos"
    return jacobian_spectrum(op, k, which=which, tol=tol, max_steps=max_steps, seed=seed, block=block, method=method)


def _small(op: JacobianOperator) -> bool:
    n, m = op.x.numel(), op.out_shape.numel()
    return min(n, m) <= DENSE_SIDE and n * m <= DENSE_ENTRIES


def _dense_spectrum(op: JacobianOperator, k: int, tol: float) -> OperatorSpectrum:
    """Top ``k`` singular triplets of J built whole (:meth:`JacobianOperator.matrix`) by LAPACK's SVD, with
    the residuals ‖JᵀJv − σ²v‖ / σ² of :func:`operator_singular_values` computed on that J."""
    jac = op.matrix()
    left, values, right = torch.linalg.svd(jac, full_matrices=False)
    kk = min(k, values.numel())
    values, right, left = values[:kk], right[:kk], left[:, :kk].mT
    resid = torch.linalg.vector_norm(jac.mT @ (jac @ right.mT) - right.mT * values ** 2, dim=0)
    rel = lanczos.relative_residual(resid, values ** 2)
    return OperatorSpectrum(values, right.reshape(kk, *op.x.shape), left.reshape(kk, *op.out_shape), rel, 0,
                            bool((rel <= tol).all()), "dense")


def jacobian_spectrum(op: JacobianOperator, k: int, *, which: str, tol: float, max_steps: int,
                      seed: int, block: int = 1, method: str = "lanczos") -> OperatorSpectrum:
    """``operator_singular_values`` on an operator already linearised (arguments checked there;
    ``method`` is "lanczos" or "dense", "auto" resolved).

    ``block`` > 1 (top end only) runs block Golub–Kahan–Lanczos, ``block`` vectors per
    product through ``torch.func.vmap`` of the linearised jvp and of the vjp.
    """
    x = op.x
    out_shape = op.out_shape
    if not bool(torch.isfinite(op.value).all()):
        v.fail("f", "f(x) contains NaN or infinite values")
    if method == "dense":
        return _dense_spectrum(op, k, tol)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    if which == "smallest" or block == 1:
        start = torch.randn(1, x.numel(), generator=gen, dtype=x.dtype).to(x.device)
        trip = lanczos.bidiagonalise(lambda u: op.matvec(u.reshape(x.shape)).reshape(1, -1),
                                     lambda w: op.rmatvec(w.reshape(out_shape)).reshape(1, -1),
                                     start, k=k, tol=tol, max_steps=min(max_steps, x.numel()),
                                     smallest=which == "smallest", check_every=2)
    else:
        trip = _block_spectrum(op, k, block, tol, max_steps, gen)
    return OperatorSpectrum(trip.values[0], trip.right[0].reshape(-1, *x.shape),
                            trip.left[0].reshape(-1, *out_shape), trip.residuals[0], trip.steps,
                            trip.converged, "lanczos" if block == 1 or which == "smallest" else "block lanczos")


def _block_spectrum(op: JacobianOperator, k: int, b: int, tol: float, max_steps: int,
                    gen: torch.Generator) -> lanczos.Triplets:
    x, out_shape = op.x, op.out_shape
    # the block as the last, contiguous axis: vmap then hands every layer's product to BLAS as one
    # matrix times an (n × b) one, the layout MKL runs fastest (1.5–2× the (b × n)-rows one at 1024)
    matmat = _columns(op.matvec, x.shape, b)
    rmatmat = _columns(op.rmatvec, out_shape, b)
    start = torch.randn(1, b, x.numel(), generator=gen, dtype=x.dtype).to(x.device)
    steps = max(1, min(max_steps, -(-x.numel() // b)))
    return lanczos.block_bidiagonalise(matmat, rmatmat, start, k=k, tol=tol, max_steps=steps)


def _columns(product, shape: torch.Size, b: int) -> lanczos.Product:
    """``product`` on a block of b rows (1, b, numel), run by vmap over the block as a last axis."""
    batched = torch.func.vmap(product, in_dims=-1, out_dims=-1)

    def call(rows: torch.Tensor) -> torch.Tensor:
        out = batched(rows[0].mT.contiguous().reshape(*shape, b))
        return out.reshape(-1, b).mT[None]
    return call


def operator_spectral_norm(f: TensorFn, x: torch.Tensor, *, iters: int = 200,
                           tol: float = 1e-7, seed: int = 0, method: str = "auto") -> float:
    """σ_max of the Jacobian of ``f`` at ``x`` (``operator_singular_values``: Lanczos, or J built
    whole when small unless ``method="lanczos"``).

    Lanczos stops when ‖JᵀJv − σ²v‖ ≤ tol·σ² or after ``iters`` steps (one product with
    J and one with Jᵀ each), so ``tol`` bounds the relative error by tol/2.
    """
    iters = v.integer(iters, "iters", minimum=1)
    tol = v.real(tol, "tol", positive=True)
    return float(operator_singular_values(f, x, 1, tol=tol, max_steps=iters, seed=seed, method=method).values[0])


def operator_condition_number(f: TensorFn, x: torch.Tensor, *, tol: float | None = None,
                              max_steps: int | None = None, seed: int = 0) -> float:
    """σ_max / σ_min of the Jacobian of ``f`` at ``x`` (``inf`` when singular), matrix-free.

    σ_min is the slow end for Lanczos; see ``operator_singular_values(which="smallest")``.
    """
    top = operator_singular_values(f, x, 1, tol=tol, max_steps=max_steps, seed=seed).values[0]
    bottom = operator_singular_values(f, x, 1, which="smallest", tol=tol, max_steps=max_steps,
                                      seed=seed).values[0]
    return float(top / bottom) if bottom > 0 else math.inf

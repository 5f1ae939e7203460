"""Matrix-free singular values (Golub–Kahan–Lanczos) against dense jacrev + svdvals.

Tolerances: the residual stop ‖JᵀJv − σ²v‖ ≤ tol·σ² bounds the relative error of σ by
tol/2 (Bauer–Fike), so the checks use the default tol of each dtype (1e-6 in float64,
1e-3 in float32) plus the dense reference's own rounding (~√n·ε).
"""
import math

import pytest
import torch
from torch import nn

from gradcore import GradcoreInputError, jacobian, lanczos, spectral

RTOL = {torch.float64: 1e-6, torch.float32: 2e-3}


def _mlp(n_in: int, n_out: int, dtype: torch.dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    W1 = torch.randn(64, n_in, generator=g, dtype=torch.float64).to(dtype) / n_in ** 0.5
    W2 = torch.randn(n_out, 64, generator=g, dtype=torch.float64).to(dtype) / 8
    x = torch.randn(n_in, generator=g, dtype=torch.float64).to(dtype)
    return (lambda v: W2 @ torch.tanh(W1 @ v)), x


@pytest.mark.parametrize("method", ["lanczos", "dense"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_top_k_values_and_vectors_match_dense(dtype, method):
    f, x = _mlp(40, 50, dtype)
    J = jacobian.jacobian(f, x).double()
    dense = torch.linalg.svdvals(J)
    r = spectral.operator_singular_values(f, x, 3, method=method)
    assert r.converged and r.values.dtype == dtype and r.method == method
    torch.testing.assert_close(r.values.double(), dense[:3], rtol=RTOL[dtype], atol=0)
    v, u = r.right[0].double(), r.left[0].double()
    assert v.shape == x.shape and u.shape == (50,)
    assert math.isclose(float(v.norm()), 1.0, rel_tol=1e-5)
    # the pair is a singular pair of J: J v = σ u, and the residual that stopped it is real
    assert float((J @ v - dense[0] * u).norm()) <= 10 * RTOL[dtype] * float(dense[0])
    resid = float((J.T @ (J @ v) - r.values[0].double() ** 2 * v).norm() / r.values[0].double() ** 2)
    assert resid <= spectral.default_tol(dtype) * 1.01 + 1e-5


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_smallest_and_condition_number_match_dense(dtype):
    g = torch.Generator().manual_seed(1)
    A = (torch.randn(30, 30, generator=g, dtype=torch.float64) / 30 ** 0.5 + 2 * torch.eye(30, dtype=torch.float64)).to(dtype)
    f = lambda v: torch.tanh(A @ v)  # noqa: E731
    x = torch.randn(30, generator=g, dtype=torch.float64).to(dtype) * 0.3
    dense = torch.linalg.svdvals(jacobian.jacobian(f, x).double())
    low = spectral.operator_singular_values(f, x, 2, which="smallest")
    assert low.method == "lanczos"           # "auto" builds J whole for the largest values only
    torch.testing.assert_close(low.values.double(), dense.flip(0)[:2], rtol=RTOL[dtype], atol=0)
    cond = spectral.operator_condition_number(f, x)
    assert math.isclose(cond, float(dense[0] / dense[-1]), rel_tol=2 * RTOL[dtype])


def test_the_forward_is_linearised_once():
    calls = []
    f0, x = _mlp(30, 30, torch.float64)

    def f(v):
        calls.append(1)
        return f0(v)
    r = spectral.operator_singular_values(f, x, 2, tol=1e-12, method="lanczos")
    assert r.steps > 5 and len(calls) == 1
    assert spectral.operator_singular_values(f, x, 2, method="dense").steps == 0 and len(calls) == 2


def test_a_low_rank_map_stops_on_its_invariant_subspace():
    g = torch.Generator().manual_seed(2)
    U, V = torch.randn(20, 2, generator=g, dtype=torch.float64), torch.randn(20, 2, generator=g, dtype=torch.float64)
    f = lambda v: U @ (V.T @ v)  # noqa: E731
    r = spectral.operator_singular_values(f, torch.zeros(20, dtype=torch.float64), 2, method="lanczos")
    torch.testing.assert_close(r.values, torch.linalg.svdvals(U @ V.T)[:2], rtol=1e-12, atol=0)
    assert r.steps <= 3 and r.converged


def test_running_out_of_steps_is_reported_not_hidden():
    f, x = _mlp(40, 40, torch.float64)
    r = spectral.operator_singular_values(f, x, 1, tol=1e-14, max_steps=2, method="lanczos")
    assert not r.converged and r.steps == 2 and r.residuals[0] > 1e-14


@pytest.mark.parametrize("padding_mode,stride", [("zeros", 1), ("zeros", 2), ("circular", 1)])
def test_zero_padded_and_strided_convolutions_exactly(padding_mode, stride):
    g = torch.Generator().manual_seed(4)
    conv = nn.Conv2d(3, 4, 3, stride=stride, padding=1, padding_mode=padding_mode, bias=False, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g, dtype=torch.float64))
    x = torch.zeros(1, 3, 7, 6, dtype=torch.float64)
    dense = torch.linalg.svdvals(jacobian.jacobian(conv, x).detach())
    # a circular conv's values come in pairs (K̂(−u,−v) = conj K̂(u,v)); one Krylov start
    # vector sees one copy of a repeated value (see gradcore.lanczos), so only the top there
    k = 1 if padding_mode == "circular" else 2
    r = spectral.operator_singular_values(conv, x, k, method="lanczos")
    torch.testing.assert_close(r.values, dense[:k], rtol=1e-6, atol=0)


def test_batched_bidiagonalisation_matches_svdvals_per_member():
    g = torch.Generator().manual_seed(5)
    A = torch.randn(6, 12, 9, generator=g, dtype=torch.complex128)
    t = lanczos.bidiagonalise(lambda v: (A @ v[..., None])[..., 0], lambda u: (A.mH @ u[..., None])[..., 0],
                              torch.randn(6, 9, generator=g, dtype=torch.complex128), k=2, tol=1e-12, max_steps=9)
    torch.testing.assert_close(t.values, torch.linalg.svdvals(A)[:, :2], rtol=1e-10, atol=0)


def test_operator_spectral_norm_keeps_its_signature_and_meaning():
    f, x = _mlp(16, 8, torch.float64)
    dense = spectral.spectral_norm(jacobian.jacobian(f, x))
    assert math.isclose(spectral.operator_spectral_norm(f, x), dense, rel_tol=1e-7)
    assert math.isclose(spectral.operator_spectral_norm(f, x, iters=500, tol=1e-9), dense, rel_tol=1e-9)
    assert math.isclose(spectral.operator_spectral_norm(f, x, iters=500, tol=1e-9, method="lanczos"), dense,
                        rel_tol=1e-9)


# --- J built whole where it is small (method="dense", and "auto" below DENSE_SIDE) ---------------

@pytest.mark.parametrize("n_in,n_out", [(40, 50), (50, 40), (300, 3), (3, 300)])
def test_auto_builds_small_jacobians_whole_and_agrees_with_lanczos(n_in, n_out):
    f, x = _mlp(n_in, n_out, torch.float64, seed=7)
    k = min(2, n_in, n_out)
    auto = spectral.operator_singular_values(f, x, k)
    lanc = spectral.operator_singular_values(f, x, k, method="lanczos", tol=1e-12)
    assert auto.method == "dense" and auto.steps == 0 and auto.converged
    assert auto.right.shape == (k, n_in) and auto.left.shape == (k, n_out)
    torch.testing.assert_close(auto.values, lanc.values, rtol=1e-11, atol=0)
    J = jacobian.jacobian(f, x)
    # the pairs are J's: J v = σ u, and the residual is the one Lanczos reports, ~ε here
    torch.testing.assert_close(J @ auto.right.T, auto.left.T * auto.values, rtol=0, atol=1e-12)
    assert float(auto.residuals.max()) < 1e-12


def test_auto_runs_lanczos_beyond_the_dense_side():
    n = spectral.DENSE_SIDE + 1
    f, x = _mlp(n, n, torch.float64)
    assert spectral.operator_singular_values(f, x, 1).method == "lanczos"
    assert spectral.operator_singular_values(f, x, 1, block=2).method == "block lanczos"
    g, y = _mlp(n, spectral.DENSE_SIDE, torch.float64)
    assert spectral.operator_singular_values(g, y, 1).method == "dense"


def test_dense_reports_a_non_finite_jacobian():
    x = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(GradcoreInputError, match="^f: its Jacobian at x has NaN"):
        spectral.operator_singular_values(torch.sqrt, x, 1, method="dense")


@pytest.mark.parametrize("call,argument", [
    (lambda: spectral.operator_singular_values(torch.tanh, torch.ones(3), 0), "k"),
    (lambda: spectral.operator_singular_values(torch.tanh, torch.ones(3), 4), "k"),
    (lambda: spectral.operator_singular_values(torch.tanh, torch.ones(3), which="middle"), "which"),
    (lambda: spectral.operator_singular_values(torch.tanh, torch.ones(3), tol=-1.0), "tol"),
    (lambda: spectral.operator_singular_values(torch.tanh, torch.ones(3), 2, max_steps=1), "max_steps"),
    (lambda: spectral.operator_singular_values(torch.tanh, torch.ones(3, dtype=torch.complex64)), "x"),
    (lambda: spectral.operator_singular_values(torch.log, -torch.ones(3)), "f"),
    (lambda: spectral.operator_singular_values("f", torch.ones(3)), "f"),
    (lambda: spectral.operator_singular_values(torch.tanh, torch.ones(3), method="svd"), "method"),
    (lambda: spectral.operator_singular_values(torch.tanh, torch.ones(3), which="smallest", method="dense"), "method"),
    (lambda: spectral.operator_singular_values(torch.tanh, torch.ones(3), block=2, method="dense"), "method"),
])
def test_bad_input_names_the_argument(call, argument):
    with pytest.raises(GradcoreInputError, match=f"^{argument}:"):
        call()


# --- block Golub–Kahan–Lanczos (issue 19) ---------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_block_lanczos_top_k_matches_dense(dtype):
    f, x = _mlp(40, 50, dtype, seed=3)
    J = jacobian.jacobian(f, x).double()
    dense = torch.linalg.svdvals(J)
    r = spectral.operator_singular_values(f, x, 3, block=5)
    assert r.converged and r.values.dtype == dtype
    torch.testing.assert_close(r.values.double(), dense[:3], rtol=RTOL[dtype], atol=0)
    v, u = r.right[0].double(), r.left[0].double()
    # the certificate is the single-vector one: ‖JᵀJv − σ²v‖ ≤ tol·σ², checked on the dense J
    resid = float((J.T @ (J @ v) - r.values[0].double() ** 2 * v).norm() / r.values[0].double() ** 2)
    assert resid <= spectral.default_tol(dtype) * 1.01 + 1e-5
    assert float((J @ v - dense[0] * u).norm()) <= 10 * RTOL[dtype] * float(dense[0])


def test_block_lanczos_finds_both_copies_of_a_repeated_value():
    # a circular conv's singular values come in conjugate pairs: one start vector sees one copy
    # (test_zero_padded_and_strided_convolutions_exactly asks it for k = 1 only); a block of 2 sees both
    g = torch.Generator().manual_seed(4)
    conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular", bias=False, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g, dtype=torch.float64))
    x = torch.zeros(1, 3, 7, 6, dtype=torch.float64)
    dense = torch.linalg.svdvals(jacobian.jacobian(conv, x).detach())
    assert math.isclose(float(dense[0]), float(dense[1]), rel_tol=1e-12)
    r = spectral.operator_singular_values(conv, x, 2, block=4, tol=1e-10)
    torch.testing.assert_close(r.values, dense[:2], rtol=1e-9, atol=0)


def test_block_lanczos_on_a_low_rank_map_and_a_batch():
    g = torch.Generator().manual_seed(2)
    U, V = torch.randn(20, 2, generator=g, dtype=torch.float64), torch.randn(20, 2, generator=g, dtype=torch.float64)
    r = spectral.operator_singular_values(lambda v: U @ (V.T @ v), torch.zeros(20, dtype=torch.float64), 2, block=3)
    torch.testing.assert_close(r.values, torch.linalg.svdvals(U @ V.T)[:2], rtol=1e-10, atol=0)
    assert r.converged
    A = torch.randn(6, 12, 9, generator=g, dtype=torch.complex128)
    t = lanczos.block_bidiagonalise(lambda v: (A[:, None] @ v[..., None])[..., 0],
                                    lambda u: (A.mH[:, None] @ u[..., None])[..., 0],
                                    torch.randn(6, 3, 9, generator=g, dtype=torch.complex128),
                                    k=2, tol=1e-12, max_steps=3)
    torch.testing.assert_close(t.values, torch.linalg.svdvals(A)[:, :2], rtol=1e-10, atol=0)


@pytest.mark.parametrize("call", [
    lambda: spectral.operator_singular_values(torch.tanh, torch.ones(3), block=0),
    lambda: spectral.operator_singular_values(torch.tanh, torch.ones(3), block=4),
    lambda: spectral.operator_singular_values(torch.tanh, torch.ones(3), which="smallest", block=2),
])
def test_bad_block_names_the_argument(call):
    with pytest.raises(GradcoreInputError, match="^block:"):
        call()


# --- the largest σ_max over a batch, pruning members that cannot hold it (issue 19) ---------------

def _batch(count: int, rows: int, cols: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(count, rows, cols, generator=g, dtype=torch.float64)
    b = torch.randn(count, rows, cols, generator=g, dtype=torch.float64)
    return torch.complex(a, b) * torch.linspace(1.0, 1.3, count, dtype=torch.float64)[:, None, None]


@pytest.mark.parametrize("rows,cols", [(12, 12), (7, 15), (15, 7)])
@pytest.mark.parametrize("reorthogonalise", [True, False])
def test_batch_maximum_matches_svdvals_and_prunes_only_smaller_members(rows, cols, reorthogonalise):
    mats = _batch(40, rows, cols, seed=rows * cols)
    exact = torch.linalg.matrix_norm(mats, ord=2)
    start = torch.randn(40, cols, dtype=torch.complex128, generator=torch.Generator().manual_seed(1))
    res = lanczos.batch_max_singular_value(lambda i, v: (mats[i] @ v[..., None])[..., 0],
                                           lambda i, u: (mats[i].mH @ u[..., None])[..., 0], start,
                                           rtol=1e-10, max_steps=min(cols, rows + 1),
                                           reorthogonalise=reorthogonalise)
    assert res.best == int(exact.argmax())
    assert abs(float(res.lower[res.best]) / float(exact.max()) - 1) <= 1e-9
    assert bool((res.lower <= exact * (1 + 1e-12)).all())           # Ritz values are Rayleigh quotients
    assert len(res.active) < 40                                      # the scaled batch has a clear leader
    dropped = torch.ones(40, dtype=torch.bool)
    dropped[res.active] = False
    assert bool((exact[dropped] < exact.max()).all())
    if reorthogonalise:   # the returned vector is the top right singular vector
        v = res.right[int((res.active == res.best).nonzero()[0, 0])]
        assert float(torch.linalg.vector_norm(mats[res.best] @ v)) == pytest.approx(float(exact.max()), rel=1e-9)


# --- reorthogonalisation: a second Gram–Schmidt pass only where the first was not enough -----------

class _CountMatmuls(torch.overrides.TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in ("matmul", "__matmul__"):
            self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("inside,passes", [(1e-3, 1), (1 - 1e-12, 2)])
def test_reorthogonalisation_runs_its_second_pass_only_when_needed(inside, passes):
    # DGKS (1976): one pass leaves w orthogonal to rounding unless it removed most of w; a w almost
    # inside the basis (cancellation) needs the second pass, and both leave it orthogonal
    g = torch.Generator().manual_seed(6)
    q = torch.linalg.qr(torch.randn(200, 12, generator=g, dtype=torch.float64))[0].mT[None]   # (1, 12, 200)
    out = torch.randn(200, generator=g, dtype=torch.float64)
    out = out - q[0].T @ (q[0] @ out)
    w = inside * (q[0].T @ torch.randn(12, generator=g, dtype=torch.float64)) + (1 - inside) * out / out.norm()
    with _CountMatmuls() as counter:
        got = lanczos._cgs2(q, w[None, :, None])
    assert counter.count == 2 * passes
    assert float((q @ got).abs().max()) <= 1e-15 * float(w.norm()) * 200

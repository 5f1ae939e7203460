"""gradcore.jacobian and gradcore.spectral against dense references and closed forms."""
import math

import pytest
import torch

from gradcore import GradcoreInputError, jacobian as jac, spectral


def test_jacobian_of_a_linear_map_is_its_matrix(device):
    W = torch.randn(5, 3, dtype=torch.float64, device=device)
    x = torch.randn(3, dtype=torch.float64, device=device)
    assert torch.allclose(jac.jacobian(lambda v: W @ v, x), W)


def test_jacobian_follows_autograds_row_convention(device):
    W = torch.randn(4, 4, dtype=torch.float64, device=device)
    x = torch.randn(4, dtype=torch.float64, device=device)
    J = jac.jacobian(lambda v: torch.tanh(W @ v), x)
    expected = torch.diag(1 - torch.tanh(W @ x) ** 2) @ W
    assert torch.allclose(J, expected)


def test_batched_and_chain_jacobians(device):
    W = torch.randn(3, 3, dtype=torch.float64, device=device)
    xs = torch.randn(6, 3, dtype=torch.float64, device=device)
    Js = jac.batched_jacobian(lambda v: torch.sin(W @ v), xs)
    assert Js.shape == (6, 3, 3)
    assert torch.allclose(Js[2], jac.jacobian(lambda v: torch.sin(W @ v), xs[2]))
    layers = [lambda v: W @ v, torch.tanh]
    J1, J2 = jac.chain_jacobians(layers, xs[0])
    assert torch.allclose(J2 @ J1, jac.jacobian(lambda v: torch.tanh(W @ v), xs[0]))


def test_operator_products_match_the_dense_jacobian(device):
    W = torch.randn(4, 6, dtype=torch.float64, device=device)
    f = lambda v: torch.tanh(W @ v)  # noqa: E731
    x = torch.randn(6, dtype=torch.float64, device=device)
    J = jac.jacobian(f, x)
    op = jac.jacobian_operator(f, x)
    u, w = torch.randn(6, dtype=torch.float64, device=device), torch.randn(4, dtype=torch.float64, device=device)
    assert torch.allclose(op.matvec(u), J @ u)
    assert torch.allclose(op.rmatvec(w), J.T @ w)


def test_spectral_quantities_on_a_known_matrix(device):
    Q, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64, device=device))
    s = torch.tensor([3.0, 2.0, 0.5, 1e-4], dtype=torch.float64, device=device)
    M = Q @ torch.diag(s) @ Q.T
    assert torch.allclose(spectral.singular_values(M), s)
    assert math.isclose(spectral.spectral_norm(M), 3.0, rel_tol=1e-12)
    assert math.isclose(spectral.spectral_radius(M), 3.0, rel_tol=1e-9)
    assert math.isclose(spectral.condition_number(M), 3e4, rel_tol=1e-6)
    assert spectral.effective_rank(M, 0.4) == 3


def test_spectral_radius_below_norm_for_a_non_normal_matrix():
    M = torch.tensor([[0.5, 10.0], [0.0, 0.5]], dtype=torch.float64)
    assert math.isclose(spectral.spectral_radius(M), 0.5, rel_tol=1e-12)
    assert spectral.spectral_norm(M) > 10


def test_matrix_free_spectral_norm_matches_dense(device):
    g = torch.Generator().manual_seed(1)
    W1 = torch.randn(32, 16, generator=g, dtype=torch.float64).to(device)
    W2 = torch.randn(8, 32, generator=g, dtype=torch.float64).to(device)
    f = lambda v: W2 @ torch.tanh(W1 @ v)  # noqa: E731
    x = torch.randn(16, generator=g, dtype=torch.float64).to(device)
    dense = spectral.spectral_norm(jac.jacobian(f, x))
    assert math.isclose(spectral.operator_spectral_norm(f, x, iters=2000, tol=1e-12), dense, rel_tol=1e-6)


@pytest.mark.parametrize("call,argument", [
    (lambda: spectral.spectral_norm(torch.ones(3)), "m"),
    (lambda: spectral.spectral_radius(torch.ones(2, 3)), "m"),
    (lambda: spectral.spectral_norm(torch.tensor([[1.0, float("nan")]])), "m"),
    (lambda: spectral.effective_rank(torch.eye(2), 0.0), "eps"),
    (lambda: spectral.singular_values(torch.empty(0, 3)), "m"),
    (lambda: spectral.spectral_norm(torch.eye(2, dtype=torch.int64)), "m"),
    (lambda: jac.jacobian("not a function", torch.ones(2)), "f"),
    (lambda: jac.jacobian(torch.tanh, [1.0, 2.0]), "x"),
    (lambda: jac.chain_jacobians([], torch.ones(2)), "layers"),
    (lambda: spectral.operator_spectral_norm(torch.tanh, torch.ones(2), iters=0), "iters"),
])
def test_bad_input_names_the_argument(call, argument):
    with pytest.raises(GradcoreInputError, match=f"^{argument}:"):
        call()


def test_spectral_radius_is_scale_invariant_and_robust_to_tiny_entries():
    M = torch.tensor([[0.5, 10.0], [0.0, 0.5]], dtype=torch.float64)
    assert math.isclose(spectral.spectral_radius(1e-300 * M), 0.5e-300, rel_tol=1e-12)
    assert math.isclose(spectral.spectral_radius(1e300 * M), 0.5e300, rel_tol=1e-12)
    assert spectral.spectral_radius(torch.zeros(3, 3)) == 0.0


def test_spectral_radius_survives_lapack_non_convergence():
    tiny = 1.5e-207
    M = torch.tensor([[tiny, 1.0, tiny], [1.0, tiny, tiny], [tiny, tiny, tiny]], dtype=torch.float64)
    assert math.isclose(spectral.spectral_radius(M), 1.0, rel_tol=1e-12)
    assert math.isclose(spectral.spectral_radius(torch.triu(M) + 0.5 * torch.eye(3, dtype=torch.float64)),
                        0.5, rel_tol=1e-12)


def test_a_search_bound_reaches_structured_worst_cases_random_draws_miss():
    """Value clipping at τ = 1: ‖clip(g)‖ is largest (√d) when every coordinate is large."""
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    from gradcore.measure.candidates import structured_vectors

    from gradcore.measure.search import maximize

    d = 16
    objective = lambda g: float(np.linalg.norm(np.clip(g, -1, 1)))  # noqa: E731
    draws = hnp.arrays(np.float64, (d,), elements=st.floats(-10, 10, width=64))
    plain = maximize(draws, objective, max_examples=30)
    found = maximize(draws, objective, candidates=structured_vectors(d), max_examples=30)
    assert found.value == pytest.approx(4.0) and found.source.startswith(("all-ones", "alternating"))
    m = found.bound(dtype="float64", sizes={"d": d})
    assert (m.kind.value, m.direction, m.witness) == ("search", "lower", found.source)
    assert found.value >= plain.value

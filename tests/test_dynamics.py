"""Unit tests for gradcore.dynamics: Euler matrix, trajectory, stability and the exact step bound."""
import pytest
import torch

from gradcore import GradcoreInputError
from gradcore.dynamics import euler_iteration_matrix, euler_stable, euler_trajectory, max_stable_step


def test_iteration_matrix_and_trajectory(device):
    A = torch.tensor([[-1.0, 2.0], [0.0, -3.0]], dtype=torch.float64, device=device)
    M = euler_iteration_matrix(A, 0.1)
    torch.testing.assert_close(M, torch.tensor([[0.9, 0.2], [0.0, 0.7]], dtype=torch.float64, device=device))
    x0 = torch.tensor([1.0, 1.0], dtype=torch.float64, device=device)
    xs = euler_trajectory(A, x0, 0.1, 5)
    assert xs.shape == (6, 2)
    torch.testing.assert_close(xs[-1], torch.linalg.matrix_power(M, 5) @ x0)


def test_max_stable_step_closed_forms(device):
    # real eigenvalue -a: h* = 2/a; complex pair -1 ± 3i: h* = 2/10
    A = torch.diag(torch.tensor([-1.0, -4.0], dtype=torch.float64, device=device))
    assert max_stable_step(A) == pytest.approx(0.5)
    B = torch.tensor([[-1.0, 3.0], [-3.0, -1.0]], dtype=torch.float64, device=device)
    assert max_stable_step(B) == pytest.approx(0.2)
    assert euler_stable(B, 0.19) and not euler_stable(B, 0.21)
    assert max_stable_step(torch.tensor([[0.0, 1.0], [-1.0, 0.0]], device=device)) == 0.0


def test_stability_agrees_with_dense_spectral_radius(device):
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        A = (torch.randn(5, 5, generator=g, dtype=torch.float64) - 3 * torch.eye(5, dtype=torch.float64)).to(device)
        hs = max_stable_step(A)
        if hs == 0.0:
            continue
        for h, want in [(0.97 * hs, True), (1.03 * hs, False)]:
            rho = torch.linalg.eigvals(torch.eye(5, dtype=A.dtype, device=device) + h * A).abs().max()
            assert euler_stable(A, h) == want == bool(rho < 1)


@pytest.mark.parametrize("call", [
    lambda: euler_iteration_matrix(torch.ones(2, 3), 0.1),
    lambda: euler_iteration_matrix(torch.eye(2), 0.0),
    lambda: euler_trajectory(torch.eye(2), torch.ones(3), 0.1, 2),
    lambda: euler_trajectory(torch.eye(2), torch.ones(2), 0.1, 0),
    lambda: euler_trajectory(torch.eye(2), torch.ones(2, dtype=torch.float64), 0.1, 1),
    lambda: max_stable_step(torch.tensor([[float("inf")]])),
    lambda: euler_stable(torch.eye(2), -1.0),
])
def test_bad_inputs(call):
    with pytest.raises(GradcoreInputError):
        call()

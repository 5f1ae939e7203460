"""Unit tests for gradcore.adjoint: costates vs autograd and vs a hand-built linear case."""
import pytest
import torch

from gradcore import GradcoreInputError
from gradcore.adjoint import backprop_state_gradients, costates, forward_states


def _mlp(device, dtype, depth=4, width=6):
    torch.manual_seed(0)
    lins = [torch.nn.Linear(width, width).to(device=device, dtype=dtype) for _ in range(depth)]
    return [lambda x, lin=lin: torch.tanh(lin(x)) for lin in lins]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_costates_match_autograd(device, dtype):
    layers = _mlp(device, dtype)
    x0 = torch.randn(6, dtype=dtype, device=device)
    loss = lambda x: 0.5 * x.pow(2).sum()
    sol = costates(layers, x0, loss)
    ref = backprop_state_gradients(layers, x0, loss)
    assert len(sol.costates) == len(ref) == 5 and len(sol.jacobians) == 4
    for lam, g in zip(sol.costates, ref):
        torch.testing.assert_close(lam, g)
    torch.testing.assert_close(sol.costates[-1], sol.states[-1])  # ∇(½‖x‖²) = x


def test_linear_costates_closed_form(device):
    W = torch.tensor([[2.0, 1.0], [0.0, 0.5]], dtype=torch.float64, device=device)
    c = torch.tensor([1.0, -1.0], dtype=torch.float64, device=device)
    sol = costates([lambda x: W @ x] * 3, torch.ones(2, dtype=torch.float64, device=device), lambda x: c @ x)
    for t, lam in enumerate(sol.costates):
        torch.testing.assert_close(lam, torch.linalg.matrix_power(W.T, 3 - t) @ c)
    assert len(forward_states([lambda x: W @ x] * 3, torch.ones(2, dtype=torch.float64, device=device))) == 4


@pytest.mark.parametrize("call", [
    lambda: costates([], torch.ones(2), lambda x: x.sum()),
    lambda: costates([lambda x: x], torch.ones(2), "loss"),
    lambda: costates([lambda x: x], torch.ones(2), lambda x: x),
    lambda: costates([3], torch.ones(2), lambda x: x.sum()),
    lambda: costates([lambda x: x], torch.tensor([float("nan")]), lambda x: x.sum()),
    lambda: backprop_state_gradients([], torch.ones(2), lambda x: x.sum()),
])
def test_bad_inputs(call):
    with pytest.raises(GradcoreInputError):
        call()

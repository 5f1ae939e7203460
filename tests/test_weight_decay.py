"""Unit tests for gradcore.weight_decay against torch.optim.SGD and autograd."""
import pytest
import torch

from gradcore import GradcoreInputError
from gradcore.weight_decay import decay_only, decay_step, l2_penalty


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_decay_step_matches_torch_sgd(device, dtype):
    W = torch.randn(4, 5, dtype=dtype, device=device)
    grad = torch.randn(4, 5, dtype=dtype, device=device)
    p = torch.nn.Parameter(W.clone())
    p.grad = grad.clone()
    torch.optim.SGD([p], lr=0.1, weight_decay=0.3).step()
    assert torch.equal(decay_step(W, grad, 0.1, 0.3), p.detach())


def test_penalty_gradient_is_lambda_w(device):
    W = torch.randn(3, 3, dtype=torch.float64, device=device, requires_grad=True)
    (g,) = torch.autograd.grad(l2_penalty(W, 0.7), W)
    torch.testing.assert_close(g, 0.7 * W.detach())
    W = W.detach()
    assert float(l2_penalty(W, 0.7)) == pytest.approx(0.35 * float(torch.linalg.matrix_norm(W) ** 2))


def test_decay_only_geometric(device):
    W = torch.randn(3, 3, dtype=torch.float64, device=device)
    torch.testing.assert_close(decay_only(W, 0.5, 0.2, 7), 0.9 ** 7 * W)
    assert torch.equal(decay_only(W, 0.5, 0.2, 0), W)


@pytest.mark.parametrize("call", [
    lambda: decay_step(torch.ones(2), torch.ones(3), 0.1, 0.1),
    lambda: decay_step(torch.ones(2), torch.ones(2, dtype=torch.float64), 0.1, 0.1),
    lambda: decay_step(torch.ones(2), torch.ones(2), 0.0, 0.1),
    lambda: decay_step(torch.ones(2), torch.ones(2), 0.1, -0.1),
    lambda: decay_step(torch.tensor([float("nan")]), torch.ones(1), 0.1, 0.1),
    lambda: decay_only(torch.ones(2), 0.1, 0.1, -1),
    lambda: l2_penalty(torch.empty(0), 0.1),
])
def test_bad_inputs(call):
    with pytest.raises(GradcoreInputError):
        call()

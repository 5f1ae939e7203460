"""Unit tests of gradcore.chains against hand-built torch networks and autograd."""
import pytest
import torch
from torch import nn

from gradcore import GradcoreInputError
from gradcore import chains as C
from gradcore import spectral


def test_feedforward_structure(device):
    m = C.feedforward(3, 8, "tanh", "xavier_normal", in_features=5, device=device, dtype=torch.float64)
    lins = C.linears(m)
    assert len(m) == 6 and [tuple(l.weight.shape) for l in lins] == [(8, 5), (8, 8), (8, 8)]
    assert all(l.bias is None and l.weight.dtype == torch.float64 for l in lins)
    assert len(C.blocks(m)) == 3


def test_feedforward_matches_manual_forward(device):
    torch.manual_seed(0)
    m = C.feedforward(4, 6, "sigmoid", "kaiming_normal", bias=True, device=device, dtype=torch.float64)
    x = torch.randn(3, 6, device=device, dtype=torch.float64)
    h, zs = x, []
    for lin in C.linears(m):
        zs.append(h @ lin.weight.T + lin.bias)
        h = torch.sigmoid(zs[-1])
    torch.testing.assert_close(m(x), h)
    for z, ref in zip(C.pre_activations(m, x), zs):
        torch.testing.assert_close(z, ref)
    hs = C.hidden_states(m, x)
    assert len(hs) == 5
    torch.testing.assert_close(hs[-1], h)
    assert all(float(lin.bias.detach().abs().max()) == 0.0 for lin in C.linears(m))


def test_init_variance_is_applied():
    torch.manual_seed(0)
    m = C.feedforward(2, 400, "relu", "normal", init_kwargs={"std": 0.3})
    assert float(C.linears(m)[1].weight.detach().std()) == pytest.approx(0.3, rel=0.02)


def test_rescale_spectral(device):
    m = C.feedforward(3, 10, "relu", "xavier_normal", device=device, dtype=torch.float64)
    C.rescale_spectral(m, 1.5)
    for lin in C.linears(m):
        assert spectral.spectral_norm(lin.weight.detach()) == pytest.approx(1.5, rel=1e-10)


def test_linear_network_and_gradient(device):
    g = torch.Generator().manual_seed(1)
    ws = [torch.randn(4, 3, generator=g, dtype=torch.float64).to(device).requires_grad_(),
          torch.randn(5, 4, generator=g, dtype=torch.float64).to(device),
          torch.randn(2, 5, generator=g, dtype=torch.float64).to(device)]
    x = torch.randn(3, generator=g, dtype=torch.float64).to(device)
    f = C.linear_network(ws)
    y = f(x)
    torch.testing.assert_close(y, ws[2] @ ws[1] @ ws[0] @ x)
    c = torch.tensor([1.0, -2.0], dtype=torch.float64, device=device)
    (grad,) = torch.autograd.grad(c @ y, ws[0])
    torch.testing.assert_close(grad, torch.outer(ws[1].T @ ws[2].T @ c, x))
    assert f(torch.ones(3, 7, dtype=torch.float64, device=device)).shape == (2, 7)


def test_bad_inputs():
    with pytest.raises(GradcoreInputError, match="depth: must be >= 1"):
        C.feedforward(0, 4, "relu", "kaiming_normal")
    with pytest.raises(GradcoreInputError, match="name: unknown value 'swish'"):
        C.feedforward(2, 4, "swish", "kaiming_normal")
    with pytest.raises(GradcoreInputError, match="name: unknown value 'he'"):
        C.feedforward(2, 4, "relu", "he")
    with pytest.raises(GradcoreInputError, match="weights: expected at least one"):
        C.linear_network([])
    with pytest.raises(GradcoreInputError, match=r"weights\[1\]: has 5 columns"):
        C.linear_network([torch.ones(4, 3), torch.ones(2, 5)])
    with pytest.raises(GradcoreInputError, match="x: leading size"):
        C.linear_network([torch.ones(4, 3)])(torch.ones(5))
    with pytest.raises(GradcoreInputError, match="x: contains NaN"):
        C.pre_activations(C.feedforward(1, 3, "relu", "kaiming_normal"), torch.tensor([[float("nan")] * 3]))
    with pytest.raises(GradcoreInputError, match="norm: must be > 0"):
        C.rescale_spectral(nn.Linear(2, 2), 0.0)
    with pytest.raises(GradcoreInputError, match="model: expected a non-empty nn.Sequential"):
        C.blocks(nn.Sequential(nn.Linear(2, 2)))

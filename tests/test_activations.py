"""Unit tests of gradcore.activations against closed forms, sympy and torch modules."""
import math

import pytest
import sympy as sp
import torch
from torch import nn

from gradcore import GradcoreInputError
from gradcore import activations as A

NAMES = ["sigmoid", "tanh", "relu", "leaky_relu", "prelu", "elu", "gelu", "gelu_tanh"]
MODULES = {"sigmoid": nn.Sigmoid(), "tanh": nn.Tanh(), "relu": nn.ReLU(), "leaky_relu": nn.LeakyReLU(),
           "prelu": nn.PReLU(), "elu": nn.ELU(), "gelu": nn.GELU(), "gelu_tanh": nn.GELU("tanh")}


def test_registry_has_builtins():
    assert set(NAMES) <= set(A.REGISTRY)


@pytest.mark.parametrize("name", NAMES)
def test_function_matches_torch_module(name, device):
    x = torch.linspace(-6, 6, 101, dtype=torch.float64, device=device)
    module = MODULES[name].to(device=device, dtype=torch.float64)
    torch.testing.assert_close(A.get(name)(x), module(x).detach())


@pytest.mark.parametrize("name", NAMES)
def test_derivative_matches_sympy_twin(name, device):
    act = A.get(name)
    x = torch.tensor([-4.0, -1.3, -0.2, 0.3, 1.7, 5.0], dtype=torch.float64, device=device)
    s, d = act.sympy_derivative()
    expected = torch.tensor([float(d.subs(s, float(t))) for t in x.cpu()], dtype=torch.float64)
    torch.testing.assert_close(act.derivative(x).cpu(), expected)


@pytest.mark.parametrize("name", NAMES)
def test_sympy_twin_matches_function(name):
    act = A.get(name)
    s, f = act.sympy_expr()
    for t in (-2.5, -0.4, 0.7, 3.0):
        assert float(f.subs(s, t)) == pytest.approx(float(act(torch.tensor(t, dtype=torch.float64))), rel=1e-12)


def test_derivative_closed_forms(device):
    x = torch.linspace(-5, 5, 41, dtype=torch.float64, device=device)
    s = torch.sigmoid(x)
    torch.testing.assert_close(A.get("sigmoid").derivative(x), s * (1 - s))
    torch.testing.assert_close(A.get("tanh").derivative(x), 1 - torch.tanh(x) ** 2)
    torch.testing.assert_close(A.get("relu").derivative(x), (x > 0).double())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_derivative_follows_dtype_and_shape(dtype, device):
    x = torch.randn(3, 4, device=device).to(dtype)
    d = A.get("tanh").derivative(x)
    assert d.dtype == dtype and d.shape == x.shape and d.device == x.device


def test_prelu_slope_is_torchs_default():
    assert A.PRELU_SLOPE == pytest.approx(float(nn.PReLU().weight.detach()[0]))
    assert float(A.get("prelu").derivative(torch.tensor([-1.0]))[0]) == pytest.approx(A.PRELU_SLOPE)


def test_register_and_get():
    act = A.Activation("softsign_test", nn.functional.softsign, lambda x: x / (1 + sp.Abs(x)), "xavier_normal")
    try:
        assert A.register(act) is act and A.get("softsign_test") is act
        assert float(act.derivative(torch.tensor([0.0]))[0]) == pytest.approx(1.0)
    finally:
        A.REGISTRY.pop("softsign_test")


def test_bad_inputs():
    with pytest.raises(GradcoreInputError, match="name: unknown value 'nope'.*sigmoid"):
        A.get("nope")
    with pytest.raises(GradcoreInputError, match="x: expected a torch.Tensor"):
        A.get("relu").derivative([1.0])
    with pytest.raises(GradcoreInputError, match="x: expected a non-empty"):
        A.get("relu").derivative(torch.empty(0))
    with pytest.raises(GradcoreInputError, match="act:"):
        A.register("relu")
    with pytest.raises(GradcoreInputError, match="activation: .* no sympy twin"):
        A.Activation("x", torch.relu, None, "kaiming_normal").sympy_derivative()
    assert math.isfinite(float(A.get("relu").derivative(torch.tensor([1.0]))[0]))

"""Unit tests of gradcore.initialisation: sample variances against the formulas and torch's modules."""
import math

import pytest
import torch
from torch import nn

from gradcore import GradcoreInputError
from gradcore import initialisation as I

SHAPES = [(200, 300), (400, 100)]  # (n_out, n_in)


@pytest.mark.parametrize("name", ["xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform",
                                  "orthogonal", "torch_default", "normal"])
@pytest.mark.parametrize("shape", SHAPES)
def test_sample_variance_matches_formula(name, shape, device):
    n_out, n_in = shape
    w = torch.empty(n_out, n_in, device=device)
    I.get(name)(w)
    expected = I.variance(name, n_in, n_out)
    # Sample variance of N i.i.d. entries has relative SE about sqrt(2/N) (< 0.5% here).
    assert float(w.var()) == pytest.approx(expected, rel=0.03)


def test_closed_form_variances():
    assert I.variance("xavier_normal", 100, 300) == pytest.approx(2 / 400)
    assert I.variance("kaiming_normal", 100, 300) == pytest.approx(2 / 100)
    assert I.variance("kaiming_normal", 100, 300, nonlinearity="tanh") == pytest.approx((5 / 3) ** 2 / 100)
    assert I.variance("torch_default", 90, 10) == pytest.approx(1 / 270)
    assert I.variance("orthogonal", 50, 20) == pytest.approx(1 / 50)
    assert I.variance("normal", 5, 5, std=0.3) == pytest.approx(0.09)
    assert I.variance("xavier_uniform", 10, 10, gain=2.0) == pytest.approx(4 * 2 / 20)


def test_torch_default_matches_nn_linear():
    torch.manual_seed(3)
    ref = nn.Linear(37, 23, bias=False).weight.detach()
    torch.manual_seed(3)
    w = torch.empty(23, 37)
    I.torch_default(w)
    torch.testing.assert_close(w, ref)


def test_orthogonal_is_orthogonal(device):
    w = torch.empty(16, 16, device=device, dtype=torch.float64)
    I.orthogonal(w, gain=1.5)
    torch.testing.assert_close(w.T @ w, 2.25 * torch.eye(16, device=device, dtype=torch.float64))


def test_dtype_and_device_follow_weight(device):
    w = torch.empty(8, 4, device=device, dtype=torch.float64)
    out = I.kaiming_normal(w)
    assert out is w and out.dtype == torch.float64


def test_bad_inputs():
    with pytest.raises(GradcoreInputError, match="name: unknown value 'glorot'"):
        I.get("glorot")
    with pytest.raises(GradcoreInputError, match="weight: expected 2 dimensions"):
        I.xavier_normal(torch.empty(3))
    with pytest.raises(GradcoreInputError, match="gain: must be > 0"):
        I.xavier_normal(torch.empty(3, 3), gain=0.0)
    with pytest.raises(GradcoreInputError, match="n_in: must be >= 1"):
        I.variance("xavier_normal", 0, 3)
    with pytest.raises(GradcoreInputError, match="nonlinearity: unknown value"):
        I.kaiming_normal(torch.empty(3, 3), nonlinearity="swish")
    with pytest.raises(GradcoreInputError, match="std: must be > 0"):
        I.normal(torch.empty(3, 3), std=-1.0)
    assert math.isfinite(I.variance("normal", 1, 1))

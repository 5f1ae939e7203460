"""Unit tests of gradcore.attention against explicit softmax(QKᵀ)V and closed forms."""
import math

import pytest
import torch

from gradcore import GradcoreInputError
from gradcore import attention as at


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scaled", [True, False])
def test_attention_matches_explicit_formula(device, dtype, scaled):
    q = torch.randn(2, 4, 8, dtype=dtype, device=device)
    k = torch.randn(2, 6, 8, dtype=dtype, device=device)
    val = torch.randn(2, 6, 3, dtype=dtype, device=device)
    c = 1 / math.sqrt(8) if scaled else 1.0
    logits = torch.einsum("bqd,bkd->bqk", q, k) * c
    a = torch.softmax(logits, -1)
    torch.testing.assert_close(at.attention_logits(q, k, scaled=scaled), logits)
    torch.testing.assert_close(at.attention_weights(q, k, scaled), a)
    torch.testing.assert_close(at.attention(q, k, val, scaled=scaled), a @ val)


def test_entropy_closed_forms(device):
    n = 5
    uniform = torch.full((3, n), 1 / n, dtype=torch.float64, device=device)
    torch.testing.assert_close(at.attention_entropy(uniform), torch.full((3,), math.log(n), dtype=torch.float64, device=device))
    onehot = torch.eye(n, dtype=torch.float64, device=device)
    torch.testing.assert_close(at.attention_entropy(onehot), torch.zeros(n, dtype=torch.float64, device=device))
    p = torch.tensor([0.2, 0.8], dtype=torch.float64, device=device)
    assert at.attention_entropy(p).item() == pytest.approx(-(0.2 * math.log(0.2) + 0.8 * math.log(0.8)))


def test_scale_factor():
    assert at.scale_factor(64, True) == 0.125 and at.scale_factor(64, False) == 1.0


@pytest.mark.parametrize("call", [
    lambda: at.attention_logits(torch.randn(3, 4), torch.randn(3, 5)),
    lambda: at.attention_logits(torch.randn(4), torch.randn(4)),
    lambda: at.attention_weights(torch.randn(3, 4), torch.randn(3, 4, dtype=torch.float64)),
    lambda: at.attention(torch.randn(3, 4), torch.randn(5, 4), torch.randn(4, 2)),
    lambda: at.attention(torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 2, dtype=torch.float64)),
    lambda: at.attention_logits(torch.full((2, 2), float("inf")), torch.randn(2, 2)),
    lambda: at.attention_entropy(torch.tensor([0.5, -0.1, 0.6])),
    lambda: at.attention_entropy(torch.tensor([0.5, 0.6])),
    lambda: at.scale_factor(0, True),
])
def test_bad_inputs_raise(call):
    with pytest.raises(GradcoreInputError):
        call()


def test_contract_recipes_treat_non_finite_attention_as_worst():
    from gradcore.measure import Given
    from gradcore.measure import attention as M

    nan = Given(lambda q, k, v: (q @ k.T * float("nan")) @ v, "attend")
    assert M.attend_row_stochastic(attend=nan, part="min entry").value == float("-inf")
    assert M.attend_row_stochastic(attend=nan, part="row sum − 1").value == float("inf")
    assert M.attend_statistic(attend=nan, statistic="grad", d=16).value == float("inf")
    assert M.attend_gradient_exponent(attend=nan).value == float("inf")
    ok = Given(at.attention, "attend", "from gradcore.attention import attention as attend")
    assert M.attend_row_stochastic(attend=ok, part="row sum − 1").value <= 1e-12

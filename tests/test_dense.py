"""Unit tests for gradcore.dense."""
import pytest
import torch
from torch import nn

from gradcore import GradcoreInputError
from gradcore.dense import DenseBlock, block_jacobian, jacobian_norm
from gradcore.jacobian import jacobian

F64 = torch.float64


def _manual(block: DenseBlock, x: torch.Tensor) -> torch.Tensor:
    feats = [x]
    for layer in block.layers:
        inp = torch.cat(feats, -1) if block.aggregation == "concat" else sum(feats)
        feats.append(torch.tanh(inp @ layer.weight.T))
    return torch.cat(feats, -1) if block.aggregation == "concat" else sum(feats)


@pytest.mark.parametrize("aggregation", ["concat", "sum"])
def test_forward_matches_manual(aggregation, device):
    torch.manual_seed(0)
    block = DenseBlock(4, 3, aggregation, dtype=F64, device=device)
    x = torch.randn(2, 3, dtype=F64, device=device)
    out = block(x)
    assert out.shape == ((2, 15) if aggregation == "concat" else (2, 3))
    torch.testing.assert_close(out, _manual(block, x))
    if aggregation == "concat":
        assert [l.in_features for l in block.layers] == [3, 6, 9, 12]


def test_linear_concat_jacobian_closed_form(device):
    torch.manual_seed(1)
    block = DenseBlock(2, 3, "concat", activation="identity", dtype=F64, device=device)
    w1, w2 = block.layers[0].weight.detach(), block.layers[1].weight.detach()
    eye = torch.eye(3, dtype=F64, device=device)
    j1 = w1
    j2 = w2 @ torch.cat([eye, j1], 0)
    expected = torch.cat([eye, j1, j2], 0)
    torch.testing.assert_close(block_jacobian(block, torch.randn(3, dtype=F64, device=device)), expected)


@pytest.mark.parametrize("aggregation", ["concat", "sum"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_jacobian_matches_reverse_mode_and_norms_agree(aggregation, activation, device):
    torch.manual_seed(2)
    block = DenseBlock(5, 4, aggregation, activation=activation, dtype=F64, device=device)
    x = torch.randn(4, dtype=F64, device=device)
    jac = block_jacobian(block, x)
    torch.testing.assert_close(jac, jacobian(block, x).detach())
    dense = jacobian_norm(block, x)
    assert dense == pytest.approx(float(torch.linalg.matrix_norm(jac, ord=2)), rel=1e-12)
    assert jacobian_norm(block, x, matrix_free=True) == pytest.approx(dense, rel=1e-6)


def test_bad_inputs_raise():
    with pytest.raises(GradcoreInputError, match="k"):
        DenseBlock(0, 4)
    with pytest.raises(GradcoreInputError, match="aggregation"):
        DenseBlock(2, 4, "mean")
    with pytest.raises(GradcoreInputError, match="activation"):
        DenseBlock(2, 4, activation="gelu")
    block = DenseBlock(2, 4)
    with pytest.raises(GradcoreInputError, match="x"):
        block_jacobian(block, torch.zeros(5))
    with pytest.raises(GradcoreInputError, match="x"):
        jacobian_norm(block, torch.tensor([0.0, 1.0, float("nan"), 2.0]))
    with pytest.raises(GradcoreInputError, match="block"):
        jacobian_norm(nn.Linear(4, 4), torch.zeros(4))

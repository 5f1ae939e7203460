"""The audit's cheap input pullbacks (gradcore.audit.pullbacks): the operator recorded under them gives
the forward values bit for bit and J u, Jᵀw equal to the dense Jacobian's, for every conv geometry
and both BatchNorm modes and GELU — and leaves layers whose parameters require grad to ATen."""
import pytest
import torch
from torch import nn

from gradcore import jacobian
from gradcore.audit import measure
from gradcore.audit.pullbacks import CheapPullbacks

F64 = torch.float64


def _frozen(m: nn.Module) -> nn.Module:
    return m.to(F64).requires_grad_(False)


def _train_bn(channels: int) -> nn.Module:
    bn = nn.BatchNorm2d(channels, track_running_stats=False)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0, generator=torch.Generator().manual_seed(1))
        bn.bias.uniform_(-1.0, 1.0, generator=torch.Generator().manual_seed(2))
    return bn


def _eval_bn(channels: int) -> nn.Module:
    bn = nn.BatchNorm2d(channels).eval()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0, generator=torch.Generator().manual_seed(1))
        bn.running_var.uniform_(0.5, 3.0, generator=torch.Generator().manual_seed(3))
        bn.running_mean.normal_(generator=torch.Generator().manual_seed(4))
    return bn


LAYERS = {
    "standard": (lambda: nn.Conv2d(3, 5, 3, padding=1), (2, 3, 6, 6)),
    "strided, odd size": (lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False), (1, 3, 7, 7)),
    "strided 7x7 even": (lambda: nn.Conv2d(2, 4, 7, stride=2, padding=3), (1, 2, 8, 8)),
    "depthwise strided": (lambda: nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4, bias=False), (1, 4, 6, 6)),
    "grouped dilated": (lambda: nn.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2), (1, 4, 6, 5)),
    "no padding, 1x1 stride 2": (lambda: nn.Conv2d(4, 6, 1, stride=2, bias=False), (1, 4, 5, 5)),
    "BatchNorm, batch statistics": (lambda: _train_bn(3), (2, 3, 4, 4)),
    "BatchNorm, running statistics": (lambda: _eval_bn(3), (1, 3, 4, 4)),
    "GELU, exact": (lambda: nn.GELU(), (2, 7)),
    "Linear-GELU(tanh)-Linear": (lambda: nn.Sequential(nn.Linear(5, 8), nn.GELU(approximate="tanh"), nn.Linear(8, 3)),
                                 (4, 5)),
    "conv-BN-ReLU-conv": (lambda: nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), _train_bn(3), nn.ReLU(),
                                                nn.Conv2d(3, 3, 3, padding=1, groups=3)), (1, 2, 5, 5)),
}


@pytest.mark.parametrize("case", sorted(LAYERS))
def test_products_equal_the_dense_jacobians(case):
    make, shape = LAYERS[case]
    torch.manual_seed(0)
    layer = _frozen(make())
    x = torch.randn(shape, dtype=F64, generator=torch.Generator().manual_seed(5))
    op = measure.operator(layer, x)
    assert isinstance(op, measure.AuditOperator)
    with torch.no_grad():
        assert torch.equal(op.value, layer(x))   # ATen's own forward: the same values
    J = jacobian.jacobian(layer, x)
    u = torch.randn(shape, dtype=F64, generator=torch.Generator().manual_seed(6))
    w = torch.randn(op.out_shape, dtype=F64, generator=torch.Generator().manual_seed(7))
    # float64 products of a few dozen terms: agreement to 1e-12 relative allows any summation order
    torch.testing.assert_close(op.matvec(u).flatten(), J @ u.flatten(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(op.rmatvec(w).flatten(), J.T @ w.flatten(), rtol=1e-12, atol=1e-12)


def test_the_pullbacks_are_recorded_and_trainable_layers_keep_aten():
    conv = _frozen(nn.Conv2d(2, 2, 3, padding=1))
    bn = _frozen(_train_bn(2))
    x = torch.randn(1, 2, 4, 4, dtype=F64, requires_grad=True)
    with CheapPullbacks():
        y, z, g = conv(x), bn(x), nn.functional.gelu(x)
        trainable = nn.Conv2d(2, 2, 3, padding=1).to(F64)(x)
    assert "_Conv2d" in type(y.grad_fn).__name__ and "_BatchNorm" in type(z.grad_fn).__name__ \
        and "_Gelu" in type(g.grad_fn).__name__
    assert "Convolution" in type(trainable.grad_fn).__name__

"""DenseNet-style blocks: every layer sees all earlier outputs, by concatenation or sum.

002 §残差与密集连接: "通过在通道维度上的拼接（concatenation）而非求和进行聚合 … 其雅可比
矩阵范数的增长与连接数量 k 的关系更为温和（大致为 √k 的比例）". The block's input–output
Jacobian is measured with ``torch.func`` (dense) or by matrix-free power iteration.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.autograd import forward_ad as fwAD

from . import _validate as v
from .residual import ACTIVATIONS
from .spectral import operator_spectral_norm, spectral_norm

AGGREGATIONS = ("concat", "sum")


class DenseBlock(nn.Module):
    """k layers; layer i maps agg(x_0, …, x_{i-1}) to x_i = σ(W_i · agg) (no bias).

    ``aggregation="concat"`` joins features with ``torch.cat`` on the last (channel)
    dimension, so layer i has fan-in i·width; ``"sum"`` adds them, fan-in width.
    The block output aggregates all k+1 features the same way. Weights are
    N(0, gain²/fan_in) via ``nn.init.kaiming_normal_`` (linear gain) times ``gain``.
    """

    def __init__(self, k: int, width: int, aggregation: str = "concat", *,
                 activation: str = "tanh", gain: float = 1.0,
                 dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.k = v.integer(k, "k", minimum=1)
        self.width = v.integer(width, "width", minimum=1)
        self.aggregation = v.choice(aggregation, "aggregation", AGGREGATIONS)
        self.act = ACTIVATIONS[v.choice(activation, "activation", ACTIVATIONS)]()
        gain = v.real(gain, "gain", nonnegative=True)
        v.float_dtype(dtype)
        fan_in = [width * (i + 1) if aggregation == "concat" else width for i in range(k)]
        self.layers = nn.ModuleList(nn.Linear(f, width, bias=False) for f in fan_in)
        # initialise on the CPU generator so a seed gives the same weights on every device
        with torch.no_grad():
            for layer in self.layers:
                nn.init.kaiming_normal_(layer.weight, nonlinearity="linear")
                layer.weight.mul_(gain)
        self.to(device=device, dtype=dtype)

    def _aggregate(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(feats, dim=-1) if self.aggregation == "concat" else torch.stack(feats).sum(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for layer in self.layers:
            feats.append(self.act(layer(self._aggregate(feats))))
        return self._aggregate(feats)


def _sample(block: object, x: object) -> torch.Tensor:
    if not isinstance(block, DenseBlock):
        v.fail("block", f"expected a DenseBlock, got {type(block).__name__}")
    x = v.tensor(x, "x", ndim=1)
    if x.shape[0] != block.width:
        v.fail("x", f"expected shape ({block.width},), got {tuple(x.shape)}")
    return v.module_input(block, x, "x")


def block_jacobian(block: DenseBlock, x: torch.Tensor) -> torch.Tensor:
    """Dense Jacobian ∂block(x)/∂x, shape (output width, width), for one sample ``x``.

    Forward-mode AD (``torch.autograd.forward_ad``) on a batch of ``width`` copies of
    ``x`` carrying the tangents e_1 … e_width: the block acts row by row, so one batched
    forward pass yields every column J e_i. A concatenating block's output is (k+1)
    times wider than its input, which makes forward mode the cheap direction.
    """
    x = _sample(block, x)
    n = x.shape[0]
    with fwAD.dual_level():
        dual = fwAD.make_dual(x.expand(n, n).contiguous(), torch.eye(n, dtype=x.dtype, device=x.device))
        tangent = fwAD.unpack_dual(block(dual)).tangent
    return tangent.T.detach()


def jacobian_norm(block: DenseBlock, x: torch.Tensor, *, matrix_free: bool = False) -> float:
    """‖∂block(x)/∂x‖₂: dense SVD, or power iteration through jvp/vjp when ``matrix_free``."""
    x = _sample(block, x)
    if matrix_free:
        # torch.func ignores an outer no_grad; this only stops tracking the block's parameters
        with torch.no_grad():
            return operator_spectral_norm(block, x, iters=500, tol=1e-9, method="lanczos")
    return spectral_norm(block_jacobian(block, x))

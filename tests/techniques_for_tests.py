"""Techniques gradcore does not ship, written as a new user would, for ``gradcore check`` tests."""
from __future__ import annotations

import torch
from torch import nn


def swish(x: torch.Tensor) -> torch.Tensor:
    """Swish/SiLU written out by hand: x·σ(x)."""
    return x * torch.sigmoid(x)


def steep_tanh(x: torch.Tensor) -> torch.Tensor:
    """A deliberately bad activation: f'(0) = 1.5 > 1."""
    return 1.5 * torch.tanh(x)


class SteepTanh:
    """The same bad activation with a sympy form and a recommended init (helper-1 style)."""

    fn = staticmethod(steep_tanh)
    recommended_init = "xavier_normal"

    @staticmethod
    def sympy(x):
        import sympy as sp

        return sp.Rational(3, 2) * sp.tanh(x)


class NoEpsLayerNorm(nn.Module):
    """LayerNorm without its ε: divides by the bare standard deviation."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(-1, keepdim=True)
        var = x.var(-1, unbiased=False, keepdim=True)
        return (x - mu) / var.sqrt()


class EpsLayerNorm(NoEpsLayerNorm):
    """The same layer with ε = 1e-5 (what nn.LayerNorm does)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(-1, keepdim=True)
        var = x.var(-1, unbiased=False, keepdim=True)
        return (x - mu) / (var + 1e-5).sqrt()


def clip_per_coordinate(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """Clipping rule that clips each coordinate to [-1, 1] (changes the direction)."""
    return [g.clamp(-1.0, 1.0) for g in grads]


def clip_global_norm_safe(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """Global-norm clipping at 1 computed in float64 after rescaling (no overflow)."""
    flat = torch.cat([g.reshape(-1).double() for g in grads])
    peak = flat.abs().max()
    if peak == 0 or not torch.isfinite(peak):
        return [g * 1.0 for g in grads] if peak == 0 else [g * float("nan") for g in grads]
    norm = float((flat / peak).norm() * peak)
    scale = min(1.0, 1.0 / norm)
    return [(g.double() * scale).to(g.dtype) for g in grads]


def fixed_std_init(w: torch.Tensor) -> torch.Tensor:
    """N(0, 0.05²) whatever the fan: does not adapt to the layer's size."""
    with torch.no_grad():
        return w.normal_(0.0, 0.05)


def lecun_normal(w: torch.Tensor) -> torch.Tensor:
    """N(0, 1/fan_in) (LeCun)."""
    return nn.init.kaiming_normal_(w, nonlinearity="linear")


class HalfResidual(nn.Module):
    """y = x + ½·tanh(W x) with W ~ N(0, 1/n): a plain residual block."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.lin = nn.Linear(width, width, bias=False)
        nn.init.normal_(self.lin.weight, std=width ** -0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.5 * torch.tanh(self.lin(x))


def unscaled_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(QKᵀ)V without the 1/√d_k."""
    return torch.softmax(q @ k.transpose(-2, -1), dim=-1) @ v


class LeakyCell(nn.Module):
    """h' = 0.95·h + 0.05·tanh(W_x x + W_h h): a leaky-integrator cell."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.inp = nn.Linear(input_size, hidden_size)
        self.rec = nn.Linear(hidden_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return 0.95 * h + 0.05 * torch.tanh(self.inp(x) + self.rec(h))


def wrong_shape(x: torch.Tensor) -> torch.Tensor:
    return x.sum(-1)


def not_finite(x: torch.Tensor) -> torch.Tensor:
    return x / 0.0


NOT_CALLABLE = 42

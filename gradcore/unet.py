"""A small U-Net whose long skip connections can be switched off with the weights kept.

002 §残差与密集连接: "在U-Net等编码器-解码器架构中，从编码器到解码器相应层级的长程快捷连接 …
显著缩短了有效传播路径的长度". Built from ``nn.Conv2d``, ``nn.AvgPool2d`` and
``nn.Upsample``. With ``skips=False`` each decoder level receives zeros in place of the
encoder feature map, so the *same* weights are compared with and without the shortcut.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from . import _validate as v
from .residual import ACTIVATIONS


def _conv(c_in: int, c_out: int, act: str) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), ACTIVATIONS[act]())


class UNet(nn.Module):
    """Encoder (depth levels of conv + 2× average pooling), bottleneck, mirrored decoder.

    Decoder level i upsamples (nearest, 2×), concatenates the encoder map of level i on
    the channel dim (or zeros when ``skips`` is False), and convolves. Convolutions keep
    torch's default ``nn.Conv2d`` initialisation. Input H, W must be divisible by 2**depth.
    """

    def __init__(self, depth: int, channels: int = 4, *, in_channels: int = 1, out_channels: int = 1,
                 activation: str = "relu", skips: bool = True) -> None:
        super().__init__()
        self.depth = v.integer(depth, "depth", minimum=1)
        c = v.integer(channels, "channels", minimum=1)
        c_in = v.integer(in_channels, "in_channels", minimum=1)
        c_out = v.integer(out_channels, "out_channels", minimum=1)
        act = v.choice(activation, "activation", ACTIVATIONS)
        self.skips = bool(skips)
        self.encoder = nn.ModuleList(_conv(c_in if i == 0 else c, c, act) for i in range(depth))
        self.pool = nn.AvgPool2d(2)
        self.bottleneck = _conv(c, c, act)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.decoder = nn.ModuleList(_conv(2 * c, c, act) for _ in range(depth))
        self.head = nn.Conv2d(c, c_out, 1)

    @property
    def first_layer(self) -> nn.Conv2d:
        """The first encoder convolution (shallowest layer)."""
        return self.encoder[0][0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        saved = []
        h = x
        for enc in self.encoder:
            h = enc(h)
            saved.append(h)
            h = self.pool(h)
        h = self.bottleneck(h)
        for dec, skip in zip(self.decoder, reversed(saved)):
            h = self.up(h)
            # zeros keep the decoder's weights identical with and without the shortcut
            h = dec(torch.cat([h, skip if self.skips else torch.zeros_like(skip)], dim=1))
        return self.head(h)


def first_layer_grad_norm(net: UNet, x: torch.Tensor, cotangent: torch.Tensor) -> float:
    """‖∂⟨net(x), cotangent⟩/∂W_1‖_F for the first encoder conv weight W_1.

    ``cotangent`` plays the role of ∂L/∂output; the gradient is taken with
    ``torch.autograd.grad`` so no ``.grad`` buffers are touched.
    """
    if not isinstance(net, UNet):
        v.fail("net", f"expected a UNet, got {type(net).__name__}")
    x = v.module_input(net, v.tensor(x, "x", ndim=4), "x")
    side = 2 ** net.depth
    if x.shape[-1] % side or x.shape[-2] % side:
        v.fail("x", f"height and width must be divisible by 2**depth = {side}, got {tuple(x.shape)}")
    if x.shape[1] != net.first_layer.in_channels:
        v.fail("x", f"has {x.shape[1]} channels, the net expects {net.first_layer.in_channels}")
    out = net(x)
    cotangent = v.tensor(cotangent, "cotangent")
    v.same_shape(out, cotangent, "net(x)", "cotangent")
    v.same_dtype(out, cotangent, "net(x)", "cotangent")
    (grad,) = torch.autograd.grad((out * cotangent).sum(), net.first_layer.weight)
    norm = float(grad.norm())
    if not math.isfinite(norm):
        v.fail("x", f"the gradient overflows {grad.dtype}; scale x and cotangent down or use float64")
    return norm

"""U-Net long-skip claims (catalogue: gradcore/claims/unet.toml)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gradcore.stats import mean_ci
from gradcore.unet import UNet, first_layer_grad_norm

DEPTHS, SEEDS, CHANNELS, SIDE = [1, 2, 3, 4], range(3), 8, 16


@pytest.mark.claim("UNET-01")
def test_long_skips_shorten_gradient_path(claim, device):
    """002 §残差与密集连接: "长程快捷连接 … 为梯度提供了一条从深层解码器返回到浅层编码器的捷径，显著缩短了有效传播路径的长度"."""
    grads = {True: np.zeros((len(SEEDS), len(DEPTHS))), False: np.zeros((len(SEEDS), len(DEPTHS)))}
    for i, seed in enumerate(SEEDS):
        for j, depth in enumerate(DEPTHS):
            torch.manual_seed(100 * seed + depth)
            net = UNet(depth, CHANNELS).to(device)
            gen = torch.Generator().manual_seed(seed)
            x = torch.randn(2, 1, SIDE, SIDE, generator=gen).to(device)
            cotangent = torch.randn(2, 1, SIDE, SIDE, generator=gen).to(device)
            for skips in (True, False):
                net.skips = skips   # same weights, shortcut on/off
                grads[skips][i, j] = first_layer_grad_norm(net, x, cotangent)
    # per-seed slope of log‖∂L/∂W_1‖ per level; its mean and 95% interval across seeds
    per_seed = {s: np.array([np.polyfit(DEPTHS, np.log(r), 1)[0] for r in g]) for s, g in grads.items()}
    slope = {s: mean_ci(p) for s, p in per_seed.items()}
    log_ratio = mean_ci(np.log(grads[True][:, -1] / grads[False][:, -1]))
    claim.check("no skips: slope of log‖∂L/∂W_1‖ per U-Net level (< 0: decays with depth)", claimed=0.0,
                measured=slope[False][0], relation="<", interval=slope[False][1:], dtype=torch.float32)
    # decay per level ∝ effective path length; its ratio says how much the skips shorten the path
    shorten = mean_ci(per_seed[True] / per_seed[False])
    claim.check("decay rate with skips / without (effective path-length ratio; < 1/2: 'significantly shorter')",
                claimed=0.5, measured=shorten[0], relation="<", interval=shorten[1:], dtype=torch.float32)
    claim.check(f"log(‖∂L/∂W_1‖ with / without skips) at depth {DEPTHS[-1]}", claimed=0.0,
                measured=log_ratio[0], relation=">", interval=log_ratio[1:], dtype=torch.float32)
    claim.note(f"first-layer gradient ratio with/without skips at depth {DEPTHS[-1]}: ×{math.exp(log_ratio[0]):.3g}; "
               f"per-level factor without skips ×{math.exp(slope[False][0]):.3f}, with ×{math.exp(slope[True][0]):.3f}")
    for skips, g in grads.items():
        claim.curve("unet-first-layer-gradient", f"{'with' if skips else 'without'} long skips "
                    f"(ReLU, {CHANNELS} ch, {SIDE}×{SIDE}, {len(SEEDS)} seeds)", DEPTHS,
                    np.exp(np.log(g).mean(0)), xlabel="U-Net depth (levels)", ylabel="‖∂L/∂W_1‖_F", logy=True)

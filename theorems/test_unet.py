"""U-Net long-skip claims (catalogue: gradcore/claims/unet.toml)."""
from __future__ import annotations

import math

import pytest

from gradcore.measure import unet as M


@pytest.mark.claim("UNET-01")
def test_long_skips_shorten_gradient_path(claim, device):
    """UNET-01 (002 §残差与密集连接): long encoder–decoder skips shorten the gradient path."""
    without = M.first_layer_slope(skips=False, device=device)
    with_ = M.first_layer_slope(skips=True, device=device)
    shorten = M.path_length_ratio(device=device)
    gain = M.skip_gain(device=device)
    claim.compare("no skips: slope of log‖∂L/∂W_1‖ per U-Net level (< 0: decays with depth)", claimed=0.0,
                  measured=without, relation="<")
    # decay per level ∝ effective path length; its ratio says how much the skips shorten the path
    claim.compare("decay rate with skips / without (effective path-length ratio; < 1/2: 'significantly shorter')",
                  claimed=0.5, measured=shorten, relation="<")
    claim.compare(f"log(‖∂L/∂W_1‖ with / without skips) at depth {gain.sizes['depth']}", claimed=0.0,
                  measured=gain, relation=">")
    claim.note(f"first-layer gradient ratio with/without skips at depth {gain.sizes['depth']}: "
               f"×{math.exp(gain.value):.3g}; per-level factor without skips ×{math.exp(without.value):.3f}, "
               f"with ×{math.exp(with_.value):.3f}")
    sizes = without.sizes
    for skips in (True, False):
        claim.curve("unet-first-layer-gradient", f"{'with' if skips else 'without'} long skips "
                    f"(ReLU, {sizes['channels']} ch, {sizes['side']}×{sizes['side']}, {sizes['seeds']} seeds)",
                    sizes["depths"], M.gradient_curve(skips=skips, device=device),
                    xlabel="U-Net depth (levels)", ylabel="‖∂L/∂W_1‖_F", logy=True)

"""Unit tests for gradcore.unet."""
import pytest
import torch
from torch import nn

from gradcore import GradcoreInputError
from gradcore.unet import UNet, first_layer_grad_norm


@pytest.mark.parametrize("depth", [1, 3])
def test_shapes_and_modules(depth, device):
    net = UNet(depth, 4, in_channels=2, out_channels=3).to(device)
    assert net(torch.randn(2, 2, 16, 16, device=device)).shape == (2, 3, 16, 16)
    assert len(net.encoder) == depth and len(net.decoder) == depth
    assert isinstance(net.first_layer, nn.Conv2d) and net.first_layer.in_channels == 2


def test_grad_norm_matches_backward(device):
    torch.manual_seed(0)
    net = UNet(2, 4).to(device=device, dtype=torch.float64)
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64, device=device)
    ct = torch.randn(1, 1, 8, 8, dtype=torch.float64, device=device)
    g = first_layer_grad_norm(net, x, ct)
    (net(x) * ct).sum().backward()
    assert g == pytest.approx(float(net.first_layer.weight.grad.norm()), rel=1e-12)


def test_skips_off_feeds_zeros_and_cuts_the_shortcut(device):
    torch.manual_seed(1)
    net = UNet(2, 4).to(device=device, dtype=torch.float64)
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64, device=device)
    with_skips = net(x)
    net.skips = False
    # zero the decoder weights that read the skip channels: output must not change
    reference = net(x)
    with torch.no_grad():
        for dec in net.decoder:
            dec[0].weight[:, 4:] = 0
    net.skips = True
    torch.testing.assert_close(net(x), reference)
    assert not torch.allclose(with_skips, reference)


def test_depth_one_without_skips_is_a_plain_conv_chain(device):
    torch.manual_seed(2)
    net = UNet(1, 3, skips=False).to(device=device, dtype=torch.float64)
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64, device=device)
    h = net.pool(net.encoder[0](x))
    h = net.up(net.bottleneck(h))
    h = net.decoder[0](torch.cat([h, torch.zeros_like(h)], 1))
    torch.testing.assert_close(net(x), net.head(h))


def test_bad_inputs_raise():
    with pytest.raises(GradcoreInputError, match="depth"):
        UNet(0)
    with pytest.raises(GradcoreInputError, match="activation"):
        UNet(1, activation="elu")
    net = UNet(2, 2)
    with pytest.raises(GradcoreInputError, match="x"):
        first_layer_grad_norm(net, torch.randn(1, 1, 6, 6), torch.randn(1, 1, 6, 6))
    with pytest.raises(GradcoreInputError, match="x"):
        first_layer_grad_norm(net, torch.randn(1, 8, 8), torch.randn(1, 8, 8))
    with pytest.raises(GradcoreInputError, match="cotangent"):
        first_layer_grad_norm(net, torch.randn(1, 1, 8, 8), torch.randn(1, 1, 4, 4))
    with pytest.raises(GradcoreInputError, match="net"):
        first_layer_grad_norm(nn.Conv2d(1, 1, 3), torch.randn(1, 1, 8, 8), torch.randn(1, 1, 8, 8))

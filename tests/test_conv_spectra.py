"""Exact convolution spectra against the NumPy formulation of Sedghi, Gupta & Long (2019)
(FFT of the kernel, one SVD per frequency, all n·m frequencies) and torch's spectral_norm."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from gradcore.conv import conv_singular_values, conv_spectral_norm, make_conv, module_response
from gradcore.spectral import operator_spectral_norm


def _numpy_svals(weight: torch.Tensor, n: int, m: int) -> np.ndarray:
    """Sedghi et al.'s listing: kernel as (k, k, c_in, c_out), fft2 over the spatial axes, svd."""
    kernel = weight.detach().permute(2, 3, 1, 0).numpy()
    return np.sort(np.linalg.svd(np.fft.fft2(kernel, (n, m), axes=[0, 1]), compute_uv=False).ravel())[::-1]


@pytest.mark.parametrize("c_in,c_out,n,m", [(4, 4, 8, 8), (3, 5, 6, 7), (6, 2, 5, 4), (8, 8, 9, 9)])
def test_all_singular_values_match_numpy(c_in, c_out, n, m):
    g = torch.Generator().manual_seed(c_in * 10 + m)
    w = torch.randn(c_out, c_in, 3, 3, generator=g, dtype=torch.float64)
    ours = conv_singular_values(w, n, m).numpy()
    np.testing.assert_allclose(ours, _numpy_svals(w, n, m), rtol=1e-10, atol=1e-12)
    assert math.isclose(conv_spectral_norm(w, n, m), float(_numpy_svals(w, n, m)[0]), rel_tol=1e-12)


def test_one_sided_spectrum_equals_the_two_sided_one():
    conv = make_conv("separable", 5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    full = torch.linalg.svdvals(module_response(conv, 6, 7))   # all n·m frequencies
    torch.testing.assert_close(conv_singular_values(conv, 6, 7), full.flatten().sort(descending=True).values,
                               rtol=1e-12, atol=1e-12)


def test_torch_spectral_norm_normalises_the_reshaped_kernel_not_the_operator():
    # torch.nn.utils.parametrizations.spectral_norm divides by σ_max of the (c_out, c_in·k·k)
    # kernel matrix; the convolution operator's σ_max is a different number (Sedghi et al. §1)
    conv = nn.Conv2d(8, 8, 3, padding=1, padding_mode="circular", bias=False, dtype=torch.float64)
    torch.nn.init.normal_(conv.weight, generator=torch.Generator().manual_seed(2))
    sn = torch.nn.utils.parametrizations.spectral_norm(conv, n_power_iterations=200)
    sn.train()
    sn(torch.zeros(1, 8, 4, 4, dtype=torch.float64))   # run the power iterations
    sn.eval()
    w = sn.weight.detach()
    assert math.isclose(float(torch.linalg.matrix_norm(w.reshape(8, -1), ord=2)), 1.0, rel_tol=1e-6)
    operator = conv_spectral_norm(w, 16, 16)
    assert operator > 1.2   # the normalised layer still expands some inputs
    x = torch.zeros(1, 8, 16, 16, dtype=torch.float64)
    layer = nn.Conv2d(8, 8, 3, padding=1, padding_mode="circular", bias=False, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(w)
    assert math.isclose(operator_spectral_norm(layer, x, tol=1e-10), operator, rel_tol=1e-8)

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


# --- certified brackets lower ≤ σ_max ≤ upper (issue 19) ------------------------------------------

from gradcore import GradcoreInputError, jacobian  # noqa: E402
from gradcore.conv import conv_sigma_bracket, frequency_response, gram_upper_bound  # noqa: E402

KINDS = {
    "circular": dict(padding=1, padding_mode="circular"),
    "circular strided": dict(padding=1, padding_mode="circular", stride=2),
    "zero-padded": dict(padding=1),
    "zero-padded, no padding": dict(padding=0),
    "strided": dict(padding=1, stride=2),
    "dilated": dict(padding=2, dilation=2),
    "grouped": dict(padding=1, groups=2),
    "5×3 kernel, stride (2, 1)": dict(kernel_size=(5, 3), padding=(2, 1), stride=(2, 1)),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_every_bracket_contains_the_dense_value(kind, dtype):
    kw = {"kernel_size": 3, **KINDS[kind]}
    layer = nn.Conv2d(4, 6, bias=False, dtype=dtype, **kw)
    nn.init.normal_(layer.weight, generator=torch.Generator().manual_seed(len(kind)))
    # the dense reference is the float64 operator with the layer's (float32-rounded) weights
    ref = nn.Conv2d(4, 6, bias=False, dtype=torch.float64, **kw)
    with torch.no_grad():
        ref.weight.copy_(layer.weight.double())
    x = torch.zeros(1, 4, 7, 6, dtype=torch.float64)
    dense = float(torch.linalg.svdvals(jacobian.jacobian(ref, x).detach())[0])
    b = conv_sigma_bracket(layer, 7, 6)
    assert b.lower <= dense <= b.upper
    assert b.lower >= dense * (1 - 1e-6)          # the Ritz value is the top one
    if kind == "circular":                        # the DFT grid is the input's: the bracket closes
        assert b.upper <= dense * (1 + 2e-6)


def test_gram_iteration_bounds_the_exact_circular_norm_and_converges_to_it():
    w = torch.randn(5, 3, 3, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    exact = conv_spectral_norm(w, 8, 9)
    bounds = gram_upper_bound(frequency_response(w, 8, 9, onesided=True), 12)
    assert all(b >= exact * (1 - 1e-12) for b in bounds)
    assert bounds[0] > 1.1 * exact                           # t = 0: the Frobenius norm, loose
    assert all(b1 <= b0 * (1 + 1e-12) for b0, b1 in zip(bounds, bounds[1:]))  # never worse
    assert bounds[-1] <= exact * (1 + 1e-9)                  # exact to 1e-9 after 12 iterations


@pytest.mark.parametrize("call,argument", [
    (lambda: conv_sigma_bracket(nn.Linear(3, 3), 5, 5), "layer"),
    (lambda: conv_sigma_bracket(nn.Conv2d(2, 2, 3, padding=2, padding_mode="circular"), 5, 5), "layer"),
    (lambda: conv_sigma_bracket(nn.Conv2d(2, 2, 3, padding="same"), 5, 5), "layer"),
    (lambda: conv_sigma_bracket(nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"), 5, 5), "layer"),
    (lambda: conv_sigma_bracket(nn.Conv2d(2, 2, 3), 0, 5), "n"),
    (lambda: conv_sigma_bracket(nn.Conv2d(2, 2, 3), 5, 5, rtol=0.0), "rtol"),
])
def test_bracket_bad_input_names_the_argument(call, argument):
    with pytest.raises(GradcoreInputError, match=f"^{argument}:"):
        call()

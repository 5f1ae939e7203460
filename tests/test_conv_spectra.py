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
    "grouped, dilated, strided": dict(padding=2, dilation=2, stride=2, groups=2),
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


# --- σ_max by iteration per frequency (issue 19 item 2) --------------------------------------------

from gradcore.conv import top_frequency  # noqa: E402


def _dense_top(module: nn.Module, c_in: int, n: int, m: int) -> float:
    x = torch.zeros(1, c_in, n, m, dtype=torch.float64)
    return float(torch.linalg.svdvals(jacobian.jacobian(module, x).detach())[0])


def _circular(c_in, c_out, k, groups=1, seed=0, dtype=torch.float64):
    layer = nn.Conv2d(c_in, c_out, k, padding=k // 2, groups=groups, bias=False, padding_mode="circular",
                      dtype=dtype)
    nn.init.normal_(layer.weight, generator=torch.Generator().manual_seed(seed))
    return layer


CASES = {
    "square": (lambda: _circular(6, 6, 3), 6, 8, 8),
    "wide, odd m": (lambda: _circular(9, 4, 3), 9, 7, 5),
    "tall, even m": (lambda: _circular(3, 10, 5), 3, 6, 8),
    "1×1": (lambda: _circular(5, 7, 1), 5, 4, 6),
    "grouped": (lambda: _circular(6, 4, 3, groups=2), 6, 7, 6),
    "depthwise": (lambda: make_conv("depthwise", 5, 3, dtype=torch.float64,
                                    generator=torch.Generator().manual_seed(1)), 5, 6, 7),
    "separable (composition)": (lambda: make_conv("separable", 4, 3, dtype=torch.float64,
                                                  generator=torch.Generator().manual_seed(2)), 4, 6, 6),
    "20 ch, many frequencies (the float32 sieve runs)": (lambda: _circular(20, 20, 3, seed=3), 20, 12, 12),
}


@pytest.mark.parametrize("case", CASES)
def test_per_frequency_iteration_matches_the_dense_svd_to_1e_9(case):
    make, c_in, n, m = CASES[case]
    layer = make()
    dense = _dense_top(layer, c_in, n, m)
    assert conv_spectral_norm(layer, n, m) == pytest.approx(dense, rel=1e-9)
    if isinstance(layer, nn.Conv2d):   # the weight interface gives the same value
        assert conv_spectral_norm(layer.weight.detach(), n, m, groups=layer.groups) == pytest.approx(dense, rel=1e-9)


def test_top_frequency_names_the_block_and_its_singular_vector():
    layer = _circular(8, 8, 3, seed=4)
    top = top_frequency(layer, 10, 9)
    resp = frequency_response(layer.weight.detach(), 10, 9, onesided=True)
    block = resp[top.frequency]
    assert float(torch.linalg.matrix_norm(block, ord=2)) == pytest.approx(top.sigma, rel=1e-9)
    assert float(torch.linalg.vector_norm(block @ top.right)) == pytest.approx(top.sigma, rel=1e-9)
    assert top.blocks == 10 * 5 and 1 <= top.candidates <= top.blocks


def test_a_float32_layer_is_measured_in_float32_within_the_stated_error():
    layer = _circular(16, 16, 3, seed=5, dtype=torch.float32)
    ref = _circular(16, 16, 3, seed=5)
    with torch.no_grad():
        ref.weight.copy_(layer.weight.double())
    # the float32 blocks and Ritz values carry ~√C·ε₃₂ relative rounding: 2e-5 as CONV-01's float32 bound
    assert conv_spectral_norm(layer, 12, 12) == pytest.approx(_dense_top(ref, 16, 12, 12), rel=2e-5)


def test_ties_across_frequencies_are_resolved():
    # a 1×3 kernel [1, 0, 1]·A: |K̂| is the same at v and −v and at every u, so many blocks tie
    w = torch.zeros(4, 4, 1, 3, dtype=torch.float64)
    a = torch.randn(4, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    w[:, :, 0, 0] = w[:, :, 0, 2] = a
    exact = 2 * float(torch.linalg.matrix_norm(a, ord=2))   # at v = 0: K̂ = 2A
    assert conv_spectral_norm(w, 5, 8) == pytest.approx(exact, rel=1e-9)
    assert conv_spectral_norm(torch.zeros(3, 3, 3, 3), 4, 4) == 0.0


def test_spectral_norm_bad_input_names_the_argument():
    with pytest.raises(GradcoreInputError, match="^weight:"):
        conv_spectral_norm(torch.full((2, 2, 3, 3), 3e38), 4, 4)     # σ_max overflows float32
    with pytest.raises(GradcoreInputError, match="^groups:"):
        conv_spectral_norm(torch.randn(3, 1, 3, 3), 5, 5, groups=2)
    with pytest.raises(GradcoreInputError, match="^module:"):
        conv_spectral_norm(nn.Conv2d(2, 2, 3, padding=1), 5, 5)      # zero padding has no DFT form


def test_a_strided_circular_bracket_closes_on_the_dense_value():
    # the polyphase form makes a stride-2 circular conv an exact stride-1 one on the half grid
    layer = nn.Conv2d(3, 5, 3, stride=2, padding=1, padding_mode="circular", bias=False, dtype=torch.float64)
    nn.init.normal_(layer.weight, generator=torch.Generator().manual_seed(7))
    dense = _dense_top(layer, 3, 8, 6)
    b = conv_sigma_bracket(layer, 8, 6)
    assert b.lower <= dense <= b.upper
    assert b.upper <= dense * (1 + 2e-6) and b.steps == 0


def test_a_zero_padded_strided_bracket_is_tight():
    # before the polyphase form its upper bound was the stride-1 norm, ~28% above (reports/benchmarks.md)
    layer = nn.Conv2d(4, 4, 3, stride=2, padding=1, bias=False, dtype=torch.float64)
    nn.init.normal_(layer.weight, generator=torch.Generator().manual_seed(8))
    dense = _dense_top(layer, 4, 16, 16)
    b = conv_sigma_bracket(layer, 16, 16)
    assert b.lower <= dense <= b.upper and b.lower >= dense * (1 - 1e-6)
    assert b.upper <= dense * 1.1


def test_gram_iteration_with_a_target_stops_between_the_exact_value_and_it():
    w = torch.randn(6, 6, 3, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    exact = conv_spectral_norm(w, 8, 8)
    resp = frequency_response(w, 8, 8, onesided=True)
    bounds = gram_upper_bound(resp, 12, target=exact * (1 + 1e-4))
    assert all(b >= exact * (1 - 1e-12) for b in bounds)
    assert bounds[-1] <= exact * (1 + 1e-4) and len(bounds) < 13
    assert gram_upper_bound(resp, 12)[len(bounds) - 1] == pytest.approx(bounds[-1], rel=1e-12)

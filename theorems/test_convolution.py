"""Convolution-type claims (catalogue: gradcore/claims/convolution.toml).

All from 002 §架构设计中的梯度稳定性 › 归一化层与架构细节 › 卷积类型的选择; measured by the
recipes of gradcore.measure.conv.
"""
import math

import pytest

from gradcore.measure import conv as M
from gradcore.measure import profiles

SQRT2 = math.sqrt(2)


@pytest.mark.claim("CONV-01")
def test_fft_singular_values_equal_dense(claim, device):
    """CONV-01 (002 卷积类型的选择): the Fourier analysis gives the convolution's exact spectrum."""
    for dtype, tol in (("float64", 1e-9), ("float32", 2e-5)):
        worst = M.fft_dense_residual(dtype=dtype, profile=profiles.selected_name(), device=device)
        claim.compare(f"max relative |σ_FFT − σ_dense| over searched convs (torch.{dtype})", claimed=tol,
                      measured=worst, relation="<=", atol=0.0)


@pytest.mark.claim("CONV-02")
def test_separable_spectral_norm_usually_larger(claim, device):
    """CONV-02 (002 卷积类型的选择): separable convolutions usually have the larger spectral norm."""
    for label, padding in (("circular, FFT", "circular"), ("zero padding, dense", "zeros")):
        share = M.separable_larger_fraction(padding=padding, device=device)
        claim.compare(f"fraction of draws with σ_max(sep) > σ_max(std), {label}, n_draws={share.n}",
                      claimed=0.5, measured=share, relation=">")
        rows = M.circular_sweep(device) if padding == "circular" else M.zero_padding_sweep(device)
        claim.note(f"{label}: min ratio {min(r['ratio'] for r in rows):.3f} over {len(rows)} draws")


@pytest.mark.claim("CONV-03")
def test_separable_spectral_norm_ratio_sqrt2(claim, device):
    """CONV-03 (002 卷积类型的选择): the separable/standard spectral-norm ratio is about √2."""
    med = M.separable_ratio_median(padding="circular", device=device)
    claim.compare(f"median σ_max(sep)/σ_max(std), circular, {med.n} draws", claimed=SQRT2, measured=med,
                  counterexample={"padding_mode": "circular", "channels": list(M.CHANNELS),
                                "kernels": list(M.KERNELS), "inputs": list(M.SIZES), "seeds": list(M.SEEDS)})
    zmed = M.separable_ratio_median(padding="zeros", device=device)
    claim.compare(f"median σ_max ratio, zero padding, C∈{{4,8}}, n=6, {zmed.n} draws", claimed=SQRT2,
                  measured=zmed, counterexample={"padding_mode": "zeros", "channels": [4, 8], "kernel": 3, "n": 6})
    rms = M.rms_gain_ratio(device=device)
    claim.compare("mean RMS-gain ratio ‖J_sep‖_F/‖J_std‖_F (not the spectral norm)", claimed=SQRT2,
                  measured=rms, outside="root-mean-square gain instead of spectral norm")
    per_c, per_n = M.ratio_medians_by("c", device), M.ratio_medians_by("n", device)
    slope = M.ratio_trend_with_channels(device)
    claim.note(f"median ratio by C: {per_c}; by n: {per_n}; log-log slope vs C {slope:.3f}")
    for k in M.KERNELS:
        for q, name in ((0.25, "q1"), (0.5, "median"), (0.75, "q3")):
            claim.curve("conv-spectral-ratio", f"k={k} {name} (n∈{{8,16,32}}, 3 seeds)", M.CHANNELS,
                        M.ratio_quantiles(q, k, device), xlabel="channels C",
                        ylabel="σ_max(separable)/σ_max(standard)", logx=True)
    claim.curve("conv-spectral-ratio", "√2 (claimed)", M.CHANNELS, [SQRT2] * len(M.CHANNELS),
                xlabel="channels C", ylabel="σ_max(separable)/σ_max(standard)", logx=True)
    q1, q3 = M.ratio_iqr(device)
    lo, hi = med.interval
    claim.correct(f"at He init σ_max(separable)/σ_max(standard) has median {med:.2f} (IQR {q1:.2f}–{q3:.2f}, "
                  f"95% CI {lo:.2f}–{hi:.2f}), not √2≈1.41; it grows with C (median {per_c[4]:.2f} at C=4, "
                  f"{per_c[64]:.2f} at C=64, log-log slope {slope:.3f}) and barely with n; zero padding gives "
                  f"{zmed:.2f}. √2 is the ratio of RMS (Frobenius) gains, measured {rms:.3f}.")


@pytest.mark.claim("CONV-04")
def test_separable_more_prone_to_explosion(claim, device):
    """CONV-04 (002 卷积类型的选择): separable convolutions explode gradients more easily."""
    std_gain = M.standard_block_gain(blocks=8, seeds=6, device=device)
    ratios = {}
    for inner, outside in ((False, None), (True, "ReLU between depthwise and pointwise (MobileNet style)")):
        ratio = ratios[inner] = M.amplification_ratio(inner_relu=inner, blocks=8, seeds=6, device=device)
        claim.compare(f"amplification(sep)/amplification(std) over 8 blocks, inner_relu={inner}", claimed=2.0,
                      measured=ratio, relation=">=", outside=outside,
                      counterexample=None if outside is None else {"inner_relu": True, "blocks": 8, "C": 16, "k": 3,
                                                                 "n": 8})
        claim.note(f"inner_relu={inner}: per-block gain ratio {ratio.value ** (1 / 8):.3f}, "
                   f"standard per-block gain {std_gain:.3f}")
    plain_ratio, inner_ratio = ratios[False].value, ratios[True].value
    claim.correct(f"plain depthwise→pointwise blocks amplify gradients {plain_ratio:.1f}× more than standard convs "
                  f"over 8 ReLU blocks ({plain_ratio ** (1 / 8):.3f}× per block: He gain counted twice per block), "
                  f"but with a ReLU between the halves the ratio is {inner_ratio:.2f}×")

"""Normalisation claims: BatchNorm, LayerNorm, RMSNorm (catalogue: gradcore/claims/normalisation.toml)."""
import math

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradcore.measure import normalisation as M
from gradcore.measure.candidates import structured_matrices, structured_vectors
from gradcore.measure.searched import searched


def _batch(scale: float, min_m: int, max_m: int = 12) -> st.SearchStrategy:
    """One feature's batch: m values whose spread is about ``scale``."""
    return st.integers(min_m, max_m).flatmap(lambda m: hnp.arrays(
        np.float64, m, elements=st.floats(-1.0, 1.0), unique=True)).map(lambda a: a * scale)


def _batches(scales: tuple[float, ...], sizes: tuple[int, ...], keep=lambda a: True) -> list:
    """Structured batches (scaled all-ones, alternating, one-hot) of each size that ``keep`` admits."""
    return [(f"{label}, m = {m}", a) for m in sizes for label, a in structured_vectors(m, scales) if keep(a)]


def _check_against_torch(claim, layer: str, module: str, size: int, eps: float, device: str, gamma=None) -> None:
    """gradcore's closed-form Jacobian and factory output against torch.nn's own ``module`` at the claim's
    size and ε, on inputs at scale 1 and at 10⁻³ (spread near √ε): rounding residuals, float64."""
    for quantity, what in (("jacobian", f"gradcore's closed-form J − autograd J of torch.nn.{module}"),
                           ("forward", f"gradcore.normalisation.{layer}(x) − torch.nn.{module}(x)")):
        gap = M.closed_form_gap(layer=layer, quantity=quantity, size=size, eps=eps, gamma=gamma, bound=1e-12,
                                device=device)
        claim.compare(f"max |{what}| / max |torch|, {size} values at scales 1 and 1e-3, ε = {eps:g} (rounding)",
                      claimed=0.0, measured=gap, relation="<=", atol=gap.bound)


@pytest.mark.claim("NORM-01")
def test_batchnorm_definition_matches_torch(claim, device):
    """NORM-01 (004 §3.3.4 Def. 3.3.10): the biased batch variance."""
    for dtype, bound in (("float32", 1e-5), ("float64", 1e-12)):   # ~100 ulp of O(5) outputs
        biased = M.batchnorm_definition_gap(variance="biased", bound=bound, dtype=dtype, device=device)
        claim.compare("max |torch BatchNorm1d(train) − Def. 3.3.10 with biased σ²_B|", claimed=0.0, measured=biased,
                      atol=bound)
        unbiased = M.batchnorm_definition_gap(variance="unbiased", dtype=dtype, device=device)
        claim.compare("max |torch − same formula with unbiased σ²| (must not match)", claimed=bound, measured=unbiased,
                      relation=">", atol=0.0)


@pytest.mark.claim("NORM-02")
def test_batchnorm_output_zero_mean_unit_variance(claim, device):
    """NORM-02 (002 §归一化层与架构细节): zero mean and unit variance."""
    eps = 1e-5
    spread = _batch(1.0, 2).filter(lambda a: a.std() >= 0.1)
    ends = _batches((0.1, 0.5, 1.0), (2, 3, 8, 12), keep=lambda a: a.std() >= 0.1)
    var_gap, _ = searched(spread, M.bn_output_moment, "x", candidates=ends, moment="variance_gap", eps=eps, device=device)
    claim.compare("sup |Var(BN(x)) − 1| over batches with σ_B ≥ 0.1 (σ²_B ≫ ε)", claimed=0.0, measured=var_gap,
                  relation="<=", atol=1e-3)
    mean, _ = searched(spread, M.bn_output_moment, "x", candidates=ends, moment="abs_mean", eps=eps, bound=1e-9,
                    device=device)
    claim.compare("sup |mean(BN(x))| over batches with σ_B ≥ 0.1", claimed=0.0, measured=mean, relation="<=", atol=1e-9)
    sigma = 1.5e-3                          # σ²_B = 2.25e-6, a fifth of ε
    small = [sigma * (-1.0) ** i for i in range(8)]
    var = M.bn_output_moment(x=small, moment="variance", eps=eps, device=device)
    claim.compare("output variance for a batch with σ²_B ~ ε", claimed=1.0, measured=var, atol=1e-3,
                  outside="σ²_B comparable to ε", counterexample={"x": small, "eps": eps})
    claim.correct(f"BN output has batch mean 0 and biased variance σ²_B/(σ²_B+ε), not 1: a batch with "
                  f"σ_B = {sigma:.2e} (ε = {eps:g}) gives variance {var:.3f}; it is ≈1 only when σ²_B ≫ ε "
                  f"(σ_B ≥ 0.1: |Var − 1| ≤ {var_gap:.1e})")


@pytest.mark.claim("NORM-03")
def test_batchnorm_jacobian_spectral_norm(claim, device):
    """NORM-03 (002 §归一化层与架构细节): the Jacobian's spectral norm is constrained by the batch σ."""
    eps, gamma = 1e-5, 1.5
    gap, _ = searched(_batch(3.0, 3), M.bn_jacobian_norm, "x", candidates=_batches((0.1, 1.0, 3.0), (3, 4, 8, 12)),
                   quantity="relative_gap", gamma=gamma, eps=eps, bound=1e-9, device=device)
    claim.compare("sup |‖J_BN‖₂ − γ/√(σ²_B+ε)| / (γ/√(σ²_B+ε)) over batches m ≥ 3", claimed=0.0, measured=gap,
                  relation="<=", atol=1e-9)
    pair = [-1.5, 1.5]
    pred2 = gamma / math.sqrt(float(np.var(pair)) + eps)
    j2 = M.bn_jacobian_norm(x=pair, gamma=gamma, eps=eps, device=device)
    claim.compare("‖J_BN‖₂ for a batch of m = 2", claimed=pred2, measured=j2, rtol=1e-6, outside="batch size m = 2",
                  counterexample={"x": pair, "gamma": gamma, "eps": eps})
    sup, _ = searched(_batch(1e-4, 3), M.bn_jacobian_norm, "x", candidates=_batches((1e-4,), (3, 8, 12)),
                   gamma=gamma, eps=eps, device=device)
    claim.compare("sup ‖J_BN‖₂ as σ_B → 0 equals the σ-free bound γ/√ε", claimed=gamma / math.sqrt(eps),
                  measured=sup, rtol=1e-3)
    _check_against_torch(claim, "batch_norm", "BatchNorm1d", 8, eps, device, gamma=gamma)
    claim.note(f"the σ-dependent 'constraint' γ/√(σ²+ε) is unbounded in practice: it reaches {sup:.0f} as σ_B → 0 "
               f"(found at {sup.witness})")
    claim.correct(f"for m ≥ 3, ‖J_BN‖₂ = γ/√(σ²_B+ε) (largest relative gap found {gap:.1e}); for m = 2 the "
                  f"σ-direction survives only through ε and ‖J‖₂ = γε/(σ²+ε)^{{3/2}} = {j2:.3g} vs "
                  f"γ/√(σ²+ε) = {pred2:.3g}; as σ_B → 0 the gain grows to γ/√ε = {sup:.0f}, so the "
                  "constraint does not keep the gain near 1")


@pytest.mark.claim("NORM-04")
def test_batchnorm_mitigates_vanishing(claim, device):
    """NORM-04 (003 §4 解决梯度消失 3): BN helps gradients flow, indirectly curing vanishing."""
    depths = (4, 8, 16, 24)
    factors = {}
    for act in ("sigmoid", "tanh"):
        for bn in (False, True):
            factors[act, bn] = M.bn_gradient_factor(activation=act, batchnorm=bn, depths=depths, device=device)
            means = [math.exp(np.mean(np.log(M.first_last_ratios(activation=act, batchnorm=bn, depth=d,
                                                                 device=device)))) for d in depths]
            claim.curve("bn-first-layer-gradient", f"{act} {'+BN' if bn else 'plain'} (width 32, 3 seeds)",
                        depths, means, xlabel="depth", ylabel="‖∂L/∂W₁‖ / ‖∂L/∂W_L‖ (geometric mean)", logy=True)
    plain, withbn = factors["sigmoid", False], factors["sigmoid", True]
    claim.compare("sigmoid plain net: per-layer gradient factor (vanishing baseline)", claimed=1.0,
                  measured=plain, relation="<", atol=0.0)
    claim.compare("sigmoid + BN: per-layer gradient factor (no vanishing)", claimed=1.0, measured=withbn, relation=">=")
    tanh_bn = factors["tanh", True]
    claim.compare("tanh + BN (Xavier): per-layer gradient factor = 1 (smooth flow)", claimed=1.0, measured=tanh_bn,
                  outside="tanh with Xavier init (no vanishing to cure)",
                  counterexample={"activation": "tanh", "depths": list(depths), "width": 32, "init": "xavier_normal"})
    lo, hi = tanh_bn.interval
    claim.correct(f"in sigmoid nets BN turns a per-layer gradient factor of {plain:.3f} into {withbn:.3f}, "
                  f"curing the vanishing; but in tanh nets (factor {factors['tanh', False]:.3f} without BN) "
                  f"BN at init makes gradients grow by {tanh_bn:.3f} per layer (95% CI {lo:.3f}–{hi:.3f}), "
                  "i.e. explode with depth")


@pytest.mark.claim("NORM-05")
def test_layernorm_independent_of_batch(claim, device):
    """NORM-05 (004 §3.3.4 Def. 3.3.11): LayerNorm does not depend on the batch size."""
    c = 6
    rows = st.integers(1, 6).flatmap(lambda b: hnp.arrays(np.float64, (b, c), elements=st.floats(-10, 10)))
    ends = [(f"{label}, {b} rows", a) for b in (1, 3, 6) for label, a in structured_matrices(b, c, bound=10.0)]
    dep, _ = searched(rows, M.ln_batch_dependence, "others", candidates=ends, features=c, bound=1e-12, device=device)
    claim.compare("sup over batches of the change of one sample's LN output/Jacobian with the rest of the batch",
                  claimed=0.0, measured=dep, relation="<=", atol=1e-12)
    shift = M.batch_dependence(make="batch_norm", width=c, sizes=(4,), shift=1.0, device=device)
    claim.compare("contrast: BN output of the same sample moves when the other samples shift by 1",
                  claimed=0.0, measured=shift, relation=">", atol=1e-6)


def _rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(a))))


@pytest.mark.claim("NORM-06")
def test_rmsnorm_definition_matches_torch(claim, device):
    """NORM-06 (004 §3.3.4 Def. 3.3.13): RMS(h) = √(1/C Σ h_i²), no ε."""
    c = 16
    vectors = st.tuples(hnp.arrays(np.float64, c, elements=st.floats(-1, 1)),
                        st.floats(-6, 3)).map(lambda t: t[0] * 10 ** t[1])
    ends = structured_vectors(c, (1e-6, 1e-4, 1e-2, 0.1, 1.0, 1e3))
    inside, _ = searched(vectors.filter(lambda a: _rms(a) >= 0.1), M.rmsnorm_definition_gap, "h", bound=1e-4,
                      candidates=[(k, a) for k, a in ends if _rms(a) >= 0.1], device=device)
    claim.compare("sup relative gap torch vs seed formula, RMS(h) ≥ 0.1 (float32)", claimed=0.0, measured=inside,
                  relation="<=", atol=1e-4)
    # h is measured in float32: a float64 draw that underflows to 0 there has no defined gap.
    worst, tiny = searched(vectors.filter(lambda a: _rms(a.astype(np.float32)) > 0), M.rmsnorm_definition_gap, "h",
                     candidates=ends, device=device)
    claim.compare("worst relative gap torch vs seed formula (small-norm h)", claimed=0.0, measured=worst, atol=1e-4,
                  outside="RMS(h)² comparable to torch's ε")
    eps = float(np.finfo(np.float32).eps)
    claim.correct(f"torch's nn.RMSNorm computes h/√(mean h² + ε)·γ with ε = finfo.eps = {eps:.3g} (float32): "
                  f"it matches the ε-free definition only while mean h² ≫ ε; at RMS(h) = {_rms(np.asarray(tiny)):.2e} ({worst.witness}) the outputs "
                  f"differ by {worst:.1%}")


@pytest.mark.claim("NORM-07")
def test_rmsnorm_is_layernorm_without_mean(claim, device):
    """NORM-07 (004 §3.3.4 Def. 3.3.13): RMSNorm is LayerNorm without the mean."""
    same = M.rmsnorm_vs_layernorm(quantity="output_gap", bound=1e-12, device=device)
    claim.compare("max |RMSNorm(h) − LN(h)| for zero-mean h", claimed=0.0, measured=same, atol=1e-12)
    shifted = M.rmsnorm_vs_layernorm(quantity="output_gap", shift=1.0, device=device)
    claim.compare("max |RMSNorm(h+1) − LN(h+1)| (shift by 1)", claimed=0.0, measured=shifted, atol=1e-6,
                  outside="inputs with non-zero mean")
    diff = M.rmsnorm_vs_layernorm(quantity="jacobian_gap", device=device)
    claim.compare("‖J_RMS − J_LN‖₂ at the same zero-mean h", claimed=0.0, measured=diff, atol=1e-6,
                  outside="derivatives (backward pass), not values")
    _check_against_torch(claim, "layer_norm", "LayerNorm", 16, 1e-6, device)
    _check_against_torch(claim, "rms_norm", "RMSNorm", 16, 1e-6, device)
    ln_mean = M.rmsnorm_vs_layernorm(quantity="ln_mean_gain", device=device)
    rms_mean = M.rmsnorm_vs_layernorm(quantity="rms_mean_gain", device=device)
    claim.correct(f"RMSNorm equals LN (β = 0) only on zero-mean inputs (gap {same:.1e}); a shift by 1 changes "
                  f"the gap to {shifted:.3f}, and even at zero mean the Jacobians differ by ‖·‖₂ = {diff:.3f}: "
                  f"LN's Jacobian annihilates the mean direction (‖J_LN·1‖ = {ln_mean:.1e}) "
                  f"while RMSNorm passes it (‖J_RMS·1‖ = {rms_mean:.3f})")

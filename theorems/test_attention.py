"""Attention claims: logit variance, scaling, saturation, spectrum (catalogue: gradcore/claims/attention.toml)."""
import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradcore.measure import attention as A
from gradcore.measure.candidates import structured_matrices
from gradcore.measure.searched import searched

D_KS = A.D_KS


@pytest.mark.claim("ATTN-01")
def test_dot_product_variance(claim, device):
    """ATTN-01 (004 §3.3.2 eq. 3.3.6): the variance of a dot product."""
    residual = A.dot_product_variance(form="residual")
    claim.compare("symbolic: general − d·Var q·Var k at μ_q = μ_k = 0 (value shown at d=64, v_q=2, v_k=0.5)",
                  claimed=0, measured=residual)
    for (muq, muk), outside, seed in (((0.0, 0.0), None, 1), ((1.0, 0.5), "non-zero means", 2)):
        mc = A.dot_product_variance_mc(mu_q=muq, mu_k=muk, seed=seed, device=device)
        claimed = A.dot_product_variance(form="seed", mu_q=muq, mu_k=muk)
        exact = A.dot_product_variance(form="general", mu_q=muq, mu_k=muk)
        ce = None if outside is None else {"d_k": 64, "mu_q": muq, "mu_k": muk, "var_q": 2.0, "var_k": 0.5}
        claim.compare(f"Monte Carlo Var(qᵀk), d_k = 64, μ = ({muq}, {muk})", claimed=claimed, measured=mc,
                      outside=outside, counterexample=ce)
        claim.compare(f"Monte Carlo vs general formula d(v_q v_k + μ_q² v_k + μ_k² v_q), μ = ({muq}, {muk})",
                      claimed=exact, measured=mc)
    claim.correct(f"for independent components Var(qᵀk) = {A.dot_product_variance_formula()}; it reduces to "
                  f"d_k·Var q·Var k only for zero means (μ_q = 1, μ_k = 0.5 at d_k = 64: measured {mc:.1f} vs "
                  f"claimed {claimed:.0f}, general {exact:.0f})")


def _sweep_curves(claim, statistic: str, figure: str, ylabel: str, device: str, logy: bool = False) -> None:
    for scaled in (True, False):
        label = f"{'scaled 1/√d_k' if scaled else 'unscaled'} ({A.N_KEYS} keys, 4 seeds)"
        claim.curve(figure, label, D_KS, A.sweep(statistic=statistic, scaled=scaled, device=device).mean(1),
                    xlabel="d_k", ylabel=ylabel, logx=True, logy=logy)


@pytest.mark.claim("ATTN-02")
def test_unscaled_softmax_near_one_hot(claim, device):
    """ATTN-02 (004 §3.3.2, 002 §注意力机制中的缩放): without scaling the softmax is near one-hot."""
    _sweep_curves(claim, "entropy", "attention-entropy-vs-dk", "mean row entropy (nats)", device)
    _sweep_curves(claim, "max", "attention-max-weight-vs-dk", "mean max attention weight", device)
    top = A.attention_statistic(statistic="max", scaled=False, d_ks=(D_KS[-1],), device=device)
    claim.compare(f"unscaled, d_k = {D_KS[-1]}: mean max weight ≥ 0.9 (near one-hot)", claimed=0.9, measured=top,
                  relation=">=")
    ent = A.attention_statistic(statistic="entropy_ratio", scaled=False, d_ks=(D_KS[-1],), device=device)
    claim.compare(f"unscaled, d_k = {D_KS[-1]}: entropy / log n ≤ 0.1", claimed=0.1, measured=ent, relation="<=")
    flat = A.attention_exponent(statistic="max", scaled=True, device=device)
    claim.compare("scaled: exponent of mean max weight in d_k (no drift)", claimed=0.0, measured=flat)


@pytest.mark.claim("ATTN-03")
def test_unscaled_query_gradient_grows_as_sqrt_dk(claim, device):
    """ATTN-03 (002 §注意力机制中的缩放): the unscaled query gradient grows as √d_k."""
    raw = A.raw_query_gradient_exponent(device=device)
    claim.compare("exponent of ‖∂(qᵀk)/∂q‖ in d_k (raw dot product)", claimed=0.5, measured=raw, atol=0.05)
    e = A.attention_exponent(statistic="grad", scaled=False, device=device)
    grads = A.sweep(statistic="grad", scaled=False, device=device).mean(1)
    claim.compare("exponent of mean ‖∂L/∂q‖ through unscaled attention, d_k = 4…1024", claimed=0.5, measured=e,
                  counterexample={"d_k": list(D_KS), "mean_grad_norm": grads, "keys": A.N_KEYS, "d_v": A.D_V})
    _sweep_curves(claim, "grad", "attention-query-grad-vs-dk", "mean ‖∂L/∂q‖", device, logy=True)
    claim.curve("attention-query-grad-vs-dk", "raw ‖∂(qᵀk)/∂q‖ = ‖k‖", D_KS, A.raw_query_gradients(device=device),
                xlabel="d_k", ylabel="mean ‖∂L/∂q‖", logx=True, logy=True)
    lo, hi = e.interval
    claim.correct(f"∂(qᵀk)/∂q = k does grow as d_k^{raw:.2f}, but through the softmax the "
                  f"unscaled query gradient grows only as d_k^{e:.2f} (95% CI {lo:.2f}…{hi:.2f}) over d_k = 4…1024: "
                  f"saturation cancels most of the √d_k growth (mean ‖∂L/∂q‖ {grads[0]:.2f} → {grads[-1]:.2f})")


@pytest.mark.claim("ATTN-04")
def test_scaling_keeps_logits_and_gradients_order_one(claim, device):
    """ATTN-04 (002 §注意力机制中的缩放): 1/√d_k keeps the logit variance near 1 and the gradient O(1)."""
    var = A.attention_statistic(statistic="var", scaled=True, d_ks=D_KS, device=device)
    claim.compare("scaled logit variance (unit-variance q, k), all d_k", claimed=1.0, measured=var)
    for key, what in (("var", "logit variance"), ("grad", "mean ‖∂L/∂q‖")):
        e = A.attention_exponent(statistic=key, scaled=True, device=device)
        claim.compare(f"exponent of scaled {what} in d_k", claimed=0.0, measured=e)
    wide = A.attention_statistic(statistic="var", scaled=True, d_ks=(256,), std_q=2.0, std_k=2.0, device=device)
    claim.compare("scaled logit variance with Var q = Var k = 4", claimed=1.0, measured=wide, atol=0.1,
                  outside="q, k without unit variance", counterexample={"d_k": 256, "std_q": 2.0, "std_k": 2.0})
    claim.correct(f"1/√d_k makes the logit variance Var q·Var k, independent of d_k (measured {var:.3f} for unit "
                  f"variances) and the query gradient O(1); with Var q = Var k = 4 the scaled logits have variance {wide:.1f}")


def _gap(z: np.ndarray) -> float:
    top = np.sort(z)[-2:]
    return float(top[1] - top[0])


def _logit_candidates(keep=lambda z: True) -> list:
    """Structured logit vectors in [−3, 3]: all-equal ties, two tied maxima above the rest, one large
    entry, one entry just 0.05 above the rest, an evenly spread row; the ones ``keep`` admits."""
    out = []
    for n in range(2, 9):
        rest = np.full(n, -3.0)
        shapes = {"all equal 0": np.zeros(n), "all equal 3": np.full(n, 3.0), "two tied at 3": np.r_[3.0, 3.0, rest[2:]],
                  "one large entry": np.r_[3.0, rest[1:]], "one entry 0.05 above": np.r_[0.05, np.zeros(n - 1)],
                  "top two 0.05 apart": np.r_[3.0, 2.95, rest[2:]], "evenly spread": np.linspace(-3, 3, n)}
        out += [(f"{name}, n = {n}", z) for name, z in shapes.items() if len(z) == n and keep(z)]
    return out


@pytest.mark.claim("ATTN-05")
def test_saturated_softmax_gradient_vanishes(claim, device):
    """ATTN-05 (002 §注意力机制中的缩放): in saturation the softmax gradient tends to zero."""
    logits = st.integers(2, 8).flatmap(lambda n: hnp.arrays(np.float64, n, elements=st.floats(-3, 3)))
    scale = 1e3
    unique = lambda z: _gap(z) >= 0.05   # noqa: E731
    inside, _ = searched(logits.filter(unique), A.softmax_gain, "z", candidates=_logit_candidates(unique),
                         scale=scale, device=device)
    claim.compare(f"sup ‖J_softmax‖₂ at logits ×{scale:g} with a unique maximum (gap ≥ 0.05)", claimed=0.0,
                  measured=inside, relation="<=", atol=1e-12)
    tie, z = searched(logits, A.softmax_gain, "z", candidates=_logit_candidates(), scale=scale, device=device)
    claim.compare(f"‖J_softmax‖₂ at logits ×{scale:g} (search over all logits)", claimed=0.0, measured=tie,
                  relation="<=", atol=1e-3, outside="tied largest logits", counterexample={"z": z, "scale": scale})
    scales = [0.1, 1, 3, 10, 30, 100]
    spread = np.linspace(-1, 1, 8).tolist()
    claim.curve("softmax-gain-vs-scale", "8 distinct logits", scales,
                [A.softmax_gain(z=spread, scale=c, device=device).value for c in scales],
                xlabel="logit scale", ylabel="‖∂softmax/∂z‖₂", logx=True, logy=True)
    claim.correct(f"saturation kills the softmax gradient only when the top logit is unique (largest gain found "
                  f"{inside:.1e}): with k tied maxima the softmax tends to uniform over them and ‖J‖₂ → 1/k "
                  f"(found {tie:.3f} at z = {z}, {tie.witness})")


@pytest.mark.claim("ATTN-06")
def test_attention_matrix_spectrum(claim, device):
    """ATTN-06 (004 §3.3.3 注意力权重的谱结构): A is non-negative, row-stochastic, spectral radius 1."""
    square = st.integers(1, 8).flatmap(lambda n: st.tuples(
        hnp.arrays(np.float64, (n, 4), elements=st.floats(-6, 6)),
        hnp.arrays(np.float64, (n, 4), elements=st.floats(-6, 6))))
    ends = [(f"q = k = {label}, n = {n}", (m, m)) for n in (1, 2, 4, 8)
            for label, m in structured_matrices(n, 4, bound=6.0)]
    ends += [(f"q = −k = {label}, n = {n}", (m, -m)) for n in (2, 8) for label, m in structured_matrices(n, 4, bound=6.0)]
    dev, qk = searched(square, A.attention_matrix_deviation, "qk", candidates=ends, bound=1e-10, device=device)
    claim.compare("largest deviation found by targeted search", claimed=0.0, measured=dev, relation="<=", atol=1e-10)
    parts = {p: A.attention_matrix_deviation(qk=qk, part=p, device=device) for p in A.DEVIATIONS[1:]}
    claim.note("ρ(A) = 1 means the eigenvalue 1 lies on the unit circle: 'in the unit circle' must read as the closed "
               f"disk; deviations at the worst case found ({dev.witness}): "
               f"{', '.join(f'{k} {v:.1e}' for k, v in parts.items())}")

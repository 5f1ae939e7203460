"""Normalisation claims: BatchNorm, LayerNorm, RMSNorm (catalogue: gradcore/claims/normalisation.toml)."""
import math

import numpy as np
import pytest
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import nn

from gradcore import norms
from gradcore.spectral import spectral_norm
from gradcore.stats import slope_ci
from gradcore.verify.search import find_counterexample, maximize

F64 = torch.float64


def _batch(scale: float, min_m: int, max_m: int = 12) -> st.SearchStrategy:
    """One feature's batch: m values whose spread is about ``scale``."""
    return st.integers(min_m, max_m).flatmap(lambda m: hnp.arrays(
        np.float64, m, elements=st.floats(-1.0, 1.0), unique=True)).map(lambda a: a * scale)


@pytest.mark.claim("NORM-01")
def test_batchnorm_definition_matches_torch(claim, device):
    """004 §3.3.4 Def. 3.3.10: "σ_B² = 1/m Σ_i (x_i − μ_B)²" (biased batch variance)."""
    eps = 1e-5
    for dtype in (torch.float32, F64):
        x = torch.randn(8, 5, dtype=dtype, device=device) * torch.linspace(0.5, 3, 5, dtype=dtype, device=device) + 1
        bn = norms.batch_norm(5, eps=eps).to(device, dtype).train()
        with torch.no_grad():
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.uniform_(-1.0, 1.0)
            out = bn(x)
            mu = x.mean(0)
            biased = (bn.weight * (x - mu) / torch.sqrt(((x - mu) ** 2).mean(0) + eps) + bn.bias)
            unbiased = (bn.weight * (x - mu) / torch.sqrt(x.var(0, unbiased=True) + eps) + bn.bias)
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        claim.check("max |torch BatchNorm1d(train) − Def. 3.3.10 with biased σ²_B|", claimed=0.0,
                    measured=(out - biased).abs().max(), atol=tol, dtype=dtype)
        claim.check("max |torch − same formula with unbiased σ²| (must not match)", claimed=tol,
                    measured=(out - unbiased).abs().max(), relation=">", atol=0.0, dtype=dtype)


@pytest.mark.claim("NORM-02")
def test_batchnorm_output_zero_mean_unit_variance(claim, device):
    """002 §归一化层与架构细节: "使其具有零均值和单位方差"."""
    eps = 1e-5
    bn = norms.batch_norm(1, eps=eps, affine=False).to(device, F64)

    def moments(a: np.ndarray) -> tuple[float, float]:
        with torch.no_grad():
            y = bn(torch.as_tensor(a, device=device).view(-1, 1))
        return float(y.mean()), float(y.var(unbiased=False))

    def violates(a: np.ndarray) -> bool:
        mean, var = moments(a)
        return abs(mean) > 1e-9 or abs(var - 1.0) > 1e-3

    inside = find_counterexample(_batch(1.0, 2).filter(lambda a: a.std() >= 0.1), violates)
    claim.check("counterexamples with σ_B ≥ 0.1 (σ²_B ≫ ε)", claimed=0, measured=inside is not None,
                holds=inside is None, dtype=F64)
    small = find_counterexample(_batch(1e-2, 2).map(lambda a: a * 0.3), violates)
    mean, var = moments(small) if small is not None else (0.0, 1.0)
    sigma = float(np.std(small)) if small is not None else 1.0
    claim.check("output variance for a batch with σ²_B ~ ε", claimed=1.0, measured=var, atol=1e-3,
                outside="σ²_B comparable to ε", dtype=F64,
                counterexample={"x": small, "eps": eps, "snippet":
                                f"import torch; from gradcore import norms; bn = norms.batch_norm(1, eps={eps}, affine=False).double(); "
                                f"y = bn(torch.tensor({[float(a) for a in small]}, dtype=torch.float64).view(-1, 1)); print(y.var(unbiased=False))"}
                if small is not None else None)
    claim.correct(f"BN output has batch mean 0 and biased variance σ²_B/(σ²_B+ε), not 1: a batch with "
                  f"σ_B = {sigma:.2e} (ε = {eps:g}) gives variance {var:.3f}; it is ≈1 only when σ²_B ≫ ε")


@pytest.mark.claim("NORM-03")
def test_batchnorm_jacobian_spectral_norm(claim, device):
    """002 §归一化层与架构细节: "BN的归一化操作的雅可比矩阵，其谱范数受到批内统计量（特别是标准差 σ）的约束"."""
    eps, gamma = 1e-5, 1.5
    bn = norms.batch_norm(1, eps=eps).to(device, F64)
    with torch.no_grad():
        bn.weight.fill_(gamma)

    def gap(a: np.ndarray) -> tuple[float, float]:
        x = torch.as_tensor(a, device=device).view(-1, 1)
        measured = spectral_norm(norms.module_jacobian(bn, x))
        predicted = gamma / math.sqrt(float(x.var(unbiased=False)) + eps)
        return measured, predicted

    def violates(a: np.ndarray) -> bool:
        measured, predicted = gap(a)
        return abs(measured - predicted) > 1e-9 * predicted

    inside = find_counterexample(_batch(3.0, 3), violates)
    claim.check("counterexamples to ‖J_BN‖₂ = γ/√(σ²_B+ε) over batches m ≥ 3", claimed=0,
                measured=inside is not None, holds=inside is None, dtype=F64)
    pair = find_counterexample(_batch(3.0, 2, 2), violates)
    j2, pred2 = gap(pair) if pair is not None else (0.0, 0.0)
    claim.check("‖J_BN‖₂ for a batch of m = 2", claimed=pred2, measured=j2, rtol=1e-6,
                outside="batch size m = 2", dtype=F64,
                counterexample={"x": pair, "gamma": gamma, "eps": eps, "snippet":
                                f"import torch; from gradcore import norms, spectral; bn = norms.batch_norm(1, eps={eps}).double(); "
                                f"bn.weight.data.fill_({gamma}); x = torch.tensor({[float(a) for a in pair]}, dtype=torch.float64).view(-1, 1); "
                                "print(spectral.spectral_norm(norms.module_jacobian(bn, x)), "
                                f"{gamma} / (x.var(unbiased=False) + {eps}) ** 0.5)"} if pair is not None else None)
    _, sup = maximize(_batch(1.0, 3).map(lambda a: a * 1e-4), lambda a: gap(a)[0])
    claim.check("sup ‖J_BN‖₂ as σ_B → 0 equals the σ-free bound γ/√ε", claimed=gamma / math.sqrt(eps),
                measured=sup, rtol=1e-3, dtype=F64)
    claim.note(f"the σ-dependent 'constraint' γ/√(σ²+ε) is unbounded in practice: it reaches {sup:.0f} as σ_B → 0")
    claim.correct(f"for m ≥ 3, ‖J_BN‖₂ = γ/√(σ²_B+ε) exactly (no counterexample found); for m = 2 the "
                  f"σ-direction survives only through ε and ‖J‖₂ = γε/(σ²+ε)^{{3/2}} = {j2:.3g} vs "
                  f"γ/√(σ²+ε) = {pred2:.3g}; as σ_B → 0 the gain grows to γ/√ε = {sup:.0f}, so the "
                  "constraint does not keep the gain near 1")


def _mlp(depth: int, width: int, act: type[nn.Module], bn: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        lin = nn.Linear(width, width)
        nn.init.xavier_normal_(lin.weight)
        nn.init.zeros_(lin.bias)
        layers += [lin, norms.batch_norm(width)] if bn else [lin]
        layers.append(act())
    return nn.Sequential(*layers)


def _first_last_ratio(depth: int, act: type[nn.Module], bn: bool, seed: int, device: str) -> float:
    """‖∂L/∂W_1‖ / ‖∂L/∂W_depth‖ at Xavier init, L = ⟨r, output⟩ with random r."""
    torch.manual_seed(seed)
    net = _mlp(depth, 32, act, bn).to(device)
    x = torch.randn(32, 32, device=device)
    out = net(x)
    out.backward(torch.randn_like(out))
    lins = [m for m in net if isinstance(m, nn.Linear)]
    return float(lins[0].weight.grad.norm() / lins[-1].weight.grad.norm())


@pytest.mark.claim("NORM-04")
def test_batchnorm_mitigates_vanishing(claim, device):
    """003 §4 解决梯度消失 3: "有助于梯度更顺畅地流动，间接缓解了梯度消失"."""
    depths, seeds = (4, 8, 16, 24), range(3)
    factors = {}
    for act in (nn.Sigmoid, nn.Tanh):
        for bn in (False, True):
            xs, ys = [], []
            for depth in depths:
                logs = [math.log(_first_last_ratio(depth, act, bn, s, device)) for s in seeds]
                xs += [depth - 1] * len(logs)
                ys += logs
            slope, lo, hi = slope_ci(xs, ys)
            factors[act.__name__, bn] = tuple(math.exp(t) for t in (slope, lo, hi))
            means = [float(np.mean(ys[i * len(seeds):(i + 1) * len(seeds)])) for i in range(len(depths))]
            claim.curve("bn-first-layer-gradient", f"{act.__name__.lower()} {'+BN' if bn else 'plain'} (width 32, 3 seeds)",
                        depths, [math.exp(m) for m in means], xlabel="depth",
                        ylabel="‖∂L/∂W₁‖ / ‖∂L/∂W_L‖ (geometric mean)", logy=True)
    plain, withbn = factors["Sigmoid", False], factors["Sigmoid", True]
    claim.check("sigmoid plain net: per-layer gradient factor (vanishing baseline)", claimed=1.0,
                measured=plain[0], interval=plain[1:], relation="<", atol=0.0, dtype=torch.float32)
    claim.check("sigmoid + BN: per-layer gradient factor (no vanishing)", claimed=1.0,
                measured=withbn[0], interval=withbn[1:], relation=">=", dtype=torch.float32)
    tanh_bn = factors["Tanh", True]
    claim.check("tanh + BN (Xavier): per-layer gradient factor = 1 (smooth flow)", claimed=1.0,
                measured=tanh_bn[0], interval=tanh_bn[1:], outside="tanh with Xavier init (no vanishing to cure)",
                dtype=torch.float32, counterexample={
                    "activation": "tanh", "depth": 24, "width": 32, "batch": 32, "init": "xavier_normal",
                    "first_over_last": math.exp(23 * math.log(tanh_bn[0])),
                    "snippet": "import torch; from torch import nn; from gradcore import norms; torch.manual_seed(0); "
                               "L = []\nfor _ in range(24): lin = nn.Linear(32, 32); nn.init.xavier_normal_(lin.weight); L += [lin, norms.batch_norm(32), nn.Tanh()]\n"
                               "net = nn.Sequential(*L); y = net(torch.randn(32, 32)); y.backward(torch.randn_like(y)); "
                               "print(L[0].weight.grad.norm() / L[-3].weight.grad.norm())"})
    claim.correct(f"in sigmoid nets BN turns a per-layer gradient factor of {plain[0]:.3f} into {withbn[0]:.3f}, "
                  f"curing the vanishing; but in tanh nets (factor {factors['Tanh', False][0]:.3f} without BN) "
                  f"BN at init makes gradients grow by {tanh_bn[0]:.3f} per layer "
                  f"(95% CI {tanh_bn[1]:.3f}–{tanh_bn[2]:.3f}), i.e. explode with depth")


@pytest.mark.claim("NORM-05")
def test_layernorm_independent_of_batch(claim, device):
    """004 §3.3.4 Def. 3.3.11: "层归一化的关键优势是它不依赖于batch size"."""
    c = 6
    ln = norms.layer_norm(c).to(device, F64)
    bn = norms.batch_norm(c).to(device, F64)
    with torch.no_grad():
        ln.weight.uniform_(0.5, 2.0)
    rows = st.integers(1, 6).flatmap(lambda b: hnp.arrays(np.float64, (b, c), elements=st.floats(-10, 10)))
    probe = torch.randn(1, c, dtype=F64, device=device) * 2 + 0.5
    alone_y, alone_j = ln(probe).detach(), norms.module_jacobian(ln, probe)

    def violates(others: np.ndarray) -> bool:
        x = torch.cat([probe, torch.as_tensor(others, device=device)])
        y = ln(x).detach()
        jac = norms.module_jacobian(ln, x).reshape(len(x), c, len(x), c)
        off = jac[0, :, 1:, :].abs().max()
        return bool((y[0] - alone_y[0]).abs().max() > 1e-12 or (jac[0, :, 0, :] - alone_j).abs().max() > 1e-12
                    or off > 0)

    found = find_counterexample(rows, violates)
    claim.check("counterexamples: LN output/Jacobian of a sample change with the rest of the batch",
                claimed=0, measured=found is not None, holds=found is None, dtype=F64)
    two = torch.cat([probe, torch.randn(3, c, dtype=F64, device=device)])
    with torch.no_grad():
        shift = float((bn(two)[0] - bn(torch.cat([probe, two[1:] + 1.0]))[0]).abs().max())
    claim.check("contrast: BN output of the same sample moves when the other samples shift by 1",
                claimed=0.0, measured=shift, relation=">", atol=1e-6, dtype=F64)


@pytest.mark.claim("NORM-06")
def test_rmsnorm_definition_matches_torch(claim, device):
    """004 §3.3.4 Def. 3.3.13: "ĥ = h / RMS(h) ⊙ γ, RMS(h) = √(1/C Σ h_i²)" (no ε)."""
    c = 16
    rn = norms.rms_norm(c).to(device)                       # torch's default ε = finfo(float32).eps
    with torch.no_grad():
        rn.weight.uniform_(0.5, 2.0)
    eps = torch.finfo(torch.float32).eps

    def rel_gap(a: np.ndarray) -> float:
        h = torch.as_tensor(a, dtype=torch.float32, device=device)
        with torch.no_grad():
            seed_formula = h / torch.sqrt(h.pow(2).mean()) * rn.weight
            return float((rn(h) - seed_formula).abs().max() / seed_formula.abs().max())

    def rms(a: np.ndarray) -> float:
        return float(np.sqrt(np.mean(np.square(a))))

    vectors = st.tuples(hnp.arrays(np.float64, c, elements=st.floats(-1, 1)),
                        st.floats(-6, 3)).map(lambda t: t[0] * 10 ** t[1])
    inside = find_counterexample(vectors.filter(lambda a: rms(a) >= 0.1), lambda a: rel_gap(a) > 1e-4)
    claim.check("counterexamples with RMS(h) ≥ 0.1 (float32)", claimed=0, measured=inside is not None,
                holds=inside is None, dtype=torch.float32)
    # h is measured in float32: a float64 draw that underflows to 0 there has no defined gap.
    tiny, gap = maximize(vectors.filter(lambda a: rms(a.astype(np.float32)) > 0), rel_gap)
    claim.check("worst relative gap torch vs seed formula (small-norm h)", claimed=0.0, measured=gap, atol=1e-4,
                outside="RMS(h)² comparable to torch's ε", dtype=torch.float32,
                counterexample={"h": tiny, "snippet": "import torch; from gradcore import norms; rn = norms.rms_norm(16); "
                                f"h = torch.tensor({[float(a) for a in tiny]}); print(rn(h), h / h.pow(2).mean().sqrt())"})
    claim.correct(f"torch's nn.RMSNorm computes h/√(mean h² + ε)·γ with ε = finfo.eps = {eps:.3g} (float32): "
                  f"it matches the ε-free definition only while mean h² ≫ ε; at RMS(h) = {rms(tiny):.2e} the outputs "
                  f"differ by {gap:.1%}")


@pytest.mark.claim("NORM-07")
def test_rmsnorm_is_layernorm_without_mean(claim, device):
    """004 §3.3.4 Def. 3.3.13: "RMSNorm是层归一化的一种简化变体 … RMSNorm不需要计算均值"."""
    c, eps = 16, 1e-6
    ln = norms.layer_norm(c, eps=eps).to(device, F64)
    rn = norms.rms_norm(c, eps=eps).to(device, F64)
    with torch.no_grad():
        ln.weight.uniform_(0.5, 2.0)
        ln.bias.zero_()
        rn.weight.copy_(ln.weight)
    h = torch.randn(c, dtype=F64, device=device)
    h0 = h - h.mean()
    with torch.no_grad():
        same = float((rn(h0) - ln(h0)).abs().max())
        shifted = float((rn(h0 + 1.0) - ln(h0 + 1.0)).abs().max())
    claim.check("max |RMSNorm(h) − LN(h)| for zero-mean h", claimed=0.0, measured=same, atol=1e-12, dtype=F64)
    claim.check("max |RMSNorm(h+1) − LN(h+1)| (shift by 1)", claimed=0.0, measured=shifted, atol=1e-6,
                outside="inputs with non-zero mean", dtype=F64,
                counterexample={"h": (h0 + 1.0).cpu(), "eps": eps, "snippet":
                                "import torch; from gradcore import norms; ln = norms.layer_norm(16, eps=1e-6); "
                                "rn = norms.rms_norm(16, eps=1e-6); h = torch.randn(16); h = h - h.mean() + 1; print(ln(h) - rn(h))"})
    j_ln = norms.layernorm_jacobian(h0, eps, ln.weight.detach())
    j_rms = norms.rmsnorm_jacobian(h0, eps, rn.weight.detach())
    diff = spectral_norm(j_rms - j_ln)
    ones = torch.ones(c, dtype=F64, device=device) / math.sqrt(c)
    claim.check("‖J_RMS − J_LN‖₂ at the same zero-mean h", claimed=0.0, measured=diff, atol=1e-6,
                outside="derivatives (backward pass), not values", dtype=F64,
                counterexample={"h": h0.cpu(), "snippet": "import torch; from gradcore import norms; "
                                "h = torch.randn(16); h = h - h.mean(); "
                                "print(norms.rmsnorm_jacobian(h, 1e-6) - norms.layernorm_jacobian(h, 1e-6))"})
    claim.correct(f"RMSNorm equals LN (β = 0) only on zero-mean inputs (gap {same:.1e}); a shift by 1 changes "
                  f"the gap to {shifted:.3f}, and even at zero mean the Jacobians differ by ‖·‖₂ = {diff:.3f}: "
                  f"LN's Jacobian annihilates the mean direction (‖J_LN·1‖ = {float((j_ln @ ones).norm()):.1e}) "
                  f"while RMSNorm passes it (‖J_RMS·1‖ = {float((j_rms @ ones).norm()):.3f})")

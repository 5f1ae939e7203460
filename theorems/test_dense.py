"""DenseNet aggregation claims (catalogue: gradcore/claims/dense.toml)."""
from __future__ import annotations

import math

import pytest

from gradcore.measure import dense as M

KS = (2, 4, 8, 16, 32)
# variance-preserving initialisations (each layer keeps the gradient scale) and two that are not
INITS = {"linear, gain 1": ("identity", 1.0), "ReLU, He gain √2": ("relu", math.sqrt(2)),
         "tanh, gain 1": ("tanh", 1.0), "ReLU, gain 1": ("relu", 1.0)}
PRESERVING = ("linear, gain 1", "ReLU, He gain √2")


@pytest.mark.claim("DENSE-01")
def test_concat_jacobian_grows_like_sqrt_k(claim, device):
    """DENSE-01 (002 §残差与密集连接): concatenation grows ‖J‖ roughly like √k."""
    exps = {}
    for init, (act, gain) in INITS.items():
        exps[init] = m = M.jacobian_slope(aggregation="concat", activation=act, gain=gain, ks=KS, device=device)
        extra = {} if init in PRESERVING else dict(
            outside="layer Jacobians that shrink the gradient (not variance-preserving)",
            counterexample={"aggregation": "concat", "init": init, "width": m.sizes["width"], "k": list(KS)})
        claim.compare(f"log-log exponent of ‖J‖₂ vs k, concat, {init}", claimed=0.5, measured=m, **extra)
        claim.curve("dense-jacobian-vs-k", f"concat, {init} (width {m.sizes['width']}, {m.n} seeds)", KS,
                    M.jacobian_curve(aggregation="concat", activation=act, gain=gain, ks=KS, device=device),
                    xlabel="connections k", ylabel="‖∂out/∂x‖₂", logx=True, logy=True)
    claim.correct("‖J‖₂ ∝ k^p for concatenation with p = "
                  + ", ".join(f"{e:.2f} [{e.interval[0]:.2f}, {e.interval[1]:.2f}] ({i})" for i, e in exps.items())
                  + ": √k holds when every layer preserves the gradient scale, and growth is slower otherwise.")


@pytest.mark.claim("DENSE-02")
def test_concat_milder_than_sum(claim, device):
    """DENSE-02 (002 §残差与密集连接): concatenation passes gradients more stably than summation."""
    ks = KS[:4]
    for init in ("linear, gain 1", "tanh, gain 1"):
        act, gain = INITS[init]
        claim.compare(f"log(‖J_sum‖/‖J_concat‖) at k = {ks[-1]}, {init}", claimed=0.0, relation=">",
                      measured=M.sum_over_concat(activation=act, gain=gain, k=ks[-1], device=device))
        rate = M.jacobian_slope(aggregation="sum", activation=act, gain=gain, ks=ks, axis="k", device=device)
        exponent = {agg: M.jacobian_slope(aggregation=agg, activation=act, gain=gain, ks=ks, device=device)
                    for agg in ("sum", "concat")}
        claim.note(f"{init}: sum grows ×{math.exp(rate):.3f} per connection (log-linear fit "
                   f"[{rate.interval[0]:.3f}, {rate.interval[1]:.3f}]); log-log exponent {exponent['sum']:.2f} "
                   f"vs concat {exponent['concat']:.2f}")
        claim.compare(f"sum: per-connection log-growth rate of ‖J‖₂ (exponential in k), {init}", claimed=0.0,
                      measured=rate, relation=">")
        claim.curve("dense-jacobian-vs-k", f"sum, {init} (width {rate.sizes['width']}, {rate.n} seeds)", ks,
                    M.jacobian_curve(aggregation="sum", activation=act, gain=gain, ks=ks, device=device),
                    xlabel="connections k", ylabel="‖∂out/∂x‖₂", logx=True, logy=True)

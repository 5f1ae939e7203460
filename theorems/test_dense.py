"""DenseNet aggregation claims (catalogue: gradcore/claims/dense.toml)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gradcore.dense import DenseBlock, jacobian_norm
from gradcore.stats import mean_ci, per_seed_slope_ci

F64 = torch.float64
KS = [2, 4, 8, 16, 32]
WIDTH, SEEDS = 16, range(5)
# variance-preserving initialisations (each layer keeps the gradient scale) and two that are not
INITS = {"linear, gain 1": ("identity", 1.0), "ReLU, He gain √2": ("relu", math.sqrt(2)),
         "tanh, gain 1": ("tanh", 1.0), "ReLU, gain 1": ("relu", 1.0)}


def _norms(aggregation: str, init: str, ks: list[int], device: str) -> np.ndarray:
    """‖∂block/∂x‖₂ for each seed (rows) and number of connections k (columns)."""
    act, gain = INITS[init]
    out = np.zeros((len(SEEDS), len(ks)))
    for i, seed in enumerate(SEEDS):
        for j, k in enumerate(ks):
            torch.manual_seed(1000 * seed + k)
            block = DenseBlock(k, WIDTH, aggregation, activation=act, gain=gain, dtype=F64, device=device)
            out[i, j] = jacobian_norm(block, torch.randn(WIDTH, dtype=F64, device=device))
    return out


@pytest.mark.claim("DENSE-01")
def test_concat_jacobian_grows_like_sqrt_k(claim, device):
    """002 §残差与密集连接: "拼接聚合 … 其雅可比矩阵范数的增长与连接数量 k 的关系更为温和（大致为 √k 的比例）"."""
    exps = {}
    for init in INITS:
        norms = _norms("concat", init, KS, device)
        exps[init] = per_seed_slope_ci(np.log(KS), norms)
        preserving = init in ("linear, gain 1", "ReLU, He gain √2")
        extra = {} if preserving else dict(
            outside="layer Jacobians that shrink the gradient (not variance-preserving)",
            counterexample={"aggregation": "concat", "init": init, "width": WIDTH, "k": KS,
                            "mean_norms": np.exp(np.log(norms).mean(0)),
                            "snippet": (f"import torch; from gradcore.dense import *; torch.manual_seed(0); "
                                        f"print([jacobian_norm(DenseBlock(k, {WIDTH}, 'concat', activation="
                                        f"'{INITS[init][0]}', gain={INITS[init][1]}, dtype=torch.float64), "
                                        f"torch.randn({WIDTH}, dtype=torch.float64)) for k in {KS}])")})
        claim.check(f"log-log exponent of ‖J‖₂ vs k, concat, {init}", claimed=0.5, measured=exps[init][0],
                    interval=exps[init][1:], dtype=F64, **extra)
        claim.curve("dense-jacobian-vs-k", f"concat, {init} (width {WIDTH}, {len(SEEDS)} seeds)", KS,
                    np.exp(np.log(norms).mean(0)), xlabel="connections k", ylabel="‖∂out/∂x‖₂",
                    logx=True, logy=True)
    claim.correct("‖J‖₂ ∝ k^p for concatenation with p = "
                  + ", ".join(f"{e[0]:.2f} [{e[1]:.2f}, {e[2]:.2f}] ({i})" for i, e in exps.items())
                  + ": √k holds when every layer preserves the gradient scale, and growth is slower otherwise.")


@pytest.mark.claim("DENSE-02")
def test_concat_milder_than_sum(claim, device):
    """002 §残差与密集连接: "与求和聚合相比，拼接聚合在反向传播中能更稳定地传递梯度信息"."""
    ks = KS[:4]
    for init in ("linear, gain 1", "tanh, gain 1"):
        cat, add = _norms("concat", init, ks, device), _norms("sum", init, ks, device)
        log_ratio = mean_ci(np.log(add[:, -1] / cat[:, -1]))
        claim.check(f"log(‖J_sum‖/‖J_concat‖) at k = {ks[-1]}, {init}", claimed=0.0, measured=log_ratio[0],
                    relation=">", interval=log_ratio[1:], dtype=F64)
        rate = per_seed_slope_ci(ks, add)
        claim.note(f"{init}: sum grows ×{math.exp(rate[0]):.3f} per connection (log-linear fit "
                   f"[{rate[1]:.3f}, {rate[2]:.3f}]); log-log exponent {per_seed_slope_ci(np.log(ks), add)[0]:.2f} "
                   f"vs concat {per_seed_slope_ci(np.log(ks), cat)[0]:.2f}")
        claim.check(f"sum: per-connection log-growth rate of ‖J‖₂ (exponential in k), {init}", claimed=0.0,
                    measured=rate[0], relation=">", interval=rate[1:], dtype=F64)
        claim.curve("dense-jacobian-vs-k", f"sum, {init} (width {WIDTH}, {len(SEEDS)} seeds)", ks,
                    np.exp(np.log(add).mean(0)), xlabel="connections k", ylabel="‖∂out/∂x‖₂",
                    logx=True, logy=True)

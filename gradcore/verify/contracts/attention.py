"""Contract for an attention variant ``attend(q, k, v) -> out`` on (L, d) tensors.

Claims (catalogue ATTN): 004 §3.3.3 "注意力权重矩阵A是非负行随机矩阵，其谱半径为1";
002 §归一化层与架构细节 and 004 (3.3.6): without 1/√d_k the softmax saturates and the
gradient w.r.t. the queries grows like √d_k; with it both stay O(1). The attention
matrix of a black-box variant is read off as ``attend(q, k, I)`` (values = identity).
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ...spectral import spectral_radius
from ...stats import loglog_exponent
from .base import Clause, Outcome, Settings, callable_or_fail, probe

KIND = "attention"
LENGTH, DIMS = 16, (16, 64, 256)
Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class AttentionSubject:
    name: str
    attend: Attend
    setup: str


def smoke(attend: Attend, settings: Settings) -> None:
    q, k, v = (settings.randn(LENGTH, 8, offset=o) for o in (1, 2, 3))
    probe(lambda: attend(q, k, v), what="attention", on=f"random q, k, v of shape ({LENGTH}, 8)",
          shape=tuple(v.shape))


def subject(obj: Any, name: str, setup: str, settings: Settings) -> AttentionSubject:
    callable_or_fail(obj)
    smoke(obj, settings)
    return AttentionSubject(name, obj, setup)


def looks_like(obj: Any, settings: Settings) -> bool:
    """A function of exactly three required positional arguments (q, k, v)."""
    if inspect.isclass(obj) or not callable(obj):
        return False
    try:
        params = [p for p in inspect.signature(obj).parameters.values()
                  if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(params) != 3:
            return False
        smoke(obj, settings)
        return True
    except Exception:
        return False


def _weights(s: AttentionSubject, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    eye = torch.eye(k.shape[0], dtype=q.dtype, device=q.device)
    return s.attend(q, k, eye)


def row_stochastic(s: AttentionSubject, settings: Settings) -> Outcome:
    worst_neg, worst_sum, worst_rho = 0.0, 0.0, 0.0
    for k_ in range(settings.seeds):
        q, k = settings.randn(LENGTH, 32, offset=10 + k_), settings.randn(LENGTH, 32, offset=20 + k_)
        a = _weights(s, q, k)
        worst_neg = min(worst_neg, float(a.min()))
        worst_sum = max(worst_sum, float((a.sum(-1) - 1).abs().max()))
        worst_rho = max(worst_rho, abs(spectral_radius(a) - 1))
    holds = worst_neg >= -1e-12 and worst_sum <= 1e-9 and worst_rho <= 1e-9
    cex = None if holds else {
        "min A_ij": worst_neg, "max |Σ_j A_ij − 1|": worst_sum, "|ρ(A) − 1|": worst_rho,
        "snippet": f"{s.setup}\nimport torch\nq, k = torch.randn({LENGTH}, 32, dtype=torch.float64), "
                   f"torch.randn({LENGTH}, 32, dtype=torch.float64)\n"
                   f"A = attend(q, k, torch.eye({LENGTH}, dtype=torch.float64))\nprint(A.min(), A.sum(-1))"}
    return Outcome(holds, {"min A_ij": worst_neg, "max |Σ_j A_ij − 1|": worst_sum, "max |ρ(A) − 1|": worst_rho}, cex)


def _per_dim(s: AttentionSubject, settings: Settings) -> tuple[list[float], list[float]]:
    """Mean largest attention weight and ‖∂⟨out, r⟩/∂q‖ per query row, for each d_k."""
    peaks, grads = [], []
    for d in DIMS:
        pk, gn = [], []
        for k_ in range(settings.seeds):
            q = settings.randn(LENGTH, d, offset=100 + k_).requires_grad_(True)
            k = settings.randn(LENGTH, d, offset=200 + k_)
            v = settings.randn(LENGTH, 16, offset=300 + k_)
            r = settings.randn(LENGTH, 16, offset=400 + k_)
            (g,) = torch.autograd.grad((s.attend(q, k, v) * r).sum(), q)
            gn.append(float(g.norm(dim=-1).mean()))
            with torch.no_grad():
                pk.append(float(_weights(s, q, k).max(-1).values.mean()))
        peaks.append(sum(pk) / len(pk))
        grads.append(sum(gn) / len(gn))
    return peaks, grads


def no_saturation(s: AttentionSubject, settings: Settings) -> Outcome:
    peaks, _ = _per_dim(s, settings)
    holds = peaks[-1] <= 0.9
    constants = {f"mean max weight, d_k={d}": p for d, p in zip(DIMS, peaks)}
    cex = None if holds else {
        "d_k": DIMS[-1], "L": LENGTH, "mean max weight": peaks[-1],
        "snippet": f"{s.setup}\nimport torch\nq, k = torch.randn({LENGTH}, {DIMS[-1]}, dtype=torch.float64), "
                   f"torch.randn({LENGTH}, {DIMS[-1]}, dtype=torch.float64)\n"
                   f"print(attend(q, k, torch.eye({LENGTH}, dtype=torch.float64)).max(-1).values.mean())"}
    return Outcome(holds, constants, cex)


def gradient_scale(s: AttentionSubject, settings: Settings) -> Outcome:
    _, grads = _per_dim(s, settings)
    p = loglog_exponent(list(DIMS), grads)[0] if all(g > 0 for g in grads) else float("-inf")
    holds = abs(p) <= 0.25
    constants: dict[str, Any] = {"exponent p in ‖∂/∂q‖ ∝ d_k^p": p}
    constants.update({f"‖∂/∂q_i‖, d_k={d}": g for d, g in zip(DIMS, grads)})
    cex = None if holds else {"d_k": list(DIMS), "‖∂/∂q_i‖": grads, "exponent": p,
                              "snippet": f"{s.setup}\nimport torch\nfor d in {list(DIMS)}:\n"
                                         f"    q = torch.randn({LENGTH}, d, dtype=torch.float64, requires_grad=True)\n"
                                         f"    k = torch.randn({LENGTH}, d, dtype=torch.float64)\n"
                                         f"    v, r = torch.randn(2, {LENGTH}, 16, dtype=torch.float64)\n"
                                         "    (attend(q, k, v) * r).sum().backward()\n"
                                         "    print(d, q.grad.norm(dim=-1).mean())"}
    return Outcome(holds, constants, cex)


CLAUSES = (
    Clause("row-stochastic", ("ATTN-06",),
           "the attention matrix is non-negative and row-stochastic with spectral radius 1", row_stochastic),
    Clause("no-saturation", ("ATTN-02", "ATTN-04"),
           f"the softmax stays away from one-hot as d_k grows: mean max weight at d_k={DIMS[-1]} ≤ 0.9",
           no_saturation),
    Clause("gradient-scale", ("ATTN-03", "ATTN-04"),
           "the query gradient stays O(1) in d_k: |p| ≤ 0.25 in ‖∂/∂q‖ ∝ d_k^p", gradient_scale),
)


def builtins() -> dict[str, tuple[Any, str]]:
    """gradcore.attention.attention, scaled (1/√d_k) and unscaled."""
    from ... import attention as at

    pre = "from gradcore.attention import attention\n"
    return {"scaled (1/√d_k)": (at.attention, pre + "attend = attention"),
            "unscaled": (lambda q, k, v: at.attention(q, k, v, scaled=False),
                         pre + "attend = lambda q, k, v: attention(q, k, v, scaled=False)")}

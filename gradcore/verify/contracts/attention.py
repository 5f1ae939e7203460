"""Contract for an attention variant ``attend(q, k, v) -> out`` on (L, d) tensors.

Claims (catalogue ATTN): 004 §3.3.3 "注意力权重矩阵A是非负行随机矩阵，其谱半径为1";
002 §归一化层与架构细节 and 004 (3.3.6): without 1/√d_k the softmax saturates and the
gradient w.r.t. the queries grows like √d_k; with it both stay O(1). The attention
matrix of a black-box variant is read off as ``attend(q, k, I)`` (values = identity). Every
clause measures through the recipes of :mod:`gradcore.measure.attention` (the theorems' own),
with the technique passed as ``Given``; the counterexample snippet is the generated reproduction.
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ...measure import Given, Measurement
from ...measure import attention as M
from .base import Clause, Outcome, Settings, callable_or_fail, probe
from .contract import Contract

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


def _given(s: AttentionSubject) -> Given:
    """The subject as a recipe argument: its reproduction binds ``attend`` with the subject's setup."""
    return Given(s.attend, "attend", s.setup)


def row_stochastic(s: AttentionSubject, settings: Settings) -> Outcome:
    m = {part: M.attend_row_stochastic(attend=_given(s), part=part, length=LENGTH, seeds=settings.seeds,
                                       seed=settings.seed, device=settings.device) for part in M.ROW_PARTS}
    neg, rows, rho = m["min entry"], m["row sum − 1"], m["ρ(A) − 1"]
    holds = neg.value >= -neg.bound and rows.value <= rows.bound and rho.value <= rho.bound
    constants = {"min A_ij": neg, "max |Σ_j A_ij − 1|": rows, "max |ρ(A) − 1|": rho}
    worst = next((x for x in (neg, rows, rho) if not abs(x.value) <= x.bound), None)
    cex = None if holds else {"min A_ij": neg.value, "max |Σ_j A_ij − 1|": rows.value, "|ρ(A) − 1|": rho.value,
                              "snippet": worst.reproduction}
    return Outcome(holds, constants, cex)


def _per_dim(s: AttentionSubject, settings: Settings, statistic: str) -> list[Measurement]:
    """Mean largest attention weight ("max") or ‖∂⟨out, r⟩/∂q_i‖ ("grad") over the draws, per d_k."""
    return [M.attend_statistic(attend=_given(s), statistic=statistic, d=d, length=LENGTH, seeds=settings.seeds,
                               seed=settings.seed, device=settings.device) for d in DIMS]


def no_saturation(s: AttentionSubject, settings: Settings) -> Outcome:
    peaks = _per_dim(s, settings, "max")
    # Decided on the estimate, as the clause states it; the interval is reported with it
    # (3 draws under ci cannot separate 0.9 from the unscaled variant's ~0.91).
    holds = peaks[-1].value <= 0.9
    constants = {f"mean max weight, d_k={d}": p for d, p in zip(DIMS, peaks)}
    cex = None if holds else {"d_k": DIMS[-1], "L": LENGTH, "mean max weight": peaks[-1].value,
                              "snippet": peaks[-1].reproduction}
    return Outcome(holds, constants, cex)


def gradient_scale(s: AttentionSubject, settings: Settings) -> Outcome:
    p = M.attend_gradient_exponent(attend=_given(s), d_ks=DIMS, length=LENGTH, seeds=settings.seeds,
                                   seed=settings.seed, device=settings.device)
    # On the estimate, like no-saturation (a 3-draw interval is too wide to decide |p| ≤ 0.25);
    # a non-finite exponent (gradients that vanish or overflow) is a violation.
    holds = abs(p.value) <= 0.25
    constants: dict[str, Any] = {"exponent p in ‖∂/∂q‖ ∝ d_k^p": p}
    constants.update({f"‖∂/∂q_i‖, d_k={d}": g for d, g in zip(DIMS, _per_dim(s, settings, "grad"))})
    cex = None if holds else {"d_k": list(DIMS), "exponent": p.value, "snippet": p.reproduction}
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


VARIANCE_EXPONENT = 0.5   # Var(logits) ∝ d_k^p: p = 1 for the raw q·k (ATTN-01, LIT-01), 0 with 1/√d_k (ATTN-04)
VARIANCE_SEEDS = 8        # draws per exponent: a per-draw slope interval needs more than the profile's 3
SATURATION = 1000.0       # ATTN-05's factor on the logits, here on the queries


def logit_variance(s: AttentionSubject, settings: Settings) -> Outcome:
    """The logits' variance read as the row-centred log A (a softmax's logits up to a per-row constant)."""
    seeds = VARIANCE_SEEDS * settings.scale
    p = M.attend_gradient_exponent(attend=_given(s), statistic="logit_var", d_ks=DIMS, length=LENGTH, seeds=seeds,
                                   seed=settings.seed, device=settings.device)
    per_d = [M.attend_statistic(attend=_given(s), statistic="logit_var", d=d, length=LENGTH, seeds=seeds,
                                seed=settings.seed, device=settings.device) for d in DIMS]
    lo, hi = p.interval
    holds = True if hi <= VARIANCE_EXPONENT else (False if lo > VARIANCE_EXPONENT else None)
    constants: dict[str, Any] = {"exponent p in Var(logits) ∝ d_k^p": p, "95% CI": f"[{lo:.3f}, {hi:.3f}]"}
    constants.update({f"Var(logits)/d_k, d_k={d}": v.value / d for d, v in zip(DIMS, per_d)})
    cex = None if holds is not False else {"d_k": list(DIMS), "exponent": p.value, "snippet": p.reproduction}
    return Outcome(holds, constants, cex, note="" if holds is not None else "confidence interval straddles the bound")


def saturation(s: AttentionSubject, settings: Settings) -> Outcome:
    """The query gradient at queries ×1000 beside ×1: a saturated softmax passes almost none (ATTN-05)."""
    def stat(statistic: str, scale: float) -> Measurement:
        return M.attend_statistic(attend=_given(s), statistic=statistic, d=DIMS[0], length=LENGTH,
                                  seeds=settings.seeds, seed=settings.seed, device=settings.device, scale=scale)
    base, sat = stat("grad", 1.0), stat("grad", SATURATION)
    ratio = sat.value / base.value if base.value > 0 else math.inf
    return Outcome(True, {"‖∂/∂q_i‖, q ×1": base, f"‖∂/∂q_i‖, q ×{SATURATION:g}": sat, "ratio": ratio,
                          f"mean max weight, q ×{SATURATION:g}": stat("max", SATURATION)},
                   note="ATTN-05: with a unique largest logit the softmax saturates and its gradient vanishes")


CLAUSES = CLAUSES + (
    Clause("logit-variance", ("ATTN-01", "ATTN-04", "LIT-01"),
           f"the logits' variance (row-centred log A) stays O(1) in d_k: p ≤ {VARIANCE_EXPONENT} in "
           "Var ∝ d_k^p (the raw q·k of unit-variance q, k has variance d_k: p = 1)", logit_variance),
    Clause("saturation", ("ATTN-05",),
           f"the query gradient when the queries are scaled ×{SATURATION:g} (saturated logits), beside ×1",
           saturation, gate=False),
)


def objects() -> dict[str, Any]:
    """gradcore.attention's attention, scaled (1/√d_k) and unscaled."""
    from ... import attention as at

    return {"scaled (1/√d_k)": at.attention, "unscaled": at.unscaled_attention}


class AttentionContract(Contract):
    kind, binding, clauses = KIND, "attend", CLAUSES
    subject, looks_like, objects = staticmethod(subject), staticmethod(looks_like), staticmethod(objects)

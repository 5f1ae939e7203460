"""Contract for an attention variant ``attend(q, k, v) -> out`` on (L, d) tensors.

Claims (catalogue ATTN): 004 §3.3.3 "注意力权重矩阵A是非负行随机矩阵，其谱半径为1";
002 §归一化层与架构细节 and 004 (3.3.6): without 1/√d_k the softmax saturates and the
gradient w.r.t. the queries grows like √d_k; with it both stay O(1). The attention
matrix of a black-box variant is read off as ``attend(q, k, I)`` (values = identity). Every
clause measures through the recipes of :mod:`gradcore.measure.attention` (the theorems' own),
with the technique passed as ``Given``; the counterexample snippet is the generated reproduction.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ...measure import Given, Measurement
from ...measure import attention as M
from ..verdicts import within
from ._stack import SEEDS, sequential, undecided_note
from ...errors import MeasurementError
from .base import Clause, Outcome, Settings, error_line, probe
from .contract import Contract, Signature

KIND = "attention"
LENGTH, DIMS = 16, (16, 64, 256)
PEAK, EXPONENT = 0.9, 0.25   # the no-saturation and gradient-scale thresholds
PROBE_D = 8                  # the smoke test's width of q, k and v
Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class AttentionSubject:
    name: str
    attend: Attend
    setup: str


def smoke(attend: Attend, settings: Settings) -> None:
    q, k, v = (settings.randn(LENGTH, PROBE_D, offset=o) for o in (1, 2, 3))
    probe(lambda: attend(q, k, v), what="attention", on=f"random q, k, v of shape ({LENGTH}, {PROBE_D})",
          shape=tuple(v.shape))


def build(attend: Attend, obj: Any, name: str, setup: str, settings: Settings) -> AttentionSubject:
    return AttentionSubject(name, attend, setup)


def _given(s: AttentionSubject) -> Given:
    """The subject as a recipe argument: its reproduction binds ``attend`` with the subject's setup."""
    return Given(s.attend, "attend", s.setup)


def _fails(s: AttentionSubject, settings: Settings, d: int, v_width: int) -> str | None:
    """Why the technique fails on q, k of width ``d`` and values of width ``v_width``, or None."""
    q, k = (settings.randn(LENGTH, d, offset=o) for o in (4, 5))
    try:
        s.attend(q, k, settings.randn(LENGTH, v_width, offset=6))
        return None
    except Exception as e:
        return error_line(e)


def require_widths(s: AttentionSubject, settings: Settings, d_ks: tuple[int, ...], v_width: int) -> None:
    """MeasurementError (the clause could not be measured, one line) when the technique fails on
    q, k of width d_k for one of ``d_ks`` (values of width ``v_width``) though it passed the probe
    of width 8: a module built for one width, like nn.MultiheadAttention, is gradcore's limit to
    state, not the technique's violation. Tried once per width."""
    failed = {d: why for d in d_ks if (why := _fails(s, settings, d, v_width)) is not None}
    if failed:
        why = next(iter(failed.values()))
        raise MeasurementError(f"the technique accepts q, k of width {PROBE_D} (the probe) but fails at d_k = "
                               f"{', '.join(map(str, failed))} ({why}); the clause measures d_k = "
                               f"{', '.join(map(str, d_ks))}")


def own_width(s: AttentionSubject, settings: Settings, d: int, v_width: int,
              values_fixed: bool = False) -> tuple[int, int, str]:
    """(d_k, value width, note) for a clause measured at one width: ``d`` and ``v_width`` where the
    technique runs there, else the probe's width 8 (for the values too unless ``values_fixed``) — a
    module built for one width, like nn.MultiheadAttention(8, 2), measured at its own width as the
    norm kind's deep stack is — with a note saying so; MeasurementError when neither runs."""
    if (why := _fails(s, settings, d, v_width)) is None:
        return d, v_width, ""
    v_own = v_width if values_fixed else PROBE_D
    if _fails(s, settings, PROBE_D, v_own) is not None:
        require_widths(s, settings, (d,), v_width)
    return PROBE_D, v_own, (f"measured at d_k = {PROBE_D}{'' if values_fixed else f', values of width {PROBE_D}'}: "
                            f"the technique fails at d_k = {d} ({why}), so it is taken to accept only the width "
                            "it was checked at")


def row_stochastic(s: AttentionSubject, settings: Settings) -> Outcome:
    d, _, note = own_width(s, settings, M.CONTRACT_D, LENGTH, values_fixed=True)   # A = attend(q, k, I_L)
    m = {part: M.attend_row_stochastic(attend=_given(s), part=part, length=LENGTH, d=d, seeds=settings.seeds,
                                       seed=settings.seed, device=settings.device) for part in M.ROW_PARTS}
    neg, rows, rho = m["min entry"], m["row sum − 1"], m["ρ(A) − 1"]
    holds = neg.value >= -neg.bound and rows.value <= rows.bound and rho.value <= rho.bound
    constants = {"min A_ij": neg, "max |Σ_j A_ij − 1|": rows, "max |ρ(A) − 1|": rho}
    worst = next((x for x in (neg, rows, rho) if not abs(x.value) <= x.bound), None)
    cex = None if holds else {"min A_ij": neg.value, "max |Σ_j A_ij − 1|": rows.value, "|ρ(A) − 1|": rho.value,
                              "snippet": worst.reproduction}
    return Outcome(holds, constants, cex, note=note)


def _draws(settings: Settings) -> tuple[int, ...]:
    """Draw counts tried in turn until an interval decides: the profile's, then 10, then the cap 40."""
    return tuple(sorted({settings.seeds, *SEEDS}))


def _per_dim(s: AttentionSubject, settings: Settings, statistic: str, seeds: int) -> list[Measurement]:
    """Mean largest attention weight ("max") or ‖∂⟨out, r⟩/∂q_i‖ ("grad") over ``seeds`` draws, per d_k."""
    return [M.attend_statistic(attend=_given(s), statistic=statistic, d=d, length=LENGTH, seeds=seeds,
                               seed=settings.seed, device=settings.device) for d in DIMS]


def no_saturation(s: AttentionSubject, settings: Settings) -> Outcome:
    """ATTN-02/04: E[max weight] at the largest d_k ≤ 0.9, decided on its Student-t interval with
    draws added until the interval excludes 0.9 (cap 40 draws; undecided beyond)."""
    require_widths(s, settings, DIMS, M.CONTRACT_V)
    top = sequential(lambda n: M.attend_statistic(attend=_given(s), statistic="max", d=DIMS[-1], length=LENGTH,
                                                  seeds=n, seed=settings.seed, device=settings.device),
                     lambda m: within(m.interval, 0.0, PEAK), _draws(settings))
    holds = within(top.interval, 0.0, PEAK)
    n = top.sizes["seeds"]
    peaks = _per_dim(s, settings, "max", n)[:-1] + [top]
    constants: dict[str, Any] = {f"mean max weight, d_k={d}": p for d, p in zip(DIMS, peaks)}
    constants.update({f"mean max weight, d_k={DIMS[-1]}, 95% CI": f"[{top.interval[0]:.4f}, {top.interval[1]:.4f}]",
                      "draws": n, "draws cap": SEEDS[-1]})
    cex = None if holds is not False else {"d_k": DIMS[-1], "L": LENGTH, "mean max weight": top,
                                           "snippet": top.reproduction}
    return Outcome(holds, constants, cex, note="" if holds is not None else undecided_note(top, str(PEAK)))


def gradient_scale(s: AttentionSubject, settings: Settings) -> Outcome:
    """ATTN-03/04: |p| ≤ 0.25 in ‖∂/∂q‖ ∝ d_k^p, decided on p's Student-t interval across draws,
    with draws added until it lies within or wholly outside [−0.25, 0.25] (cap 40); a non-finite
    exponent (gradients that vanish or overflow) is a violation."""
    require_widths(s, settings, DIMS, M.CONTRACT_V)
    p = sequential(lambda n: M.attend_gradient_exponent(attend=_given(s), d_ks=DIMS, length=LENGTH, seeds=n,
                                                        seed=settings.seed, device=settings.device),
                   lambda m: within(m.interval, -EXPONENT, EXPONENT), _draws(settings))
    holds = within(p.interval, -EXPONENT, EXPONENT) if math.isfinite(p.value) else False
    n = p.sizes["seeds"]
    constants: dict[str, Any] = {"exponent p in ‖∂/∂q‖ ∝ d_k^p": p,
                                 "p 95% CI": f"[{p.interval[0]:.4f}, {p.interval[1]:.4f}]",
                                 "draws": n, "draws cap": SEEDS[-1]}
    constants.update({f"‖∂/∂q_i‖, d_k={d}": g for d, g in zip(DIMS, _per_dim(s, settings, "grad", n))})
    cex = None if holds is not False else {"d_k": list(DIMS), "exponent": p.value, "snippet": p.reproduction}
    return Outcome(holds, constants, cex,
                   note="" if holds is not None else undecided_note(p, f"±{EXPONENT}"))


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
    require_widths(s, settings, DIMS, LENGTH)   # A is read as attend(q, k, I): values of width LENGTH
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
    d, d_v, note = own_width(s, settings, DIMS[0], M.CONTRACT_V)

    def stat(statistic: str, scale: float) -> Measurement:
        return M.attend_statistic(attend=_given(s), statistic=statistic, d=d, length=LENGTH, seeds=settings.seeds,
                                  seed=settings.seed, device=settings.device, scale=scale, d_v=d_v)
    base, sat = stat("grad", 1.0), stat("grad", SATURATION)
    constants: dict[str, Any] = {"‖∂/∂q_i‖, q ×1": base, f"‖∂/∂q_i‖, q ×{SATURATION:g}": sat,
                                 "ratio": sat.value / base.value if base.value > 0 else math.inf}
    if (why := _fails(s, settings, d, LENGTH)) is None:   # A is read as attend(q, k, I_L)
        constants[f"mean max weight, q ×{SATURATION:g}"] = stat("max", SATURATION)
    else:
        note = f"{note}; the weights are not read: attend(q, k, I_{LENGTH}) fails ({why})"
    return Outcome(True, constants, note="; ".join(n for n in (note, "ATTN-05: with a unique largest logit the "
                                                                     "softmax saturates and its gradient vanishes") if n))


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
    """A function of exactly three required positional arguments (q, k, v)."""

    kind, binding, clauses, signature = KIND, "attend", CLAUSES, Signature(cls=False, requires=3)
    smoke, build, objects = staticmethod(smoke), staticmethod(build), staticmethod(objects)

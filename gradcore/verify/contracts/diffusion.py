"""Contract for a diffusion noise schedule or loss weighting: SNR order, prior term, gradient spike.

Claims (catalogue DIFF, LIT-03/04): 002 §在现代生成模型中的体现 (high SNR at small t; weights large
there give "巨大的原始梯度信号"; clipping at c(t) ∝ 1/v(t) evens the contributions out); Ho et al.
2020 §4 (L_T ≈ 1e-5 bits/dim); Hang et al. 2023 (Min-SNR-γ). The subject is one of (see
:func:`gradcore.measure.diffusion.resolve`, which every clause measures through):

* a schedule: ᾱ_1..ᾱ_T (T = 1000) as a tensor, a ``gradcore.diffusion.Schedule``, or a function
  of ``t`` (float64 steps 1..T) returning ᾱ_t — weighted by L_simple (v = 1);
* a loss weighting on DDPM's linear schedule: a function of ``snr`` (the weight of the ε-loss), or
  of ``sigma`` (EDM's λ(σ) on the denoiser loss, i.e. v = λ(σ)σ² on the ε-loss, σ² = 1/SNR).

Every constant comes from the recipes of :mod:`gradcore.measure.diffusion` and
:mod:`gradcore.measure.schedules` (the DIFF and LIT theorems' own) with the technique as ``Given``.
"""
from __future__ import annotations

from typing import Any

import torch

from ...diffusion import Schedule
from ...measure import diffusion as M
from ...measure import schedules as S
from ..verdicts import decide
from .base import Clause, Outcome, Settings
from ...errors import CheckError
from .contract import Contract, Signature, Subject

KIND = "diffusion"
PRIOR_BITS = 10 ** -4.5     # LIT-03: L_T within half a decade of Ho et al.'s 1e-5 bits/dim (or below)
SPIKE = 10.0                # DIFF-03: "巨大" read as ≥ 10× the median over t
SPIKE_SEEDS = (4, 10)       # networks: 4 (the theorem's), 10 when 4 leave the decision open
UNIFORM = 2.0               # DIFF-04: "大致均匀" read as max/min ≤ 2


def _role(obj: Any) -> str | None:
    """Inference: why ``obj`` is neither a schedule nor a loss weighting, by type and parameter name."""
    return None if M.role(obj) is not None else "its one required parameter is not named t, snr or sigma"


def prepare(obj: Any, settings: Settings) -> Any:
    if M.role(obj) is None:
        raise CheckError("expected ᾱ_t (a tensor of T = 1000 values, or a function of t) or a loss weighting "
                         f"(a function of snr or sigma); got {type(obj).__name__}")
    return obj


def smoke(obj: Any, settings: Settings) -> None:
    """One-line InputError for a bad schedule or weighting (non-finite, ᾱ outside (0, 1], increasing, ...)."""
    M.resolve(obj, settings.device)


def snr_ordering(s: Subject, settings: Settings) -> Outcome:
    first, last, step = (M.snr(quantity=q, technique=s.given, device=settings.device)
                         for q in ("first", "last", "max_step"))
    holds = step.value < 0 and first.value > 1 > last.value   # NaN fails every comparison
    constants = {"SNR(1)": first, "SNR(T)": last, "max_t SNR(t+1) − SNR(t)": step}
    if holds:
        return Outcome(True, constants)
    worst = step if not step.value < 0 else first if not first.value > 1 else last
    return Outcome(False, constants, {"SNR(1)": first.value, "SNR(T)": last.value, "max step": step.value,
                                      "snippet": worst.reproduction},
                   note="SNR(t) must fall strictly from above 1 to below 1: equal noise levels at two steps, "
                        "or a schedule that never reaches low SNR, break the forward process")


def prior_term(s: Subject, settings: Settings) -> Outcome:
    ab = S.alpha_bar(t=M.T_STEPS, T=M.T_STEPS, technique=s.given)
    bits = S.prior_kl_bits(x0_sq=1.0, technique=s.given)
    holds = bits.value <= PRIOR_BITS
    cex = None if holds else {"x_0": "±1 (the worst pixel of data in [−1, 1])", "L_T bits/dim": bits.value,
                              "ᾱ_T": ab.value, "snippet": bits.reproduction}
    return Outcome(holds, {"ᾱ_T": ab, "L_T bits/dim at x_0 = ±1": bits, "bound": PRIOR_BITS}, cex)


def weight_ratio(s: Subject, settings: Settings) -> Outcome:
    ratio = M.loss_weight_ratio(technique=s.given, device=settings.device)
    unit = S.first_unit_weight_step(technique=s.given)
    holds = ratio.value < SPIKE
    constants = {"v(1)/v(T)": ratio, "first t from which v(t) = 1 (0: none)": unit}
    cex = None if holds else {"v(1)/v(T)": ratio.value, "snippet": ratio.reproduction}
    return Outcome(holds, constants, cex)


def gradient_spike(s: Subject, settings: Settings) -> Outcome:
    for seeds in SPIKE_SEEDS:
        m = M.weighted_gradient_spike(technique=s.given, seeds=seeds, device=settings.device)
        holds = decide("<", SPIKE, m.value, 0.0, m.interval)
        if holds is not None:
            break
    constants = {"‖∇θ v(1)ℓ_1‖ / median_t ‖∇θ v(t)ℓ_t‖": m,
                 "95% CI": f"[{m.interval[0]:.4g}, {m.interval[1]:.4g}]", "seeds": seeds}
    cex = None if holds is not False else {"model": "MLP ε-denoiser 16-64-64-16 at init, batch 64",
                                           "ratio": m.value, "snippet": m.reproduction}
    return Outcome(holds, constants, cex, note="" if holds is not None else "confidence interval straddles 10")


def uniformity(s: Subject, settings: Settings) -> Outcome:
    def spread(scheme: str, kappa: str) -> Any:
        return M.contribution_spread(scheme=scheme, kappa=kappa, technique=s.given, device=settings.device)

    clipped = spread("time_dependent", "median")
    constants = {"max/min_t e(t), clipped at κ/v(t), κ = median_t v(t)‖∇ℓ_t‖": clipped,
                 "max/min_t e(t), no clipping": spread("none", "median"),
                 "max/min_t e(t), clipped at κ/v(t), κ = ½ min_t v(t)‖∇ℓ_t‖": spread("time_dependent", "min")}
    holds = clipped.value <= UNIFORM    # NaN fails
    cex = None if holds else {"weighting": "the technique's", "scheme": "v(t)·clip_{κ/v(t)}(∇ℓ_t), κ = median",
                              "max/min": clipped.value, "snippet": clipped.reproduction}
    return Outcome(holds, constants, cex)


CLAUSES = (
    Clause("snr-ordering", ("DIFF-01",),
           "SNR(t) = ᾱ_t/(1−ᾱ_t) falls strictly over t = 1..T, from SNR(1) > 1 to SNR(T) < 1", snr_ordering),
    Clause("prior-term", ("LIT-03",),
           "x_T is close to N(0, I): L_T = D_KL(q(x_T|x_0) ‖ N(0, I)) ≤ 10^-4.5 bits/dim for data in [−1, 1]",
           prior_term),
    Clause("weight-ratio", ("DIFF-02", "LIT-04"),
           "the ε-loss weight at the highest SNR is less than 10× the weight at the lowest: v(1)/v(T) < 10 "
           "(also: the first t from which the weight is L_simple's 1, as Min-SNR-γ)", weight_ratio, gate=False),
    Clause("gradient-spike", ("DIFF-03",),
           "the weighting induces no gradient explosion at small t: ‖∇θ v(1)ℓ_1‖ < 10 × median_t ‖∇θ v(t)ℓ_t‖ "
           "(MLP ε-denoiser at init, Student-t 95% CI over networks)", gradient_spike),
    Clause("uniformity", ("DIFF-04",),
           "clipping each step's gradient at c(t) = κ/v(t), κ the median weighted norm, then weighting, leaves "
           "the per-step contributions roughly uniform: max/min_t ‖v(t)·clip(∇ℓ_t)‖ ≤ 2", uniformity, gate=False),
)


def objects() -> dict[str, Any]:
    """gradcore.diffusion's loss weightings on the DDPM linear schedule, and L_simple on the cosine one."""
    pairs = [("linear", w) for w in ("eps", "vlb", "snr", "min_snr_gamma", "truncated_snr", "v")]
    return {f"{sched} β, {w}": M.Technique(sched, w) for sched, w in (*pairs, ("cosine", "eps"))}


class DiffusionContract(Contract):
    """ᾱ_t (a Schedule, or a function of ``t``) or a loss weighting (a function of ``snr`` or ``sigma``)."""

    kind, binding, clauses = KIND, "technique", CLAUSES
    signature = Signature(recognised=(M.Technique, Schedule, torch.Tensor))   # ᾱ_1..ᾱ_T as a tensor
    # a valid schedule or weighting is usually finite on [−3, 3] too (an activation), and v = snr maps a
    # list of gradients to itself (a clipping rule): its parameter's name says which it is
    precedes = dict.fromkeys(("activation", "clipping"), "its one parameter is named t, snr or sigma and it is "
                             "a valid ᾱ_t schedule or loss weighting")
    prepare, excludes, smoke = staticmethod(prepare), staticmethod(_role), staticmethod(smoke)
    objects = staticmethod(objects)

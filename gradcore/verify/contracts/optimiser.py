"""Contract for an optimiser step: clipped step length, weight decay, x⁴ stability.

Claims: 002 §直接干预 "将更新步长限制在学习率 η 与阈值 θ 的乘积之内" (CLIP-02); 002 §L2 正则化与隐式
稳定 (one zero-gradient step is (1 − ηλ)W: WD-01; decay shrinks W, pulls ρ(W) below 1: WD-02/04/05); Zhang et al. 2020 (fixed-step GD diverges
on x⁴ beyond |x₀| = 1/√(2η), clipped or adaptive steps do not: LIT-12). The subject is a
``torch.optim.Optimizer`` class, a factory ``params -> Optimizer`` (e.g.
``functools.partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.01)``) or a step rule
``(W, grad) -> W`` carrying its ``lr`` (:mod:`gradcore.measure.optimisers`); η is its own learning
rate. Every clause measures through the CLIP/WD/LIT-12 theorems' recipes with the optimiser as
``Given``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ...measure import Given
from ...measure import clipping as C
from ...measure import optimisers as O
from ...measure import quartic as Q
from ...measure import weight_decay as W
from ...errors import CheckError, GradcoreError
from .base import Clause, Outcome, Settings
from .contract import Contract

KIND = "optimiser"
STEP_RTOL = 1e-9          # CLIP-02's tolerance on ‖Δw‖ ≤ ηθ
ACCUMULATE = 100          # steps of a constant clipped gradient (momentum's ηθ/(1−μ) shows by then)
QUARTIC_STEPS = 2000      # LIT-12's


@dataclass(frozen=True)
class OptimiserSubject:
    name: str
    obj: Any
    setup: str    # Python lines binding the optimiser to ``opt``
    lr: float     # η, the optimiser's own learning rate


@dataclass(frozen=True)
class Prepared:
    """The optimiser as given, with η read from one instance built on a probe parameter."""

    obj: Any
    lr: float


def _probe(settings: Settings) -> torch.nn.Parameter:
    return torch.nn.Parameter(settings.randn(4, 3, offset=51))


def prepare(obj: Any, settings: Settings) -> Prepared:
    """One-line CheckError unless ``obj`` is an optimiser constructible from params (η read from it)."""
    if O.form(obj) is None:
        raise CheckError("expected a torch.optim.Optimizer class, a factory params -> Optimizer, or a step rule "
                         f"(W, grad) -> W; got {type(obj).__name__}")
    return Prepared(obj, O.lr_of(_built(obj, _probe(settings))))


def _built(obj: Any, p: torch.nn.Parameter) -> torch.optim.Optimizer:
    try:
        return O.build(obj, [p])
    except GradcoreError:   # gradcore's own one-line reason (not an optimiser, no lr): prepare() prints it
        raise
    except Exception as e:
        raise CheckError(f"not constructible from params: {type(e).__name__}: {e}") from None


def smoke(prepared: Prepared, settings: Settings) -> None:
    """CheckError unless one step on a nonzero gradient moves the weights to finite values."""
    p = _probe(settings)
    opt = _built(prepared.obj, p)
    before = p.detach().clone()
    after = O.stepped(opt, p, settings.randn(4, 3, offset=52))
    if not bool(torch.isfinite(after).all()):
        raise CheckError("the optimiser's step gave non-finite weights for a finite gradient")
    if torch.equal(after, before):
        raise CheckError("the optimiser does not step: the parameters are unchanged after step() on a nonzero "
                         "gradient")


def excludes(obj: Any) -> str | None:
    """Inference: an Optimizer class, a callable of ``params``, or a step rule (a callable of two
    tensors) that carries its learning rate (any two-argument function is no evidence of an optimiser)."""
    if isinstance(obj, Prepared):
        return None
    shape = O.form(obj)
    if shape == "factory" or (shape == "rule" and _carries_lr(obj)):
        return None
    if shape == "rule":
        return "a two-argument callable without an lr is no evidence of a step rule"
    return "it is neither an Optimizer class, a callable of params, nor a step rule (W, grad) -> W"


def _carries_lr(rule: Any) -> bool:
    return getattr(rule, "lr", None) is not None or "lr" in (getattr(rule, "keywords", None) or {})


def build(prepared: Prepared, obj: Any, name: str, setup: str, settings: Settings) -> OptimiserSubject:
    return OptimiserSubject(name, obj, setup, prepared.lr)


def _given(s: OptimiserSubject) -> Given:
    return Given(s.obj, "opt", s.setup)


def step_bound(s: OptimiserSubject, settings: Settings) -> Outcome:
    first = C.optimiser_step_ratio_bound(optimiser=_given(s), profile=settings.profile, device=settings.device)
    later = C.step_ratio(optimizer=_given(s), d=16, g=100.0, theta=1.0, steps=ACCUMULATE, device=settings.device)
    constants = {"sup ‖Δw‖/(ηθ), first step (search)": first,
                 f"‖Δw‖/(ηθ), step {ACCUMULATE}, constant g = 100·1₁₆, θ = 1": later, "η": s.lr}
    worst = max((first, later), key=lambda m: m.value if not math.isnan(m.value) else math.inf)
    holds = worst.value <= 1 + STEP_RTOL     # NaN (no step length) fails
    cex = None if holds else {"‖Δw‖/(ηθ)": worst.value, "found by": worst.witness or "constant gradient",
                              "snippet": worst.reproduction}
    return Outcome(holds, constants, cex, note="" if holds else
                   "clipping at θ does not bound this optimiser's step by ηθ (momentum accumulates clipped "
                   "gradients; adaptive methods rescale them)")


def decay(s: OptimiserSubject, settings: Settings) -> Outcome:
    r64, r32 = (W.decay_norm_ratio(optimiser=_given(s), steps=10, n=6, seed=settings.seed, dtype=dtype,
                                   device=settings.device) for dtype in ("float64", "float32"))
    floor = W.float32_no_shrink_threshold(device=settings.device)
    constants = {"‖W_10‖/‖W_0‖, zero gradient, float64": r64, "‖W_10‖/‖W_0‖, zero gradient, float32": r32,
                 "float32 no-shrink ηλ (gradcore's decay rule)": floor}
    # growth beyond the ratio's own rounding (64 ulp per step: a no-decay step may round W), NaN included
    up = [r for r in (r64, r32) if not r.value <= 1.0 + r.guard_tolerance]
    lost = r64.value < 1.0 and r32.value >= 1.0    # decays in float64, a no-op in float32
    grows = bool(up)
    if not (grows or lost):
        note = "" if r64.value < 1 else "no weight decay: a zero gradient leaves the weights unchanged"
        return Outcome(True, constants, note=note)
    worst = up[0] if grows else r32
    return Outcome(False, constants, {"gradient": "0", "‖W_10‖/‖W_0‖": worst.value, "snippet": worst.reproduction},
                   note="a zero gradient grows the weights" if grows else
                   f"weight decay is lost in float32: ηλ is below the float32 floor (~{floor.value:.3g})")


def one_step_decay(s: OptimiserSubject, settings: Settings) -> Outcome:
    """WD-01: with a zero data gradient one step is W ← (1 − ηλ)W, in float64 and float32: a
    uniform scaling (residual against the fitted c·W₀) by its own stated η and λ."""
    runs = {(dtype, ref): W.sgd_decay_residual(optimiser=_given(s), reference=ref, dtype=dtype, seed=settings.seed,
                                               device=settings.device)
            for dtype in ("float64", "float32") for ref in ("fitted", "stated")}
    lam = runs["float64", "fitted"].witness["λ"]
    checked = [k for k in runs if k[1] == "fitted" or not isinstance(lam, str)]
    bad = [k for k in checked if not runs[k].value <= runs[k].bound]   # ∞ (non-finite W₁) fails
    constants: dict[str, Any] = {
        f"max |W₁ − {'c·W₀' if ref == 'fitted' else '(1−ηλ)W₀'}|, {dtype}": m for (dtype, ref), m in runs.items()
        if (dtype, ref) in checked}
    constants.update({"η": s.lr, "λ": lam, "c = ⟨W₁, W₀⟩/‖W₀‖², float64": runs["float64", "fitted"].witness[
        "c = ⟨W₁, W₀⟩/‖W₀‖²"]})
    if not bad:
        return Outcome(True, constants, note="" if not isinstance(lam, str) else
                       "the optimiser states no weight_decay: only the uniform scaling is checked")
    (dtype, ref), m = bad[0], runs[bad[0]]
    note = ("one step on a zero gradient is not a uniform scaling of W (decay coupled through a per-coordinate "
            "rescaling, like Adam's denominator)" if ref == "fitted" else
            f"one step on a zero gradient scales W by c, not by 1 − ηλ = {1 - s.lr * lam:.6g}")
    return Outcome(False, constants, {"gradient": "0", "dtype": dtype, "residual": m.value, "bound": m.bound,
                                      "snippet": m.reproduction}, note=note)


def radius(s: OptimiserSubject, settings: Settings) -> Outcome:
    rho = W.rnn_radius(optimiser=_given(s), steps=600, device=settings.device)
    start = W.rnn_radius(lam=0.1, steps=0, device=settings.device)
    holds = rho.value < 1.0
    return Outcome(holds, {"ρ(W) after 600 steps": rho, "ρ(W_0)": start, "data demand ρ": 1.2},
                   None if holds else {"model": "linear RNN h_t = W h_{t−1}, T = 4, n = 4, targets from ρ = 1.2",
                                       "ρ": rho.value, "snippet": rho.reproduction})


def quartic(s: OptimiserSubject, settings: Settings) -> Outcome:
    edge = 1 / math.sqrt(2 * s.lr)     # fixed-step GD at this η moves outward beyond it (LIT-12)
    starts = (2 * edge, 100 * edge)
    ends = [Q.final_distance(x0=x0, steps=QUARTIC_STEPS, optimiser=_given(s)) for x0 in starts]
    gd = Q.final_distance(x0=starts[0], eta=s.lr, steps=QUARTIC_STEPS, clip=0.0)
    constants: dict[str, Any] = {"1/√(2η)": edge, **{f"|x_{QUARTIC_STEPS}| from x₀ = {x0:.4g}": m
                                                     for x0, m in zip(starts, ends)},
                                 f"fixed-step GD: |x_{QUARTIC_STEPS}| from x₀ = {starts[0]:.4g}": gd}
    bad = [(x0, m) for x0, m in zip(starts, ends) if not m.value <= x0]
    if not bad:
        return Outcome(True, constants)
    x0, m = bad[0]
    return Outcome(False, constants, {"f": "x⁴", "x₀": x0, f"|x_{QUARTIC_STEPS}|": m.value,
                                      "snippet": m.reproduction},
                   note="the optimiser moves outward on x⁴ like fixed-step GD beyond 1/√(2η)")


CLAUSES = (
    Clause("step-bound", ("CLIP-02",),
           "with the gradient norm-clipped at θ, a step moves the weights by at most ηθ (η its learning rate), "
           "on the first step and after a constant clipped gradient", step_bound),
    Clause("decay", ("WD-02",),
           "with no data gradient the weights never grow, and weight decay (if any) shrinks them in float64 "
           "and in float32", decay),
    Clause("decay-step", ("WD-01",),
           "with no data gradient one step scales the weights by exactly (1 − ηλ), η and λ its own (λ = 0: "
           "unchanged), in float64 and float32, to 8 ulps of max|W|", one_step_decay),
    Clause("radius", ("WD-04", "WD-05"),
           "trained on a linear RNN whose data demand ρ = 1.2 (W_0 non-normal, ρ = 1.3), the optimiser ends "
           "with ρ(W) < 1", radius, gate=False),
    Clause("quartic", ("LIT-12",),
           "on f(x) = x⁴ started beyond fixed-step GD's divergence edge (x₀ = 2/√(2η) and 100/√(2η)) it does "
           "not move outward: |x_2000| ≤ x₀", quartic),
)


def objects() -> dict[str, Any]:
    """torch's SGD (plain and momentum), Adam and AdamW at common settings, and gradcore's decay rule."""
    return {"SGD": O.Optimiser("SGD", lr=0.01), "SGD momentum 0.9": O.Optimiser("SGD", lr=0.01, momentum=0.9),
            "Adam": O.Optimiser("Adam", lr=0.001), "AdamW": O.Optimiser("AdamW", lr=0.001, weight_decay=0.01),
            "decay_step": O.DecayRule(lr=0.005, weight_decay=0.1)}


class OptimiserContract(Contract):
    """An Optimizer class, a factory ``params -> Optimizer`` or a step rule ``(W, grad) -> W`` with an ``lr``."""

    kind, binding, clauses = KIND, "opt", CLAUSES
    prepare, smoke, build = staticmethod(prepare), staticmethod(smoke), staticmethod(build)
    excludes, objects = staticmethod(excludes), staticmethod(objects)

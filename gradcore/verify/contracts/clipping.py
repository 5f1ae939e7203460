"""Contract for a gradient-clipping rule ``list[Tensor] -> list[Tensor]``.

Claims (catalogue CLIP): 003 §4 "按比例缩放…这保证了梯度的方向不变"; 004 Definition 3.3.5
and "按范数裁剪保持梯度的方向"; 002 §直接干预 "将更新步长限制在学习率 η 与阈值 θ 的乘积之内";
000 §梯度爆炸的后果 (values beyond the float range become NaN/Inf); 002 §直接干预 value clipping's
cosine tends to √(2/π) (CLIP-04). Every clause
measures through the recipes of :mod:`gradcore.measure.clipping` (the same ones the
CLIP theorems call) on the user's rule. The direction and step-bound clauses search
lists of gradients — up to four tensors of different shapes, scales (1e-3 to 1e30) and
dtypes (float16, float32, float64) — so overflow inside the rule's own norm is found too,
and score structured lists first (one large tensor beside a small one, every coordinate
equal and large, a spike over a plateau): their values are search bounds, not the extrema.
A rule that keeps state between calls is detected and measured on fresh copies.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ...measure import Given
from ...measure import clipping as M
from ...errors import CheckError, NotApplicable
from .base import Clause, Outcome, Settings
from .contract import Contract, Signature
from ..verdicts import decide

KIND = "clipping"
Rule = Callable[[list[torch.Tensor]], list[torch.Tensor]]
COS_TOL = 1e-6


@dataclass(frozen=True)
class ClippingSubject:
    name: str
    rule: Rule
    setup: str   # Python lines binding the rule to ``clip``


def smoke(rule: Rule, settings: Settings) -> None:
    grads = [settings.randn(3, 4, offset=11, dtype=torch.float32) * 10,
             settings.randn(5, offset=12, dtype=torch.float32) * 10]
    out = M.apply(rule, grads)
    if len(out) != len(grads) or not all(isinstance(o, torch.Tensor) for o in out):
        raise CheckError(f"clipping rule returned {len(out)} items for {len(grads)} gradients")
    for g, o in zip(grads, out):
        if o.shape != g.shape:
            raise CheckError(f"clipping rule changed a gradient's shape: {tuple(g.shape)} -> {tuple(o.shape)}")
        if not bool(torch.isfinite(o).all()):
            raise CheckError("clipping rule returned non-finite values for finite gradients")


def build(rule: Rule, obj: Any, name: str, setup: str, settings: Settings) -> ClippingSubject:
    return ClippingSubject(name, rule, setup)


def _given(s: ClippingSubject) -> Given:
    return Given(s.rule, "clip", s.setup)


def _copy(rule: Rule) -> Rule:
    """A deep copy, so that measuring never feeds a stateful rule's history (the rule itself when
    it cannot be copied)."""
    try:
        return copy.deepcopy(rule)
    except Exception:
        return rule


def _varies(rule: Rule, settings: Settings) -> bool:
    """Whether the rule's output on the same gradients changes after 20 calls on gradients 1e-3 and
    20 on gradients 1e3 times as large (a history of norms, like AutoClip's, moves its threshold)."""
    grads = [settings.randn(3, 4, offset=13, dtype=torch.float32) * 10,
             settings.randn(5, offset=14, dtype=torch.float32) * 1e3]
    first = M.flat(M.apply(rule, grads))
    for scale in (1e-3,) * 20 + (1e3,) * 20:
        M.apply(rule, [g * scale for g in grads])
    return not torch.equal(first, M.flat(M.apply(rule, grads)))


def measured_rule(s: ClippingSubject, settings: Settings) -> tuple[Given, dict[str, Any], str]:
    """The rule as the recipes get it, with what was found about its state.

    Two calls on the same gradients that return different results mean the rule keeps state
    (AutoClip's history of norms) or draws noise. When calls on fresh copies (``copy.deepcopy``)
    agree, every call is measured on a fresh copy — the rule's first call — and the fact says so;
    otherwise the rule is measured as it is, and the fact says its results vary between calls.
    """
    if not _varies(_copy(s.rule), settings):   # a copy: measuring must not feed the rule's history
        return _given(s), {"state": "none (calls on the same gradients agree)"}, ""
    if _varies(lambda g: copy.deepcopy(s.rule)(g), settings):
        note = "the rule returns different results on the same gradients, even on fresh copies: measured as it is"
        return _given(s), {"state": "varies between calls, also on fresh copies"}, note
    setup = f"{s.setup}\nimport copy\n_stateful = clip\nclip = lambda g: copy.deepcopy(_stateful)(g)"
    note = ("the rule keeps state between calls (calls on the same gradients differ); each call was "
            "measured on a fresh copy (copy.deepcopy) of the rule as handed over (after gradcore's one smoke call)")
    return (Given(lambda g: copy.deepcopy(s.rule)(g), "clip", setup),
            {"state": "stateful: measured on a fresh copy per call"}, note)


def direction(s: ClippingSubject, settings: Settings) -> Outcome:
    """CLIP-01/03: inf over finite lists of gradients (several shapes, scales and dtypes, float16
    included) of cos(clip(g), g), searched; a list the rule leaves without a direction is a finding."""
    rule, facts, note = measured_rule(s, settings)
    cos = M.worst_list_cosine(rule=rule, profile=settings.profile, device=settings.device)
    gauss = M.gaussian_cosine(rule=rule, d=4096, scale=1e3, seed=settings.seed + 21, device=settings.device)
    lost = cos.witness["lost"]
    constants: dict[str, Any] = {"worst cosine found by search (lists of tensors)": cos,
                                 "cos(clip(g), g), Gaussian g, d=4096, ‖g‖∞≈4e3": gauss, **facts}
    notes = [note]
    if lost is not None:
        constants["‖g‖ at which the direction is lost"] = lost["‖g‖"]
        notes.insert(0, f"the rule returns {lost['output']} for a finite gradient with ‖g‖ = {lost['‖g‖']:.3g} "
                        f"({', '.join(lost['dtypes'])}): no direction left (the cosine is undefined)")
    holds = lost is None and cos.value >= 1 - COS_TOL and gauss.value >= 1 - COS_TOL
    if holds:
        cex = None
    elif cos.value < 1 - COS_TOL:
        g = M.gradient_list(cos.witness["example"], settings.device)
        cex = {"g": _pieces(cos.witness["example"]), "clip(g)": [t.tolist() for t in M.apply(rule.obj, g)],
               "found by": cos.witness["source"], "cosine": cos, "snippet": cos.reproduction}
    elif lost is not None:
        cex = {"g": _pieces(lost["example"]), "output": lost["output"], "‖g‖": lost["‖g‖"],
               "snippet": cos.reproduction}
    else:
        cex = {"g": "N(0, 1e6 I), d=4096, seed 21", "cosine": gauss, "snippet": gauss.reproduction}
    return Outcome(holds, constants, cex, note="; ".join(n for n in notes if n))


def _pieces(example: list[Any]) -> list[str]:
    """A list example as readable tensors: ``float16 [0.5, 0.5] × 1e4``."""
    return [f"{dtype} {[round(x, 6) for x in vals]} × 1e{power}" for vals, power, dtype in example]


def step_bound(s: ClippingSubject, settings: Settings) -> Outcome:
    """CLIP-02: sup over finite lists of gradients of ‖clip(g)‖, searched, against the same
    shapes and dtypes filled with 1e3 (a bounded rule's sup is its output at any large g)."""
    rule, facts, note = measured_rule(s, settings)
    sup = M.max_list_clipped_norm(rule=rule, profile=settings.profile, device=settings.device)
    ref = M.list_clipped_norm(rule=rule, g=sup.witness["example"], fill=1e3, device=settings.device)
    growth = {d: M.clipped_norm(rule=rule, d=d, scale=1e6, seed=settings.seed + 31, device=settings.device)
              for d in (16, 4096)}
    constants = {"sup ‖clip(g)‖ found (lists of tensors)": sup, "‖clip(g)‖, the sup's shapes filled with 1e3": ref,
                 "‖clip(g)‖, Gaussian ‖g‖≈4e6, d=16": growth[16],
                 "‖clip(g)‖, Gaussian ‖g‖≈6e7, d=4096": growth[4096],
                 "d-growth 16 → 4096": growth[4096].value / growth[16].value if growth[16].value > 0 else None,
                 **facts}
    # bounded: the searched sup (structured candidates included) stays within 1 % of the same
    # shapes' output at 1e3 (an unbounded rule passes ‖g‖ through); the sup is a lower bound,
    # so a pass says no unbounded case was found
    holds = math.isfinite(sup.value) and sup.value <= 1.01 * max(ref.value, 1e-30) and sup.value < 1e6
    cex = None if holds else {"g": _pieces(sup.witness["example"]), "found by": sup.witness["source"],
                              "‖clip(g)‖": sup, "snippet": sup.reproduction}
    return Outcome(holds, constants, cex, note=note)


def below_threshold(s: ClippingSubject, settings: Settings) -> Outcome:
    rule, facts, note = measured_rule(s, settings)
    change = M.relative_change(rule=rule, d=64, scale=1e-4, seed=settings.seed + 41, device=settings.device)
    holds = change.value <= 1e-6
    cex = None if holds else {"g": "1e-4 × N(0, I), d=64, seed 41", "relative change": change,
                              "snippet": change.reproduction}
    return Outcome(holds, {"relative change of a 1e-4-scale gradient": change, **facts}, cex, note=note)


def zero_gradient(s: ClippingSubject, settings: Settings) -> Outcome:
    rule, facts, note = measured_rule(s, settings)
    peak = M.zero_output(rule=rule, d=8, device=settings.device)
    ok = peak.value == 0.0
    cex = None if ok else {"g": [0.0] * 8, "max |clip(g)|": peak, "snippet": peak.reproduction}
    return Outcome(ok, {"max |clip(0)|": peak, **facts}, cex, note=note)


def non_finite(s: ClippingSubject, settings: Settings) -> Outcome:
    g = [torch.tensor([1.0, float("nan"), 2.0], device=settings.device)]
    try:
        out = M.flat(M.apply(_copy(s.rule), g))
        behaviour = "propagates non-finite" if not bool(torch.isfinite(out).all()) else "returns finite values"
    except Exception as e:
        behaviour = f"raises {type(e).__name__}"
    holds = behaviour != "returns finite values"
    cex = None if holds else {"g": [1.0, "nan", 2.0], "clip(g)": out.tolist(),
                              "snippet": f"{s.setup}\nimport torch\nprint(clip([torch.tensor([1.0, float('nan'), 2.0])]))"}
    return Outcome(holds, {"on a NaN gradient": behaviour}, cex)


VALUE_LIMIT = math.sqrt(2 / math.pi)   # CLIP-04: value clipping's cosine as d, s/τ → ∞ (its theorem's sympy limit)
VALUE_LIMIT_ATOL = 0.003               # CLIP-04's tolerance
LIMIT_D, LIMIT_SEEDS = 16384, 6        # CLIP-04's closed-form d and its seeds
LIMIT_SCALES = (1e3, 1e6)              # s far above any threshold ≤ 1e3: the last is the limit read


def coordinatewise(rule: Rule, settings: Settings) -> bool:
    """Whether each output entry depends on its own gradient entry only: doubling one entry of a large
    Gaussian gradient leaves every other output entry as it was (a norm rule rescales them all)."""
    g = settings.randn(64, offset=15, dtype=torch.float32) * LIMIT_SCALES[-1]
    moved = g.clone()
    moved[0] *= 2
    before, after = M.flat(M.apply(rule, [g])), M.flat(M.apply(rule, [moved]))
    return bool(torch.equal(before[1:], after[1:]))


def value_limit(s: ClippingSubject, settings: Settings) -> Outcome:
    """CLIP-04: cos(clip(g), g) for g with i.i.d. N(0, s²) coordinates (d = 16384) as s grows,
    against value clipping's √(2/π), for a coordinate-wise rule (any other: "does not apply");
    Student-t(3) coordinates beside it (outside the claim). A rule that returns 0 leaves the cosine
    undefined: a finding, never a number."""
    rule, facts, note = measured_rule(s, settings)
    if not coordinatewise(rule.obj, settings):
        raise NotApplicable("the rule is not coordinate-wise (doubling one gradient entry moves the others), and "
                            "the claim is about value clipping's coordinate-wise limit")
    run = dict(rule=rule, d=LIMIT_D, seeds=LIMIT_SEEDS, device=settings.device)
    gauss = {scale: M.value_clip_cosine(distribution="gaussian", scale=scale, **run) for scale in LIMIT_SCALES}
    heavy = M.value_clip_cosine(distribution="student_t3", scale=LIMIT_SCALES[-1], **run)
    limit = gauss[LIMIT_SCALES[-1]]
    g = f"N(0, {LIMIT_SCALES[-1]:g}²), d = {LIMIT_D}, {LIMIT_SEEDS} seeds"
    if math.isnan(limit.value):
        said = "the rule returns a zero gradient for a large Gaussian gradient: it leaves no direction"
        return Outcome(False, {"√(2/π) (value clipping's limit)": VALUE_LIMIT, **facts},
                       {"g": g, "cosine": "undefined (the clipped gradient is 0)", "snippet": limit.reproduction},
                       note="; ".join(n for n in (said, note) if n))
    constants: dict[str, Any] = {f"cos(clip(g), g), Gaussian, s = {scale:g}, d = {LIMIT_D}": m
                                 for scale, m in gauss.items()}
    constants.update({"95% CI at the largest s": f"[{limit.interval[0]:.4f}, {limit.interval[1]:.4f}]",
                      f"cos(clip(g), g), Student-t(3), s = {LIMIT_SCALES[-1]:g} (outside the claim)": heavy,
                      "√(2/π) (value clipping's limit)": VALUE_LIMIT, **facts})
    cex = {"g": g, "cosine": limit.value, "snippet": limit.reproduction}
    holds = decide("==", VALUE_LIMIT, limit.value, VALUE_LIMIT_ATOL, limit.interval)
    said = "" if holds else f"a coordinate-wise rule whose limit cosine is not √(2/π) ≈ {VALUE_LIMIT:.4f}"
    return Outcome(holds, constants, None if holds else cex, note="; ".join(n for n in (said, note) if n))


CLAUSES = (
    Clause("direction", ("CLIP-01", "CLIP-03"),
           "clipping keeps the gradient's direction: cos(clip(g), g) = 1 for every finite g", direction),
    Clause("step-bound", ("CLIP-02",),
           "the clipped gradient's norm is bounded whatever ‖g‖ (the step ≤ η·θ)", step_bound),
    Clause("below-threshold", ("CLIP-01",),
           "a gradient far below the threshold passes unchanged", below_threshold),
    Clause("zero", ("CLIP-01",), "a zero gradient stays a finite zero (no 0/0)", zero_gradient),
    Clause("value-limit", ("CLIP-04",),
           f"a coordinate-wise rule far above its threshold (Gaussian g, s = {LIMIT_SCALES[-1]:g}, d = {LIMIT_D}) has "
           f"cos(clip(g), g) = value clipping's √(2/π) ≈ {VALUE_LIMIT:.4f} (± {VALUE_LIMIT_ATOL})",
           value_limit, gate=False),
    Clause("non-finite", ("DEPTH-10",),
           "a NaN gradient is not silently turned into a finite update", non_finite, gate=False),
)


def objects() -> dict[str, Any]:
    """gradcore.clipping's rules at threshold 1."""
    from ... import clipping

    return {"NormClip(1.0)": clipping.NormClip(1.0), "ValueClip(1.0)": clipping.ValueClip(1.0)}


class ClippingContract(Contract):
    """A rule ``list[Tensor] -> list[Tensor]`` (a function or a callable instance)."""

    kind, binding, clauses, signature = KIND, "clip", CLAUSES, Signature(cls=False, accepts=1)
    smoke_failure = "clipping rule failed on a list of two gradients"
    smoke, build, objects = staticmethod(smoke), staticmethod(build), staticmethod(objects)

"""Contract for a gradient-clipping rule ``list[Tensor] -> list[Tensor]``.

Claims (catalogue CLIP): 003 §4 "按比例缩放…这保证了梯度的方向不变"; 004 Definition 3.3.5
and "按范数裁剪保持梯度的方向"; 002 §直接干预 "将更新步长限制在学习率 η 与阈值 θ 的乘积之内";
000 §梯度爆炸的后果 (values beyond the float range become NaN/Inf). Every clause
measures through the recipes of :mod:`gradcore.measure.clipping` (the same ones the
CLIP theorems call) on the user's rule. The direction and step-bound clauses search
gradients over many orders of magnitude (so overflow inside the rule's own norm is
found too) and score structured gradients first (every coordinate equal and large, a
spike over a plateau): their values are search bounds, not the extrema.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ...measure import Given
from ...measure import clipping as M
from .base import CheckError, Clause, Outcome, Settings
from .contract import Contract, Signature

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


def direction(s: ClippingSubject, settings: Settings) -> Outcome:
    cos = M.worst_cosine(rule=_given(s), profile=settings.profile, device=settings.device)
    gauss = M.gaussian_cosine(rule=_given(s), d=4096, scale=1e3, seed=settings.seed + 21, device=settings.device)
    constants: dict[str, Any] = {"worst cosine found by search": cos,
                                 "cos(clip(g), g), Gaussian g, d=4096, ‖g‖∞≈4e3": gauss}
    if cos.value >= 1 - COS_TOL:   # NaN (no direction left) fails too
        holds = gauss.value >= 1 - COS_TOL
        return Outcome(holds, constants, None if holds else {
            "g": "N(0, 1e6 I), d=4096, seed 21", "cosine": gauss, "snippet": gauss.reproduction})
    g = M.gradient(cos.witness["example"], settings.device)
    out = torch.cat([t.reshape(-1) for t in M.apply(s.rule, g)])
    return Outcome(False, constants, {
        "g": g[0].tolist(), "clip(g)": out.tolist(), "found by": cos.witness["source"],
        "cosine": cos.value if math.isfinite(cos.value) else "nan", "snippet": cos.reproduction})


def step_bound(s: ClippingSubject, settings: Settings) -> Outcome:
    sup = M.max_clipped_norm(rule=_given(s), profile=settings.profile, device=settings.device)
    small = M.clipped_norm(rule=_given(s), g=[1e3, -1e3], device=settings.device)
    growth = {d: M.clipped_norm(rule=_given(s), d=d, scale=1e6, seed=settings.seed + 31, device=settings.device)
              for d in (16, 4096)}
    constants = {"sup ‖clip(g)‖ found (d ≤ 12)": sup, "‖clip(g)‖, g=[1e3, -1e3]": small,
                 "‖clip(g)‖, Gaussian ‖g‖≈4e6, d=16": growth[16],
                 "‖clip(g)‖, Gaussian ‖g‖≈6e7, d=4096": growth[4096],
                 "d-growth 16 → 4096": growth[4096].value / growth[16].value if growth[16].value > 0 else None}
    # bounded: the searched sup (structured candidates included: scales 1e-3…1e30, every
    # coordinate equal and large) stays within 1 % of a moderate case's output norm (an
    # unbounded rule passes ‖g‖ through); the sup is a lower bound, so a pass is provisional
    holds = (math.isfinite(sup.value) and sup.value <= 1.01 * max(small.value, growth[16].value, 1e-30)
             and sup.value < 1e6)
    cex = None if holds else {"g": M.gradient(sup.witness["example"], settings.device)[0].tolist(),
                              "found by": sup.witness["source"], "‖clip(g)‖": sup, "snippet": sup.reproduction}
    return Outcome(holds, constants, cex)


def below_threshold(s: ClippingSubject, settings: Settings) -> Outcome:
    change = M.relative_change(rule=_given(s), d=64, scale=1e-4, seed=settings.seed + 41, device=settings.device)
    holds = change.value <= 1e-6
    cex = None if holds else {"g": "1e-4 × N(0, I), d=64, seed 41", "relative change": change,
                              "snippet": change.reproduction}
    return Outcome(holds, {"relative change of a 1e-4-scale gradient": change}, cex)


def zero_gradient(s: ClippingSubject, settings: Settings) -> Outcome:
    peak = M.zero_output(rule=_given(s), d=8, device=settings.device)
    ok = peak.value == 0.0
    cex = None if ok else {"g": [0.0] * 8, "max |clip(g)|": peak, "snippet": peak.reproduction}
    return Outcome(ok, {"max |clip(0)|": peak}, cex)


def non_finite(s: ClippingSubject, settings: Settings) -> Outcome:
    g = [torch.tensor([1.0, float("nan"), 2.0], device=settings.device)]
    try:
        out = M.flat(M.apply(s.rule, g))
        behaviour = "propagates non-finite" if not bool(torch.isfinite(out).all()) else "returns finite values"
    except Exception as e:
        behaviour = f"raises {type(e).__name__}"
    holds = behaviour != "returns finite values"
    cex = None if holds else {"g": [1.0, "nan", 2.0], "clip(g)": out.tolist(),
                              "snippet": f"{s.setup}\nimport torch\nprint(clip([torch.tensor([1.0, float('nan'), 2.0])]))"}
    return Outcome(holds, {"on a NaN gradient": behaviour}, cex)


CLAUSES = (
    Clause("direction", ("CLIP-01", "CLIP-03"),
           "clipping keeps the gradient's direction: cos(clip(g), g) = 1 for every finite g", direction),
    Clause("step-bound", ("CLIP-02",),
           "the clipped gradient's norm is bounded whatever ‖g‖ (the step ≤ η·θ)", step_bound),
    Clause("below-threshold", ("CLIP-01",),
           "a gradient far below the threshold passes unchanged", below_threshold),
    Clause("zero", ("CLIP-01",), "a zero gradient stays a finite zero (no 0/0)", zero_gradient),
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

"""Contract for a gradient-clipping rule ``list[Tensor] -> list[Tensor]``.

Claims (catalogue CLIP): 003 §4 "按比例缩放…这保证了梯度的方向不变"; 004 Definition 3.3.5
and "按范数裁剪保持梯度的方向"; 002 §直接干预 "将更新步长限制在学习率 η 与阈值 θ 的乘积之内";
000 §梯度爆炸的后果 (values beyond the float range become NaN/Inf). The direction clause
searches gradients with Hypothesis (shrinking the counterexample) over many orders of
magnitude, so overflow inside the rule's own norm computation is found too.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import strategies as st

from ..search import find_counterexample, maximize
from .base import CheckError, Clause, Outcome, Settings, callable_or_fail, run_smoke

KIND = "clipping"
Rule = Callable[[list[torch.Tensor]], list[torch.Tensor]]
COS_TOL = 1e-6


@dataclass(frozen=True)
class ClippingSubject:
    name: str
    rule: Rule
    setup: str   # Python lines binding the rule to ``clip``


def _apply(rule: Rule, grads: list[torch.Tensor]) -> list[torch.Tensor]:
    out = rule([g.clone() for g in grads])
    if isinstance(out, torch.Tensor):
        out = [out]
    return list(out)


def smoke(rule: Rule, settings: Settings) -> None:
    grads = [settings.randn(3, 4, offset=11, dtype=torch.float32) * 10,
             settings.randn(5, offset=12, dtype=torch.float32) * 10]
    out = _apply(rule, grads)
    if len(out) != len(grads) or not all(isinstance(o, torch.Tensor) for o in out):
        raise CheckError(f"clipping rule returned {len(out)} items for {len(grads)} gradients")
    for g, o in zip(grads, out):
        if o.shape != g.shape:
            raise CheckError(f"clipping rule changed a gradient's shape: {tuple(g.shape)} -> {tuple(o.shape)}")
        if not bool(torch.isfinite(o).all()):
            raise CheckError("clipping rule returned non-finite values for finite gradients")


def subject(obj: Any, name: str, setup: str, settings: Settings) -> ClippingSubject:
    callable_or_fail(obj)
    run_smoke(smoke, obj, settings, "clipping rule failed on a list of two gradients")
    return ClippingSubject(name, obj, setup)


def looks_like(obj: Any, settings: Settings) -> bool:
    if not callable(obj):
        return False
    try:
        smoke(obj, settings)
        return True
    except Exception:
        return False


def _flat(gs: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.reshape(-1).double() for g in gs])


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    # float64 and pre-scaling so that the cosine itself never overflows
    a, b = a / a.abs().max().clamp_min(1e-300), b / b.abs().max().clamp_min(1e-300)
    na, nb = a.norm(), b.norm()
    if na == 0 or nb == 0 or not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return float("nan")
    return float(torch.dot(a, b) / (na * nb))


def _gradients() -> st.SearchStrategy[tuple[list[float], int]]:
    """Gradient values in [-1, 1] and a power of ten to scale them by (1e-3 … 1e30)."""
    values = st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=2, max_size=12)
    values = values.filter(lambda v: any(abs(x) > 1e-3 for x in v))
    return st.tuples(values, st.integers(-3, 30))


def _tensor(example: tuple[list[float], int], settings: Settings) -> list[torch.Tensor]:
    vals, power = example
    return [torch.tensor(vals, dtype=torch.float32, device=settings.device) * (10.0 ** power)]


def direction(s: ClippingSubject, settings: Settings) -> Outcome:
    def cos_of(example: tuple[list[float], int]) -> float:
        g = _tensor(example, settings)
        if not bool(torch.isfinite(g[0]).all()):
            return 1.0
        return _cosine(_flat(g), _flat(_apply(s.rule, g)))

    found = find_counterexample(_gradients(), lambda e: not (cos_of(e) >= 1 - COS_TOL), **settings.hypothesis)
    gauss = settings.randn(4096, offset=21, dtype=torch.float32) * 1e3
    cos_gauss = _cosine(_flat([gauss]), _flat(_apply(s.rule, [gauss])))
    constants: dict[str, Any] = {"cos(clip(g), g), Gaussian g, d=4096, ‖g‖∞≈4e3": cos_gauss}
    if found is None:
        return Outcome(cos_gauss >= 1 - COS_TOL, constants, None if cos_gauss >= 1 - COS_TOL else {
            "g": "N(0, 1e6 I), d=4096, seed 21", "cosine": cos_gauss})
    g = _tensor(found, settings)
    out = _flat(_apply(s.rule, g))
    cos = cos_of(found)
    constants = {"worst cosine found by search": cos, **constants}
    return Outcome(False, constants, {
        "g": g[0].tolist(), "clip(g)": out.tolist(), "cosine": cos if math.isfinite(cos) else "nan",
        "snippet": f"{s.setup}\nimport torch\ng = [torch.tensor({found[0]!r}) * 1e{found[1]}]\n"
                   "out = clip(g)\nprint(out, torch.nn.functional.cosine_similarity(g[0].double(), "
                   "out[0].double(), dim=0))"})


def step_bound(s: ClippingSubject, settings: Settings) -> Outcome:
    def out_norm(example: tuple[list[float], int]) -> float:
        g = _tensor(example, settings)
        if not bool(torch.isfinite(g[0]).all()):
            return 0.0
        n = float(_flat(_apply(s.rule, g)).norm())
        return n if math.isfinite(n) else float("inf")

    worst, bound = maximize(_gradients(), out_norm, **settings.hypothesis)
    small = out_norm(([1.0, -1.0], 3))
    growth = {}
    for d in (16, 4096):
        g = settings.randn(d, offset=31, dtype=torch.float32) * 1e6
        growth[d] = float(_flat(_apply(s.rule, [g])).norm())
    constants = {"sup ‖clip(g)‖ found (d ≤ 12)": bound, "‖clip(g)‖, g=[1e3, -1e3]": small,
                 "‖clip(g)‖, Gaussian ‖g‖≈4e6, d=16": growth[16],
                 "‖clip(g)‖, Gaussian ‖g‖≈6e7, d=4096": growth[4096],
                 "d-growth 16 → 4096": growth[4096] / growth[16] if growth[16] > 0 else None}
    # bounded: the search's worst case over scales 1e-3…1e30 stays within 1 % of a
    # moderate case's output norm (an unbounded rule passes ‖g‖ through)
    holds = math.isfinite(bound) and bound <= 1.01 * max(small, growth[16], 1e-30) and bound < 1e6
    cex = None if holds else {
        "g": _tensor(worst, settings)[0].tolist(), "‖clip(g)‖": bound,
        "snippet": f"{s.setup}\nimport torch\ng = [torch.tensor({worst[0]!r}) * 1e{worst[1]}]\n"
                   "print(torch.cat([t.reshape(-1) for t in clip(g)]).norm())"}
    return Outcome(holds, constants, cex)


def below_threshold(s: ClippingSubject, settings: Settings) -> Outcome:
    g = [settings.randn(64, offset=41, dtype=torch.float32) * 1e-4]
    out = _apply(s.rule, g)
    change = float((_flat(out) - _flat(g)).norm() / _flat(g).norm())
    holds = change <= 1e-6
    cex = None if holds else {
        "g": "1e-4 × N(0, I), d=64, seed 41", "relative change": change,
        "snippet": f"{s.setup}\nimport torch\ng = [torch.randn(64) * 1e-4]\nprint((clip(g)[0] - g[0]).norm() / g[0].norm())"}
    return Outcome(holds, {"relative change of a 1e-4-scale gradient": change}, cex)


def zero_gradient(s: ClippingSubject, settings: Settings) -> Outcome:
    g = [torch.zeros(8, dtype=torch.float32, device=settings.device)]
    out = _flat(_apply(s.rule, g))
    ok = bool(torch.isfinite(out).all()) and float(out.abs().max()) == 0.0
    cex = None if ok else {"g": [0.0] * 8, "clip(g)": out.tolist(),
                           "snippet": f"{s.setup}\nimport torch\nprint(clip([torch.zeros(8)]))"}
    return Outcome(ok, {"max |clip(0)|": float(out.abs().nan_to_num(nan=float('inf')).max())}, cex)


def non_finite(s: ClippingSubject, settings: Settings) -> Outcome:
    g = [torch.tensor([1.0, float("nan"), 2.0], device=settings.device)]
    try:
        out = _flat(_apply(s.rule, g))
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


def builtins() -> dict[str, tuple[Any, str]]:
    """gradcore.clipping's rules at threshold 1."""
    from ... import clipping

    return {"NormClip(1.0)": (clipping.NormClip(1.0), "from gradcore.clipping import NormClip\nclip = NormClip(1.0)"),
            "ValueClip(1.0)": (clipping.ValueClip(1.0), "from gradcore.clipping import ValueClip\nclip = ValueClip(1.0)")}

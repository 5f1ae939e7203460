"""Contract for a normalizing-flow layer: a factory ``dim -> layer``, ``layer(x) -> (y, logdet)``.

Claims (catalogue FLOW): 002 §在现代生成模型中的体现 (归一化流) "即使一个变换是保体积的（即行列式为1）…
其谱范数也可能远大于1，从而在反向传播中引发梯度爆炸 … 必须对雅可比矩阵的奇异值进行控制，而不仅仅是其
行列式". A layer maps a (batch, dim) input to ``(y, logdet)`` (RealNVP, nflows), or to ``y`` with a
``log_abs_det_jacobian(x, y)`` method (torch.distributions) or ``volume_preserving = True`` (NICE:
log|det J| = 0), and has ``inverse(y)``. Every clause measures through
:mod:`gradcore.measure.flows` (the FLOW theorems' recipes) with the factory passed as ``Given``.
"""
from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import nn

from ...measure import flows as M
from .base import Clause, Outcome, Settings, callable_or_fail
from ...errors import CheckError
from .contract import Contract, Subject

KIND = "flow"
DIM, BATCH = M.DIM, 4
GROWTH = math.log(1.02)    # per-layer log-growth of the input gradient above which a stack explodes
SEEDS = (8, 32)            # stacks per growth estimate: 8 first, 32 when 8 leave the decision open


def smoke(make: Any, settings: Settings) -> None:
    """One-line CheckError unless ``make(DIM)`` is an invertible layer that reports its log-determinant."""
    layer = M.user_layer(make, settings.seed, settings.device)
    if not callable(layer):
        raise CheckError(f"factory returned {type(layer).__name__}, expected a flow layer (an nn.Module)")
    x = settings.randn(BATCH, DIM, offset=5)
    try:
        y, logdet = M.flow_output(layer, x)
    except Exception as e:
        raise CheckError(f"layer failed on a ({BATCH}, {DIM}) input: {type(e).__name__}: {e}") from None
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != (BATCH, DIM):
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise CheckError(f"layer must return y of shape ({BATCH}, {DIM}) (or (y, logdet)), got {got}")
    if logdet is None:
        raise CheckError("logdet missing: forward must return (y, logdet), or the layer must define "
                         "log_abs_det_jacobian(x, y) or declare volume_preserving = True")
    if not isinstance(logdet, torch.Tensor) or logdet.reshape(-1).shape != (BATCH,):
        got = tuple(logdet.shape) if isinstance(logdet, torch.Tensor) else type(logdet).__name__
        raise CheckError(f"logdet must have one value per sample, shape ({BATCH},), got {got}")
    if not (bool(torch.isfinite(y).all()) and bool(torch.isfinite(logdet).all())):
        raise CheckError("layer returned non-finite values on a random input")
    _invertible(layer, make, settings)


def _invertible(layer: Any, make: Any, settings: Settings) -> None:
    if not callable(getattr(layer, "inverse", None)):
        raise CheckError("not invertible: the layer has no inverse(y) method")
    try:
        gap = M.round_trip(layer=make, seed=settings.seed, x_seed=settings.seed + 5, device=settings.device)
    except Exception as e:
        raise CheckError(f"inverse failed: {type(e).__name__}: {e}") from None
    if not gap.value <= gap.bound:
        raise CheckError(f"not invertible: inverse(forward(x)) differs from x by {gap.value:.3g} "
                         f"(relative, > {gap.bound:g})")


def prepare(obj: Any, settings: Settings) -> Any:
    """The factory itself: a layer instance is refused (a stack needs freshly drawn layers)."""
    if isinstance(obj, nn.Module):
        raise CheckError("pass the flow layer's class or a factory dim -> layer, not an instance "
                         "(a stack needs freshly drawn layers)")
    callable_or_fail(obj)
    return obj


def excludes(obj: Any) -> str | None:
    """Inference: a layer instance, or a class whose layers have no ``inverse``, is no flow factory."""
    if isinstance(obj, nn.Module):
        return "it is an nn.Module instance, not a factory dim -> layer"
    if inspect.isclass(obj) and not callable(getattr(obj, "inverse", None)):
        return "its layers have no inverse(y) method"
    return None


def logdet_exact(s: Subject, settings: Settings) -> Outcome:
    gap = M.logdet_residual(layer=s.given, seed=settings.seed, device=settings.device)
    holds = gap.value <= gap.bound           # ∞ (a NaN logdet) fails
    cex = None if holds else {"max |reported − autograd log|det J||": gap.value, "points": "N(0, I) × {1, 3}",
                              "snippet": gap.reproduction}
    return Outcome(holds, {"max |logdet − log|det J||": gap, "bound": gap.bound}, cex)


def spectrum(s: Subject, settings: Settings) -> Outcome:
    """σ_max and σ_min of one layer's Jacobian beside its log-determinant: det says nothing of σ_max."""
    top = M.sigma_max(layer=s.given, seed=settings.seed, device=settings.device)
    low = M.sigma_min(layer=s.given, seed=settings.seed, device=settings.device)
    return Outcome(True, {"σ_max(J)": top, "σ_min(J)": low,
                          "κ(J)": top.value / low.value if low.value > 0 else math.inf})


def stack_growth(s: Subject, settings: Settings) -> Outcome:
    for seeds in SEEDS:        # per-seed slopes spread widely (the FLOW-02 couplings: 0.03–0.19): more when undecided
        m = M.growth_rate(layer=s.given, param=0.0, seeds=seeds * settings.scale, device=settings.device)
        lo, hi = m.interval
        holds = True if hi <= GROWTH else (False if lo > GROWTH else None)
        if holds is not None:
            break
    depth = M.KS[-1]
    constants = {"per-layer log-growth": m, "95% CI": f"[{lo:.4f}, {hi:.4f}]",
                 f"gradient gain over {depth} layers": math.exp(m.value * depth)}
    cex = None if holds is not False else {"stack": f"{depth} freshly drawn layers, dim {DIM}",
                                           "per-layer log-growth": m.value, "snippet": m.reproduction}
    return Outcome(holds, constants, cex, note="" if holds is not None else "confidence interval straddles the bound")


CLAUSES = (
    Clause("logdet-exact", ("FLOW-01",),
           "the log-determinant the layer reports (0 if volume-preserving) is log|det J| of autograd's "
           "Jacobian, to rounding", logdet_exact),
    Clause("jacobian-spectrum", ("FLOW-01",),
           "σ_max and σ_min of the layer's Jacobian, which its determinant does not bound", spectrum, gate=False),
    Clause("stack-growth", ("FLOW-02", "FLOW-03"),
           f"in a stack of {M.KS[-1]} freshly drawn layers the input gradient grows by at most "
           f"{math.exp(GROWTH):g}× per layer", stack_growth),
)


def _nice(dim: int, scale: float) -> nn.Module:
    from ...flows import AdditiveCoupling

    layer = AdditiveCoupling(dim, scale=scale)
    layer.volume_preserving = True     # NICE: the Jacobian [[I, 0], [t', I]] has det 1
    return layer


def nice_coupling_shear025(dim: int) -> nn.Module:
    """gradcore.flows.AdditiveCoupling (NICE) with shear scale 0.25: singular values kept near 1 (FLOW-03)."""
    return _nice(dim, 0.25)


def nice_coupling_shear4(dim: int) -> nn.Module:
    """NICE coupling with shear scale 4 (FLOW-01's ill-conditioned det-1 layer)."""
    return _nice(dim, 4.0)


def objects() -> dict[str, Any]:
    """gradcore.flows' NICE coupling at shear scales 0.25 and 4 (log|det J| = 0 for both)."""
    return {"NICE coupling, shear 0.25": nice_coupling_shear025, "NICE coupling, shear 4": nice_coupling_shear4}


class FlowContract(Contract):
    """A factory ``dim -> layer`` (a class or a function) whose layers are invertible and report log|det J|."""

    kind, binding, clauses = KIND, "make", CLAUSES
    prepare, excludes, smoke = staticmethod(prepare), staticmethod(excludes), staticmethod(smoke)
    objects = staticmethod(objects)

"""Contract for a normalisation layer: Jacobian bound, ε floor, batch dependence, deep stacks.

Claims (catalogue NORM): 002 §归一化层与架构细节 "BN的归一化操作的雅可比矩阵，其谱范数
受到批内统计量（特别是标准差 σ）的约束"; the ε of 004 (3.3.16)-(3.3.18); 004 §3.3.4
"层归一化的关键优势是它不依赖于batch size"; 003 §4 and 000 list normalisation as a cure for
vanishing/exploding gradients. The subject is a factory ``width -> nn.Module`` acting on
``(batch, width)`` inputs; Jacobians are dense (``gradcore.jacobian``) on small sizes. The
Jacobian, ε and batch clauses measure through :mod:`gradcore.measure.normalisation` (the theorems'
recipes) with the technique passed as ``Given``; a non-finite output or Jacobian is an
explosion (∞), never a small number.
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ...measure import Given
from ...measure import normalisation as M
from ._stack import SEEDS, banded_transfer, undecided_note
from ..verdicts import within
from .base import CheckError, Clause, Outcome, Settings, error_line, probe
from .contract import Contract, Signature

KIND = "norm"
WIDTH, BATCH = 16, 8
TRANSFER_BAND = (0.9, 1.1)


@dataclass(frozen=True)
class NormSubject:
    name: str
    make: Callable[..., nn.Module]   # (width, dtype=float64) -> fresh module in training mode on device
    setup: str                         # Python lines binding ``make`` (for snippets)
    obj: Any = None                    # the object itself (a factory, module class or instance): what recipes get


def _factory(obj: Any, settings: Settings) -> Callable[[int], nn.Module]:
    if isinstance(obj, nn.Module):
        def fixed(width: int) -> nn.Module:
            return obj
        return _placed(fixed, settings)
    if not callable(obj):
        raise CheckError(f"{type(obj).__name__} object is not callable")
    return _placed(obj, settings)


def _placed(make: Callable[[int], Any], settings: Settings) -> Callable[..., nn.Module]:
    def build(width: int, dtype: torch.dtype = torch.float64) -> nn.Module:
        m = make(width)
        if not isinstance(m, nn.Module):
            if callable(m):
                return m    # a plain function of the batch is accepted too
            raise CheckError(f"factory returned {type(m).__name__}, expected an nn.Module")
        return m.to(device=settings.device, dtype=dtype).train()
    return build


def smoke(make: Callable[[int], nn.Module], settings: Settings) -> torch.Tensor:
    """One-line CheckError unless the layer maps (batch, width) to a finite tensor of that shape."""
    x = settings.randn(BATCH, WIDTH, offset=7) * 3 + 1
    return probe(lambda: make(WIDTH)(x), what="layer", on=f"a random ({BATCH}, {WIDTH}) input",
                 shape=tuple(x.shape))


def normalises(y: torch.Tensor) -> bool:
    """Unit scale over the feature or the batch dimension (how kind inference spots a norm)."""
    for dim in (0, 1):
        rms = y.pow(2).mean(dim).sqrt()
        std = y.std(dim, unbiased=False)
        if bool(((rms - 1).abs() < 0.05).all()) or bool(((std - 1).abs() < 0.05).all()):
            return True
    return False


def prepare(obj: Any, settings: Settings) -> Callable[..., nn.Module]:
    """The layer's factory ``(width, dtype) -> module`` (a module instance is used as it is)."""
    if inspect.isclass(obj) and not issubclass(obj, nn.Module):
        raise CheckError(f"{obj.__name__} is a class but not an nn.Module")
    return _factory(obj, settings)


def recognises(make: Any, y: torch.Tensor, settings: Settings) -> str | None:
    """Inference: a norm's smoke-test output has unit scale over the features or the batch."""
    return None if normalises(y) else "its output is not normalised over the features or the batch"


def build(make: Callable[..., nn.Module], obj: Any, name: str, setup: str, settings: Settings) -> NormSubject:
    return NormSubject(name, make, setup, obj)


def _given(s: NormSubject) -> Given:
    """The user's object as a recipe argument: its reproduction binds ``make`` with the subject's setup."""
    return Given(s.obj, "make", s.setup)


def jacobian_bound(s: NormSubject, settings: Settings) -> Outcome:
    """NORM-03: sup over inputs of ‖∂y/∂x‖₂·σ_min, searched (a lower bound on the sup)."""
    worst = M.norm_jacobian_sigma(make=_given(s), width=WIDTH, batch=BATCH, seeds=settings.seeds,
                                  seed=settings.seed, profile=settings.profile, device=settings.device)
    holds = worst.value <= 1.0 + 1e-6          # a non-finite Jacobian is ∞: violated, never 0
    cex = None if holds else {"sup ‖J‖₂·σ_min found": worst.value, "input": worst.witness,
                              "snippet": worst.reproduction}
    return Outcome(holds, {"sup ‖J‖₂·σ_min found by search": worst, "found by": worst.witness,
                           "bound": "search (lower bound on the sup)"}, cex)


def epsilon_floor(s: NormSubject, settings: Settings) -> Outcome:
    """Measured in float32, the dtype layers train in (an ε tied to the dtype, like
    ``nn.RMSNorm``'s default ``finfo.eps``, only floors the variance in that dtype)."""
    j4, j6 = (M.norm_jacobian_norm(make=_given(s), scale=scale, width=WIDTH, batch=BATCH, seed=settings.seed + 200,
                                   dtype="float32", device=settings.device) for scale in (1e-4, 1e-6))
    finite = M.norm_finite_on_constant(make=_given(s), value=0.5, width=WIDTH, batch=BATCH, dtype="float32",
                                       device=settings.device)
    finite_const = bool(finite.value)
    # ∞ when either gain is not finite: no floor (never a ratio of 0 or NaN)
    growth = j6.value / j4.value if 0 < j4.value < math.inf and j6.value < math.inf else math.inf
    # growth and the 1e-6 gain stay floats: tests compare them with pytest.approx, which a
    # Measurement does not support yet.
    constants = {"growth 1e-4 → 1e-6": growth, "‖J‖₂ at input scale 1e-4": j4, "‖J‖₂ at input scale 1e-6": j6.value,
                 "constant input finite": finite_const, "dtype": "float32"}
    holds = finite_const and growth <= 2.0
    cex = None if holds else {
        "input": f"constant 0.5, shape ({BATCH}, {WIDTH})" if not finite_const else
                 f"1e-6 × N(0,1), shape ({BATCH}, {WIDTH})",
        "output finite": finite_const, "‖J‖₂ growth": growth,
        "snippet": finite.reproduction if not finite_const else j6.reproduction}
    return Outcome(holds, constants, cex)


def batch_independence(s: NormSubject, settings: Settings) -> Outcome:
    gap = M.batch_dependence(make=_given(s), width=WIDTH, sizes=(2, 8, 64), seed=settings.seed + 300,
                             device=settings.device)
    holds = gap.value <= 1e-9                  # non-finite outputs give ∞: dependent, not independent
    cex = None if holds else {"sample": "row 0 of a N(0,1) batch", "batch sizes": [2, 8, 64],
                              "max |Δ output|": gap.value, "snippet": gap.reproduction}
    return Outcome(holds, {"max |Δ output| of one sample, batch 2/8 vs 64": gap}, cex)


def stack_width(s: NormSubject, want: int, settings: Settings) -> tuple[int, str]:
    """The width to build the stack at: ``want``, or the subject's checked WIDTH when the layer
    fails at ``want`` (a layer built for one width, e.g. ``GroupNorm(4, 16)`` whatever the width
    asked for), with a note saying so. Tried once, on one batch."""
    x = settings.randn(4, want, offset=9)
    try:
        s.make(want)(x)
        return want, ""
    except Exception as e:
        return WIDTH, (f"measured at width {WIDTH}: the layer fails at width {want} ({error_line(e)}), "
                       f"so it is taken to accept only the width it was checked at")


def deep_stack(s: NormSubject, settings: Settings) -> Outcome:
    depth, batch = 24 * settings.scale, 32
    width, width_note = stack_width(s, 32 * settings.scale, settings)
    # Xavier × 2 on square weights is N(0, 4/n): twice the He variance, so without a norm it explodes.
    stack = dict(activation="relu", init="xavier_normal", gains=(2.0,), width=width, depth=depth, batch=batch,
                 seed=settings.seed, device=settings.device)
    normed = banded_transfer(TRANSFER_BAND, norm=_given(s), **stack)
    plain = banded_transfer(TRANSFER_BAND, norm=None, **stack)
    holds = within(normed.interval, *TRANSFER_BAND)
    constants = {"lambda with norm": normed,
                 "lambda 95% CI": f"[{normed.interval[0]:.4f}, {normed.interval[1]:.4f}]",
                 "lambda without norm": plain, "depth": depth, "width": width, "seeds": normed.sizes["seeds"],
                 "seeds cap": SEEDS[-1],
                 "weights": "N(0, 4/n) (2× He)"}
    cex = None if holds is not False else {
        "stack": f"{depth} × (Linear({width},{width}) with N(0,4/n) weights → norm → ReLU), batch {batch}",
        "lambda": normed.value, "witness": normed.witness, "snippet": normed.reproduction}
    note = normed.witness or ("" if holds is not None else undecided_note(normed, f"the band {list(TRANSFER_BAND)}"))
    return Outcome(holds, constants, cex, note="; ".join(n for n in (width_note, note) if n))


CLAUSES = (
    Clause("jacobian-bound", ("NORM-03",),
           "‖∂y/∂x‖₂ ≤ 1/σ, σ the smallest per-sample or per-feature std of the input", jacobian_bound),
    Clause("epsilon-floor", ("NORM-03",),
           "the ε keeps the layer well-defined as the input variance → 0: finite on a constant input, "
           "‖J‖₂ stops growing", epsilon_floor),
    Clause("batch-independence", ("NORM-05",),
           "one sample's output does not depend on the rest of the batch", batch_independence, gate=False),
    Clause("deep-stack", ("NORM-04",),
           f"in a deep Linear→norm→ReLU stack with oversized weights the per-layer gradient factor λ "
           f"lies in {list(TRANSFER_BAND)}", deep_stack),
)


def objects() -> dict[str, Any]:
    """gradcore.normalisation' factories (torch's BatchNorm1d, LayerNorm, RMSNorm) at their defaults."""
    from ... import normalisation as norms

    return {name: getattr(norms, name) for name in ("batch_norm", "layer_norm", "rms_norm")}


class NormContract(Contract):
    """A factory ``width -> nn.Module`` (an nn.Module class or instance is inferred as one)."""

    kind, binding, clauses, signature = KIND, "make", CLAUSES, Signature(module=True, accepts=1)
    prepare, smoke, build = staticmethod(prepare), staticmethod(smoke), staticmethod(build)
    recognises, objects = staticmethod(recognises), staticmethod(objects)

"""Contract for a step map ``step(x, h) -> x'`` of an ODE integrator or a discrete-time update.

Claims (catalogue STAB, CTRL): 002 §数值稳定性与最优控制的观点 "如果步长 h 选择不当，离散化后的迭代矩阵
I+hA 的谱半径可能会大于1，导致数值解发散 … 这与RNN中因循环权重矩阵谱半径大于1而导致的梯度爆炸是同一
数学现象的体现" and "梯度爆炸或消失问题，可以被重新诠释为伴随动态系统的不稳定或稳定"; the costates
are the backprop gradients. The map acts on a (batch, n) state; n is its ``dim`` attribute (or the size
of its square matrix ``A``), h its ``h`` attribute or the default of its second parameter. Clauses
measure through :mod:`gradcore.measure.euler` and :mod:`gradcore.measure.adjoint` with the map as ``Given``.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from ...measure import Given
from ...measure import adjoint as C
from ...measure import euler as E
from .base import Clause, Outcome, Settings, callable_or_fail, probe
from ...errors import CheckError
from .contract import Contract, Signature

KIND = "dynamics"
BATCH = 4
UPPER = 1.02     # BPTT per-step factor above which gradients explode through time (as for recurrent cells)


@dataclass(frozen=True)
class DynamicsSubject:
    name: str
    step: Any
    h: float
    dim: int
    setup: str

    @property
    def given(self) -> Given:
        return Given(self.step, "step", self.setup)


def state_size(obj: Any) -> int:
    """The state size the map declares: ``dim``, or the rows of a square ``A``; CheckError otherwise."""
    dim = getattr(obj, "dim", None)
    if dim is None and getattr(obj, "A", None) is not None:
        A = torch.as_tensor(obj.A)
        dim = A.shape[0] if A.ndim == 2 and A.shape[0] == A.shape[1] else None
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise CheckError("the step map must declare its state size: an integer attribute dim >= 1 "
                         "(or a square matrix A)")
    return dim


def step_size(obj: Any) -> float:
    """The step size the map declares: ``h``, or the default of its second parameter; CheckError otherwise."""
    h = getattr(obj, "h", None)
    if h is None:
        try:
            params = [p for p in inspect.signature(obj).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        except (TypeError, ValueError):
            params = []
        h = params[1].default if len(params) >= 2 and params[1].default is not params[1].empty else None
    if isinstance(h, bool) or not isinstance(h, (int, float)) or not (math.isfinite(h) and h > 0):
        raise CheckError(f"the step map must declare a finite step size h > 0 (an attribute h or the default "
                         f"of step(x, h=...)), got {h!r}")
    return float(h)


def prepare(obj: Any, settings: Settings) -> DynamicsSubject:
    """The map with the state size and step size it declares (a module moved to float64)."""
    callable_or_fail(obj)
    if inspect.isclass(obj):
        raise CheckError(f"{obj.__name__} is a class: pass the step map itself (an instance or a function)")
    if isinstance(obj, nn.Module):
        obj = obj.to(device=settings.device, dtype=torch.float64)
    dim, h = state_size(obj), step_size(obj)
    return DynamicsSubject("", obj, h, dim, "")


def smoke(s: DynamicsSubject, settings: Settings) -> torch.Tensor:
    """One-line CheckError unless the map takes a (batch, dim) state to a finite one of that shape."""
    x = settings.randn(BATCH, s.dim, offset=9)
    return probe(lambda: s.step(x, s.h), what="step map", on=f"a ({BATCH}, {s.dim}) state with h = {s.h:g}",
                 shape=(BATCH, s.dim))


def build(s: DynamicsSubject, obj: Any, name: str, setup: str, settings: Settings) -> DynamicsSubject:
    return replace(s, name=name, setup=setup)


def _args(s: DynamicsSubject, settings: Settings) -> dict[str, Any]:
    return {"step": s.given, "h": s.h, "dim": s.dim, "device": settings.device}


def stability_region(s: DynamicsSubject, settings: Settings) -> Outcome:
    rho = E.step_radius(**_args(s, settings))
    bound = E.step_stability_bound(**_args(s, settings))
    euler = E.linear_part_bound(**_args(s, settings))
    holds = rho.value < 1.0
    constants = {"ρ(∂step/∂x) at x = 0": rho, "h": s.h, "measured stability bound on h": bound,
                 "forward Euler's exact bound h* of its ODE": euler if math.isfinite(euler.value) else None}
    cex = None if holds else {"h": s.h, "ρ(∂step/∂x)": rho.value, "stable below h": bound.value,
                              "snippet": rho.reproduction}
    return Outcome(holds, constants, cex, note="linearised at x = 0")


def bptt_growth(s: DynamicsSubject, settings: Settings) -> Outcome:
    seeds = tuple(settings.seed + k for k in range(settings.seeds))
    m = E.step_bptt_rate(**_args(s, settings), seeds=seeds)
    rho = E.step_radius(**_args(s, settings))
    lo, hi = m.interval or (m.value, m.value)
    holds = True if hi <= UPPER else (False if lo > UPPER else None)
    constants = {"BPTT per-step factor": m, "95% CI": f"[{lo:.4f}, {hi:.4f}]", "ρ(∂step/∂x) at x = 0": rho}
    cex = None if holds is not False else {"steps": 60, "per-step factor": m.value, "snippet": m.reproduction}
    return Outcome(holds, constants, cex)


def costates(s: DynamicsSubject, settings: Settings) -> Outcome:
    gap = C.step_costate_residual(**_args(s, settings), seed=settings.seed)
    holds = gap.value <= gap.bound
    cex = None if holds else {"steps": 8, "max_t |λ_t − ∂J/∂x_t| / max|∂J/∂x_t|": gap.value,
                              "snippet": gap.reproduction}
    return Outcome(holds, {"max_t |λ_t − ∂J/∂x_t| / max|∂J/∂x_t|": gap, "bound": gap.bound}, cex)


CLAUSES = (
    Clause("stability-region", ("STAB-06",),
           "the step size lies in the map's stability region: ρ(∂step/∂x) < 1 (for forward Euler on ẋ = Ax: "
           "h < min −2Reλ/|λ|²)", stability_region),
    Clause("bptt-growth", ("STAB-07", "CTRL-02"),
           f"BPTT gradients through 60 steps do not grow: per-step factor ≤ {UPPER} (the adjoint dynamics "
           "are stable; for a linear map the factor is ρ(∂step/∂x))", bptt_growth),
    Clause("costates", ("CTRL-01",),
           "the costates λ_t = J_tᵀλ_{t+1} from the map's step Jacobians equal backprop's ∂J/∂x_t over 8 steps",
           costates),
)


def objects() -> dict[str, Any]:
    """Forward Euler on STAB-06's stable system diag(−1, −10) (h* = 0.2), inside and outside its region."""
    A = [[-1.0, 0.0], [0.0, -10.0]]
    return {"Euler, h = 0.1": E.EulerStep(A, 0.1), "Euler, h = 0.25": E.EulerStep(A, 0.25)}


class DynamicsContract(Contract):
    """A step map ``step(x, h)`` (not a class) declaring its state size and step size."""

    kind, binding, clauses, signature = KIND, "step", CLAUSES, Signature(cls=False, accepts=2)
    prepare, smoke, build = staticmethod(prepare), staticmethod(smoke), staticmethod(build)
    objects = staticmethod(objects)

"""Activation functions as torch functions paired with their sympy twins.

The documents compare activations by their derivatives (003 §2.b 因素1, 000 §主要"罪魁祸首",
004 §3.3.1 and §3.3.5). Each :class:`Activation` wraps torch's own implementation
(``torch.sigmoid``, ``torch.nn.functional.*``), so the claims are measured on what torch
computes; its derivative comes from autograd (``torch.func.grad`` under ``vmap``), and the
sympy twin gives the exact function for symbolic checks.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp
import torch
import torch.nn.functional as F
from torch import func

from . import _validate as v

Tensor = torch.Tensor

# torch's defaults, read from torch so that a change upstream is measured, not masked.
LEAKY_SLOPE = 0.01  # F.leaky_relu's default negative_slope
PRELU_SLOPE = float(torch.nn.PReLU().weight.detach()[0])  # nn.PReLU's initial slope (0.25)
ELU_ALPHA = 1.0  # F.elu's default alpha


@dataclass(frozen=True)
class Activation:
    """An elementwise activation: torch function, optional sympy twin, matching initialiser."""

    name: str
    fn: Callable[[Tensor], Tensor]
    sympy: Callable[[sp.Symbol], sp.Expr] | None
    recommended_init: str

    def __repr__(self) -> str:
        """The call that rebuilds it (a registry lookup), as Hypothesis-style reprs do."""
        return f"gradcore.activations.get({self.name!r})"

    def __call__(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def derivative(self, x: Tensor) -> Tensor:
        """f'(x) elementwise by autograd; at kinks it is torch's subgradient choice (ReLU'(0) = 0)."""
        x = v.tensor(x, "x", finite=False)   # ±inf allowed: f'(±inf) is the saturation limit
        if bool(torch.isnan(x).any()):
            v.fail("x", "contains NaN")
        flat = x.reshape(-1)
        d = func.vmap(func.grad(self.fn))(flat)
        nan = torch.isnan(d)
        if bool(nan.any()):
            at = float(flat[nan][0])
            v.fail("x", f"{self.name}'(x) evaluates to NaN at x = {at:g} in {x.dtype} (torch's formula "
                        "overflows there); clamp x or use float64")
        return d.reshape(x.shape)

    def sympy_expr(self, x: sp.Symbol | None = None) -> tuple[sp.Symbol, sp.Expr]:
        """(x, f(x)) as sympy objects; x is a real symbol unless given."""
        if self.sympy is None:
            v.fail("activation", f"{self.name!r} has no sympy twin")
        x = sp.Symbol("x", real=True) if x is None else x
        return x, self.sympy(x)

    def sympy_derivative(self, x: sp.Symbol | None = None) -> tuple[sp.Symbol, sp.Expr]:
        """(x, f'(x)) exactly, from the sympy twin."""
        x, f = self.sympy_expr(x)
        return x, sp.diff(f, x)


def _prelu(x: Tensor) -> Tensor:
    # F.prelu with nn.PReLU's default single slope, as a fixed (untrained) function.
    return F.prelu(x, torch.full((1,), PRELU_SLOPE, dtype=x.dtype, device=x.device))


def _piecewise(pos: Callable[[sp.Symbol], sp.Expr], neg: Callable[[sp.Symbol], sp.Expr]):
    return lambda x: sp.Piecewise((pos(x), x > 0), (neg(x), True))


_GELU_TANH_C = sp.sqrt(2 / sp.pi)

REGISTRY: dict[str, Activation] = {}


def register(act: Activation) -> Activation:
    """Add ``act`` to the registry (replacing one of the same name) and return it."""
    if not isinstance(act, Activation):
        v.fail("act", f"expected an Activation, got {type(act).__name__}")
    REGISTRY[act.name] = act
    return act


def get(name: str) -> Activation:
    """The registered activation called ``name``."""
    return REGISTRY[v.choice(name, "name", REGISTRY)]


for _act in (
    Activation("sigmoid", torch.sigmoid, lambda x: 1 / (1 + sp.exp(-x)), "xavier_normal"),
    Activation("tanh", torch.tanh, sp.tanh, "xavier_normal"),
    Activation("relu", F.relu, _piecewise(lambda x: x, lambda x: sp.Integer(0)), "kaiming_normal"),
    Activation("leaky_relu", F.leaky_relu,
               _piecewise(lambda x: x, lambda x: sp.nsimplify(LEAKY_SLOPE) * x), "kaiming_normal"),
    Activation("prelu", _prelu,
               _piecewise(lambda x: x, lambda x: sp.nsimplify(PRELU_SLOPE) * x), "kaiming_normal"),
    Activation("elu", F.elu,
               _piecewise(lambda x: x, lambda x: sp.nsimplify(ELU_ALPHA) * (sp.exp(x) - 1)),
               "kaiming_normal"),
    Activation("gelu", F.gelu, lambda x: x / 2 * (1 + sp.erf(x / sp.sqrt(2))), "kaiming_normal"),
    Activation("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"),
               lambda x: x / 2 * (1 + sp.tanh(_GELU_TANH_C * (x + sp.Rational(44715, 1000000) * x**3))),
               "kaiming_normal"),
):
    register(_act)

"""Optimisers as measured objects (the optimiser contract; CLIP-02, WD-02/04/05, LIT-12 recipes).

An *optimiser* is a torch.optim.Optimizer class, a factory ``params -> Optimizer`` (e.g.
``functools.partial(torch.optim.AdamW, lr=1e-3)``), or a *step rule* ``(W, grad) -> W_new``
that carries its learning rate (an ``lr`` attribute or keyword), run through
:class:`RuleOptimizer`. :class:`Optimiser` and :class:`DecayRule` are gradcore's built-ins:
objects whose repr rebuilds them.
"""
from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from .. import _validate as v
from ..weight_decay import decay_step

Rule = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Optimiser:
    """``torch.optim.<name>(params, **options)``."""

    def __init__(self, name: str, **options: float) -> None:
        self.name, self.options = name, options

    def __call__(self, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        return getattr(torch.optim, self.name)(params, **self.options)

    def __repr__(self) -> str:
        return f"Optimiser({self.name!r}{''.join(f', {k}={val!r}' for k, val in self.options.items())})"


class DecayRule:
    """gradcore.weight_decay.decay_step as a step rule: W − η(grad + λW) (WD-01)."""

    def __init__(self, lr: float, weight_decay: float) -> None:
        self.lr, self.weight_decay = lr, weight_decay

    def __call__(self, W: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        return decay_step(W, grad, self.lr, self.weight_decay)

    def __repr__(self) -> str:
        return f"DecayRule(lr={self.lr!r}, weight_decay={self.weight_decay!r})"


class RuleOptimizer(torch.optim.Optimizer):
    """A step rule ``(W, grad) -> W_new`` as a torch optimiser with learning rate ``lr``."""

    def __init__(self, params: Iterable[torch.Tensor], rule: Rule, lr: float) -> None:
        super().__init__(params, {"lr": lr})
        self.rule = rule

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # noqa: ARG002 - torch's signature
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.copy_(self.rule(p.detach().clone(), p.grad.detach().clone()))


def _required(fn: Any) -> list[str] | None:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    return [p.name for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def form(obj: Any) -> str | None:
    """'factory' (an Optimizer class or a callable of ``params``), 'rule' (a callable of two
    tensors) or None; by type and signature only, nothing is called."""
    if inspect.isclass(obj):
        return "factory" if issubclass(obj, torch.optim.Optimizer) else None
    if isinstance(obj, Optimiser):
        return "factory"
    if not callable(obj):
        return None
    required = _required(obj)
    if required and required[0] == "params":
        return "factory"
    return "rule" if required is not None and len(required) == 2 else None


def rule_lr(rule: Any) -> float:
    """A step rule's learning rate: its ``lr`` attribute or ``functools.partial`` keyword."""
    lr = getattr(rule, "lr", None)
    if lr is None and isinstance(rule, functools.partial):
        lr = rule.keywords.get("lr")
    if lr is None:
        v.fail("optimiser", "a step rule (W, grad) -> W must carry its learning rate as an lr attribute or keyword")
    return v.real(lr, "lr", positive=True)


def build(optimiser: Any, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    """The optimiser over ``params`` (a step rule wrapped in :class:`RuleOptimizer`)."""
    shape = form(optimiser)
    if shape is None:
        v.fail("optimiser", "expected a torch.optim.Optimizer class, a factory params -> Optimizer, or a step "
                            f"rule (W, grad) -> W; got {type(optimiser).__name__}")
    opt = RuleOptimizer(params, optimiser, rule_lr(optimiser)) if shape == "rule" else optimiser(params)
    if not (callable(getattr(opt, "step", None)) and getattr(opt, "param_groups", None)):
        v.fail("optimiser", f"calling it on a parameter list returned {type(opt).__name__}, not an optimiser "
                            "(no step() and param_groups)")
    return opt


def lr_of(opt: torch.optim.Optimizer) -> float:
    """The learning rate η of the first parameter group (finite and > 0)."""
    lr = opt.param_groups[0].get("lr")
    lr = float(lr) if isinstance(lr, (int, float, torch.Tensor)) and not isinstance(lr, bool) else math.nan
    if not (math.isfinite(lr) and lr > 0):
        v.fail("lr", f"the optimiser's learning rate must be finite and > 0, got {opt.param_groups[0].get('lr')!r}")
    return lr


def decay_of(opt: torch.optim.Optimizer, optimiser: Any) -> float | None:
    """The weight decay λ an optimiser states (its first group's ``weight_decay``, or a step rule's
    ``weight_decay`` attribute or keyword); None when it states none."""
    lam = opt.param_groups[0].get("weight_decay")
    if lam is None and isinstance(opt, RuleOptimizer):
        lam = getattr(optimiser, "weight_decay", None)
        if lam is None and isinstance(optimiser, functools.partial):
            lam = optimiser.keywords.get("weight_decay")
    if lam is None:
        return None
    return v.real(lam, "weight_decay")


def stepped(opt: torch.optim.Optimizer, p: torch.nn.Parameter, grad: torch.Tensor) -> torch.Tensor:
    """Set ``p.grad = grad``, take one step, return the new value (detached clone)."""
    p.grad = grad
    opt.step()
    return p.detach().clone()

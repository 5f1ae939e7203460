"""Gradient clipping by global norm and by value, as pure functions over torch's utilities.

Seeds: 003 §4 "解决梯度爆炸 › 梯度裁剪" (g' = θ g/‖g‖ when ‖g‖ > θ), 002 §直接干预：梯度裁剪技术
(norm vs value clipping, cosine to the original gradient), 004 §3.3.2 Definition 3.3.5.

What is measured is torch's own implementation: :func:`clip_by_norm` runs
``torch.nn.utils.get_total_norm`` and ``clip_grads_with_norm_`` and :func:`clip_by_value`
runs ``clip_grad_value_`` on clones, so the caller's tensors are never touched.

Edge cases (torch's semantics, kept on purpose so that they can be measured):

* zero gradients come back unchanged (torch divides by ``‖g‖ + 1e-6``, never by 0);
* torch scales by ``min(θ / (‖g‖ + 1e-6), 1)``, so ``‖g'‖`` falls short of θ when ‖g‖ is
  comparable to 1e-6;
* gradients with NaN or infinite entries are rejected (:class:`GradcoreInputError` naming
  the entry's tensor): torch would scale every entry by a NaN norm, and value clipping
  would turn ±inf silently into ±τ — a finite update from a broken gradient.

One departure, where torch's result is wrong: torch accumulates the norm in the gradients'
dtype, so a finite float16 gradient with ‖g‖ > 65504 (float32: 3.4e38) has total norm
``inf`` and is scaled to 0. Here the norm is then recomputed in float64 from g/max|g| and
the clipped gradient keeps g's direction (:func:`total_norm` returns the true norm).
``torch_overflow=True`` keeps torch's zeros, so that behaviour can still be measured (CLIP-01).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch.nn import utils as nn_utils

from . import _validate as v

Grads = torch.Tensor | list[torch.Tensor]


def _grad_list(grads: object, name: str = "grads", *,
               finite: bool = False) -> tuple[list[torch.Tensor], bool]:
    """The gradients as a non-empty list of floating tensors on one device (finite if asked),
    and whether a single tensor was passed."""
    single = isinstance(grads, torch.Tensor)
    items = [grads] if single else grads
    if not isinstance(items, (list, tuple)) or len(items) == 0:
        v.fail(name, "expected a tensor or a non-empty list of tensors")
    out = [v.tensor(g, f"{name}[{i}]", finite=finite) for i, g in enumerate(items)]
    for i, g in enumerate(out[1:], 1):
        v.same_device(out[0], g, f"{name}[0]", f"{name}[{i}]")
    return out, single


def _holders(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """Dummy parameters whose ``.grad`` are clones of ``grads`` (torch clips ``p.grad``)."""
    holders = []
    for g in grads:
        p = torch.empty_like(g)
        p.grad = g.detach().clone()
        holders.append(p)
    return holders


def _result(holders: list[torch.Tensor], single: bool) -> Grads:
    out = [p.grad for p in holders]
    return out[0] if single else out


def _norm_type(p: object) -> float:
    if p == float("inf"):
        return float("inf")
    return v.real(p, "norm_type", positive=True)


def total_norm(grads: Grads, norm_type: float = 2.0) -> float:
    """Global norm of all gradients viewed as one vector (``torch.nn.utils.get_total_norm``;
    recomputed in float64 when it overflows the gradients' dtype, see the module notes)."""
    items, _ = _grad_list(grads, finite=True)   # a NaN entry would make the norm a silent NaN
    norm_type = _norm_type(norm_type)
    norm = nn_utils.get_total_norm(items, norm_type)
    if bool(torch.isfinite(norm)):
        return float(norm)
    top, unit = _unit_norm(items, norm_type)
    if top * unit > torch.finfo(torch.float64).max:
        v.fail("grads", f"the total norm ({unit:.6g} × {top:.6g}) exceeds the float64 range")
    return top * unit


def _unit_norm(items: list[torch.Tensor], norm_type: float) -> tuple[float, float]:
    """(s, ‖g/s‖) with s = max|g|, in float64: ‖g‖ = s·‖g/s‖ without overflowing (‖g/s‖ ≤ n^(1/p))."""
    top = max(float(g.abs().max()) for g in items)
    wide = [g.double() / top for g in items]
    return top, float(nn_utils.get_total_norm(wide, norm_type))


def clip_by_norm(grads: Grads, max_norm: float, *, norm_type: float = 2.0,
                 error_if_nonfinite: bool = False, torch_overflow: bool = False) -> Grads:
    """Global-norm clipping g' = g · min(θ / (‖g‖ + 1e-6), 1), returned as new tensors.

    003 §4 / 004 Definition 3.3.5: "如果 ||g|| > θ，则更新梯度为 g' = (θ / ||g||) * g".
    When ‖g‖ overflows the gradients' dtype the scale is computed in float64 from g/max|g|
    (``error_if_nonfinite=True``: an error instead; ``torch_overflow=True``: torch's zeros).
    """
    items, single = _grad_list(grads, finite=True)
    max_norm = v.real(max_norm, "max_norm", positive=True)
    norm_type = _norm_type(norm_type)
    holders = _holders(items)
    norm = nn_utils.get_total_norm([p.grad for p in holders], norm_type)
    if bool(torch.isfinite(norm)) or torch_overflow:
        nn_utils.clip_grads_with_norm_(holders, max_norm, norm)
        return _result(holders, single)
    if error_if_nonfinite:
        v.fail("grads", f"the total norm overflows {items[0].dtype} (error_if_nonfinite=True)")
    top, unit = _unit_norm(items, norm_type)
    coef = min(max_norm / top / unit, 1.0)   # torch's + 1e-6 is below rounding at an overflowing norm
    if coef == 0.0:
        v.fail("max_norm", f"{max_norm:g} is too small against ‖g‖ ≈ {unit:.3g} × {top:.3g} to scale in float64")
    for p in holders:
        p.grad = (p.grad.double() * coef).to(p.grad.dtype)
    return _result(holders, single)


def clip_by_value(grads: Grads, clip_value: float) -> Grads:
    """Element-wise clipping of every entry into [-τ, τ] (``clip_grad_value_``), as new tensors."""
    items, single = _grad_list(grads, finite=True)
    clip_value = v.real(clip_value, "clip_value", positive=True)
    holders = _holders(items)
    nn_utils.clip_grad_value_(holders, clip_value)
    return _result(holders, single)


def clip_module_grads_by_norm(module: torch.nn.Module, max_norm: float, *,
                              error_if_nonfinite: bool = False) -> float:
    """Clip ``module``'s parameter gradients in place (``clip_grad_norm_``); returns the norm before."""
    if not isinstance(module, torch.nn.Module):
        v.fail("module", f"expected a torch.nn.Module, got {type(module).__name__}")
    max_norm = v.real(max_norm, "max_norm", positive=True)
    params = [p for p in module.parameters() if p.grad is not None]
    if not params:
        v.fail("module", "has no parameter with a gradient (run backward first)")
    grads, _ = _grad_list([p.grad for p in params], "module gradients", finite=True)
    if bool(torch.isfinite(nn_utils.get_total_norm(grads))):
        return float(nn_utils.clip_grad_norm_(params, max_norm))
    # the norm overflows the gradients' dtype: torch would zero them; clip as clip_by_norm does
    before = total_norm(grads)
    for p, g in zip(params, clip_by_norm(grads, max_norm, error_if_nonfinite=error_if_nonfinite)):
        p.grad.copy_(g)
    return before


def _flat(grads: object, name: str) -> torch.Tensor:
    items, _ = _grad_list(grads, name)
    for i, g in enumerate(items):
        v.tensor(g, f"{name}[{i}]")
    return torch.cat([g.reshape(-1) for g in items])


def cosine(a: Grads, b: Grads) -> float:
    """Cosine between two gradients (lists are flattened into one vector each).

    002 §梯度裁剪 measures direction fidelity by this cosine. Zero vectors have no
    direction, so they are rejected rather than given torch's eps-clamped value.
    """
    fa, fb = _flat(a, "a"), _flat(b, "b")
    if fa.shape != fb.shape:
        v.fail("b", f"has {fb.numel()} entries in all, a has {fa.numel()}")
    if fa.dtype != fb.dtype:
        v.fail("b", f"dtype {fb.dtype} does not match a dtype {fa.dtype}")
    ma, mb = fa.abs().max(), fb.abs().max()
    if ma == 0:
        v.fail("a", "is the zero vector; its direction is undefined")
    if mb == 0:
        v.fail("b", "is the zero vector; its direction is undefined")
    # Rescale by the largest entry first: norms of huge float32 gradients overflow to inf.
    ua, ub = fa / ma, fb / mb
    return float((torch.dot(ua, ub) / (ua.norm() * ub.norm())).clamp(-1.0, 1.0))


@runtime_checkable
class ClippingRule(Protocol):
    """A clipping rule maps a list of gradients to a new list of the same shapes."""

    def __call__(self, grads: list[torch.Tensor]) -> list[torch.Tensor]: ...


@dataclass(frozen=True)
class NormClip:
    """Global-norm clipping at ``max_norm`` (see :func:`clip_by_norm`)."""

    max_norm: float
    error_if_nonfinite: bool = False

    def __post_init__(self) -> None:
        v.real(self.max_norm, "max_norm", positive=True)

    def __call__(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        return list(clip_by_norm(list(grads), self.max_norm, error_if_nonfinite=self.error_if_nonfinite))


@dataclass(frozen=True)
class ValueClip:
    """Element-wise clipping into [-clip_value, clip_value] (see :func:`clip_by_value`)."""

    clip_value: float

    def __post_init__(self) -> None:
        v.real(self.clip_value, "clip_value", positive=True)

    def __call__(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        return list(clip_by_value(list(grads), self.clip_value))

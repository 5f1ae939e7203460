"""Jacobians of functions and modules through ``torch.func``.

The documents reason about layer Jacobians ``∂h_l/∂h_{l-1}`` and their products
(004 §3.3.1 Theorem 3.3.3, 002 "数值稳定性与最优控制的观点"). These helpers build
them densely with ``jacrev`` where small, and expose matrix-free ``jvp``/``vjp``
operators where the Jacobian is too large to build.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import func
from torch.nn.attention import SDPBackend, sdpa_kernel

from . import _validate as v

TensorFn = Callable[[torch.Tensor], torch.Tensor]


def _callable(f: object, name: str) -> TensorFn:
    """``f`` wrapped so that its failures on an input, or a non-tensor result, name ``name``."""
    if not callable(f):
        v.fail(name, f"expected a callable, got {type(f).__name__}")
    return v.guarded(f, name)


def jacobian(f: TensorFn, x: torch.Tensor, *, check_finite: bool = True) -> torch.Tensor:
    """Dense Jacobian of ``f`` at ``x`` as a matrix of shape ``(f(x).numel(), x.numel())``.

    Row i holds ∂f_i/∂x, the convention of autograd and of ``torch.func.jacrev``. A
    Jacobian with NaN or infinite entries raises :class:`~gradcore.errors.InputError`
    naming ``f`` unless ``check_finite=False`` (then the caller decides what it means).
    """
    return _jacobian(_callable(f, "f"), v.tensor(x, "x"), "f", check_finite=check_finite)


def _jacobian(f: TensorFn, x: torch.Tensor, name: str, *, check_finite: bool = True) -> torch.Tensor:
    jac = func.jacrev(f)(x)
    if not isinstance(jac, torch.Tensor):
        v.fail(name, f"must return one tensor, got {type(jac).__name__}")
    if check_finite:
        _finite(jac, name)
    out_numel = jac.numel() // x.numel()
    return jac.reshape(out_numel, x.numel())


def _finite(jac: torch.Tensor, name: str) -> torch.Tensor:
    return v.finite_result(jac, name, "its Jacobian at x has NaN or infinite entries (it overflows or is not "
                                      "differentiable there)")


def batched_jacobian(f: TensorFn, xs: torch.Tensor) -> torch.Tensor:
    """Per-sample Jacobians of a per-sample function ``f`` over the leading dim of ``xs``."""
    f = _callable(f, "f")
    xs = v.tensor(xs, "xs", min_ndim=2)
    jac = func.vmap(func.jacrev(f))(xs)
    n = xs.shape[0]
    in_numel = xs[0].numel()
    return jac.reshape(n, -1, in_numel)


def chain_jacobians(layers: Sequence[TensorFn], x: torch.Tensor) -> list[torch.Tensor]:
    """Jacobians ``J_l = ∂h_l/∂h_{l-1}`` of each layer along a forward pass from ``x``."""
    if len(layers) == 0:
        v.fail("layers", "expected at least one layer")
    h = v.tensor(x, "x")
    jacs = []
    for i, layer in enumerate(layers):
        name = f"layers[{i}]"
        layer = _callable(layer, name)
        jacs.append(_jacobian(layer, h, name))
        h = layer(h)
    return jacs


@dataclass(frozen=True)
class JacobianOperator:
    """Matrix-free Jacobian of ``f`` at ``x``: products with J and Jᵀ.

    The forward pass runs once, on first use: ``func.vjp`` records it and returns the
    pullback w ↦ Jᵀw. The pullback is linear, so the pullback of *it* is u ↦ Ju — the
    transpose trick, one more traced backward pass — and every later product replays
    recorded graphs instead of re-running ``f``. (``func.jvp`` re-runs the forward in
    forward mode on every product, ~10× a forward at width 4096 in float64;
    ``func.linearize`` gives the same replay but traces with ``make_fx``, which costs
    more up front and does not trace every module.)
    """

    f: TensorFn
    x: torch.Tensor

    @property
    def in_shape(self) -> torch.Size:
        return self.x.shape

    @cached_property
    def _linearised(self) -> tuple[torch.Tensor, Callable, Callable]:
        # fused CPU attention kernels have no double backward: record with the math backend
        with sdpa_kernel(SDPBackend.MATH):
            out, pullback = func.vjp(self.f, self.x)
            out = out.detach()
            _, push = func.vjp(lambda w: pullback(w)[0], torch.zeros_like(out))
        return out, pullback, push

    @property
    def out_shape(self) -> torch.Size:
        return self._linearised[0].shape

    @property
    def value(self) -> torch.Tensor:
        """f(x), from the one recorded forward pass."""
        return self._linearised[0]

    def matvec(self, u: torch.Tensor) -> torch.Tensor:
        """J u, with ``u`` shaped like ``x``."""
        return self._linearised[2](_like(u, self.x, "u", "x"))[0].detach()

    def rmatvec(self, w: torch.Tensor) -> torch.Tensor:
        """Jᵀ w, with ``w`` shaped like ``f(x)``: one backpropagation step."""
        return self._linearised[1](_like(w, self.value, "w", "f(x)"))[0].detach()

    def matrix(self) -> torch.Tensor:
        """J as an (f(x).numel(), x.numel()) matrix from one batched product over its smaller side —
        Jᵀ applied to every output basis vector, or J to every input one (``torch.func.vmap``) —
        replaying the recorded graphs; NaN or infinite entries raise naming ``f``."""
        n, m = self.x.numel(), self.out_shape.numel()
        if m <= n:
            basis = torch.eye(m, dtype=self.x.dtype, device=self.x.device).reshape(m, *self.out_shape)
            return _finite(func.vmap(self.rmatvec)(basis).reshape(m, n), "f")
        basis = torch.eye(n, dtype=self.x.dtype, device=self.x.device).reshape(n, *self.x.shape)
        return _finite(func.vmap(self.matvec)(basis).reshape(n, m).mT, "f")


def _like(u: object, ref: torch.Tensor, name: str, ref_name: str) -> torch.Tensor:
    # shape, dtype and device only: a finiteness test would cost a device sync per Lanczos product
    u = v.tensor(u, name, finite=False, nonempty=False)
    if u.shape != ref.shape:
        v.fail(name, f"shape {tuple(u.shape)} does not match {ref_name} shape {tuple(ref.shape)}")
    v.same_dtype(ref, u, ref_name, name)
    v.same_device(ref, u, ref_name, name)
    return u


def jacobian_operator(f: TensorFn, x: torch.Tensor) -> JacobianOperator:
    return JacobianOperator(_callable(f, "f"), v.tensor(x, "x"))

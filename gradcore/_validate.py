"""Argument checks shared by the public API.

Every public function validates its inputs here so that bad input fails with one
clear message naming the argument, instead of a NaN or a traceback from torch.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from numbers import Integral, Real

import numpy as np
import torch

from .errors import GradcoreError, GradcoreInputError


def fail(name: str, problem: str) -> None:
    raise GradcoreInputError(f"{name}: {problem}")


LOW_PRECISION = (torch.float16, torch.bfloat16)


def tensor(x: object, name: str, *, finite: bool = True, ndim: int | None = None,
           min_ndim: int | None = None, nonempty: bool = True, floating: bool = True,
           complex_ok: bool = False, low_precision: bool = True) -> torch.Tensor:
    """Return ``x`` if it is a tensor meeting the requirements, else raise.

    Policy: a dense tensor with data (not ``meta``, not sparse); real unless
    ``complex_ok``; float16/bfloat16 accepted unless ``low_precision=False`` (what the
    caller's torch kernels do not implement, e.g. CPU linear algebra).
    """
    if not isinstance(x, torch.Tensor):
        fail(name, f"expected a torch.Tensor, got {type(x).__name__}")
    if x.is_meta:
        fail(name, "is a meta tensor (a shape without data); pass a tensor on cpu or cuda")
    if x.layout != torch.strided:
        fail(name, f"expected a dense tensor, got layout {x.layout}")
    if nonempty and x.numel() == 0:
        fail(name, f"expected a non-empty tensor, got shape {tuple(x.shape)}")
    if ndim is not None and x.ndim != ndim:
        fail(name, f"expected {ndim} dimensions, got shape {tuple(x.shape)}")
    if min_ndim is not None and x.ndim < min_ndim:
        fail(name, f"expected at least {min_ndim} dimensions, got shape {tuple(x.shape)}")
    if x.is_complex() and not complex_ok:
        fail(name, f"complex tensors are not supported, got dtype {x.dtype}")
    if floating and not (x.is_floating_point() or x.is_complex()):
        fail(name, f"expected a floating-point tensor, got dtype {x.dtype}")
    if not low_precision and x.dtype in LOW_PRECISION:
        fail(name, f"dtype {x.dtype} is not supported here; convert with .float() or .double()")
    if finite and (x.is_floating_point() or x.is_complex()) and not bool(torch.isfinite(x).all()):
        fail(name, "contains NaN or infinite values")
    return x


def integer_tensor(x: object, name: str, *, minimum: int | None = None,
                   maximum: int | None = None) -> torch.Tensor:
    """A non-empty integer-dtype tensor whose entries lie in [minimum, maximum] (indices, steps)."""
    t = tensor(x, name, floating=False)
    if t.is_floating_point() or t.dtype == torch.bool:
        fail(name, f"expected an integer tensor, got dtype {t.dtype}")
    if minimum is not None and bool((t < minimum).any()):
        fail(name, f"entries must be >= {minimum}, got min {int(t.min())}")
    if maximum is not None and bool((t > maximum).any()):
        fail(name, f"entries must be <= {maximum}, got max {int(t.max())}")
    return t


def matrix(x: object, name: str, *, square: bool = False, finite: bool = True) -> torch.Tensor:
    """A non-empty finite 2-D floating tensor (square if asked)."""
    # torch's CPU linear algebra has no float16/bfloat16 kernels
    m = tensor(x, name, ndim=2, finite=finite, low_precision=False)
    if square and m.shape[0] != m.shape[1]:
        fail(name, f"expected a square matrix, got shape {tuple(m.shape)}")
    return m


def same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Same shape and the same device (torch would raise its own error for mixed devices)."""
    if a.shape != b.shape:
        fail(name_b, f"shape {tuple(b.shape)} does not match {name_a} shape {tuple(a.shape)}")
    same_device(a, b, name_a, name_b)


def same_device(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.device != b.device:
        fail(name_b, f"is on {b.device}, {name_a} on {a.device}; put both on one device")


def integer(x: object, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(x, bool) or not isinstance(x, Integral):
        fail(name, f"expected an integer, got {x!r}")
    if minimum is not None and x < minimum:
        fail(name, f"must be >= {minimum}, got {x}")
    if maximum is not None and x > maximum:
        fail(name, f"must be <= {maximum}, got {x}")
    return int(x)


def real(x: object, name: str, *, positive: bool = False, nonnegative: bool = False,
         below: float | None = None, above: float | None = None) -> float:
    """A finite real number with optional sign and open-interval bounds."""
    if isinstance(x, bool) or not isinstance(x, Real):
        if isinstance(x, torch.Tensor) and x.numel() == 1:
            x = x.item()
        else:
            fail(name, f"expected a real number, got {x!r}")
    x = float(x)
    if not math.isfinite(x):
        fail(name, f"must be finite, got {x}")
    if positive and x <= 0:
        fail(name, f"must be > 0, got {x}")
    if nonnegative and x < 0:
        fail(name, f"must be >= 0, got {x}")
    if below is not None and x >= below:
        fail(name, f"must be < {below}, got {x}")
    if above is not None and x <= above:
        fail(name, f"must be > {above}, got {x}")
    return x


def choice(x: object, name: str, options: Iterable[str]) -> str:
    opts = sorted(options)
    if x not in opts:
        fail(name, f"unknown value {x!r}; expected one of {', '.join(opts)}")
    return x  # type: ignore[return-value]


def same_dtype(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """One dtype for both (torch raises "expected m1 and m2 to have the same dtype" deep inside)."""
    if a.dtype != b.dtype:
        fail(name_b, f"dtype {b.dtype} does not match {name_a} dtype {a.dtype}; convert one with .to()")


def module_input(module: torch.nn.Module, x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` in the dtype and on the device of ``module``'s floating parameters and buffers."""
    for p in (*module.parameters(), *module.buffers()):
        if p.is_floating_point():
            if x.dtype != p.dtype:
                fail(name, f"dtype {x.dtype} does not match the module's parameters ({p.dtype}); "
                           f"convert one with .to()")
            if x.device != p.device:
                fail(name, f"is on {x.device}, the module's parameters on {p.device}; put both on one device")
            break
    return x


def writable(x: torch.Tensor, name: str) -> torch.Tensor:
    """A tensor an in-place write can fill: no two elements share memory (``expand``, stride 0).

    Sufficient test: with the dims of size > 1 sorted by stride, each stride exceeds the span
    of the smaller ones (what every tensor torch allocates, and its transposes and slices, meet).
    """
    dims = sorted((st, sz) for st, sz in zip(x.stride(), x.shape) if sz > 1)
    span = 0
    for stride, size in dims:
        if stride <= span:
            fail(name, f"elements share memory (strides {x.stride()}, e.g. from expand()); "
                       "an in-place initialiser needs its own storage: pass .clone()")
        span += stride * (size - 1)
    return x


def fits(x: float, dtype: torch.dtype, name: str) -> float:
    """A real number representable in ``dtype`` (torch refuses to convert 1e300 to float32)."""
    if dtype.is_floating_point and abs(x) > torch.finfo(dtype).max:
        fail(name, f"{x:g} overflows {dtype} (largest {torch.finfo(dtype).max:g})")
    return x


def finite_result(t: torch.Tensor, name: str, problem: str) -> torch.Tensor:
    """``t`` when every entry is finite, else an error naming ``name`` (an overflow, not a NaN result)."""
    if not bool(torch.isfinite(t).all()):
        fail(name, problem)
    return t


def reals(values: object, name: str) -> np.ndarray:
    """Real numbers (a sequence, an array, or 0-d tensors) as a float64 array; strings, bools and
    objects are refused rather than parsed by numpy ("1" would become 1.0)."""
    raw = np.asarray(values)
    if raw.dtype.kind not in "fiu":
        fail(name, f"expected real numbers, got {raw.dtype} entries")
    return np.asarray(values, dtype=float)


_CALL_ERRORS = (RuntimeError, ValueError, TypeError, IndexError)


def guarded(f: Callable[..., torch.Tensor], name: str, *, tensor_out: bool = True) -> Callable[..., torch.Tensor]:
    """``f`` whose own failures on an input (wrong shape, dtype, ...) become one line naming ``name``,
    and (``tensor_out``) whose result must be a tensor (torch.func raises "expected f(*primals) to
    return only tensors")."""
    def call(u: torch.Tensor, *rest: object) -> torch.Tensor:
        try:
            out = f(u, *rest)
        except GradcoreError:
            raise
        except _CALL_ERRORS as e:
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise GradcoreInputError(f"{name}: failed on an input of shape {tuple(u.shape)} and dtype "
                                     f"{u.dtype}: {first}") from e
        if tensor_out and not isinstance(out, torch.Tensor):
            fail(name, f"must return a tensor, got {type(out).__name__}")
        return out
    return call


def float_dtype(x: object, name: str = "dtype", *, low_precision: bool = True) -> torch.dtype:
    """A real floating-point torch dtype (modules and weights cannot be integer tensors)."""
    if not isinstance(x, torch.dtype) or not x.is_floating_point:
        fail(name, f"expected a real floating-point torch dtype, got {x!r}")
    if not low_precision and x in LOW_PRECISION:
        fail(name, f"{x} is not supported here; use torch.float32 or torch.float64")
    return x


def finite_steps(states: torch.Tensor, name: str, what: str) -> torch.Tensor:
    """``states`` (one row per step) when every entry is finite; else an error naming the first
    step that overflowed, so a diverging iteration is reported rather than returned as inf/NaN rows."""
    bad = ~torch.isfinite(states)
    if bool(bad.any()):
        first = int(bad.reshape(states.shape[0], -1).any(1).nonzero()[0])
        fail(name, f"{what} overflow {states.dtype} at step {first} of {states.shape[0] - 1}; "
                   f"ask for at most {first - 1} steps or use a wider dtype")
    return states


def module(x: object, name: str, cls: type = torch.nn.Module) -> torch.nn.Module:
    """An instance of ``cls`` (a torch.nn.Module by default)."""
    if not isinstance(x, cls):
        where = "torch.nn" if cls.__module__.startswith("torch.nn") else cls.__module__
        fail(name, f"expected a {where}.{cls.__qualname__}, got {type(x).__name__}")
    return x  # type: ignore[return-value]

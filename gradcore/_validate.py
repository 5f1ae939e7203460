"""Argument checks shared by the public API.

Every public function validates its inputs here so that bad input fails with one
clear message naming the argument, instead of a NaN or a traceback from torch.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Integral, Real

import torch


from .errors import GradcoreInputError  # noqa: F401  (re-exported)


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

"""Searched extrema, recorded as what they are: bounds (or rounding residuals) with a reproduction.

The best value a search (:mod:`gradcore.measure.search`) finds is a bound, not the supremum:
:func:`search_bound` records it as a search-kind :class:`Measurement` whose reproduction is the
recipe evaluated at the winning example, and :func:`searched` does the whole round for a
recipe. The largest |a − b| between two quantities equal in exact arithmetic stays a rounding
residual (:func:`residual_bound`, :func:`searched_residual`).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .measurement import Kind, Measurement
from .search import Found, maximize, minimize


def search_bound(found: Found[Any], point: Measurement, **sizes: Any) -> Measurement:
    """``found`` (a :class:`gradcore.measure.search.Found`) as a search bound, reproduced by ``point``.

    ``point`` is the recipe evaluated at ``found.example``: it prints the bound's value, with the
    point's conditioning (its rounding is the bound's).
    """
    return Measurement(found.value, Kind.SEARCH, point.dtype, point.device, {**point.sizes, **sizes},
                       direction="lower", witness=found.source, reproduction=point.reproduction,
                       conditioning=point.conditioning)


def searched_residual(found: Found[Any], point: Measurement, **sizes: Any) -> Measurement:
    """The largest rounding residual a search found: still a rounding residual (judged by its bound)."""
    return point.with_(value=found.value, sizes={**point.sizes, **sizes}, witness=found.source)


def residual_bound(found: Found[Any], *, bound: float, dtype: Any, device: str | None = None,
                   sizes: dict[str, Any] | None = None) -> Measurement:
    """A searched worst residual as what it is: rounding, judged only against ``bound``.

    The largest |a − b| a search finds between two quantities that agree in exact
    arithmetic is a rounding residual: its value moves with the CPU and kernel path, so
    only whether it stays within the dtype-justified ``bound`` carries information.
    """
    return Measurement(found.value, Kind.ROUNDING, dtype, device, sizes or {}, bound=bound,
                       witness=found.source)


def plain(example: Any) -> Any:
    """A drawn example (array, tuple of arrays, number) as plain Python lists/floats: a recipe argument."""
    if isinstance(example, np.ndarray):
        return example.astype(float).tolist()
    if isinstance(example, (tuple, list)):
        return type(example)(plain(e) for e in example)
    return float(example) if isinstance(example, (np.floating, float)) else example


def searched(strategy: Any, fn: Callable[..., Measurement], arg: str, *, candidates: Any = (),
             minimise: bool = False, **kwargs: Any) -> tuple[Measurement, Any]:
    """The largest (``minimise``: smallest) value of recipe ``fn`` with ``arg`` drawn from ``strategy``,
    and the example (as plain lists) where it was found.

    ``candidates`` are ``(label, example)`` pairs scored first; ``kwargs`` are ``fn``'s other
    arguments. A minimum is an upper bound on the infimum (direction "upper").
    """
    def objective(example: Any) -> float:
        return fn(**{arg: plain(example)}, **kwargs).value

    found = (minimize if minimise else maximize)(strategy, objective, candidates=candidates)
    example = plain(found.example)
    point = fn(**{arg: example}, **kwargs)
    if point.kind is Kind.ROUNDING:
        return searched_residual(found, point), example
    bound = search_bound(found, point)
    return (bound.with_(direction="upper") if minimise else bound), example

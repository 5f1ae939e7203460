"""A searched extremum of a recipe's value, recorded with the recipe's reproduction at the witness.

A theorem searches a recipe's value over the recipe's input (a batch, a logit vector, a
pair of matrices) with :func:`gradcore.verify.search.maximize`/``minimize`` and structured
candidates; the result is a bound (:func:`~gradcore.measure.candidates.search_bound`) or,
when the recipe's value is a rounding residual, the largest residual seen
(:func:`~gradcore.measure.candidates.searched_residual`). Its reproduction is the recipe
evaluated at the winning example, which prints the searched value.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .candidates import search_bound, searched_residual
from .measurement import Kind, Measurement


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
    from ..verify.search import maximize, minimize   # verify.search imports measure: import late

    def objective(example: Any) -> float:
        return fn(**{arg: plain(example)}, **kwargs).value

    found = (minimize if minimise else maximize)(strategy, objective, candidates=candidates)
    example = plain(found.example)
    point = fn(**{arg: example}, **kwargs)
    if point.kind is Kind.ROUNDING:
        return searched_residual(found, point), example
    bound = search_bound(found, point)
    return (bound.with_(direction="upper") if minimise else bound), example

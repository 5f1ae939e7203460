"""Searched extrema, recorded as what they are: bounds (or rounding residuals) with a reproduction.

A targeted random search rarely lands on the structured inputs where a ratio is extreme (a
scaled identity, all entries equal, a rank-one outer product, one large entry), so every
search scores :func:`structured_matrices` and other ``(label, example)`` candidates first
(:func:`gradcore.verify.search.maximize`). The best value found is a bound, not the supremum:
:func:`search_bound` records it as a search-kind :class:`Measurement` whose reproduction is the
recipe evaluated at the winning example, and :func:`searched` does the whole round for a
recipe. A recipe that searches inside itself must print the same value when its reproduction
runs in a fresh interpreter, where no pytest plugin loaded a Hypothesis profile: it takes the
profile *name* as a plain argument and searches through :func:`search`, pinned to that
profile's settings (:func:`gradcore.measure.derivative.pinned`), so ``--hypothesis-profile=dev``
still widens the search. The largest |a − b| between two quantities equal in exact arithmetic
stays a rounding residual (:func:`residual_bound`, :func:`searched_residual`).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..verify.search import Candidates, Found, maximize, minimize
from .derivative import hypothesis_overrides, pinned
from .measurement import Kind, Measurement

SCALES = (1e-3, 0.5, 1.0)


def structured_matrices(rows: int, cols: int | None = None, bound: float = 1.0,
                        scales: tuple[float, ...] = SCALES) -> list[tuple[str, np.ndarray]]:
    """Scaled identity (the bound on the diagonal), all-ones, rank-one alternating, one-hot and
    upper-shift matrices of shape ``rows × cols`` with entries in [−bound, bound]."""
    cols = rows if cols is None else cols
    alt_r, alt_c = (-1.0) ** np.arange(rows), (-1.0) ** np.arange(cols)
    shift = np.eye(rows, cols, k=1) if cols > 1 else np.zeros((rows, cols))
    shapes = {"identity": np.eye(rows, cols), "all-ones": np.ones((rows, cols)),
              "rank-one alternating": np.outer(alt_r, alt_c), "one-hot": np.eye(1, rows * cols).reshape(rows, cols),
              "upper shift": shift, "identity + shift": np.eye(rows, cols) + shift}
    return [(f"{name} × {s * bound:g}", s * bound * np.clip(m, -1, 1)) for name, m in shapes.items() for s in scales]


def search_bound(found: Found[Any], point: Measurement, **sizes: Any) -> Measurement:
    """``found`` (a :class:`gradcore.verify.search.Found`) as a search bound, reproduced by ``point``.

    ``point`` is the recipe evaluated at ``found.example``: it prints the bound's value.
    """
    return Measurement(found.value, Kind.SEARCH, point.dtype, point.device, {**point.sizes, **sizes},
                       direction="lower", witness=found.source, reproduction=point.reproduction)


def searched_residual(found: Found[Any], point: Measurement, **sizes: Any) -> Measurement:
    """The largest rounding residual a search found: still a rounding residual (judged by its bound)."""
    return point.with_(value=found.value, sizes={**point.sizes, **sizes}, witness=found.source)


def search(strategy: Any, objective: Callable[[Any], float], *, candidates: Candidates = (), profile: str = "ci",
           minimise: bool = False, **overrides: Any) -> Found[Any]:
    """:func:`~gradcore.verify.search.maximize` (``minimise``: ``minimize``) under ``profile``, pinned."""
    with pinned(profile):
        return (minimize if minimise else maximize)(strategy, objective, candidates=candidates,
                                                    **{**hypothesis_overrides(profile), **overrides})


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

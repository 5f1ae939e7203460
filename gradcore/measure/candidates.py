"""Structured candidates for searched suprema over matrices, and search bounds witnessed by a recipe.

A targeted random search over matrices rarely lands on the structured ones where a
norm ratio is extreme (a scaled identity, all entries equal, a rank-one outer product,
one large entry), so every matrix search scores these first
(:func:`gradcore.verify.search.maximize`'s ``candidates``). The best value found is a
bound, not the supremum: :func:`search_bound` records it as a search-kind
:class:`Measurement` whose reproduction is the recipe evaluated at the winning example.
"""
from __future__ import annotations

from typing import Any

import numpy as np

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


def search_bound(found: Any, point: Measurement, **sizes: Any) -> Measurement:
    """``found`` (a :class:`gradcore.verify.search.Found`) as a search bound, reproduced by ``point``.

    ``point`` is the recipe evaluated at ``found.example``: it prints the bound's value.
    """
    return Measurement(found.value, Kind.SEARCH, point.dtype, point.device, {**point.sizes, **sizes},
                       direction="lower", witness=found.source, reproduction=point.reproduction)


def searched_residual(found: Any, point: Measurement, **sizes: Any) -> Measurement:
    """The largest rounding residual a search found: still a rounding residual (judged by its bound)."""
    return point.with_(value=found.value, sizes={**point.sizes, **sizes}, witness=found.source)

"""Structured candidates every search scores before drawing at random.

A targeted random search rarely lands on the inputs where a ratio is extreme: a scaled
all-ones, alternating or one-hot vector, a scaled identity, a rank-one outer product, one
large entry, the domain's ends, a dense grid. Each function returns ``(label, example)``
pairs, the ``candidates`` argument of :func:`gradcore.measure.search.maximize`; the label
says which candidate won.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# Vectors probe scale-sensitive rules (clipping thresholds, float16 overflow): many decades.
VECTOR_SCALES = (1e-3, 1e-1, 1.0, 10.0, 1e3, 1e6)
# Matrices are fractions of an entry bound (a spectrum is scale-free; the bound is the search's box).
MATRIX_SCALES = (1e-3, 0.5, 1.0)


def structured_vectors(d: int, scales: Sequence[float] = VECTOR_SCALES,
                       dtype: Any = np.float64) -> list[tuple[str, Any]]:
    """Scaled all-ones, alternating-sign and one-hot vectors of length ``d``: the inputs where
    coordinate-wise rules (value clipping, sign, max) are at their extremes."""
    shapes = {"all-ones": np.ones(d), "alternating": (-1.0) ** np.arange(d), "one-hot": np.eye(1, d).ravel()}
    return [(f"{name} × {scale:g}", (scale * vec).astype(dtype)) for name, vec in shapes.items() for scale in scales]


def structured_matrices(rows: int, cols: int | None = None, bound: float = 1.0,
                        scales: tuple[float, ...] = MATRIX_SCALES) -> list[tuple[str, np.ndarray]]:
    """Scaled identity (the bound on the diagonal), all-ones, rank-one alternating, one-hot and
    upper-shift matrices of shape ``rows × cols`` with entries in [−bound, bound]."""
    cols = rows if cols is None else cols
    alt_r, alt_c = (-1.0) ** np.arange(rows), (-1.0) ** np.arange(cols)
    shift = np.eye(rows, cols, k=1) if cols > 1 else np.zeros((rows, cols))
    shapes = {"identity": np.eye(rows, cols), "all-ones": np.ones((rows, cols)),
              "rank-one alternating": np.outer(alt_r, alt_c), "one-hot": np.eye(1, rows * cols).reshape(rows, cols),
              "upper shift": shift, "identity + shift": np.eye(rows, cols) + shift}
    return [(f"{name} × {s * bound:g}", s * bound * np.clip(m, -1, 1)) for name, m in shapes.items() for s in scales]


def grid(lo: float, hi: float, n: int = 2001) -> list[tuple[str, float]]:
    """A dense 1-D grid over [lo, hi], the ends included."""
    return [(f"grid x = {x:.6g}", float(x)) for x in np.linspace(lo, hi, n)]

"""Hypothesis-driven search used by properties: counterexamples and worst cases.

A property is checked by *searching* for a counterexample (``hypothesis.find``,
which shrinks what it finds), so a claim that holds and one that fails go through
the same code, and the verdict comes from what the search returned.

A worst case found by :func:`maximize` is a *bound* on the supremum, not the supremum:
the search also scores structured candidates (:func:`structured_vectors`,
:func:`grid`) — scaled all-ones and one-hot vectors, the domain's ends, a sweep of
scales, a dense 1-D grid — because random draws rarely hit them, and it keeps the
best value seen, not Hypothesis's shrunk example. :meth:`Found.bound` turns the
result into a search-kind :class:`~gradcore.measure.Measurement` saying which
candidate won.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from hypothesis import Phase, find, settings, target
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from ..measure import Kind, Measurement

T = TypeVar("T")
# The explain phase re-runs a found failure under a tracer to annotate it; find() returns
# the example itself, so that costs seconds for nothing.
PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)


def find_counterexample(strategy: st.SearchStrategy[T], violates: Callable[[T], bool],
                        **overrides: Any) -> T | None:
    """The simplest example drawn from ``strategy`` for which ``violates`` is true, else None."""
    try:
        return find(strategy, violates, settings=settings(settings(), **{"phases": PHASES, **overrides}))
    except NoSuchExample:
        return None


@dataclass(frozen=True)
class Found(Generic[T]):
    """The best example a search saw, its objective value and where it came from.

    Unpacks as ``example, value`` like the tuple it replaces.
    """

    example: T
    value: float
    source: str

    def __iter__(self) -> Iterator[Any]:
        yield self.example
        yield self.value

    def bound(self, *, dtype: Any = None, device: str | None = None, sizes: dict[str, Any] | None = None,
              direction: str = "lower") -> Measurement:
        """The searched value as what it is: a lower bound on a supremum (or upper on an infimum)."""
        return Measurement(self.value, Kind.SEARCH, dtype, device, sizes or {}, direction=direction,
                           witness=self.source)


Candidates = Iterable[tuple[str, Any]]


def maximize(strategy: st.SearchStrategy[T], objective: Callable[[T], float], *,
             candidates: Candidates = (), **overrides: Any) -> Found[T]:
    """The example with the largest ``objective`` over ``candidates`` and a targeted Hypothesis search.

    Hypothesis's ``target`` steers generation toward large objectives; every candidate
    (``(label, example)`` pairs) is scored first. The best seen example is returned with
    its value (a lower bound on the supremum) and its source (``"search"`` or the label).
    """
    best: list[Any] = [None, float("-inf"), "search"]

    def score(x: Any, source: str) -> float:
        value = float(objective(x))
        if value > best[1] or best[0] is None:
            best[:] = [x, value, source]
        return value

    for label, x in candidates:
        score(x, label)

    def probe(x: T) -> bool:
        value = score(x, "search")
        if math.isfinite(value):   # Hypothesis's target() rejects ±inf/NaN; the best seen still keeps it
            target(value)
        return False

    find_counterexample(strategy, probe, **overrides)
    return Found(best[0], best[1], best[2])


def minimize(strategy: st.SearchStrategy[T], objective: Callable[[T], float], *,
             candidates: Candidates = (), **overrides: Any) -> Found[T]:
    """:func:`maximize` of ``-objective``: the smallest value seen (an upper bound on the infimum)."""
    found = maximize(strategy, lambda x: -float(objective(x)), candidates=candidates, **overrides)
    return Found(found.example, -found.value, found.source)


SCALES = (1e-3, 1e-1, 1.0, 10.0, 1e3, 1e6)


def structured_vectors(d: int, scales: Sequence[float] = SCALES, dtype: Any = np.float64) -> list[tuple[str, Any]]:
    """Scaled all-ones, alternating-sign and one-hot vectors of length ``d``: the inputs where
    coordinate-wise rules (value clipping, sign, max) are at their extremes."""
    shapes = {"all-ones": np.ones(d), "alternating": (-1.0) ** np.arange(d), "one-hot": np.eye(1, d).ravel()}
    return [(f"{name} × {scale:g}", (scale * vec).astype(dtype)) for name, vec in shapes.items() for scale in scales]


def grid(lo: float, hi: float, n: int = 2001) -> list[tuple[str, float]]:
    """A dense 1-D grid over [lo, hi], the ends included."""
    return [(f"grid x = {x:.6g}", float(x)) for x in np.linspace(lo, hi, n)]

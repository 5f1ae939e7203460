"""Hypothesis-driven search: counterexamples and worst cases, for theorems and contracts alike.

A property is checked by *searching* for a counterexample (``hypothesis.find``,
which shrinks what it finds), so a claim that holds and one that fails go through
the same code, and the verdict comes from what the search returned.

A worst case found by :func:`maximize` is a *bound* on the supremum, not the supremum:
the search also scores structured candidates (:mod:`gradcore.measure.candidates`) — scaled all-ones and one-hot vectors, the domain's ends, a sweep of
scales, a dense 1-D grid — because random draws rarely hit them, and it keeps the
best value seen, not Hypothesis's shrunk example. :meth:`Found.bound` turns the
result into a search-kind :class:`~gradcore.measure.Measurement` saying which
candidate won.

A recipe that searches inside itself must print the same value when its reproduction runs
in a fresh interpreter, where no pytest plugin loaded a Hypothesis profile: it takes the
profile *name* as a plain argument and searches through :func:`search`, pinned to that
profile's settings (:func:`gradcore.measure.profiles.pinned_generation`), so ``--hypothesis-profile=dev``
still widens the search.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from hypothesis import Phase, find, settings, target
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from .measurement import Kind, Measurement
from .profiles import hypothesis_overrides, pinned_generation

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


def search(strategy: Any, objective: Callable[[Any], float], *, candidates: Candidates = (), profile: str = "ci",
           minimise: bool = False, **overrides: Any) -> Found[Any]:
    """:func:`maximize` (``minimise``: :func:`minimize`) under the named ``profile``, pinned."""
    with pinned_generation(profile):
        return (minimize if minimise else maximize)(strategy, objective, candidates=candidates,
                                                    **{**hypothesis_overrides(profile), **overrides})

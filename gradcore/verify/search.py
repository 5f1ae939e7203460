"""Hypothesis-driven search used by properties: counterexamples and worst cases.

A property is checked by *searching* for a counterexample (``hypothesis.find``,
which shrinks what it finds), so a claim that holds and one that fails go through
the same code, and the verdict comes from what the search returned.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import Phase, find, settings, target
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

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


def maximize(strategy: st.SearchStrategy[T], objective: Callable[[T], float],
             **overrides: Any) -> tuple[T, float]:
    """The example with the largest ``objective`` seen by a targeted Hypothesis search.

    Hypothesis's ``target`` steers generation toward large objectives; the best seen
    example is returned with its value (a lower bound on the supremum).
    """
    best: list[Any] = [None, float("-inf")]

    def probe(x: T) -> bool:
        value = float(objective(x))
        target(value)
        if value > best[1]:
            best[0], best[1] = x, value
        return False

    find_counterexample(strategy, probe, **overrides)
    return best[0], best[1]

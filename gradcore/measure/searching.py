"""How the clipping, weight-decay, diffusion and convolution recipes search: pinned to a profile.

A recipe that searches must print the same value when its reproduction runs in a fresh
interpreter, where no pytest plugin has loaded a Hypothesis profile. So a searching
recipe takes the profile *name* as a plain argument and searches with that profile's
settings, derandomized and pinned (:func:`gradcore.measure.derivative.pinned`,
``hypothesis_overrides``); the theorem passes the profile it runs under, so
``--hypothesis-profile=dev`` still widens the search.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..verify.search import Candidates, Found, maximize, minimize
from .derivative import hypothesis_overrides, pinned
from .measurement import Kind, Measurement


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

"""How a measuring recipe searches: Hypothesis settings named by profile, residual bounds.

A recipe that searches must print the same value when its reproduction runs in a fresh
interpreter, where no pytest plugin has loaded a Hypothesis profile. So a searching
recipe takes the profile *name* as a plain argument and passes that profile's settings
to :mod:`gradcore.verify.search` explicitly (the theorem passes the profile it runs
under, so ``--hypothesis-profile=dev`` still widens the search).
"""
from __future__ import annotations

from typing import Any

from ..verify.search import Found
from .measurement import Kind, Measurement


def hypothesis_settings(profile: str = "ci") -> dict[str, Any]:
    """The named profile's Hypothesis settings as overrides for ``maximize``/``minimize``."""
    from hypothesis import settings

    from ..verify import profiles

    if profile not in profiles.PROFILES:
        raise ValueError(f"profile {profile!r} is not one of {', '.join(profiles.PROFILES)}")
    if profile == "ci":
        # what loading the ci profile does: examples must not depend on the loaded modules
        profiles._stop_mining_local_constants()
    prof = settings.get_profile(profile)
    return {k: getattr(prof, k) for k in ("max_examples", "derandomize", "database", "deadline",
                                          "suppress_health_check")}


def residual_bound(found: Found[Any], *, bound: float, dtype: Any, device: str | None = None,
                   sizes: dict[str, Any] | None = None) -> Measurement:
    """A searched worst residual as what it is: rounding, judged only against ``bound``.

    The largest |a − b| a search finds between two quantities that agree in exact
    arithmetic is a rounding residual: its value moves with the CPU and kernel path, so
    only whether it stays within the dtype-justified ``bound`` carries information.
    """
    return Measurement(found.value, Kind.ROUNDING, dtype, device, sizes or {}, bound=bound,
                       witness=found.source)

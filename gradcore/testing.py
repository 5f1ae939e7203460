"""The pytest route: put your own technique under gradcore's claims in your CI.

    from gradcore.testing import check_technique

    def test_my_norm_is_safe():
        result = check_technique(MyNorm, kind="norm")
        result.assert_ok()          # AssertionError with the clause table on a violation

The result (:class:`gradcore.verify.check.TechniqueCheck`) has ``.ok``, ``.violations``
(the violated clauses, each with its measured constants and counterexample),
``.results`` (every clause) and ``.table()``. The user's Hypothesis profile is left
alone: the searches take the chosen gradcore profile's settings per call.
"""
from __future__ import annotations

from typing import Any

from .verify.check import TechniqueCheck, check
from .verify.contracts.base import DEFAULT_TIME_LIMIT_S
from .verify.contracts import CheckError


def check_technique(technique: Any, kind: str | None = None, *, device: str = "cpu",
                    profile: str = "ci", seed: int = 0, name: str | None = None,
                    compare: bool = False, time_limit_s: float | None = DEFAULT_TIME_LIMIT_S) -> TechniqueCheck:
    """Measure ``technique`` against every claim of its kind (inferred unless given).

    Raises :class:`~gradcore.verify.contracts.CheckError` (one line) when the technique
    cannot be checked: unknown kind, not callable, wrong shape, non-finite output. A
    clause gradcore could not measure (its own error, or past ``time_limit_s`` seconds,
    enforced on the main thread only) is in ``result.unmeasured``, a gating clause whose
    interval still straddles the claim at its draw cap in ``result.undecided``; either makes
    ``ok`` False.
    """
    return check(technique, kind=kind, name=name, device=device, profile=profile, seed=seed,
                 compare=compare, time_limit_s=time_limit_s)


__all__ = ["CheckError", "TechniqueCheck", "check_technique"]

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
    enforced on the main thread only) is in ``result.unmeasured`` and makes ``ok`` False.
    Gradients are measured even when called under ``torch.no_grad()`` or ``inference_mode``.
    """
    if name is not None and not (isinstance(name, str) and name.isprintable()):
        raise CheckError(f"name must be a one-line string (it heads the clause table), got {name!r}")
    if not isinstance(compare, bool):
        raise CheckError(f"compare must be True or False, got {compare!r}")
    import torch

    # A caller's no_grad would detach every output: each f' would be measured as 0.
    with torch.inference_mode(False), torch.enable_grad():
        return check(technique, kind=kind, name=name, device=device, profile=profile, seed=seed,
                     compare=compare, time_limit_s=time_limit_s)


__all__ = ["CheckError", "TechniqueCheck", "check_technique"]

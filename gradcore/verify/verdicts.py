"""The verdict core: one vocabulary and one set of decisions for claims and clauses alike.

A *check* compares a measured value (or its confidence interval) with a claimed one
under a relation and a tolerance, and comes out ``True`` (holds), ``False`` (fails) or
``None`` (the interval straddles the claim: undecided). A claim's verdict follows from
its checks (:func:`claim_verdict`); a technique clause's verdict is the same decision
in the words of a contract (:data:`CLAUSE`).
"""
from __future__ import annotations

import math
from collections.abc import Iterable

RELATIONS = ("==", "<=", ">=", "<", ">")
# Most severe first: a claim measured on several devices takes the most severe verdict.
VERDICTS = ("refuted", "conditional", "inconclusive", "verified")
MARK = {"verified": "✅ verified", "conditional": "⚠️ conditional",
        "refuted": "❌ refuted", "inconclusive": "❔ inconclusive"}
# A clause of a technique contract: the check's outcome, that it could not be measured, or that it does not apply.
CLAUSE = {True: "holds", False: "violated", None: "inconclusive"}
UNMEASURED = "unmeasured"
# A clause whose precondition the technique does not meet (an RMS clause on a centring norm).
NOT_APPLICABLE = "does not apply"
CLAUSE_VERDICTS = (*CLAUSE.values(), UNMEASURED, NOT_APPLICABLE)
CLAUSE_MARK = {"holds": "✅ holds", "violated": "❌ violated", "inconclusive": "❔ inconclusive",
               UNMEASURED: "⛔ could not be measured", NOT_APPLICABLE: "➖ does not apply"}


def holds(relation: str, claimed: float, measured: float, slack: float) -> bool:
    """Whether ``measured RELATION claimed`` holds within ``slack`` (NaN never holds)."""
    if math.isnan(measured):
        return False
    if relation == "==":
        return abs(measured - claimed) <= slack or measured == claimed
    if relation in ("<=", "<"):
        return measured < claimed + slack if relation == "<" else measured <= claimed + slack
    return measured > claimed - slack if relation == ">" else measured >= claimed - slack


def decide(relation: str, claimed: float, measured: float, slack: float,
           interval: tuple[float, float] | None = None) -> bool | None:
    """The check's outcome: from the value, or from the whole confidence interval.

    With an interval, ``==`` holds when the claimed value lies inside it (widened by the
    slack) and fails otherwise; an inequality holds when both ends satisfy it, fails
    when neither does, and is undecided (None) when the interval straddles the claim.
    """
    if interval is None:
        return holds(relation, claimed, measured, slack)
    lo, hi = interval
    if relation == "==":
        return lo - slack <= claimed <= hi + slack
    ends = holds(relation, claimed, lo, slack), holds(relation, claimed, hi, slack)
    return True if all(ends) else False if not any(ends) else None


def within(interval: tuple[float, float], low: float, high: float) -> bool | None:
    """Whether an interval lies inside [low, high]: True inside, False disjoint, None straddling."""
    above, below = decide(">=", low, 0.0, 0.0, interval), decide("<=", high, 0.0, 0.0, interval)
    if above is False or below is False:
        return False
    return None if None in (above, below) else True


def claim_verdict(inside: Iterable[bool | None], outside: Iterable[bool | None]) -> str:
    """A claim's verdict from the outcomes of its checks inside and outside its assumptions.

    Any inside check fails → refuted; one inside undecided → inconclusive; only outside
    checks fail → conditional; else verified.
    """
    inside, outside = list(inside), list(outside)
    if False in inside:
        return "refuted"
    if None in inside:
        return "inconclusive"
    if False in outside:
        return "conditional"
    return "verified"


def most_severe(verdicts: Iterable[str]) -> str:
    """The most severe of several verdicts (e.g. of one claim on several devices)."""
    present = set(verdicts)
    return next(v for v in VERDICTS if v in present)

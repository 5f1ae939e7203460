"""Run a recorded value's generated reproduction and say whether it reprints that value.

Every constant measured through a recipe carries a reproduction (Python that imports the
recipe, calls it with the recorded arguments and prints ``repr(value)``). A reproduction
agrees when the number it prints equals the recorded one within the value's own
tolerance, in the sense of its kind (:class:`gradcore.measure.Kind`): exact values
exactly, rounding residuals within their bound, statistical estimates within their
interval's half-width, numeric values and search bounds within their guard tolerance, at
least the rounding another CPU adds (:func:`gradcore.verify.guard.allowance`).
"""
from __future__ import annotations

import contextlib
import io
import math
from typing import Any

from ..errors import MeasurementError
from .guard import allowance


def run(reproduction: str) -> float:
    """Execute ``reproduction`` in a fresh namespace and return the last number it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(reproduction, "<reproduction>", "exec"), {"__name__": "__reproduction__"})
    lines = out.getvalue().split()
    if not lines:
        raise MeasurementError("the reproduction printed nothing")
    try:
        return float(lines[-1])
    except ValueError:
        raise MeasurementError(f"the reproduction's last word {lines[-1]!r} is not a number") from None


def agrees(constant: dict[str, Any], printed: float) -> bool:
    """Whether ``printed`` reproduces the recorded constant within its own tolerance.

    Both directions count alike (a reproduction reprints a value, it does not search), within
    the guard's :func:`~gradcore.verify.guard.allowance`, so another CPU's rounding agrees.
    """
    recorded, kind = constant["measured"], constant.get("kind", "numeric")
    if isinstance(recorded, str):
        recorded = float(recorded)
    if not (math.isfinite(recorded) and math.isfinite(printed)):
        return recorded == printed or (math.isnan(recorded) and math.isnan(printed))
    if kind == "exact":
        return printed == recorded   # symbolic or exactly representable: no rounding to allow for
    if kind == "rounding":
        return abs(printed) <= constant["bound"]
    return abs(printed - recorded) <= allowance({**constant, "measured": recorded})


def reproductions(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(claim or technique id, constant)`` for every recorded constant that has a reproduction."""
    found = []
    for claim in doc.get("claims", []):
        for device, record in claim.get("devices", {}).items():
            found += [(f"{claim['id']}[{device}]", c) for c in record["constants"] if c.get("reproduction")]
    return found

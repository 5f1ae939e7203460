"""Small formatting helpers shared by the report, the guard and the CLI."""
from __future__ import annotations

import math
from typing import Any

from .verdicts import MARK as VERDICT_MARK
from .verdicts import VERDICTS as VERDICT_ORDER


def num(x: Any) -> str:
    """A number in 4 significant digits (scientific when very small or large); a list, each entry so."""
    if x is None:
        return "—"
    if isinstance(x, str):
        return x
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(num(i) for i in x) + "]"
    if isinstance(x, bool):
        return str(x)
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e5:
        return f"{x:.4g}"
    return f"{x:.3e}"


def measured(check: dict[str, Any]) -> str:
    """A recorded value as what its kind makes it: a search bound reads "≥ 3.46 (search bound)"."""
    value = num(check.get("measured"))
    kind, direction = check.get("kind"), check.get("direction")
    if kind == "search" and direction in ("lower", "upper"):
        return f"{'≥' if direction == 'lower' else '≤'} {value} (search bound)"
    if kind == "rounding" and check.get("bound") is not None:
        return f"{value} (rounding, bound {num(check['bound'])})"
    return value


def sizes(check: dict[str, Any]) -> str:
    """The sizes a measurement was taken at ("depth 30, width 256, seeds 8"), or "—"."""
    return ", ".join(f"{k} {v}" for k, v in (check.get("sizes") or {}).items()) or "—"


def key_check(claim: dict[str, Any]) -> dict[str, Any] | None:
    """The constant that best summarises a claim: the failing check that decides its
    verdict (inside the assumptions before outside), else its first check."""
    checks = claim.get("constants") or []
    failing = [c for c in checks if c.get("holds") is False]
    failing.sort(key=lambda c: c.get("outside") is not None)
    return (failing or checks or [None])[0]


def claimed_vs_measured(check: dict[str, Any] | None) -> str:
    if check is None:
        return "—"
    rel = check.get("relation", "==")
    claimed = num(check.get("claimed"))
    lhs = "claimed" if rel == "==" else f"claimed {rel.replace('==', '=')}"
    return f"{check['name']}: {lhs} {claimed}, measured {measured(check)}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured markdown table (pipes in cells escaped)."""
    def cell(s: str) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def counts(claims: list[dict[str, Any]]) -> dict[str, int]:
    out = {v: 0 for v in VERDICT_ORDER}
    for c in claims:
        out[c["verdict"]] = out.get(c["verdict"], 0) + 1
    return out

"""Figures drawn from the curves recorded in a results file (matplotlib, Agg backend).

Each claim's curves are grouped by their ``figure`` name; one PNG per group, titled
with the claim id and labelled with the run's device and seed, so every figure is a
view of measured data and nothing else.
"""
from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter, ScalarFormatter  # noqa: E402

from .atomic import write_with  # noqa: E402


def figure_groups(claim: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for s in claim.get("series", []):
        groups.setdefault(s["figure"], []).append(s)
    return groups


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)


def file_name(claim_id: str, figure: str) -> str:
    """The figure's file name: one plain name inside the figure directory, whatever the id
    (a results file may hold ``../x`` or ``/x``). An id that had to be changed, and a name too
    long for the filesystem, get a hash of the original so that two ids never share a file."""
    base = _safe(claim_id).lstrip(".")   # never a hidden file, never ".."
    name = f"{base}-{_safe(figure).strip('-')}"
    if base != claim_id or len(name) > 150:
        digest = hashlib.sha256(f"{claim_id}\0{figure}".encode()).hexdigest()[:10]
        name = f"{name[:120]}-{digest}"
    return name + ".png"


def _floats(values: list[Any]) -> list[float]:
    """Plot values: the results file spells non-finite numbers "inf"/"nan" and may hold null."""
    return [math.nan if v is None else float(v) for v in values]


# matplotlib computes axis spans and margins in float64: beyond this, y = [1e308, -1e308] overflows.
PLOTTABLE = 1e100


def _plottable(values: list[float]) -> tuple[list[float], int]:
    """The values with those beyond ±PLOTTABLE left out (NaN: not drawn), and how many were."""
    kept = [v if not abs(v) > PLOTTABLE else math.nan for v in values]
    return kept, sum(1 for v in values if abs(v) > PLOTTABLE)


def _positive(values: list[Any]) -> bool:
    return bool(values) and all(v > 0 for v in values)


class NotDrawn(Exception):
    """Why a figure could not be drawn (the report says so in its place)."""


def draw(claim_id: str, figure: str, curves: list[dict[str, Any]], caption: str, path: Path) -> tuple[Path, str]:
    """Draw one figure to ``path`` (log axes only where every value is positive); also return a
    note naming the points left out as beyond ±PLOTTABLE ("" when none were)."""
    points = [_plottable(_floats(s[key])) for s in curves for key in ("x", "y")]
    curves = [dict(s, x=points[2 * i][0], y=points[2 * i + 1][0]) for i, s in enumerate(curves)]
    left_out = sum(n for _, n in points)
    try:
        _render(claim_id, figure, curves, caption, path)
    except (ValueError, OverflowError, FloatingPointError) as e:   # matplotlib's limits, not the report's
        raise NotDrawn(f"matplotlib could not draw it ({type(e).__name__}: {str(e)[:120]})") from None
    return path, (f"{left_out} value(s) beyond ±{PLOTTABLE:g} are not drawn" if left_out else "")


def _render(claim_id: str, figure: str, curves: list[dict[str, Any]], caption: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for s in curves:
        x, y = s["x"], s["y"]
        if s.get("kind") == "scatter":
            ax.scatter(x, y, s=14, label=s["label"], alpha=0.8)
        else:
            marker = "o" if len(x) <= 60 else None  # markers only where points can be told apart
            ax.plot(x, y, marker=marker, markersize=3, linewidth=1.4, label=s["label"])
    first = curves[0]
    for axis, key in ((ax.xaxis, "x"), (ax.yaxis, "y")):
        values = [v for s in curves for v in s[key] if not math.isnan(v)]
        if first.get(f"log{key}") and _positive(values):
            (ax.set_xscale if key == "x" else ax.set_yscale)("log")
            if max(values) / min(values) < 1e3:  # a few decades read better as plain numbers
                axis.set_major_formatter(ScalarFormatter())
                axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(first["xlabel"])
    ax.set_ylabel(first["ylabel"])
    ax.set_title(f"{claim_id}: {figure}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if len(curves) > 1 or curves[0]["label"]:
        ax.legend(fontsize=8)
    fig.text(0.99, 0.01, caption, ha="right", va="bottom", fontsize=7, color="0.4")
    fig.tight_layout()
    try:
        # atomically: a kill mid-save leaves the previous PNG, never a truncated one
        write_with(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)


Key = tuple[str, str]   # (claim id, figure name)


def draw_all(doc: dict[str, Any], directory: Path) -> tuple[dict[Key, Path], dict[Key, str]]:
    """Draw every figure of a results document into ``directory``: the figures drawn, and a note
    for each figure drawn in part or not at all (values matplotlib cannot place)."""
    env = doc["environment"]
    device = ", ".join(f"{k}: {v}" for k, v in env.get("devices", {}).items())
    caption = f"{device} · seed {env.get('seed')} · profile {env.get('profile')} · torch {env.get('torch')}"
    out: dict[Key, Path] = {}
    notes: dict[Key, str] = {}
    for claim in doc["claims"]:
        for name, curves in figure_groups(claim).items():
            key = (claim["id"], name)
            try:
                out[key], note = draw(*key, curves, caption, directory / file_name(*key))
            except NotDrawn as e:
                note = f"not drawn: {e}"
            if note:
                notes[key] = note
    return out, notes

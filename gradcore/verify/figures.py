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


def _positive(values: list[Any]) -> bool:
    return bool(values) and all(v > 0 for v in values)


def draw(claim_id: str, figure: str, curves: list[dict[str, Any]], caption: str, path: Path) -> Path:
    """Draw one figure to ``path`` (log axes only where every value is positive)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for s in curves:
        x, y = _floats(s["x"]), _floats(s["y"])
        if s.get("kind") == "scatter":
            ax.scatter(x, y, s=14, label=s["label"], alpha=0.8)
        else:
            marker = "o" if len(x) <= 60 else None  # markers only where points can be told apart
            ax.plot(x, y, marker=marker, markersize=3, linewidth=1.4, label=s["label"])
    first = curves[0]
    for axis, key in ((ax.xaxis, "x"), (ax.yaxis, "y")):
        values = [v for s in curves for v in _floats(s[key])]
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
    return path


def draw_all(doc: dict[str, Any], directory: Path) -> dict[tuple[str, str], Path]:
    """Draw every figure of a results document into ``directory``."""
    env = doc["environment"]
    device = ", ".join(f"{k}: {v}" for k, v in env.get("devices", {}).items())
    caption = f"{device} · seed {env.get('seed')} · profile {env.get('profile')} · torch {env.get('torch')}"
    out = {}
    for claim in doc["claims"]:
        for name, curves in figure_groups(claim).items():
            out[claim["id"], name] = draw(claim["id"], name, curves, caption,
                                         directory / file_name(claim["id"], name))
    return out

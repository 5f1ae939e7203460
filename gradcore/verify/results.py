"""The results file: schema, assembly from per-device records, atomic I/O.

``reports/results.json`` is the single source every view (markdown report, figures,
guard, ``gradcore list``) reads. Records arrive per (claim, device) — possibly from
several pytest-xdist workers — and are merged here in catalogue order, so a serial
and a parallel run give the same file apart from timings.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from .catalogue import Claim
from .verdicts import most_severe

SCHEMA_VERSION = 1


from ..errors import ResultsError  # noqa: F401  (re-exported)


def device_names() -> dict[str, str]:
    import torch

    names = {"cpu": platform.processor() or platform.machine()}
    if torch.cuda.is_available():
        names["cuda"] = torch.cuda.get_device_name(0)
    return names


def environment(*, seed: int, profile: str, wall_time_s: float, workers: int,
                devices: list[str]) -> dict[str, Any]:
    import hypothesis
    import numpy
    import sympy
    import torch

    names = device_names()
    return {
        "python": platform.python_version(), "torch": torch.__version__,
        "numpy": numpy.__version__, "sympy": sympy.__version__,
        "hypothesis": hypothesis.__version__, "platform": platform.platform(),
        "devices": {d: names.get(d, "unavailable") for d in devices},
        "seed": seed, "profile": profile, "workers": workers,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_time_s": round(wall_time_s, 2),
    }


def combined_verdict(per_device: dict[str, dict[str, Any]]) -> str:
    """The most severe verdict over devices (they normally agree)."""
    return most_severe(r["verdict"] for r in per_device.values())


def device_differences(per_device: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Where another device's verdict or constants differ from the primary's beyond tolerance."""
    from .guard import compare_device

    names = sorted(per_device, key=lambda d: (d != "cpu", d))
    first = names[0]
    return [vars(c) for d in names[1:] for c in compare_device("", per_device[first], per_device[d], d)]


def claim_entry(claim: Claim, per_device: dict[str, dict[str, Any]]) -> dict[str, Any]:
    primary = per_device["cpu"] if "cpu" in per_device else per_device[sorted(per_device)[0]]
    differences = device_differences(per_device)
    entry = claim.to_json()
    entry.update({
        "verdict": combined_verdict(per_device),
        "device_agreement": not differences,
        "device_differences": differences,
        "constants": primary["constants"],
        "counterexample": primary["counterexample"],
        "corrected": primary["corrected"],
        "notes": primary["notes"],
        "series": primary["series"],
        "test": primary["test"],
        "devices": {d: {k: r[k] for k in ("verdict", "constants", "counterexample", "corrected", "duration_s")}
                    for d, r in sorted(per_device.items())},
    })
    return entry


def assemble(catalogue: dict[str, Claim], records: list[dict[str, Any]],
             env: dict[str, Any]) -> dict[str, Any]:
    """One results document from per-(claim, device) records, in catalogue order."""
    by_claim: dict[str, dict[str, dict[str, Any]]] = {}
    for r in records:
        by_claim.setdefault(r["id"], {})[r["device"]] = r
    claims = [claim_entry(c, by_claim[cid]) for cid, c in catalogue.items() if cid in by_claim]
    return {"schema": SCHEMA_VERSION, "environment": env, "claims": claims,
            "not_run": [cid for cid in catalogue if cid not in by_claim]}


def write_text(text: str, path: str | Path) -> Path:
    """Write atomically: a temporary file in the same directory, then ``os.replace``.

    An interrupted run therefore never leaves a truncated results file or report.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def write(doc: dict[str, Any], path: str | Path) -> Path:
    """Atomically write a results document as JSON (no NaN: every number is finite or null)."""
    return write_text(json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n", path)


def read(path: str | Path) -> dict[str, Any]:
    """Load and validate a results file; any problem is one ResultsError line."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"results file {path} does not exist (run `gradcore verify` first)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ResultsError(f"results file {path} is not valid JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_VERSION:
        raise ResultsError(f"results file {path} is not a gradcore results file (schema {SCHEMA_VERSION})")
    for key in ("environment", "claims"):
        if key not in doc:
            raise ResultsError(f"results file {path} lacks '{key}'")
    for i, c in enumerate(doc["claims"]):
        missing = [k for k in ("id", "verdict", "constants", "devices") if k not in c]
        if missing:
            raise ResultsError(f"results file {path}: claim #{i} lacks {', '.join(missing)}")
    return doc

"""The results file: schema, assembly from per-device records, atomic I/O.

``reports/results.json`` is the single source every view (markdown report, figures,
guard, ``gradcore list``) reads. Records arrive per (claim, device) — possibly from
several pytest-xdist workers — and are merged here in catalogue order, so a serial
and a parallel run give the same file apart from timings.
"""
from __future__ import annotations

import itertools
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ResultsError
from . import schema
from .atomic import Unreadable, locked, read_text, shown, write_text  # write_text re-exported: the one atomic writer
from .catalogue import Claim
from .verdicts import claim_verdict, most_severe

SCHEMA_VERSION = 1
CHECK_SCHEMA = "gradcore-check/2"   # a technique check (``gradcore check``, reports/techniques.json)
MAX_BYTES = 256 * 2 ** 20   # the full results file is under 2 MiB; json.loads of 256 MiB needs a few GiB already

# Two measurements of one claim (e.g. cpu and cuda) → their differences beyond tolerance.
Differ = Callable[[dict[str, Any], dict[str, Any], str], list[Any]]


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


# What a claim entry keeps of the run that measured it (``measured_in``).
MEASURED_IN = ("timestamp", "workers", "profile", "seed", "python", "torch", "numpy", "sympy",
               "hypothesis", "platform", "devices")


def measured_in(env: dict[str, Any]) -> dict[str, Any]:
    """The part of a run's environment block that describes where a claim was measured."""
    return {k: env[k] for k in MEASURED_IN if k in env}


def combined_verdict(per_device: dict[str, dict[str, Any]]) -> str:
    """The most severe verdict over devices (they normally agree)."""
    return most_severe(r["verdict"] for r in per_device.values())


def device_differences(per_device: dict[str, dict[str, Any]], differ: Differ) -> list[dict[str, Any]]:
    """Where another device's verdict or constants differ from the primary's beyond tolerance."""
    names = sorted(per_device, key=lambda d: (d != "cpu", d))
    first = names[0]
    return [vars(c) for d in names[1:] for c in differ(per_device[first], per_device[d], d)]


def claim_entry(claim: Claim, per_device: dict[str, dict[str, Any]], differ: Differ) -> dict[str, Any]:
    primary = per_device["cpu"] if "cpu" in per_device else per_device[sorted(per_device)[0]]
    differences = device_differences(per_device, differ)
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
    measured_in = primary.get("measured_in")
    if measured_in is not None:
        entry["measured_in"] = measured_in
    return entry


def _case(record: dict[str, Any]) -> str:
    """The parameters of a parametrized theorem's test item, without the device ("float32")."""
    nodeid = (record.get("test") or {}).get("nodeid", "")
    params = nodeid.rpartition("[")[2].rstrip("]").split("-") if nodeid.endswith("]") else []
    return "-".join(p for p in params if p != record["device"]) or nodeid


def merged(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One record from the test items of a parametrized theorem that measured one claim on one device.

    Each item's constants, curves and notes are kept (tagged with its parameters), so no item's
    measurement overwrites another's; the verdict is derived from all their checks again.
    """
    if len(records) == 1:
        return records[0]
    records = sorted(records, key=_case)
    constants = [dict(c, name=f"{c['name']} [{_case(r)}]") for r in records for c in r["constants"]]
    failing = [c for c in constants if c["holds"] is False]
    failing.sort(key=lambda c: c.get("outside") is not None)
    return {**records[0], "constants": constants,
            "verdict": claim_verdict((c["holds"] for c in constants if c.get("outside") is None),
                                     (c["holds"] for c in constants if c.get("outside") is not None)),
            "counterexample": next((c["counterexample"] for c in failing if c.get("counterexample")),
                                   next((r["counterexample"] for r in records if r.get("counterexample")), None)),
            "corrected": " ".join(dict.fromkeys(r["corrected"] for r in records if r.get("corrected"))) or None,
            "notes": [n for r in records for n in r.get("notes", [])],
            "series": [dict(x, label=f"{x['label']} [{_case(r)}]") for r in records for x in r.get("series", [])],
            "duration_s": round(sum(r.get("duration_s", 0.0) for r in records), 3)}


def assemble(catalogue: dict[str, Claim], records: list[dict[str, Any]],
             env: dict[str, Any], differ: Differ) -> dict[str, Any]:
    """One results document from per-(claim, device) records, in catalogue order.

    A record may carry ``measured_in`` (the environment it was measured in); the claim
    entry keeps it, so claims merged from an earlier run keep their own timestamp.
    """
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in records:
        grouped.setdefault(r["id"], {}).setdefault(r["device"], []).append(r)
    by_claim = {cid: {d: merged(rs) for d, rs in devices.items()} for cid, devices in grouped.items()}
    claims = [claim_entry(c, by_claim[cid], differ) for cid, c in catalogue.items() if cid in by_claim]
    return {"schema": SCHEMA_VERSION, "environment": env, "claims": claims,
            "not_run": [cid for cid in catalogue if cid not in by_claim]}


def write(doc: dict[str, Any], path: str | Path) -> Path:
    """Atomically write a results document as JSON (no NaN: every number is finite or null)."""
    return write_text(json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n", path)


class _RepeatedKey(Exception):
    pass


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) < len(pairs):
        raise _RepeatedKey(next(k for i, (k, _) in enumerate(pairs) if k in dict(pairs[:i])))
    return doc


def _aside(path: Path) -> Path:
    """A new name for an invalid results file: ``NAME.invalid-<time>`` (numbered, never an existing one)."""
    stem = f"{path.name}.invalid-{int(time.time())}"
    return next(p for p in (path.with_name(stem + (f"-{i}" if i else "")) for i in itertools.count())
                if not p.exists() and not p.is_symlink())


def _previous(path: Path) -> tuple[dict[str, Any] | None, str]:
    """The results file a run merges into (None when there is none) and a note for the terminal.

    An invalid earlier file is moved aside, never overwritten; a technique results file is
    refused (it is not a claims file, and writing claims over it would lose it).
    """
    if not path.exists():
        return None, ""
    try:
        previous = read(path)
    except ResultsError as e:
        aside = _aside(path)
        try:
            os.replace(path, aside)
        except OSError as moving:
            raise ResultsError(f"{e}; and it cannot be moved aside to {shown(aside)}: "
                               f"{moving.strerror or moving}") from None
        return None, f" (the previous file was invalid and is kept as {aside}: {e})"
    if previous.get("schema") != SCHEMA_VERSION:
        raise ResultsError(f"{shown(path)} holds technique checks ({CHECK_SCHEMA}), not claims; "
                           "refusing to write claims over it")
    return previous, ""


def kept_records(previous: dict[str, Any], keep: Callable[[str], bool]) -> list[dict[str, Any]]:
    """The earlier file's per-device records of the claims ``keep`` accepts, each with the
    environment it was measured in, ready to be assembled again."""
    fallback = measured_in(previous["environment"])
    return [dict(r, id=c["id"], device=d, test=c.get("test"), notes=c.get("notes", []),
                 series=c.get("series", []), measured_in=c.get("measured_in") or fallback)
            for c in previous["claims"] if keep(c["id"]) for d, r in c["devices"].items()]


def foreign_entries(previous: dict[str, Any], known: set[str] | dict[str, Any]) -> list[dict[str, Any]]:
    """The earlier file's entries of claims no catalogue of this run knows (a downstream project's
    claims, say): kept verbatim, in their order, since this run cannot rebuild them."""
    return [c for c in previous["claims"] if c["id"] not in known]


def update(path: str | Path, catalogue: dict[str, Claim], records: list[dict[str, Any]], env: dict[str, Any],
           differ: Differ, selected: set[str],
           reaches: dict[str, list[str]] | None = None) -> tuple[dict[str, Any], int, str]:
    """Merge one run's records into the results file at ``path`` and write it, under a lock.

    Reading the current file, merging and writing happen while holding :func:`atomic.locked`,
    so concurrent runs (two ``--only`` runs, say) merge one after the other and neither loses
    the other's claims. A claim this run did not measure (not ``selected``, no record) keeps
    its entry, whichever catalogue it came from; ``reaches`` (claim id → kinds) is written into
    every claim this catalogue knows. Returns the document written, how many
    claims were kept from the previous file, and a note for the terminal.
    """
    path = Path(path)
    measured = selected | {r["id"] for r in records}
    with locked(path):
        previous, note = _previous(path)
        kept = kept_records(previous, lambda cid: cid in catalogue and cid not in measured) if previous else []
        foreign = foreign_entries(previous, catalogue) if previous else []
        doc = assemble(catalogue, kept + records, env, differ)
        if reaches is not None:   # the technique kinds whose clauses cite each claim (issue 22)
            for c in doc["claims"]:
                c["reaches"] = reaches.get(c["id"], [])
        doc["claims"] += foreign
        doc["environment"]["claims_measured"] = len({r["id"] for r in records})
        write(schema.validate(doc, path), path)
    return doc, len({r["id"] for r in kept}) + len(foreign), note


def read(path: str | Path) -> dict[str, Any]:
    """Load a results file and validate it against the schema; any problem is one ResultsError line."""
    path = Path(path)
    if path.is_dir():
        raise ResultsError(f"results file {shown(path)} is a directory")
    if not path.exists():
        raise ResultsError(f"results file {shown(path)} does not exist (run `gradcore verify` first)")
    try:
        text = read_text(path, MAX_BYTES)
    except Unreadable as e:   # a FIFO, /dev/zero, a file of absurd size: refused, not read forever
        raise ResultsError(f"results file {shown(path)} cannot be read: {e}") from None
    except OSError as e:
        raise ResultsError(f"results file {shown(path)} cannot be read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ResultsError(f"results file {shown(path)} is not UTF-8 text: {e.reason}") from None
    try:
        doc = json.loads(text, object_pairs_hook=_no_repeated_keys)
    except _RepeatedKey as e:   # e.g. a device twice in one claim: json would silently keep the last
        raise ResultsError(f"results file {shown(path)}: key {e.args[0]!r} occurs twice in one object") from None
    except (ValueError, RecursionError) as e:   # JSONDecodeError is a ValueError
        raise ResultsError(f"results file {shown(path)} is not valid JSON: {str(e)[:200]}") from None
    if not isinstance(doc, dict) or doc.get("schema") not in (SCHEMA_VERSION, CHECK_SCHEMA):
        raise ResultsError(f"results file {shown(path)} is not a gradcore results file "
                           f"(schema {SCHEMA_VERSION}, or {CHECK_SCHEMA!r} for technique checks)")
    return schema.validate(doc, path)


def as_claims(doc: dict[str, Any]) -> dict[str, Any]:
    """A results document in the claims form: a technique check's clauses become entries
    ``kind:technique:clause`` whose one device record holds the clause verdict and constants,
    so the guard and the views read both documents the same way."""
    if doc.get("schema") != CHECK_SCHEMA:
        return doc
    device = next(iter(doc["environment"].get("devices", {"cpu": ""})), "cpu")
    groups = dict(doc.get("kinds", {}))
    if "technique" in doc:
        groups.setdefault(doc["technique"]["kind"], {})[doc["technique"]["name"]] = doc.get("clauses", [])
        for name, clauses in doc.get("builtins", {}).items():
            groups[doc["technique"]["kind"]][name] = clauses
    claims = [{"id": f"{kind}:{name}:{c['id']}", "verdict": c["verdict"],
               "devices": {device: {"verdict": c["verdict"], "constants": c["constants"]}}}
              for kind, techniques in groups.items() for name, clauses in techniques.items() for c in clauses]
    return {"schema": SCHEMA_VERSION, "environment": doc["environment"], "claims": claims}

"""Helpers shared by the command-line tests: a small real results file, and running `gradcore`."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from gradcore.verify import cli

ROOT = Path(__file__).resolve().parent.parent


def small_results(directory: Path, n: int = 3, keep: Callable[[dict], bool] = lambda c: True) -> Path:
    """The committed results file cut down to its first ``n`` claims that ``keep`` accepts."""
    doc = json.loads((ROOT / "reports" / "results.json").read_text(encoding="utf-8"))
    doc["claims"] = [c for c in doc["claims"] if keep(c)][:n]
    path = directory / "results.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    """``gradcore ARGV`` in this process: exit status, stdout, stderr."""
    status = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return status, out.out, out.err

"""Helpers shared by the command-line tests: a small real results file, and running `gradcore`."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from gradcore import cli

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


# --- a miniature project for runs of pytest / `gradcore verify` ---------------------------

CATALOGUE = "".join(f'''
[[claim]]
id = "T-0{i}"
title = "claim {i}"
statement = "{i} is {i}"
method = "symbolic"
expected_verdict = "verified"
[[claim.sources]]
file = "f.txt"
section = "s"
quote = "q"
''' for i in (1, 2, 3))


def theorem(i: int, sleep: float = 0.0, measured: float | None = None) -> str:
    """The theorem of claim T-0i: measures i (or ``measured``, contradicting the catalogue)."""
    return (f'import time, pytest\n\n@pytest.mark.claim("T-0{i}")\ndef test_{i}(claim):\n'
            f'    time.sleep({sleep})\n    claim.compare("value", claimed={i}, measured={i if measured is None else measured})\n'
            f'    claim.curve("fig", "line", [1, 2, 3], [1.0, 2.0, 3.0], xlabel="x", ylabel="y")\n')


def project(root: Path, sleep: float = 0.0) -> None:
    """A miniature gradcore project: ini, a three-claim catalogue, one theorem file per claim."""
    (root / "tox.ini").write_text("[pytest]\naddopts = -p gradcore.verify.plugin -p no:cacheprovider\n"
                                  "gradcore_catalogue = catalogue\ngradcore_catalogue_only = true\n")
    (root / "catalogue").mkdir()
    (root / "catalogue" / "t.toml").write_text(CATALOGUE, encoding="utf-8")
    (root / "theorems").mkdir()
    for i in (1, 2, 3):
        (root / "theorems" / f"test_t{i}.py").write_text(theorem(i, sleep), encoding="utf-8")

"""`gradcore verify` in another project's directory: it loads its own pytest plugin (issue 22 §5).

Before, the spawned pytest knew gradcore's options only when the project's own pytest
configuration loaded the plugin; elsewhere it stopped with "unrecognized arguments:
--device=auto ..." (exit 2, no results).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .cli_helpers import CATALOGUE, ROOT, project, theorem


def _verify(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "gradcore.cli", "verify", "--catalogue", "catalogue",
                           "--theorems", "theorems", "--device", "cpu", "--no-techniques"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


def _bare(root: Path) -> None:
    """A directory with a catalogue and theorems and no pytest configuration at all."""
    (root / "catalogue").mkdir()
    (root / "catalogue" / "t.toml").write_text(CATALOGUE, encoding="utf-8")
    (root / "theorems").mkdir()
    for i in (1, 2):
        (root / "theorems" / f"test_t{i}.py").write_text(theorem(i), encoding="utf-8")


@pytest.mark.parametrize("layout", ["bare", "loads the plugin itself"])
def test_verify_runs_in_any_directory_with_a_catalogue_and_theorems(tmp_path, layout):
    (_bare if layout == "bare" else project)(tmp_path)
    run = _verify(tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "unrecognized arguments" not in run.stderr
    doc = json.loads((tmp_path / "reports" / "results.json").read_text(encoding="utf-8"))
    assert {c["id"]: c["verdict"] for c in doc["claims"]} == {f"T-0{i}": "verified" for i in
                                                              ((1, 2) if layout == "bare" else (1, 2, 3))}
    assert all(c["reaches"] == [] for c in doc["claims"])   # the plugin records which kinds reach each claim

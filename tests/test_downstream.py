"""The example downstream project (``examples/downstream``), installed and run end to end.

It has its own technique, catalogue and theorem; every command must work on its claims
with its catalogue added to gradcore's built-in one.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "downstream"


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("downstream") / "swishlib"
    shutil.copytree(EXAMPLE, root)
    site = root.parent / "site"
    installed = _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), "."],
                     root, dict(os.environ))
    assert installed.returncode == 0, installed.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(site)}
    (root / "swishlib.py").rename(root / "swishlib_source.py")   # the installed copy must be the one used
    return root, env


def gradcore(project: tuple[Path, dict[str, str]], *args: str) -> subprocess.CompletedProcess:
    root, env = project
    return _run([sys.executable, "-m", "gradcore.cli", *args], root, env)


def test_its_own_pytest_run_measures_its_claim(project):
    root, env = project
    run = _run([sys.executable, "-m", "pytest", "-q"], root, env)
    assert run.returncode == 0, run.stdout[-2000:]
    doc = json.loads((root / "reports" / "results.json").read_text(encoding="utf-8"))
    (mine,) = [c for c in doc["claims"] if c["id"] == "MY-01"]
    assert mine["verdict"] == "verified" and mine["sources"][0]["kind"] == "paper"
    assert "ACT-01" in doc["not_run"]   # the built-in catalogue is still there, added to


def test_every_command_reads_its_catalogue(project):
    test_its_own_pytest_run_measures_its_claim(project)
    listed = gradcore(project, "list", "--catalogue", "claims", "--source", "Ramachandran")
    assert listed.returncode == 0 and "MY-01" in listed.stdout and "verified" in listed.stdout
    shown = gradcore(project, "show", "MY-01", "--catalogue", "claims")
    assert shown.returncode == 0 and "Searching for Activation Functions" in shown.stdout
    missing = gradcore(project, "show", "MY-99", "--catalogue", "claims")
    assert missing.returncode == 2 and "claims" in missing.stderr
    report = gradcore(project, "report", "reports/results.json", "--catalogue", "claims", "--out", "reports/v.md")
    assert report.returncode == 0 and "MY-01" in (project[0] / "reports" / "v.md").read_text(encoding="utf-8")
    accept = gradcore(project, "guard", "reports/results.json", "--baseline", "reports/baseline.json", "--accept",
                      "--catalogue", "claims")
    assert accept.returncode == 0
    guarded = gradcore(project, "guard", "reports/results.json", "--baseline", "reports/baseline.json",
                       "--catalogue", "claims")
    assert guarded.returncode == 0, guarded.stdout


def test_verify_and_check_run_on_its_claims_and_technique(project):
    verify = gradcore(project, "verify", "--theorems", "theorems", "--catalogue", "claims", "--results",
                      "reports/again.json", "--no-techniques")
    assert verify.returncode == 0, verify.stdout[-2000:] + verify.stderr[-2000:]
    checked = gradcore(project, "check", "swishlib:swish", "--catalogue", "claims", "--no-compare", "--out", "checks")
    # Swish's derivative peaks at 1.0998 > 1: the derivative-bound clause is violated (exit 1).
    assert checked.returncode == 1, checked.stdout + checked.stderr
    doc = json.loads((project[0] / "checks" / "swish.json").read_text(encoding="utf-8"))
    verdicts = {c["id"]: c["verdict"] for c in doc["clauses"]}
    assert verdicts["derivative-bound"] == "violated"

"""Commands that do not measure never import torch (README "Command line"): ``--help``, ``list``,
``show``, ``report`` and ``guard`` answer without loading it (torch takes seconds to import; only
``verify``, ``check`` and ``audit`` need it). Speed itself is not asserted here (benchmarks/ measure
speed); what is loaded is."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "matplotlib", "hypothesis", "jsonschema", "sympy", "scipy")

PROBE = """
import contextlib, io, json, sys
from gradcore.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        status = main(sys.argv[1:])
    except SystemExit as e:   # --help
        status = e.code
print(json.dumps({"status": status, "loaded": [m for m in %r if m in sys.modules]}))
""" % (HEAVY,)


def _loaded(*argv: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [
    ("--help",),
    ("list",),
    ("show", "ACT-01"),
    ("report", "reports/results.json", "--format", "summary"),
    ("guard", "reports/results.json", "--baseline", "reports/baseline.json"),
], ids=lambda a: " ".join(a))
def test_commands_that_do_not_measure_do_not_import_torch(argv):
    seen = _loaded(*argv)
    assert seen["status"] == 0
    assert "torch" not in seen["loaded"], seen


def test_help_loads_nothing_heavy():
    assert _loaded("--help")["loaded"] == []


def test_a_command_that_measures_does_import_torch():
    # the probe itself can tell: `check` of a missing module fails after loading the measuring core
    seen = _loaded("check", "no_such_module_xyz:f")
    assert seen["status"] == 2 and "torch" in seen["loaded"]

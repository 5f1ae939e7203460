"""The command line and the Python API are one path: the same technique gives the same results.

``gradcore check`` runs in a fresh interpreter (no pytest, no Hypothesis profile loaded);
``gradcore.testing.check_technique`` runs here, under pytest. Settings are resolved in one
place (``check.settings_for``) and both measure inside ``profiles.pinned_generation``, so
every clause's verdict and every constant must agree.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gradcore.testing import check_technique
from gradcore.verify import check_report
from gradcore.verify.check import load_object

TECHNIQUES = [("tests.techniques_for_tests:swish", None), ("tests.techniques_for_tests:clip_per_coordinate", None),
              ("tests.techniques_for_tests:EpsLayerNorm", "norm")]


def _comparable(doc: dict) -> list[dict]:
    return [{k: v for k, v in c.items() if k != "duration_s"} for c in doc["clauses"]]


@pytest.mark.parametrize("spec,kind", TECHNIQUES, ids=[s.split(":")[1] for s, _ in TECHNIQUES])
def test_the_cli_and_the_api_give_the_same_json(tmp_path, spec, kind):
    args = [sys.executable, "-m", "gradcore.verify.cli", "check", spec, "--no-compare", "--out", str(tmp_path)]
    cli = subprocess.run(args + (["--kind", kind] if kind else []), capture_output=True, text=True, timeout=900)
    assert cli.returncode in (0, 1), cli.stderr
    name = spec.split(":")[1]
    from_cli = json.loads((tmp_path / f"{name}.json").read_text(encoding="utf-8"))
    api = check_technique(load_object(spec), kind=kind, name=name)
    from_api = check_report.to_json(api)
    assert from_cli["technique"]["kind"] == from_api["technique"]["kind"]
    assert _comparable(from_cli) == _comparable(from_api)

"""Every counterexample snippet in the committed report runs as printed (copy-paste reproducible)."""
import contextlib
import io
import json
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parent.parent / "reports" / "results.json"


def snippets() -> list:
    doc = json.loads(RESULTS.read_text(encoding="utf-8"))
    return [pytest.param(c["counterexample"]["snippet"], id=c["id"]) for c in doc["claims"]
            if isinstance(c.get("counterexample"), dict) and "snippet" in c["counterexample"]]


@pytest.mark.parametrize("snippet", snippets())
def test_counterexample_snippet_runs(snippet):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(snippet, "<snippet>", "exec"), {"__name__": "__snippet__"})
    assert out.getvalue().strip(), "a snippet must print what it reproduces"

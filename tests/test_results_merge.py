"""Nothing lost, round two: concurrent writers of one results file merge under a lock, a subset
run keeps the claims of catalogues it did not load, and a results write that fails is one line
(pytest's usage-error status) with the previous file intact."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gradcore.verify import results

from .cli_helpers import project, theorem

# Loaded by the miniature project's pytest: holds every writer between reading the previous
# results file and writing the new one until a second writer has read it too (or 6 s pass),
# so that two unlocked writers always overwrite each other and locked ones never do.
BARRIER = '''
import os, time
from pathlib import Path
from gradcore.verify import results

_assemble = results.assemble


def _held(*args, **kwargs):
    here = os.environ.get("GRADCORE_TEST_BARRIER")
    if here:
        Path(here, f"arrived-{os.getpid()}").touch()
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline and len(list(Path(here).glob("arrived-*"))) < 2:
            time.sleep(0.05)
    return _assemble(*args, **kwargs)


results.assemble = _held
'''


def pytest_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", *args, "--gradcore-results=out/results.json"]


def pytest_in(root: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(pytest_args(*args), cwd=root, capture_output=True, text=True, timeout=300, **kwargs)


def stamps(path: Path) -> dict[str, str]:
    return {c["id"]: c["measured_in"]["timestamp"] for c in results.read(path)["claims"]}


def test_two_concurrent_subset_runs_both_keep_their_claims(tmp_path):
    project(tmp_path)
    (tmp_path / "conftest.py").write_text(BARRIER, encoding="utf-8")
    assert pytest_in(tmp_path, "theorems").returncode == 0
    first = stamps(tmp_path / "out" / "results.json")
    time.sleep(1.1)   # later timestamps for the concurrent runs
    (tmp_path / "barrier").mkdir()
    env = dict(os.environ, GRADCORE_TEST_BARRIER=str(tmp_path / "barrier"))
    runs = [subprocess.Popen(pytest_args(f"theorems/test_t{i}.py"), cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in (1, 2)]
    outputs = [p.communicate(timeout=300)[0] for p in runs]
    assert [p.returncode for p in runs] == [0, 0], outputs
    after = stamps(tmp_path / "out" / "results.json")
    assert sorted(after) == ["T-01", "T-02", "T-03"]
    assert after["T-01"] > first["T-01"] and after["T-02"] > first["T-02"], "a concurrent run's claims were lost"
    assert after["T-03"] == first["T-03"]
    assert not [p.name for p in (tmp_path / "out").iterdir() if p.name != "results.json"]   # no lock or temp left


EXTRA = '''
[[claim]]
id = "X-01"
title = "a downstream claim"
statement = "9 is 9"
method = "symbolic"
expected_verdict = "verified"
[[claim.sources]]
file = "g.txt"
section = "s"
quote = "q"
'''


def test_a_subset_run_keeps_the_claims_of_a_catalogue_it_did_not_load(tmp_path):
    project(tmp_path)
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "x.toml").write_text(EXTRA, encoding="utf-8")
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "test_x.py").write_text(theorem(9).replace("T-09", "X-01"), encoding="utf-8")
    assert pytest_in(tmp_path, "theorems", "more", "--gradcore-catalogue=extra").returncode == 0
    before = results.read(tmp_path / "out" / "results.json")
    assert [c["id"] for c in before["claims"]] == ["T-01", "T-02", "T-03", "X-01"]
    proc = pytest_in(tmp_path, "theorems/test_t1.py")   # without the extra catalogue
    assert proc.returncode == 0, proc.stdout
    after = results.read(tmp_path / "out" / "results.json")
    assert [c["id"] for c in after["claims"]] == ["T-01", "T-02", "T-03", "X-01"]
    assert after["claims"][3] == before["claims"][3]
    assert after["not_run"] == [] and "3 kept from the previous file" in proc.stdout


def no_core_and_small_files() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512))


def test_a_results_write_that_fails_is_one_line_and_keeps_the_previous_file(tmp_path):
    project(tmp_path)
    assert pytest_in(tmp_path, "theorems").returncode == 0
    path = tmp_path / "out" / "results.json"
    before = path.read_bytes()
    assert len(before) > 512
    proc = pytest_in(tmp_path, "theorems/test_t1.py", preexec_fn=no_core_and_small_files,
                     env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    text = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, text
    assert "Traceback" not in text and "INTERNALERROR" not in text
    lines = [line for line in text.splitlines() if "cannot write" in line]
    assert len(lines) == 1 and "File too large" in lines[0] and str(path) in lines[0]
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]


def test_a_results_path_under_a_regular_file_is_one_line(tmp_path):
    project(tmp_path)
    (tmp_path / "blocker").write_text("x")
    proc = subprocess.run([sys.executable, "-m", "pytest", "theorems/test_t1.py",
                           "--gradcore-results=blocker/results.json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, text
    assert "Traceback" not in text and "INTERNALERROR" not in text
    assert len([line for line in text.splitlines() if "cannot create directory" in line]) == 1
    assert (tmp_path / "blocker").read_text() == "x"


def test_merging_keeps_foreign_entries_in_their_order():
    """Unit level: entries the run's catalogue does not know are carried over verbatim."""
    doc = json.loads((Path(__file__).resolve().parent.parent / "reports" / "results.json").read_text())
    previous = dict(doc, claims=doc["claims"][:3])
    foreign = results.foreign_entries(previous, known={doc["claims"][1]["id"]})
    assert foreign == [doc["claims"][0], doc["claims"][2]]


def test_invalid_files_set_aside_in_the_same_second_are_all_kept(tmp_path):
    path = tmp_path / "results.json"
    for content in ("{broken one", "{broken two", "{broken three"):
        path.write_text(content)
        assert results._previous(path)[0] is None and not path.exists()
    kept = sorted(p.read_text() for p in tmp_path.glob("results.json.invalid-*"))
    assert kept == ["{broken one", "{broken three", "{broken two"]

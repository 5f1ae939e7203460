"""Nothing lost: every file gradcore writes appears whole or not at all, with the umask's
permissions; a subset run never drops claims; a SIGKILL at any moment of `report`,
`guard --accept` or `verify` leaves the previous files intact or the new ones complete."""
from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gradcore.errors import UsageError
from gradcore import cli
from gradcore.verify import atomic, results

from .cli_helpers import project, small_results

ROOT = Path(__file__).resolve().parent.parent
PNG_START, PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"


@pytest.fixture
def results_file(tmp_path) -> Path:
    return small_results(tmp_path, 12, keep=lambda c: bool(c.get("series")))   # with figures to draw


@pytest.fixture
def umask():
    def set_(mask: int) -> None:
        os.umask(mask)
    old = os.umask(0o022)
    yield set_
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the atomic writer --------------------------------------------------------------------

@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_umask_permissions(tmp_path, umask, mask, expected):
    umask(mask)
    assert mode(atomic.write_text("x", tmp_path / "a.txt")) == expected
    source = tmp_path / "src"
    source.write_text("y")
    assert mode(atomic.copy(source, tmp_path / "b.txt")) == expected


def test_every_command_writes_readable_files(capsys, tmp_path, results_file, umask):
    assert cli.main(["report", str(results_file), "--out", str(tmp_path / "r.md")]) == 0
    assert cli.main(["guard", str(results_file), "--baseline", str(tmp_path / "b.json"), "--accept"]) == 0
    assert cli.main(["check", "tests.techniques_for_tests:lecun_normal", "--no-compare",
                     "--out", str(tmp_path / "chk")]) == 0
    written = [tmp_path / "r.md", tmp_path / "b.json", *tmp_path.glob("figures/r/*.png"), *tmp_path.glob("chk/*")]
    assert len(written) > 4 and all(mode(p) == 0o644 for p in written)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "t.txt"
    target.write_text("old")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text("ne")
        raise OSError(errno.ENOSPC, "disk full")
    with pytest.raises(UsageError, match=r"cannot write .*t\.txt: disk full"):   # one line, naming the target
        atomic.write_with(target, half_then_fail)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["t.txt"]


def test_impossible_targets_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="is a directory"):
        atomic.write_text("x", tmp_path)
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="cannot create directory"):
        atomic.write_text("x", tmp_path / "f" / "g.txt")


def test_same_file_sees_through_links_and_relative_paths(tmp_path, monkeypatch):
    a = tmp_path / "a.json"
    a.write_text("{}")
    (tmp_path / "link.json").symlink_to(a)
    monkeypatch.chdir(tmp_path)
    assert atomic.same_file(Path("a.json"), tmp_path / "link.json")
    assert atomic.same_file(Path("new.json"), tmp_path / "new.json")
    assert not atomic.same_file(a, tmp_path / "other.json")


# --- subset runs never drop claims --------------------------------------------------------

def pytest_in(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", *args, "--gradcore-results=out/results.json"],
                          cwd=root, capture_output=True, text=True, timeout=300)


def test_plain_pytest_on_one_file_keeps_every_other_claim_with_its_own_environment(tmp_path):
    project(tmp_path)
    assert pytest_in(tmp_path, "theorems").returncode == 0
    before = results.read(tmp_path / "out" / "results.json")
    time.sleep(1.1)   # a later timestamp for the subset run
    proc = pytest_in(tmp_path, "theorems/test_t2.py")
    assert proc.returncode == 0 and "2 kept from the previous file" in proc.stdout
    after = results.read(tmp_path / "out" / "results.json")
    assert [c["id"] for c in after["claims"]] == ["T-01", "T-02", "T-03"] and after["not_run"] == []
    old = {c["id"]: c["measured_in"] for c in before["claims"]}
    new = {c["id"]: c["measured_in"] for c in after["claims"]}
    assert new["T-01"] == old["T-01"] and new["T-03"] == old["T-03"]          # kept: measured then
    assert new["T-02"]["timestamp"] > old["T-02"]["timestamp"]                  # re-measured now
    assert after["environment"]["timestamp"] == new["T-02"]["timestamp"]       # the file block: this run
    assert after["environment"]["claims_measured"] == 1


def test_only_keeps_environments_too(tmp_path):
    project(tmp_path)
    assert pytest_in(tmp_path, "theorems").returncode == 0
    first = results.read(tmp_path / "out" / "results.json")
    time.sleep(1.1)
    assert pytest_in(tmp_path, "theorems", "--only=T-03").returncode == 0
    after = results.read(tmp_path / "out" / "results.json")
    assert after["claims"][0]["measured_in"] == first["claims"][0]["measured_in"]
    assert after["claims"][2]["measured_in"] != first["claims"][2]["measured_in"]


def test_an_invalid_previous_file_is_moved_aside_not_overwritten(tmp_path):
    project(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.json").write_text('{"schema": 1, "claims": "broken"}')
    proc = pytest_in(tmp_path, "theorems/test_t1.py")
    assert proc.returncode == 0 and "previous file was invalid" in proc.stdout
    aside = list((tmp_path / "out").glob("results.json.invalid-*"))
    assert len(aside) == 1 and aside[0].read_text() == '{"schema": 1, "claims": "broken"}'
    assert [c["id"] for c in results.read(tmp_path / "out" / "results.json")["claims"]] == ["T-01"]


# --- SIGKILL at several moments -----------------------------------------------------------

def gradcore(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gradcore.cli", *args], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def timed(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    assert gradcore(args, cwd).wait(timeout=300) in (0, 1)
    return time.perf_counter() - start


def kill_at(args: list[str], cwd: Path, delay: float) -> None:
    proc = gradcore(args, cwd)
    time.sleep(delay)
    try:
        os.killpg(proc.pid, signal.SIGKILL)   # the whole group: verify's pytest child too
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


def snapshot(directory: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in directory.rglob("*") if p.is_file() and not p.name.startswith(".")}


def assert_intact_or_complete(before: dict[Path, bytes], directory: Path) -> None:
    """Every earlier file still exists; each is byte-identical or a complete new version."""
    now = snapshot(directory)
    assert before.keys() <= now.keys()
    for path, data in now.items():
        if before.get(path) == data:
            continue
        assert data, f"{path} is empty"
        if path.suffix == ".png":
            assert data.startswith(PNG_START) and data.endswith(PNG_END), f"{path} is a truncated PNG"
        elif path.suffix == ".json":
            json.loads(data)
            if path.name.startswith("results"):
                results.read(path)
        elif path.suffix == ".md":
            assert b"## Environment" in data, f"{path} is a truncated report"


def delays(full: float) -> list[float]:
    """Moments spread over a run (most of a short run is interpreter and torch start-up)."""
    return [full * f for f in (0.25, 0.5, 0.75, 0.9, 0.97)]


def test_report_killed_at_any_moment(tmp_path, results_file):
    args = ["report", str(results_file), "--out", str(tmp_path / "verification.md")]
    full = timed(args, tmp_path)
    assert len(list(tmp_path.glob("figures/verification/*.png"))) >= 5
    for delay in delays(full):
        before = snapshot(tmp_path)
        kill_at(args, tmp_path, delay)
        assert_intact_or_complete(before, tmp_path)


def test_guard_accept_killed_at_any_moment(tmp_path):
    big = tmp_path / "results.json"
    big.write_bytes((ROOT / "reports" / "results.json").read_bytes())
    baseline = tmp_path / "baseline.json"
    doc = json.loads(big.read_text())
    doc["claims"] = doc["claims"][:1]
    old = json.dumps(doc).encode()
    args = ["guard", str(big), "--baseline", str(baseline), "--accept"]
    baseline.write_bytes(old)
    full = timed(args, tmp_path)   # the copy comes last, after reading and validating
    for f in (0.8, 0.93, 0.98, 1.01):
        baseline.write_bytes(old)
        kill_at(args, tmp_path, full * f)
        assert baseline.read_bytes() in (old, big.read_bytes())
    # at worst a kill leaves a stray temporary beside the baseline, never a partial baseline
    strays = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert all(n.startswith(".baseline.json.") and n.endswith(".tmp") for n in strays)


def test_verify_killed_at_any_moment(tmp_path):
    project(tmp_path, sleep=0.2)
    args = ["verify", "--theorems", "theorems", "--results", "out/results.json", "--no-techniques"]
    full = timed(args, tmp_path)
    assert len(results.read(tmp_path / "out" / "results.json")["claims"]) == 3
    for delay in (full * f for f in (0.5, 0.8, 0.95)):
        before = snapshot(tmp_path / "out")
        kill_at(args, tmp_path, delay)
        assert_intact_or_complete(before, tmp_path / "out")

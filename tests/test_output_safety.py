"""Where gradcore writes, and what a signal leaves behind: outputs are never special files,
symlinks, catalogue files or paths outside --out; SIGTERM/SIGINT mid-write leave no temporary;
`gradcore verify` passes SIGTERM/SIGINT on to pytest and waits for it."""
from __future__ import annotations

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
from gradcore.verify import atomic, figures, report

from .cli_helpers import CATALOGUE, project, run, small_results, theorem

ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


def one_line_error(err: str) -> bool:
    return err.startswith("gradcore: error:") and err.count("\n") == 1 and "Traceback" not in err


@pytest.fixture
def results_file(tmp_path) -> Path:
    return small_results(tmp_path, 4, keep=lambda c: bool(c.get("series")))


# --- special files, symlinks and impossible names as outputs ------------------------------

def special(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "chardev":
        if not ROOT_USER:
            pytest.skip("mknod of a character device needs root")
        try:
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))   # a second /dev/null
        except PermissionError:
            pytest.skip("mknod not permitted here")
    elif kind == "link-to-devnull":
        path.symlink_to(os.devnull)
    elif kind == "link-to-fd":
        path.symlink_to("/proc/self/fd/1")
    elif kind == "link-to-file":
        (tmp_path / "real.md").write_text("real")
        path.symlink_to(tmp_path / "real.md")
    return path


def unchanged(path: Path, kind: str) -> bool:
    st = path.lstat()
    if kind == "fifo":
        return stat.S_ISFIFO(st.st_mode)
    if kind == "chardev":
        return stat.S_ISCHR(st.st_mode)
    return stat.S_ISLNK(st.st_mode)


KINDS = ["fifo", "chardev", "link-to-devnull", "link-to-fd", "link-to-file"]


@pytest.mark.parametrize("kind", KINDS)
def test_special_files_and_symlinks_are_refused_as_outputs(tmp_path, kind):
    path = special(tmp_path, kind)
    with pytest.raises(UsageError, match="not a regular file"):
        atomic.write_text("x", path)
    assert unchanged(path, kind)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("kind", KINDS)
def test_report_refuses_special_outputs_before_drawing(capsys, tmp_path, results_file, kind):
    path = special(tmp_path, kind)
    status, _, err = run(capsys, "report", results_file, "--out", path)
    assert status == 2 and one_line_error(err) and "not a regular file" in err
    assert unchanged(path, kind) and not (tmp_path / "figures").exists()
    if kind == "link-to-file":
        assert (tmp_path / "real.md").read_text() == "real"


@pytest.mark.parametrize("name", ["bad\0name.md", "x" * 300 + ".md"])
def test_impossible_names_are_one_line(capsys, tmp_path, results_file, name):
    status, _, err = run(capsys, "report", results_file, "--format", "json", "--out", tmp_path / name)
    assert status == 2 and one_line_error(err)
    with pytest.raises(UsageError):
        atomic.write_text("x", tmp_path / name)


def test_report_out_onto_a_catalogue_file_is_refused(capsys, tmp_path, results_file):
    (tmp_path / "cat").mkdir()
    toml = tmp_path / "cat" / "t.toml"
    toml.write_text(CATALOGUE, encoding="utf-8")
    for fmt in ("md", "json"):
        status, _, err = run(capsys, "report", results_file, "--catalogue", tmp_path / "cat", "--format", fmt,
                             "--out", toml)
        assert status == 2 and one_line_error(err) and "catalogue" in err, err
    assert toml.read_text(encoding="utf-8") == CATALOGUE


@pytest.mark.parametrize("option", ["--results", "--report"])
def test_verify_onto_a_catalogue_file_is_refused_before_running(capsys, tmp_path, option):
    project(tmp_path)
    toml = tmp_path / "catalogue" / "t.toml"
    status, out, err = run(capsys, "verify", "--theorems", tmp_path / "theorems", "--catalogue-only",
                           "--catalogue", tmp_path / "catalogue", "--no-techniques", option, toml,
                           *(["--results", tmp_path / "out" / "r.json"] if option == "--report" else []))
    assert status == 2 and one_line_error(err) and "catalogue" in err
    assert toml.read_text(encoding="utf-8") == CATALOGUE and not (tmp_path / "out").exists()


@pytest.mark.parametrize("claim_id", ["../../evil", "/tmp/evil", "..", "A/B"])
def test_figure_names_cannot_leave_the_output_directory(capsys, tmp_path, results_file, claim_id):
    doc = json.loads(results_file.read_text(encoding="utf-8"))
    doc["claims"][0]["id"] = claim_id
    results_file.write_text(json.dumps(doc), encoding="utf-8")
    out = tmp_path / "a" / "b" / "r.md"
    status, _, err = run(capsys, "report", results_file, "--out", out)
    assert status == 2 and one_line_error(err)   # the schema refuses an id that is not like ACT-01 ...
    report.write_markdown(doc, out)              # ... and the renderer, given one anyway, stays inside --out
    figure_dir = out.parent / "figures" / "r"
    drawn = [p for p in tmp_path.rglob("*.png")]
    assert drawn and all(p.parent == figure_dir for p in drawn)
    assert not list(Path("/tmp").glob("evil-*.png"))


def test_sanitised_figure_names_stay_distinct():
    names = {figures.file_name(cid, "fig") for cid in ("A/B", "A-B", "A B", "A\\B", "A-B-")}
    assert len(names) == 5 and all("/" not in n and "\\" not in n for n in names)
    assert figures.file_name("ACT-01", "derivative (sigmoid)") == "ACT-01-derivative-sigmoid.png"   # as before
    assert len(figures.file_name("X" * 400, "y" * 400)) < 200


# --- a signal in the middle of a write ----------------------------------------------------

SELF_KILL = """
import os, signal, sys, time
from gradcore.verify import atomic

def produce(tmp):
    tmp.write_text("half")
    os.kill(os.getpid(), getattr(signal, sys.argv[2]))
    time.sleep(30)

atomic.write_with(sys.argv[1], produce)
"""


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_signal_mid_write_leaves_no_temporary(tmp_path, sig):
    target = tmp_path / "t.txt"
    target.write_text("old")
    proc = subprocess.run([sys.executable, "-c", SELF_KILL, str(target), sig], capture_output=True, timeout=60)
    assert proc.returncode == -getattr(signal, sig), proc.stderr   # still dies of the signal
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"] and target.read_text() == "old"


def test_a_programs_own_handler_still_decides_mid_write(tmp_path):
    """A handler the program installed runs as before (here it ends the program); the write is undone."""
    def stop(signum, frame):
        raise SystemExit(143)
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        with pytest.raises(SystemExit):
            atomic.write_with(tmp_path / "t.txt", lambda tmp: os.kill(os.getpid(), signal.SIGTERM))
        assert signal.getsignal(signal.SIGTERM) is stop
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert list(tmp_path.iterdir()) == []


def test_report_terminated_at_any_moment_leaves_no_temporary(tmp_path):
    results_file = small_results(tmp_path, 12, keep=lambda c: bool(c.get("series")))
    args = [sys.executable, "-m", "gradcore.cli", "report", str(results_file), "--out",
            str(tmp_path / "verification.md")]
    start = time.perf_counter()
    assert subprocess.run(args, capture_output=True, timeout=300).returncode == 0
    full = time.perf_counter() - start
    for f in (0.5, 0.7, 0.8, 0.9, 0.95):
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(full * f)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        strays = [p for p in tmp_path.rglob(".*") if p.name.endswith(".tmp")]
        assert not strays, f"SIGTERM at {f:.0%} left {strays}"


# --- `gradcore verify` interrupted --------------------------------------------------------

def children(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat_file.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found += kids
        frontier += kids
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def mtime(path: Path) -> int | None:
    return path.stat().st_mtime_ns if path.exists() else None


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_verify_passes_signals_on_to_pytest_and_waits(tmp_path, sig, status):
    project(tmp_path, sleep=3.0)
    first = tmp_path / "theorems" / "test_t1.py"   # says when pytest is running theorems
    first.write_text(theorem(1, sleep=3.0).replace("(claim):\n", "(claim):\n    open('started', 'w').close()\n"))
    parent = subprocess.Popen([sys.executable, "-m", "gradcore.cli", "verify", "--theorems", "theorems",
                               "--results", "out/results.json", "--no-techniques"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    kids: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (tmp_path / "started").exists():
            time.sleep(0.1)
        kids = children(parent.pid)
        assert kids, "pytest never started"
        os.kill(parent.pid, sig)   # the parent alone, as `kill` or a job runner would
        out, err = parent.communicate(timeout=120)
        assert parent.returncode == status, err
        assert not [k for k in kids if alive(k)], "a child of `gradcore verify` outlived it"
        assert "Traceback" not in err
        stamp = mtime(tmp_path / "out" / "results.json")
        time.sleep(3.0)
        assert mtime(tmp_path / "out" / "results.json") == stamp, "the results file was rewritten after `gradcore verify` ended"
        assert not [p for p in tmp_path.rglob(".*") if p.name.endswith((".tmp", ".lock"))]
    finally:
        try:
            os.killpg(parent.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass

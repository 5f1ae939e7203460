"""Hostile use, round three (issue 23): odd argv, environment, inputs that are no files, strange
but schema-valid results files, odd techniques and odd keyword arguments. Every case ends in the
README's exit code (0 holds, 1 a verification failed, 2 bad usage or input, 3 gradcore failed)
with one line on stderr, never a traceback, a hang or a silently wrong verdict.
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from gradcore.testing import check_technique
from gradcore.errors import CheckError
from gradcore import cli
from gradcore.verify import figures, report, results

from .cli_helpers import small_results
from .hostile_techniques import detached, mutates_tracked

ROOT = Path(__file__).resolve().parent.parent
CLAIMS = ROOT / "gradcore" / "claims"
TECHNIQUES = ROOT / "reports" / "techniques.json"


def gradcore(capsys, *argv) -> tuple[int, str, str]:
    """``gradcore ARGV`` in this process (argparse's own exit included): status, stdout, stderr."""
    try:
        status = cli.main([str(a) for a in argv])
    except SystemExit as e:
        status = e.code
    out = capsys.readouterr()
    return status, out.out, out.err


def one_line(err: str) -> bool:
    return err.count("\n") == 1 and err.startswith("gradcore") and "Traceback" not in err


def _doc(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    """The paths the table's ``{name}`` placeholders stand for."""
    r = small_results(tmp_path)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    return {"results": r, "fifo": fifo, "techniques": TECHNIQUES, "claims": CLAIMS, "tmp": tmp_path}


# --- one table: argv → exit code and what the one line says --------------------------------

CASES = [
    # empty strings: Path("") would be the current directory
    (["report", ""], 2, "empty string"),
    (["list", "--results", ""], 2, "empty string"),
    (["show", "ACT-01", "--results", ""], 2, "empty string"),
    (["guard", "{results}", "--baseline", ""], 2, "empty string"),
    (["report", "{results}", "--out", ""], 2, "empty string"),
    (["show", ""], 2, "unknown claim id ''"),
    (["check", ""], 2, "expected MODULE:OBJECT"),
    (["list", "--topic", ""], 2, "unknown topic ''"),        # printed nothing, exit 0
    (["list", "--source", ""], 2, "--source is empty"),      # matched every claim
    # numbers and selections
    (["verify", "-n", "-1"], 2, "expected a number >= 0"),
    (["verify", "--only", ","], 2, "expected comma-separated claim ids"),   # pytest status 5 before
    (["verify", "--only", ""], 2, "expected comma-separated claim ids"),    # ran every theorem before
    (["verify", "--only", " , "], 2, "expected comma-separated claim ids"),
    # unicode ids, a catalogue named twice
    (["show", "ÄCT-01"], 2, "unknown claim id 'ÄCT-01'"),
    (["show", "ACT-01\u200b"], 2, "unknown claim id"),
    (["show", "ACT-01", "--catalogue", "{claims}", "--catalogue", "{claims}"], 0, ""),
    (["list", "--catalogue", "{claims}", "--catalogue", "{claims}", "--topic", "attention"], 0, ""),
    # inputs that are no regular files (gap 1): a hang or an endless read before
    (["report", "/dev/zero"], 2, "character device, not a regular file"),
    (["report", "{fifo}"], 2, "FIFO, not a regular file"),
    (["guard", "{results}", "--baseline", "{fifo}"], 2, "FIFO, not a regular file"),
    (["list", "--results", "/dev/zero"], 2, "not a regular file"),
    # a technique results file where claims are expected (gap 5): all "not run" before
    (["list", "--results", "{techniques}"], 2, "holds technique checks"),
    (["show", "ACT-01", "--results", "{techniques}"], 2, "holds technique checks"),
    # the guard comparing a file with itself always passed
    (["guard", "{results}", "--baseline", "{results}"], 2, "is the baseline file itself"),
]


@pytest.mark.parametrize("argv, status, said", CASES, ids=[" ".join(a) or "-" for a, _, _ in CASES])
def test_hostile_argv(capsys, files, argv, status, said):
    argv = [a.format(**files) for a in argv]
    got, out, err = gradcore(capsys, *argv)
    assert got == status, err
    if status == 2:
        assert one_line(err) and said in err, err
    else:
        assert err == "" and out


def _run_fifo_report_in_a_child(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gradcore.cli", "report", str(path)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_fifo_results_file_does_not_hang_a_real_process(tmp_path):
    fifo = tmp_path / "r.json"
    os.mkfifo(fifo)
    done = _run_fifo_report_in_a_child(fifo)   # blocked in open() forever before (the timeout fails it)
    assert done.returncode == 2 and "FIFO" in done.stderr and done.stderr.count("\n") == 1


def test_an_absurdly_large_results_file_is_refused_unread(capsys, results_file_big):
    status, _, err = gradcore(capsys, "report", results_file_big, "--format", "summary")
    assert status == 2 and one_line(err) and "more than 0 MiB" in err


@pytest.fixture
def results_file_big(tmp_path, monkeypatch) -> Path:
    """A results file over the size limit (the limit lowered, rather than writing 256 MiB)."""
    monkeypatch.setattr(results, "MAX_BYTES", 1000)
    return small_results(tmp_path)


# --- results files that are schema-valid but strange ------------------------------------

def _zero_claims(doc):
    doc["claims"] = []


def _no_constants(doc):
    for c in doc["claims"]:
        c["constants"] = []
        for r in c["devices"].values():
            r["constants"] = []


def _many_constants(doc):
    first = doc["claims"][0]["constants"][0]
    doc["claims"][0]["constants"] = [dict(first, name=f"c{i}") for i in range(3000)]


def _zero_devices(doc):
    doc["claims"][0]["devices"] = {}


STRANGE = {"zero claims": (_zero_claims, 0), "no constants": (_no_constants, 0),
           "3000 constants": (_many_constants, 0), "a claim with zero devices": (_zero_devices, 2)}


@pytest.mark.parametrize("strange", STRANGE)
@pytest.mark.parametrize("command", ["md", "json", "summary", "list", "show", "guard"])
def test_strange_results_files(capsys, tmp_path, strange, command):
    change, status = STRANGE[strange]
    path = small_results(tmp_path)
    doc = _doc(path)
    change(doc)
    _write(path, doc)
    baseline = _write(tmp_path / "baseline.json", doc)
    argv = {"md": ["report", path, "--out", tmp_path / "v.md"],
            "json": ["report", path, "--format", "json", "--out", tmp_path / "v.json"],
            "summary": ["report", path, "--format", "summary"],
            "list": ["list", "--results", path], "show": ["show", "ACT-01", "--results", path],
            "guard": ["guard", path, "--baseline", baseline]}[command]
    got, out, err = gradcore(capsys, *argv)
    assert got == status, err
    assert (one_line(err) and "should be non-empty" in err) if status == 2 else err == ""


# --- environment ----------------------------------------------------------------------------

def test_without_home(capsys, monkeypatch, files):
    monkeypatch.delenv("HOME", raising=False)
    status, out, _ = gradcore(capsys, "report", files["results"], "--format", "summary")
    assert status == 0 and "claims" in out


def test_a_crash_with_no_usable_temporary_directory_is_still_one_line(capsys, monkeypatch, files):
    """TMPDIR naming a file and /tmp unwritable: gettempdir raises, and the crash log must not."""
    def bug(doc):
        raise ZeroDivisionError("a bug")

    def nowhere():
        raise FileNotFoundError(2, "No usable temporary directory found")
    monkeypatch.setattr(report, "terminal_summary", bug)
    monkeypatch.setattr(tempfile, "gettempdir", nowhere)
    status, _, err = gradcore(capsys, "report", files["results"], "--format", "summary")
    assert status == 3 and err.count("\n") == 1 and "internal error: ZeroDivisionError" in err
    assert os.devnull in err


def test_tmpdir_naming_a_file(capsys, monkeypatch, files):
    monkeypatch.setenv("TMPDIR", str(files["results"]))
    monkeypatch.setattr(tempfile, "tempdir", None)   # gettempdir reads TMPDIR again
    status, out, _ = gradcore(capsys, "report", files["results"], "--out", files["tmp"] / "v.md")
    assert status == 0 and "wrote" in out


def test_a_read_only_working_directory_is_refused_before_verifying(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    status, _, err = gradcore(capsys, "verify", "--theorems", ROOT / "theorems", "--only", "ACT-01",
                              "--results", "results.json")
    assert status == 2 and one_line(err) and "cannot be written" in err
    assert not (tmp_path / "results.json").exists()


# --- report gaps 2-4 ------------------------------------------------------------------------

def _with_extreme_curve(tmp_path: Path) -> Path:
    path = small_results(tmp_path, n=1, keep=lambda c: bool(c.get("series")))
    doc = _doc(path)
    doc["claims"][0]["series"][0].update(x=[1, 2], y=[1e308, -1e308])
    return _write(path, doc)


def test_a_curve_beyond_what_matplotlib_can_place_is_clipped_and_said(capsys, tmp_path):
    """Gap 2: ValueError from matplotlib's arange, exit 3, before."""
    path = _with_extreme_curve(tmp_path)
    status, out, err = gradcore(capsys, "report", path, "--out", tmp_path / "v.md")
    assert status == 0 and "(1 figures)" in out, err
    assert "2 value(s) beyond ±1e+100 are not drawn" in (tmp_path / "v.md").read_text(encoding="utf-8")


def test_a_figure_matplotlib_still_refuses_is_skipped_with_a_note(capsys, tmp_path, monkeypatch):
    def refuse(*args):
        raise ValueError("arange: cannot compute length")
    monkeypatch.setattr(figures, "_render", refuse)
    path = small_results(tmp_path, n=1, keep=lambda c: bool(c.get("series")))
    status, out, _ = gradcore(capsys, "report", path, "--out", tmp_path / "v.md")
    assert status == 0 and "(0 figures)" in out
    assert "not drawn: matplotlib could not draw it (ValueError" in (tmp_path / "v.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("path", ["claims", "techniques"])
def test_report_json_to_a_non_utf8_stdout_is_valid_json(tmp_path, path):
    """Gap 3: ensure_ascii=False printed 😀 as the backslash-replaced \\U0001f600, which is no JSON."""
    source = small_results(tmp_path, n=1) if path == "claims" else TECHNIQUES
    doc = _doc(source)
    doc["environment"]["platform"] = "Linux 😀 é"
    source = _write(tmp_path / "r.json", doc)
    done = subprocess.run([sys.executable, "-m", "gradcore.cli", "report", str(source), "--format", "json"],
                          capture_output=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "ascii"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["environment"]["platform"] == "Linux 😀 é"


@pytest.mark.parametrize("source", ["claims", "techniques"])
def test_report_summary_is_written_to_out(capsys, tmp_path, source):
    """Gap 4: --out was silently ignored with --format summary."""
    path = small_results(tmp_path) if source == "claims" else TECHNIQUES
    out_file = tmp_path / "summary.txt"
    status, out, _ = gradcore(capsys, "report", path, "--format", "summary", "--out", out_file)
    assert status == 0 and f"wrote {out_file}" in out
    assert "verified" in out_file.read_text(encoding="utf-8") or "violated" in out_file.read_text(encoding="utf-8")
    status, _, err = gradcore(capsys, "report", path, "--format", "summary", "--out", path)
    assert status == 2 and one_line(err) and "refusing to overwrite" in err


# --- techniques: odd objects (gradcore check) and odd keyword arguments -------------------

class _CallRaises:
    def __call__(self, x):
        raise RuntimeError("boom")


def _generator(x):
    yield torch.tanh(x)


TECHNIQUE_CASES = [
    (_CallRaises(), "RuntimeError: boom"),
    (_generator, "returned generator, expected a Tensor"),
    (detached, "returns a tensor detached from its input: gradcore cannot differentiate it"),   # gap 7
    (torch.nn.init.zeros_, "mutates its input"),                                               # gap 8: still refused
]


@pytest.mark.parametrize("obj, said", TECHNIQUE_CASES, ids=["__call__ raises", "generator", "detached", "zeros_"])
def test_techniques_that_cannot_be_checked(obj, said):
    with pytest.raises(CheckError, match=said) as e:
        check_technique(obj, kind="activation", compare=False)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("obj", [lambda x: torch.tanh(x), functools.partial(torch.clamp, min=-1.0, max=1.0)],
                         ids=["lambda", "partial"])
def test_a_lambda_and_a_partial_are_measured(obj):
    result = check_technique(obj, kind="activation", compare=False)
    assert not result.unmeasured and {"derivative-bound", "saturation", "transfer-factor"} <= {
        r.clause for r in result.results}


BAD_KWARGS = [
    ({"seed": "a"}, "seed must be a whole number"), ({"seed": 1.5}, "seed must be a whole number"),
    ({"seed": 2 ** 70}, "seed must be a whole number"), ({"seed": -1}, "seed must be a whole number"),
    ({"seed": True}, "seed must be a whole number"),
    ({"name": 123}, "name must be a one-line string"), ({"name": "a\nb"}, "name must be a one-line string"),
    ({"compare": "yes"}, "compare must be True or False"),
    ({"kind": 3}, "unknown kind 3"), ({"device": None}, "unknown device None"),
    ({"time_limit_s": float("nan")}, "time limit must be"),
]


@pytest.mark.parametrize("kwargs, said", BAD_KWARGS, ids=[repr(k) for k, _ in BAD_KWARGS])
def test_check_technique_with_bad_keyword_arguments(kwargs, said):
    """Each is refused before measuring (a bad seed used to turn every clause 'unmeasured')."""
    with pytest.raises(CheckError, match=said) as e:
        check_technique(torch.tanh, **{"kind": "activation", **kwargs})
    assert "\n" not in str(e.value)


def test_check_technique_under_no_grad_measures_gradients():
    """Under the caller's no_grad every f' was 0: λ = 0 'violated', saturation unmeasured."""
    with torch.no_grad():
        result = check_technique(torch.tanh, kind="activation", compare=False)
    verdicts = {r.clause: r.verdict for r in result.results}
    assert {k: verdicts[k] for k in ("derivative-bound", "saturation", "transfer-factor")} == {
        "derivative-bound": "holds", "saturation": "violated", "transfer-factor": "holds"}


def _constants(result) -> dict:
    return {(r.clause, k): getattr(v, "value", v) for r in result.results for k, v in r.constants.items()}


def test_an_inplace_relu_is_measured_on_a_copy_like_relu():
    """Gap 8: refused as 'mutates its input' before. Same function, same seeds, same process:
    the constants are bit-identical to nn.ReLU()'s, so == is the right comparison here."""
    inplace = check_technique(torch.nn.ReLU(inplace=True), kind="activation", compare=False)
    plain = check_technique(torch.nn.ReLU(), kind="activation", compare=False)
    assert inplace.ok and _constants(inplace) == _constants(plain)
    snippet = inplace.results[0].constants["sup|f'| (search)"].reproduction
    assert "f = Given(OnCopy(f), 'f')" in snippet


def test_a_tracked_inplace_write_is_measured_as_the_function_of_its_input():
    """x.mul_(0.5) then tanh: f(x) = tanh(x / 2), so sup |f'| = 0.5 (measured on a copy)."""
    result = check_technique(mutates_tracked, kind="activation", compare=False)
    bound = next(r for r in result.results if r.clause == "derivative-bound")
    assert abs(bound.constants["sup|f'| (search)"].value - 0.5) < 1e-6


def test_a_constant_activation_is_not_called_detached():
    """A constant f really has f' = 0; only a detached f whose value moves is refused."""
    from gradcore.verify.check import settings_for
    from gradcore.verify.contracts import activation

    fn = activation.smoke(lambda x: torch.zeros_like(x) + 0.5, settings_for())
    assert callable(fn)
    with pytest.raises(CheckError, match="detached"):
        activation.smoke(detached, settings_for())


def test_the_catalogue_loader_shares_the_regular_file_check(capsys, tmp_path):
    (tmp_path / "c.toml").symlink_to("/dev/zero")
    status, _, err = gradcore(capsys, "list", "--catalogue", tmp_path)
    assert status == 2 and one_line(err) and "c.toml: cannot be read: it is a character device" in err


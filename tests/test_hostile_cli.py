"""The command line under careless or hostile use: the documented exit code, one line on
stderr, never a traceback, and no file lost.

Exit codes: 0 holds, 1 a verification failed, 2 bad usage or input, 3 gradcore itself failed.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gradcore.errors import InputError, MeasurementError
from gradcore.measure import Given
from gradcore import cli
from gradcore.measure import profiles
from gradcore.verify import atomic
from gradcore.verify.contracts import Clause, activation

from .cli_helpers import project, run, small_results, theorem

ROOT = Path(__file__).resolve().parent.parent
SPEC = "tests.hostile_techniques"
ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def results_file(tmp_path) -> Path:
    return small_results(tmp_path)


def one_line_error(err: str) -> bool:
    return err.startswith("gradcore: error:") and err.count("\n") == 1 and "Traceback" not in err


def edit(path: Path, change) -> Path:
    doc = json.loads(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")   # NaN/inf become NaN/Infinity
    return path


# --- data loss: an output never replaces an input -----------------------------------------

@pytest.mark.parametrize("fmt", ["md", "json"])
def test_report_out_onto_its_input_is_refused(capsys, results_file, fmt):
    before = results_file.read_bytes()
    status, _, err = run(capsys, "report", results_file, "--format", fmt, "--out", results_file)
    assert status == 2 and one_line_error(err) and "refusing to overwrite" in err
    assert results_file.read_bytes() == before


def test_verify_report_onto_results_is_refused_before_running(capsys, results_file):
    before = results_file.read_bytes()
    status, _, err = run(capsys, "verify", "--only", "ACT-01", "--theorems", ROOT / "theorems",
                         "--results", results_file, "--report", results_file)
    assert status == 2 and one_line_error(err) and "--report" in err
    assert results_file.read_bytes() == before


def test_verify_cuda_without_cuda_is_an_error_not_a_stale_rerender(capsys, results_file):
    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    before = results_file.read_bytes()
    status, out, err = run(capsys, "verify", "--device", "cuda", "--theorems", ROOT / "theorems",
                           "--results", results_file)
    assert status == 2 and one_line_error(err) and "cuda" in err and "wrote" not in out
    assert results_file.read_bytes() == before


def test_verify_exit_codes_when_nothing_new_was_measured(tmp_path):
    """Every selected theorem failing is a verification failure (1); nothing selected is bad usage (2);
    neither re-renders the stale results file as this run's."""
    project(tmp_path)
    verify = [sys.executable, "-m", "gradcore.cli", "verify", "--theorems", "theorems",
              "--results", "out/results.json", "--no-techniques"]
    assert subprocess.run(verify, cwd=tmp_path, capture_output=True, timeout=300).returncode == 0
    before = (tmp_path / "out" / "results.json").read_bytes()
    (tmp_path / "theorems" / "test_t1.py").write_text(theorem(1, measured=7), encoding="utf-8")
    failed = subprocess.run(verify + ["--only", "T-01"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert failed.returncode == 1 and "not rewritten" in failed.stderr and "wrote" not in failed.stdout
    (tmp_path / "only1").mkdir()
    (tmp_path / "only1" / "test_t1.py").write_text(theorem(1), encoding="utf-8")
    nothing = subprocess.run(verify + ["--theorems", "only1", "--only", "T-02"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)   # selects no theorem at all
    assert nothing.returncode == 2 and "Traceback" not in nothing.stderr and "wrote" not in nothing.stdout
    assert (tmp_path / "out" / "results.json").read_bytes() == before


# --- the guard cannot be silenced by the files it checks ----------------------------------

@pytest.mark.parametrize("value", [math.inf, math.nan, -1.0])
@pytest.mark.parametrize("which", ["current", "baseline"])
def test_non_finite_or_negative_guard_tolerance_is_an_input_error(capsys, results_file, tmp_path, value, which):
    baseline = tmp_path / "baseline.json"
    baseline.write_bytes(results_file.read_bytes())
    target = results_file if which == "current" else baseline

    def poison(doc):
        for c in doc["claims"]:
            for k in c["constants"] + [k for d in c["devices"].values() for k in d["constants"]]:
                k["guard_tolerance"] = value
                k["measured"] = 123456.0   # a change the guard must not miss
    edit(target, poison)
    status, out, err = run(capsys, "guard", results_file, "--baseline", baseline)
    assert status == 2 and one_line_error(err) and "guard_tolerance" in err and "match" not in out


@pytest.mark.parametrize("change, field", [
    (lambda d: d["claims"][0].update(verdict="maybe"), "verdict"),
    (lambda d: d["claims"][0]["constants"][0].update(measured=float("nan")), "measured"),
    (lambda d: d["claims"][0]["constants"][0].update(measured="banana"), "measured"),
    (lambda d: d["claims"][0]["constants"][0].update(claimed={"x": 1}), "claimed"),
    (lambda d: d.update(claims=None), "claims"),
    (lambda d: d.update(claims=["ACT-01", "ACT-02"]), "claim #0"),
    (lambda d: d["claims"][0].update(constants={"a": 1}), "constants"),
    (lambda d: d["claims"][0].pop("title"), "title"),
    (lambda d: d["claims"][0].pop("topic"), "topic"),
])
@pytest.mark.parametrize("command", [["report"], ["report", "--format", "summary"], ["guard"], ["list", "--results"],
                                     ["show", "ACT-01", "--results"]])
def test_malformed_results_are_one_line_exit_2(capsys, results_file, tmp_path, change, field, command):
    edit(results_file, change)
    argv = command + [results_file]
    if command == ["guard"]:
        argv += ["--baseline", results_file]
    status, out, err = run(capsys, *argv)
    assert status == 2 and one_line_error(err) and field in err
    assert "✅" not in out and "maybe" not in out


@pytest.mark.parametrize("content", [b"\xff\xfe not utf-8", b"", b"[" * 100000, b'{"schema": 1, "claims": '])
def test_unreadable_results_files(capsys, tmp_path, content):
    path = tmp_path / "r.json"
    path.write_bytes(content)
    status, _, err = run(capsys, "report", path, "--format", "summary")
    assert status == 2 and one_line_error(err)


def test_a_directory_as_results_file(capsys, tmp_path):
    status, _, err = run(capsys, "report", tmp_path)
    assert status == 2 and one_line_error(err) and "directory" in err


@pytest.mark.skipif(ROOT_USER, reason="root reads files whatever their mode")
def test_a_results_file_without_read_permission(capsys, results_file):
    results_file.chmod(0)
    status, _, err = run(capsys, "report", results_file)
    assert status == 2 and one_line_error(err) and "cannot be read" in err


# --- bad output targets -------------------------------------------------------------------

def test_report_out_targets(capsys, results_file, tmp_path):
    status, _, err = run(capsys, "report", results_file, "--out", tmp_path)   # a directory
    assert status == 2 and one_line_error(err) and "directory" in err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    status, _, err = run(capsys, "report", results_file, "--out", blocker / "sub" / "r.md")   # parent is a file
    assert status == 2 and one_line_error(err)
    status, out, _ = run(capsys, "report", results_file, "--out", tmp_path / "new" / "dir" / "r.md")   # missing: made
    assert status == 0 and (tmp_path / "new" / "dir" / "r.md").is_file()


@pytest.mark.skipif(ROOT_USER, reason="root writes into read-only directories")
def test_report_into_a_read_only_directory(capsys, results_file, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    status, _, err = run(capsys, "report", results_file, "--out", ro / "r.md")
    assert status == 2 and one_line_error(err)


def test_guard_accept_onto_a_directory_or_impossible_path(capsys, results_file, tmp_path):
    status, _, err = run(capsys, "guard", results_file, "--baseline", tmp_path, "--accept")
    assert status == 2 and one_line_error(err)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    status, _, err = run(capsys, "guard", results_file, "--baseline", blocker / "b.json", "--accept")
    assert status == 2 and one_line_error(err) and blocker.read_text() == "x"


def test_guard_accept_of_an_invalid_results_file_keeps_the_baseline(capsys, results_file, tmp_path):
    baseline = tmp_path / "b.json"
    baseline.write_bytes(results_file.read_bytes())
    edit(results_file, lambda d: d["claims"][0].update(verdict="maybe"))
    status, _, err = run(capsys, "guard", results_file, "--baseline", baseline, "--accept")
    assert status == 2 and one_line_error(err)
    assert json.loads(baseline.read_text())["claims"][0]["verdict"] != "maybe"


def test_verify_results_targets(capsys, tmp_path):
    status, _, err = run(capsys, "verify", "--theorems", ROOT / "theorems", "--results", tmp_path)
    assert status == 2 and one_line_error(err) and "directory" in err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    status, _, err = run(capsys, "verify", "--theorems", ROOT / "theorems", "--results", blocker / "r.json")
    assert status == 2 and one_line_error(err) and "cannot be written" in err


def test_check_out_is_a_file(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    status, _, err = run(capsys, "check", "tests.techniques_for_tests:swish", "--out", blocker, "--no-compare")
    assert status == 2 and one_line_error(err) and "not a directory" in err and blocker.read_text() == "x"


# --- arguments and environment ------------------------------------------------------------

@pytest.mark.parametrize("workers", ["-3", "x", "1.5"])
def test_bad_worker_counts(capsys, workers):
    with pytest.raises(SystemExit) as e:
        cli.main(["verify", f"-n={workers}"])
    assert e.value.code == 2 and "expected a number >= 0" in capsys.readouterr().err


def test_a_bogus_profile_in_the_environment(monkeypatch, capsys, pytester):
    monkeypatch.setenv("GRADCORE_PROFILE", "bogus")
    with pytest.raises(InputError, match="GRADCORE_PROFILE='bogus'"):
        profiles.selected()
    pytester.makeini("[pytest]\naddopts = -p gradcore.verify.plugin\n")
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "GRADCORE_PROFILE='bogus'" in result.stderr.str() and "Traceback" not in result.stderr.str()


def test_an_unexpected_exception_is_exit_3_with_a_log(capsys, monkeypatch):
    def broken(args):
        raise KeyError("gradcore bug")
    monkeypatch.setattr(cli, "cmd_list", broken)
    status, _, err = run(capsys, "list")
    assert status == 3 and err.count("\n") == 1 and "Traceback" not in err
    log = Path(err.split("traceback in ")[1].split(";")[0])
    assert "KeyError: 'gradcore bug'" in log.read_text() and "Traceback" in log.read_text()
    log.unlink()


def test_the_console_script_never_prints_a_traceback(tmp_path):
    """Through the installed entry point: bad input → 2 and one line."""
    bad = tmp_path / "r.json"
    bad.write_text('{"schema": 1, "environment": {"devices": {}}, "claims": [{"id": "X"}]}')
    proc = subprocess.run([sys.executable, "-m", "gradcore.cli", "report", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


# --- gradcore check -----------------------------------------------------------------------

@pytest.mark.parametrize("module", ["tests.hostile_exit0", "tests.hostile_exit3"])
def test_check_of_a_module_that_exits_on_import(capsys, module):
    status, out, err = run(capsys, "check", f"{module}:f")
    assert status == 2 and one_line_error(err) and "sys.exit" in err


def test_check_of_a_technique_that_calls_sys_exit(capsys, tmp_path):
    status, _, err = run(capsys, "check", f"{SPEC}:exits", "--kind", "activation", "--no-compare")
    assert status == 2 and one_line_error(err) and "sys.exit(3)" in err
    status, out, _ = run(capsys, "check", f"{SPEC}:exits_on_big_inputs", "--kind", "activation", "--no-compare",
                         "--out", tmp_path)
    assert status == 1 and "sys.exit(0)" in out   # the technique failed inside a clause: a violation


@pytest.mark.parametrize("name", ["huge", "expo"])
def test_exploding_gradients_are_explosion_not_zero(capsys, tmp_path, name):
    status, out, _ = run(capsys, "check", f"{SPEC}:{name}", "--no-compare", "--out", tmp_path)
    assert status == 1
    doc = json.loads((tmp_path / f"{name}.json").read_text())
    transfer = next(c for c in doc["clauses"] if c["id"] == "transfer-factor")
    lam = next(k for k in transfer["constants"] if k["name"] == "lambda")
    assert transfer["verdict"] == "violated" and lam["measured"] == "inf"


def test_nan_gradient_norms_through_depth_are_explosion():
    from gradcore.measure.transfer import transfer_factor

    def goes_nan(h):
        return h * float("nan")

    lam = transfer_factor(activation=Given(goes_nan, "f"), init="xavier_normal", width=4, depth=11, batch=2,
                          seeds=2)
    assert (lam.value, lam.interval) == (math.inf, (math.inf, math.inf))


def test_a_norm_that_goes_nan_with_depth_is_not_lambda_zero():
    from gradcore.testing import check_technique

    res = check_technique(__import__(SPEC, fromlist=["x"]).NaNBeyondDepth, kind="norm")
    for r in res.results:
        for key, value in r.constants.items():
            if key.startswith("lambda") and isinstance(value, float):
                assert value != 0.0, (r.clause, key)


def test_nan_outside_the_smoke_range_is_found(capsys):
    status, _, err = run(capsys, "check", f"{SPEC}:nan_beyond_five", "--kind", "activation", "--no-compare")
    assert status == 2 and one_line_error(err) and "x = 5.01" in err


def test_a_constant_activation_is_measured_not_crashed(tmp_path):
    from gradcore.testing import check_technique

    res = check_technique(__import__(SPEC, fromlist=["x"]).constant, kind="activation")
    verdicts = {r.clause: r.verdict for r in res.results}
    assert verdicts["derivative-bound"] == "holds"                 # f' = 0 ≤ 1
    assert verdicts["saturation"] == "violated"                   # f' = 0 on both tails
    assert verdicts["transfer-factor"] == "violated"              # the gradient vanishes: λ = 0
    assert all("raised" not in r.note and r.verdict != "unmeasured" for r in res.results)


def test_an_activation_that_raises_with_kind_given(capsys):
    status, _, err = run(capsys, "check", f"{SPEC}:raises", "--kind", "activation", "--no-compare")
    assert status == 2 and one_line_error(err) and "always fails" in err


def test_a_technique_raising_inside_a_clause_violates_it():
    from gradcore.testing import check_technique

    res = check_technique(__import__(SPEC, fromlist=["x"]).raises_on_big_inputs, kind="activation")
    bound = next(r for r in res.results if r.clause == "derivative-bound")
    assert bound.verdict == "violated" and "too many inputs" in bound.note


def _gradcore_error(subject, settings):
    raise MeasurementError("the search found no finite value")


@pytest.mark.parametrize("measure, reason", [
    (_gradcore_error, "the search found no finite value"),
    # an exception raised by library code alone (no frame of the technique's): torch.zeros(subject, settings)
    (torch.zeros, "gradcore failed while measuring: TypeError"),
])
def test_gradcore_failures_inside_a_clause_are_unmeasured_exit_2(capsys, monkeypatch, tmp_path, measure, reason):
    clause = Clause("broken", ("ACT-03",), "a clause gradcore cannot measure", measure)
    monkeypatch.setattr(activation.ActivationContract, "clauses", (clause,))
    status, out, _ = run(capsys, "check", "tests.techniques_for_tests:swish", "--no-compare", "--out", tmp_path)
    assert status == 2 and "could not be measured" in out and reason in out and "violated" not in out.split("\n")[0]
    doc = json.loads((tmp_path / "swish.json").read_text())
    assert doc["ok"] is False and doc["unmeasured"] == ["broken"] and doc["violations"] == []


def test_a_technique_that_hangs_is_stopped_by_the_time_limit(capsys, tmp_path):
    import time

    start = time.perf_counter()
    status, out, _ = run(capsys, "check", f"{SPEC}:slow_on_big_inputs", "--kind", "activation", "--no-compare",
                         "--time-limit", "20", "--out", tmp_path)
    assert time.perf_counter() - start < 120
    assert status == 2 and "time limit of 20 s" in out
    doc = json.loads((tmp_path / "slow_on_big_inputs.json").read_text())
    assert doc["unmeasured"] == ["derivative-bound"] and doc["violations"] == []


# --- issue 23 §3: inputs that ended in exit 3 although README promises exit 2 ---------------

ALL_READERS = [["report", "{r}", "--format", "summary"], ["report", "{r}", "--out", "{o}"], ["guard", "{r}"],
               ["list", "--results", "{r}"], ["show", "ACT-01", "--results", "{r}"]]


def _every_constant(doc):
    for c in doc["claims"]:
        yield from c["constants"]
        for d in c["devices"].values():
            yield from d["constants"]


def _argv(command, results, tmp_path):
    argv = [a.format(r=results, o=tmp_path / "o.md") for a in command]
    return argv + (["--baseline", results] if command[0] == "guard" else [])


def _write_raw(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("change, field", [
    (lambda d: [k.update(kind="rounding", bound=None) for k in _every_constant(d)], "bound"),
    (lambda d: [k.update(kind="statistical", interval=[None, None]) for k in _every_constant(d)], "interval[0]"),
    (lambda d: d["claims"][0]["test"].pop("line"), "test"),
    (lambda d: d["claims"][0].update(id="ACT-01\x00"), "field id"),
    (lambda d: d["claims"][0].update(counterexample={"snippet": None}), "snippet"),
])
@pytest.mark.parametrize("command", ALL_READERS)
def test_results_the_commands_cannot_handle_are_exit_2(capsys, results_file, tmp_path, change, field, command):
    edit(results_file, change)
    status, out, err = run(capsys, *_argv(command, results_file, tmp_path))
    assert status == 2 and one_line_error(err) and field in err, err


@pytest.mark.parametrize("command", ALL_READERS)
def test_a_constant_written_as_a_huge_integer(capsys, results_file, tmp_path, command):
    """``10**400`` is a Python int to json; the validator's float conversion overflowed (exit 3)."""
    text = results_file.read_text(encoding="utf-8")
    doc = json.loads(text)
    doc["claims"][0]["constants"][0]["measured"] = 123.5
    results_file.write_text(json.dumps(doc).replace("123.5", "1" + "0" * 400, 1), encoding="utf-8")
    status, _, err = run(capsys, *_argv(command, results_file, tmp_path))
    assert status == 2 and one_line_error(err) and "claim ACT-01, field constants[0].measured" in err


def test_an_infinite_interval_end_is_compared_not_crashed(capsys, results_file, tmp_path):
    """A statistical constant's interval may hold "inf" (the recorder's spelling): the guard compares."""
    edit(results_file, lambda d: [k.update(kind="statistical", interval=["-inf", "inf"]) for k in _every_constant(d)])
    baseline = tmp_path / "baseline.json"   # a copy: a file is never its own baseline
    baseline.write_bytes(results_file.read_bytes())
    status, out, err = run(capsys, "guard", results_file, "--baseline", baseline)
    assert status == 0 and "match the baseline" in out and err == ""


def test_a_technique_file_without_its_technique(capsys, tmp_path):
    tech = json.loads((ROOT / "reports" / "techniques.json").read_text(encoding="utf-8"))
    path = _write_raw(tmp_path / "t.json", json.dumps(dict(tech, technique={})))
    for argv in (["guard", path, "--baseline", path], ["report", path, "--format", "summary"]):
        status, _, err = run(capsys, *argv)
        assert status == 2 and one_line_error(err) and "technique" in err


def _catalogue(tmp_path: Path, text: str) -> Path:
    (tmp_path / "cat").mkdir(exist_ok=True)
    _write_raw(tmp_path / "cat" / "c.toml", text)
    return tmp_path / "cat"


GOOD_CLAIM = ('[[claim]]\nid = "MY-01"\ntitle = "t ≥ 0"\nstatement = "s"\nmethod = "symbolic"\n'
              'expected_verdict = "verified"\nassumptions = ["a"]\ntolerance = { rtol = 0.1 }\n'
              '[[claim.sources]]\nfile = "f"\nsection = "s"\nquote = "q"\n')


@pytest.mark.parametrize("old, new, field", [
    ('assumptions = ["a"]', 'assumptions = "x real"', "assumptions"),
    ('file = "f"', 'file = "f"\nyear = true', "sources[0].year"),
    ('rtol = 0.1', 'rtol = nan', "tolerance.rtol"),
    ('title = "t ≥ 0"', 'title = 7', "title"),
])
@pytest.mark.parametrize("command", [["list"], ["show", "MY-01", "--json"], ["show", "MY-01"], ["guard"]])
def test_malformed_catalogue_values_are_exit_2(capsys, tmp_path, results_file, old, new, field, command):
    """These loaded before: a string became a list of characters, `show --json` printed NaN."""
    cat = _catalogue(tmp_path, GOOD_CLAIM.replace(old, new))
    argv = command + (["--baseline", results_file, results_file] if command == ["guard"] else [])
    status, out, err = run(capsys, *argv, "--catalogue", cat)
    assert status == 2 and one_line_error(err) and f"c.toml: claim MY-01, field {field}" in err
    assert "NaN" not in out


def test_show_json_is_valid_json(capsys, tmp_path):
    status, out, _ = run(capsys, "show", "MY-01", "--json", "--catalogue", _catalogue(tmp_path, GOOD_CLAIM))
    assert status == 0 and json.loads(out)["tolerance"] == {"rtol": 0.1, "atol": 0.0}


def test_catalogue_paths_the_file_system_refuses(capsys, tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "d" / "x.toml").mkdir(parents=True)
    _write_raw(tmp_path / "file.toml", GOOD_CLAIM)
    (tmp_path / "fifo").mkdir()
    os.mkfifo(tmp_path / "fifo" / "f.toml")   # reading it would block forever
    for cat, said in [(tmp_path / "loop", "loop"), (tmp_path / "d", "x.toml: cannot be read"),
                      (tmp_path / "file.toml", "is not a directory"), (tmp_path / ("a" * 300), "too long"),
                      (tmp_path / "fifo", "not a regular file")]:
        status, _, err = run(capsys, "list", "--catalogue", cat)
        assert status == 2 and one_line_error(err) and said in err, err


def test_an_unreadable_catalogue_file(capsys, tmp_path, monkeypatch):
    """chmod 000 does not stop root: the refusal is simulated where the file is read."""
    cat = _catalogue(tmp_path, GOOD_CLAIM)
    real = atomic.read_text

    def refuse(path, max_bytes):
        if Path(path).name == "c.toml":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, max_bytes)
    monkeypatch.setattr(atomic, "read_text", refuse)
    status, _, err = run(capsys, "list", "--catalogue", cat)
    assert status == 2 and one_line_error(err) and "c.toml: cannot be read: Permission denied" in err


def test_a_name_too_long_for_the_file_system(capsys, results_file, tmp_path):
    long = tmp_path / ("r" * 300 + ".json")
    for argv in (["report", long], ["report", results_file, "--out", long], ["guard", results_file, "--baseline", long],
                 ["show", "ACT-01", "--results", long]):
        status, _, err = run(capsys, *argv)
        assert status == 2 and one_line_error(err) and "too long" in err, (argv[0], err)


def test_a_write_over_the_file_size_limit(results_file, tmp_path):
    """RLIMIT_FSIZE: the write fails with EFBIG (Python ignores SIGXFSZ); one line, no partial file."""
    resource = pytest.importorskip("resource")
    out = tmp_path / "out.json"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
    proc = subprocess.run([sys.executable, "-m", "gradcore.cli", "report", str(results_file), "--format", "json",
                           "--out", str(out)], capture_output=True, text=True, timeout=120, preexec_fn=limit,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2 and proc.stderr == f"gradcore: error: cannot write {out}: File too large\n"
    assert not out.exists() and not list(tmp_path.glob(".out.json.*"))


@pytest.mark.parametrize("env", [{"LC_ALL": "C"}, {"PYTHONIOENCODING": "ascii"}, {"PYTHONIOENCODING": "latin-1"}])
def test_unicode_claims_on_an_ascii_stdout(tmp_path, env):
    """A real subprocess with the locale or encoding asked for: `list` and `show` print, `show --json`
    stays valid JSON with the same content."""
    base = {k: v for k, v in os.environ.items() if k not in ("LC_ALL", "LANG", "PYTHONIOENCODING", "PYTHONUTF8")}
    base["PYTHONPATH"] = str(ROOT)

    def gradcore(*argv):
        return subprocess.run([sys.executable, "-m", "gradcore.cli", *argv], capture_output=True,
                              timeout=120, env={**base, **env}, cwd=tmp_path)
    listed = gradcore("list")
    assert listed.returncode == 0 and listed.stderr == b"" and b"ACT-02" in listed.stdout
    shown = gradcore("show", "ACT-02")
    assert shown.returncode == 0 and shown.stderr == b""
    raw = gradcore("show", "ACT-02", "--json")
    assert raw.returncode == 0 and json.loads(raw.stdout)["title"].startswith("tanh' = 1 − tanh²")


# --- a hostile pass of our own: inputs issue 23 did not list -------------------------------

def test_a_claim_listed_twice_cannot_hide_a_regression(capsys, results_file, tmp_path):
    """The guard keyed claims by id: a second, unchanged ACT-01 after a regressed one hid it (exit 0)."""
    baseline = tmp_path / "b.json"
    baseline.write_bytes(results_file.read_bytes())

    def regress_then_repeat(doc):
        original = json.loads(json.dumps(doc["claims"][0]))
        doc["claims"][0]["verdict"] = "refuted"
        doc["claims"].append(original)
    edit(results_file, regress_then_repeat)
    status, out, err = run(capsys, "guard", results_file, "--baseline", baseline)
    assert status == 2 and one_line_error(err) and "appears more than once" in err and "match" not in out


@pytest.mark.parametrize("content", [
    "\ufeff{}".encode(),                                       # a UTF-8 byte-order mark
    '{"schema": 1}'.encode("utf-16"),                          # UTF-16
    b"[1, 2]",                                                 # a JSON array
    b'{"schema": 1, "environment": {"devices": {}}, "claims": [' + b"[" * 5000 + b"]" * 5000 + b"]}",
])
def test_results_files_in_odd_encodings_and_shapes(capsys, tmp_path, content):
    """Regression cases (these were already exit 2): one line each, for every reader."""
    path = tmp_path / "r.json"
    path.write_bytes(content)
    for argv in (["report", path, "--format", "summary"], ["guard", path, "--baseline", path],
                 ["show", "ACT-01", "--results", path]):
        status, _, err = run(capsys, *argv)
        assert status == 2 and one_line_error(err), err

"""The command line: one-line errors with exit status 2, views of a results file."""
import json
import shutil
from pathlib import Path

import pytest

from gradcore import cli

from .cli_helpers import run, small_results

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def results_file(tmp_path) -> Path:
    """A small, real results file: the committed one's first claims."""
    return small_results(tmp_path)


@pytest.mark.parametrize("argv,message", [
    (["report", "missing.json"], "does not exist"),
    (["show", "NOPE-99"], "unknown claim id"),
    (["list", "--topic", "astrology"], "unknown topic"),
    (["guard", "missing.json"], "does not exist"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, argv, message):
    status, _, err = run(capsys, *[a.replace("missing.json", str(tmp_path / "missing.json")) for a in argv])
    assert status == 2
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("content", ["{not json", '{"schema": 99}', "[]", '{"schema": 1, "claims": []}'])
def test_corrupt_results_files_are_rejected(capsys, tmp_path, content):
    bad = tmp_path / "r.json"
    bad.write_text(content, encoding="utf-8")
    status, _, err = run(capsys, "report", bad)
    assert status == 2 and err.startswith("gradcore: error:") and err.count("\n") == 1


def test_argument_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["verify", "--device", "tpu"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'tpu'" in err and err.count("\n") == 1


def test_report_formats(capsys, tmp_path, results_file):
    status, out, _ = run(capsys, "report", results_file, "--format", "summary")
    assert status == 0 and "claims)" in out
    status, out, _ = run(capsys, "report", results_file, "--format", "json")
    assert status == 0 and json.loads(out)["schema"] == 1
    md = tmp_path / "verification.md"
    status, _, _ = run(capsys, "report", results_file, "--out", md)
    assert status == 0 and md.read_text(encoding="utf-8").startswith("# gradcore verification report")


def test_list_and_show(capsys, results_file):
    status, out, _ = run(capsys, "list", "--results", results_file)
    first = json.loads(results_file.read_text(encoding="utf-8"))["claims"][0]
    assert status == 0 and first["id"] in out and "not run" in out
    status, out, _ = run(capsys, "show", first["id"], "--results", results_file)
    assert status == 0 and first["title"] in out and first["quote"] in out


def test_guard_detects_a_change_and_accept_rewrites_the_baseline(capsys, tmp_path, results_file):
    baseline = tmp_path / "baseline.json"
    shutil.copyfile(results_file, baseline)
    assert run(capsys, "guard", results_file, "--baseline", baseline)[0] == 0
    doc = json.loads(results_file.read_text(encoding="utf-8"))
    claim = doc["claims"][0]
    claim["devices"]["cpu"]["verdict"] = "refuted"
    results_file.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    status, out, _ = run(capsys, "guard", results_file, "--baseline", baseline)
    assert status == 1 and claim["id"] in out and "verdict" in out
    assert run(capsys, "guard", results_file, "--baseline", baseline, "--accept")[0] == 0
    assert run(capsys, "guard", results_file, "--baseline", baseline)[0] == 0


def test_report_and_guard_read_technique_results_too(tmp_path, capsys):
    import json as _json

    from gradcore.cli import main as gradcore

    techniques = Path(__file__).resolve().parents[1] / "reports" / "techniques.json"
    assert gradcore(["report", str(techniques), "--out", str(tmp_path / "t.md")]) == 0
    assert "## activation" in (tmp_path / "t.md").read_text(encoding="utf-8")
    assert gradcore(["report", str(techniques), "--format", "summary"]) == 0
    assert "derivative-bound=" in capsys.readouterr().out
    (tmp_path / "same.json").write_bytes(techniques.read_bytes())   # a file is never its own baseline
    assert gradcore(["guard", str(techniques), "--baseline", str(tmp_path / "same.json")]) == 0
    doc = _json.loads(techniques.read_text(encoding="utf-8"))
    clause = next(iter(doc["kinds"]["activation"].values()))[0]
    clause["verdict"] = "violated" if clause["verdict"] != "violated" else "holds"
    (tmp_path / "moved.json").write_text(_json.dumps(doc), encoding="utf-8")
    assert gradcore(["guard", str(tmp_path / "moved.json"), "--baseline", str(techniques)]) == 1


@pytest.mark.parametrize("target", ["directory", "missing.json"])
def test_list_of_a_results_file_that_is_not_one_is_exit_2(capsys, tmp_path, target):
    path = tmp_path if target == "directory" else tmp_path / target
    status, out, err = run(capsys, "list", "--results", path)
    assert status == 2 and err.startswith("gradcore: error:") and err.count("\n") == 1 and str(path) in err
    assert out == ""


def test_list_without_a_results_file_lists_the_catalogue(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # no reports/results.json here: nothing measured yet is not an error
    status, out, _ = run(capsys, "list", "--topic", "clipping")
    assert status == 0 and "CLIP-01" in out and "not run" in out


@pytest.mark.parametrize("spelling", ["same", "relative", "symlink"])
def test_verify_report_onto_its_results_is_refused_whatever_the_spelling(capsys, tmp_path, monkeypatch, spelling):
    """Round one §5: refused before running anything, the results file intact (also when it is new)."""
    results_file = small_results(tmp_path)
    before = results_file.read_bytes()
    monkeypatch.chdir(tmp_path)
    report = {"same": results_file, "relative": Path("results.json"), "symlink": tmp_path / "link.json"}[spelling]
    if spelling == "symlink":
        report.symlink_to(results_file)
    status, _, err = run(capsys, "verify", "--only", "ACT-01", "--theorems", ROOT / "theorems",
                         "--results", results_file, "--report", report)
    assert status == 2 and "--report" in err and err.count("\n") == 1
    assert results_file.read_bytes() == before
    status, _, err = run(capsys, "verify", "--only", "ACT-01", "--theorems", ROOT / "theorems",
                         "--results", tmp_path / "new.json", "--report", Path("new.json"))
    assert status == 2 and not (tmp_path / "new.json").exists()

"""Unit tests of `gradcore check` (gradcore/verify/check.py, contracts/, check_report.py, testing.py).

Each contract is run on techniques gradcore does not ship (tests/techniques_for_tests.py)
and its measured constants are compared with closed forms or independent references.
"""
from __future__ import annotations

import json
import math

import pytest
import sympy as sp
import torch

from gradcore.testing import check_technique
from gradcore.verify import catalogue
from gradcore.verify.check import write_builtin_tables
from gradcore.verify.loading import load_object
from gradcore.verify.check_report import comparison_table, markdown, write
from gradcore.cli import main
from gradcore.verify.contracts import KINDS, contract
from gradcore.errors import CheckError

from . import techniques_for_tests as T

SPEC = "tests.techniques_for_tests"


def _clause(result, cid):
    return next(r for r in result.results if r.clause == cid)


def test_every_clause_cites_catalogued_claims():
    known = catalogue.load()
    for kind in KINDS:
        for clause in contract(kind).clauses:
            assert clause.claims and all(c in known for c in clause.claims), (kind, clause.id)


def test_swish_derivative_bound_violated_at_the_closed_form_maximum(device):
    res = check_technique(T.swish, device=device)
    assert res.kind == "activation" and not res.ok
    bound = _clause(res, "derivative-bound")
    # reference: maximise swish'(x) = σ(x)(1 + x(1 − σ(x))) exactly with sympy
    x = sp.Symbol("x", real=True)
    d1 = sp.diff(x / (1 + sp.exp(-x)), x)
    x_star = sp.nsolve(sp.diff(d1, x), x, 2.4)
    assert bound.verdict == "violated"
    assert float(bound.constants["sup|f'| (search)"]) == pytest.approx(float(d1.subs(x, x_star)), abs=1e-9)
    assert bound.counterexample["x"] == pytest.approx(float(x_star), abs=1e-3)
    assert _clause(res, "saturation").verdict == "holds"        # the right tail f' → 1
    assert [r.clause for r in res.violations] == ["derivative-bound", "transfer-factor"]


def test_bad_activation_with_sympy_form(device):
    res = check_technique(T.SteepTanh, kind="activation", device=device)
    bound = _clause(res, "derivative-bound")
    assert float(bound.constants["sup|f'| (sympy)"]) == pytest.approx(1.5, abs=1e-12)
    assert float(bound.constants["sup|f'| (search)"]) == pytest.approx(1.5, abs=1e-9)
    sat = _clause(res, "saturation")
    # closed form: 1.5·(1 − tanh²x) < 0.01  ⇔  |x| > atanh(√(1 − 0.01/1.5))
    edge = math.atanh(math.sqrt(1 - 0.01 / 1.5))
    assert sat.verdict == "violated"
    assert float(sat.constants["right saturated above x"]) == pytest.approx(edge, abs=0.02)
    assert _clause(res, "transfer-factor").constants["init"] == "xavier_normal"
    with pytest.raises(AssertionError, match="derivative-bound"):
        res.assert_ok()


def test_norm_without_epsilon_violates_only_the_epsilon_floor(device):
    res = check_technique(T.NoEpsLayerNorm, device=device)
    assert res.kind == "norm"
    assert [r.clause for r in res.violations] == ["epsilon-floor"]
    floor = _clause(res, "epsilon-floor")
    assert floor.constants["constant input finite"] is False
    assert floor.constants["growth 1e-4 → 1e-6"] == pytest.approx(100, rel=1e-3)   # ‖J‖₂ = 1/σ exactly
    ok = check_technique(T.EpsLayerNorm, kind="norm", device=device)
    assert ok.ok
    # with ε the Jacobian norm saturates at 1/√ε
    assert _clause(ok, "epsilon-floor").constants["‖J‖₂ at input scale 1e-6"] == pytest.approx(1e-5 ** -0.5, rel=1e-2)


def test_per_coordinate_clipping_loses_direction(device):
    res = check_technique(T.clip_per_coordinate, device=device)
    assert res.kind == "clipping" and [r.clause for r in res.violations] == ["direction"]
    d = _clause(res, "direction")
    # Gaussian g with ‖g‖∞ ≫ τ: cos → √(2/π) (the value-clipping limit, 002)
    assert float(d.constants["cos(clip(g), g), Gaussian g, d=4096, ‖g‖∞≈4e3"]) == pytest.approx(math.sqrt(2 / math.pi), abs=0.01)
    from gradcore.measure.clipping import gradient_list
    gs = gradient_list(d.constants["worst cosine found by search (lists of tensors)"].witness["example"])
    g = torch.cat([t.double().reshape(-1) for t in gs])
    out = torch.cat([torch.tensor(t, dtype=torch.float64).reshape(-1) for t in d.counterexample["clip(g)"]])
    assert torch.equal(out, g.clamp(-1, 1)) and float(torch.nn.functional.cosine_similarity(g, out, dim=0)) < 1 - 1e-6
    step = _clause(res, "step-bound")
    assert float(step.constants["‖clip(g)‖, Gaussian ‖g‖≈6e7, d=4096"]) == pytest.approx(64.0)   # τ√d
    assert check_technique(T.clip_global_norm_safe, device=device).ok


def test_initialiser_constants_match_the_formula(device):
    bad = check_technique(T.fixed_std_init, device=device)
    assert bad.kind == "initialiser" and not bad.ok
    fan = _clause(bad, "fan-scaling")
    # the clause's constants are Measurements (their value is the number)
    assert float(fan.constants["n·Var(W), n=512"]) == pytest.approx(512 * 0.05 ** 2, rel=0.05)
    assert abs(float(fan.constants["exponent p in Var(W) ∝ n^p"])) < 0.1
    good = check_technique(T.lecun_normal, device=device)
    assert good.ok and float(_clause(good, "fan-scaling").constants["n·Var(W), n=512"]) == pytest.approx(1.0, rel=0.05)


def test_residual_attention_recurrent_contracts(device):
    res = check_technique(T.HalfResidual, kind="residual", device=device)
    bound = _clause(res, "block-jacobian-bound")
    x = torch.tensor(bound.counterexample["x"], dtype=torch.float64)   # (2, 32): a batch of two
    torch.manual_seed(bound.counterexample["seed"])
    block = T.HalfResidual(32).double()
    ref = max(torch.linalg.matrix_norm(torch.autograd.functional.jacobian(lambda t: block(t[None])[0], row), ord=2)
              for row in x)
    found = float(bound.constants["sup ‖∂block/∂x‖₂ found by search"])
    assert bound.verdict == "violated" and found == pytest.approx(float(ref), rel=1e-9)
    att = check_technique(T.unscaled_attention, device=device)
    assert att.kind == "attention" and _clause(att, "row-stochastic").verdict == "holds"
    assert [r.clause for r in att.violations] == ["no-saturation", "logit-variance"]
    rnn = check_technique(T.LeakyCell, device=device)
    assert rnn.kind == "recurrent" and rnn.ok
    # the leaky cell's step Jacobian is 0.95·I + 0.05·D W: its factor sits just below 0.95 + 0.05
    assert 0.9 < float(_clause(rnn, "bptt-no-explosion").constants["per-step factor"]) < 1.0


@pytest.mark.parametrize("obj, kind, message", [
    (T.wrong_shape, None, "changed the shape"),
    (T.not_finite, "activation", "non-finite"),
    (T.NOT_CALLABLE, None, "not callable"),
    (T.swish, "bogus", "unknown kind"),
    (lambda x: x, "norm", "factory returned int"),
    (T.unscaled_attention, "norm", "factory returned|failed"),
])
def test_bad_techniques_fail_with_one_line(obj, kind, message):
    with pytest.raises(CheckError, match=message) as e:
        check_technique(obj, kind=kind)
    assert "\n" not in str(e.value)


def test_load_object_errors():
    assert load_object(f"{SPEC}:swish") is T.swish
    for spec, msg in [("nocolon", "MODULE:OBJECT"), ("no_such_module_xyz:f", "cannot import"),
                      (f"{SPEC}:missing", "no attribute")]:
        with pytest.raises(CheckError, match=msg):
            load_object(spec)


def test_cli_exit_codes_and_files(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["check", f"{SPEC}:clip_per_coordinate", "--out", str(out), "--no-compare"]) == 1
    printed = capsys.readouterr().out
    doc = json.loads((out / "clip_per_coordinate.json").read_text())
    assert doc["ok"] is False and doc["violations"] == ["direction"] and "environment" in doc
    md = (out / "clip_per_coordinate.md").read_text()
    assert "FAIL" in md and "CLIP-01" in md and "```python" in md
    # every check says why it chose the kind and ends with the counts (issue 22)
    reason = "inferred: not a class, takes 1 positional argument(s); its clipping smoke test passed"
    summary = "6 clauses ran, 5 held, 1 violated, 0 could not be measured"
    assert f"kind clipping: {reason}\n{summary}\n" in printed and summary in md
    assert doc["technique"]["kind_reason"] == reason
    assert doc["counts"] == {"ran": 6, "held": 5, "violated": 1, "unmeasured": 0, "inconclusive": 0,
                             "not_applicable": 0}
    assert main(["check", f"{SPEC}:lecun_normal", "--out", str(out), "--no-compare"]) == 0
    assert main(["check", f"{SPEC}:nope", "--out", str(out)]) == 2
    assert main(["check", f"{SPEC}:NOT_CALLABLE", "--out", str(out)]) == 2
    if not torch.cuda.is_available():
        assert main(["check", f"{SPEC}:swish", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and all(line.startswith("gradcore: error:") for line in err)
    assert main(["check", f"{SPEC}:swish", "--kind", "bogus"]) == 2   # the known kinds are listed in the error
    assert "unknown kind 'bogus'" in capsys.readouterr().err


def test_report_tables(tmp_path):
    res = check_technique(T.unscaled_attention, compare=True)
    assert set(res.builtins) == {"scaled (1/√d_k)", "unscaled"}
    # the user's unscaled attention measures like gradcore's own unscaled variant
    mine = [r.verdict for r in res.results]
    assert mine == [r.verdict for r in res.builtins["unscaled"]]
    table = comparison_table({"mine": res.results, **res.builtins})
    assert table.count("\n") == 4 and "`no-saturation`" in table
    assert "Side by side" in markdown(res)
    md, js = write(res, tmp_path)
    assert md.exists() and json.loads(js.read_text())["builtins"]
    path = write_builtin_tables(tmp_path, kinds=("attention",))
    assert "## attention" in path.read_text() and (tmp_path / "techniques.json").exists()


# --- hostile techniques (issue 23 §4/§5, issue 24): gradcore controls the state it measures in ---

HOSTILE = "tests.hostile_techniques"
ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def _gradcore(tmp_path, *argv, timeout=300):
    """``python -m gradcore.cli ARGV`` in its own process, run from ``tmp_path``."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    return subprocess.run([sys.executable, "-m", "gradcore.cli", *map(str, argv)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_a_module_that_changes_process_state_on_import_is_measured_in_gradcore_s(tmp_path):
    """Autograd off, another cwd, another default dtype and thread count at import: all put back."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "sly.py").write_text(
        "import os, torch\ntorch.set_grad_enabled(False)\ntorch.set_default_dtype(torch.float64)\n"
        "torch.set_num_threads(1)\nos.chdir('elsewhere')\ndef act(x):\n    return torch.tanh(x)\n")
    proc = _gradcore(tmp_path, "check", "sly:act", "--kind", "activation", "--no-compare", "--out", "rep")
    report = tmp_path / "rep" / "act.json"
    assert proc.returncode == 1 and report.is_file(), proc.stderr   # tanh saturates: violated, measured
    assert f"report: {tmp_path / 'rep' / 'act.md'}" in proc.stdout          # the path printed is the file's
    verdicts = {c["id"]: c for c in json.loads(report.read_text())["clauses"]}
    assert verdicts["saturation"]["verdict"] == "violated"                  # not "could not be measured"
    lam = next(k for k in verdicts["transfer-factor"]["constants"] if k["name"] == "lambda")
    assert verdicts["transfer-factor"]["verdict"] == "holds" and 0.9 < lam["measured"] < 1.1   # not λ = 0


def test_import_state_is_restored_in_process(tmp_path, monkeypatch):
    import os
    import sys

    (tmp_path / "sub").mkdir()
    (tmp_path / "sly2.py").write_text("import os, torch\ntorch.set_grad_enabled(False)\nos.chdir('sub')\n"
                                      "torch.set_default_dtype(torch.float64)\nf = torch.tanh\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path)] + sys.path)
    assert load_object("sly2:f") is torch.tanh
    assert torch.is_grad_enabled() and os.getcwd() == str(tmp_path) and torch.get_default_dtype() == torch.float32


def test_a_technique_that_turns_autograd_off_when_called_is_refused():
    with pytest.raises(CheckError, match="grad mode True → False") as e:
        check_technique(load_object(f"{HOSTILE}:turns_grad_off"), kind="activation", compare=False)
    assert "\n" not in str(e.value) and torch.is_grad_enabled()


def test_non_daemon_threads_of_the_users_code_do_not_hold_the_command(tmp_path):
    (tmp_path / "threads.py").write_text(
        "import threading, time\nfrom torch import nn\n"
        "threading.Thread(target=time.sleep, args=(3600,)).start()\n"
        "def net():\n    return nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))\n")
    proc = _gradcore(tmp_path, "check", "threads:missing", timeout=240)
    assert proc.returncode == 2 and "no attribute" in proc.stderr
    proc = _gradcore(tmp_path, "audit", "threads:net", "--input-shape", "2,4", "--out", "a", timeout=240)
    assert proc.returncode == 0 and (tmp_path / "a" / "net.json").is_file(), proc.stderr


@pytest.mark.parametrize("name", ["laggy", "swallows_on_big_inputs"])
def test_the_time_limit_holds_within_a_second(name):
    res = check_technique(load_object(f"{HOSTILE}:{name}"), kind="activation", compare=False, time_limit_s=1)
    bound = _clause(res, "derivative-bound")
    # a search (Hypothesis) or the technique's own `except Exception` does not swallow the alarm
    assert bound.verdict == "unmeasured" and "time limit of 1 s" in bound.note, bound.note
    assert bound.duration_s < 2.0


def test_an_overrun_while_inferring_the_kind_says_so():
    import time

    start = time.perf_counter()
    with pytest.raises(CheckError, match="inferring the kind of sleeps ran past its time limit of 1 s"):
        check_technique(load_object(f"{HOSTILE}:sleeps"), compare=False, time_limit_s=1)
    assert time.perf_counter() - start < 3.0


@pytest.mark.parametrize("obj, message", [
    (torch.nn.init.zeros_, "mutates its input"),
    (torch.nn.init.ones_, "mutates its input"),
    (f"{HOSTILE}:mutates", "mutates its input"),
    (f"{HOSTILE}:complex_valued", "complex128"),
])
def test_an_activation_that_writes_into_its_input_or_is_not_real_is_refused(obj, message, capsys, tmp_path):
    """zeros_ overwrites its input under no_grad: autograd sees the identity, so every clause held."""
    obj = load_object(obj) if isinstance(obj, str) else obj
    with pytest.raises(CheckError, match=message) as e:
        check_technique(obj, kind="activation", compare=False)
    assert "\n" not in str(e.value)
    assert main(["check", "torch.nn.init:zeros_", "--kind", "activation", "--no-compare", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mutates its input" in err


@pytest.mark.parametrize("name, reason", [("raises", "RuntimeError: this activation always fails"),
                                          ("mutates", "mutates its input")])
def test_kind_inference_carries_the_activation_s_reason(name, reason):
    with pytest.raises(CheckError, match="cannot infer the kind") as e:
        check_technique(load_object(f"{HOSTILE}:{name}"), compare=False)
    assert reason in str(e.value)


def test_an_initialiser_writing_nan_at_large_fans_is_named():
    res = check_technique(load_object(f"{HOSTILE}:nan_at_large_fans"), kind="initialiser", compare=False)
    fan = _clause(res, "fan-scaling")
    assert fan.verdict == "violated" and fan.counterexample["shape"] == [128, 128]
    assert "non-finite value(s) into a (128, 128) weight" in fan.note


def test_an_activation_saturated_everywhere_has_no_crossed_edges():
    res = check_technique(load_object(f"{HOSTILE}:sign"), kind="activation", compare=False)
    sat = _clause(res, "saturation")
    assert sat.verdict == "violated" and float(sat.constants["saturated share of [-40, 40]"]) == 1.0
    assert sat.constants["left saturated below x"] == sat.constants["right saturated above x"] == "everywhere"
    assert "whole probed domain" in sat.note


@pytest.mark.parametrize("name, message", [
    ("raises_keyboard_interrupt", "KeyboardInterrupt raised by the code itself"),   # not "interrupted", 130
    ("on_meta", "returned a tensor on meta for an input on cpu"),
    ("noisy", "not deterministic"),                                                   # not "not elementwise"
])
def test_more_hostile_activations_are_one_line_exit_2(capsys, name, message):
    assert main(["check", f"{HOSTILE}:{name}", "--kind", "activation", "--no-compare"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_what_a_technique_prints_does_not_reach_the_report_on_stdout(capsys, tmp_path):
    assert main(["check", f"{HOSTILE}:chatty", "--kind", "activation", "--no-compare", "--out", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert "chatty was called" not in out and "chatty was called" in err
    assert out.startswith("chatty (activation)") and out.rstrip().endswith("chatty.json")

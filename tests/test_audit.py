"""gradcore audit on reduced-size copies of ResNet, MobileNetV2 and a transformer encoder:
every block's matrix-free σ_max and RMS gain against dense jacrev + svdvals."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from gradcore import jacobian
from gradcore.audit import AuditOptions, audit, blocks, measure, render
from gradcore import cli
from gradcore.errors import InputError, ResultsError

torchvision = pytest.importorskip("torchvision")
from torchvision.models.mobilenetv2 import InvertedResidual  # noqa: E402
from torchvision.models.resnet import BasicBlock  # noqa: E402

EXACT = AuditOptions(dtype=torch.float64, tol=1e-10, max_steps=2000, probes=48, seed=0)


def tiny_resnet() -> nn.Module:
    down = nn.Sequential(nn.Conv2d(4, 6, 1, stride=2, bias=False), nn.BatchNorm2d(6))
    return nn.Sequential(BasicBlock(4, 4), BasicBlock(4, 6, stride=2, downsample=down))


def tiny_mobilenet() -> nn.Module:
    return nn.Sequential(InvertedResidual(4, 4, 1, 2), InvertedResidual(4, 6, 2, 2))


def tiny_transformer(norm_first: bool = True) -> nn.Module:
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True, norm_first=norm_first)
    return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)


CASES = {"resnet": (tiny_resnet, (1, 4, 6, 6)), "mobilenet": (tiny_mobilenet, (1, 4, 6, 6)),
         "transformer": (tiny_transformer, (1, 5, 16))}


@pytest.mark.parametrize("case", sorted(CASES))
def test_audit_agrees_with_dense_jacobians(case):
    factory, shape = CASES[case]
    torch.manual_seed(0)
    model = factory()
    result = audit(model, shape, name=case, settings=EXACT)
    # the dense reference: the same prepared copy, each block's Jacobian built by jacrev
    net = blocks.at_initialisation(model, torch.float64)
    found = blocks.candidates(net)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    calls = blocks.capture(net, found, x)
    by_name = {b.name: b for b in found}
    assert {r.kind for r in result.blocks} >= ({"residual", "norm"} if case != "transformer"
                                                else {"transformer", "attention", "norm"})
    for r in result.blocks:
        J = jacobian.jacobian(measure.block_function(by_name[r.name], calls[r.name]), calls[r.name].x).detach()
        sv = torch.linalg.svdvals(J)
        assert math.isclose(r.sigma_max, float(sv[0]), rel_tol=1e-8), r.name
        rms = float(J.norm() / math.sqrt(J.shape[1]))
        assert abs(r.rms_gain - rms) <= 5 * r.rms_se + 1e-12, (r.name, r.rms_gain, rms, r.rms_se)


def test_claims_on_residual_blocks_use_the_branch():
    result = audit(tiny_resnet(), (1, 4, 6, 6), settings=EXACT)
    first = next(r for r in result.blocks if r.name == "0")
    res02 = next(c for c in first.claims if c.claim == "RES-02")
    assert res02.holds and res02.measured.value <= res02.reference
    # the projection-shortcut block has no identity path, so no residual claim is made on it
    projection = next(r for r in result.blocks if r.name == "1")
    assert not projection.claims and {c for c, _ in projection.unapplied} == {"RES-02", "RES-05"}


def test_pre_and_post_ln_are_compared_on_the_same_weights():
    result = audit(tiny_transformer(norm_first=False), (1, 5, 16), settings=EXACT)
    layer = next(r for r in result.blocks if r.kind == "transformer")
    (check,) = layer.claims
    assert check.claim == "PLN-02" and "Post-LN (as built)" in check.quantity and check.measured.value > 0


def test_profile_is_one_backward_pass_through_the_stages():
    result = audit(tiny_transformer(), (1, 5, 16), settings=EXACT)
    names = [n for n, _ in result.profile]
    assert names == ["input", "layers.0", "layers.1", "output"]
    assert all(g > 0 and math.isfinite(g) for _, g in result.profile)


def test_rendering_does_not_measure(tmp_path):
    result = audit(tiny_mobilenet(), (1, 4, 6, 6), name="m", settings=AuditOptions(probes=2, max_steps=5))
    md, js = render.write(result, tmp_path, "m")
    text = md.read_text()
    assert "## Claims on the real blocks" in text and "figures/m-profile.png" in text
    assert (tmp_path / "figures" / "m-gains.png").stat().st_size > 1000
    assert not list(tmp_path.glob("**/.*"))   # no temporary files left behind


def test_the_report_states_the_lanczos_tolerance_and_the_accuracy_it_gives(tmp_path):
    """The default tolerance (2e-2 since issue 19) and what it means for σ_max are in the header."""
    assert AuditOptions().tol == 2e-2
    result = audit(tiny_mobilenet(), (1, 4, 6, 6), name="m", settings=AuditOptions(probes=2))
    text = render.write(result, tmp_path, "m")[0].read_text()
    assert "‖JᵀJv − σ²v‖ ≤ 0.02·σ², so σ_max to within 0.01 relative, from below" in text


def test_cli_audit_writes_the_report_and_rejects_bad_input(tmp_path, monkeypatch, capsys):
    (tmp_path / "tinynets.py").write_text(
        "from torch import nn\n"
        "def enc():\n"
        "    return nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 1,"
        " enable_nested_tensor=False)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path)] + sys.path)
    assert cli.main(["audit", "tinynets:enc", "--input-shape", "1,4,8", "--out", "out", "--max-steps", "5"]) == 0
    assert (tmp_path / "out" / "enc.md").is_file() and (tmp_path / "out" / "enc.json").is_file()
    assert cli.main(["audit", "tinynets:enc", "--input-shape", "1,4,5", "--out", "out"]) == 2
    assert cli.main(["audit", "tinynets:nothing", "--input-shape", "1,4,8"]) == 2
    with pytest.raises(SystemExit) as e:
        cli.main(["audit", "tinynets:enc", "--input-shape", "1,a,8"])
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize("call,argument", [
    (lambda: audit("resnet", (1, 3, 8, 8)), "model"),
    (lambda: audit(tiny_resnet(), (1, 0, 8)), "input_shape"),
    (lambda: audit(tiny_resnet(), ()), "input_shape"),
])
def test_bad_input_names_the_argument(call, argument):
    from gradcore import GradcoreInputError

    with pytest.raises(GradcoreInputError, match=f"^{argument}:"):
        call()


# --- hostile models and factories (issue 23 §4): one line and exit 2, or measured ---------------

HOSTILE_MODELS = '''
import sys, torch
from torch import nn

def exits0():
    sys.exit(0)

def exits1():
    sys.exit(1)

class NaNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.l = nn.Linear(4, 4)
    def forward(self, x):
        return self.l(x) * float("nan")

class DictNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.l, self.n = nn.Linear(4, 4), nn.LayerNorm(4)
    def forward(self, x):
        return {"out": self.n(self.l(x)), "aux": self.l(x), "steps": 3}

class TwoArgs(nn.Module):
    def __init__(self):
        super().__init__()
        self.l = nn.Linear(4, 4)
    def forward(self, x, mask):
        return self.l(x) * mask

def lstm():
    return nn.LSTM(4, 8, batch_first=True)

def needs(width, depth=2):
    return nn.Linear(width, width)
'''


@pytest.fixture
def hostile_models(tmp_path, monkeypatch):
    (tmp_path / "hostile_models.py").write_text(HOSTILE_MODELS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path)] + sys.path)
    return tmp_path


@pytest.mark.parametrize("code", [0, 1])
def test_a_factory_that_calls_sys_exit_is_exit_2(hostile_models, code):
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(hostile_models)])}
    proc = subprocess.run([sys.executable, "-m", "gradcore.cli", "audit", f"hostile_models:exits{code}",
                           "--input-shape", "2,4"], cwd=hostile_models, env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert f"called sys.exit({code})" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("target, shape, message", [
    ("NaNNet", "2,4", "model: its output is not finite (NaN or inf)"),
    ("TwoArgs", "2,4", "model: its forward needs arguments besides the input: mask"),
    ("needs", "2,4", "hostile_models:needs needs arguments (width)"),
])
def test_models_audit_cannot_measure_are_one_line_exit_2(hostile_models, capsys, target, shape, message):
    status = cli.main(["audit", f"hostile_models:{target}", "--input-shape", shape, "--out", "out"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and message in err and "nan" not in err.replace("NaN", "")
    assert not (hostile_models / "out").exists()


@pytest.mark.parametrize("target, shape, outputs", [
    ("DictNet", "2,4", ["['out']", "['aux']"]),
    ("lstm", "2,3,4", ["[0]", "[1][0]", "[1][1]"]),
])
def test_dict_and_tuple_outputs_are_measured_over_their_tensors(hostile_models, capsys, target, shape, outputs):
    assert cli.main(["audit", f"hostile_models:{target}", "--input-shape", shape, "--out", "out"]) == 0
    doc = json.loads((hostile_models / "out" / f"{target}.json").read_text())
    assert doc["audit"]["outputs"] == outputs
    # L = Σ⟨g, y⟩ over those tensors: the output entry is ‖g‖ over all of them, and the input gradient is real
    profile = dict(doc["audit"]["profile"])
    assert profile["output"] > 0 and profile["input"] > 0 and all(math.isfinite(g) for g in profile.values())
    assert "`" + outputs[0] + "`" in (hostile_models / "out" / f"{target}.md").read_text()


# --- issue 20: reproducible, faithful to the model's calls, blocks found by structure -----------------

def test_two_runs_of_one_factory_measure_the_same_weights(tmp_path, monkeypatch, capsys):
    (tmp_path / "seeded_nets.py").write_text(
        "from torch import nn\n"
        "from torchvision.models.resnet import BasicBlock\n"
        "def net():\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), BasicBlock(4, 4))\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path)] + sys.path)
    docs = []
    for state, run in enumerate(("a", "b")):
        torch.manual_seed(1000 + state)   # whatever the process drew before must not change the weights measured
        assert cli.main(["audit", "seeded_nets:net", "--input-shape", "1,3,6,6", "--out", run, "--max-steps", "6"]) == 0
        docs.append(json.loads((tmp_path / run / "net.json").read_text()))
    # same process, threads and code path: the report's "seed 0" must pin every bit of every value
    assert [c["constants"] for c in docs[0]["clauses"]] == [c["constants"] for c in docs[1]["clauses"]]
    assert docs[0]["audit"]["profile"] == docs[1]["audit"]["profile"]


class CausalDecoder(nn.Module):
    """One decoder layer as a model calls it: causal self-attention mask, a memory to cross-attend to."""

    def __init__(self, norm_first: bool = False) -> None:
        super().__init__()
        self.layer = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=norm_first)
        self.memory = nn.Parameter(torch.randn(1, 3, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1], dtype=x.dtype)
        return self.layer(x, self.memory.expand(x.shape[0], -1, -1), tgt_mask=mask, tgt_is_causal=True)


def _top_sv(f, x) -> float:
    return float(torch.linalg.svdvals(jacobian.jacobian(f, x).detach())[0])


@pytest.mark.parametrize("norm_first", [False, True])
def test_attention_is_measured_with_the_mask_and_memory_the_model_passes(norm_first):
    torch.manual_seed(0)
    model = CausalDecoder(norm_first)
    result = {r.name: r for r in audit(model, (1, 5, 8), settings=EXACT).blocks}
    net = blocks.at_initialisation(model, torch.float64)
    layer, mem = net.layer, net.memory
    x = torch.randn((1, 5, 8), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mask = nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)
    sa_in = layer.norm1(x) if norm_first else x
    with torch.no_grad():
        h = x + layer.self_attn(sa_in, sa_in, sa_in, attn_mask=mask, need_weights=False)[0]
    ca_in = layer.norm2(h) if norm_first else layer.norm1(h)
    # the dense references: the functions the model computes, written out by hand
    causal = _top_sv(lambda u: layer.self_attn(u, u, u, attn_mask=mask, need_weights=False)[0], sa_in)
    unmasked = _top_sv(lambda u: layer.self_attn(u, u, u, need_weights=False)[0], sa_in)
    cross = _top_sv(lambda u: layer.multihead_attn(u, mem, mem, need_weights=False)[0], ca_in)
    selfish = _top_sv(lambda u: layer.multihead_attn(u, u, u, need_weights=False)[0], ca_in)
    whole = _top_sv(lambda u: layer(u, mem, tgt_mask=mask, tgt_is_causal=True), x)
    assert abs(causal / unmasked - 1) > 0.05 and abs(cross / selfish - 1) > 0.05   # the test can tell them apart
    assert math.isclose(result["layer.self_attn"].sigma_max, causal, rel_tol=1e-8)
    assert math.isclose(result["layer.multihead_attn"].sigma_max, cross, rel_tol=1e-8)
    assert math.isclose(result["layer"].sigma_max, whole, rel_tol=1e-8)
    assert result["layer"].kind == "transformer" and result["layer"].claims[0].claim == "PLN-02"


def test_torchvision_mbconv_cnblock_and_a_bare_block_are_found_by_their_residual_addition():
    from torchvision.models.convnext import CNBlock
    from torchvision.models.efficientnet import MBConv, MBConvConfig

    mb = MBConv(MBConvConfig(1, 3, 1, 8, 8, 1), 0.0, nn.BatchNorm2d)
    for model, shape in ((mb, (2, 8, 5, 5)), (CNBlock(8, 1e-6, 0.0), (1, 8, 5, 5)),
                         (BasicBlock(4, 4), (2, 4, 5, 5))):
        torch.manual_seed(0)
        result = audit(model, shape, settings=EXACT)
        top = next(r for r in result.blocks if r.name == blocks.MODEL)
        assert top.kind == "residual", type(model).__name__
        res02 = next(c for c in top.claims if c.claim == "RES-02")
        assert res02.holds is True and res02.measured.value <= res02.reference * (1 + EXACT.tol)


class Doubler(nn.Module):
    """x + f(x) written by hand, with a shape-changing sibling that adds its input too (broadcast)."""

    def __init__(self) -> None:
        super().__init__()
        self.f = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x).tanh()


def test_a_hand_written_residual_block_is_recognised_and_its_branch_measured():
    torch.manual_seed(0)
    model = nn.Sequential(Doubler(), nn.Linear(4, 4), Doubler())
    result = {r.name: r for r in audit(model, (3, 4), settings=EXACT).blocks}
    assert set(result) == {"0", "2"} and all(r.kind == "residual" for r in result.values())
    net = blocks.at_initialisation(model, torch.float64)
    x = torch.randn((3, 4), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    branch = next(c for c in result["0"].claims if c.claim == "RES-02").note
    assert math.isclose(float(branch.split("=")[1]), _top_sv(lambda u: net[0].f(u).tanh(), x), rel_tol=1e-3)


def test_claims_not_applied_are_stated_and_counted(tmp_path, monkeypatch, capsys):
    (tmp_path / "plain_nets.py").write_text(
        "from torch import nn\n"
        "def mlp():\n"
        "    return nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2))\n"
        "def normed():\n"
        "    return nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path)] + sys.path)
    assert cli.main(["audit", "plain_nets:mlp", "--input-shape", "2,4", "--out", "o"]) == 0
    out = capsys.readouterr().out
    assert "0 blocks measured" in out and "no block gradcore's claims are about was found in Sequential" in out
    assert "no block gradcore's claims are about" in (tmp_path / "o" / "mlp.md").read_text()
    assert cli.main(["audit", "plain_nets:normed", "--input-shape", "2,4", "--out", "o"]) == 0
    out = capsys.readouterr().out
    assert "0 claim check(s) with a verdict, 0 fail; 1 claim(s) not applied" in out
    assert "| `1` | NORM-03 | about BatchNorm; this is LayerNorm" in (tmp_path / "o" / "normed.md").read_text()


def test_an_rms_gain_above_sigma_max_says_whether_its_interval_allows_it():
    from gradcore.measure.measurement import Kind, Measurement

    def rms(value, interval):
        return Measurement(value, Kind.STATISTICAL, interval=interval, n=4)
    r = measure.BlockResult("b", "norm", "X", (1,), Measurement(8.732), 0.0, 3, rms(8.787, (8.2, 9.4)), 0.19, 0.0)
    assert "the estimate's error allows it" in render.rms_cell(r)
    r.rms = rms(8.787, (8.75, 8.82))
    assert "beyond its 95 % interval" in render.rms_cell(r)
    r.rms = rms(8.0, (7.5, 8.5))
    assert render.rms_cell(r) == "8 ± 0.19"


# --- issue 20 item 2: the audit through the measuring core ------------------------------------------

AUDITED_NETS = (
    "from torch import nn\n"
    "from torchvision.models.resnet import BasicBlock\n"
    "def net():\n"
    "    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), BasicBlock(4, 4))\n"
    "def wider():\n"
    "    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), BasicBlock(4, 4, groups=1))\n")


@pytest.fixture
def audited_nets(tmp_path, monkeypatch):
    (tmp_path / "audited_nets.py").write_text(AUDITED_NETS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path)] + sys.path)
    return tmp_path


def test_every_audit_quantity_is_a_measurement_with_a_kind_and_a_reproduction(audited_nets):
    from gradcore.measure.measurement import Kind
    from gradcore.verify import reproduce

    assert cli.main(["audit", "audited_nets:net", "--input-shape", "2,3,5,5", "--out", "o", "--max-steps", "8"]) == 0
    doc = json.loads((audited_nets / "o" / "net.json").read_text())
    constants = [k for c in doc["clauses"] for k in c["constants"]]
    assert {k["kind"] for k in constants} >= {Kind.NUMERIC.value, Kind.STATISTICAL.value}
    assert all(k["reproduction"] and k["sizes"]["input"] for k in constants)
    rms = next(k for k in constants if k["name"] == "RMS gain")
    assert rms["interval"][0] <= rms["measured"] <= rms["interval"][1] and rms["n"] == 4
    # the snippet rebuilds the model from its factory spec and prints the recorded value again
    env_path = os.pathsep.join([str(Path(__file__).resolve().parent.parent), str(audited_nets)])
    for name in ("σ_max", "RMS gain", "RES-05: ‖Jᵀg‖/‖g‖, Gaussian upstream g"):
        k = next(k for c in doc["clauses"] if c["id"] == "2" for k in c["constants"] if k["name"] == name)
        proc = subprocess.run([sys.executable, "-c", k["reproduction"]], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": env_path}, cwd=audited_nets, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert reproduce.agrees(k, float(proc.stdout.split()[-1])), (name, k["measured"], proc.stdout)


def test_an_audit_is_a_results_document_report_and_guard_read(audited_nets, capsys):
    from gradcore.verify import results

    args = ["--input-shape", "2,3,5,5", "--max-steps", "8"]
    assert cli.main(["audit", "audited_nets:net", *args, "--out", "a"]) == 0
    assert cli.main(["audit", "audited_nets:net", *args, "--out", "b"]) == 0
    assert cli.main(["audit", "audited_nets:net", *args, "--out", "c", "--seed", "1"]) in (0, 1)   # 1: RES-05 fails
    a, b, c = (audited_nets / d / "net.json" for d in "abc")
    assert results.read(a)["technique"] == {"name": "net", "kind": "audit", "spec": "audited_nets:net"}
    capsys.readouterr()
    assert cli.main(["report", str(a), "--format", "summary"]) == 0
    assert "audit        net" in capsys.readouterr().out
    assert cli.main(["guard", str(b), "--baseline", str(a)]) == 0   # the same audit again: no change
    assert cli.main(["guard", str(c), "--baseline", str(a)]) == 1   # other weights: the guard sees it
    assert "audit:net:2" in capsys.readouterr().out
    bad = json.loads(a.read_text())
    bad["audit"]["mode"] = "inference"   # the schema knows the audit document's fields
    (audited_nets / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ResultsError):
        results.read(audited_nets / "bad.json")


# --- issue 20 item 3: --mode and --weights --------------------------------------------------------

def test_eval_mode_reads_running_statistics_and_is_recorded(audited_nets):
    args = ["audit", "audited_nets:net", "--input-shape", "2,3,5,5", "--max-steps", "30"]
    threads = torch.get_num_threads()
    assert cli.main([*args, "--out", "e", "--mode", "eval", "--threads", "1"]) in (0, 1)
    assert torch.get_num_threads() == threads   # --threads holds while measuring only
    doc = json.loads((audited_nets / "e" / "net.json").read_text())
    assert doc["audit"]["mode"] == "eval" and doc["environment"]["profile"] == "audit-eval"
    assert doc["audit"]["threads"] == 1
    bn = next(c for c in doc["clauses"] if c["id"] == "1")
    sigma = next(k for k in bn["constants"] if k["name"] == "σ_max")
    norm03 = next(k for k in bn["constants"] if k["name"].startswith("NORM-03"))
    # a fresh BatchNorm in eval mode is x / √(1 + ε): its Jacobian is that multiple of the identity
    assert math.isclose(sigma["measured"], 1 / math.sqrt(1 + 1e-5), rel_tol=1e-5) and norm03["holds"] is True
    assert "running statistics" in (audited_nets / "e" / "net.md").read_text()


def test_weights_are_loaded_recorded_and_must_match(audited_nets, capsys):
    from audited_nets import net, wider

    torch.manual_seed(0)
    same = net()
    torch.save(same.state_dict(), audited_nets / "same.pt")
    moved = {k: t + 0.5 * torch.randn(t.shape) if t.is_floating_point() else t for k, t in same.state_dict().items()}
    torch.save({"state_dict": moved}, audited_nets / "moved.pt")
    torch.save(nn.Linear(3, 3).state_dict(), audited_nets / "other.pt")
    args = ["audit", "audited_nets:net", "--input-shape", "2,3,5,5", "--max-steps", "8"]
    for out, extra in (("init", []), ("same", ["--weights", "same.pt"]), ("moved", ["--weights", "moved.pt"])):
        assert cli.main([*args, "--out", out, *extra]) in (0, 1)
    docs = {d: json.loads((audited_nets / d / "net.json").read_text()) for d in ("init", "same", "moved")}
    assert docs["same"]["audit"]["weights"] == str(audited_nets / "same.pt") and docs["init"]["audit"]["weights"] is None
    block = {d: next(c for c in doc["clauses"] if c["id"] == "2")["constants"][0]["measured"] for d, doc in docs.items()}
    assert block["same"] == block["init"]   # seed 0's own weights loaded back: the same bits measured
    assert not math.isclose(block["moved"], block["init"], rel_tol=1e-2)   # other weights: another σ_max
    assert "same.pt" in docs["same"]["clauses"][0]["constants"][0]["reproduction"]
    capsys.readouterr()
    for weights, message in (("other.pt", "do not match audited_nets:net: 19 missing (0.weight, 0.bias, 1.weight, …); 2 unexpected (weight, bias)"),
                             ("nothing.pt", "no such file"), ("net.md", None)):
        assert cli.main([*args, "--out", "bad", "--weights", weights if weights != "net.md" else "init/net.md"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and (message is None or message in err), err
    assert not (audited_nets / "bad").exists()


def test_the_audit_records_its_device_and_refuses_cuda_it_does_not_have(tmp_path, monkeypatch, capsys):
    """Issue 20 §6: ``--device`` (cpu, cuda, auto); the report and every reproduction say where it ran."""
    (tmp_path / "tinyres.py").write_text(
        "import torch\nfrom torch import nn\n"
        "class Res(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.f = nn.Linear(6, 6)\n"
        "    def forward(self, x):\n        return x + self.f(x)\n"
        "def net():\n    return nn.Sequential(Res(), Res())\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path)] + sys.path)
    assert cli.main(["audit", "tinyres:net", "--input-shape", "2,6", "--out", "out", "--device", "auto"]) in (0, 1)
    doc = json.loads((tmp_path / "out" / "net.json").read_text(encoding="utf-8"))
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert list(doc["environment"]["devices"]) == [want]
    snippets = [c["reproduction"] for b in doc["clauses"] for c in b["constants"] if c.get("reproduction")]
    assert snippets and all(f"device={want!r}" in s for s in snippets)
    capsys.readouterr()
    if not torch.cuda.is_available():
        assert cli.main(["audit", "tinyres:net", "--input-shape", "2,6", "--out", "out", "--device", "cuda"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--device cuda: this torch sees no CUDA device" in err
        with pytest.raises(InputError, match="settings: device must be 'cpu'"):
            audit(nn.Sequential(nn.Linear(2, 2)), (1, 2), settings=AuditOptions(device="cuda"))

"""gradcore audit on ``transformers`` and ``timm`` models built from small configs (issue 20 item 3):
their layers found, each measured on the call the model makes to it (masks, rotary embeddings,
keyword arguments), against dense Jacobians of the same block driven through the model's own forward."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gradcore import cli, jacobian
from gradcore.audit import AuditOptions, audit, blocks, measure

transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")
transformers.logging.set_verbosity_error()   # small vocabularies make it warn about GPT-2's special token ids

EXACT = AuditOptions(dtype=torch.float64, tol=1e-10, max_steps=2000, probes=8, seed=0)
IDS = AuditOptions(**{**EXACT.__dict__, "inputs": "ids"})


def gpt2():
    return transformers.GPT2Model(transformers.GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=50,
                                                          n_positions=16))


def bert():
    return transformers.BertModel(transformers.BertConfig(num_hidden_layers=2, hidden_size=16, num_attention_heads=2,
                                                          intermediate_size=32, vocab_size=50))


def llama():
    return transformers.LlamaModel(transformers.LlamaConfig(num_hidden_layers=2, hidden_size=16, num_attention_heads=2,
                                                            num_key_value_heads=1, intermediate_size=32,
                                                            vocab_size=50))


def vit():
    return transformers.ViTModel(transformers.ViTConfig(num_hidden_layers=2, hidden_size=16, num_attention_heads=2,
                                                        intermediate_size=32, image_size=16, patch_size=8))


# factory, input shape, options, the layer class found as a transformer block, its norm class
MODELS = {"gpt2": (gpt2, (1, 5), IDS, "GPT2Block", "LayerNorm"),
          "bert": (bert, (1, 5), IDS, "BertLayer", "LayerNorm"),
          "llama": (llama, (1, 5), IDS, "LlamaDecoderLayer", "LlamaRMSNorm"),
          "vit": (vit, (1, 3, 16, 16), EXACT, "ViTLayer", "LayerNorm")}


def through_model(net, name: str, x: torch.Tensor):
    """u ↦ block ``name``'s output when the model runs on ``x`` with that block's input stream replaced
    by u: the function the model computes with the block, with no captured call involved."""
    module = net.get_submodule(name)

    def f(u: torch.Tensor) -> torch.Tensor:
        out = {}
        pre = module.register_forward_pre_hook(lambda m, a, k: blocks.with_stream(a, k, u), with_kwargs=True)
        post = module.register_forward_hook(lambda m, a, o: out.update(y=blocks.first_tensor(o)))   # None: output kept
        try:
            net(x)
        finally:
            pre.remove()
            post.remove()
        return out["y"]
    return f


@pytest.mark.parametrize("case", sorted(MODELS))
def test_library_layers_are_found_and_measured_on_the_models_own_call(case):
    factory, shape, options, layer, norm = MODELS[case]
    torch.manual_seed(0)
    model = factory()
    result = audit(model, shape, settings=options)
    kinds = {r.type: r.kind for r in result.blocks}
    assert kinds[layer] == "transformer" and kinds[norm] == "norm"
    assert any(k == "attention" for k in kinds.values())
    net = blocks.at_initialisation(model, torch.float64)
    x = measure.model_input(net, shape, options, torch.Generator().manual_seed(0))
    calls = blocks.capture(net, blocks.candidates(net), x)
    for r in (r for r in result.blocks if r.kind in ("transformer", "attention")):
        J = jacobian.jacobian(through_model(net, r.name, x), calls[r.name].x).detach()
        assert math.isclose(r.sigma_max, float(torch.linalg.svdvals(J.reshape(J.shape[0], -1))[0]),
                            rel_tol=1e-8), (case, r.name)
    first, *stages, last = [n for n, _ in result.profile]
    assert first == ("embedding output" if options.inputs == "ids" else "input") and last == "output"
    assert stages == [r.name for r in result.blocks if r.type == layer]   # the depth axis: every layer
    assert all(g > 0 and math.isfinite(g) for _, g in result.profile)


def test_the_embedding_output_gradient_is_the_first_layers_input_gradient():
    torch.manual_seed(0)
    model = gpt2()
    result = audit(model, (1, 5), settings=IDS)
    net = blocks.at_initialisation(model, torch.float64)
    gen = torch.Generator().manual_seed(0)
    ids = measure.model_input(net, (1, 5), IDS, gen)
    # the same L = ⟨g, y⟩ (g drawn after the ids from the same stream), differentiated by hand at h.0's input
    h0 = {}
    hook = net.h[0].register_forward_pre_hook(
        lambda m, a, k: blocks.with_stream(a, k, h0.setdefault("h", a[0].detach().requires_grad_(True))),
        with_kwargs=True)
    y = net(ids).last_hidden_state
    hook.remove()
    (y * torch.randn(y.shape, generator=gen, dtype=y.dtype)).sum().backward()
    assert result.profile[0][0] == "embedding output"
    assert math.isclose(result.profile[0][1], float(h0["h"].grad.norm()), rel_tol=1e-10)


def test_timm_convnext_block_is_a_residual_block_through_its_identity_shortcut():
    from timm.models.convnext import ConvNeXtBlock

    torch.manual_seed(0)
    block = ConvNeXtBlock(8, ls_init_value=1.0)   # layer scale 1: the branch is not ~1e-6 of the identity
    result = {r.name: r for r in audit(block, (1, 8, 5, 5), settings=EXACT).blocks}
    top = result[blocks.MODEL]
    assert top.kind == "residual" and result["conv_dw"].kind == "depthwise"
    res02 = next(c for c in top.claims if c.claim == "RES-02")
    assert res02.holds is True and 1.05 < res02.measured.value <= res02.reference * (1 + EXACT.tol)
    net = blocks.at_initialisation(block, torch.float64)
    x = torch.randn((1, 8, 5, 5), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    J = jacobian.jacobian(net, x).detach()
    assert math.isclose(top.sigma_max, float(torch.linalg.svdvals(J.reshape(J.shape[0], -1))[0]), rel_tol=1e-8)


def test_token_ids_need_an_embedding():
    from gradcore import GradcoreInputError

    with pytest.raises(GradcoreInputError, match="^settings: inputs='ids' needs a model that embeds token ids"):
        audit(torch.nn.Linear(4, 4), (2, 4), settings=IDS)


GPT2_CONFIG = "n_layer=1,n_embd=8,n_head=2,vocab_size=40,n_positions=8"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_cli_builds_from_a_config_and_its_reproductions_rebuild_it(workdir):
    assert cli.main(["audit", "transformers:GPT2Model", "--config", GPT2_CONFIG, "--input-shape", "1,4",
                     "--out", "o", "--max-steps", "30"]) == 0
    doc = json.loads((workdir / "o" / "GPT2Model.json").read_text())
    assert doc["audit"]["inputs"] == "ids" and doc["audit"]["config"] == GPT2_CONFIG
    assert doc["audit"]["profile"][0][0] == "embedding output"
    assert "embedding output" in (workdir / "o" / "GPT2Model.md").read_text()
    from gradcore.verify import reproduce

    k = next(k for c in doc["clauses"] if c["id"] == "h.0" for k in c["constants"] if k["name"] == "σ_max")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.run([sys.executable, "-c", k["reproduction"]], capture_output=True, text=True, env=env,
                          cwd=workdir, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert reproduce.agrees(k, float(proc.stdout.split()[-1])), (k["measured"], proc.stdout)


def test_cli_reads_a_config_file_and_a_timm_model_name(workdir):
    transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=40, n_positions=8).to_json_file("tiny.json")
    assert cli.main(["audit", "transformers:GPT2Model", "--config", "tiny.json", "--input-shape", "1,4",
                     "--out", "o", "--max-steps", "5"]) == 0
    assert json.loads((workdir / "o" / "GPT2Model-tiny.json").read_text())["audit"]["config"] == str(workdir / "tiny.json")
    assert cli.main(["audit", "timm:create_model", "--config", "test_convnext", "--input-shape", "1,3,32,32",
                     "--out", "o", "--max-steps", "3", "--probes", "2"]) in (0, 1)
    doc = json.loads((workdir / "o" / "create_model-test_convnext.json").read_text())
    assert doc["audit"]["inputs"] == "float"
    assert any(c["facts"]["type"] == "ConvNeXtBlock" and c["facts"]["kind"] == "residual" for c in doc["clauses"])


@pytest.mark.parametrize("args, message", [
    (["transformers:GPT2Model", "--config", "n_layers=2"], "--config: GPT2Config has no n_layers"),
    (["transformers:GPT2Model", "--config", "nothing.json"], "nothing.json: no such file"),
    (["transformers:GPT2Model", "--config", "n_layer"], "--config expects a .json file or key=value,... pairs"),
    (["timm:create_model", "--config", "no_such_net"], "timm:create_model('no_such_net') failed: RuntimeError"),
    (["transformers:GPT2Model"], "transformers:GPT2Model needs arguments (config)"),
    (["gradcore_absent_extra:Model"], "gradcore_absent_extra:Model needs the gradcore_absent_extra package: "
                                      "pip install 'gradcore[hf]'"),
])
def test_bad_configs_and_missing_extras_are_one_line_exit_2(workdir, capsys, monkeypatch, args, message):
    from gradcore.audit import model

    monkeypatch.setitem(model.EXTRAS, "gradcore_absent_extra", "hf")   # an extra this machine lacks
    assert cli.main(["audit", *args, "--input-shape", "1,4", "--out", "o"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert not (workdir / "o").exists()


LLAMA_CONFIG = ("num_hidden_layers=1,hidden_size=16,num_attention_heads=2,num_key_value_heads=1,"
                "intermediate_size=32,vocab_size=50")


def test_two_audits_of_a_library_model_measure_the_same_weights_and_ids(workdir):
    docs = []
    for state in (1, 2):
        torch.manual_seed(state)   # whatever the process drew before must not change weights or token ids
        assert cli.main(["audit", "transformers:LlamaModel", "--config", LLAMA_CONFIG, "--input-shape", "2,4",
                         "--out", f"r{state}", "--max-steps", "8"]) == 0
        docs.append(json.loads((workdir / f"r{state}" / "LlamaModel.json").read_text()))
    # same process, threads and code path: seed 0 must pin every bit of every value
    assert [c["constants"] for c in docs[0]["clauses"]] == [c["constants"] for c in docs[1]["clauses"]]
    assert docs[0]["audit"]["profile"] == docs[1]["audit"]["profile"]
    assert {c["facts"]["type"] for c in docs[0]["clauses"]} >= {"LlamaDecoderLayer", "LlamaAttention", "LlamaRMSNorm"}

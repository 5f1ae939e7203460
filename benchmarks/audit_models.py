"""The three networks of ``reports/audits/`` and the commands that audit them.

Run from the repository root: ``python benchmarks/audit_models.py [NAME ...]`` regenerates
``reports/audits/{resnet18,mobilenet_v2,gpt2_small_encoder}.{md,json}`` (needs torchvision) and the
``transformers`` / ``timm`` audits of ``LIBRARY_AUDITS`` (the hf and timm extras). One torch
thread: on a shared machine two threads spin waiting for each other and cost ~10× the CPU time.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from torch import nn

from gradcore import cli

AUDITS = (("torchvision.models:resnet18", "1,3,224,224"),
          ("torchvision.models:mobilenet_v2", "1,3,224,224"),
          ("benchmarks.audit_models:gpt2_small_encoder", "1,128,768"))
# transformers / timm models built from their configs at initialisation (the hf and timm extras):
# (target, --config, input shape, report name). Sizes are the real ones unless the name says otherwise.
LIBRARY_AUDITS = (
    ("transformers:GPT2Model", "n_layer=12", "1,128", "gpt2_small"),   # GPT2Config's defaults are GPT-2 small
    ("transformers:BertModel", "num_hidden_layers=12", "1,128", "bert_base"),   # BertConfig's: BERT-base
    ("transformers:LlamaModel", "hidden_size=512,intermediate_size=1376,num_hidden_layers=8,num_attention_heads=8,"
                                "num_key_value_heads=4,vocab_size=32000", "1,128", "llama_small"),
    ("transformers:ViTModel", "num_hidden_layers=12,image_size=224,patch_size=16", "1,3,224,224", "vit_b16"),
    ("timm:create_model", "convnext_tiny", "1,3,64,64", "convnext_tiny_64px"),   # ConvNeXt-T at 64×64, not 224
)


def gpt2_small_encoder() -> nn.TransformerEncoder:
    """GPT-2-small sizes: 12 layers, width 768, 12 heads, MLP 3072, GELU, Pre-LN (as GPT-2)."""
    layer = nn.TransformerEncoderLayer(768, 12, 3072, activation="gelu", batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, 12, enable_nested_tensor=False)


def _worst(clauses: list[dict], kinds: tuple[str, ...]) -> str:
    found = [(k["measured"], c["id"]) for c in clauses if c["facts"]["kind"] in kinds
             for k in c["constants"] if k["name"] == "σ_max"]
    return f"{max(found)[0]:.4g} (`{max(found)[1]}`)" if found else "—"


def summary_table(names: list[str], root: Path = Path("reports/audits")) -> str:
    """The README's table of audits: worst layer and worst block σ_max, ‖∂L/∂h‖ first / output, failing claims."""
    rows = ["| audit | input | layers σ_max, worst | any block σ_max, worst | ‖∂L/∂h‖ first / output | "
            "claim checks (fail) | wall / CPU s |", "|---|---|---|---|---|---|---|"]
    for name in names:
        doc = json.loads((root / f"{name}.json").read_text())
        a, clauses = doc["audit"], doc["clauses"]
        (first, g0), (_, g1) = a["profile"][0], a["profile"][-1]
        judged = [k for c in clauses for k in c["constants"] if k.get("holds") is not None]
        fails = sorted({f"{k['name'].split(':')[0]} on `{c['id']}`" for c in clauses for k in c["constants"]
                        if k.get("holds") is False})
        rows.append(f"| [{name}]({name}.md) | {'×'.join(map(str, a['input_shape']))} {a['inputs']} | "
                    f"{_worst(clauses, ('transformer', 'residual'))} | {_worst(clauses, tuple(KINDS))} | "
                    f"{g0 / g1:.3g} ({first}) | {len(judged)} ({len(fails)}{': ' + ', '.join(fails[:3]) if fails else ''}) | "
                    f"{doc['environment']['wall_time_s']:.0f} / {a['cpu_s']:.0f} |")
    return "\n".join(rows)


KINDS = ("residual", "transformer", "attention", "depthwise", "norm")


def main(argv: list[str] | None = None) -> int:
    only = set(argv or sys.argv[1:])
    status = 0
    for target, shape in AUDITS:
        if not only or target.split(":")[1] in only:
            status = max(status, cli.main(["audit", target, "--input-shape", shape, "--out", "reports/audits",
                                           "--threads", "1"]))
    for target, config, shape, name in LIBRARY_AUDITS:
        if not only or name in only:
            status = max(status, cli.main(["audit", target, "--config", config, "--input-shape", shape,
                                           "--name", name, "--out", "reports/audits", "--threads", "1"]))
    done = [name for *_, name in LIBRARY_AUDITS if (Path("reports/audits") / f"{name}.json").is_file()]
    print(summary_table(done))
    return status


if __name__ == "__main__":
    sys.exit(main())

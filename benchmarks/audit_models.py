"""The three networks of ``reports/audits/`` and the commands that audit them.

Run from the repository root: ``python benchmarks/audit_models.py`` regenerates
``reports/audits/{resnet18,mobilenet_v2,gpt2_small_encoder}.{md,json}`` (needs torchvision). One torch
thread: on a shared machine two threads spin waiting for each other and cost ~10× the CPU time.
"""
from __future__ import annotations

import sys

from torch import nn

from gradcore import cli

AUDITS = (("torchvision.models:resnet18", "1,3,224,224"),
          ("torchvision.models:mobilenet_v2", "1,3,224,224"),
          ("benchmarks.audit_models:gpt2_small_encoder", "1,128,768"))


def gpt2_small_encoder() -> nn.TransformerEncoder:
    """GPT-2-small sizes: 12 layers, width 768, 12 heads, MLP 3072, GELU, Pre-LN (as GPT-2)."""
    layer = nn.TransformerEncoderLayer(768, 12, 3072, activation="gelu", batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, 12, enable_nested_tensor=False)


def main(argv: list[str] | None = None) -> int:
    only = set(argv or sys.argv[1:])
    status = 0
    for target, shape in AUDITS:
        if not only or target.split(":")[1] in only:
            status = max(status, cli.main(["audit", target, "--input-shape", shape, "--out", "reports/audits",
                                           "--threads", "1"]))
    return status


if __name__ == "__main__":
    sys.exit(main())

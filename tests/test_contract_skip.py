"""The ``dense`` and ``unet`` kinds of `gradcore check` (gradcore/verify/contracts/skip.py).

Each gating clause is held by a skip architecture written as a user would (a concatenating ReLU
block, a U-Net with additive long skips) and violated by its broken twin (summing the features;
an encoder–decoder without the long skips); factories whose k or depth cannot be varied are refused.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradcore.conv import standard_conv
from gradcore.dense import DenseBlock
from gradcore.unet import UNet
from gradcore.verify.check import builtin_results, infer_kind, settings_for
from gradcore.verify.contracts import contract
from gradcore.errors import CheckError
from gradcore.verify.contracts import skip as S

from .contract_helpers import run_clauses, run_readme_example


class MyDense(nn.Module):
    """x_i = ReLU(W_i [x_0, …, x_{i−1}]) with He weights; ``concat`` joins features, else sums them."""

    def __init__(self, k: int, width: int, concat: bool = True) -> None:
        super().__init__()
        self.concat = concat
        self.layers = nn.ModuleList(nn.Linear(width * (i + 1) if concat else width, width, bias=False)
                                    for i in range(k))
        for layer in self.layers:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for layer in self.layers:
            joined = torch.cat(feats, -1) if self.concat else sum(feats)
            feats.append(torch.relu(layer(joined)))
        return torch.cat(feats, -1) if self.concat else sum(feats)


def my_dense(k: int, width: int) -> nn.Module:
    return MyDense(k, width)


def my_summing(k: int, width: int) -> nn.Module:
    return MyDense(k, width, concat=False)


class EncoderDecoder(nn.Module):
    """Conv–ReLU–pool down ``depth`` levels and back up; the encoder map of each level is added to
    the decoder's input there (``skips``) or not at all."""

    def __init__(self, depth: int, skips: bool = True, c: int = 8) -> None:
        super().__init__()
        self.skips = skips
        self.down = nn.ModuleList(nn.Conv2d(1 if i == 0 else c, c, 3, padding=1) for i in range(depth))
        self.mid = nn.Conv2d(c, c, 3, padding=1)
        self.up = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1) for _ in range(depth))
        self.head = nn.Conv2d(c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        saved = []
        for conv in self.down:
            x = torch.relu(conv(x))
            saved.append(x)
            x = nn.functional.avg_pool2d(x, 2)
        x = torch.relu(self.mid(x))
        for conv, s in zip(self.up, reversed(saved)):
            x = nn.functional.interpolate(x, scale_factor=2.0)
            x = torch.relu(conv(x + s if self.skips else x))
        return self.head(x)


def additive_unet(depth: int) -> nn.Module:
    return EncoderDecoder(depth)


def autoencoder(depth: int) -> nn.Module:
    return EncoderDecoder(depth, skips=False)


def _verdict(kind: str, obj, cid: str) -> str:
    return run_clauses(kind, obj, cid, name="t")[cid].verdict


def test_dense_builtins():
    rows = {n: {r.clause: r.verdict for r in rs} for n, rs in builtin_results("dense", settings_for()).items()}
    assert rows["DenseBlock (concat, tanh)"] == {"sqrt-k-growth": "holds", "versus-sum": "holds"}
    assert rows["concat, ReLU, He gain"]["sqrt-k-growth"] != "violated"
    assert rows["sum, tanh"]["sqrt-k-growth"] == "violated"


def test_unet_builtins():
    rows = {n: {r.clause: r.verdict for r in rs} for n, rs in builtin_results("unet", settings_for()).items()}
    assert rows == {"UNet (long skips)": {"long-skips": "holds"}, "UNet, skips off": {"long-skips": "violated"}}


def test_a_users_concatenating_block_holds_and_its_summing_twin_violates():
    assert _verdict("dense", my_dense, "sqrt-k-growth") == "holds"
    assert _verdict("dense", my_summing, "sqrt-k-growth") == "violated"


def test_a_users_unet_with_additive_skips_holds_and_the_plain_autoencoder_violates():
    assert _verdict("unet", additive_unet, "long-skips") == "holds"
    assert _verdict("unet", autoencoder, "long-skips") == "violated"


class Wide(nn.Module):
    def __init__(self, k: int, width: int) -> None:
        super().__init__()
        self.lin = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


@pytest.mark.parametrize("kind, obj, message", [
    ("dense", lambda width: DenseBlock(2, width), r"must accept \(k, width\)"),
    ("dense", DenseBlock(2, 16), "not a module built already"),
    ("dense", Wide, "must add layers as k grows"),
    ("dense", lambda k, w: nn.Conv2d(w, w, 1), r"failed on a \(4, 16\) input"),
    ("dense", lambda k, w: nn.Sequential(nn.Linear(w, w), nn.Unflatten(1, (4, 4))), r"returned \(4, 4, 4\)"),
    ("unet", UNet(2), "its depth cannot be varied"),
    ("unet", lambda depth: UNet(2), "must build a deeper model"),
    ("unet", standard_conv, "must be the depth, not a width"),
    ("unet", lambda depth: nn.Sequential(UNet(depth), nn.Flatten()), r"must map N×C×H×W to N×C′×H′×W′"),
    ("unet", lambda depth: nn.Linear(depth, 2), "holding an nn.Conv2d"),
])
def test_bad_factories_are_one_line_check_errors(kind, obj, message):
    with pytest.raises(CheckError, match=message) as e:
        contract(kind).subject(obj, "t", "make = ...", settings_for())
    assert "\n" not in str(e.value)


def test_kind_inference():
    settings = settings_for()
    assert infer_kind(DenseBlock, settings).kind == "dense"
    assert infer_kind(my_dense, settings).kind == "dense"
    assert infer_kind(S.unet_with_skips, settings).kind == "unet"
    assert infer_kind(additive_unet, settings).kind == "unet"
    assert infer_kind(standard_conv, settings).kind == "convolution"
    assert not contract("unet").looks_like(math.sqrt, settings)
    assert not contract("dense").looks_like(torch.add, settings)


@pytest.mark.parametrize("module", ["mydense", "myunet"])
def test_the_readme_examples_run_as_written(module, tmp_path, monkeypatch, capsys):
    run_readme_example(f"{module}.py", tmp_path, monkeypatch, capsys)

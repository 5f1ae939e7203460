"""The transformer kind (gradcore/verify/contracts/transformer.py): built-ins, broken blocks, bad input, inference."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradcore import transformer as tr
from gradcore.measure import transformer as M
from gradcore.testing import check_technique
from gradcore.verify.check import builtin_results, infer_kind, settings_for
from gradcore.verify.contracts import contract

from .readme_examples import run_example
from .contract_helpers import clause_of, refuses_in_one_line

LAYERS = 16   # the depth DeepNorm's α and β are set for (the contract's stacks are 16 blocks deep)


class DeepNormBlock(nn.Module):
    """DeepNorm (Wang et al. 2022): x ← LN(α·x + G(x)), α = (2N)^{1/4}, G's value/output/FFN weights ×β."""

    def __init__(self, d, heads=4):
        super().__init__()
        self.alpha, beta = (2 * LAYERS) ** 0.25, (8 * LAYERS) ** -0.25
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ff1, self.ff2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        q, k, v = self.attn.in_proj_weight.data.chunk(3)
        for w, gain in ((q, 1.0), (k, 1.0), (v, beta), (self.attn.out_proj.weight.data, beta),
                        (self.ff1.weight.data, beta), (self.ff2.weight.data, beta)):
            nn.init.xavier_normal_(w, gain=gain)

    def residual(self, x, branch):
        return self.alpha * x + branch

    def forward(self, x):
        x = self.norm1(self.residual(x, self.attn(x, x, x, need_weights=False)[0]))
        return self.norm2(self.residual(x, self.ff2(F.gelu(self.ff1(x)))))


class MisappliedDeepNorm(DeepNormBlock):
    """A real slip: α multiplies the branch, LN(x + α·G(x)), instead of the residual."""

    def residual(self, x, branch):
        return x + self.alpha * branch


class PostLNCalledPreLN(tr.PostLNBlock):
    """Computes LN(x + Attn(x)) … (Post-LN) but declares torch's norm_first=True (Pre-LN)."""

    norm_first = True

    def __init__(self, d):
        super().__init__(d, 4, 2 * d)


class PreLN(tr.PreLNBlock):
    def __init__(self, d):
        super().__init__(d, 4, 2 * d)


def torch_pre_ln(d):
    """torch's own Pre-LN encoder layer (norm_first=True), dropout off."""
    return nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.0, batch_first=True, norm_first=True)


class Widens(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.lin = nn.Linear(d, 2 * d)

    def forward(self, x):
        return self.lin(x)


class PerToken(nn.Module):
    """A residual MLP: d -> d, but it never mixes tokens (no attention)."""

    def __init__(self, d):
        super().__init__()
        self.lin = nn.Linear(d, d)

    def forward(self, x):
        return x + self.lin(x)


def only_width_64(d):
    if d != 64:
        raise ValueError(f"built for d = 64, got {d}")
    return torch_pre_ln(d)


def test_builtins_verdicts():
    got = {name: {r.clause: r.verdict for r in rows}
           for name, rows in builtin_results("transformer", settings_for()).items()}
    holds = {"ln-placement": "holds", "direct-path": "holds", "residual-growth": "holds",
             "last-layer-gradient": "holds"}
    assert got == {"Pre-LN block": holds, "Post-LN block": {**holds, "direct-path": "violated"}}


def test_ln_placement_catches_a_post_ln_block_declared_pre_ln():
    bad = check_technique(PostLNCalledPreLN, kind="transformer")
    placement = clause_of(bad, "ln-placement")
    assert placement.verdict == "violated" and placement.constants["measured placement"] == "post"
    assert placement.counterexample["declared"] == "pre"
    # the witness: its output is normalised (RMS 1 per token at inputs ×100), reproduced in a fresh interpreter
    rms = placement.constants["max |RMS(y_t) − 1|, x ×100"]
    out = subprocess.run([sys.executable, "-c", placement.counterexample["snippet"]], capture_output=True,
                         text=True, check=True)
    assert float(out.stdout) == pytest.approx(rms.value, rel=1e-9, abs=1e-12) and rms.value < 1e-4
    good = check_technique(torch_pre_ln, kind="transformer")
    placement = clause_of(good, "ln-placement")
    assert good.ok and placement.constants["measured placement"] == "pre"
    assert placement.constants["declared (norm_first)"] == "pre"


def test_placement_measures_what_the_block_computes():
    # independent reference: Pre-LN's y − x = Attn(LN x) + FFN(LN(·)) does not grow with x, so ‖y − x‖/‖x‖
    # falls like 1/scale; Post-LN's output has unit RMS per token whatever the input scale
    at = {s: M.block_placement(kind=PreLN, part="passthrough", d_model=16, scale=s).value for s in (10.0, 1000.0)}
    assert at[1000.0] < at[10.0] / 50
    post = M.block_placement(kind=PostLNCalledPreLN, part="output rms", d_model=16, scale=1.0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        block = PostLNCalledPreLN(16).double()
        x = torch.randn(2, 8, 16, dtype=torch.float64)
    with torch.no_grad():
        rms = block(x).pow(2).mean(-1).sqrt()
    assert post.value == pytest.approx(float((rms - 1).abs().max()), abs=1e-12) and post.value < 1e-4


def test_direct_path_catches_deepnorm_with_alpha_on_the_branch():
    good = check_technique(DeepNormBlock, kind="transformer")
    share = clause_of(good, "direct-path").constants["identity-path share, depth 16"]
    assert good.ok and share.interval[0] >= 0.8
    assert clause_of(good, "ln-placement").constants["measured placement"] == "post"
    bad = check_technique(MisappliedDeepNorm, kind="transformer")
    path = clause_of(bad, "direct-path")
    assert path.verdict == "violated" and path.constants["identity-path share, depth 16"].interval[1] < 0.8
    assert [r.clause for r in bad.violations] == ["direct-path"]


def test_identity_share_of_a_user_factory_is_the_theorem_s_for_the_same_block():
    # torch's Pre-LN layer, drawn from the same seeds, is gradcore's Pre-LN block: PLN-02's number
    mine = M.identity_path_share(kind=lambda d: nn.TransformerEncoderLayer(d, 4, 64, dropout=0.0, batch_first=True,
                                                                           norm_first=True), depth=4)
    theirs = M.identity_path_share(kind="pre", depth=4)
    assert mine.value == pytest.approx(theirs.value, rel=1e-6)


def test_residual_growth_and_last_layer_gradient_describe_pre_and_post_ln():
    pre = check_technique(torch_pre_ln, kind="transformer")
    growth = clause_of(pre, "residual-growth")
    assert not growth.gate and growth.constants["trend"].startswith("grows")
    assert growth.constants["slope of E‖x_l‖²/d on l"].interval[0] > 0
    post = check_technique(DeepNormBlock, kind="transformer")
    assert clause_of(post, "residual-growth").constants["trend"].startswith("flat")
    # Theorem 1's orders: Post-LN-like p ≈ 0, Pre-LN p < 0
    p_post = clause_of(post, "last-layer-gradient").constants["exponent p in ‖∂L/∂θ_L‖ ∝ L^p"]
    p_pre = clause_of(pre, "last-layer-gradient").constants["exponent p in ‖∂L/∂θ_L‖ ∝ L^p"]
    assert p_post.interval[0] < 0 < p_post.interval[1] and p_pre.interval[1] < 0


def test_an_instance_is_measured_at_its_own_width():
    layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True)   # norm_first=False
    res = check_technique(layer, kind="transformer")
    placement = clause_of(res, "ln-placement")
    assert placement.verdict == "holds" and placement.constants["measured placement"] == "post"
    assert placement.constants["max |RMS(y_t) − 1|, x ×100"].sizes["d_model"] == 16
    assert [r.clause for r in res.violations] == ["direct-path"]


@pytest.mark.parametrize("obj, message", [
    (Widens, "block must return shape \\(2, 8, 32\\)"),
    (lambda d: nn.MultiheadAttention(d, 4, batch_first=True), "block failed on a \\(2, 8, 32\\) input"),
    (only_width_64, "factory cannot build a block of width 32: ValueError: built for d = 64"),
    (lambda d: 3, "factory returned int for width 32"),
    (nn.Identity(), "cannot tell the block's width"),
    (3, "not callable"),
])
def test_bad_blocks_fail_with_one_line(obj, message):
    refuses_in_one_line(obj, "transformer", message)


def test_kind_inference():
    settings = settings_for()
    assert infer_kind(PreLN, settings).kind == "transformer"
    assert infer_kind(torch_pre_ln, settings).kind == "transformer"
    block = contract("transformer")
    assert block.looks_like(DeepNormBlock, settings) and block.looks_like(torch_pre_ln(16), settings)
    assert not any(block.looks_like(other, settings) for other in (PerToken, nn.LayerNorm, torch.tanh, Widens, 3))


@pytest.mark.parametrize("block", [DeepNormBlock, MisappliedDeepNorm, tr.PostLNBlock(16, 4, 32)],
                         ids=["DeepNorm", "DeepNorm, α on the branch", "Post-LN instance"])
def test_a_block_ending_in_layernorm_is_inferred_a_transformer_not_a_norm(block):
    """Its output is normalised, so the norm kind recognises it too; it mixes tokens, so it is a transformer."""
    found = infer_kind(block, settings_for())
    assert found.kind == "transformer"
    assert "norm kind" in found.reason and "mixes tokens" in found.reason and "\n" not in found.reason
    assert contract("norm").looks_like(block, settings_for())   # the ambiguity is real, and settled


def test_inference_leaves_a_block_instance_as_it_was():
    """The norm kind's smoke test moves a module to float64 in train mode; the next kind asked saw that."""
    block = tr.PostLNBlock(16, 4, 32).eval()
    infer_kind(block, settings_for())
    assert all(p.dtype == torch.float32 for p in block.parameters()) and not any(m.training for m in block.modules())


def test_readme_transformer_example_runs_as_written(tmp_path, monkeypatch, capsys):
    status, shown, got = run_example("mydeepnorm.py", tmp_path, monkeypatch, capsys)
    assert status == 0 and got == shown and ("direct-path", "✅", "holds") in got

"""Issue 24: clauses about a sup/inf search for it, clauses about an expectation add draws until
the interval decides; techniques the old few-draw clauses passed are caught (each test names one)."""
from __future__ import annotations

import json
import math

import pytest
import torch

from gradcore.testing import check_technique

from . import hostile_techniques as H


def _clause(result, cid):
    return next(r for r in result.results if r.clause == cid)


def test_deepnorm_block_amplifies_and_the_search_finds_it():
    """DeepNorm-style LN(2x + G(x)): the old 3-draw maximum was 0.986 ("holds")."""
    res = check_technique(H.DeepNormBlock, kind="residual")
    bound = _clause(res, "block-jacobian-bound")
    assert bound.verdict == "violated"
    found = bound.constants["sup ‖∂block/∂x‖₂ found by search"]
    assert found.value > 1.0 and found.kind.value == "search"
    # the counterexample is a real point: re-measure ‖∂block/∂x‖₂ there independently
    cex = bound.counterexample
    torch.manual_seed(cex["seed"])
    block = H.DeepNormBlock(32).double()
    x = torch.tensor(cex["x"], dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda t: block(t.reshape(x.shape)).reshape(-1), x.reshape(-1))
    assert float(torch.linalg.svdvals(jac).max()) == pytest.approx(found.value, rel=1e-6)


def test_residual_block_with_batchnorm_in_training_mode_is_measured():
    """BN updating running stats in place inside torch.func and a batch of one were gradcore's failures."""
    def make(width):
        return torch.nn.Sequential(torch.nn.BatchNorm1d(width), torch.nn.ReLU(), torch.nn.Linear(width, width))

    class PreActBN(torch.nn.Module):
        def __init__(self, width):
            super().__init__()
            self.f = make(width)

        def forward(self, x):
            return x + self.f(x)

    res = check_technique(PreActBN, kind="residual")
    bound = _clause(res, "block-jacobian-bound")
    assert bound.verdict in ("holds", "violated") and "could not" not in bound.note
    assert math.isfinite(bound.constants["sup ‖∂block/∂x‖₂ found by search"].value)
    assert not [r.clause for r in res.results if r.verdict == "unmeasured"]   # identity-floor: batch of 2


def test_per_tensor_clipping_loses_the_list_s_direction():
    """Each tensor clipped to norm 1 on its own: the old single-tensor search said "holds"."""
    res = check_technique(H.per_tensor_clip, kind="clipping")
    d = _clause(res, "direction")
    assert d.verdict == "violated"
    cos = d.constants["worst cosine found by search (lists of tensors)"]
    assert cos.value < 0.99 and cos.kind.value == "search" and cos.direction == "upper"
    # the list [[3, 4], [0.3, 0.4]] → [[0.6, 0.8], [0.3, 0.4]]: cosine 5.25/(√25.25·√1.25)
    g = [torch.tensor([3.0, 4.0]), torch.tensor([0.3, 0.4])]
    out = torch.cat(H.per_tensor_clip(g))
    ref = float(torch.dot(torch.cat(g), out) / (torch.cat(g).norm() * out.norm()))
    assert ref == pytest.approx(5.25 / math.sqrt(25.25 * 1.25), rel=1e-6) and ref < 0.99
    assert cos.value <= ref + 1e-6      # the search scores "one large tensor beside a small one"
    assert _clause(check_technique(H.per_tensor_clip, kind="clipping"), "step-bound").verdict == "holds"


def test_a_rule_that_zeroes_an_overflowing_gradient_is_a_finding_not_nan():
    """Norm accumulated in float32: the old clause reported "worst cosine = nan" as a number."""
    res = check_technique(H.float32_norm_clip, kind="clipping")
    d = _clause(res, "direction")
    assert d.verdict == "violated"
    norm = d.constants["‖g‖ at which the direction is lost"]
    assert 1.8e19 < norm < 1e39          # float32's sum of squares overflows beyond ~1.8e19
    assert "returns zero" in d.note and "float32" in d.note
    assert all(not (isinstance(v, float) and math.isnan(v)) and not (hasattr(v, "value") and math.isnan(v.value))
               for r in res.results for v in r.constants.values())
    assert d.counterexample["output"] == "zero"


def test_a_stateful_rule_is_detected_and_measured_on_fresh_copies():
    rule = H.AutoClip()
    res = check_technique(rule, kind="clipping")
    for cid in ("direction", "step-bound", "below-threshold", "zero"):
        r = _clause(res, cid)
        assert r.constants["state"] == "stateful: measured on a fresh copy per call", cid
        assert "keeps state" in r.note
    assert len(rule.history) == 1     # only the smoke call fed its history
    plain = check_technique(H.per_tensor_clip, kind="clipping")
    assert _clause(plain, "direction").constants["state"].startswith("none")


def test_an_undecided_gating_clause_is_not_a_pass(tmp_path, monkeypatch, capsys):
    """Squareplus (b = 4): λ = 0.8996, 95% interval [0.891, 0.908] at the 40-network cap against
    the band edge 0.9. It used to read "all gating clauses hold" and exit 0."""
    from gradcore.verify import check as C
    from gradcore.cli import main

    res = check_technique(H.squareplus, kind="activation")
    lam = _clause(res, "transfer-factor")
    assert lam.verdict == "inconclusive"
    assert lam.constants["seeds"] == lam.constants["seeds cap"] == 40
    assert "could not be decided" in lam.note and "cap 40" in lam.note
    assert not res.ok and [r.clause for r in res.undecided] == ["transfer-factor"]
    assert "1 could not be decided" in res.table() and "all gating clauses hold" not in res.table()
    with pytest.raises(AssertionError, match="transfer-factor could not be decided"):
        res.assert_ok()
    monkeypatch.setattr(C, "check", lambda *a, **k: res)   # the CLI's exit code for this same result
    assert main(["check", "tests.hostile_techniques:squareplus", "--out", str(tmp_path), "--no-compare"]) == 2
    doc = json.loads((tmp_path / "squareplus.json").read_text())
    assert doc["ok"] is False and doc["undecided"] == ["transfer-factor"]


@pytest.mark.parametrize("technique", [H.AbsLeakyReLU(), H.HeavisideReLU()], ids=["Abs", "Heaviside"])
def test_a_sympy_form_with_abs_or_heaviside_is_differentiated_piecewise(technique):
    """sympy's derivative of Abs/Heaviside has sign/DiracDelta terms: the old clause could not be measured
    (NameError: DiracDelta); rewritten as a Piecewise, f' is 1 for x > 0 and at most 1 elsewhere."""
    bound = _clause(check_technique(technique, kind="activation"), "derivative-bound")
    assert bound.verdict == "holds"
    assert float(bound.constants["sup|f'| (sympy)"]) == 1.0          # exact: the piece x > 0
    assert float(bound.constants["sup|f'| (search)"]) == pytest.approx(1.0, abs=1e-9)


def test_a_norm_built_for_one_width_is_measured_at_that_width():
    """GroupNorm(4, 16) whatever the width: the old deep-stack clause could not be measured at width 32."""
    res = check_technique(H.FixedGroupNorm, kind="norm")
    deep = _clause(res, "deep-stack")
    assert deep.verdict in ("holds", "violated", "inconclusive")
    assert deep.constants["width"] == 16 and "measured at width 16" in deep.note


def test_attention_saturation_is_decided_on_an_interval_with_enough_draws():
    """The old clause decided on the 3-draw mean 0.897 ≤ 0.9: "holds"."""
    sat = _clause(check_technique(H.barely_scaled_attention, kind="attention"), "no-saturation")
    assert sat.verdict == "violated"
    top = sat.constants["mean max weight, d_k=256"]
    assert top.interval[0] > 0.9 and top.n == sat.constants["draws"] > 3
    assert sat.constants["draws cap"] == 40


def test_attention_built_for_one_width_could_not_be_measured_in_one_line(tmp_path, capsys):
    """nn.MultiheadAttention built for the probe's width: the shape error at other d_k was a violation (exit 1)."""
    from gradcore.cli import main

    res = check_technique(H.fixed_width_mha, kind="attention")
    assert not res.violations and [r.clause for r in res.unmeasured] == ["row-stochastic", "no-saturation",
                                                                        "gradient-scale", "logit-variance"]
    assert all("fails at d_k" in r.note and "\n" not in r.note for r in res.unmeasured)
    assert main(["check", "tests.hostile_techniques:fixed_width_mha", "--kind", "attention", "--out", str(tmp_path),
                 "--no-compare"]) == 2

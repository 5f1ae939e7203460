"""The attention kind's logit-variance (ATTN-01/04, LIT-01) and saturation (ATTN-05) clauses."""
from __future__ import annotations

import math

import pytest
import torch

from gradcore import attention as at
from gradcore.measure import attention as M
from gradcore.testing import check_technique

from .contract_helpers import clause_of


def temperature_4(q, k, v):
    """A fixed temperature that ignores d_k: softmax(QKᵀ/4)V."""
    return torch.softmax(q @ k.T / 4, dim=-1) @ v


def mup_attention(q, k, v):
    """μP's 1/d_k attention (Yang et al. 2022): the logits' variance falls like 1/d_k."""
    return torch.softmax(q @ k.T / q.shape[-1], dim=-1) @ v


def hard_attention(q, k, v):
    """Hard (argmax) attention: one-hot rows, no softmax logits to read."""
    return torch.nn.functional.one_hot((q @ k.T).argmax(-1), k.shape[0]).to(v.dtype) @ v


def test_unscaled_logits_have_variance_d_k_and_violate():
    bad = check_technique(at.unscaled_attention, kind="attention")
    clause = clause_of(bad, "logit-variance")
    p = clause.constants["exponent p in Var(logits) ∝ d_k^p"]
    assert clause.verdict == "violated" and p.interval[0] > 0.5 and abs(p.value - 1) < 0.1
    # LIT-01 / ATTN-01: the raw q·k of unit-variance q, k has variance d_k
    for d in (16, 64, 256):
        assert clause.constants[f"Var(logits)/d_k, d_k={d}"] == pytest.approx(1.0, abs=0.1)
    good = check_technique(at.attention, kind="attention")
    clause = clause_of(good, "logit-variance")
    assert clause.verdict == "holds" and abs(clause.constants["exponent p in Var(logits) ∝ d_k^p"].value) < 0.1


def test_a_fixed_temperature_violates_and_mup_scaling_holds():
    fixed = clause_of(check_technique(temperature_4, kind="attention"), "logit-variance")
    assert fixed.verdict == "violated" and fixed.constants["Var(logits)/d_k, d_k=256"] == pytest.approx(1 / 16, rel=0.1)
    mup = clause_of(check_technique(mup_attention, kind="attention"), "logit-variance")
    assert mup.verdict == "holds" and mup.constants["exponent p in Var(logits) ∝ d_k^p"].value == pytest.approx(-1, abs=0.1)


def test_logit_variance_reads_the_softmax_logits():
    # independent reference: log softmax(S) = S − logsumexp(S), so its variance across keys is S's
    s = torch.randn(16, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 5
    assert M._logit_variance(torch.softmax(s, -1)) == pytest.approx(float(s.var(-1).mean()), rel=1e-12)
    assert M._logit_variance(torch.full((4, 4), math.nan)) == math.inf


def test_hard_attention_logits_cannot_be_read():
    clause = clause_of(check_technique(hard_attention, kind="attention"), "logit-variance")
    assert clause.verdict == "unmeasured" and "zero or negative weights" in clause.note


def test_saturation_describes_the_vanishing_gradient():
    res = check_technique(at.attention, kind="attention")
    clause = clause_of(res, "saturation")
    assert not clause.gate and clause.verdict == "holds"
    assert clause.constants["mean max weight, q ×1000"].value > 0.95 and clause.constants["ratio"] < 0.1
    base = clause.constants["‖∂/∂q_i‖, q ×1"]
    assert clause.constants["ratio"] == pytest.approx(clause.constants["‖∂/∂q_i‖, q ×1000"].value / base.value)


def attention_built_for_d8(q, k, v):
    """Scaled attention that accepts only q, k of width 8 (as a module built for one width does)."""
    if q.shape[-1] != 8:
        raise ValueError(f"built for d_k = 8, got {q.shape[-1]}")
    return torch.softmax(q @ k.T / 8 ** 0.5, dim=-1) @ v


def test_multihead_attention_built_for_one_width_is_measured_at_its_own_width():
    """Issue 24: nn.MultiheadAttention(8, 2) fails at d_k = 16; its saturation is measured at d_k = 8
    (values of width 8), stated, rather than 'could not be measured'."""
    from .hostile_techniques import fixed_width_mha

    sat = clause_of(check_technique(fixed_width_mha, kind="attention"), "saturation")
    assert sat.verdict == "holds" and "measured at d_k = 8, values of width 8" in sat.note and "\n" not in sat.note
    base, big = sat.constants["‖∂/∂q_i‖, q ×1"], sat.constants["‖∂/∂q_i‖, q ×1000"]
    assert base.sizes["d_k"] == big.sizes["d_k"] == 8 and base.sizes["d_v"] == 8
    assert sat.constants["ratio"] < 0.05                      # ×1000 queries saturate MHA's softmax too
    assert "mean max weight, q ×1000" not in sat.constants    # A = attend(q, k, I_16) needs values of width 16


def test_row_stochastic_of_attention_built_for_one_width_is_measured_at_that_width():
    res = check_technique(attention_built_for_d8, kind="attention")
    rows = clause_of(res, "row-stochastic")
    assert rows.verdict == "holds" and rows.note.startswith("measured at d_k = 8:")
    assert rows.constants["max |Σ_j A_ij − 1|"].sizes["d_k"] == 8
    # an exponent over d_k needs several widths: still stated as not measurable
    assert {r.clause for r in res.unmeasured} == {"no-saturation", "gradient-scale", "logit-variance"}

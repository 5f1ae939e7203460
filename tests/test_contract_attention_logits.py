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

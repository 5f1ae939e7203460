"""The recurrent kind's gating clauses (GATE-01..03) on cells in torch's GRU layout: torch's GRUCell and a
GRU written from scratch hold, the same GRU with its update gate wired backwards (z and 1 − z swapped)
violates each, an Elman or LSTM cell does not apply."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradcore.verify.check import settings_for
from gradcore.verify.contracts.base import run_clause
from gradcore.verify.contracts.recurrent import CLAUSES, LEAST_ORDER, RecurrentContract

GATING = {"gated-update-form": ("GATE-01",), "shut-gate-is-elman": ("GATE-03",), "update-gate-identity": ("GATE-02",)}
ORDER = "least order p of ‖J − I‖ in 1 − z"


class ScratchGRU(nn.Module):
    """A GRU written out (Cho et al. 2014, torch's layout and init): h' = (1 − z) ⊙ n + z ⊙ h with
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)); not an nn.GRUCell, so the clauses read its layout only."""

    swapped = False

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        k = 1 / math.sqrt(hidden_size)
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden_size, input_size).uniform_(-k, k))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden_size, hidden_size).uniform_(-k, k))
        self.bias_ih = nn.Parameter(torch.empty(3 * hidden_size).uniform_(-k, k))
        self.bias_hh = nn.Parameter(torch.empty(3 * hidden_size).uniform_(-k, k))

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        (ir, iz, i_n), (hr, hz, hn) = (F.linear(x, self.weight_ih, self.bias_ih).chunk(3, -1),
                                       F.linear(h, self.weight_hh, self.bias_hh).chunk(3, -1))
        r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
        n = torch.tanh(i_n + r * hn)
        return z * n + (1 - z) * h if self.swapped else (1 - z) * n + z * h


class BackwardsGRU(ScratchGRU):
    """The same GRU with its update gate wired backwards: h' = z ⊙ n + (1 − z) ⊙ h."""

    swapped = True


def _run(obj, clause_id: str):
    settings = settings_for()
    name = getattr(obj, "__name__", "cell")
    setup = (f"from gradcore.verify.loading import load_object\nmake = load_object('{obj.__module__}:{name}')"
             if isinstance(obj, type) and obj.__module__ == __name__ else "make = ...")
    subject = RecurrentContract.subject(obj, name, setup, settings)
    return run_clause(next(c for c in CLAUSES if c.id == clause_id), subject, settings)


def test_the_gating_clauses_cite_their_claims_and_gate():
    got = {c.id: c for c in CLAUSES}
    assert {k: got[k].claims for k in GATING} == GATING
    assert all(got[k].gate for k in GATING)


@pytest.mark.parametrize("cell", [nn.GRUCell, ScratchGRU], ids=["torch GRUCell", "GRU from scratch"])
@pytest.mark.parametrize("clause", sorted(GATING))
def test_a_gru_holds(cell, clause):
    r = _run(cell, clause)
    assert r.verdict == "holds", (r.note, r.constants)
    for m in r.constants.values():
        if getattr(m, "kind", None) is not None and m.kind.value == "rounding":
            assert m.value <= 1e-12
    if clause == "update-gate-identity":
        m = r.constants[ORDER]
        assert m.kind.value == "search" and m.direction == "upper" and abs(m.value - 1) < 1e-3
        assert "found by search" in r.note


def test_the_form_reports_what_it_leaves_out_at_default_init():
    r = _run(nn.GRUCell, "gated-update-form")
    outside = r.constants["‖J − J_doc‖/‖J‖ at default init (the form's omitted gate terms)"]
    assert outside.interval is not None and outside.interval[0] > 0.05    # the GRU's gate derivatives matter there


@pytest.mark.parametrize("clause", sorted(GATING))
def test_a_gru_with_its_update_gate_wired_backwards_violates(clause):
    r = _run(BackwardsGRU, clause)
    assert r.verdict == "violated" and r.violated, (r.note, r.constants)
    assert "snippet" in r.counterexample
    if clause == "update-gate-identity":
        # ‖J − I‖ stays O(1) as z → 1: the step tends to the candidate's, not the identity
        assert r.constants[ORDER].value < 0.1 < LEAST_ORDER
    else:
        assert next(iter(r.constants.values())).value > 0.1


def test_the_backwards_gates_counterexample_reproduces_in_a_fresh_interpreter():
    r = _run(BackwardsGRU, "update-gate-identity")
    out = subprocess.run([sys.executable, "-c", r.counterexample["snippet"]], capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).parents[1])
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.split()[-1]) == pytest.approx(r.constants[ORDER].value, abs=1e-9), out.stdout


@pytest.mark.parametrize("cell", [nn.RNNCell, nn.LSTMCell], ids=["Elman RNNCell", "LSTMCell"])
@pytest.mark.parametrize("clause", sorted(GATING))
def test_a_cell_without_the_gru_layout_does_not_apply(cell, clause):
    r = _run(cell, clause)
    assert r.verdict == "does not apply" and not r.unmeasured and not r.violated
    assert "GRU layout" in r.note and "3·32 rows" in r.note


def test_forcing_the_gates_never_reaches_a_cell_given_as_an_instance():
    cell = nn.GRUCell(8, 32).double()
    before = [p.detach().clone() for p in cell.parameters()]
    assert all(_run(cell, c).verdict == "holds" for c in GATING)
    assert all(torch.equal(p.detach(), b) for p, b in zip(cell.parameters(), before))

"""The recurrent kind's clauses of issue 22: weight-sharing (RNN-01), weight-norm-bound (RNN-07, LIT-07),
large-weight-explodes (RNN-08) — the built-ins' verdicts, a cell that breaks each, one that keeps it."""
from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradcore.verify.check import settings_for
from gradcore.verify.contracts.base import run_clause
from gradcore.verify.contracts.recurrent import CLAUSES, RecurrentContract

from . import techniques_for_tests as T

NEW = ("weight-sharing", "weight-norm-bound", "large-weight-explodes")
TIED = "max |∂L/∂θ − Σ_t ∂L/∂θ_t| / max |∂L/∂θ|"


class ClockedCell(nn.RNNCell):
    """An RNNCell whose recurrent weight decays with an internal call counter (W_t = 0.9^t W_hh):
    each step is a different function, so the unrolled cell is not a weight-shared deep net."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.calls = 0

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.tanh(F.linear(x, self.weight_ih, self.bias_ih)
                          + 0.9 ** self.calls * F.linear(h, self.weight_hh, self.bias_hh))


class DropoutCell(nn.RNNCell):
    """An RNNCell with dropout on its input (train mode): random, yet the same function of (θ, x, h) per draw."""

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return super().forward(F.dropout(x, 0.3, training=True), h)


class ResidualCell(nn.RNNCell):
    """h' = h + tanh(W h + U x + b): its step Jacobian I + diag(tanh')W is not bounded by ‖W‖."""

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return h + super().forward(x, h)


class SpectralNormCell(nn.RNNCell):
    """h' = tanh(W_hh/‖W_hh‖₂ h + U x + b): a spectrally normalised recurrence, whatever ‖W_hh‖ is."""

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        W = self.weight_hh / torch.linalg.matrix_norm(self.weight_hh, 2)
        return torch.tanh(F.linear(x, self.weight_ih, self.bias_ih) + F.linear(h, W, self.bias_hh))


def _run(obj, clause_id: str, setup: str = "make = ..."):
    settings = settings_for()
    subject = RecurrentContract.subject(obj, getattr(obj, "__name__", "cell"), setup, settings)
    return run_clause(next(c for c in CLAUSES if c.id == clause_id), subject, settings)


def _setup(cls: type) -> str:
    return f"from gradcore.verify.loading import load_object\nmake = load_object('{cls.__module__}:{cls.__name__}')"


def test_the_new_clauses_cite_their_claims_and_the_bounds_gate():
    got = {c.id: c for c in CLAUSES}
    assert got["weight-sharing"].claims == ("RNN-01",) and got["weight-sharing"].gate
    assert got["weight-norm-bound"].claims == ("RNN-07", "LIT-07") and got["weight-norm-bound"].gate
    assert got["large-weight-explodes"].claims == ("RNN-08",) and not got["large-weight-explodes"].gate


@pytest.mark.parametrize("name", ["RNNCell", "GRUCell", "LSTMCell"])
def test_builtins_are_weight_shared_and_explode_at_a_large_recurrent_weight(name):
    cell = getattr(nn, name)
    shared = _run(cell, "weight-sharing")
    assert shared.verdict == "holds" and shared.constants[TIED].value <= 1e-10
    big = _run(cell, "large-weight-explodes")
    assert big.verdict == "holds", big.note
    assert big.constants["per-step factor at ‖W_hh‖₂ = 12"].interval[0] > 1


def test_the_elman_cell_obeys_the_weight_norm_bound_and_it_does_not_apply_to_gated_cells():
    rnn = _run(nn.RNNCell, "weight-norm-bound")
    assert rnn.verdict == "holds"
    for name, m in rnn.constants.items():
        if name.startswith("max_t"):
            assert m.kind.value == "search" and m.value <= 1 + 1e-9
    assert _run(functools.partial(nn.RNNCell, nonlinearity="relu"), "weight-norm-bound").verdict == "holds"
    gru = _run(nn.GRUCell, "weight-norm-bound")
    assert gru.verdict == "does not apply" and not gru.unmeasured and "weight_hh of shape (32, 32)" in gru.note


def test_a_cell_that_changes_between_calls_is_not_weight_shared():
    bad = _run(ClockedCell, "weight-sharing", _setup(ClockedCell))
    assert bad.verdict == "violated" and bad.violated
    assert bad.constants[TIED].value > 1e-3
    # the counterexample's snippet measures the same gap in a fresh interpreter
    out = subprocess.run([sys.executable, "-c", bad.counterexample["snippet"]], capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).parents[1])
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.split()[-1]) == pytest.approx(bad.constants[TIED].value, rel=1e-6), out.stdout


def test_a_random_cell_drawing_the_same_noise_is_weight_shared():
    assert _run(DropoutCell, "weight-sharing").verdict == "holds"
    assert _run(T.LeakyCell, "weight-sharing").verdict == "holds"


def test_a_parameter_free_cell_holds_vacuously():
    free = _run(lambda n_in, n_h: (lambda x, h: torch.tanh(h + x.sum(-1, keepdim=True))), "weight-sharing")
    assert free.verdict == "holds" and "vacuous" in free.note


def test_a_residual_cell_breaks_the_weight_norm_bound():
    bad = _run(ResidualCell, "weight-norm-bound", _setup(ResidualCell))
    assert bad.verdict == "violated" and bad.violated          # a gating bound: the check fails
    assert bad.counterexample["ratio"] > 1.5 and "snippet" in bad.counterexample


def test_a_spectrally_normalised_cell_does_not_explode_at_a_large_weight():
    sn = _run(SpectralNormCell, "large-weight-explodes", _setup(SpectralNormCell))
    assert sn.verdict == "violated", sn.constants
    assert sn.constants["per-step factor at ‖W_hh‖₂ = 12"].interval[1] < 1
    assert "snippet" in sn.counterexample
    # its gradient follows W_hh/‖W_hh‖, not W_hh: at ‖W_hh‖ = 0.9 the weight-norm bound 0.9^t fails
    assert _run(SpectralNormCell, "weight-norm-bound").verdict == "violated"


def test_a_cell_without_weight_hh_cannot_be_scaled():
    leaky = _run(T.LeakyCell, "large-weight-explodes")
    assert leaky.verdict == "does not apply" and not leaky.unmeasured    # neither a pass nor a failure
    assert "weight_hh" in leaky.note


def test_rescaling_never_reaches_a_cell_given_as_an_instance():
    cell = nn.RNNCell(8, 32).double()
    before = cell.weight_hh.detach().clone()
    assert _run(cell, "large-weight-explodes").verdict == "holds"
    assert _run(cell, "weight-norm-bound").verdict == "holds"
    assert torch.equal(cell.weight_hh.detach(), before)

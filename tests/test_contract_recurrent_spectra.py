"""The clauses appended to the recurrent kind: bptt-transient (RNN-04), step-jacobian-spectrum (RNN-02/03)."""
from __future__ import annotations

import torch
from torch import nn

from gradcore import recurrent as R
from gradcore.testing import check_technique
from gradcore.verify.check import builtin_results, settings_for

from . import techniques_for_tests as T


def _clause(result, cid):
    return next(r for r in result.results if r.clause == cid)


class NonNormalCell(nn.Module):
    """h' = W h + U x with ρ(W) = 0.9 but σ_max(W) = 3 (RNN-04's non-normal W): decays, after a transient."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.W = nn.Parameter(R.nonnormal_matrix(hidden_size, 0.9, 3.0, generator=torch.Generator().manual_seed(0)))
        self.U = nn.Linear(input_size, hidden_size, bias=False)

    def forward(self, x, h):
        return h @ self.W.T + self.U(x)


def test_builtins_have_no_transient_and_their_spectra_are_reported():
    for name, rows in builtin_results("recurrent", settings_for()).items():
        got = {r.clause: r for r in rows}
        assert got["bptt-transient"].verdict == "holds", name
        spec = got["step-jacobian-spectrum"]
        assert spec.verdict == "holds" and not spec.gate
        assert spec.constants["ρ(∂s_t/∂s_(t−1))"].value <= spec.constants["σ_max(∂s_t/∂s_(t−1))"].value + 1e-12


def test_a_non_normal_cell_is_caught_by_its_transient_not_by_its_rate():
    bad = check_technique(NonNormalCell, kind="recurrent", compare=False)
    transient = _clause(bad, "bptt-transient")
    assert transient.verdict == "violated" and transient.constants["max_k ‖∂L/∂s_(T−k)‖/‖∂L/∂s_T‖"].value > 2
    assert _clause(bad, "bptt-no-explosion").verdict == "holds"      # ρ = 0.9: the rate alone sees nothing
    # reference: the linear cell's BPTT norms are ‖(Wᵀ)^k g‖ with g = 1/√n, exactly
    W = NonNormalCell(8, 32).W.detach().double()
    g = torch.ones(32, dtype=torch.float64) / 32 ** 0.5
    peak = max(float((torch.linalg.matrix_power(W.T, k) @ g).norm() / g.norm()) for k in range(41))
    assert abs(transient.constants["max_k ‖∂L/∂s_(T−k)‖/‖∂L/∂s_T‖"].value - peak) <= 1e-9 * peak
    spec = _clause(bad, "step-jacobian-spectrum")
    assert abs(spec.constants["σ_max(∂s_t/∂s_(t−1))"].value - 3.0) < 1e-9
    assert abs(spec.constants["ρ(∂s_t/∂s_(t−1))"].value - 0.9) < 1e-9
    good = check_technique(T.LeakyCell, kind="recurrent", compare=False)
    assert _clause(good, "bptt-transient").verdict == "holds"

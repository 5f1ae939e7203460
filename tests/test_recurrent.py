"""Unit tests of gradcore.recurrent against torch's cells, closed forms and dense autograd."""
import math

import pytest
import torch
from torch import nn

from gradcore import GradcoreInputError
from gradcore import recurrent as R
from gradcore.spectral import spectral_norm, spectral_radius

DT = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_linear_rnn_is_matrix_power(device):
    W = R.gaussian_matrix(5, 0.9, generator=_gen(), device=device)
    h0 = torch.randn(5, dtype=DT, device=device)
    hs = R.linear_rnn(W, h0, 7)
    assert hs.shape == (8, 5) and hs.device.type == device
    torch.testing.assert_close(hs[7], torch.linalg.matrix_power(W, 7) @ h0)


def test_rnn_unroll_matches_torch_rnncell(device):
    n, m, T = 6, 3, 5
    cell = nn.RNNCell(m, n, bias=False, nonlinearity="tanh").to(device=device, dtype=DT)
    xs = torch.randn(T, 2, m, dtype=DT, device=device)
    h0 = torch.randn(2, n, dtype=DT, device=device)
    ours = R.rnn_unroll(cell.weight_hh.detach(), cell.weight_ih.detach(), xs, h0)
    torch.testing.assert_close(ours, R.unroll_cell(cell, xs, h0))
    h = h0
    for t in range(T):
        h = cell(xs[t], h)
    torch.testing.assert_close(ours[-1], h)


def test_elman_sigmoid_and_module(device):
    W = torch.randn(4, 4, dtype=DT, device=device)
    U = torch.randn(4, 2, dtype=DT, device=device)
    xs = torch.randn(3, 2, dtype=DT, device=device)
    h0 = torch.randn(4, dtype=DT, device=device)
    hs = R.ElmanRNN(W, U, "sigmoid")(xs, h0)
    h1 = torch.sigmoid(W @ h0 + U @ xs[0])
    torch.testing.assert_close(hs[1], h1)
    torch.testing.assert_close(hs[3], torch.sigmoid(W @ hs[2] + U @ xs[2]))


def test_gated_step_closed_form_and_limits(device):
    W = torch.randn(4, 4, dtype=DT, device=device)
    h = torch.randn(4, dtype=DT, device=device)
    z = torch.rand(4, dtype=DT, device=device)
    torch.testing.assert_close(R.gated_step(h, W, z), z * h + (1 - z) * torch.tanh(W @ h))
    torch.testing.assert_close(R.gated_step(h, W, torch.ones_like(h)), h)
    torch.testing.assert_close(R.gated_step(h, W, torch.zeros_like(h)), torch.tanh(W @ h))
    gate = nn.Sequential(nn.Linear(4, 4).to(device, DT), nn.Sigmoid())
    zz = gate(h)
    torch.testing.assert_close(R.gated_step(h, W, gate), zz * h + (1 - zz) * torch.tanh(W @ h))


def test_step_jacobian_of_gated_step_closed_form(device):
    W = torch.randn(5, 5, dtype=DT, device=device)
    h = torch.randn(5, dtype=DT, device=device)
    z = torch.rand(5, dtype=DT, device=device)
    J = R.step_jacobian(R.gated_stepper(W, z), h)
    closed = torch.diag(z) + torch.diag((1 - z) * (1 - torch.tanh(W @ h) ** 2)) @ W
    torch.testing.assert_close(J, closed)


def test_bptt_norms_linear_closed_form(device):
    W = R.gaussian_matrix(6, 1.1, generator=_gen(1), device=device)
    h0 = torch.randn(6, dtype=DT, device=device)
    g = torch.randn(6, dtype=DT, device=device)
    T = 9
    norms = R.bptt_gradient_norms(R.linear_step(W), h0, T, grad_output=g)
    expect = torch.stack([torch.linalg.matrix_power(W.T, T - t) @ g for t in range(T + 1)]).norm(dim=-1)
    torch.testing.assert_close(norms, expect)


def test_bptt_norms_match_dense_jacobian_product_gru(device):
    torch.manual_seed(0)
    cell = nn.GRUCell(3, 4).to(device=device, dtype=DT)
    xs = torch.randn(5, 3, dtype=DT, device=device)
    step = R.cell_step(cell, xs)
    h = torch.randn(4, dtype=DT, device=device)
    states = R.unroll(step, h, 5)
    P = torch.eye(4, dtype=DT, device=device)
    for t in range(1, 6):
        P = R.step_jacobian(step, states[t - 1].detach(), t) @ P
    g = torch.ones(4, dtype=DT, device=device) / 2
    norms = R.bptt_gradient_norms(step, h, 5, grad_output=g)
    torch.testing.assert_close(norms[0], (P.T @ g).norm())


def test_lstm_state_and_batched_norms(device):
    torch.manual_seed(0)
    cell = nn.LSTMCell(2, 3).to(device=device, dtype=DT)
    xs = torch.randn(4, 5, 2, dtype=DT, device=device)
    h0 = torch.zeros(5, 3, dtype=DT, device=device)
    hs = R.unroll_cell(cell, xs, h0)
    h, c = h0, torch.zeros_like(h0)
    for t in range(4):
        h, c = cell(xs[t], (h, c))
    torch.testing.assert_close(hs[-1], h)
    s0 = R.cell_state(cell, h0)
    norms = R.bptt_gradient_norms(R.cell_step(cell, xs), s0, 4)
    assert s0.shape == (5, 6) and norms.shape == (5, 5)
    torch.testing.assert_close(norms[-1], torch.ones(5, dtype=DT, device=device))


def test_growth_rate_recovers_geometric():
    t = torch.arange(20, dtype=DT)
    assert R.growth_rate(3.0 * 0.7 ** t) == pytest.approx(0.7, rel=1e-12)


def test_matrix_builders_have_the_requested_spectra():
    Wn = R.normal_matrix(8, 1.3, generator=_gen(2))
    assert spectral_radius(Wn) == pytest.approx(1.3) and spectral_norm(Wn) == pytest.approx(1.3)
    torch.testing.assert_close(Wn @ Wn.T, Wn.T @ Wn)
    Wx = R.nonnormal_matrix(8, 0.8, 3.0, generator=_gen(3))
    assert spectral_radius(Wx) == pytest.approx(0.8, rel=1e-6)
    assert spectral_norm(Wx) == pytest.approx(3.0, rel=1e-9)
    Wg = R.gaussian_matrix(400, 0.5, generator=_gen(4))
    assert spectral_radius(Wg) == pytest.approx(0.5, rel=0.1)
    assert spectral_norm(Wg) == pytest.approx(1.0, rel=0.1)
    assert math.isclose(float(R.random_orthogonal(5, generator=_gen()).det().abs()), 1.0)


@pytest.mark.parametrize("call", [
    lambda: R.linear_rnn(torch.ones(2, 3, dtype=DT), torch.ones(2, dtype=DT), 3),
    lambda: R.linear_rnn(torch.eye(2, dtype=DT), torch.ones(3, dtype=DT), 3),
    lambda: R.linear_rnn(torch.eye(2, dtype=DT), torch.ones(2, dtype=DT), 0),
    lambda: R.linear_rnn(torch.eye(2, dtype=DT) * math.nan, torch.ones(2, dtype=DT), 3),
    lambda: R.rnn_unroll(torch.eye(2), torch.ones(2, 1), torch.ones(3, 1), torch.ones(2), "softsign"),
    lambda: R.rnn_unroll(torch.eye(2), torch.ones(3, 1), torch.ones(3, 1), torch.ones(2)),
    lambda: R.rnn_unroll(torch.eye(2), torch.ones(2, 1), torch.ones(3, 2), torch.ones(2)),
    lambda: R.gated_step(torch.ones(2), torch.eye(2), torch.tensor([])),
    lambda: R.unroll_cell(nn.Linear(2, 2), torch.ones(3, 2), torch.ones(2)),
    lambda: R.unroll_cell(nn.GRUCell(2, 3), torch.ones(3, 4), torch.ones(3)),
    lambda: R.bptt_gradient_norms(R.linear_step(torch.eye(2)), torch.ones(2), 2, torch.ones(3)),
    lambda: R.step_jacobian(R.linear_step(torch.eye(2)), torch.ones(1, 2)),
    lambda: R.nonnormal_matrix(4, 1.0, 0.5),
    lambda: R.normal_matrix(4, 0.0),
    lambda: R.growth_rate(torch.tensor([1.0, 0.0, 1.0])),
])
def test_bad_inputs_raise(call):
    with pytest.raises(GradcoreInputError):
        call()

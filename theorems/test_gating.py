"""Gating claims (catalogue: gradcore/claims/gating.toml).

The documents' gated update is gradcore.recurrent.gated_step; torch's own nn.GRUCell /
nn.LSTMCell are measured through gradcore.recurrent.cell_step.
"""
import math

import numpy as np
import pytest
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import nn

from gradcore import recurrent as R
from gradcore.spectral import spectral_norm
from gradcore.stats import mean_ci
from gradcore.verify.search import maximize

DT = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _cases(n: int = 4):
    mats = hnp.arrays(np.float64, (n, n), elements=st.floats(-2, 2, width=64))
    vecs = hnp.arrays(np.float64, (n,), elements=st.floats(-2, 2, width=64))
    gates = hnp.arrays(np.float64, (n,), elements=st.floats(0, 1, width=64))
    return st.tuples(mats, vecs, gates)


def _gru(n: int, m: int, device: str, seed: int) -> nn.GRUCell:
    torch.manual_seed(seed)
    return nn.GRUCell(m, n).to(device=device, dtype=DT)


def _force_gates(cell: nn.GRUCell, z: float) -> None:
    """Make torch's GRU gates constant: reset r ≡ 1, update z ≡ z, no input to the candidate."""
    n = cell.hidden_size
    with torch.no_grad():
        cell.weight_ih.zero_()
        cell.weight_hh[: 2 * n].zero_()
        cell.bias_ih.zero_()
        cell.bias_hh.zero_()
        cell.bias_ih[:n] = 40.0          # σ(40) = 1 in float64
        cell.bias_ih[n: 2 * n] = math.log(z / (1 - z))


@pytest.mark.claim("GATE-01")
def test_gru_update_form(claim, device):
    """002 §循环网络中的门控机制: "以GRU为例，其状态更新方程为 h_t = z_t ⊙ h_{t−1} + (1−z_t) ⊙ tanh(W h_{t−1})"."""
    n, m = 8, 4
    cell = _gru(n, m, device, 0)
    _force_gates(cell, 0.7)
    xs = torch.randn(5, m, dtype=DT, device=device)
    h0 = torch.randn(n, dtype=DT, device=device)
    W, z = cell.weight_hh[2 * n:].detach(), torch.full((n,), 0.7, dtype=DT, device=device)
    ours = R.unroll(R.gated_stepper(W, z), h0, 5)[-1]
    claim.check("max |GRUCell − gated_step| after 5 steps, r ≡ 1, constant z, no input", claimed=0.0,
                measured=float((R.unroll_cell(cell, xs, h0)[-1] - ours).detach().abs().max()), atol=1e-12, dtype=DT)
    # torch's GRUCell at its default init: gates depend on h and x, reset gate present
    errs = []
    for seed in range(4):
        cell = _gru(n, m, device, seed)
        x = torch.randn(1, m, dtype=DT, device=device)
        h = torch.randn(n, dtype=DT, device=device) * 0.5
        J = R.step_jacobian(R.cell_step(cell, x), h)
        gi, gh = cell.weight_ih @ x[0] + cell.bias_ih, cell.weight_hh @ h + cell.bias_hh
        zt = torch.sigmoid(gi[n:2 * n] + gh[n:2 * n])
        r = torch.sigmoid(gi[:n] + gh[:n])
        cand = torch.tanh(gi[2 * n:] + r * gh[2 * n:])
        J_doc = torch.diag(zt) + torch.diag((1 - zt) * (1 - cand ** 2)) @ cell.weight_hh[2 * n:]
        J, J_doc = J.detach(), J_doc.detach()
        errs.append(float(torch.linalg.matrix_norm(J - J_doc, ord=2) / torch.linalg.matrix_norm(J, ord=2)))
    err, lo, hi = mean_ci(errs)
    claim.check("‖J_GRU − J_doc‖/‖J_GRU‖ at torch's default init (n=8, 4 seeds)", claimed=0.0, measured=err,
                interval=(lo, hi), atol=0.01, dtype=DT, outside="torch's GRUCell: h-dependent z, reset gate, input",
                counterexample={"cell": "nn.GRUCell(4, 8), torch.manual_seed(0), float64", "relative_error": errs[0],
                                "snippet": "import torch; from gradcore import recurrent as R; torch.manual_seed(0); "
                                "c=torch.nn.GRUCell(4,8).double(); x=torch.randn(1,4,dtype=torch.float64); "
                                "h=0.5*torch.randn(8,dtype=torch.float64); print(R.step_jacobian(R.cell_step(c,x),h))"})
    claim.correct(f"the formula is torch's GRU only with the reset gate at 1, no input and an h-independent z "
                  f"(then identical, max diff 0); at default init the omitted gate-derivative and reset terms "
                  f"change the step Jacobian by {err:.2f} [{lo:.2f}, {hi:.2f}] of its norm")


@pytest.mark.claim("GATE-02")
def test_update_gate_near_one_gives_identity_jacobian(claim, device):
    """002 §循环网络中的门控机制: "当 z_t 的元素接近1时，雅可比矩阵 ∂h_t/∂h_{t−1} 近似于单位矩阵"."""
    def measure(ex):
        W, h, z = (torch.tensor(a, device=device) for a in ex)
        J = R.step_jacobian(R.gated_stepper(W, z), h)
        closed = torch.diag(z) + torch.diag((1 - z) * (1 - torch.tanh(W @ h) ** 2)) @ W
        bound = float((1 - z.min()) * (1 + spectral_norm(W)))
        return float((J - closed).abs().max()), spectral_norm(J - torch.eye(4, dtype=DT, device=device)) - bound
    _, gap = maximize(_cases(), lambda ex: measure(ex)[0], max_examples=30)
    _, worst = maximize(_cases(), lambda ex: measure(ex)[1], max_examples=30)
    claim.check("max |autograd J − (diag(z) + diag(1−z)diag(tanh')W)|", claimed=0.0, measured=gap,
                atol=1e-12, dtype=DT)
    claim.check("max over W,h,z of ‖J−I‖ − (1−z_min)(1+‖W‖)", claimed=0.0, measured=worst, relation="<=",
                atol=1e-12, dtype=DT)
    W = R.gaussian_matrix(16, 1.5, generator=_gen(0), device=device)
    h = torch.randn(16, generator=_gen(1), dtype=DT).to(device)
    eps = [10.0 ** -k for k in range(1, 7)]
    dist = [spectral_norm(R.step_jacobian(R.gated_stepper(W, torch.full((16,), 1 - e, dtype=DT, device=device)), h)
                          - torch.eye(16, dtype=DT, device=device)) for e in eps]
    slope = dist[-1] / eps[-1]
    claim.check("‖J−I‖ at 1−z = 1e−6 (doc form, n=16, gain 1.5)", claimed=0.0, measured=dist[-1],
                atol=1e-6 * (1 + spectral_norm(W)), dtype=DT)
    # torch's GRUCell with the update-gate bias pushed up
    cell = _gru(16, 4, device, 0)
    x = torch.randn(1, 4, dtype=DT, device=device)
    biases = [0.0, 2.0, 4.0, 8.0, 12.0]
    gru = []
    for b in biases:
        with torch.no_grad():
            cell.bias_ih[16:32] = b
        gru.append(spectral_norm(R.step_jacobian(R.cell_step(cell, x), h).detach() - torch.eye(16, dtype=DT, device=device)))
    claim.check("‖J−I‖, torch GRUCell, update-gate bias 12 (z ≈ 1 − 6e−6)", claimed=0.0, measured=gru[-1],
                atol=1e-3, dtype=DT)
    claim.curve("gate-jacobian-identity", "doc form, n=16, gain 1.5", eps, dist, xlabel="1 − z",
                ylabel="‖∂h_t/∂h_{t−1} − I‖₂", logx=True, logy=True)
    claim.curve("gate-jacobian-identity", "torch GRUCell, n=16 (x: 1 − σ(bias))", [1 - 1 / (1 + math.exp(-b)) for b in biases],
                gru, xlabel="1 − z", ylabel="‖∂h_t/∂h_{t−1} − I‖₂", logx=True, logy=True)
    claim.note(f"‖J−I‖/(1−z) → {slope:.2f} as z → 1 (doc form)")


@pytest.mark.claim("GATE-03")
def test_update_gate_zero_is_simple_rnn(claim, device):
    """002 §循环网络中的门控机制: "当 z_t 的元素接近0时，更新方式退化为简单RNN的形式"."""
    def gap(ex):
        W, h, _ = (torch.tensor(a, device=device) for a in ex)
        zero = torch.zeros_like(h)
        rnn = R.elman_step(W, torch.zeros(4, 1, dtype=DT, device=device), torch.zeros(1, 1, dtype=DT, device=device))
        d_state = float((R.gated_step(h, W, zero) - rnn(h, 1)).abs().max())
        d_jac = float((R.step_jacobian(R.gated_stepper(W, zero), h) - R.step_jacobian(rnn, h)).abs().max())
        return max(d_state, d_jac)
    _, worst = maximize(_cases(), gap, max_examples=40)
    claim.check("max |gated_step(z=0) − tanh(W h)| and of their Jacobians", claimed=0.0, measured=worst,
                atol=1e-15, dtype=DT)


@pytest.mark.claim("GATE-04")
def test_gradient_passes_almost_undamped(claim, device):
    """002 §循环网络中的门控机制: "梯度几乎可以无衰减地向后传播，从而有效地“记住”长期信息"."""
    n, T = 32, 300
    retain = {}
    for z in (0.9, 0.99, 0.999):
        curves = []
        for seed in range(3):
            W = R.gaussian_matrix(n, 1.0, generator=_gen(seed), device=device)
            h0 = torch.randn(n, generator=_gen(seed + 50), dtype=DT).to(device)
            norms = R.bptt_gradient_norms(R.gated_stepper(W, torch.full((n,), z, dtype=DT, device=device)), h0, T)
            curves.append((norms.flip(0) / norms[-1]).cpu().numpy())
        mean = np.exp(np.log(np.stack(curves)).mean(0))
        retain[z] = mean
        claim.curve("gate-retention", f"doc gated update, z={z} (n={n}, gain 1, 3 seeds)", range(T + 1), mean,
                    xlabel="steps back T", ylabel="‖∂L/∂h_{t−T}‖/‖∂L/∂h_t‖", logy=True)
    claim.check("retention over T=100 steps at z=0.999 (T(1−z)=0.1)", claimed=1.0, measured=retain[0.999][100],
                atol=0.1, dtype=DT)
    # per-step decay 1 − r against the gate's leak 1 − z
    leak = {z: (1 - R.growth_rate(torch.tensor(retain[z]), 50)) / (1 - z) for z in retain}
    claim.check("retention over T=100 steps at z=0.9 (T(1−z)=10)", claimed=1.0, measured=retain[0.9][100], atol=0.1,
                dtype=DT, outside="T(1−z) ≫ 1: a fixed gate over a long sequence",
                counterexample={"n": n, "gain": 1.0, "z": 0.9, "T": 100, "retention": float(retain[0.9][100]),
                                "snippet": "import torch; from gradcore import recurrent as R; W=R.gaussian_matrix(32,1.0); "
                                "z=torch.full((32,),0.9,dtype=torch.float64); "
                                "n=R.bptt_gradient_norms(R.gated_stepper(W,z),torch.randn(32,dtype=torch.float64),100); print(n[0]/n[-1])"})
    claim.correct("the gradient is nearly undamped only while T(1−z) ≪ 1: the per-step decay is 1 − r = c·(1−z) with c = "
                  + ", ".join(f"{c:.2f} (z={z})" for z, c in leak.items())
                  + f"; at z=0.9 only {retain[0.9][100]:.1e} survives 100 steps")


@pytest.mark.claim("GATE-05")
def test_lstm_gru_carry_gradients_long_term(claim, device):
    """003 §4 门控机制: "LSTM / GRU … 使得梯度能够有选择性地、长期地传递下去"; 002 §循环网络中的门控机制."""
    n, m, T, B = 32, 8, 60, 16
    configs = [("tanh RNNCell", nn.RNNCell, None), ("GRUCell", nn.GRUCell, None), ("LSTMCell", nn.LSTMCell, None),
               ("LSTMCell, forget bias 1", nn.LSTMCell, 1.0), ("LSTMCell, forget bias 3", nn.LSTMCell, 3.0)]
    stats = {}
    for label, kind, fb in configs:
        rates, curves = [], []
        for seed in range(3):
            torch.manual_seed(seed)
            cell = kind(m, n).to(device=device, dtype=DT)
            if fb is not None:
                with torch.no_grad():
                    cell.bias_ih[n:2 * n] = fb
                    cell.bias_hh[n:2 * n] = 0.0
            xs = torch.randn(T, B, m, generator=_gen(seed), dtype=DT).to(device)
            s0 = R.cell_state(cell, torch.zeros(B, n, dtype=DT, device=device))
            norms = R.bptt_gradient_norms(R.cell_step(cell, xs), s0, T).flip(0)
            geo = norms.log().mean(1).exp()          # geometric mean over the batch
            rates.append(R.growth_rate(geo, 10))
            curves.append(geo.cpu().numpy())
        stats[label] = mean_ci(rates)
        claim.curve("gate-bptt-vs-T", f"{label} (n={n}, 3 seeds)", range(T + 1), np.mean(curves, 0),
                    xlabel="steps back", ylabel="‖∂L/∂s_{T−k}‖ (geo. mean over batch)", logy=True)
    rnn = stats["tanh RNNCell"]
    horizon = lambda r: -1 / math.log(r) if r < 1 else math.inf  # noqa: E731
    for label in ("GRUCell", "LSTMCell"):
        claim.check(f"{label} per-step rate > tanh RNNCell's ({rnn[0]:.3f}), default init", claimed=rnn[2],
                    measured=stats[label][0], interval=stats[label][1:], relation=">", dtype=DT)
    long = math.exp(-1 / T)
    claim.check(f"LSTM forget bias 3: per-step rate ≥ e^(−1/{T}) (horizon ≥ {T} steps)", claimed=long,
                measured=stats["LSTMCell, forget bias 3"][0], interval=stats["LSTMCell, forget bias 3"][1:],
                relation=">=", dtype=DT)
    gru = stats["GRUCell"]
    claim.check(f"GRUCell default init: per-step rate ≥ e^(−1/{T})", claimed=long, measured=gru[0],
                interval=gru[1:], relation=">=", dtype=DT, outside="torch's default init (gates ≈ 0.5)",
                counterexample={"cell": "nn.GRUCell(8, 32)", "T": T, "rate": gru[0], "horizon_steps": horizon(gru[0]),
                                "snippet": "import torch; from gradcore import recurrent as R; torch.manual_seed(0); "
                                "c=torch.nn.GRUCell(8,32).double(); xs=torch.randn(60,16,8,dtype=torch.float64); "
                                "n=R.bptt_gradient_norms(R.cell_step(c,xs),torch.zeros(16,32,dtype=torch.float64),60); print(n[0].mean())"})
    claim.correct("gated cells pass gradients further than a tanh RNN but, at torch's default init, still decay "
                  "exponentially: per-step rate / e-folding horizon " + "; ".join(
                      f"{k} {v[0]:.3f} / {horizon(v[0]):.1f} steps" for k, v in stats.items())
                  + " — long-term transfer needs gates biased to retain (e.g. forget bias 3)")

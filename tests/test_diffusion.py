"""Unit tests of gradcore.diffusion against closed forms, autograd and torch's clipping."""
import math

import pytest
import torch

from gradcore import GradcoreInputError
from gradcore import diffusion as D


def test_linear_schedule_closed_forms(device):
    s = D.linear_schedule(device=device)
    assert s.T == 1000 and s.betas.device.type == device
    assert float(s.betas[0]) == pytest.approx(1e-4) and float(s.betas[-1]) == pytest.approx(0.02)
    ab = math.prod(1 - (1e-4 + (0.02 - 1e-4) * i / 999) for i in range(10))
    assert float(s.alpha_bar[9]) == pytest.approx(ab, rel=1e-12)
    assert float(s.snr[0]) == pytest.approx((1 - 1e-4) / 1e-4, rel=1e-9)


def test_weightings_closed_forms():
    s = D.linear_schedule(T=50)
    snr, ab = s.snr, s.alpha_bar
    torch.testing.assert_close(D.loss_weight("eps", s), torch.ones(50, dtype=torch.float64))
    torch.testing.assert_close(D.loss_weight("snr", s), snr)
    torch.testing.assert_close(D.loss_weight("v", s), 1 / ab)
    torch.testing.assert_close(D.loss_weight("min_snr_gamma", s, gamma=5.0), torch.minimum(snr, torch.tensor(5.0, dtype=torch.float64)) / snr)
    torch.testing.assert_close(D.loss_weight("truncated_snr", s), torch.maximum(snr, torch.ones(()).double()) / snr)
    # vlb at t = 1: β₁/(2α₁β₁) = 1/(2α₁)
    assert float(D.loss_weight("vlb", s)[0]) == pytest.approx(1 / (2 * (1 - 1e-4)))


def test_v_weighting_equals_v_prediction_loss():
    """‖v̂ − v‖² = v(t)‖ε̂ − ε‖² when v̂ is derived from ε̂ at the same x_t."""
    s = D.linear_schedule(T=100)
    g = torch.Generator().manual_seed(0)
    x0, eps, eps_hat = (torch.randn(8, 5, generator=g, dtype=torch.float64) for _ in range(3))
    t = torch.arange(1, 101, 13)
    ab = s.alpha_bar[t - 1][:, None]
    x_t = D.q_sample(x0, t, eps, s)
    v_true = ab.sqrt() * eps - (1 - ab).sqrt() * x0
    x0_hat = (x_t - (1 - ab).sqrt() * eps_hat) / ab.sqrt()
    v_hat = ab.sqrt() * eps_hat - (1 - ab).sqrt() * x0_hat
    lhs = (v_hat - v_true).square().sum(1)
    rhs = D.loss_weight("v", s)[t - 1] * (eps_hat - eps).square().sum(1)
    torch.testing.assert_close(lhs, rhs)


def test_per_timestep_gradients_match_autograd(device):
    torch.manual_seed(0)
    s = D.linear_schedule()
    model = D.Denoiser(6, hidden=8, emb_dim=4).to(device)
    t = torch.tensor([1, 40, 999], device=device)
    x0 = torch.randn(3, 5, 6, device=device)
    G = D.per_timestep_gradients(model, x0, t, s, generator=torch.Generator().manual_seed(1))
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1)).to(device)
    for i in range(3):
        model.zero_grad()
        ti = t[i].expand(5)
        loss = (model(D.q_sample(x0[i], ti, eps[i], s), ti) - eps[i]).square().sum(-1).mean()
        loss.backward()
        ref = torch.cat([p.grad.flatten() for p in model.parameters()])
        torch.testing.assert_close(G[i], ref, rtol=1e-4, atol=1e-6)


def test_clip_time_dependent_matches_torch(device):
    g = torch.randn(4, 10, device=device) * torch.tensor([[0.1], [1.0], [10.0], [100.0]], device=device)
    c = torch.linspace(0.5, 2.0, 7, device=device)
    t = torch.tensor([1, 3, 5, 7], device=device)
    out = D.clip_time_dependent(g, t, c)
    for i in range(4):
        row = g[i].clone()
        expect = row * min(1.0, float(c[t[i] - 1]) / (float(row.norm()) + 1e-6))
        torch.testing.assert_close(out[i], expect)
    assert torch.equal(g[0], out[0])  # under the threshold: untouched


def test_clip_global_scales_all_rows_equally(device):
    g = torch.randn(5, 7, device=device)
    total = float(g.sum(0).norm())
    out = D.clip_global(g, total / 4)
    torch.testing.assert_close(out, g * (total / 4) / (total + 1e-6))
    torch.testing.assert_close(D.clip_global(g, total * 2), g)


def test_effective_contributions_closed_forms(device):
    g = torch.tensor([[3.0, 4.0], [0.3, 0.4], [30.0, 40.0]], device=device)  # norms 5, 0.5, 50
    t = torch.tensor([1, 2, 3], device=device)
    w = torch.tensor([10.0, 1.0, 0.1], device=device)
    torch.testing.assert_close(D.effective_contributions(g, t, w, "none", 1.0), torch.tensor([50.0, 0.5, 5.0], device=device))
    # clip then weight with c = κ/v: e = min(v‖∇ℓ‖, κ)
    e = D.effective_contributions(g, t, w, "time_dependent", 2.0)
    torch.testing.assert_close(e, torch.tensor([2.0, 0.5, 2.0], device=device), rtol=1e-5, atol=1e-5)
    # clip the weighted gradient at c = κ/v: e = min(v‖∇ℓ‖, κ/v)
    e = D.effective_contributions(g, t, w, "time_dependent_weighted", 2.0)
    torch.testing.assert_close(e, torch.tensor([0.2, 0.5, 5.0], device=device), rtol=1e-5, atol=1e-5)
    ratio, cv = D.spread(torch.tensor([1.0, 1.0, 4.0]))
    assert ratio == 4.0 and cv == pytest.approx(float(torch.tensor([1.0, 1.0, 4.0]).std(correction=0)) / 2.0)


def test_denoiser_shapes_and_time_dependence():
    m = D.Denoiser(4, hidden=8)
    x = torch.randn(3, 4)
    assert m(x, torch.tensor([1, 2, 3])).shape == (3, 4)
    assert not torch.allclose(m(x, torch.tensor([1, 1, 1])), m(x, torch.tensor([900, 900, 900])))


@pytest.mark.parametrize("call, match", [
    (lambda: D.linear_schedule(T=0), "T"),
    (lambda: D.linear_schedule(beta_start=-1.0), "beta_start"),
    (lambda: D.schedule_from_betas(torch.tensor([0.1, 1.5])), "betas"),
    (lambda: D.schedule_from_betas(torch.tensor([])), "betas"),
    (lambda: D.loss_weight("p2", D.linear_schedule(T=5)), "name"),
    (lambda: D.loss_weight("min_snr_gamma", D.linear_schedule(T=5), gamma=0.0), "gamma"),
    (lambda: D.clip_time_dependent(torch.ones(2, 3), torch.tensor([1, 9]), torch.ones(5)), "t"),
    (lambda: D.clip_time_dependent(torch.ones(2, 3), torch.tensor([1, 2]), -torch.ones(5)), "c"),
    (lambda: D.clip_time_dependent(torch.ones(2, 3), torch.tensor([1]), torch.ones(5)), "t"),
    (lambda: D.clip_global(torch.ones(2, 3), 0.0), "max_norm"),
    (lambda: D.clip_global(torch.full((2, 3), math.inf), 1.0), "grad"),
    (lambda: D.time_dependent_threshold(torch.tensor([1.0, 0.0]), 1.0), "weights"),
    (lambda: D.effective_contributions(torch.ones(1, 2), torch.tensor([1]), torch.ones(3), "adaptive", 1.0), "scheme"),
    (lambda: D.spread(torch.tensor([1.0, 0.0])), "e"),
    (lambda: D.per_timestep_gradients(D.Denoiser(2), torch.ones(2, 3, 2), torch.tensor([1]), D.linear_schedule()), "t"),
    (lambda: D.per_timestep_gradients(D.Denoiser(2), torch.ones(1, 3, 2), torch.tensor([0]), D.linear_schedule()), "t"),
    (lambda: D.Denoiser(0), "dim"),
])
def test_bad_inputs_raise(call, match):
    with pytest.raises(GradcoreInputError, match=match):
        call()


def test_q_sample_shape_errors():
    s = D.linear_schedule(T=10)
    with pytest.raises(GradcoreInputError, match="t"):
        D.q_sample(torch.ones(3, 2), torch.tensor([1, 2]), torch.ones(3, 2), s)
    with pytest.raises(GradcoreInputError, match="eps"):
        D.q_sample(torch.ones(3, 2), torch.tensor([1, 2, 3]), torch.ones(3, 3), s)

"""Unit tests of the literature recipes (gradcore/measure/{signal,meanfield,schedules,quartic,bptt,convspectra}.py)."""
from __future__ import annotations

import math

import pytest
import numpy as np
import torch

from gradcore.measure import Kind, bptt, convspectra, meanfield, quartic, schedules, signal
from gradcore.verify.reproduce import run


def test_recipes_do_not_depend_on_the_global_rng():
    torch.manual_seed(1)
    a = signal.relu_variance_gain(depth=4, width=16, batch=4, seeds=3)
    torch.manual_seed(2)
    b = signal.relu_variance_gain.__wrapped__(var_scale=2.0, depth=4, width=16, batch=4, seeds=3)
    assert a.value == b.value and a.kind is Kind.STATISTICAL and a.interval[0] <= a.value <= a.interval[1]


def test_reproduction_is_generated_from_the_call():
    m = schedules.snr(t=3)
    assert m.reproduction.startswith("from gradcore.measure.schedules import snr")
    assert run(m.reproduction) == m.value


def test_exact_and_closed_form_values():
    assert signal.uniform_fan_in_variance().value == 1 / 3
    assert meanfield.chi1(sigma_w2=0.5).value == pytest.approx(0.5, rel=1e-12)   # q* = 0 below criticality
    assert meanfield.fixed_point_q(0.9) == 0.0 and meanfield.fixed_point_q(2.0) > 0
    assert schedules.snr(t=1).value == pytest.approx(9999.0, rel=1e-9)
    assert schedules.first_unit_weight_step().value == schedules.first_unit_weight_step(precision="mp50").value


def test_quartic_threshold_and_clipping():
    assert quartic.gd_divergence_threshold(eta=0.02, steps=500).value == pytest.approx(5.0, rel=1e-3)
    assert math.isinf(quartic.final_distance(x0=10.0, eta=0.02, steps=200, clip=0.0).value)
    assert quartic.final_distance(x0=10.0, eta=0.02, steps=200, clip=1.0).value < 10.0


def test_bptt_bound_is_attained_only_at_the_fixed_point():
    m = bptt.geometric_bound_excess(activation="tanh", width=4, steps=5, seeds=1)
    assert m.kind is Kind.SEARCH and m.value == pytest.approx(1.0, abs=1e-12) and "fixed point" in m.witness


def test_rounding_residuals_carry_their_bound():
    r = convspectra.conv_spectrum_residual(channels=2, n=4, m=4)
    assert r.kind is Kind.ROUNDING and r.value <= r.bound
    assert convspectra.conv_spectrum_residual(channels=2, n=4, m=4, padding_mode="zeros").value > 1e-3
    s = meanfield.product_singular_deviation(width=8, depth=5)
    assert s.value <= s.bound


def test_lag1_correlation_tells_smooth_from_white_noise():
    from gradcore.measure import shattering
    t = torch.linspace(0, 1, 1000, dtype=torch.float64).numpy()
    assert shattering.lag1_correlation(np.sin(2 * math.pi * t)) > 0.99
    noise = np.random.default_rng(0).standard_normal(4000)
    assert abs(shattering.lag1_correlation(noise)) < 0.05
    assert abs(shattering.lag1_correlation(noise + 5.0)) < 0.05   # an offset is not a correlation


def test_grid_gradients_are_each_points_own_derivative():
    """LIT-13: with BN's statistics frozen, df/dx at a grid point equals a central difference of that point's
    output with the other points (and so the statistics) held fixed."""
    from gradcore.measure import shattering
    g = shattering.grid_gradients(architecture="resnet", depth=3, seed=0)
    assert g.shape == (256,) and np.isfinite(g).all()
    # the same nets, with the statistics taken from the grid and x_i moved alone
    from gradcore.measure.seeding import seeded
    width = shattering.GRID["width"]
    with seeded(0):
        first = torch.nn.Linear(1, width, dtype=torch.float64)
        blocks = [shattering.GridBlock(width, True) for _ in range(3)]
        last = torch.nn.Linear(width, 1, dtype=torch.float64)
    grid = torch.linspace(-2, 2, 256, dtype=torch.float64)[:, None]
    stats = []
    with torch.no_grad():
        h = first(grid)
        for b in blocks:
            stats.append((h.mean(0), h.var(0, unbiased=False)))
            h = h + b(h)

    @torch.no_grad()
    def f(x0: float) -> float:
        h = first(torch.tensor([[x0]], dtype=torch.float64))
        for b, (mean, var) in zip(blocks, stats):
            z = torch.nn.functional.batch_norm(h, mean, var, b.norm.weight, b.norm.bias, False, 0.0, b.norm.eps)
            h = h + b.linear(torch.relu(z))
        return float(last(h))

    i, step = 100, 1e-6
    x_i = float(grid[i])
    assert (f(x_i + step) - f(x_i - step)) / (2 * step) == pytest.approx(g[i], rel=1e-5, abs=1e-8)


def test_shattering_slope_refuses_a_log_of_noise():
    from gradcore.measure import shattering
    from gradcore import GradcoreInputError
    with pytest.raises(GradcoreInputError, match="ρ₁ ≤ 0"):
        shattering.gradient_correlation_slope(architecture="feedforward", depths=(1, 16, 24), seeds=4)

"""The skip-path recipes (gradcore.measure.residual, .dense, .unet): kinds, seeding, reproductions."""
from __future__ import annotations

import math

import torch
from torch import nn

from gradcore.measure import Given, Kind
from gradcore.measure import dense as D
from gradcore.measure import residual as R
from gradcore.verify.reproduce import agrees, run


def test_halving_branches_give_exactly_two_to_the_minus_depth():
    m = R.half_branch_stack_gain(blocks=16)
    assert m.kind is Kind.EXACT and m.value == 2.0 ** -16


def test_recipes_do_not_depend_on_the_global_generator():
    torch.manual_seed(1)
    a = R.scaled_block_norm(seed=3, width=8, gain=1.0, activation="tanh", beta=0.0, alpha=1.0)
    torch.manual_seed(2)
    state = torch.get_rng_state()
    b = R.scaled_block_norm(seed=3, width=8, gain=1.0, activation="tanh", beta=0.0, alpha=1.0)
    assert a.value == b.value and torch.equal(state, torch.get_rng_state())   # and the caller's state is kept


def test_a_reproduction_reprints_its_value():
    for m in (R.product_order_error(width=2, depth=2, seed=0), R.identity_path_min_gain(seed=0, width=4, gain=3.0,
              activation="tanh"), D.jacobian_slope(aggregation="sum", activation="tanh", gain=1.0, ks=(2, 4, 8),
                                                   seeds=2)):
        assert agrees({"measured": m.value, "kind": m.kind.value, "bound": m.bound,
                       "guard_tolerance": m.guard_tolerance}, run(m.reproduction))


def test_the_chain_rule_order_is_a_rounding_residual_and_the_written_order_is_not():
    reversed_ = R.product_order_error(width=3, depth=3, seed=1, order="reversed")
    written = R.product_order_error(width=3, depth=3, seed=1)
    assert reversed_.kind is Kind.ROUNDING and reversed_.value <= reversed_.bound
    assert written.kind is Kind.NUMERIC and written.value > 1e-3


class Amplifying(nn.Module):
    """y = 1000·x + tanh(Wx): every block multiplies the gradient by about 1000, so 120 of them overflow."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.lin = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1e3 * x + torch.tanh(self.lin(x))


def test_an_overflowing_stack_is_an_explosion_not_zero():
    m = R.user_stack_transfer_factor(make=Given(Amplifying, "make"), width=4, depth=120, batch=2, seeds=2)
    assert m.kind is Kind.STATISTICAL and m.value == math.inf and "explosion" in m.witness


def test_a_singular_value_below_float64_resolution_is_a_rounding_residual():
    collapse = Given(lambda w: nn.Sequential(nn.Linear(w, w, bias=False), nn.Tanh()), "make")
    low = R.user_stack_singular_value(make=collapse, which="min", width=8, depth=40, seed=0, x_seed=1)
    high = R.user_stack_singular_value(make=collapse, which="max", width=8, depth=40, seed=0, x_seed=1)
    assert high.kind is Kind.NUMERIC
    n = 8 * R.PROBE_BATCH   # the Jacobian of the batch of probes is n × n
    assert low.kind is Kind.ROUNDING and low.value <= low.bound <= n * 2.0 ** -52 * high.value * 1.0000001

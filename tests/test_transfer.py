"""Unit tests of gradcore.measure.transfer: the one routine for the per-layer transfer factor λ."""
from __future__ import annotations

import math

import pytest
import torch

from gradcore import probes
from gradcore.measure import Given, Kind
from gradcore.measure.transfer import network_factor, stack, streams, transfer_factor
from gradcore.verify.reproduce import run


def test_orthogonal_linear_chain_has_exactly_its_gain(device):
    m = transfer_factor(activation=None, init="orthogonal", spectral=1.5, width=16, depth=6, batch=4, seeds=3,
                        device=device)
    assert m.kind is Kind.STATISTICAL and m.n == 3
    assert m.value == pytest.approx(1.5, rel=1e-12)
    assert m.sizes == {"depth": 6, "width": 16, "batch": 4, "seeds": 3}


def test_factor_is_the_geometric_mean_of_probe_norms(device):
    """Network s of the sample is rebuilt from its seed alone and measured with the probes directly."""
    args = dict(activation="tanh", init="xavier_normal", width=12, depth=5, batch=3)
    m = transfer_factor(seeds=2, seed=7, device=device, **args)
    lams = []
    for s in (7, 8):
        weights, g = streams(s)
        torch.manual_seed(weights)
        layers = stack(norm=None, gains=(1.0,), spectral=None, dtype=torch.float64, device=device,
                       **{k: a for k, a in args.items() if k != "batch"})
        x = torch.randn(3, 12, generator=g, dtype=torch.float64).to(device)
        r = torch.randn(3, 12, generator=g, dtype=torch.float64).to(device)
        norms = probes.layer_gradient_norms(layers, x, loss=lambda out, r=r: (out * r).sum())
        lams.append(probes.transfer_factor(norms).geometric)
    assert m.value == pytest.approx(sum(lams) / 2, rel=1e-12)


def test_global_rng_state_does_not_matter():
    args = dict(activation="relu", init="kaiming_normal", width=8, depth=4, batch=2, seeds=2, seed=3)
    torch.manual_seed(1)
    a = transfer_factor.__wrapped__(**args, norm=None, gains=(1.0,), spectral=None, quantity="lambda",
                                    dtype="float64", device="cpu")
    torch.manual_seed(2)
    b = transfer_factor(**args)
    assert a.value == b.value
    assert run(b.reproduction) == b.value


def test_explosion_is_infinite_never_zero():
    m = transfer_factor(activation="relu", init="normal", width=64, depth=60, batch=4, seeds=2, dtype="float32")
    assert m.value == math.inf and m.interval == (math.inf, math.inf)
    assert "explosion" in m.witness


def test_dead_network_is_zero_and_said_so():
    dead = Given(lambda x: 0 * x, "dead", setup="dead = lambda x: 0 * x")
    m = transfer_factor(activation=dead, init="xavier_normal", width=8, depth=3, batch=2, seeds=2)
    assert m.value == 0.0 and "dead" in m.witness
    assert run(m.reproduction) == 0.0


def test_user_objects_pass_through_given():
    calls = []

    def init(w: torch.Tensor) -> None:
        calls.append(tuple(w.shape))
        torch.nn.init.kaiming_normal_(w)

    m = transfer_factor(activation="relu", init=Given(init, "init"), norm="layer_norm", width=8, depth=3, batch=4,
                        seeds=2)
    assert calls == [(8, 8)] * 6 and math.isfinite(m.value)
    assert "init=init" in m.reproduction and "norm='layer_norm'" in m.reproduction


def test_network_factor_flags_non_finite_forward():
    layers = [lambda h: h * float("inf")]
    assert network_factor(layers, torch.ones(1, 2), torch.ones(1, 2)) == (math.inf, math.inf)

"""The flow kind (gradcore/verify/contracts/flow.py): built-ins, broken layers, bad input, inference."""
from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from gradcore.measure import flows as M
from gradcore.testing import check_technique
from gradcore.verify.check import builtin_results, infer_kind, settings_for
from gradcore.verify.contracts import contract

from .readme_examples import run_example
from .contract_helpers import clause_of, refuses_in_one_line


class Coupling(nn.Module):
    """RealNVP affine coupling, log-scale bounded by tanh; ``zero_last`` makes it the identity at init."""

    zero_last = False

    def __init__(self, dim):
        super().__init__()
        self.half = dim // 2
        self.net = nn.Sequential(nn.Linear(self.half, 32), nn.ReLU(), nn.Linear(32, 2 * (dim - self.half)))
        if self.zero_last:
            nn.init.zeros_(self.net[2].weight)
            nn.init.zeros_(self.net[2].bias)

    def scale_shift(self, xa):
        s, t = self.net(xa).chunk(2, dim=-1)
        return torch.tanh(s), t, s

    def forward(self, x):
        xa, xb = x[..., :self.half], x[..., self.half:]
        s, t, _ = self.scale_shift(xa)
        return torch.cat([xa, xb * torch.exp(s) + t], dim=-1), s.sum(-1)

    def inverse(self, y):
        ya, yb = y[..., :self.half], y[..., self.half:]
        s, t, _ = self.scale_shift(ya)
        return torch.cat([ya, (yb - t) * torch.exp(-s)], dim=-1)


class ZeroInitCoupling(Coupling):
    zero_last = True


class RawLogdetCoupling(Coupling):
    """A real bug: the logdet sums the raw log-scale, not the tanh-bounded one the forward uses."""

    def forward(self, x):
        xa, xb = x[..., :self.half], x[..., self.half:]
        s, t, raw = self.scale_shift(xa)
        return torch.cat([xa, xb * torch.exp(s) + t], dim=-1), raw.sum(-1)


class NoInverse(Coupling):
    inverse = None


class WrongInverse(Coupling):
    def inverse(self, y):
        return y


class NoLogdet(Coupling):
    def forward(self, x):
        return super().forward(x)[0]


class UnsummedLogdet(Coupling):
    def forward(self, x):
        y, _ = super().forward(x)
        return y, torch.zeros_like(x)


class Halves(Coupling):
    def forward(self, x):
        return super().forward(x)[0][..., : self.half], torch.zeros(x.shape[0])


def test_builtins_verdicts():
    got = {name: {r.clause: r.verdict for r in rows}
           for name, rows in builtin_results("flow", settings_for()).items()}
    assert got == {"NICE coupling, shear 0.25": {"logdet-exact": "holds", "jacobian-spectrum": "holds",
                                                 "stack-growth": "holds"},
                   "NICE coupling, shear 4": {"logdet-exact": "holds", "jacobian-spectrum": "holds",
                                              "stack-growth": "violated"}}


def test_logdet_exact_catches_a_logdet_that_misses_the_tanh():
    bad = check_technique(RawLogdetCoupling, kind="flow", compare=False)
    clause = clause_of(bad, "logdet-exact")
    assert clause.verdict == "violated" and clause.constants["max |logdet − log|det J||"].value > 1e-3
    good = check_technique(Coupling, kind="flow", compare=False)
    gap = clause_of(good, "logdet-exact").constants["max |logdet − log|det J||"]
    assert clause_of(good, "logdet-exact").verdict == "holds" and gap.value <= gap.bound < 1e-10


def test_logdet_residual_is_the_reference_slogdet_difference():
    # independent reference: log|det J| of the coupling is Σ tanh(s) in closed form
    with torch.random.fork_rng():
        torch.manual_seed(0)
        layer = RawLogdetCoupling(M.DIM).double()
    x = torch.randn(M.DIM, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    _, _, raw = layer.scale_shift(x[: M.DIM // 2])
    expected = float((raw.sum() - torch.tanh(raw).sum()).abs().detach())
    m = M.logdet_residual(layer=RawLogdetCoupling, x_seeds=(1,), scales=(1.0,))
    assert m.value == pytest.approx(expected, rel=1e-9)


def test_stack_growth_violated_at_default_init_and_holds_at_zero_init():
    bad = check_technique(Coupling, kind="flow", compare=False)
    growth = clause_of(bad, "stack-growth")
    assert growth.verdict == "violated" and growth.constants["per-layer log-growth"].interval[0] > math.log(1.02)
    # the counterexample's snippet reproduces the measured rate in a fresh interpreter
    out = subprocess.run([sys.executable, "-c", growth.counterexample["snippet"]], capture_output=True, text=True,
                         check=True)
    assert float(out.stdout) == pytest.approx(growth.constants["per-layer log-growth"].value, rel=1e-9)
    good = check_technique(ZeroInitCoupling, kind="flow", compare=False)
    assert good.ok and clause_of(good, "stack-growth").constants["per-layer log-growth"].value == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize("obj, message", [
    (NoInverse, "not invertible: the layer has no inverse"),
    (WrongInverse, "not invertible: inverse\\(forward\\(x\\)\\) differs"),
    (NoLogdet, "logdet missing"),
    (UnsummedLogdet, "logdet must have one value per sample"),
    (Halves, "must return y of shape"),
    (Coupling(16), "not an instance"),
    (lambda dim: 3, "factory returned int"),
])
def test_bad_flow_layers_fail_with_one_line(obj, message):
    refuses_in_one_line(obj, "flow", message)


def test_kind_inference():
    settings = settings_for()
    assert infer_kind(Coupling, settings).kind == "flow"
    flow = contract("flow")
    assert flow.looks_like(ZeroInitCoupling, settings)
    assert not any(flow.looks_like(other, settings) for other in (NoInverse, NoLogdet, Coupling(16), torch.tanh))


def test_readme_flow_example_runs_as_written(tmp_path, monkeypatch, capsys):
    status, shown, got = run_example("myflows.py", tmp_path, monkeypatch, capsys)
    assert status == 1 and got == shown and ("stack-growth", "❌", "violated") in got

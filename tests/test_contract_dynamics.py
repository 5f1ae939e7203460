"""The dynamics kind (gradcore/verify/contracts/dynamics.py): built-ins, broken step maps, bad input, inference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gradcore.testing import check_technique
from gradcore.verify.check import builtin_results, infer_kind, settings_for
from gradcore.verify.contracts import contract

from .readme_examples import run_example
from .contract_helpers import clause_of, refuses_in_one_line

A = torch.tensor([[-1.0, 0.0], [0.0, -10.0]], dtype=torch.float64)


class RK4:
    """Classical Runge–Kutta on ẋ = Ax, h = 0.25 (forward Euler diverges there: ρ(I + hA) = 1.5)."""

    dim, h = 2, 0.25

    def __call__(self, x, h=None):
        h = self.h if h is None else h
        f = lambda y: y @ A.T  # noqa: E731
        k1 = f(x)
        k2 = f(x + h / 2 * k1)
        k3 = f(x + h / 2 * k2)
        k4 = f(x + h * k3)
        return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


class NoisyLeakyStep:
    """A leaky-integrator update with multiplicative noise drawn at every call (like dropout in a
    neural ODE's vector field): the path backprop differentiates is not the one the costates re-run."""

    dim, h = 4, 0.1

    def __call__(self, x, h=None):
        h = self.h if h is None else h
        return x + h * (-x + torch.tanh(2 * x)) + 0.3 * h ** 0.5 * torch.randn_like(x) * torch.tanh(x)


def leaky(x, h=0.5):
    """x ↦ (1 − h)x + h·tanh(Wx) with a fixed W: a deterministic leaky integrator (echo-state update)."""
    W = torch.tensor([[0.5, -0.3, 0.0], [0.2, 0.4, 0.1], [0.0, 0.3, -0.5]], dtype=x.dtype)
    return (1 - h) * x + h * torch.tanh(x @ W.T)


leaky.dim = 3


def test_builtins_verdicts():
    got = {name: {r.clause: r.verdict for r in rows}
           for name, rows in builtin_results("dynamics", settings_for()).items()}
    assert got == {"Euler, h = 0.1": {"stability-region": "holds", "bptt-growth": "holds", "costates": "holds"},
                   "Euler, h = 0.25": {"stability-region": "violated", "bptt-growth": "violated",
                                       "costates": "holds"}}


def test_euler_outside_its_region_is_caught_with_the_exact_bound():
    res = builtin_results("dynamics", settings_for())["Euler, h = 0.25"]
    region = next(r for r in res if r.clause == "stability-region")
    # closed form: ρ(I + hA) = |1 − 10·0.25| = 1.5, h* = min 2/|λ| = 0.2
    assert region.constants["ρ(∂step/∂x) at x = 0"].value == pytest.approx(1.5, abs=1e-12)
    assert region.constants["measured stability bound on h"].value == pytest.approx(0.2, rel=1e-9)
    assert region.constants["forward Euler's exact bound h* of its ODE"].value == pytest.approx(0.2, rel=1e-6)
    growth = next(r for r in res if r.clause == "bptt-growth")
    assert growth.constants["BPTT per-step factor"].value == pytest.approx(1.5, rel=1e-6)


def test_rk4_holds_where_euler_fails_and_its_bound_is_the_stability_polynomial_root():
    res = check_technique(RK4(), compare=False)
    assert res.kind == "dynamics" and res.ok
    region = clause_of(res, "stability-region")
    # reference: |R(z)| = 1 on the negative real axis, R(z) = 1 + z + z²/2 + z³/6 + z⁴/24, λ = −10
    roots = np.roots([1 / 24, 1 / 6, 1 / 2, 1])
    z = min(r.real for r in roots if abs(r.imag) < 1e-12)
    assert region.constants["measured stability bound on h"].value == pytest.approx(-z / 10, rel=1e-9)
    R = lambda z: 1 + z + z ** 2 / 2 + z ** 3 / 6 + z ** 4 / 24  # noqa: E731
    r = max(abs(R(-0.25)), abs(R(-2.5)))      # hλ for λ = −1, −10
    assert region.constants["ρ(∂step/∂x) at x = 0"].value == pytest.approx(r, abs=1e-12)


def test_costates_catch_a_step_that_draws_noise_at_every_call():
    bad = check_technique(NoisyLeakyStep(), kind="dynamics", compare=False)
    clause = clause_of(bad, "costates")
    assert clause.verdict == "violated" and clause.constants["max_t |λ_t − ∂J/∂x_t| / max|∂J/∂x_t|"].value > 1e-3
    good = check_technique(leaky, kind="dynamics", compare=False)
    assert good.ok and clause_of(good, "costates").verdict == "holds"
    # a contracting map: its BPTT factor is below 1
    assert clause_of(good, "bptt-growth").constants["BPTT per-step factor"].value < 1


def _no_dim(x, h=0.1):
    return x


def _no_h(x, h):
    return x


_no_h.dim = 2


def _wrong_shape(x, h=0.1):
    return x[:, :1]


_wrong_shape.dim = 2


def _nan(x, h=0.1):
    return x / 0 * 0


_nan.dim = 2


@pytest.mark.parametrize("obj, message", [
    (_no_dim, "must declare its state size"),
    (_no_h, "must declare a finite step size"),
    (_wrong_shape, "must return shape \\(4, 2\\)"),
    (_nan, "non-finite"),
    (RK4, "is a class"),
    (3, "not callable"),
])
def test_bad_step_maps_fail_with_one_line(obj, message):
    refuses_in_one_line(obj, "dynamics", message)


def test_kind_inference():
    settings = settings_for()
    assert infer_kind(RK4(), settings).kind == "dynamics" and infer_kind(leaky, settings).kind == "dynamics"
    dyn = contract("dynamics")
    assert not any(dyn.looks_like(o, settings) for o in (RK4, _no_dim, torch.tanh, 3))


def test_readme_dynamics_example_runs_as_written(tmp_path, monkeypatch, capsys):
    status, shown, got = run_example("mysteps.py", tmp_path, monkeypatch, capsys)
    assert status == 0 and got == shown and len(got) == 4
    report = (tmp_path / "checks" / "rk4.md").read_text(encoding="utf-8")
    assert "| Euler, h = 0.25 | ❌" in report      # the side-by-side table the README points to

"""The optimiser kind (gradcore/verify/contracts/optimiser.py): torch optimisers and step rules.

Each gating clause is caught on a real broken variant and holds on a good optimiser; measured
constants are compared with closed forms and with the CLIP/WD/LIT-12 theorems' own recipes.
"""
from __future__ import annotations

import functools
import math

import pytest
import torch

from gradcore import clipping
from gradcore.measure import clipping as C
from gradcore.measure import optimisers as O
from gradcore.measure import quartic as Q
from gradcore.measure import weight_decay as W
from gradcore.testing import check_technique
from gradcore.verify.check import builtin_results, infer_kind, settings_for
from gradcore.verify.contracts import contract

from .contract_helpers import refuses_in_one_line, run_readme_example


def _clause(result, cid):
    return next(r for r in result.results if r.clause == cid)


def _value(result, cid, name):
    return float(_clause(result, cid).constants[name])


class ClippedGD:
    """LIT-12's clipped gradient descent as a step rule: W − η·clip_by_norm(grad, 10)."""

    lr = 0.01

    def __call__(self, W, grad):
        return W - self.lr * clipping.clip_by_norm(grad, 10.0)


class Growing:
    """A broken rule: it inflates the weights by 1 % on every step, gradient or not."""

    lr = 0.1

    def __call__(self, W, grad):
        return 1.01 * W - self.lr * grad


class Frozen(torch.optim.Optimizer):
    """A broken optimiser: step() does nothing."""

    def __init__(self, params, lr=0.1):
        super().__init__(params, {"lr": lr})

    def step(self, closure=None):
        return None


def exploding(W, grad):
    return W + float("inf") * grad


exploding.lr = 0.1


def no_lr(W, grad):
    return W - grad


def not_constructible(params):
    raise ValueError("needs a model")


ADAMW_FP32_LOST = functools.partial(torch.optim.AdamW, lr=1e-4, weight_decay=1e-5)   # ηλ = 1e-9


@pytest.fixture(scope="module")
def builtins():
    return {name: {r.clause: r for r in rows} for name, rows in builtin_results("optimiser", settings_for()).items()}


def test_builtin_verdicts(builtins):
    violated = {name: sorted(c for c, r in rows.items() if r.violated) for name, rows in builtins.items()}
    assert violated == {"SGD": ["quartic"], "SGD momentum 0.9": ["quartic", "step-bound"], "Adam": ["step-bound"],
                        "AdamW": ["step-bound"], "decay_step": ["quartic"]}


def test_builtins_match_closed_forms_and_the_theorems(builtins):
    sgd = builtins["SGD"]["step-bound"].constants
    assert float(sgd["sup ‖Δw‖/(ηθ), first step (search)"]) == pytest.approx(1.0, abs=1e-9)   # CLIP-02
    mom = builtins["SGD momentum 0.9"]["step-bound"].constants
    # momentum's step 100 on a constant clipped gradient: ηθ Σ_{k<100} μ^k, torch clipping ‖g‖ = 400 to
    # θ·400/(400 + 1e-6)
    assert float(mom["‖Δw‖/(ηθ), step 100, constant g = 100·1₁₆, θ = 1"]) == pytest.approx(
        (1 - 0.9 ** 100) / 0.1 * 400 / (400 + 1e-6), rel=1e-12)
    adam = builtins["Adam"]["step-bound"].constants
    # Adam's first step moves each of the 16 coordinates by η: ‖Δw‖ = 4η, at θ = 1e-2 the ratio is 400
    assert float(adam["sup ‖Δw‖/(ηθ), first step (search)"]) == pytest.approx(400.0, rel=1e-5)
    # gradcore's decay rule runs the WD-04/05 theorem's own GD + decay on the linear RNN: same ρ, bit for bit
    rho = builtins["decay_step"]["radius"].constants["ρ(W) after 600 steps"]
    assert rho.value == W.rnn_radius(lam=0.1, steps=600, lr=0.005).value
    decay = builtins["decay_step"]["decay"].constants["‖W_10‖/‖W_0‖, zero gradient, float64"]
    assert decay.value == pytest.approx((1 - 0.005 * 0.1) ** 10, rel=1e-12)   # WD-02's (1−ηλ)^k


def test_step_bound_catches_adam_and_plain_sgd_holds():
    bad = check_technique(torch.optim.Adam, kind="optimiser")
    assert _clause(bad, "step-bound").verdict == "violated"
    assert "snippet" in _clause(bad, "step-bound").counterexample
    good = check_technique(functools.partial(torch.optim.SGD, lr=0.05), kind="optimiser")
    assert _clause(good, "step-bound").verdict == "holds"


def test_decay_catches_a_float32_no_op_and_a_growing_rule():
    lost = check_technique(ADAMW_FP32_LOST, kind="optimiser", name="adamw_tiny_decay")
    assert _clause(lost, "decay").verdict == "violated"
    assert _value(lost, "decay", "‖W_10‖/‖W_0‖, zero gradient, float64") < 1.0
    assert _value(lost, "decay", "‖W_10‖/‖W_0‖, zero gradient, float32") == 1.0   # 1 − 1e-9 rounds to 1
    grows = check_technique(Growing(), kind="optimiser")
    assert _clause(grows, "decay").verdict == "violated"
    assert _value(grows, "decay", "‖W_10‖/‖W_0‖, zero gradient, float64") == pytest.approx(1.01 ** 10, rel=1e-12)
    good = check_technique(functools.partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.01), kind="optimiser")
    assert _clause(good, "decay").verdict == "holds"


def test_quartic_catches_fixed_step_sgd_and_clipped_gd_holds():
    bad = check_technique(functools.partial(torch.optim.SGD, lr=0.01), kind="optimiser", name="sgd")
    assert _clause(bad, "quartic").verdict == "violated"
    assert _value(bad, "quartic", "1/√(2η)") == pytest.approx(1 / math.sqrt(0.02), rel=1e-12)
    good = check_technique(ClippedGD(), kind="optimiser")
    assert _clause(good, "quartic").verdict == "holds" and _clause(good, "step-bound").verdict == "holds"
    # the rule run by the contract's recipe is LIT-12's clipped GD: the theorem's number, bit for bit
    assert Q.final_distance(x0=100.0, optimiser=ClippedGD()).value == Q.final_distance(x0=100.0, eta=0.01,
                                                                                        clip=10.0).value


def test_a_user_optimiser_and_the_theorem_agree_on_momentum():
    mom = functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9)
    assert C.step_ratio(optimizer=mom, steps=100).value == C.step_ratio(optimizer="sgd", momentum=0.9, lr=0.1,
                                                                        steps=100).value


@pytest.mark.parametrize("obj,message", [
    (3, "expected a torch.optim.Optimizer class"),
    (torch.nn.Linear, "expected a torch.optim.Optimizer class"),
    (not_constructible, "not constructible from params: ValueError: needs a model"),
    (Frozen, "does not step"),
    (exploding, "non-finite"),
    (no_lr, "^no_lr as optimiser: optimiser: a step rule .* must carry its learning rate"),
    (functools.partial(torch.optim.SGD, lr=float("nan")), "lr|learning rate"),
])
def test_bad_optimisers_are_one_line(obj, message):
    refuses_in_one_line(obj, "optimiser", message)


def test_kind_inference():
    settings = settings_for()
    for obj in (torch.optim.AdamW, functools.partial(torch.optim.SGD, lr=0.1), O.DecayRule(0.1, 0.5), ClippedGD()):
        assert infer_kind(obj, settings).kind == "optimiser", obj
    looks = contract("optimiser").looks_like
    assert not looks(torch.tanh, settings) and not looks(torch.nn.Linear, settings) and not looks(3, settings)


def test_readme_adamw_example(tmp_path, monkeypatch, capsys):
    run_readme_example("myopt.py", tmp_path, monkeypatch, capsys)

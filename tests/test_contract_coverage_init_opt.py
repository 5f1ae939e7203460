"""Issue 22 coverage clauses of the initialiser, clipping and optimiser kinds, and issue 24's fan-scaling.

decay-step (WD-01, optimiser), value-limit (CLIP-04, clipping), norm-amplification (DEPTH-05),
vanishing-reversal (DEPTH-06) and jacobian-spectrum (LIT-08, initialiser): each measured through
its claim's theorem recipe with the user's object, checked on a technique that holds and one that
does not; the generalised recipes give the theorem's own numbers on gradcore's objects.
"""
from __future__ import annotations

import functools
import math

import pytest
import torch

from gradcore import clipping
from gradcore import initialisation as init
from gradcore.errors import NotApplicable
from gradcore.measure import clipping as C
from gradcore.measure import transfer as T
from gradcore.measure import weight_decay as W
from gradcore.measure.initialisation import _draw_slope
from gradcore.testing import check_technique
from gradcore.verify.check import settings_for
from gradcore.verify.contracts import clipping as CK
from gradcore.verify.contracts import initialiser as I
from gradcore.verify.contracts import optimiser as O

from .hostile_techniques import forgetful_fan_init

SETTINGS = settings_for()


def _optimiser(obj, name="opt"):
    return O.OptimiserContract.subject(obj, name, "opt = ...", SETTINGS)


def _init(name):
    return I.InitSubject(name, init.INITIALISERS[name],
                         f"import gradcore.initialisation\ninit = gradcore.initialisation.get({name!r})")


# --- WD-01: one zero-gradient step is (1 − ηλ)W ------------------------------------------------

class DoubleDecay:
    """States weight_decay = 0.1 but decays by 2ηλ per step."""

    lr, weight_decay = 0.1, 0.1

    def __call__(self, W, grad):
        return W * (1 - 2 * self.lr * self.weight_decay) - self.lr * grad


class Shrink:
    """A step rule with decay it does not state: W·0.99 − η·grad."""

    lr = 0.1

    def __call__(self, W, grad):
        return 0.99 * W - self.lr * grad


@pytest.mark.parametrize("opt", [functools.partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.01),
                                 functools.partial(torch.optim.SGD, lr=0.1, weight_decay=0.5),
                                 functools.partial(torch.optim.Adam, lr=1e-3)])
def test_decay_step_holds_for_decoupled_and_sgd_l2_decay(opt):
    out = O.one_step_decay(_optimiser(opt), SETTINGS)
    assert out.holds is True, out.note
    lam = opt.keywords.get("weight_decay", 0.0)
    assert out.constants["c = ⟨W₁, W₀⟩/‖W₀‖², float64"] == pytest.approx(1 - opt.keywords["lr"] * lam, rel=1e-12)


@pytest.mark.parametrize("opt", [functools.partial(torch.optim.Adam, lr=1e-3, weight_decay=0.1),
                                 functools.partial(torch.optim.Adagrad, lr=0.1, weight_decay=0.1)])
def test_decay_step_catches_decay_coupled_through_an_adaptive_denominator(opt):
    out = O.one_step_decay(_optimiser(opt), SETTINGS)
    assert out.holds is False and "not a uniform scaling" in out.note
    assert out.counterexample["residual"] > 1e3 * out.counterexample["bound"]
    assert "sgd_decay_residual" in out.counterexample["snippet"]


def test_decay_step_catches_a_rule_decaying_other_than_it_states_and_checks_only_scaling_without_lambda():
    wrong = O.one_step_decay(_optimiser(DoubleDecay()), SETTINGS)
    assert wrong.holds is False and "not by 1 − ηλ = 0.99" in wrong.note
    unstated = O.one_step_decay(_optimiser(Shrink()), SETTINGS)
    assert unstated.holds is True and unstated.constants["λ"] == "none stated" and "states no weight_decay" in unstated.note
    assert unstated.constants["c = ⟨W₁, W₀⟩/‖W₀‖², float64"] == pytest.approx(0.99, rel=1e-14)


def test_decay_step_on_torch_sgd_is_the_wd01_theorem_s_number():
    for dtype in ("float64", "float32"):
        theorem = W.sgd_decay_residual(dtype=dtype)
        given = W.sgd_decay_residual(dtype=dtype, optimiser=functools.partial(torch.optim.SGD, lr=0.1,
                                                                              weight_decay=0.5))
        assert given.value == theorem.value


# --- CLIP-04: value clipping's cosine far above the threshold ----------------------------------

def test_value_limit_is_root_two_over_pi_for_value_clipping_and_does_not_apply_to_norm_clipping():
    value = CK.value_limit(CK.ClippingSubject("v", clipping.ValueClip(1.0), "clip = ..."), SETTINGS)
    assert value.holds is True
    assert float(value.constants[f"cos(clip(g), g), Gaussian, s = 1e+06, d = {CK.LIMIT_D}"]) == pytest.approx(
        math.sqrt(2 / math.pi), abs=CK.VALUE_LIMIT_ATOL)
    # Student-t(3) coordinates (outside the claim): E|X|/√E[X²] = 2/π
    assert float(value.constants["cos(clip(g), g), Student-t(3), s = 1e+06 (outside the claim)"]) == pytest.approx(
        2 / math.pi, abs=0.03)
    with pytest.raises(NotApplicable, match="not coordinate-wise"):
        CK.value_limit(CK.ClippingSubject("n", clipping.NormClip(1.0), "clip = ..."), SETTINGS)


def sign_times_half(gs):
    """A coordinate-wise rule that is no value clipping: 0.5·sign(g) below |g| = 2, g itself above."""
    return [torch.where(g.abs() < 2, 0.5 * torch.sign(g), g) for g in gs]


def test_value_limit_catches_a_coordinate_wise_rule_with_another_limit():
    out = CK.value_limit(CK.ClippingSubject("s", sign_times_half, "clip = ..."), SETTINGS)
    assert out.holds is False and "snippet" in out.counterexample


def test_value_limit_on_gradcore_s_value_clip_agrees_with_the_clip04_theorem_recipe():
    theorem = C.value_clip_cosine(d=16384, scale=1e3)
    given = C.value_clip_cosine(d=16384, scale=1e3, rule=clipping.ValueClip(1.0))
    assert given.value == pytest.approx(theorem.value, abs=1e-6)   # same draws; the cosine in float64, not float32


def test_value_limit_is_a_finding_when_the_rule_leaves_no_direction():
    out = CK.value_limit(CK.ClippingSubject("z", lambda gs: [g * 0 for g in gs], "clip = ..."), SETTINGS)
    assert out.holds is False and "no direction" in out.note
    # the undefined 0/0 cosine is a finding, never a number (issue 24 §3)
    numbers = [v for v in (*out.constants.values(), *out.counterexample.values()) if isinstance(v, (int, float))]
    assert not any(math.isnan(float(v)) for v in numbers) and "undefined" in out.counterexample["cosine"]


# --- DEPTH-05/06, LIT-08: the initialiser's chains -------------------------------------------

def test_norm_amplification_reaches_one_and_a_half_only_for_orthogonal_linear_chains():
    orth = I.norm_amplification(_init("orthogonal"), SETTINGS)
    assert orth.constants["1.5 per layer reached by"] == "linear, width 32, linear, width 64"
    assert float(orth.constants["λ, linear, width 64"]) == pytest.approx(1.5, rel=1e-9)
    assert orth.holds is False and float(orth.constants["λ, relu, width 64"]) < 1.2   # ReLU halves the energy
    gauss = I.norm_amplification(_init("xavier_normal"), SETTINGS)
    assert gauss.holds is False and gauss.constants["1.5 per layer reached by"] == "none"
    assert "snippet" in gauss.counterexample


def test_a_user_initialiser_measures_the_depth05_theorem_s_chains():
    mine = I.InitSubject("mine", lambda w: torch.nn.init.orthogonal_(w), "init = ...")
    out = I.norm_amplification(mine, SETTINGS)
    theorem = T.transfer_factor(activation="relu", init="orthogonal", width=64, depth=12, batch=16, spectral=1.5,
                                seeds=out.constants["λ, relu, width 64"].sizes["seeds"])
    assert out.constants["λ, relu, width 64"].value == theorem.value


def test_vanishing_reversal_catches_xavier_tanh_and_holds_for_torch_s_default():
    xavier = I.vanishing_reversal(_init("xavier_normal"), SETTINGS)
    assert xavier.holds is False and "tanh, gains [1.0, 3.0]" in xavier.counterexample["net"]
    assert xavier.counterexample["max f'(z)"] < 1          # the premise f' < 1 held
    small = I.vanishing_reversal(_init("torch_default"), SETTINGS)
    assert small.holds is True
    assert float(small.constants["λ, tanh, gains [1.0, 3.0] cycled"]) < 1


def test_jacobian_spectrum_orthogonal_linear_nets_are_isometric_relu_nets_never():
    orth = I.jacobian_spectrum(_init("orthogonal"), SETTINGS)
    assert orth.constants["linear net isometric (0 to rounding)"] is True and orth.holds is True
    gauss = I.jacobian_spectrum(_init("xavier_uniform"), SETTINGS)
    assert gauss.constants["linear net isometric (0 to rounding)"] is False and gauss.holds is True
    assert float(gauss.constants["p in σ²_(JJᵀ) ∝ L^p, linear"]) == pytest.approx(1.0, abs=0.1)   # free probability


# --- issue 24: fan-scaling's exponent is an expectation --------------------------------------

def test_fan_scaling_catches_an_initialiser_that_one_draw_per_fan_passed():
    # the old clause: one draw per fan (weights from seed + n), |p + 1| ≤ 0.1
    assert abs(_draw_slope(forgetful_fan_init, I.FANS, 0, "cpu") + 1) <= 0.1
    res = check_technique(forgetful_fan_init, kind="initialiser", compare=False)
    fan = next(r for r in res.results if r.clause == "fan-scaling")
    assert fan.verdict == "violated" and fan.constants["draws"] == I.FAN_DRAWS[-1]
    assert float(fan.constants["exponent p in Var(W) ∝ n^p"]) > -0.9 and "snippet" in fan.counterexample


@pytest.mark.parametrize("name", ["xavier_normal", "orthogonal"])
def test_fan_scaling_decides_gradcore_s_initialisers_with_the_first_draws(name):
    out = I.fan_scaling(_init(name), SETTINGS)
    assert out.holds is True and out.constants["draws"] == I.FAN_DRAWS[0]

"""Clauses appended to the activation and initialiser kinds (issue 22): SAT-05/06, LIT-09, DEPTH-10,
ACT-05 for activations; INIT-02, LIT-05/06/14 for initialisers. Each clause is run alone on a technique
that holds and on a broken variant that violates it, and the generalised recipes are checked against
the theorem paths they extend."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradcore import activations
from gradcore import initialisation as inits
from gradcore.errors import InputError
from gradcore.measure import Given
from gradcore.measure import depth as DEPTH
from gradcore.measure import initialisation as INIT
from gradcore.measure import meanfield as MF
from gradcore.measure import signal as SIG
from gradcore.verify.check import contract, settings_for
from gradcore.verify.contracts.base import run_clause

SETTINGS = settings_for()


def _run(kind: str, obj, clause_id: str, name: str = "technique"):
    module = contract(kind)
    subject = module.subject(obj, name, f"{module.binding} = ...", SETTINGS)
    clause = next(c for c in module.clauses if c.id == clause_id)
    return run_clause(clause, subject, SETTINGS)


def steep_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """σ(4x): saturates early (4σ'(4x) < 0.01 beyond |x| ≈ 1.5; σ's own edge is 4.59)."""
    return torch.sigmoid(4 * x)


def half_tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh/2: f'(0) = 1/2, so no σ_w² that He or Xavier give makes it critical."""
    return 0.5 * torch.tanh(x)


def plain_tanh(x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x)


def identity(x: torch.Tensor) -> torch.Tensor:
    return x * 1.0


def shifted_normal(w: torch.Tensor) -> torch.Tensor:
    """He's N(0, 2/n) shifted by +0.05: not zero-mean, so Var(y) ≠ n·Var(W)·Var(x)."""
    with torch.no_grad():
        return w.normal_(0.05, math.sqrt(2 / w.shape[1]))


# --- activation ----------------------------------------------------------------------

def test_saturation_span_holds_for_sigmoid_and_catches_early_saturation():
    ok = _run("activation", activations.get("sigmoid"), "saturation-span", "sigmoid")
    assert ok.verdict == "holds" and not ok.gate
    # SAT-03/04's numbers: σ' < 0.01 beyond |x| ≈ 4.59 (not 3), d_σ(4) ≈ 0.018
    assert ok.constants["x₂ (right tail saturated above)"].value == pytest.approx(4.59, abs=0.011)
    assert ok.constants["distance to the asymptote at x = 4"].value == pytest.approx(0.01798621, rel=1e-6)
    assert ok.constants["saturated sides"] == "left, right"
    bad = _run("activation", steep_sigmoid, "saturation-span")
    assert bad.verdict == "violated"
    assert bad.constants["x₂ − x₁"] == pytest.approx(3.0, abs=0.02)
    assert bad.counterexample["f'(x)"][0] == pytest.approx(1.0)   # between the tails: 4·σ'(0), unsaturated
    assert "snippet" in bad.counterexample


def test_saturation_span_of_relu_is_one_sided_and_unbounded():
    r = _run("activation", activations.get("relu"), "saturation-span", "relu")
    assert r.verdict == "holds" and r.constants["saturated sides"] == "left"
    assert r.constants["x₂ − x₁"] is None   # infinite: the right tail never saturates


def test_chi1_criticality_holds_for_tanh_at_xavier_and_not_for_half_tanh():
    ok = _run("activation", plain_tanh, "chi1-criticality")   # a user's tanh (autograd path), best of He/Xavier
    assert ok.verdict == "holds" and ok.constants["chi_1"].value == pytest.approx(1.0, abs=1e-9)
    bad = _run("activation", half_tanh, "chi1-criticality")
    assert bad.verdict == "violated"
    assert bad.constants["chi_1"].value == pytest.approx(0.5, abs=1e-6)   # 2 · (1/2)² at q* = 0 (He)
    assert "chi1(" in bad.counterexample["snippet"]


def test_precision_depth_catches_sigmoid_underflowing_in_float32():
    bad = _run("activation", activations.get("sigmoid"), "precision-depth", "sigmoid")
    assert bad.verdict == "violated" and bad.counterexample["limit"] == "underflow"
    depth16, depth32 = bad.constants["underflow depth, float16"], bad.constants["underflow depth, float32"]
    assert depth16 < depth32 <= 100
    ok = _run("activation", activations.get("tanh"), "precision-depth", "tanh")
    assert ok.verdict == "holds"


def test_derivative_rms_is_one_for_the_identity_and_not_for_relu():
    assert _run("activation", identity, "derivative-rms").verdict == "holds"
    relu = _run("activation", activations.get("relu"), "derivative-rms", "relu")
    assert relu.verdict == "violated"
    assert relu.constants["sqrt E[f'(z)^2], z ~ N(0,1)"].value == pytest.approx(math.sqrt(0.5), abs=0.005)


# --- initialiser -----------------------------------------------------------------------

def test_variance_formula_holds_for_he_and_catches_a_non_zero_mean():
    assert _run("initialiser", inits.get("kaiming_normal"), "variance-formula", "kaiming_normal").verdict == "holds"
    bad = _run("initialiser", shifted_normal, "variance-formula")
    assert bad.verdict == "violated" and bad.gate
    # E[w²]/Var(w) = (0.05² + 2/128)/(2/128) ≈ 1.16
    assert bad.constants["Var(y)/(n_in·Var(W)·Var(x))"].value == pytest.approx(1 + 0.05 ** 2 * 64, abs=0.03)


def test_glorot_jacobian_separates_normalized_from_torchs_standard_init():
    ok = _run("initialiser", inits.get("xavier_uniform"), "glorot-jacobian", "xavier_uniform")
    assert ok.verdict == "holds"
    # torch's default Linear init is U[±1/√n_in]: Glorot & Bengio's 'standard' init, near 0.5
    bad = _run("initialiser", inits.get("torch_default"), "glorot-jacobian", "torch_default")
    assert bad.verdict == "violated"
    assert bad.constants["mean singular value of ∂h_(i+1)/∂h_i"].value == pytest.approx(0.5, abs=0.05)


def test_relu_forward_variance_holds_for_he_and_catches_the_wrong_fan():
    he = _run("initialiser", inits.get("kaiming_normal"), "relu-forward-variance", "kaiming_normal")
    assert he.verdict == "holds"
    bad = _run("initialiser", inits.get("xavier_normal"), "relu-forward-variance", "xavier_normal")
    assert bad.verdict == "violated"
    assert bad.constants["Var[y_(l+1)]/Var[y_l] (ReLU)"].value == pytest.approx(0.5, abs=0.05)   # ½·n·(1/n)


def test_deep_linear_isometry_holds_for_orthogonal_only():
    ok = _run("initialiser", inits.get("orthogonal"), "deep-linear-isometry", "orthogonal")
    assert ok.verdict == "holds" and ok.constants["log10 σ_max/σ_min, depth 8"].value < 1e-10
    bad = _run("initialiser", inits.get("kaiming_normal"), "deep-linear-isometry", "kaiming_normal")
    assert bad.verdict == "violated"
    deep, one = (bad.constants[f"log10 σ_max/σ_min, depth {d}"].value for d in (8, 1))
    assert deep > one > 1


def test_an_initialiser_writing_nan_violates_variance_formula_naming_the_weight():
    def nan_when_large(w: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            w.normal_(0, 0.1)
            if w.shape[0] >= 128:
                w[0, 0] = math.nan
        return w

    r = _run("initialiser", nan_when_large, "variance-formula")
    assert r.verdict == "violated" and "non-finite" in r.note


# --- the generalised recipes agree with the theorem paths they extend ---------------------

@pytest.mark.parametrize("sigma_w2", [0.5, 1.5, 2.0])
def test_chi1_of_a_users_tanh_matches_the_closed_form_tanh(sigma_w2):
    user = MF.chi1(sigma_w2=sigma_w2, activation=Given(plain_tanh, "f")).value
    assert user == pytest.approx(MF.chi1(sigma_w2=sigma_w2).value, rel=1e-10)


def test_chi1_of_relu_at_he_is_one_and_bad_arguments_are_named():
    assert MF.chi1(sigma_w2=2.0, activation="relu").value == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(InputError, match="limit"):
        DEPTH.stack_limit_depth(limit="sideways", activation="relu", init="kaiming_normal", dtype="float32")


def test_stack_limit_depth_of_a_linear_chain_matches_chain_limit_depth():
    def tenth_orthogonal(w: torch.Tensor) -> torch.Tensor:
        inits.orthogonal(w)
        with torch.no_grad():
            return w.mul_(0.1)

    for dtype in ("float16", "float32"):
        stacked = DEPTH.stack_limit_depth(limit="underflow", activation=Given(identity, "f"),
                                          init=Given(tenth_orthogonal, "init"), dtype=dtype, width=8, batch=2)
        chain = DEPTH.chain_limit_depth(limit="underflow", gain=0.1, dtype=dtype)
        assert abs(stacked.value - chain.value) <= 1, dtype


def test_init_recipes_reproduce_the_theorem_recipes_on_the_same_draws():
    # He's N(0, 2/n) is the theorem's var_scale = 2 (drawn in another order): the intervals overlap
    he = SIG.init_relu_layer_gain(init="kaiming_normal", depth=30, width=64, seeds=6)
    ref = SIG.relu_layer_gain(var_scale=2.0, depth=30, width=64, seeds=6)
    assert he.interval[0] <= ref.interval[1] and ref.interval[0] <= he.interval[1]
    # the same function on the same draws: equal to the last bit
    xavier = INIT.init_forward_variance_ratio(init="xavier_normal", n_in=64, n_out=64, batch=128, seeds=3).value
    assert xavier == INIT.forward_variance_ratio(inputs="gaussian", n_in=64, n_out=64, batch=128, seeds=3).value
    ortho = MF.product_log10_condition(init=Given(inits.get("orthogonal"), "init"), width=16, depth=4).value
    assert ortho == MF.product_log10_condition(init="orthogonal", width=16, depth=4).value


def test_a_singular_product_is_an_infinite_condition_not_a_crash():
    def rank_one(w: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return w.fill_(1.0 / w.shape[0])

    assert MF.product_log10_condition(init=Given(rank_one, "init"), width=8, depth=2).value == math.inf


def test_the_new_clauses_constants_render_in_a_check_report():
    """Every constant is a number, a Measurement, a string or None: the markdown report renders it."""
    from gradcore.verify.check_report import _constants

    for kind, obj, cid in (("initialiser", inits.get("orthogonal"), "glorot-jacobian"),
                           ("initialiser", inits.get("orthogonal"), "variance-formula"),
                           ("activation", activations.get("sigmoid"), "saturation-span"),
                           ("activation", activations.get("sigmoid"), "precision-depth")):
        assert _constants(_run(kind, obj, cid, "x"))

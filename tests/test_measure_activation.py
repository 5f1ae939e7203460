"""Unit tests of the activation recipes (gradcore.measure.derivative, gradcore.measure.saturation)
and of the activation contract on hostile inputs, against closed forms."""
import math

import pytest
import sympy as sp
import torch

from gradcore.measure import Given, Kind
from gradcore.measure import derivative as D
from gradcore.measure import saturation as S
from gradcore.testing import check_technique
from gradcore.verify.loading import load_object
from gradcore.verify.reproduce import run


def nan_far(x):
    """tanh, but NaN for |x| > 100: finite on the probed interval [-40, 40], NaN at the far
    points (±1e3, ±1e6) the derivative search also visits, with f' = 0 there by autograd."""
    return torch.where(x.abs() > 100, torch.full_like(x, math.nan), torch.tanh(x))


def nan_near(x):
    """tanh, but NaN for |x| > 10: inside the probed interval, so it cannot be checked at all."""
    return torch.where(x.abs() > 10, torch.full_like(x, math.nan), torch.tanh(x))


def constant(x):
    """An output that does not depend on the input: f' = 0 everywhere."""
    return torch.ones_like(x)


def _clause(result, cid):
    return next(r for r in result.results if r.clause == cid)


def test_sympy_extremum_is_exact_where_the_value_is():
    sig = D.derivative_extremum(activation="sigmoid", method="sympy")
    assert (sig.value, sig.kind) == (0.25, Kind.EXACT)
    gelu = D.derivative_extremum(activation="gelu", method="sympy")
    x = sp.Symbol("x")
    exact = sp.diff(x / 2 * (1 + sp.erf(x / sp.sqrt(2))), x).subs(x, sp.sqrt(2))
    assert gelu.kind is Kind.NUMERIC and gelu.value == float(sp.N(exact, 30))
    at = D.derivative_extremum(activation="gelu", method="sympy", quantity="argmax")
    assert at.value == math.sqrt(2)
    low = D.derivative_extremum(activation="gelu", method="sympy", extremum="inf", absolute=False)
    assert low.value == pytest.approx(1 - float(sp.N(exact, 30)), abs=1e-15)   # GELU'(−x) = 1 − GELU'(x)
    tail = D.derivative_extremum(activation="tanh", method="sympy", extremum="inf")
    assert (tail.value, tail.kind) == (0.0, Kind.EXACT)


def test_search_bound_and_its_reproduction():
    m = D.derivative_extremum(activation="gelu")
    assert m.kind is Kind.SEARCH and m.direction == "lower"
    assert m.value == pytest.approx(D.derivative_extremum(activation="gelu", method="sympy").value, abs=1e-12)
    assert run(m.reproduction) == m.value


def test_user_object_as_given():
    setup = "import torch\nfrom gradcore.measure import Given\nf = Given(lambda x: 2 * torch.tanh(x), 'f')"
    f = Given(lambda x: 2 * torch.tanh(x), "f", setup)
    m = D.derivative_extremum(activation=f)
    assert m.value == pytest.approx(2.0, abs=1e-12)
    assert setup in m.reproduction and run(m.reproduction) == m.value


def test_saturation_edges_match_closed_forms():
    assert S.saturation_edge(activation="tanh", method="sympy").value == pytest.approx(
        math.atanh(math.sqrt(0.99)), abs=1e-14)
    assert S.saturation_edge(activation="tanh", method="sympy", of="output").value == pytest.approx(
        math.atanh(0.99), abs=1e-14)
    s = (1 + math.sqrt(1 - 4 * 0.01)) / 2
    assert S.saturation_edge(activation="sigmoid", method="sympy", side="left").value == pytest.approx(
        -math.log(s / (1 - s)), abs=1e-14)
    assert math.isnan(S.saturation_edge(activation="relu").value)          # ReLU's right tail never saturates
    assert S.level_crossings(activation="sigmoid", level=0.3).value == 0   # above sup σ' = 1/4


def test_nan_beyond_the_probed_interval_is_an_explosion():
    res = check_technique(nan_far, kind="activation")
    bound = _clause(res, "derivative-bound")
    assert bound.verdict == "violated" and math.isinf(float(bound.constants["sup|f'| (search)"]))
    assert abs(bound.counterexample["x"]) > 100 and "not finite" in bound.note


def test_nan_inside_the_probed_interval_cannot_be_checked():
    from gradcore.errors import CheckError

    with pytest.raises(CheckError, match="non-finite values on the probed domain"):
        check_technique(nan_near, kind="activation")


def test_a_checked_techniques_snippet_runs():
    from gradcore.verify.check import check

    res = check(load_object("tests.test_measure_activation:nan_far"), spec="tests.test_measure_activation:nan_far",
                kind="activation", compare=False)
    assert math.isinf(run(_clause(res, "derivative-bound").counterexample["snippet"]))


def test_constant_activation_has_zero_derivative():
    res = check_technique(constant, kind="activation")
    bound = _clause(res, "derivative-bound")
    assert bound.verdict == "holds" and float(bound.constants["sup|f'| (search)"]) == 0.0
    sat = _clause(res, "saturation")
    assert sat.verdict == "violated" and float(sat.constants["saturated share of [-40, 40]"]) == 1.0
    assert D.derivative_at(activation=Given(constant, "f"), x=1.0).value == 0.0


def test_a_search_keeps_an_infinite_score():
    from hypothesis import strategies as st

    from gradcore.measure.search import maximize

    found = maximize(st.floats(0, 1), lambda x: math.inf if x > 0.5 else x, candidates=[("end", 1.0)])
    assert math.isinf(found.value) and found.source == "end"

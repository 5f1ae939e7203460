"""The contract protocol is explicit: Contract subclasses are the registry, built-ins rebuild themselves."""
import pytest
import torch

from gradcore import testing
from gradcore.errors import CheckError, NotApplicable
from gradcore.testing import check_technique
from gradcore.verify import check
from gradcore.verify.contracts import KINDS, Clause, Contract, Outcome, contract
from gradcore.verify.contracts.contract import Inference, Signature, rebuild


def test_every_kind_is_a_registered_contract_subclass():
    assert KINDS == ("activation", "initialiser", "norm", "residual", "recurrent", "attention", "clipping", "flow",
                     "dynamics", "diffusion", "optimiser", "convolution", "dense", "unet", "transformer")
    for kind in KINDS:
        c = contract(kind)
        assert issubclass(c, Contract) and c.kind == kind and c.clauses and c.binding.isidentifier()
    with pytest.raises(CheckError, match="unknown kind 'bogus'"):
        contract("bogus")


@pytest.mark.parametrize("kind", KINDS)
def test_each_built_in_is_rebuilt_by_its_generated_setup(kind):
    c = contract(kind)
    for name, (obj, setup) in c.builtins().items():
        namespace: dict = {}
        exec(setup, namespace)
        again = namespace[c.binding]
        assert again is obj or repr(again) == repr(obj), f"{kind} {name}: {setup}"


def test_a_new_kind_registers_by_subclassing_and_must_say_what_it_is():
    class Probe(Contract):
        kind, clauses = "probe-kind", ()

    try:
        assert contract("probe-kind") is Probe and Probe.binding == "probe_kind"   # derived from the kind
    finally:
        del Contract.registry["probe-kind"]
    with pytest.raises(TypeError, match="must define 'clauses'"):
        type("Broken", (Contract,), {"kind": "broken"})


# --- the contract pattern (issue 22): one module of clauses, the boilerplate in the base class ---

SMOKES: list[str] = []


def _doubles(s, settings) -> Outcome:
    """A toy clause: the technique doubles its first input."""
    x = settings.randn(4)
    return Outcome(bool(torch.equal(s.prepared(x, x), 2 * x)), {"probe": float(x.sum())})


def _smoke(fn, settings):
    SMOKES.append(getattr(fn, "__name__", "?"))
    y = fn(settings.randn(3), settings.randn(3))
    if not isinstance(y, torch.Tensor) or y.shape != (3,):
        raise CheckError("a doubler maps a (3,) tensor to a (3,) tensor")


@pytest.fixture
def doubler_kind():
    """A kind written in the pattern's short form: clauses, a signature, a smoke test."""
    class DoublerContract(Contract):
        kind, clauses = "doubler", (Clause("doubles", ("ACT-01",), "f(x) = 2x", _doubles),)
        signature = Signature(cls=False, requires=2)
        smoke, objects = staticmethod(_smoke), staticmethod(lambda: {})

    SMOKES.clear()
    yield DoublerContract
    del Contract.registry["doubler"]


def twice(x, y):
    return 2 * x


def test_a_pattern_kind_is_inferred_with_a_reason_and_smoke_tested_once(doubler_kind):
    res = check_technique(twice, compare=False)
    assert res.kind == "doubler" and res.ok and [r.clause for r in res.results] == ["doubles"]
    assert res.kind_reason == "inferred: not a class, requires 2; its doubler smoke test passed"
    assert SMOKES == ["twice"]          # inference ran it; subject reused the prepared technique
    assert "kind doubler: inferred" in res.table() and res.summary in res.table()
    # the reproduction binds the derived name
    assert doubler_kind.binding == "doubler" and "doubler = " in doubler_kind.subject(
        twice, "twice", "doubler = twice", check.settings_for()).given.setup


def test_cheap_questions_come_before_any_smoke_test(doubler_kind):
    settings = check.settings_for()
    answer = doubler_kind.infer(lambda x: x, settings)
    assert not answer.matches and answer.reason == "its call requires 1 positional argument(s), not 2"
    assert not doubler_kind.infer(type("K", (), {}), settings).matches
    assert SMOKES == []


def test_a_kind_may_not_write_its_own_subject_or_inference():
    """The boilerplate lives once, in the base class: a kind declares hooks, never subject/looks_like."""
    with pytest.raises(TypeError, match="defines subject, looks_like: declare a signature"):
        type("LongForm", (Contract,), {"kind": "long-form", "clauses": (), "subject": staticmethod(lambda *a: a),
                                       "looks_like": staticmethod(lambda *a: True)})
    assert "long-form" not in Contract.registry


def test_a_technique_may_declare_its_kind():
    def odd_clip(grads):
        return [g.clamp(-1, 1) for g in grads]

    odd_clip.gradcore_kind = "clipping"
    assert check.infer_kind(odd_clip, check.settings_for()).reason == "declared by its gradcore_kind attribute"
    odd_clip.gradcore_kind = "clippping"
    with pytest.raises(CheckError, match="gradcore_kind = 'clippping' is not a kind"):
        check.infer_kind(odd_clip, check.settings_for())


@pytest.mark.parametrize("obj, kind, reason", [
    (torch.nn.GRUCell, "recurrent", "inferred: it is a RNNCellBase"),
    (torch.nn.LayerNorm, "norm", "inferred: nn.Module, takes 1 positional argument(s); its norm smoke test passed"),
    (torch.tanh, "activation", "inferred: takes 1 positional argument(s); its activation smoke test passed"),
])
def test_each_built_in_kind_says_why_it_was_chosen(obj, kind, reason):
    found = check.infer_kind(obj, check.settings_for())
    assert (found.kind, found.reason) == (kind, reason)


def test_an_object_whose_repr_does_not_rebuild_it_is_refused():
    class Opaque:
        def __call__(self, x):
            return x

    with pytest.raises(CheckError, match="cannot be rebuilt"):
        rebuild(Opaque(), "f")


@pytest.mark.parametrize("kind, obj", [("activation", torch.tanh), ("norm", torch.nn.LayerNorm),
                                       ("clipping", lambda grads: [g.clamp(-1, 1) for g in grads])])
def test_a_built_in_kind_smoke_tests_an_inferred_technique_once(monkeypatch, kind, obj):
    calls = []
    smoke = contract(kind).smoke
    monkeypatch.setattr(contract(kind), "smoke", staticmethod(lambda *a: calls.append(1) or smoke(*a)))
    settings = check.settings_for()
    inference = check.infer_kind(obj, settings)
    subject = contract(kind).subject_after(inference, obj, "t", "x = ...", settings)
    assert inference.kind == kind and subject.name == "t" and calls == [1]
    contract(kind).subject(obj, "t", "x = ...", settings)    # given the kind, subject runs it itself
    assert calls == [1, 1]


def _only_for_integers(s, settings) -> Outcome:
    """A toy clause whose precondition a float technique does not meet."""
    raise NotApplicable("the technique is not integer-valued, so a clause about integer rounding says nothing")


@pytest.fixture
def gated_not_applicable_kind():
    """A kind whose one gating clause does not apply to the techniques tried."""
    class RoundingContract(Contract):
        kind = "rounding-probe"
        clauses = (Clause("integer-rounding", ("ACT-01",), "rounds to integers", _only_for_integers),)
        signature = Signature(cls=False, requires=2)
        smoke, objects = staticmethod(_smoke), staticmethod(lambda: {})

    yield RoundingContract
    del Contract.registry["rounding-probe"]


def test_a_clause_that_does_not_apply_neither_holds_nor_fails(gated_not_applicable_kind):
    """A gating clause raising NotApplicable is 'does not apply': the check stays ok, the summary
    counts it, and a parametrized pytest item for it is skipped with the reason."""
    res = check_technique(twice, kind="rounding-probe", compare=False)
    (r,) = res.results
    assert r.verdict == "does not apply" and r.gate and not (r.violated or r.unmeasured or r.undecided)
    assert r.note == "does not apply: the technique is not integer-valued, so a clause about integer rounding " \
                     "says nothing"
    assert res.ok and res.summary.endswith("0 could not be measured, 1 did not apply")
    assert "➖ does not apply" in res.table()
    item = testing.ClauseCheck(testing._Technique("twice", twice, Inference("rounding-probe", True, "given"), {}),
                               gated_not_applicable_kind.clauses[0])
    with pytest.raises(pytest.skip.Exception, match="twice integer-rounding: does not apply: the technique"):
        item(twice)

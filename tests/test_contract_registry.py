"""The contract protocol is explicit: Contract subclasses are the registry, built-ins rebuild themselves."""
import pytest

from gradcore.verify.contracts import KINDS, CheckError, Contract, contract
from gradcore.verify.contracts.contract import rebuild


def test_every_kind_is_a_registered_contract_subclass():
    assert KINDS == ("activation", "initialiser", "norm", "residual", "recurrent", "attention", "clipping", "flow",
                     "dynamics", "transformer")
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
        kind, binding, clauses = "probe-kind", "p", ()

    try:
        assert contract("probe-kind") is Probe
    finally:
        del Contract.registry["probe-kind"]
    with pytest.raises(TypeError, match="must define 'binding'"):
        type("Broken", (Contract,), {"kind": "broken", "clauses": ()})


def test_an_object_whose_repr_does_not_rebuild_it_is_refused():
    class Opaque:
        def __call__(self, x):
            return x

    with pytest.raises(CheckError, match="cannot be rebuilt"):
        rebuild(Opaque(), "f")

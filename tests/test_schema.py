"""The results schema: every document gradcore reads is validated, errors name the claim and field."""
from __future__ import annotations

import copy
import json
import math
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from gradcore.errors import ResultsError
from gradcore.verify import record, results, schema

ROOT = Path(__file__).resolve().parent.parent
CI = settings.get_profile("ci")


@pytest.fixture(scope="module")
def doc() -> dict:
    full = json.loads((ROOT / "reports" / "results.json").read_text(encoding="utf-8"))
    full["claims"] = full["claims"][:4]
    return full


def test_the_shipped_schema_is_a_valid_draft_2020_12_schema_with_the_recorder_vocabulary():
    text = resources.files("gradcore.verify").joinpath("results.schema.json").read_text(encoding="utf-8")
    assert json.loads(text)["$schema"].endswith("2020-12/schema")
    Draft202012Validator.check_schema(schema.schema())
    assert schema.schema()["$defs"]["verdict"]["enum"] == list(record.VERDICTS)
    assert schema.schema()["$defs"]["relation"]["enum"] == list(record.RELATIONS)


@pytest.mark.parametrize("name", ["results.json", "baseline.json"])
def test_the_committed_results_files_validate(name):
    assert schema.errors(json.loads((ROOT / "reports" / name).read_text(encoding="utf-8"))) == []


def _set(doc: dict, path: tuple, value) -> dict:
    out = copy.deepcopy(doc)
    node = out
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


_DELETE = object()
K0 = ("claims", 1, "constants", 0)
D0 = ("claims", 2, "devices", "cpu", "constants", 0)


@pytest.mark.parametrize("path, value, field", [
    (K0 + ("guard_tolerance",), math.inf, "constants[0].guard_tolerance"),
    (K0 + ("guard_tolerance",), math.nan, "constants[0].guard_tolerance"),
    (K0 + ("guard_tolerance",), -1.0, "constants[0].guard_tolerance"),
    (D0 + ("guard_tolerance",), math.inf, "devices.cpu.constants[0].guard_tolerance"),
    (K0 + ("tolerance",), -0.5, "constants[0].tolerance"),
    (K0 + ("measured",), "banana", "constants[0].measured"),
    (K0 + ("measured",), math.nan, "constants[0].measured"),
    (K0 + ("measured",), {"value": 1}, "constants[0].measured"),
    (K0 + ("relation",), "≈", "constants[0].relation"),
    (K0 + ("holds",), "yes", "constants[0].holds"),
    (K0 + ("name",), _DELETE, "constants[0]"),
    (("claims", 1, "verdict"), "maybe", "verdict"),
    (("claims", 2, "devices", "cpu", "verdict"), "maybe", "devices.cpu.verdict"),
    (("claims", 1, "constants"), {"a": 1}, "constants"),
    (("claims", 1, "title"), _DELETE, "title"),
    (("claims", 1, "topic"), _DELETE, "topic"),
    (("claims", 1, "devices"), {}, "devices"),
    (("claims", 1, "series"), [{"figure": "f", "label": "", "x": [1, 2], "y": [1], "xlabel": "", "ylabel": ""}],
     "series[0]"),
    # what the commands could not handle although the schema let it through (exit 3 before):
    (K0 + ("measured",), 10 ** 400, "constants[0].measured"),            # the validator itself overflowed
    (K0 + ("claimed",), -(10 ** 309), "constants[0].claimed"),
    (K0 + ("n",), 2 ** 64, "constants[0].n"),
    (K0 + ("kind",), "rounding", "constants[0].bound"),                  # the guard took min() of no bound
    (K0 + ("interval",), [None, None], "constants[0].interval[0]"),       # the guard subtracted from None
    (K0 + ("guard_tolerance",), 5.0, "constants[0].guard_tolerance"),   # measured 1: any value passes the guard
    (K0 + ("guard_tolerance",), 1e300, "constants[0].guard_tolerance"),
    (K0 + ("name",), "a\nb", "constants[0].name"),
    (("claims", 1, "title"), "\x1b[2J", "title"),
    (("claims", 1, "topic"), "a\x00b", "topic"),
    (("claims", 1, "test", "line"), _DELETE, "test"),
    (("claims", 1, "test", "line"), 10 ** 30, "test.line"),
    (("claims", 1, "counterexample"), {"snippet": None}, "counterexample.snippet"),
])
def test_a_bad_field_is_an_error_naming_the_claim_and_field(doc, path, value, field):
    if path[-1] == "kind":
        doc = _set(doc, K0 + ("bound",), None)
    if path[-1] == "guard_tolerance" and value == 5.0:
        doc = _set(_set(doc, K0 + ("measured",), 1.0), K0 + ("claimed",), 0.5)
    bad = _set(doc, path, value)
    cid = doc["claims"][path[1]]["id"]
    with pytest.raises(ResultsError) as e:
        schema.validate(bad, "r.json")
    message = str(e.value)
    assert f"claim {cid}" in message and field in message and "\n" not in message


@pytest.mark.parametrize("cid", ["ACT-01\x00", "ACT-01\n", "../../x", "", "ACT-1", 3])
def test_a_claim_id_is_like_act_01_and_the_error_stays_one_line(doc, cid):
    """A NUL in an id reached the figure file name (ValueError: embedded null byte, exit 3)."""
    with pytest.raises(ResultsError, match=r"claim \S+, field id: .* is not (a claim id|of type string)") as e:
        schema.validate(_set(doc, ("claims", 0, "id"), cid), "r.json")
    assert "\n" not in str(e.value) and "\x00" not in str(e.value)


def test_a_claim_appears_once(doc):
    """The guard keys claims by id: a second ACT-01 silently replaced the first (and its regression)."""
    twice = dict(doc, claims=doc["claims"] + [copy.deepcopy(doc["claims"][0])])
    with pytest.raises(ResultsError, match=f"claim #{len(doc['claims'])}, field id: .* appears more than once"):
        schema.validate(twice, "r.json")


def test_a_technique_document_names_its_technique(tmp_path):
    """``technique: {}`` validated, then as_claims raised KeyError 'kind' (exit 3)."""
    tech = json.loads((ROOT / "reports" / "techniques.json").read_text(encoding="utf-8"))
    with pytest.raises(ResultsError, match="field technique: 'name' is a required property"):
        schema.validate(dict(tech, technique={}), "t.json")
    with pytest.raises(ResultsError, match="kinds.activation"):
        schema.validate(dict(tech, kinds={"activation": {"a\x00b": []}}), "t.json")


def test_a_paper_source_carries_its_citation(doc):
    full = json.loads((ROOT / "reports" / "results.json").read_text(encoding="utf-8"))
    i = next(i for i, c in enumerate(full["claims"]) if c["sources"][0].get("kind") == "paper")
    with pytest.raises(ResultsError, match="sources\\[0\\]: 'cite' is a required property"):
        schema.validate(_set(full, ("claims", i, "sources", 0, "cite"), _DELETE), "r.json")


def test_guard_tolerance_scale_keeps_every_committed_constant():
    """The cap (guard_tolerance <= max(|claimed|, |measured|, |interval|, 1)) is far above what
    gradcore records: the committed files use at most about half of it."""
    worst = 0.0
    for name in ("results.json", "baseline.json", "techniques.json", "techniques-baseline.json"):
        text = (ROOT / "reports" / name).read_text(encoding="utf-8")
        for k in _constants(json.loads(text)):
            worst = max(worst, k["guard_tolerance"] / schema._scale(k))
    assert 0.3 < worst < 0.75


def _constants(node):
    if isinstance(node, dict):
        if "guard_tolerance" in node:
            yield node
        for v in node.values():
            yield from _constants(v)
    elif isinstance(node, list):
        for v in node:
            yield from _constants(v)


@pytest.mark.parametrize("claims", [None, ["a", "b"], "claims", [None]])
def test_malformed_claim_lists(doc, claims):
    with pytest.raises(ResultsError, match="claims|claim #0"):
        schema.validate(dict(doc, claims=claims), "r.json")


def test_read_rejects_infinity_in_the_file_itself(tmp_path, doc):
    path = tmp_path / "r.json"
    text = json.dumps(_set(doc, K0 + ("guard_tolerance",), math.inf))   # writes the token Infinity
    assert "Infinity" in text
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ResultsError, match="guard_tolerance: inf is not of type finite number"):
        results.read(path)


# --- generated malformed documents --------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                    max_leaves=8)
BAD_NUMBER = st.sampled_from([math.inf, -math.inf, math.nan, -1.0, "banana", None, [], {}, True])
FIELDS = ("guard_tolerance", "tolerance", "measured", "claimed", "relation", "holds", "interval", "n")


@settings(CI, max_examples=30)
@given(value=JSON)
def test_any_json_value_is_valid_or_one_results_error(value, tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "r.json"
    path.write_text(json.dumps(value), encoding="utf-8")
    try:
        results.read(path)
    except ResultsError as e:
        assert "\n" not in str(e)


@settings(CI, max_examples=30)
@given(data=st.data())
def test_generated_bad_constants_are_caught_with_claim_and_field(doc, data):
    ci = data.draw(st.integers(0, len(doc["claims"]) - 1), label="claim")
    k = data.draw(st.integers(0, len(doc["claims"][ci]["constants"]) - 1), label="constant")
    field = data.draw(st.sampled_from(FIELDS), label="field")
    value = data.draw(BAD_NUMBER | JSON, label="value")
    bad = _set(doc, ("claims", ci, "constants", k, field), value)
    problems = schema.errors(bad)
    constant = bad["claims"][ci]["constants"][k]
    valid = valid_value(field, value)
    assert (problems == []) == (valid and _within_scale(constant))
    cid = doc["claims"][ci]["id"]
    named = field if not valid else "guard_tolerance"   # a smaller value can leave the guard tolerance too wide
    assert valid and _within_scale(constant) or any(f"claim {cid}" in p and f"constants[{k}].{named}" in p
                                                    for p in problems)


def valid_value(field, value) -> bool:
    """Whether the schema should accept ``value`` as ``field`` of a constant, on its own."""
    return {
        "guard_tolerance": _finite_nonneg, "tolerance": _finite_nonneg, "holds": lambda x: x in (True, False, None),
        "measured": _measurement, "claimed": _measurement, "relation": lambda x: x in record.RELATIONS,
        "interval": lambda x: x is None or (isinstance(x, list) and len(x) == 2
                                            and all(_measurement(v) and v is not None for v in x)),
        "n": lambda x: x is None or (isinstance(x, int) and not isinstance(x, bool) and 1 <= x < 2 ** 53),
    }[field](value)


def _within_scale(k) -> bool:
    """guard_tolerance <= max(|claimed|, |measured|, |interval ends|, 1), written out independently."""
    ends = k["interval"] if isinstance(k.get("interval"), list) else []
    scale = max([abs(v) for v in [k["claimed"], k["measured"], *ends] if _finite(v)] + [1])
    return not _finite_nonneg(k["guard_tolerance"]) or k["guard_tolerance"] <= scale


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and abs(x) <= 1.7976931348623157e308 \
        and math.isfinite(x)


def _finite_nonneg(x) -> bool:
    return _finite(x) and x >= 0


def _measurement(x) -> bool:
    return x is None or _finite(x) or x in ("inf", "-inf", "nan")

"""The results schema (``results.schema.json``, JSON Schema draft 2020-12) and its validator.

Every results document is validated before any view, the guard or a merge uses it, so
a file cannot steer gradcore with a value it was never meant to hold (an infinite
tolerance, an unknown verdict, a constant that is not a number). Numbers must be
finite: JSON has no NaN, and the recorder spells non-finite measurements as strings.
A number must also fit a double (``json`` reads ``1e400`` as inf but ``10**400`` written out
as an integer, which no float arithmetic accepts) and an integer must be one a double holds
exactly (|n| < 2**53, RFC 8259 §6's interoperable range). A constant's ``guard_tolerance``
may not exceed its value's scale (:func:`_guard_scale`).
"""
from __future__ import annotations

import json
import math
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ResultsError
from .catalogue import ID_PATTERN
from .verdicts import CLAUSE_VERDICTS, RELATIONS, VERDICTS

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError


_EXACT_INTEGERS = 2 ** 53   # a JSON integer beyond this is not one number to every reader (RFC 8259 §6)


def _finite_number(_: Any, x: Any) -> bool:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    try:
        return math.isfinite(x)   # an int too large for a double raises: no command can compute with it
    except OverflowError:
        return False


def _integer(_: Any, x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and abs(x) < _EXACT_INTEGERS


def _scale(constant: dict[str, Any]) -> float:
    """The magnitude a constant's values live at: its largest finite claimed, measured or interval
    value, and at least 1 (below 1 a tolerance is absolute, where rtol and atol meet)."""
    values = [constant.get("claimed"), constant.get("measured"), *(constant.get("interval") or [])]
    return max([abs(float(v)) for v in values if _finite_number(None, v)] + [1.0])


def _guard_scale(validator: Any, enabled: Any, constant: Any, _: Any) -> Any:
    """``guardScale``: a guard_tolerance above the value's scale is absurd. A change of 100% — the value
    vanishing, doubling or flipping sign — would pass the guard, so it would guard nothing (the
    committed results use at most 0.53 of the scale)."""
    if not (enabled and validator.is_type(constant, "object")):
        return
    from jsonschema.exceptions import ValidationError

    tol = constant.get("guard_tolerance")
    if validator.is_type(tol, "number") and tol > _scale(constant):
        yield ValidationError(f"{tol!r} exceeds the value's scale {_scale(constant):.4g} (max of |claimed|, "
                              "|measured|, |interval| and 1): a guard this wide cannot see the value vanish or double",
                              validator="guardScale", path=["guard_tolerance"])


@cache
def _validator_class() -> Any:
    """JSON Schema 2020-12 with finite numbers, exact integers and ``guardScale`` (jsonschema is imported
    here, when a file is first validated: commands that only print help do not pay for it)."""
    from jsonschema import Draft202012Validator, validators

    return validators.extend(
        Draft202012Validator,
        validators={"guardScale": _guard_scale},
        type_checker=Draft202012Validator.TYPE_CHECKER.redefine_many({"number": _finite_number,
                                                                      "integer": _integer}),
    )


@cache
def schema() -> dict[str, Any]:
    """The shipped schema, with the verdict and relation vocabularies filled in from the recorder."""
    text = resources.files(__package__).joinpath("results.schema.json").read_text(encoding="utf-8")
    doc = json.loads(text)
    doc["$defs"]["verdict"]["enum"] = list(VERDICTS)
    doc["$defs"]["relation"]["enum"] = list(RELATIONS)
    doc["$defs"]["clause_verdict"]["enum"] = list(CLAUSE_VERDICTS)
    doc["$defs"]["claim_id"]["pattern"] = f"^{ID_PATTERN.pattern}(?![\\s\\S])"   # (?!...): `$` passes "ACT-01\n"
    _validator_class().check_schema(doc)
    return doc


@cache
def _validator() -> Any:
    return _validator_class()(schema())


def _where(doc: Any, path: list[Any]) -> str:
    """``claim ACT-01, constants[0].guard_tolerance`` for an error at that place in ``doc``."""
    parts, node, prefix = [], doc, ""
    for i, key in enumerate(path):
        if i == 1 and path[0] == "claims" and isinstance(node, list) and isinstance(key, int):
            claim = node[key] if key < len(node) else None
            cid = claim.get("id") if isinstance(claim, dict) else None
            named = isinstance(cid, str) and cid.isprintable() and 0 < len(cid) <= 40   # the message stays one line
            prefix = f"claim {cid}" if named else f"claim #{key}"
            parts = []
        else:
            parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            node = None
    field = "".join(parts).lstrip(".")
    if prefix:
        return f"{prefix}, field {field}" if field else prefix
    return f"field {field}" if field else "top level"


def _brief(sub: dict[str, Any]) -> str:
    """A subschema in a few words: its type, its allowed values or the definition it names."""
    if "$ref" in sub:
        return sub["$ref"].rsplit("/", 1)[-1]
    if "enum" in sub:
        return " or ".join(json.dumps(v) for v in sub["enum"])
    kind = sub.get("type", "value")
    kinds = kind if isinstance(kind, list) else [kind]
    names = {"number": "finite number", "integer": "integer (|n| < 2**53)"}
    return " or ".join(names.get(k, k) for k in kinds)


def _describe(error: ValidationError) -> str:
    """The problem in one line, without jsonschema's echo of a whole sub-document."""
    if error.validator in ("required", "additionalProperties", "minProperties", "guardScale"):
        return error.message
    value = error.instance
    shown = repr(value) if isinstance(value, float) else json.dumps(value, ensure_ascii=False, default=repr)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    rule = error.validator_value
    if error.validator == "anyOf":
        return f"{shown} is not one of: {' / '.join(_brief(s) for s in rule)}"
    if error.validator == "type":
        return f"{shown} is not of type {_brief(error.schema)}"
    if error.validator == "pattern" and "description" in error.schema:
        return f"{shown} is not {error.schema['description']}"
    if error.validator in ("enum", "const"):
        allowed = rule if error.validator == "enum" else [rule]
        return f"{shown} is not one of {', '.join(json.dumps(v) for v in allowed)}"
    return f"{shown} violates {error.validator} {json.dumps(rule, default=repr)[:60]}"


def _deepest(error: ValidationError) -> ValidationError:
    """For an ``anyOf`` whose branch the value took (an object, not null; a paper, not a seed note),
    that branch's own error: ``test.line: ... is not of type integer``, not ``test: ... is not one of``."""
    while error.validator == "anyOf" and error.context:
        branches: dict[Any, list[ValidationError]] = {}
        for e in error.context:
            branches.setdefault(e.schema_path[0], []).append(e)
        taken = [es for es in branches.values()
                 if not any(e.validator in ("type", "enum", "const") and not e.relative_path for e in es)]
        if not taken:
            break
        error = min(taken, key=len)[0]
    return error


def _curve_lengths(doc: dict[str, Any]) -> list[str]:
    """What JSON Schema cannot say: each curve has as many x as y values."""
    out = []
    for c in doc.get("claims", []):
        for i, s in enumerate(c.get("series", [])):
            if len(s["x"]) != len(s["y"]):
                out.append(f"claim {c['id']}, field series[{i}]: x has {len(s['x'])} values, y has {len(s['y'])}")
    return out


def _unique_ids(doc: dict[str, Any]) -> list[str]:
    """What JSON Schema cannot say either: a claim appears once (the guard keys claims by id, so a
    second entry would silently replace the first, regression and all)."""
    seen: set[str] = set()
    out = []
    for i, c in enumerate(doc.get("claims", [])):
        if c["id"] in seen:
            out.append(f"claim #{i}, field id: {c['id']} appears more than once")
        seen.add(c["id"])
    return out


def errors(doc: Any) -> list[str]:
    """Every schema violation in ``doc``, one line each, naming the claim and field."""
    found = sorted(map(_deepest, _validator().iter_errors(doc)), key=lambda e: [str(p) for p in e.absolute_path])
    if not found:
        return _curve_lengths(doc) + _unique_ids(doc)
    return [f"{_where(doc, list(e.absolute_path))}: {_describe(e)}" for e in found]


def validate(doc: Any, path: str | Path) -> dict[str, Any]:
    """Return ``doc`` if it is a valid results document, else raise :class:`ResultsError`."""
    problems = errors(doc)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ResultsError(f"results file {path}: {problems[0]}{more}")
    return doc

"""Helpers the technique-kind tests share (tests/test_contract_*.py): one clause's row of a check, a
constant of it, clauses run alone on a subject built by the kind's contract, a bad technique refused in
one line, and a README example run."""
from __future__ import annotations

from typing import Any

import pytest

from gradcore.errors import CheckError
from gradcore.testing import check_technique
from gradcore.verify.check import settings_for
from gradcore.verify.contracts import contract
from gradcore.verify.contracts.base import ClauseResult, Settings, run_clause

from .readme_examples import run_example


def clause_of(result: Any, cid: str) -> ClauseResult:
    """The row of clause ``cid`` in a TechniqueCheck (``check_technique``'s result)."""
    return next(r for r in result.results if r.clause == cid)


def value(result: Any, cid: str, name: str) -> float:
    """Constant ``name`` of clause ``cid`` as a float."""
    return float(clause_of(result, cid).constants[name])


def run_clauses(kind: str, obj: Any, *ids: str, name: str = "technique",
                settings: Settings | None = None) -> dict[str, ClauseResult]:
    """Clauses ``ids`` of ``kind`` run alone on ``obj`` (its subject built once by the kind's contract)."""
    settings = settings or settings_for()
    module = contract(kind)
    subject = module.subject(obj, name, f"{module.binding} = ...", settings)
    return {c.id: run_clause(c, subject, settings) for c in module.clauses if c.id in ids}


def refuses_in_one_line(obj: Any, kind: str, message: str) -> None:
    """``check_technique(obj, kind=kind)`` raises a CheckError matching ``message``, on one line."""
    with pytest.raises(CheckError, match=message) as e:
        check_technique(obj, kind=kind)
    assert "\n" not in str(e.value)


def run_readme_example(filename: str, tmp_path: Any, monkeypatch: Any, capsys: Any) -> list[tuple[str, ...]]:
    """The README example in ``filename`` run as written: its output's table is the one the README
    shows, and it exits 1 where a clause is violated, else 0; the rows back."""
    status, shown, got = run_example(filename, tmp_path, monkeypatch, capsys)
    assert len(shown) > 1 and got == shown
    assert status == (1 if any(row[-1] == "violated" for row in got[1:]) else 0)
    return got

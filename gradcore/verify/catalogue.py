"""The claim catalogue: one TOML file per topic in ``gradcore/claims/``.

It ships with the package so that ``gradcore show`` and ``gradcore check`` work on an
installed copy; the theorem tests in ``theorems/`` measure the claims it lists.

Each ``[[claim]]`` entry holds a stable id, its seed sources (file, section, quote in
the original language), an English statement of what is checked, the method, the
expected verdict, tolerances and assumptions. Theorem tests refer to claims by id.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .record import VERDICTS

METHODS = ("symbolic", "property", "statistical")
ID_PATTERN = re.compile(r"^[A-Z]+-\d{2}$")


from ..errors import CatalogueError  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class Source:
    file: str
    section: str
    quote: str


@dataclass(frozen=True)
class Claim:
    id: str
    topic: str
    title: str
    statement: str
    method: str
    expected_verdict: str
    sources: tuple[Source, ...]
    assumptions: tuple[str, ...] = ()
    rtol: float = 0.0
    atol: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        first = self.sources[0]
        return {
            "id": self.id, "topic": self.topic, "title": self.title,
            "source": first.file, "section": first.section, "quote": first.quote,
            "sources": [vars(s) for s in self.sources],
            "statement": self.statement, "method": self.method,
            "assumptions": list(self.assumptions),
            "tolerance": {"rtol": self.rtol, "atol": self.atol},
            "expected_verdict": self.expected_verdict,
        }


_REQUIRED = ("id", "title", "statement", "method", "expected_verdict", "sources")


def _parse(entry: dict[str, Any], topic: str, where: str) -> Claim:
    missing = [k for k in _REQUIRED if k not in entry]
    if missing:
        raise CatalogueError(f"{where}: claim {entry.get('id', '?')} lacks {', '.join(missing)}")
    cid = entry["id"]
    if not ID_PATTERN.match(cid):
        raise CatalogueError(f"{where}: claim id {cid!r} is not like 'ACT-01'")
    if entry["method"] not in METHODS:
        raise CatalogueError(f"{where}: {cid} method {entry['method']!r} not in {METHODS}")
    if entry["expected_verdict"] not in VERDICTS:
        raise CatalogueError(f"{where}: {cid} expected_verdict {entry['expected_verdict']!r} not in {VERDICTS}")
    sources = []
    for s in entry["sources"]:
        if not {"file", "section", "quote"} <= s.keys():
            raise CatalogueError(f"{where}: {cid} source needs file, section and quote")
        sources.append(Source(s["file"], s["section"], s["quote"]))
    if not sources:
        raise CatalogueError(f"{where}: {cid} has no source")
    tol = entry.get("tolerance", {})
    known = set(_REQUIRED) | {"assumptions", "tolerance"}
    return Claim(cid, topic, entry["title"], entry["statement"], entry["method"],
                 entry["expected_verdict"], tuple(sources), tuple(entry.get("assumptions", ())),
                 float(tol.get("rtol", 0.0)), float(tol.get("atol", 0.0)),
                 {k: val for k, val in entry.items() if k not in known})


DEFAULT_DIR = Path(__file__).resolve().parent.parent / "claims"


def load(directory: str | Path = DEFAULT_DIR) -> dict[str, Claim]:
    """All claims of the catalogue directory, keyed by id, in file then entry order."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CatalogueError(f"catalogue directory {directory} does not exist")
    claims: dict[str, Claim] = {}
    for path in sorted(directory.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise CatalogueError(f"{path}: {e}") from None
        for entry in data.get("claim", []):
            claim = _parse(entry, path.stem, str(path))
            if claim.id in claims:
                raise CatalogueError(f"{path}: duplicate claim id {claim.id}")
            claims[claim.id] = claim
    return claims

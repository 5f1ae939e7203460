"""The claim catalogue: one TOML file per topic in ``gradcore/claims/``.

It ships with the package so that ``gradcore show`` and ``gradcore check`` work on an
installed copy; the theorem tests in ``theorems/`` measure the claims it lists.

Each ``[[claim]]`` entry holds a stable id, its sources, an English statement of what
is checked, the method, the expected verdict, tolerances and assumptions. Theorem tests
refer to claims by id; the quotes live here once (docstrings cite the id).

A source is either a *seed note* (``file``, ``section``, ``quote`` in the original
language) or a *publication* (``authors``, ``year``, ``title``, ``doi``, ``arxiv`` or ``url``,
``locator`` — section, equation or figure — and ``quote``, the paper's own words).
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CatalogueError
from .verdicts import VERDICTS

METHODS = ("symbolic", "property", "statistical")
ID_PATTERN = re.compile(r"^[A-Z]+-\d{2}$")


@dataclass(frozen=True)
class Source:
    """A seed note's passage: the file, its section and a short quote."""

    file: str
    section: str
    quote: str
    kind = "seed"

    @property
    def document(self) -> str:
        """What the claim comes from, for grouping: the seed file."""
        return self.file

    def cite(self) -> str:
        return f"`{self.file}`, {self.section}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "document": self.document, "cite": self.cite(), "file": self.file,
                "section": self.section, "quote": self.quote}


@dataclass(frozen=True)
class Publication:
    """A paper's statement: bibliographic data, where in the paper, and its own words."""

    authors: str
    year: int
    title: str
    locator: str
    quote: str
    doi: str | None = None
    arxiv: str | None = None
    url: str | None = None   # for proceedings with neither (e.g. PMLR)
    kind = "paper"

    @property
    def document(self) -> str:
        """'Surname YEAR', 'A & B YEAR' for two authors, 'A et al. YEAR' for more."""
        names = [n.strip() for part in self.authors.split(",") for n in part.split(" and ") if n.strip()]
        surnames = [n.split()[-1] for n in names]
        who = " & ".join(surnames) if len(surnames) <= 2 else f"{surnames[0]} et al."
        return f"{who} {self.year}"

    def cite(self) -> str:
        link = f"doi:{self.doi}" if self.doi else f"arXiv:{self.arxiv}" if self.arxiv else self.url
        return f"{self.document}, *{self.title}*, {self.locator} ({link})"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "document": self.document, "cite": self.cite(), "authors": self.authors,
                "year": self.year, "title": self.title, "locator": self.locator, "quote": self.quote,
                "doi": self.doi, "arxiv": self.arxiv, "url": self.url}


def _source(s: dict[str, Any], cid: str, where: str) -> Source | Publication:
    kind = s.get("kind", "paper" if "authors" in s else "seed")
    if kind == "seed":
        if not {"file", "section", "quote"} <= s.keys():
            raise CatalogueError(f"{where}: {cid} seed source needs file, section and quote")
        return Source(s["file"], s["section"], s["quote"])
    if kind != "paper":
        raise CatalogueError(f"{where}: {cid} source kind {kind!r} is neither 'seed' nor 'paper'")
    missing = [k for k in ("authors", "year", "title", "locator", "quote") if not s.get(k)]
    linked = s.get("doi") or s.get("arxiv") or s.get("url")
    if missing or not linked:
        missing += [] if linked else ["doi, arxiv or url"]
        raise CatalogueError(f"{where}: {cid} paper source lacks {', '.join(missing)}")
    if not isinstance(s["year"], int):
        raise CatalogueError(f"{where}: {cid} paper year must be an integer, got {s['year']!r}")
    return Publication(s["authors"], s["year"], s["title"], s["locator"], s["quote"], s.get("doi"), s.get("arxiv"),
                       s.get("url"))


@dataclass(frozen=True)
class Claim:
    id: str
    topic: str
    title: str
    statement: str
    method: str
    expected_verdict: str
    sources: tuple[Source | Publication, ...]
    assumptions: tuple[str, ...] = ()
    rtol: float = 0.0
    atol: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    applies_to: str | None = None   # "none": no technique kind can check it (``reason`` says why)
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        first = self.sources[0]
        return {
            "id": self.id, "topic": self.topic, "title": self.title,
            "source": first.document, "quote": first.quote,
            "sources": [s.to_json() for s in self.sources],
            "statement": self.statement, "method": self.method,
            "assumptions": list(self.assumptions),
            "tolerance": {"rtol": self.rtol, "atol": self.atol},
            "expected_verdict": self.expected_verdict,
            **({"applies_to": self.applies_to, "reason": self.reason} if self.applies_to else {}),
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
    sources = [_source(s, cid, where) for s in entry["sources"]]
    if not sources:
        raise CatalogueError(f"{where}: {cid} has no source")
    tol = entry.get("tolerance", {})
    known = set(_REQUIRED) | {"assumptions", "tolerance", "applies_to", "reason"}
    return Claim(cid, topic, entry["title"], entry["statement"], entry["method"],
                 entry["expected_verdict"], tuple(sources), tuple(entry.get("assumptions", ())),
                 float(tol.get("rtol", 0.0)), float(tol.get("atol", 0.0)),
                 {k: val for k, val in entry.items() if k not in known}, *_applies_to(entry, cid, where))


APPLIES_TO = ("none",)


def _applies_to(entry: dict[str, Any], cid: str, where: str) -> tuple[str | None, str | None]:
    """``applies_to = "none"`` with a ``reason``: a claim no technique kind can check (a definition,
    a formula of one named function); see tests/test_coverage.py."""
    applies, reason = entry.get("applies_to"), entry.get("reason")
    if applies is None:
        if reason is not None:
            raise CatalogueError(f"{where}: {cid} has a reason but no applies_to")
        return None, None
    if applies not in APPLIES_TO:
        raise CatalogueError(f"{where}: {cid} applies_to {applies!r} not in {APPLIES_TO}")
    if not isinstance(reason, str) or not reason.strip():
        raise CatalogueError(f"{where}: {cid} applies_to = \"none\" needs a reason (a non-empty string)")
    return applies, reason


DEFAULT_DIR = Path(__file__).resolve().parent.parent / "claims"


class Catalogue(dict[str, Claim]):
    """Claims keyed by id, in directory, file and entry order, remembering where they came from."""

    def __init__(self, claims: dict[str, Claim], directories: tuple[Path, ...]) -> None:
        super().__init__(claims)
        self.directories = directories

    def read_from(self) -> str:
        return ", ".join(str(d) for d in self.directories)

    def claim(self, cid: str) -> Claim:
        """The claim ``cid``; a CatalogueError naming the directories read when there is none."""
        if cid not in self:
            raise CatalogueError(f"unknown claim id {cid!r} (catalogues read: {self.read_from()})")
        return self[cid]


def _load_directory(directory: Path, claims: dict[str, Claim]) -> None:
    if not directory.is_dir():
        raise CatalogueError(f"catalogue directory {directory} does not exist")
    for path in sorted(directory.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise CatalogueError(f"{path}: {e}") from None
        for entry in data.get("claim", []):
            claim = _parse(entry, path.stem, str(path))
            if claim.id in claims:
                raise CatalogueError(f"{path}: duplicate claim id {claim.id}")
            claims[claim.id] = claim


def load(directory: str | Path | None = None, *, extra: tuple[str | Path, ...] = (),
         builtin: bool | None = None) -> Catalogue:
    """Claims of one or more catalogue directories.

    ``load()`` is gradcore's built-in catalogue; ``load(extra=(dir,))`` adds a downstream
    project's catalogue to it (the default for ``--catalogue`` and the ``gradcore_catalogue``
    ini key); ``builtin=False`` reads only the given directories. ``load(dir)`` reads just
    ``dir`` (as before). A claim id may be defined once across all of them.
    """
    dirs = [Path(directory)] if directory is not None else []
    if builtin or (builtin is None and directory is None):
        dirs.insert(0, DEFAULT_DIR)
    dirs += [Path(d) for d in extra]
    dirs = list(dict.fromkeys(d.resolve() for d in dirs))
    claims: dict[str, Claim] = {}
    for d in dirs:
        _load_directory(d, claims)
    return Catalogue(claims, tuple(dirs))

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

import datetime
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from ..errors import CatalogueError
from . import atomic
from .verdicts import VERDICTS

METHODS = ("symbolic", "property", "statistical")
ID_PATTERN = re.compile(r"[A-Z]+-[0-9]{2}")   # use fullmatch: ``$`` would let "ACT-01\n" through


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


class _Entry:
    """One TOML table of a catalogue file, read field by field: each accessor type-checks its
    field and raises a CatalogueError naming the file, the claim id and the field."""

    def __init__(self, table: Any, where: str, cid: str, prefix: str = "") -> None:
        self.where, self.cid, self.prefix = where, cid, prefix
        if not isinstance(table, dict):
            self.fail("", f"must be a table, got {_kind(table)}")
        self.table: dict[str, Any] = table

    def fail(self, key: str, problem: str) -> NoReturn:
        field = f"{self.prefix}{key}".rstrip(".") or "entry"
        raise CatalogueError(f"{self.where}: claim {self.cid}, field {field}: {problem}")

    def only(self, known: tuple[str, ...]) -> None:
        """Refuse keys the loader does not read: a misspelt ``tolerance`` must not silently make a claim exact."""
        unknown = [k for k in self.table if k not in known]
        if unknown:
            self.fail(unknown[0], f"unknown key (known: {', '.join(known)})")

    def text(self, key: str, *, required: bool = True) -> str | None:
        """A non-empty string without control characters (they would break the one-line views)."""
        if key not in self.table:
            if required:
                self.fail(key, "is missing")
            return None
        value = self.table[key]
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"must be a non-empty string, got {_kind(value)}")
        if _CONTROL.search(value):
            self.fail(key, "contains a control character")
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.text(key)
        if value not in allowed:
            self.fail(key, f"{value!r} is not one of {', '.join(allowed)}")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        """An optional array of strings (a bare string would otherwise read as its characters)."""
        value = self.table.get(key, [])
        if not isinstance(value, list):
            self.fail(key, f"must be an array of strings, got {_kind(value)}")
        items = _Entry({f"[{i}]": v for i, v in enumerate(value)}, self.where, self.cid, f"{self.prefix}{key}")
        return tuple(items.text(f"[{i}]") for i in range(len(value)))

    def year(self, key: str) -> int:
        value = self.table.get(key)
        if value is None:
            self.fail(key, "is missing")
        if isinstance(value, bool) or not isinstance(value, int) or not _FIRST_YEAR <= value <= _last_year():
            self.fail(key, f"must be a year from {_FIRST_YEAR} to {_last_year()}, got {_kind(value)}")
        return value

    def tolerance(self, key: str, upper: float) -> float:
        """A finite number in [0, upper) (TOML also spells nan and inf)."""
        value = self.table.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(key, f"must be a number, got {_kind(value)}")
        if not (math.isfinite(value) and 0 <= value < upper):
            self.fail(key, f"must be finite, >= 0 and < {upper}, got {value!r}")
        return float(value)

    def sub(self, key: str, index: int | None = None) -> _Entry:
        value = self.table.get(key, {}) if index is None else self.table[key][index]
        return _Entry(value, self.where, self.cid, f"{self.prefix}{key}" + ("" if index is None else f"[{index}]") + ".")


def _kind(value: Any) -> str:
    """A value and its TOML type, shortly: ``true (boolean)``."""
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}
    return f"{shown} ({names.get(type(value), type(value).__name__)})"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FIRST_YEAR = 1800   # before any work on gradients in networks; catches a year typed as 19 or 201


def _last_year() -> int:
    return datetime.date.today().year + 1   # a preprint may carry next year's date


_SEED_KEYS = ("kind", "file", "section", "quote")
_PAPER_KEYS = ("kind", "authors", "year", "title", "locator", "quote", "doi", "arxiv", "url")


def _source(s: _Entry) -> Source | Publication:
    kind = s.choice("kind", ("seed", "paper")) if "kind" in s.table else "paper" if "authors" in s.table else "seed"
    if kind == "seed":
        s.only(_SEED_KEYS)
        return Source(s.text("file"), s.text("section"), s.text("quote"))
    s.only(_PAPER_KEYS)
    links = [s.text(k, required=False) for k in ("doi", "arxiv", "url")]
    if not any(links):
        s.fail("doi", "a paper source needs a doi, arxiv or url")
    return Publication(s.text("authors"), s.year("year"), s.text("title"), s.text("locator"), s.text("quote"),
                       *links)


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
    extra: dict[str, Any] = field(default_factory=dict, compare=False)   # no longer filled: unknown keys are errors
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


_KEYS = ("id", "title", "statement", "method", "expected_verdict", "sources", "assumptions", "tolerance",
         "applies_to", "reason")
_RTOL_MAX = 1.0   # a relative tolerance of 100% accepts any value of the claimed sign: no claim at all


def _parse(table: Any, topic: str, where: str, index: int) -> Claim:
    """One ``[[claim]]`` table, every field type-checked (CatalogueError: file, claim id, field)."""
    raw_id = table.get("id") if isinstance(table, dict) else None
    named = isinstance(raw_id, str) and ID_PATTERN.fullmatch(raw_id)
    e = _Entry(table, where, raw_id if named else f"#{index + 1}")
    if not isinstance(raw_id, str):
        e.text("id")   # raises: missing, or not a string
    if not named:
        e.fail("id", f"{raw_id!r} is not like 'ACT-01' (capital letters, a hyphen, two digits)")
    cid = raw_id
    e.only(_KEYS)
    title, statement = e.text("title"), e.text("statement")
    method, expected = e.choice("method", METHODS), e.choice("expected_verdict", VERDICTS)
    sources = e.table.get("sources")
    if not isinstance(sources, list) or not sources:
        e.fail("sources", f"must be a non-empty array of tables, got {_kind(sources)}")
    tol = e.sub("tolerance")
    tol.only(("rtol", "atol"))
    applies_to, reason = _applies_to(e.table, cid, where)
    return Claim(cid, topic, title, statement, method, expected,
                 tuple(_source(e.sub("sources", i)) for i in range(len(sources))),
                 e.texts("assumptions"), tol.tolerance("rtol", _RTOL_MAX), tol.tolerance("atol", math.inf),
                 applies_to=applies_to, reason=reason)


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


_MAX_BYTES = 16 * 2 ** 20   # a shipped catalogue file holds under 20 KiB; /dev/zero behind a link never ends


def _read_toml(path: Path) -> dict[str, Any]:
    """One catalogue file's TOML; any reason it cannot be read is one CatalogueError naming it."""
    try:
        return tomllib.loads(atomic.read_text(path, _MAX_BYTES))
    except atomic.Unreadable as e:   # a FIFO would block, a device never end
        raise CatalogueError(f"{path}: cannot be read: {e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise CatalogueError(f"{path}: {e}") from None
    except OSError as e:   # a directory named x.toml, no read permission, a dangling link, ...
        raise CatalogueError(f"{path}: cannot be read: {e.strerror or e}") from None


def _load_file(path: Path, claims: dict[str, Claim]) -> None:
    data = _read_toml(path)
    unknown = [k for k in data if k != "claim"]
    if unknown:
        raise CatalogueError(f"{path}: unknown top-level key {unknown[0]!r} (a catalogue holds [[claim]] tables)")
    entries = data.get("claim", [])
    if not isinstance(entries, list):
        raise CatalogueError(f"{path}: 'claim' must be an array of tables ([[claim]]), got {_kind(entries)}")
    for i, entry in enumerate(entries):
        claim = _parse(entry, path.stem, str(path), i)
        if claim.id in claims:
            raise CatalogueError(f"{path}: duplicate claim id {claim.id}")
        claims[claim.id] = claim


def _load_directory(directory: Path, claims: dict[str, Claim]) -> None:
    try:
        if not directory.exists():
            raise CatalogueError(f"catalogue directory {directory} does not exist")
        if not directory.is_dir():
            raise CatalogueError(f"catalogue directory {directory} is not a directory (pass the folder holding "
                                 "the .toml files)")
        paths = sorted(directory.glob("*.toml"))
    except OSError as e:   # a name too long, a directory without read permission
        raise CatalogueError(f"catalogue directory {directory}: {e.strerror or e}") from None
    for path in paths:
        _load_file(path, claims)


def _resolved(directory: str | Path) -> Path:
    try:
        return Path(directory).resolve()
    except (OSError, RuntimeError) as e:   # RuntimeError: a symlink loop (Python < 3.13)
        raise CatalogueError(f"catalogue directory {directory}: {e}") from None


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
    dirs = list(dict.fromkeys(_resolved(d) for d in dirs))
    claims: dict[str, Claim] = {}
    for d in dirs:
        _load_directory(d, claims)
    return Catalogue(claims, tuple(dirs))

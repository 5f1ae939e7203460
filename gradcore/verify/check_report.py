"""Views of ``gradcore check``: terminal table, markdown and JSON for one technique,
and the built-in comparison tables (``reports/techniques.md``). Nothing here measures:
:mod:`gradcore.verify.check` measures and hands its results over.

The JSON follows the results schema (``results.schema.json``, the ``check`` document):
an ``environment`` block plus one entry per clause with its verdict, its measured
constants as the same constant objects a results file holds (kind, interval as numbers,
sizes, reproduction) and its counterexample; files are written atomically.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import results
from .verdicts import CLAUSE_MARK as MARK
from .verdicts import CLAUSE, NOT_APPLICABLE, UNMEASURED
from .views import measured, num, table

if TYPE_CHECKING:
    from .check import TechniqueCheck
    from .contracts.base import ClauseResult

SCHEMA = results.CHECK_SCHEMA


def _constants(r: ClauseResult, limit: int | None = None) -> str:
    """The clause's measured constants, or its note when it measured none (e.g. the technique raised)."""
    items = list(r.constants.items())[:limit]
    return "; ".join(f"{k} = {num(v)}" for k, v in items) or (r.note or "")


def _cell(text: str) -> str:
    """Escape the pipes of |f'| and ‖·‖ formulas inside a markdown table cell."""
    return text.replace("|", "\\|")


def _verdict(r: ClauseResult) -> str:
    return MARK[r.verdict] + ("" if r.gate else " (info)")


def _outcome(check: TechniqueCheck) -> str:
    if check.ok:
        return "all gating clauses hold"
    parts = [f"{len(check.violations)} violated"] if check.violations else []
    parts += [f"{len(check.unmeasured)} could not be measured"] if check.unmeasured else []
    parts += [f"{len(check.undecided)} could not be decided"] if check.undecided else []
    return ", ".join(parts)


def counts(results: list[ClauseResult]) -> dict[str, int]:
    """Clauses that ran, held, were violated and could not be measured (info clauses included)."""
    verdicts = [r.verdict for r in results]
    return {"ran": len(verdicts), "held": verdicts.count(CLAUSE[True]), "violated": verdicts.count(CLAUSE[False]),
            "unmeasured": verdicts.count(UNMEASURED), "inconclusive": verdicts.count(CLAUSE[None]),
            "not_applicable": verdicts.count(NOT_APPLICABLE)}


def summary_line(results: list[ClauseResult]) -> str:
    """``N clauses ran, M held, K violated, U could not be measured`` (the last line of every check;
    an interval that could not decide is counted too, when there is one)."""
    n = counts(results)
    undecided = f", {n['inconclusive']} inconclusive" if n["inconclusive"] else ""
    undecided += f", {n['not_applicable']} did not apply" if n["not_applicable"] else ""
    return (f"{n['ran']} clauses ran, {n['held']} held, {n['violated']} violated, "
            f"{n['unmeasured']} could not be measured{undecided}")


def summary_table(check: TechniqueCheck) -> str:
    """Plain-text table: clause, verdict, key constants; why the kind; the counts."""
    rows = [(r.clause, _verdict(r), _constants(r, 3)) for r in check.results]
    w0 = max(len("clause"), *(len(a) for a, _, _ in rows))
    w1 = max(len("verdict"), *(len(b) for _, b, _ in rows))
    lines = [f"{check.name} ({check.kind}) on {check.settings.device}, profile {check.settings.profile}: "
             + _outcome(check),
             f"{'clause':<{w0}}  {'verdict':<{w1}}  measured", f"{'-' * w0}  {'-' * w1}  {'-' * 8}"]
    lines += [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
    lines += [f"kind {check.kind}: {check.kind_reason}", summary_line(check.results)]
    return "\n".join(lines)


def clause_text(r: ClauseResult) -> str:
    """One clause's result for a failing test: statement, verdict, constants, counterexample, snippet."""
    lines = [f"`{r.clause}` ({', '.join(r.claims)}): {r.statement}", f"verdict: {MARK[r.verdict]}",
             f"measured: {_constants(r) or '—'}"]
    if r.note:
        lines.append(f"note: {r.note}")
    if r.counterexample:
        lines.append(f"counterexample: {_short({k: v for k, v in r.counterexample.items() if k != 'snippet'})}")
        if "snippet" in r.counterexample:
            lines += ["reproduce with:", str(r.counterexample["snippet"])]
    return "\n".join(lines)


def _claim_refs(ids: tuple[str, ...], claims: dict[str, Any]) -> str:
    refs = []
    for cid in ids:
        c = claims.get(cid)
        refs.append(f"{cid} ({c.title})" if c is not None else cid)
    return ", ".join(refs)


def _catalogue() -> dict[str, Any]:
    from . import catalogue

    try:
        return catalogue.load()
    except catalogue.CatalogueError:
        return {}


def markdown(check: TechniqueCheck, claims: dict[str, Any] | None = None) -> str:
    """The markdown report of one technique, with the built-in comparison table."""
    claims = _catalogue() if claims is None else claims
    out = [f"# gradcore check: `{check.spec}` ({check.kind})", "",
           f"**{'PASS' if check.ok else 'FAIL' if check.violations else 'NOT MEASURED'}** — "
           + ("every gating clause holds." if check.ok else f"{_outcome(check)}."),
           f"Device {check.settings.device}, profile {check.settings.profile}, seed {check.settings.seed}, "
           f"{check.wall_time_s:.1f} s. Kind {check.kind}: {check.kind_reason}.",
           f"{summary_line(check.results)}.", "",
           "| clause | claims | statement | verdict | measured |", "|---|---|---|---|---|"]
    for r in check.results:
        out.append(f"| `{r.clause}` | {_claim_refs(r.claims, claims)} | {_cell(r.statement)} | {_verdict(r)} "
                   f"| {_cell(_constants(r))} |")
    bad = [r for r in check.results if r.counterexample]
    if bad:
        out += ["", "## Counterexamples", ""]
        for r in bad:
            cex = {k: v for k, v in r.counterexample.items() if k != "snippet"}
            out += [f"### `{r.clause}`", "", f"`{_short(cex)}`", ""]
            if r.note:
                out += [r.note, ""]
            if "snippet" in r.counterexample:
                out += ["```python", r.counterexample["snippet"], "```", ""]
    if check.builtins:
        out += ["", f"## Side by side with gradcore's built-in {check.kind} techniques", "",
                comparison_table({check.name + " (yours)": check.results, **check.builtins})]
    out += ["", "## Claims behind the clauses", ""]
    for cid in sorted({c for r in check.results for c in r.claims}):
        c = claims.get(cid)
        if c is None:
            out.append(f"- {cid}: not in the catalogue")
            continue
        src = "; ".join(f"{s.cite()}: “{s.quote}”" for s in c.sources)
        out.append(f"- **{cid}** {c.title} — {src}")
    return "\n".join(out) + "\n"


def _short(x: Any, limit: int = 300) -> str:
    text = repr(x)
    return text if len(text) <= limit else text[:limit] + " …"


def _key(r: ClauseResult) -> str:
    """The clause's first measured value (a Measurement before a plain setting such as a depth)."""
    numbers = [(k, v) for k, v in r.constants.items() if not isinstance(v, (bool, str)) and hasattr(v, "__float__")]
    measured = [(k, v) for k, v in numbers if hasattr(v, "kind")] or numbers
    if measured:
        k, v = measured[0]
        return f"{k} = {num(v)}"
    return _constants(r, 1)


def comparison_table(rows: dict[str, list[ClauseResult]]) -> str:
    """Markdown table: technique × clause → verdict and its key measured constant."""
    clauses = [r.clause for r in next(iter(rows.values()))]
    head = "| technique | " + " | ".join(f"`{c}`" for c in clauses) + " |"
    lines = [head, "|---" * (len(clauses) + 1) + "|"]
    for name, res in rows.items():
        cells = [f"{MARK[r.verdict].split()[0]} {_cell(_key(r))}" for r in res]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_json(check: TechniqueCheck) -> dict[str, Any]:
    env = results.environment(seed=check.settings.seed, profile=check.settings.profile,
                              wall_time_s=check.wall_time_s, workers=1, devices=[check.settings.device])
    return {"schema": SCHEMA, "environment": env,
            "technique": {"name": check.name, "spec": check.spec, "kind": check.kind,
                          "kind_reason": check.kind_reason},
            "ok": check.ok, "counts": counts(check.results), "violations": [r.clause for r in check.violations],
            "unmeasured": [r.clause for r in check.unmeasured],
            "undecided": [r.clause for r in check.undecided],
            "clauses": [r.to_json() for r in check.results],
            "builtins": {n: [r.to_json() for r in res] for n, res in check.builtins.items()}}


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "technique"


def write(check: TechniqueCheck, out_dir: str | Path, claims: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``<name>.md`` and ``<name>.json`` into ``out_dir`` (atomically)."""
    out_dir = Path(out_dir)
    stem = _slug(check.name)
    md = results.write_text(markdown(check, claims), out_dir / f"{stem}.md")
    js = results.write(to_json(check), out_dir / f"{stem}.json")
    return md, js


def write_builtin_tables(measured: dict[str, dict[str, list[ClauseResult]]],
                         statements: dict[str, list[str]], env: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``techniques.md`` and ``techniques.json`` for the built-ins ``check`` measured.

    ``measured`` maps kind → technique → its clause results; ``statements`` kind → one
    markdown line per clause.
    """
    md = ["# gradcore's techniques against the documents' claims", "",
          "Each kind's contract (gradcore/verify/contracts) measured on every built-in technique "
          f"of that kind (device {env['devices'] and next(iter(env['devices']))}, profile {env['profile']}). "
          "Cells: verdict and the clause's key measured constant; ❌ marks a measured violation, not a bug.", ""]
    doc: dict[str, Any] = {"schema": SCHEMA, "environment": env, "kinds": {}}
    for kind, rows in measured.items():
        md += [f"## {kind}", "", *statements[kind], "", comparison_table(rows), ""]
        doc["kinds"][kind] = {n: [r.to_json() for r in res] for n, res in rows.items()}
    out_dir = Path(out_dir)
    results.write(doc, out_dir / "techniques.json")
    return results.write_text("\n".join(md), out_dir / "techniques.md")


def _groups(doc: dict[str, Any]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """kind → technique → clause entries of a technique results document (one check or the built-ins)."""
    groups = {kind: dict(t) for kind, t in doc.get("kinds", {}).items()}
    if "technique" in doc:
        t = doc["technique"]
        groups.setdefault(t["kind"], {})[t["name"]] = doc.get("clauses", [])
        groups[t["kind"]].update(doc.get("builtins", {}))
    return groups


def render_document(doc: dict[str, Any]) -> str:
    """Markdown for a technique results file as read back from JSON (``gradcore report``)."""
    out = ["# gradcore technique results", ""]
    for kind, techniques in _groups(doc).items():
        rows = [[name, f"`{c['id']}`", MARK[c["verdict"]], "; ".join(f"{k['name']} = {measured(k)}" for k in c["constants"][:3])
                 or c.get("note", "")] for name, clauses in techniques.items() for c in clauses]
        out += [f"## {kind}", "", table(["technique", "clause", "verdict", "measured"], rows), ""]
    return "\n".join(out)


def summary_of_document(doc: dict[str, Any]) -> str:
    """One line per technique: its clauses' verdicts."""
    return "\n".join(f"{kind:<12} {name:<32} " + ", ".join(f"{c['id']}={c['verdict']}" for c in clauses)
                     for kind, techniques in _groups(doc).items() for name, clauses in techniques.items())

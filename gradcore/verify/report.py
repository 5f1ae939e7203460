"""The markdown verification report: a view of one results file.

Top: what holds, what does not and by how much. Then every claim in a table, then
one section per claim with its seed quote, method, assumptions, constants,
counterexample (as a runnable snippet where the theorem gave one), corrected
statement, figures and a link to the theorem's source.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .views import (VERDICT_MARK, VERDICT_ORDER, claimed_vs_measured, counts, key_check, measured, num, sizes,
                    table)


def _anchor(claim: dict[str, Any]) -> str:
    return f"#{claim['id'].lower()}"


def _summary(doc: dict[str, Any]) -> list[str]:
    claims = doc["claims"]
    n = counts(claims)
    env = doc["environment"]
    docs = {_document(s) for c in claims for s in c.get("sources", [])}
    devices = ", ".join(f"{k} ({v})" for k, v in env.get("devices", {}).items())
    text = (f"gradcore measured **{len(claims)} claims** from {len(docs)} sources on {devices}: "
            f"**{n['verified']} verified**, **{n['conditional']} conditional** (true only under assumptions "
            f"the documents do not all state), **{n['refuted']} refuted** (false as written) and "
            f"**{n['inconclusive']} inconclusive**. Every verdict is derived from measurements that could have "
            f"gone the other way; refuted and conditional claims come with a counterexample and a corrected "
            f"statement built from the measured values.")
    rows = [[VERDICT_MARK[v], str(n[v])] for v in VERDICT_ORDER]
    return [text, "", table(["verdict", "claims"], rows)]


def _failures(claims: list[dict[str, Any]]) -> list[str]:
    bad = [c for v in ("refuted", "conditional") for c in claims if c["verdict"] == v]
    if not bad:
        return ["Every measured claim held."]
    rows = [[f"[{c['id']}]({_anchor(c)})", VERDICT_MARK[c["verdict"]], c["title"],
             claimed_vs_measured(key_check(c)), c.get("corrected") or "—"] for c in bad]
    return [table(["claim", "verdict", "what the documents say", "claimed vs measured", "corrected"], rows)]


def _document(source: dict[str, Any]) -> str:
    """The seed file or paper a source quotes (results files older than paper sources name a file)."""
    return source.get("document") or source["file"]


def _cite(source: dict[str, Any]) -> str:
    return source.get("cite") or f"`{source['file']}`, {source['section']}"


def _by_source(claims: list[dict[str, Any]]) -> list[str]:
    """Verdict counts per source document (a claim counts once for each document it quotes)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for c in claims:
        for doc in dict.fromkeys(_document(s) for s in c.get("sources", [])):
            groups.setdefault(doc, []).append(c)
    rows = []
    for doc, cs in groups.items():
        n = counts(cs)
        kind = next(s.get("kind", "seed") for s in cs[0]["sources"] if _document(s) == doc)
        rows.append([doc, "seed note" if kind == "seed" else "paper", str(len(cs))] + [str(n[v]) for v in VERDICT_ORDER])
    return [table(["source", "kind", "claims", *VERDICT_ORDER], rows)]


def _papers(claims: list[dict[str, Any]], figure_links: dict[tuple[str, str], str]) -> list[str]:
    """Claims taken from publications: the paper's own value beside the measured one, then their
    figures (the depth and width trends each claim measured)."""
    rows, figures = [], []
    for c in claims:
        papers = [s for s in c.get("sources", []) if s.get("kind") == "paper"]
        if not papers:
            continue
        key = key_check(c)
        rows.append([f"[{c['id']}]({_anchor(c)})", _cite(papers[0]), c["title"],
                     num(key.get("claimed")) if key else "—", measured(key) if key else "—",
                     VERDICT_MARK[c["verdict"]]])
        figures += [f"![{cid} {name}]({rel})" for (cid, name), rel in figure_links.items() if cid == c["id"]]
    if not rows:
        return []
    out = ["## Literature reproduced", "",
           "Each row is a claim quoted from a paper, measured here; *paper* is the value the paper states "
           "(the claimed constant of the deciding check), *measured* what gradcore measured under the "
           "assumptions listed in the claim's section.", "",
           table(["claim", "paper", "what it says", "paper", "measured", "verdict"], rows), ""]
    if figures:
        out += ["### Depth and width trends measured for the papers' claims", ""]
        out += [line for f in figures for line in (f, "")]
    return out


def _by_topic(claims: list[dict[str, Any]]) -> list[str]:
    topics: dict[str, list[dict[str, Any]]] = {}
    for c in claims:
        topics.setdefault(c["topic"], []).append(c)
    rows = []
    for topic, cs in topics.items():
        n = counts(cs)
        rows.append([topic, str(len(cs))] + [str(n[v]) for v in VERDICT_ORDER])
    return [table(["topic", "claims", *VERDICT_ORDER], rows)]


def _device_cell(claim: dict[str, Any], device: str) -> str:
    d = claim["devices"].get(device)
    return d["verdict"] if d else "—"


def _reaches(claim: dict[str, Any]) -> str:
    """The technique kinds ``gradcore check`` measures the claim on (written by the plugin), or why none."""
    if claim.get("applies_to") == "none":
        return "none (a definition or formula)"
    if "reaches" not in claim:
        return "?"   # a results file written before the plugin recorded it
    return ", ".join(claim["reaches"]) or "—"


def _all_claims(doc: dict[str, Any]) -> list[str]:
    devices = list(doc["environment"].get("devices", {}))
    rows = []
    for c in doc["claims"]:
        flag = "" if c.get("device_agreement", True) else " ⚠ devices disagree"
        rows.append([f"[{c['id']}]({_anchor(c)})", c["title"], VERDICT_MARK[c["verdict"]] + flag,
                     claimed_vs_measured(key_check(c))] + [_device_cell(c, d) for d in devices] + [_reaches(c)])
    return [table(["id", "claim", "verdict", "claimed vs measured (key constant)", *devices, "checked on kinds"],
                  rows)]


def _constants(checks: list[dict[str, Any]]) -> str:
    rows = []
    for k in checks:
        ci = k.get("interval")
        interval = f"[{num(ci[0])}, {num(ci[1])}]" + (f", n = {k['n']}" if k.get("n") else "") if ci else "—"
        rows.append([k["name"], f"{k['relation']} {num(k['claimed'])}", measured(k),
                     f"± {num(k['tolerance'])}", interval,
                     {True: "holds", False: "**fails**", None: "undecided"}[k["holds"]],
                     k.get("outside") or "within the assumptions", k.get("kind", "numeric"), sizes(k),
                     k.get("dtype") or "—"])
    return table(["constant", "claimed", "measured", "tolerance", "95% interval", "result", "case", "kind",
                  "sizes", "dtype"], rows)


def _reproductions(checks: list[dict[str, Any]]) -> list[str]:
    """Each constant's generated reproduction, folded: run as printed, it prints the value."""
    runnable = [k for k in checks if k.get("reproduction")]
    if not runnable:
        return []
    out = ["<details><summary>Reproduce every constant</summary>", ""]
    for k in runnable:
        out += [f"*{k['name']}* — prints {num(k['measured'])}:", "", "```python", k["reproduction"], "```", ""]
    return out + ["</details>", ""]


def _counterexample(cx: Any) -> list[str]:
    if cx is None:
        return []
    out = ["**Counterexample**", ""]
    if isinstance(cx, dict) and "snippet" in cx:
        rest = {k: v for k, v in cx.items() if k != "snippet"}
        if rest:
            out += ["```json", json.dumps(rest, ensure_ascii=False, indent=1)[:2000], "```", ""]
        out += ["Reproduce it:", "", "```python", cx["snippet"].strip(), "```"]
    else:
        out += ["```json", json.dumps(cx, ensure_ascii=False, indent=1)[:2000], "```"]
    return out + [""]


def _section(c: dict[str, Any], figure_links: dict[tuple[str, str], str], source_prefix: str) -> list[str]:
    out = [f"### {c['id']}", "", f"**{c['title']}** — {VERDICT_MARK[c['verdict']]} "
           f"(expected {c['expected_verdict']})", ""]
    for s in c.get("sources", []):
        out += [f"> {s['quote']}", ">", f"> — {_cite(s)}", ""]
    test = c.get("test") or {}
    link = f"[{test.get('file')}:{test.get('line')}]({source_prefix}{test.get('file')}#L{test.get('line')})"
    out += [f"**Checked:** {c['statement']}", "",
            f"**Method:** {c['method']} · **theorem:** {link}", ""]
    if c.get("assumptions"):
        out += ["**Assumptions:** " + "; ".join(c["assumptions"]), ""]
    out += [_constants(c["constants"]), ""]
    out += _reproductions(c["constants"])
    out += _counterexample(c.get("counterexample"))
    if c.get("corrected"):
        out += [f"**Corrected statement:** {c['corrected']}", ""]
    for note in c.get("notes", []):
        out += [f"*Note:* {note}", ""]
    for (cid, name), rel in figure_links.items():
        if cid == c["id"]:
            out += [f"![{cid} {name}]({rel})", ""]
    if len(c["devices"]) > 1:
        rows = [[d, r["verdict"], claimed_vs_measured(key_check(r))] for d, r in c["devices"].items()]
        out += ["Per device:", "", table(["device", "verdict", "key constant"], rows), ""]
    if c.get("device_differences"):
        rows = [[d["device"], d["what"], d["baseline"], d["now"], d["allowed"]] for d in c["device_differences"]]
        out += ["**Devices disagree** (against the CPU measurement):", "",
                table(["device", "what", "cpu", "device", "allowed"], rows), ""]
    return out


def _environment(env: dict[str, Any]) -> str:
    keys = ("python", "torch", "numpy", "sympy", "hypothesis", "platform", "seed", "profile",
            "workers", "timestamp", "wall_time_s")
    rows = [[k, str(env.get(k))] for k in keys] + [[f"device {k}", v] for k, v in env.get("devices", {}).items()]
    return table(["", "value"], rows)


def render(doc: dict[str, Any], figure_links: dict[tuple[str, str], str] | None = None,
           source_prefix: str = "../", figure_notes: dict[tuple[str, str], str] | None = None) -> str:
    """Markdown for a results document; ``figure_links`` maps (claim, figure) to a relative path,
    ``figure_notes`` to what the figure leaves out (or why it was not drawn)."""
    figure_links, figure_notes = figure_links or {}, figure_notes or {}
    claims = doc["claims"]
    parts = ["# gradcore verification report", "", *_summary(doc), "",
             "## What does not hold as written", "", *_failures(claims), "",
             "## By topic", "", *_by_topic(claims), "",
             "## By source", "", *_by_source(claims), "",
             *_papers(claims, figure_links),
             "## Every claim", "", *_all_claims(doc), "",
             "## Claims in detail", ""]
    for c in claims:
        parts += _section(c, figure_links, source_prefix)
        parts += [f"*Figure {name}:* {note}\n" for (cid, name), note in figure_notes.items() if cid == c["id"]]
    if doc.get("not_run"):
        parts += ["## Not run in this results file", "", ", ".join(doc["not_run"]), ""]
    parts += ["## Environment", "", _environment(doc["environment"]), ""]
    return "\n".join(parts)


def write_markdown(doc: dict[str, Any], out: Path) -> tuple[Path, int]:
    """Draw figures under ``<out dir>/figures/<out stem>/`` and write the markdown report."""
    from . import figures as figs   # matplotlib takes seconds to import: only a markdown report pays
    from .results import write_text

    fig_dir = out.parent / "figures" / out.stem
    drawn, notes = figs.draw_all(doc, fig_dir)
    links = {k: os.path.relpath(p, out.parent).replace(os.sep, "/") for k, p in drawn.items()}
    # Theorem paths are relative to the project root, which holds reports/.
    write_text(render(doc, links, "../", notes), out)
    return out, len(drawn)


def terminal_summary(doc: dict[str, Any]) -> str:
    """A compact plain-text summary for the terminal."""
    claims = doc["claims"]
    n = counts(claims)
    lines = [" · ".join(f"{v} {n[v]}" for v in VERDICT_ORDER) + f"  ({len(claims)} claims)"]
    for c in claims:
        if c["verdict"] != "verified":
            lines.append(f"  {c['id']:<9} {c['verdict']:<12} {claimed_vs_measured(key_check(c))}")
    return "\n".join(lines)

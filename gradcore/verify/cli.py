"""The ``gradcore`` command line.

Subcommands: ``verify`` (run the theorems, write results and report), ``report``
(render a results file), ``list`` and ``show`` (browse claims), ``guard`` (compare
with the baseline) and ``check`` (test a new technique against the claims).

Exit status: 0 success; 1 a verification failed (a theorem contradicted the
catalogue, the guard found a change, a technique violated a claim); 2 usage error
(bad arguments, missing or corrupt files). Errors are one line on stderr.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..errors import UsageError
from . import catalogue, guard, profiles, report, results
from .plugin import DEVICE_CHOICES
from .views import VERDICT_MARK, claimed_vs_measured

DEFAULT_RESULTS = Path("reports/results.json")
DEFAULT_BASELINE = Path("reports/baseline.json")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``gradcore: error: ...``) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _add(sub: Any, name: str, help_: str, example: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help_, description=f"{help_}\n\nexample:\n  {example}",
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _verify_parser(sub: Any) -> None:
    p = _add(sub, "verify", "run every theorem, write reports/results.json and reports/verification.md",
             "gradcore verify --device all -n 2 --only attention,CLIP-02")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="devices to measure on (default: auto)")
    p.add_argument("--profile", choices=profiles.PROFILES, default="ci", help="Hypothesis profile (default: ci)")
    p.add_argument("-n", "--workers", default="0", help="pytest-xdist workers: a number or 'auto' (default: 0, serial)")
    p.add_argument("--only", default=None, help="comma-separated claim ids or topics")
    p.add_argument("--theorems", type=Path, default=Path("theorems"), help="theorem directory (default: theorems)")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results file to write")
    p.add_argument("--report", type=Path, default=None, help="markdown report (default: verification.md beside results)")
    p.add_argument("--no-techniques", action="store_true",
                   help="skip the built-in technique tables (techniques.md beside the results)")


def _report_parser(sub: Any) -> None:
    p = _add(sub, "report", "render a results file as markdown (with figures), JSON or a terminal summary",
             "gradcore report reports/results.json --format md --out reports/verification.md")
    p.add_argument("results", nargs="?", type=Path, default=DEFAULT_RESULTS)
    p.add_argument("--format", choices=("md", "json", "summary"), default="md")
    p.add_argument("--out", type=Path, default=None, help="output file (md default: verification.md beside results)")


def _browse_parsers(sub: Any) -> None:
    p = _add(sub, "list", "list claims: id, topic, verdict last seen, title", "gradcore list --topic attention")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    p.add_argument("--topic", default=None)
    p = _add(sub, "show", "print one claim's full entry", "gradcore show CLIP-02")
    p.add_argument("id")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    p.add_argument("--json", action="store_true", help="print the raw JSON entry")


def _guard_parser(sub: Any) -> None:
    p = _add(sub, "guard", "compare a results file with the accepted baseline; exit 1 on any change",
             "gradcore guard reports/results.json --baseline reports/baseline.json")
    p.add_argument("results", nargs="?", type=Path, default=DEFAULT_RESULTS)
    p.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE)
    p.add_argument("--accept", action="store_true", help="make RESULTS the new baseline (deliberately)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gradcore", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    _verify_parser(sub)
    _report_parser(sub)
    _browse_parsers(sub)
    _guard_parser(sub)
    from . import check

    check.add_parser(sub)
    from . import audit
    audit.add_parser(sub)
    return parser


def _read(path: Path) -> dict[str, Any]:
    try:
        return results.read(path)
    except results.ResultsError as e:
        raise UsageError(str(e)) from None


def _markdown_path(results_path: Path, out: Path | None) -> Path:
    if out is not None:
        return out
    suffix = results_path.stem.removeprefix("results")
    return results_path.parent / f"verification{suffix}.md"


def cmd_verify(args: argparse.Namespace) -> int:
    if not args.theorems.is_dir():
        raise UsageError(f"theorem directory {args.theorems} not found (run from a gradcore checkout or pass --theorems)")
    command = [sys.executable, "-m", "pytest", str(args.theorems), f"--device={args.device}",
               f"--hypothesis-profile={args.profile}", f"--gradcore-results={args.results.resolve()}"]
    if args.workers not in ("0", 0):
        command += ["-n", str(args.workers)]
    if args.only:
        command += [f"--only={args.only}"]
    status = subprocess.call(command)
    if status not in (0, 1):
        return 2 if status in (4,) else 1
    doc = _read(args.results)
    out, n = report.write_markdown(doc, _markdown_path(args.results, args.report))
    print(report.terminal_summary(doc))
    print(f"wrote {args.results} and {out} ({n} figures)")
    if not (args.only or args.no_techniques):
        from .check_report import write_builtin_tables

        device = "cuda" if args.device in ("cuda", "all") and "cuda" in doc["environment"]["devices"] else "cpu"
        print(f"wrote {write_builtin_tables(args.results.parent, device=device, profile=args.profile)}")
    return 0 if status == 0 else 1


def cmd_report(args: argparse.Namespace) -> int:
    doc = _read(args.results)
    if args.format == "summary":
        print(report.terminal_summary(doc))
        return 0
    if args.format == "json":
        text = json.dumps(doc, indent=1, ensure_ascii=False)
        if args.out:
            results.write_text(text + "\n", args.out)
            print(f"wrote {args.out}")
        else:
            print(text)
        return 0
    out, n = report.write_markdown(doc, _markdown_path(args.results, args.out))
    print(f"wrote {out} ({n} figures)")
    return 0


def _claims_view(results_path: Path) -> tuple[dict[str, catalogue.Claim], dict[str, dict[str, Any]]]:
    seen = {c["id"]: c for c in _read(results_path)["claims"]} if results_path.is_file() else {}
    return catalogue.load(), seen


def cmd_list(args: argparse.Namespace) -> int:
    known, seen = _claims_view(args.results)
    topics = sorted({c.topic for c in known.values()})
    if args.topic and args.topic not in topics:
        raise UsageError(f"unknown topic {args.topic!r}; topics: {', '.join(topics)}")
    for cid, c in known.items():
        if args.topic in (None, c.topic):
            verdict = seen[cid]["verdict"] if cid in seen else "not run"
            print(f"{cid:<9} {c.topic:<15} {verdict:<13} {c.title}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    known, seen = _claims_view(args.results)
    if args.id not in known:
        raise UsageError(f"unknown claim id {args.id!r} (see `gradcore list`)")
    entry = seen.get(args.id) or known[args.id].to_json()
    if args.json:
        print(json.dumps(entry, indent=1, ensure_ascii=False))
        return 0
    print(f"{entry['id']}  {entry['title']}")
    print(f"verdict: {VERDICT_MARK.get(entry.get('verdict'), 'not run')}  (expected {entry['expected_verdict']})")
    for s in entry["sources"]:
        print(f"source: {s['file']} — {s['section']}\n  「{s['quote']}」")
    print(f"checked: {entry['statement']}\nmethod: {entry['method']}")
    for a in entry.get("assumptions", []):
        print(f"assumes: {a}")
    for k in entry.get("constants", []):
        state = {True: "holds", False: "FAILS", None: "undecided"}[k["holds"]]
        print(f"  {state:<9} {claimed_vs_measured(k)}" + (f"  [outside: {k['outside']}]" if k.get("outside") else ""))
    if entry.get("counterexample") is not None:
        print("counterexample: " + json.dumps(entry["counterexample"], ensure_ascii=False))
    if entry.get("corrected"):
        print(f"corrected: {entry['corrected']}")
    if entry.get("test"):
        print(f"theorem: {entry['test']['file']}:{entry['test']['line']}")
    return 0


def cmd_guard(args: argparse.Namespace) -> int:
    current = _read(args.results)
    if args.accept:
        if args.results.resolve() != args.baseline.resolve():
            shutil.copyfile(args.results, args.baseline)
        print(f"accepted {args.results} as the baseline {args.baseline} ({len(current['claims'])} claims)")
        return 0
    changes = guard.compare(_read(args.baseline), current)
    if not changes:
        print(f"guard: {len(current['claims'])} claims match the baseline {args.baseline}")
        return 0
    print(f"guard: {len(changes)} change(s) against the baseline {args.baseline}:\n")
    print(guard.render(changes))
    print("\nIf the change is intended, accept it with: gradcore guard --accept")
    return 1


COMMANDS = {"verify": cmd_verify, "report": cmd_report, "list": cmd_list, "show": cmd_show, "guard": cmd_guard}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            from . import check

            return check.command(args)
        if args.command == "audit":
            from . import audit
            return audit.command(args)
        return COMMANDS[args.command](args)
    except (UsageError, catalogue.CatalogueError) as e:
        print(f"gradcore: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gradcore: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The ``gradcore`` command line.

Subcommands: ``verify`` (run the theorems, write results and report), ``report``
(render a results file), ``list`` and ``show`` (browse claims), ``guard`` (compare
with the baseline) and ``check`` (test a new technique against the claims).

Exit status (each means one thing): 0 success, every claim holds; 1 a verification
failed (a theorem contradicted the catalogue, the guard found a change, a technique
violated a claim); 2 bad usage or input (bad arguments, missing, unreadable or invalid
files, a technique that could not be measured); 3 gradcore itself failed (one line on
stderr naming the log file that holds the traceback). Errors are one line on stderr.
"""
from __future__ import annotations

import argparse
import errno
import functools
import json
import os
import signal
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from collections.abc import Callable
from typing import Any

from .errors import ExitStatus, GradcoreError, UsageError
from .measure import profiles
from .audit import command as audit
from .verify import atomic, catalogue, children, guard, report, results
from .verify.timelimit import DEFAULT_TIME_LIMIT_S
from .verify.options import catalogue_option, load_catalogue
from .verify.devices import DEVICE_CHOICES, cuda_available
from .verify.views import VERDICT_MARK, claimed_vs_measured

# Exit statuses (README "Exit codes and errors").
OK, FAILED, BAD_INPUT, CRASHED = ExitStatus

DEFAULT_RESULTS = Path("reports/results.json")
DEFAULT_BASELINE = Path("reports/baseline.json")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``gradcore: error: ...``) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _workers(text: str) -> str:
    """``-n``: ``auto`` or a whole number ≥ 0."""
    if text == "auto" or (text.isdigit() and int(text) >= 0):
        return text
    raise argparse.ArgumentTypeError(f"expected a number >= 0 or 'auto', got {text!r}")


def _selection(text: str) -> str:
    """``--only``: at least one claim id or topic (an empty one would silently select every claim)."""
    if not any(w.strip() for w in text.split(",")):
        raise argparse.ArgumentTypeError(f"expected comma-separated claim ids or topics, got {text!r}")
    return text


def _path(text: str) -> Path:
    """A file argument; an empty string is refused (``Path("")`` would be the current directory)."""
    if not text:
        raise argparse.ArgumentTypeError("expected a file path, got an empty string")
    return Path(text)


def _add(sub: Any, name: str, help_: str, example: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_, description=f"{help_}\n\nexample:\n  {example}",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    catalogue_option(p)
    return p


def _verify_parser(sub: Any) -> None:
    p = _add(sub, "verify", "run every theorem, write reports/results.json and reports/verification.md",
             "gradcore verify --device all -n 2 --only attention,CLIP-02")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="devices to measure on (default: auto)")
    p.add_argument("--profile", choices=profiles.PROFILES, default="ci", help="Hypothesis profile (default: ci)")
    p.add_argument("-n", "--workers", default="0", type=_workers, help="pytest-xdist workers: a number or 'auto' (default: 0, serial)")
    p.add_argument("--only", default=None, type=_selection, help="comma-separated claim ids or topics")
    p.add_argument("--theorems", type=Path, default=Path("theorems"), help="theorem directory (default: theorems)")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results file to write")
    p.add_argument("--report", type=Path, default=None, help="markdown report (default: verification.md beside results)")
    p.add_argument("--no-techniques", action="store_true",
                   help="skip the built-in technique tables (techniques.md beside the results)")
    p.set_defaults(func=cmd_verify)


def _report_parser(sub: Any) -> None:
    p = _add(sub, "report", "render a results file as markdown (with figures), JSON or a terminal summary",
             "gradcore report reports/results.json --format md --out reports/verification.md")
    p.add_argument("results", nargs="?", type=_path, default=DEFAULT_RESULTS)
    p.add_argument("--format", choices=("md", "json", "summary"), default="md")
    p.add_argument("--out", type=_path, default=None, help="output file (md default: verification.md beside results)")
    p.set_defaults(func=cmd_report)


def _browse_parsers(sub: Any) -> None:
    p = _add(sub, "list", "list claims: id, topic, verdict last seen, title", "gradcore list --topic attention")
    p.add_argument("--results", type=_path, default=None,
                   help=f"results file for the verdicts (default: {DEFAULT_RESULTS}, when it exists)")
    p.add_argument("--topic", default=None)
    p.add_argument("--source", default=None, help="only claims citing this source (seed file or paper, substring)")
    p.set_defaults(func=cmd_list)
    p = _add(sub, "show", "print one claim's full entry", "gradcore show CLIP-02")
    p.add_argument("id")
    p.add_argument("--results", type=_path, default=None,
                   help=f"results file for the verdict (default: {DEFAULT_RESULTS}, when it exists)")
    p.add_argument("--json", action="store_true", help="print the raw JSON entry")
    p.set_defaults(func=cmd_show)


def _guard_parser(sub: Any) -> None:
    p = _add(sub, "guard", "compare a results file with the accepted baseline; exit 1 on any change",
             "gradcore guard reports/results.json --baseline reports/baseline.json")
    p.add_argument("results", nargs="?", type=_path, default=DEFAULT_RESULTS)
    p.add_argument("--baseline", type=_path, default=DEFAULT_BASELINE)
    p.add_argument("--accept", action="store_true", help="make RESULTS the new baseline (deliberately)")
    p.set_defaults(func=cmd_guard)


def _check_parser(sub: Any) -> None:
    p = sub.add_parser(
        "check", help="check a new technique against every claim of its kind",
        description="Measure a technique (an activation, initialiser, norm, residual block, recurrent cell, "
                    "attention, clipping rule, ...: `gradcore check --kind x` lists every kind) against every "
                    "catalogued claim that applies to its kind, side by side with gradcore's built-ins."
                    "\n\nexample:\n  gradcore check mypkg.acts:swish --out reports/checks",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    catalogue_option(p)
    p.add_argument("target", metavar="MODULE:OBJECT", help="the technique to import, e.g. mypkg.layers:MyNorm")
    p.add_argument("--kind", default=None, help="technique kind (default: inferred)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device to measure on (default: cpu)")
    p.add_argument("--profile", choices=profiles.PROFILES, default="ci", help="Hypothesis profile and sizes (default: ci)")
    p.add_argument("--out", type=Path, default=Path("gradcore-check"), help="report directory (default: ./gradcore-check)")
    p.add_argument("--no-compare", action="store_true", help="skip the built-in comparison table")
    p.add_argument("--seed", type=int, default=0, help="base seed (default: 0)")
    p.add_argument("--time-limit", type=_seconds, default=DEFAULT_TIME_LIMIT_S, metavar="SECONDS",
                   help=f"wall-clock limit per clause; a clause past it could not be measured "
                        f"(default: {DEFAULT_TIME_LIMIT_S:g})")
    p.set_defaults(func=cmd_check)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1e6:
        raise argparse.ArgumentTypeError(f"expected a number of seconds in (0, 1e6), got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gradcore", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    _verify_parser(sub)
    _report_parser(sub)
    _browse_parsers(sub)
    _guard_parser(sub)
    _check_parser(sub)
    audit.add_parser(sub).set_defaults(func=cmd_audit)
    return parser


def _read(path: Path) -> dict[str, Any]:
    return results.read(path)


def _distinct(output: Path, *inputs: Path, what: str = "output",
              catalogue_read: catalogue.Catalogue | None = None) -> Path:
    """Refuse to write ``output`` over one of the files the command reads (its results file or
    a catalogue file), or onto anything but a regular file (a directory, device, FIFO, symlink)."""
    try:
        atomic.check_target(output)
    except UsageError as e:
        raise UsageError(f"{what}: {e}") from None
    for source in inputs:
        if atomic.same_file(output, source):
            raise UsageError(f"{what} {output} is the input file {source}; refusing to overwrite it")
    for source in _catalogue_files(catalogue_read):
        if atomic.same_file(output, source):
            raise UsageError(f"{what} {output} is the catalogue file {source}; refusing to overwrite it")
    return output


def _catalogue_files(read: catalogue.Catalogue | None) -> list[Path]:
    return [p for d in (read.directories if read is not None else ()) for p in sorted(d.glob("*.toml"))]


def _writable_target(path: Path, what: str) -> None:
    """Fail before a long run, not after it, when ``path`` cannot be written."""
    if path.is_dir():
        raise UsageError(f"{what} {path} is a directory")
    parent = next((p for p in [path.parent, *path.parent.parents] if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path} cannot be written (directory {parent} is not writable)")


def _markdown_path(results_path: Path, out: Path | None) -> Path:
    if out is not None:
        return out
    suffix = results_path.stem.removeprefix("results")
    return results_path.parent / f"verification{suffix}.md"


def _stamp(path: Path) -> tuple[int, int] | None:
    """What tells a rewritten results file from the one that was there before."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_ino


def _verify_command(args: argparse.Namespace) -> list[str]:
    # The options below are the plugin's: load it here, not only where the project's own pytest
    # configuration does (pytest loads a plugin named twice once).
    command = [sys.executable, "-m", "pytest", "-p", "gradcore.verify.plugin", str(args.theorems),
               f"--device={args.device}", f"--hypothesis-profile={args.profile}",
               f"--gradcore-results={args.results.resolve()}"]
    if args.workers != "0":
        command += ["-n", args.workers]
    if args.only:
        command += [f"--only={args.only}"]
    command += [f"--gradcore-catalogue={d.resolve()}" for d in args.catalogue]
    if args.catalogue_only:
        command += ["-o", "gradcore_catalogue_only=true"]
    return command


def _check_verify_args(args: argparse.Namespace) -> Path:
    claims = load_catalogue(args)   # a bad --catalogue is one line here, not a pytest usage error later
    if not args.theorems.is_dir():
        raise UsageError(f"theorem directory {args.theorems} not found (run from a gradcore checkout or pass --theorems)")
    if args.device == "cuda" and not cuda_available():
        raise UsageError("--device cuda requested but torch.cuda.is_available() is False (use --device cpu or auto)")
    _distinct(args.results, what="--results", catalogue_read=claims)
    md = _distinct(_markdown_path(args.results, args.report), args.results, what="--report", catalogue_read=claims)
    _writable_target(args.results, "--results")
    _writable_target(md, "--report")
    return md


def cmd_verify(args: argparse.Namespace) -> int:
    md = _check_verify_args(args)
    before = _stamp(args.results)
    status, signum = children.run(_verify_command(args))
    if signum is not None:   # passed on to pytest, which has ended: nothing will write after us
        print(f"gradcore: interrupted by {signal.Signals(signum).name}; pytest was stopped", file=sys.stderr)
        return 128 + signum
    if status not in (0, 1):   # pytest: 2 interrupted, 3 internal error, 4 usage error, 5 no tests
        raise UsageError(f"pytest exited with status {status}; no results written (see its output above)")
    if _stamp(args.results) == before:   # never re-render a stale file as if it were this run's
        if status == 1:
            print(f"gradcore: every selected theorem failed, so {args.results} was not rewritten", file=sys.stderr)
            return FAILED
        raise UsageError(f"no claim was measured, so {args.results} was not rewritten "
                         "(every selected theorem was skipped or deselected; see the pytest output above)")
    doc = _read(args.results)
    out, n = report.write_markdown(doc, md)
    print(report.terminal_summary(doc))
    print(f"wrote {args.results} and {out} ({n} figures)")
    if not (args.only or args.no_techniques):
        from .verify.check import write_builtin_tables

        device = "cuda" if args.device in ("cuda", "all") and "cuda" in doc["environment"]["devices"] else "cpu"
        print(f"wrote {write_builtin_tables(args.results.parent, device=device, profile=args.profile)}")
    return OK if status == 0 else FAILED


def cmd_report(args: argparse.Namespace) -> int:
    doc = _read(args.results)
    claims = load_catalogue(args)
    if doc.get("schema") == results.CHECK_SCHEMA:
        return _report_techniques(doc, args, claims)
    if doc.get("schema") == results.SCHEMA_VERSION:   # what the catalogues hold and this file lacks
        measured = {c["id"] for c in doc["claims"]}
        doc["not_run"] = [cid for cid in claims if cid not in measured]
    if args.format != "md":
        return _emit(report.terminal_summary(doc) if args.format == "summary" else doc, args, claims)
    md = _distinct(_markdown_path(args.results, args.out), args.results, what="--out", catalogue_read=claims)
    out, n = report.write_markdown(doc, md)
    print(f"wrote {out} ({n} figures)")
    return OK


def _emit(content: str | dict[str, Any], args: argparse.Namespace, claims: catalogue.Catalogue,
          default_out: Path | None = None) -> int:
    """Print a report (text, or a document as JSON) or write it, atomically, to ``--out``.

    JSON printed to a stdout that is not UTF-8 is ASCII-escaped (``\\uXXXX`` surrogate pairs are
    valid JSON; the backslash-replaced ``\\U0001F600`` the terminal would get is not)."""
    out = args.out or default_out
    if not isinstance(content, str):
        content = json.dumps(content, indent=1, ensure_ascii=out is None and not _utf8(sys.stdout))
    if out is None:
        print(content)
        return OK
    results.write_text(content + "\n", _distinct(out, args.results, what="--out", catalogue_read=claims))
    print(f"wrote {out}")
    return OK


def _report_techniques(doc: dict[str, Any], args: argparse.Namespace, claims: catalogue.Catalogue) -> int:
    """``gradcore report`` of a technique results file (``gradcore check`` JSON, techniques.json)."""
    from .verify import check_report

    if args.format == "json":
        return _emit(doc, args, claims)
    if args.format == "summary":
        return _emit(check_report.summary_of_document(doc), args, claims)
    return _emit(check_report.render_document(doc), args, claims, default_out=args.results.with_suffix(".md"))


def _viewed_results(args: argparse.Namespace) -> Path | None:
    if args.results is not None:
        return args.results
    return DEFAULT_RESULTS if DEFAULT_RESULTS.exists() else None


def _claims_view(args: argparse.Namespace) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Every claim known to the catalogues or measured in the results file (entries as JSON).

    A ``--results`` given must be a results file; the default is read when it exists (before the
    first ``gradcore verify`` the catalogue alone is listed)."""
    path = _viewed_results(args)
    doc = _read(path) if path else {"claims": []}
    if doc.get("schema") == results.CHECK_SCHEMA:   # its clauses are no catalogue claims: all would be "not run"
        raise UsageError(f"{path} holds technique checks ({results.CHECK_SCHEMA}), not claims; "
                         f"view it with: gradcore report {path} --format summary")
    seen = {c["id"]: c for c in doc["claims"]}
    known = {cid: c.to_json() for cid, c in load_catalogue(args).items()}
    known.update({cid: c for cid, c in seen.items() if cid not in known and "title" in c})
    return known, seen


def _cites(entry: dict[str, Any], source: str | None) -> bool:
    return source is None or any(source.lower() in (s.get("document") or s.get("file") or "").lower()
                                 or source.lower() in s.get("cite", "").lower() for s in entry.get("sources", []))


def cmd_list(args: argparse.Namespace) -> int:
    known, seen = _claims_view(args)
    topics = sorted({c["topic"] for c in known.values()})
    if args.source == "":   # it would match every claim, as if no --source were given
        raise UsageError("--source is empty; give part of a source's file name or citation")
    if args.topic is not None and args.topic not in topics:
        raise UsageError(f"unknown topic {args.topic!r}; topics: {', '.join(topics)}")
    shown = [(cid, c) for cid, c in known.items() if args.topic in (None, c["topic"]) and _cites(c, args.source)]
    if args.source and not shown:
        raise UsageError(f"no claim cites a source matching {args.source!r}")
    for cid, c in shown:
        verdict = seen[cid]["verdict"] if cid in seen else "not run"
        print(f"{cid:<9} {c['topic']:<15} {verdict:<13} {c['title']}")
    return OK


def cmd_show(args: argparse.Namespace) -> int:
    known, seen = _claims_view(args)
    if args.id not in known:
        raise UsageError(f"unknown claim id {args.id!r} (catalogues read: {load_catalogue(args).read_from()}; "
                         f"results read: {_viewed_results(args) or 'none'})")
    entry = seen.get(args.id) or known[args.id]
    if args.json:   # allow_nan=False: NaN is not JSON; the schema and the catalogue loader keep it out
        print(json.dumps(entry, indent=1, ensure_ascii=not _utf8(sys.stdout), allow_nan=False))
        return OK
    print(f"{entry['id']}  {entry['title']}")
    print(f"verdict: {VERDICT_MARK.get(entry.get('verdict'), 'not run')}  (expected {entry['expected_verdict']})")
    for s in entry.get("sources", []):
        print(f"source: {s.get('cite') or s['file'] + ' — ' + s['section']}\n  「{s['quote']}」")
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
    return OK


def cmd_guard(args: argparse.Namespace) -> int:
    load_catalogue(args)   # a --catalogue that does not load is an input error, not ignored
    current = results.as_claims(_read(args.results))
    if args.accept:
        if not atomic.same_file(args.results, args.baseline):
            atomic.copy(args.results, args.baseline)
        print(f"accepted {args.results} as the baseline {args.baseline} ({len(current['claims'])} claims)")
        return OK
    if atomic.same_file(args.results, args.baseline):   # compared with itself, any file would pass
        raise UsageError(f"{args.results} is the baseline file itself; pass a fresh results file to compare with it")
    changes = guard.compare(results.as_claims(_read(args.baseline)), current)
    if not changes:
        print(f"guard: {len(current['claims'])} claims match the baseline {args.baseline}")
        return OK
    print(f"guard: {len(changes)} change(s) against the baseline {args.baseline}:\n")
    print(guard.render(changes))
    print("\nIf the change is intended, accept it with: gradcore guard --accept")
    return FAILED


def _crash_log(error: BaseException) -> Path:
    """Write the traceback of an unexpected exception to a log file; return its path."""
    text = "".join(traceback.format_exception(error))
    try:   # gettempdir itself fails when no temporary directory is usable (TMPDIR a file, /tmp read-only)
        path = Path(tempfile.gettempdir()) / f"gradcore-crash-{os.getpid()}.log"
        path.write_text(f"gradcore {' '.join(sys.argv)}\n{text}", encoding="utf-8")
    except OSError:
        path = Path(os.devnull)
    return path


def cmd_check(args: argparse.Namespace) -> int:
    """0 every gating clause holds, 1 one is violated, 2 the technique cannot be checked or a clause
    could not be measured or decided (a CheckError reaches :func:`main`: one line)."""
    # Measuring loads torch (seconds): only the commands that measure import it.
    from .verify import check, check_report
    from .verify.loading import load_object


    args.out = Path(os.path.abspath(args.out))   # before the user's module can chdir
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} exists and is not a directory")
    known = load_catalogue(args)   # a bad --catalogue fails before any measuring
    result = check.check(load_object(args.target), kind=args.kind, name=args.target.split(":")[1],
                         spec=args.target, device=args.device, profile=args.profile, seed=args.seed,
                         compare=not args.no_compare, time_limit_s=args.time_limit)
    md, js = check_report.write(result, args.out, known)
    print(check_report.summary_table(result))
    print(f"\nreport: {md}\nresults: {js}")
    if result.violations:
        return FAILED
    return BAD_INPUT if result.unmeasured or result.undecided else OK


def cmd_audit(args: argparse.Namespace) -> int:
    return audit.command(args)


# What the file system answers about a path the user named (too long, a loop, no space, over the
# file-size limit, ...): bad input or a bad output target, exit 2. Any other OSError is a bug: exit 3.
_PATH_ERRNOS = {errno.ENAMETOOLONG, errno.ELOOP, errno.EACCES, errno.EPERM, errno.EFBIG, errno.ENOSPC,
                errno.EDQUOT, errno.EROFS, errno.EISDIR, errno.ENOTDIR, errno.ENOENT, errno.EEXIST, errno.EXDEV}


def _path_problem(error: BaseException) -> str | None:
    """One line for an error the file system raised about a path (None: not such an error)."""
    if isinstance(error, OSError) and error.errno in _PATH_ERRNOS:
        where = f" {error.filename}" if error.filename else ""
        return f"cannot access{where}: {error.strerror or error}"
    if isinstance(error, RuntimeError) and str(error).startswith("Symlink loop"):   # Path.resolve, Python < 3.13
        return str(error)
    return None


def _utf8(stream: Any) -> bool:
    return (getattr(stream, "encoding", None) or "").lower().replace("-", "").replace("_", "") == "utf8"


def _output_never_fails_on_encoding() -> None:
    """Claim titles and quotes are unicode; an ASCII or Latin-1 stdout (PYTHONIOENCODING=ascii, a
    legacy locale) prints what it cannot encode as a backslash escape instead of raising. The
    user's encoding is kept (re-encoding as UTF-8 would print mojibake on such a terminal)."""
    for stream in (sys.stdout, sys.stderr):
        if not _utf8(stream) and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def _stray_threads() -> list[threading.Thread]:
    """Live non-daemon threads other than the main one (started by user code: gradcore starts none)."""
    return [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]


def _not_held_by_user_threads(run: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    """The command line's own run (``argv`` None) ends the process once the command is done, so a
    non-daemon thread started by the code ``check`` or ``audit`` imported cannot keep it alive;
    a call with ``argv`` (a library or test) returns as usual."""
    @functools.wraps(run)
    def entry(argv: list[str] | None = None) -> int:
        status = run(argv)
        if argv is None and (held := _stray_threads()):
            print(f"gradcore: not waiting for {len(held)} thread(s) the imported code started", file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
        return status
    return entry


@_not_held_by_user_threads
def main(argv: list[str] | None = None) -> int:
    """Run one subcommand and map every outcome to one exit status (see the module docstring)."""
    _output_never_fails_on_encoding()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except GradcoreError as e:
        print(f"gradcore: error: {e}", file=sys.stderr)
        return BAD_INPUT
    except KeyboardInterrupt:
        print("gradcore: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # `gradcore list | head`: the reader left; not an error of gradcore's
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK
    except Exception as e:   # a bug in gradcore: one line and the log, never a bare traceback
        problem = _path_problem(e)
        if problem is not None:
            print(f"gradcore: error: {problem}", file=sys.stderr)
            return BAD_INPUT
        first = (str(e).splitlines() or [""])[0][:200]
        print(f"gradcore: internal error: {type(e).__name__}: {first} (traceback in {_crash_log(e)}; "
              "please report it)", file=sys.stderr)
        return CRASHED


if __name__ == "__main__":
    sys.exit(main())

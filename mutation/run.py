"""Negative controls: plant realistic bugs in gradcore and check that the suite catches each.

Each mutant in ``mutation/mutants.toml`` replaces one exact snippet of one file (it must
occur exactly once) in a temporary copy of the repository. The tests and theorems that
import the mutated module run on that copy, and the regression guard compares the claims
they measured with the committed baseline. A mutant is *killed* when a test fails or the
guard reports a change, and *survives* otherwise; every survivor needs a reason in the
TOML (``survives_because``) or a new check. Writes ``reports/mutation.md``.

With ``--suite theorems`` only the theorems and the guard judge (``reports/mutation-theorems.md``):
whether a planted bug moves a verdict or a guarded constant, not only a unit test. A bug no theorem
reaches survives there without being a gap, since the unit tests catch it.

usage: python mutation/run.py [--only NAME,...] [--jobs N] [--suite all|theorems]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gradcore.verify import guard  # noqa: E402
from gradcore.verify.imports import graph, imports  # noqa: E402
from gradcore.verify.results import write_text  # noqa: E402
from gradcore.verify.views import table  # noqa: E402

IGNORE = shutil.ignore_patterns(".git", "__pycache__", "figures", "audits", "*.png", "mutation")


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    find: str
    replace: str
    bug: str
    survives_because: str = ""


@dataclass
class Outcome:
    mutant: Mutant
    status: str          # killed | survived | does not apply | invalid
    by: str
    seconds: float


def load(path: Path = ROOT / "mutation" / "mutants.toml") -> list[Mutant]:
    return [Mutant(**m) for m in tomllib.loads(path.read_text(encoding="utf-8"))["mutant"]]


def _module(file: str) -> str:
    return file.removesuffix(".py").replace("/", ".").removesuffix(".__init__")


GRAPH = graph()


def _distance(start: set[str], module: str) -> int | None:
    """Import hops from a test's own imports to ``module`` (None when they never reach it)."""
    frontier, seen, hops = set(start), set(start), 0
    while frontier:
        if module in frontier:
            return hops
        frontier = {n for f in frontier for n in GRAPH.get(f, set())} - seen
        seen |= frontier
        hops += 1
    return None


SUITES = {"all": ("tests", "theorems"), "theorems": ("theorems",)}
PLUGIN = "gradcore.verify.plugin"
# Checks the TOML's snippets against the unmutated code (and the copy has no mutation/): it fails on every
# applied mutant, so it can judge none of them.
NOT_JUDGES = {"tests/test_mutants.py"}


def _selected(m: Mutant, suite: str = "all") -> list[str]:
    """The test and theorem files whose imports reach the mutated module (through any recipe),
    the closest first: with ``-x`` the tests written about the module decide before the far ones."""
    module = _module(m.file)
    found = []
    for p in (p for d in SUITES[suite] for p in sorted((ROOT / d).glob("test_*.py"))):
        # pytest loads gradcore's plugin (record, verdicts, results) into every test file it runs
        hops = _distance({i for i in imports(p) if i in GRAPH} | {PLUGIN}, module)
        if hops is not None and str(p.relative_to(ROOT)) not in NOT_JUDGES:
            found.append((hops, str(p.relative_to(ROOT))))
    return [name for _, name in sorted(found)]


def _guard_changes(results: Path) -> list[guard.Change]:
    if not results.is_file():
        return []
    now = json.loads(results.read_text(encoding="utf-8"))
    base = json.loads((ROOT / "reports" / "baseline.json").read_text(encoding="utf-8"))
    ids = {c["id"] for c in now["claims"]}
    base["claims"] = [c for c in base["claims"] if c["id"] in ids]
    return guard.compare(base, now)


def _pytest(copy: Path, tests: list[str], results: Path, workers: str = "0") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-n", workers, "-p", "no:cacheprovider",
                           "--gradcore-results", str(results), *tests],
                          cwd=copy, env=env, capture_output=True, text=True, timeout=1800)


def failed_tests(stdout: str) -> list[str]:
    """The node ids pytest's summary reports FAILED or ERROR (a test file that fails to collect is a failure
    too, controlled like one). The id runs to the " - " before the message: a parametrized id may hold spaces."""
    return re.findall(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", stdout, re.M)


def _passes_unmutated(test: str) -> bool:
    """The control: the test that killed a mutant passes on an unmutated copy, so the kill is the
    planted bug's doing and not a test that fails anyway."""
    with tempfile.TemporaryDirectory(prefix="gradcore-control-") as tmp:
        copy = Path(tmp) / "repo"
        shutil.copytree(ROOT, copy, ignore=IGNORE)
        return _pytest(copy, [test], copy / "control-results.json").returncode in (0, 5)


def run_one(m: Mutant, suite: str = "all") -> Outcome:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gradcore-mutant-") as tmp:
        copy = Path(tmp) / "repo"
        shutil.copytree(ROOT, copy, ignore=IGNORE)
        target = copy / m.file
        text = target.read_text(encoding="utf-8")
        if text.count(m.find) != 1:
            return Outcome(m, "does not apply", f"snippet found {text.count(m.find)} times", 0.0)
        target.write_text(text.replace(m.find, m.replace), encoding="utf-8")
        results = copy / "mutant-results.json"
        selected = _selected(m, suite)
        if not selected:
            return Outcome(m, "survived", "no test file reaches the module", 0.0)
        proc = _pytest(copy, selected, results)
        seconds = time.perf_counter() - start
        if proc.returncode not in (0, 5):
            failed = failed_tests(proc.stdout)
            if failed and not _passes_unmutated(failed[0]):
                return Outcome(m, "invalid", f"{failed[0]} fails without the planted bug too", seconds)
            return Outcome(m, "killed", f"test {failed[0] if failed else f'pytest exit {proc.returncode}'}", seconds)
        changes = _guard_changes(results)
        if changes:
            c = changes[0]
            return Outcome(m, "killed", f"guard: {c.claim} {c.what} {c.baseline} → {c.now}", seconds)
        return Outcome(m, "survived", f"{len(selected)} test files passed, guard clean", seconds)


def render(outcomes: list[Outcome], suite: str = "all", subset: str = "") -> str:
    """The report; ``subset`` names the mutants run when only some were (``--only``)."""
    killed = [o for o in outcomes if o.status == "killed"]
    survived = [o for o in outcomes if o.status == "survived"]
    broken = [o for o in outcomes if o.status in ("does not apply", "invalid")]
    scored = len(killed) + len(survived)
    rate = 100.0 * len(killed) / scored if scored else 0.0
    rows = [[f"`{o.mutant.name}`", f"`{o.mutant.file}`", o.mutant.bug, o.status, o.by.replace("|", "\\|"),
             f"{o.seconds:.0f} s"] for o in outcomes]
    if suite == "theorems":
        title = "# Negative controls for the verdicts: planted bugs against the theorems and the guard alone"
        what = ("only the theorems importing the mutated module run there (no unit test), and the guard compares "
                "what they measured with `reports/baseline.json`: a kill means the bug moved a verdict away from "
                "its expected one or a guarded constant beyond its tolerance. A survivor here is a bug no theorem "
                "exercises; `reports/mutation.md` shows which unit test catches it.")
    else:
        title = "# Negative controls: planted bugs"
        what = ("the tests and theorems importing the mutated module run there, closest first, and the guard "
                "compares what they measured with `reports/baseline.json`.")
    out = [title, "",
           f"Generated by `python mutation/run.py{' --suite theorems' if suite == 'theorems' else ''}"
           f"{' --only …' if subset else ''}` from `mutation/mutants.toml`"
           + (f" (only {subset})" if subset else "") + ": each planted bug is applied to a temporary copy of the repository; " + what +
           " The test that kills a mutant is rerun on an unmutated copy (the control): a kill counts only if it "
           "passes there.", "",
           f"**{len(killed)} of {scored} killed ({rate:.0f} %)**, {len(survived)} survived"
           + (f", {len(broken)} not scored (did not apply, or the killing test failed unmutated too)"
              if broken else "") + ".", "",
           table(["mutant", "file", "planted bug", "outcome", "caught by", "time"], rows), ""]
    if survived and suite == "all":
        out += ["## Why each survivor survived", ""]
        out += [f"- `{o.mutant.name}`: {o.mutant.survives_because or '**unexplained** — needs a new check'}"
                for o in survived]
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="", help="comma-separated mutant names")
    p.add_argument("--jobs", type=int, default=2, help="mutants run at once (default 2)")
    p.add_argument("--suite", choices=tuple(SUITES), default="all",
                   help="all: tests, theorems and guard (default); theorems: the theorems and guard alone")
    p.add_argument("--out", type=Path, help="default reports/mutation.md (reports/mutation-theorems.md)")
    args = p.parse_args(argv)
    out = args.out or ROOT / "reports" / ("mutation-theorems.md" if args.suite == "theorems" else "mutation.md")
    mutants = load()
    if args.only:
        wanted = set(args.only.split(","))
        mutants = [m for m in mutants if m.name in wanted]

    def run_and_say(m: Mutant) -> Outcome:
        o = run_one(m, args.suite)
        print(f"{o.status:<15} {o.mutant.name:<40} {o.seconds:5.0f} s  {o.by}", flush=True)
        return o

    with ThreadPoolExecutor(args.jobs) as pool:
        outcomes = list(pool.map(run_and_say, mutants))
    subset = ", ".join(f"`{m.name}`" for m in mutants) if args.only else ""
    write_text(render(outcomes, args.suite, subset), out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

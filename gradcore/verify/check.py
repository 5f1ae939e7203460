"""``gradcore check MODULE:OBJECT``: measure a new technique against every claim of its kind.

The object (a callable, an ``nn.Module`` class or a factory) is imported, its kind is
inferred (or taken from ``--kind``), and the kind's contract
(:mod:`gradcore.verify.contracts`) runs every applicable clause on it — and, for the
side-by-side table, on gradcore's built-in techniques of the same kind. Exit status:
0 when every gating clause holds, 1 when one is violated, 2 when the technique cannot be
checked or a clause could not be measured (gradcore's own failure or the per-clause time
limit: "could not be measured: <reason>"), one line each. User code runs under a time limit
(:mod:`gradcore.verify.timelimit`), in process state gradcore puts back after its import and
after every clause (:mod:`gradcore.verify.sandbox`), and a ``sys.exit`` in it is caught.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import check_report, profiles, sandbox
from .options import catalogue_option, load_catalogue
from .contracts import KINDS, CheckError, ClauseResult, Settings, contract
from .contracts.base import DEFAULT_TIME_LIMIT_S, error_line, prepare, run_clause

DEVICES = ("cpu", "cuda")


@dataclass
class TechniqueCheck:
    """Every clause of one technique's kind, measured on it (and on the built-ins)."""

    name: str
    kind: str
    spec: str
    settings: Settings
    results: list[ClauseResult]
    builtins: dict[str, list[ClauseResult]] = field(default_factory=dict)
    wall_time_s: float = 0.0

    @property
    def violations(self) -> list[ClauseResult]:
        """Gating clauses the technique violates."""
        return [r for r in self.results if r.violated]

    @property
    def unmeasured(self) -> list[ClauseResult]:
        """Gating clauses gradcore could not measure (so neither pass nor fail)."""
        return [r for r in self.results if r.unmeasured]

    @property
    def ok(self) -> bool:
        return not self.violations and not self.unmeasured

    def table(self) -> str:
        return check_report.summary_table(self)

    def assert_ok(self) -> None:
        """Raise AssertionError with the clause table when a gating clause is violated."""
        if self.violations:
            names = ", ".join(r.clause for r in self.violations)
            raise AssertionError(f"{self.name} ({self.kind}) violates {names}\n{self.table()}")
        if self.unmeasured:
            names = ", ".join(r.clause for r in self.unmeasured)
            raise AssertionError(f"{self.name} ({self.kind}): {names} could not be measured\n{self.table()}")


def load_object(spec: str) -> Any:
    """Import ``MODULE:OBJECT`` (OBJECT may be a dotted attribute path); CheckError otherwise."""
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise CheckError(f"expected MODULE:OBJECT (e.g. mypkg.layers:MyNorm), got {spec!r}")
    module_name, attr_path = spec.split(":")
    if os.getcwd() not in sys.path:   # like `python -m`: the user's own modules import
        sys.path.insert(0, os.getcwd())
    try:
        with sandbox.controlled():   # what the module sets on import (grad mode, cwd, ...) is put back
            obj: Any = importlib.import_module(module_name)
    except SystemExit as e:   # a module that exits on import must not end gradcore's process
        raise CheckError(f"cannot import module {module_name!r}: it called sys.exit({e.code!r}) on import") from None
    except Exception as e:
        raise CheckError(f"cannot import module {module_name!r}: {error_line(e)}") from None
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            raise CheckError(f"{module_name!r} has no attribute {attr_path!r}")
        obj = getattr(obj, part)
    return obj


def infer_kind(obj: Any, settings: Settings) -> str:
    """The one kind whose contract recognises ``obj``; CheckError when none or several do."""
    if not callable(obj):
        raise CheckError(f"{type(obj).__name__} object is not callable, so it is no technique")
    kinds = [k for k in KINDS if contract(k).looks_like(obj, settings)]
    if len(kinds) == 1:
        return kinds[0]
    if not kinds:
        raise CheckError(f"cannot infer the kind of {_describe(obj)}{_as_activation(obj, settings)}; "
                         f"pass --kind {{{','.join(KINDS)}}}")
    raise CheckError(f"{_describe(obj)} is ambiguous (looks like {' and '.join(kinds)}); pass --kind")


def _as_activation(obj: Any, settings: Settings) -> str:
    """Why a one-tensor callable is not an activation (the likeliest intent), if it is one."""
    from .contracts import activation

    try:
        activation.smoke(activation._callable_of(obj), settings)
    except CheckError as e:
        return f" (as an activation: {e})"
    except Exception as e:   # the technique raised: its reason is what the user needs
        return f" (as an activation it raised {error_line(e)})"
    return ""


def _describe(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or type(obj).__name__


MAX_SEED = 2 ** 62   # seed + clause offsets stay inside torch.manual_seed's 64-bit range


def settings_for(device: str = "cpu", profile: str = "ci", seed: int = 0,
                 time_limit_s: float | None = DEFAULT_TIME_LIMIT_S) -> Settings:
    import torch

    if device not in DEVICES:
        raise CheckError(f"unknown device {device!r}; expected cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise CheckError("--device cuda requested but torch.cuda.is_available() is False")
    if profile not in profiles.PROFILES:
        raise CheckError(f"unknown profile {profile!r}; expected one of {', '.join(profiles.PROFILES)}")
    if time_limit_s is not None and not (isinstance(time_limit_s, (int, float)) and 0 < time_limit_s < 1e6):
        raise CheckError(f"time limit must be a number of seconds in (0, 1e6) or None, got {time_limit_s!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:   # torch's manual_seed range
        raise CheckError(f"seed must be a whole number in [0, 2**62], got {seed!r}")
    return Settings(device=device, profile=profile, seed=seed, time_limit_s=time_limit_s)


def measure(kind: str, obj: Any, name: str, setup: str, settings: Settings) -> list[ClauseResult]:
    """Every clause of ``kind`` on one object (prepared and validated first)."""
    module = contract(kind)
    subj = prepare(lambda: module.subject(obj, name, setup, settings), settings, f"{name} as {kind}")
    return [run_clause(c, subj, settings) for c in module.clauses]


def check(obj: Any, *, kind: str | None = None, name: str | None = None, spec: str | None = None,
          device: str = "cpu", profile: str = "ci", seed: int = 0, compare: bool = True,
          time_limit_s: float | None = DEFAULT_TIME_LIMIT_S) -> TechniqueCheck:
    """Measure ``obj`` against its kind's contract (and the built-ins, when ``compare``).

    Each clause (and the technique's preparation) runs under ``time_limit_s`` seconds.
    """
    start = time.perf_counter()
    settings = settings_for(device, profile, seed, time_limit_s)
    kind = contract(kind).kind if kind is not None else prepare(
        lambda: infer_kind(obj, settings), settings, f"inferring the kind of {_describe(obj)}")
    name = name or _describe(obj)
    spec = spec or _importable_spec(obj)
    binding = contract(kind).binding
    setup = (f"from gradcore.verify.check import load_object\n{binding} = load_object({spec!r})"
             if spec else f"{binding} = ...  # your {name}")
    with profiles.pinned_generation(profile):   # the CLI and the Python API draw alike
        results = measure(kind, obj, name, setup, settings)
        builtin = builtin_results(kind, settings) if compare else {}
    return TechniqueCheck(name, kind, spec or name, settings, results, builtin,
                          time.perf_counter() - start)


def _importable_spec(obj: Any) -> str | None:
    """``module:qualname`` when that imports ``obj`` itself, so an API check's reproductions run too."""
    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not (module and name) or "<" in name or module == "__main__":
        return None
    try:
        return f"{module}:{name}" if load_object(f"{module}:{name}") is obj else None
    except CheckError:
        return None


def write_builtin_tables(out_dir: str | Path, *, device: str = "cpu", profile: str = "ci",
                         kinds: tuple[str, ...] = KINDS) -> Path:
    """Measure every built-in technique and write ``techniques.md`` (+ ``techniques.json``)."""
    from . import results

    settings = settings_for(device, profile)
    start = time.perf_counter()
    with profiles.pinned_generation(profile):
        measured = {k: rows for k in kinds if (rows := builtin_results(k, settings))}
    statements = {k: [f"- `{c.id}`{'' if c.gate else ' (info)'}: {c.statement}" for c in contract(k).clauses]
                  for k in measured}
    env = results.environment(seed=settings.seed, profile=profile, wall_time_s=time.perf_counter() - start,
                              workers=1, devices=[device])
    return check_report.write_builtin_tables(measured, statements, env, out_dir)


def builtin_results(kind: str, settings: Settings) -> dict[str, list[ClauseResult]]:
    """The contract of ``kind`` measured on each of gradcore's built-in techniques."""
    return {bname: measure(kind, obj, bname, setup, settings)
            for bname, (obj, setup) in contract(kind).builtins().items()}


# --- command line ----------------------------------------------------------------------

def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``check`` subcommand to the ``gradcore`` parser."""
    from . import profiles

    p = subparsers.add_parser(
        "check", help="check a new technique against every claim of its kind",
        description="Measure a technique (activation, initialiser, norm, residual, recurrent, attention, "
                    "clipping) against every catalogued claim that applies to its kind, side by side "
                    "with gradcore's built-ins.\n\nexample:\n  gradcore check mypkg.acts:swish --out reports/checks",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    catalogue_option(p)
    p.add_argument("target", metavar="MODULE:OBJECT", help="the technique to import, e.g. mypkg.layers:MyNorm")
    p.add_argument("--kind", choices=KINDS, default=None, help="technique kind (default: inferred)")
    p.add_argument("--device", choices=DEVICES, default="cpu", help="device to measure on (default: cpu)")
    p.add_argument("--profile", choices=profiles.PROFILES, default="ci", help="Hypothesis profile and sizes (default: ci)")
    p.add_argument("--out", type=Path, default=Path("gradcore-check"), help="report directory (default: ./gradcore-check)")
    p.add_argument("--no-compare", action="store_true", help="skip the built-in comparison table")
    p.add_argument("--seed", type=int, default=0, help="base seed (default: 0)")
    p.add_argument("--time-limit", type=_seconds, default=DEFAULT_TIME_LIMIT_S, metavar="SECONDS",
                   help=f"wall-clock limit per clause; a clause past it could not be measured "
                        f"(default: {DEFAULT_TIME_LIMIT_S:g})")
    return p


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1e6:
        raise argparse.ArgumentTypeError(f"expected a number of seconds in (0, 1e6), got {text!r}")
    return value


def command(args: argparse.Namespace) -> int:
    """Run ``gradcore check``: 0 every clause holds, 1 one is violated, 2 the technique cannot
    be checked or a clause could not be measured (CheckError reaches ``cli.main``: one line)."""
    args.out = Path(os.path.abspath(args.out))   # before the user's module can chdir
    if args.out.exists() and not args.out.is_dir():
        raise CheckError(f"--out {args.out} exists and is not a directory")
    catalogue = load_catalogue(args)   # a bad --catalogue fails before any measuring
    obj = load_object(args.target)
    result = check(obj, kind=args.kind, name=args.target.split(":")[1], spec=args.target,
                   device=args.device, profile=args.profile, seed=args.seed,
                   compare=not args.no_compare, time_limit_s=args.time_limit)
    md, js = check_report.write(result, args.out, catalogue)
    print(check_report.summary_table(result))
    print(f"\nreport: {md}\nresults: {js}")
    if result.violations:
        return 1
    return 2 if result.unmeasured else 0

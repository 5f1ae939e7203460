"""``gradcore audit MODULE:FACTORY --input-shape …``: the claims measured on a real network.

The factory (a callable returning an ``nn.Module``, e.g. ``torchvision.models:resnet18``)
is called with no arguments — so no pretrained weights are downloaded — and the network is
measured at initialisation by :mod:`gradcore.audit`. Exit status: 0 report written, 1 a
claim check fails on the model, 2 usage errors (one line each).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from . import DEFAULT_TOL

DTYPES = ("float32", "float64")


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(p) for p in text.replace("x", ",").split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 1,3,224,224, got {text!r}") from None
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers like 1,3,224,224, got {text!r}")
    return shape


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``audit`` subcommand to the ``gradcore`` parser."""
    p = subparsers.add_parser(
        "audit", help="measure the claims on a real network's blocks at initialisation",
        description="Build a network from MODULE:FACTORY (called with no arguments, so nothing is downloaded), "
                    "find its residual, normalisation, attention/transformer, depthwise and recurrent blocks, "
                    "and measure each block's Jacobian σ_max and RMS gain (matrix-free), the gradient norm "
                    "through depth, and the catalogue claims that apply to each block kind.\n\nexample:\n"
                    "  gradcore audit torchvision.models:resnet18 --input-shape 1,3,224,224 --out reports/audits",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="MODULE:FACTORY", help="e.g. torchvision.models:mobilenet_v2")
    p.add_argument("--input-shape", type=_shape, required=True, help="input shape, batch first, e.g. 1,3,224,224")
    p.add_argument("--config", default=None, metavar="CONFIG",
                   help="build the model from a config: for a transformers model class (transformers:GPT2Model) a "
                        "config JSON file or key=value,... pairs of its config class (n_layer=2,n_embd=64); for "
                        "any other factory its one argument, e.g. timm:create_model --config convnext_tiny "
                        "(nothing is downloaded)")
    p.add_argument("--inputs", choices=("auto", "float", "ids"), default="auto",
                   help="float: N(0, 1) entries; ids: random token ids over the model's vocabulary, the gradient "
                        "profile then starting at the embedding output; auto: ids for a transformers model whose "
                        "main input is input_ids, else float (default: auto)")
    p.add_argument("--dtype", choices=DTYPES, default="float32", help="measurement dtype (default: float32)")
    p.add_argument("--tol", type=float, default=DEFAULT_TOL,
                   help=f"Lanczos residual tolerance: σ_max to within tol/2 relative (default: {DEFAULT_TOL:g})")
    p.add_argument("--max-steps", type=int, default=40, help="Lanczos steps per block at most (default: 40)")
    p.add_argument("--probes", type=int, default=4, help="Hutchinson probes for the RMS gain (default: 4)")
    p.add_argument("--seed", type=int, default=0, help="seed set before the factory builds the model (default: 0)")
    p.add_argument("--mode", choices=("train", "eval"), default="train",
                   help="BatchNorm statistics: train = the batch's own (as at a training step), eval = the "
                        "running ones; dropout is off either way (default: train)")
    p.add_argument("--weights", default=None, metavar="PATH",
                   help="load these weights (a state_dict saved by torch.save, or .safetensors) instead of the "
                        "factory's initialisation")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                   help="where to measure: cpu, cuda, or auto (cuda when torch sees a CUDA device; default: cpu)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads while measuring (default: torch's own); on a shared, loaded machine "
                        "1 thread can cost a tenth of the CPU time of 2 (threads spin waiting for each other)")
    p.add_argument("--name", default=None, help="report name (default: the factory's name)")
    p.add_argument("--out", type=Path, default=Path("gradcore-audit"), help="report directory (default: ./gradcore-audit)")
    return p


def command(args: argparse.Namespace) -> int:
    """Run ``gradcore audit``; 0 report written, 1 a claim check fails, 2 usage error (one line: a
    CheckError or InputError reaches ``cli.main``)."""
    import torch

    from ..errors import CheckError, ExitStatus, UsageError
    from ..verify import sandbox
    from . import render
    from .measure import AuditOptions, wants_ids
    from .model import load_model
    from .recipes import audited

    if args.tol <= 0 or args.max_steps < 1 or args.probes < 2 or (args.threads is not None and args.threads < 1):
        raise CheckError("--tol must be > 0, --max-steps >= 1, --probes >= 2 and --threads >= 1")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: this torch sees no CUDA device (use --device cpu or auto)")
    args.out = Path(os.path.abspath(args.out))   # before the user's module can chdir
    args.weights = args.weights and os.path.abspath(args.weights)
    if args.config and args.config.endswith(".json"):
        args.config = os.path.abspath(args.config)
    model = load_model(args.target, args.seed, args.weights, args.config)
    name = args.name or _name(args.target, args.config)
    inputs = args.inputs if args.inputs != "auto" else "ids" if wants_ids(model) else "float"
    settings = AuditOptions(dtype=getattr(torch, args.dtype), tol=args.tol, max_steps=args.max_steps,
                            probes=args.probes, seed=args.seed, mode=args.mode, inputs=inputs, device=device)
    with sandbox.controlled():   # the model's forward runs here: grad mode, cwd, threads, ... are put back
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        result = audited(model, args.input_shape, name=name, settings=settings, target=args.target,
                         weights=args.weights, config=args.config)
    md, js = render.write(result, args.out, name)
    print(f"{summary(result)}\nreport: {md}\nresults: {js}")
    fails = any(c.holds is False for b in result.blocks for c in b.claims)
    return ExitStatus.FAILED if fails else ExitStatus.OK


def _name(target: str, config: str | None) -> str:
    """The report's default name: the factory's, with the config's file stem or model name."""
    factory = target.split(":")[1]
    if not config:
        return factory
    stem = Path(config).stem if config.endswith(".json") else config if "=" not in config else ""
    return f"{factory}-{stem}" if stem else factory


def summary(result: Any) -> str:
    """One line: blocks measured, claim checks with a verdict and how many fail, claims not applied."""
    judged = [c for b in result.blocks for c in b.claims if c.holds is not None]
    failing = sum(c.holds is False for c in judged)
    skipped = sum(len(b.unapplied) for b in result.blocks)
    why = f" ({result.notes[-1]})" if not result.blocks and result.notes else ""
    return (f"{result.model}: {len(result.blocks)} blocks measured in {result.wall_s:.1f} s{why}; "
            f"{len(judged)} claim check(s) with a verdict, {failing} fail; {skipped} claim(s) not applied "
            "(reasons in the report)")

"""Command-line options every gradcore command shares."""
from __future__ import annotations

import argparse
from pathlib import Path

from . import catalogue


def catalogue_option(p: argparse.ArgumentParser) -> None:
    """``--catalogue DIR`` (repeatable): a downstream project's claims, added to the built-in ones."""
    p.add_argument("--catalogue", action="append", type=Path, default=[], metavar="DIR",
                   help="a catalogue directory added to gradcore's built-in claims (repeatable)")
    p.add_argument("--catalogue-only", action="store_true", help="read only the --catalogue directories")


def load_catalogue(args: argparse.Namespace) -> catalogue.Catalogue:
    """The catalogue the command's ``--catalogue`` options name (CatalogueError names the directories)."""
    return catalogue.load(extra=tuple(args.catalogue), builtin=not args.catalogue_only)

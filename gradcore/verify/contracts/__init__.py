"""Technique contracts: per kind, the catalogued claims written over a *subject*.

Each kind module (``activation``, ``initialiser``, ``norm``, ``residual``, ``recurrent``,
``attention``, ``clipping``, ``flow``, ``dynamics``, ``diffusion``, ``optimiser``, ``convolution``,
``skip`` for the dense and U-Net kinds, and ``transformer``) defines its clauses and a
:class:`~.contract.Contract` subclass, which registers the kind; :func:`contract` looks a kind up in the
registry.
"""
from __future__ import annotations

# Importing a kind module registers its Contract; this order is the order of KINDS and of the reports.
from . import (activation, initialiser, norm, residual, recurrent, attention, clipping,  # noqa: F401, I001
               flow, dynamics, diffusion, optimiser, convolution, skip, transformer)
from .base import Clause, ClauseResult, Outcome, Settings
from ...errors import CheckError
from .contract import Contract

KINDS = tuple(Contract.registry)


def contract(kind: str) -> type[Contract]:
    """The contract of ``kind`` (one of :data:`KINDS`)."""
    if kind not in Contract.registry:
        raise CheckError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    return Contract.registry[kind]


def reaches() -> dict[str, list[str]]:
    """Claim id → the registered kinds with a clause citing it (what ``gradcore check`` can measure)."""
    found: dict[str, list[str]] = {}
    for kind, c in Contract.registry.items():
        for cid in dict.fromkeys(cid for clause in c.clauses for cid in clause.claims):
            found.setdefault(cid, []).append(kind)
    return found


__all__ = ["KINDS", "Clause", "ClauseResult", "Contract", "Outcome", "Settings", "contract", "reaches"]

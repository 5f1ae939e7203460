"""Technique contracts: per kind, the catalogued claims written over a *subject*.

Each kind module (``activation``, ``norm``, ``clipping``, ``initialiser``, ``residual``,
``recurrent``, ``attention``) exposes ``KIND``, ``CLAUSES``, ``subject(obj, name, setup,
settings)`` (validates and prepares the technique, raising a one-line
:class:`~.base.CheckError`), ``looks_like(obj, settings)`` for kind inference, and
``builtins()`` (gradcore's own techniques of that kind, measured by the same clauses).
"""
from __future__ import annotations

from importlib import import_module
from types import ModuleType

from .base import CheckError, Clause, ClauseResult, Outcome, Settings

KINDS = ("activation", "initialiser", "norm", "residual", "recurrent", "attention", "clipping")


def contract(kind: str) -> ModuleType:
    """The contract module for ``kind`` (one of :data:`KINDS`)."""
    if kind not in KINDS:
        raise CheckError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    return import_module(f"{__name__}.{kind}")


__all__ = ["KINDS", "CheckError", "Clause", "ClauseResult", "Outcome", "Settings", "contract"]

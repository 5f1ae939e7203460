"""Import a technique named ``MODULE:OBJECT``: what ``gradcore check`` and ``audit`` load, and what
every generated reproduction of a user's technique runs first (``load_object("mypkg.acts:swish")``).

The module is imported under :func:`gradcore.verify.sandbox.controlled`, so state it changes on import
(grad mode, working directory, threads, default dtype) is put back, and a module that exits or raises
on import is one :class:`~gradcore.errors.CheckError` line, never the end of gradcore's process.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from ..errors import CheckError
from . import sandbox
from .contracts.base import error_line


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

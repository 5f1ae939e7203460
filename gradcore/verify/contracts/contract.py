"""The explicit contract protocol: one :class:`Contract` subclass per technique kind.

A subclass names its ``kind``, the ``binding`` its reproductions bind a technique to
(``f`` for an activation, ``clip`` for a clipping rule, ...), its ``clauses``, and
implements ``subject`` (validate and prepare a technique, one-line CheckError),
``looks_like`` (kind inference) and ``builtins`` (gradcore's own techniques of the kind,
as objects). Defining the subclass registers the kind: ``gradcore check`` and
``gradcore.testing.check_technique`` find it in :attr:`Contract.registry`, and nothing
else needs editing. A built-in's setup lines are generated from the object
(:func:`rebuild`), never typed.
"""
from __future__ import annotations

import importlib
from typing import Any, ClassVar

from .base import CheckError, Clause, Settings


class Contract:
    """A technique kind: the catalogued claims every member of the kind should satisfy."""

    registry: ClassVar[dict[str, type[Contract]]] = {}
    kind: ClassVar[str]
    binding: ClassVar[str]
    clauses: ClassVar[tuple[Clause, ...]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for attr in ("kind", "binding", "clauses"):
            if not hasattr(cls, attr):
                raise TypeError(f"contract {cls.__name__} must define {attr!r}")
        Contract.registry[cls.kind] = cls

    @staticmethod
    def subject(obj: Any, name: str, setup: str, settings: Settings) -> Any:
        """The technique validated and prepared for the clauses (one-line CheckError otherwise)."""
        raise NotImplementedError

    @staticmethod
    def looks_like(obj: Any, settings: Settings) -> bool:
        """Whether ``obj`` is a technique of this kind (for kind inference)."""
        raise NotImplementedError

    @staticmethod
    def objects() -> dict[str, Any]:
        """gradcore's own techniques of this kind, by display name."""
        raise NotImplementedError

    @classmethod
    def builtins(cls) -> dict[str, tuple[Any, str]]:
        """Each built-in with the setup lines that rebuild it, generated from the object."""
        return {name: (obj, rebuild(obj, cls.binding)) for name, obj in cls.objects().items()}


def rebuild(obj: Any, binding: str) -> str:
    """Python lines binding ``binding`` to ``obj``: an import of an importable function or class,
    or an object whose ``repr`` rebuilds it (checked by evaluating the repr)."""
    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if module and name and "<" not in name and _resolve(module, name) is obj:
        return f"from {module} import {name} as {binding}" if name != binding else f"from {module} import {name}"
    text, cls = repr(obj), type(obj)
    namespace: dict[str, Any] = {cls.__name__: cls}
    root = text.split("(", 1)[0]
    dotted = "." in root and root.replace(".", "").replace("_", "").isalnum()
    setup = f"import {root.rsplit('.', 1)[0]}" if dotted else f"from {cls.__module__} import {cls.__name__}"
    try:
        if dotted:
            exec(setup, namespace)
        again = eval(text, namespace)  # noqa: S307 - our own reprs, checked to round-trip
    except Exception as e:
        raise CheckError(f"built-in {text[:60]} cannot be rebuilt from its repr: {e}") from None
    if type(again) is not cls or repr(again) != text:
        raise CheckError(f"built-in {text[:60]}: its repr does not rebuild it")
    return f"{setup}\n{binding} = {text}"


def _resolve(module: str, qualname: str) -> Any:
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj
    except (ImportError, AttributeError):
        return None

"""The explicit contract protocol: one :class:`Contract` subclass per technique kind.

A kind module is its clauses plus a short declaration (issue 22)::

    class NormContract(Contract):
        kind, clauses = "norm", CLAUSES
        signature = Signature(module=True, accepts=1)   # cheap questions kind inference asks first
        smoke = staticmethod(smoke)                     # run once: in inference or in ``subject``
        objects = staticmethod(objects)                 # gradcore's own techniques of the kind

and, where the kind needs them, the hooks ``prepare`` (validate the object and turn it into
what the smoke test runs), ``recognises`` (a question on the smoke test's result, e.g. "the
output is normalised"), ``excludes`` (a cheap kind-specific question before the smoke test) and
``build`` (the subject the clauses receive; by default a :class:`Subject`). ``precedes`` settles
an object two kinds recognise (:func:`settle`: a Post-LN block is a transformer, not a norm).
The binding its reproductions bind a technique to defaults to the kind's name. Defining the
subclass registers the kind: ``gradcore check`` and ``gradcore.testing`` find it in
:attr:`Contract.registry`, and nothing else needs editing. A kind never writes ``subject`` or
``looks_like`` itself (a TypeError says so): the base class runs the hooks. A built-in's setup
lines are generated from the object (:func:`rebuild`), never typed.
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from torch import nn

from ...measure import Given
from .base import Clause, Settings, callable_or_fail, error_line, run_smoke
from ...errors import CheckError

DECLARED = "gradcore_kind"   # the attribute a technique declares its kind with


@dataclass(frozen=True)
class Signature:
    """Cheap questions kind inference asks before any smoke test (none of them calls the technique).

    ``module``: True when the object must be an ``nn.Module`` (class or instance), False when it
    must not be one; ``cls``: the same for being a class; ``accepts``: the call (an nn.Module's
    ``forward``) takes this many positional arguments; ``requires``: it requires exactly this many;
    ``recognised``: types whose subclasses and instances are the kind outright (no smoke test);
    ``target``: what of the object is called, for the arity questions (default: the object).
    A signature Python cannot read (a builtin) answers no arity question: the smoke test decides.
    """

    module: bool | None = None
    cls: bool | None = None
    accepts: int | None = None
    requires: int | None = None
    recognised: tuple[type, ...] = ()
    target: Callable[[Any], Any] | None = None

    def recognises(self, obj: Any) -> bool:
        return bool(self.recognised) and (isinstance(obj, self.recognised) or (
            inspect.isclass(obj) and issubclass(obj, self.recognised)))

    def mismatch(self, obj: Any) -> str | None:
        """Why ``obj`` cannot be of the kind, or None when every question passes."""
        if not callable(obj):
            return f"{type(obj).__name__} object is not callable"
        is_class, is_module = inspect.isclass(obj), _is_module(obj)
        if self.cls is not None and is_class != self.cls:
            return "it is a class" if is_class else "it is not a class"
        if self.module is not None and is_module != self.module:
            return "it is an nn.Module" if is_module else "it is not an nn.Module (class or instance)"
        return self._arity(obj)

    def _arity(self, obj: Any) -> str | None:
        if self.accepts is None and self.requires is None:
            return None
        params = _call_parameters(self.target(obj) if self.target else obj)
        if params is None:
            return None
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        required = sum(p.default is p.empty for p in positional)
        variadic = any(p.kind is p.VAR_POSITIONAL for p in params)
        if self.requires is not None and required != self.requires and not (variadic and required <= self.requires):
            return f"its call requires {required} positional argument(s), not {self.requires}"
        n = self.accepts
        if n is not None and not (required <= n and (variadic or len(positional) >= n)):
            return f"its call does not take {n} positional argument(s) (it requires {required})"
        return None


@contextmanager
def _unchanged(obj: Any) -> Iterator[None]:
    """Puts a module instance back as it was: its parameters' tensors (dtype, device), its buffers'
    values (BatchNorm's running statistics) and each submodule's train/eval mode."""
    if not isinstance(obj, nn.Module):
        yield
        return
    params = [(p, p.data) for p in obj.parameters()]
    buffers = [(m, name, b.detach().clone()) for m in obj.modules() for name, b in m._buffers.items() if b is not None]
    modes = [(m, m.training) for m in obj.modules()]
    try:
        yield
    finally:
        for p, data in params:
            p.data = data
        for m, name, b in buffers:
            m._buffers[name] = b
        for m, training in modes:
            m.training = training


def _is_module(obj: Any) -> bool:
    return isinstance(obj, nn.Module) or (inspect.isclass(obj) and issubclass(obj, nn.Module))


def _call_parameters(obj: Any) -> list[inspect.Parameter] | None:
    """The parameters a call of ``obj`` takes (an nn.Module's ``forward``, a class's instances'
    ``forward``, without ``self``); None when Python cannot tell."""
    try:
        if inspect.isclass(obj) and issubclass(obj, nn.Module):
            return list(inspect.signature(obj.forward).parameters.values())[1:]
        target = obj.forward if isinstance(obj, nn.Module) else obj
        return list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Inference:
    """One kind's answer to "is this object one of yours?", with the reason and, when the smoke
    test ran and passed, what it ran on (``subject`` reuses it rather than running it again)."""

    kind: str
    matches: bool
    reason: str
    prepared: Any = None
    smoked: bool = False


@dataclass(frozen=True)
class Subject:
    """A technique prepared for the clauses: ``prepared`` is what the smoke test ran on."""

    name: str
    obj: Any          # the technique as given
    setup: str        # Python lines binding it to ``binding`` (for reproductions)
    prepared: Any
    binding: str

    @property
    def given(self) -> Given:
        """The technique as a recipe argument: its reproduction binds it with the subject's setup."""
        return Given(self.obj, self.binding, self.setup)


class Contract:
    """A technique kind: the catalogued claims every member of the kind should satisfy."""

    registry: ClassVar[dict[str, type[Contract]]] = {}
    kind: ClassVar[str]
    binding: ClassVar[str]          # default: the kind's name as an identifier
    clauses: ClassVar[tuple[Clause, ...]]
    signature: ClassVar[Signature | None] = Signature()   # None: never inferred (pass the kind)
    never_inferred: ClassVar[str] = "this kind is never inferred"
    # kind -> why an object both kinds recognise is of this kind (an ambiguity settled, not guessed)
    precedes: ClassVar[dict[str, str]] = {}
    smoke_failure: ClassVar[str | None] = None   # prefix of the one-line error when the smoke test raises

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for attr in ("kind", "clauses"):
            if not hasattr(cls, attr):
                raise TypeError(f"contract {cls.__name__} must define {attr!r}")
        if not hasattr(cls, "binding"):
            cls.binding = "".join(ch if ch.isalnum() else "_" for ch in cls.kind)
        if not cls.binding.isidentifier():
            raise TypeError(f"contract {cls.__name__}: binding {cls.binding!r} is not a Python name")
        if own := [h for h in ("subject", "looks_like", "infer") if h in vars(cls)]:
            raise TypeError(f"contract {cls.__name__} defines {', '.join(own)}: declare a signature and the "
                            "prepare/smoke/excludes/recognises/build hooks instead (the base class runs them)")
        Contract.registry[cls.kind] = cls

    # --- the pattern's hooks (a kind overrides what it needs) ---------------------------

    @classmethod
    def prepare(cls, obj: Any, settings: Settings) -> Any:
        """Validate ``obj`` and turn it into what the smoke test runs (one-line CheckError)."""
        callable_or_fail(obj)
        return obj

    @staticmethod
    def smoke(prepared: Any, settings: Settings) -> Any:
        """Run the technique once on a probe input; CheckError unless it behaves like the kind."""
        raise NotImplementedError

    @classmethod
    def excludes(cls, obj: Any) -> str | None:
        """Inference only: a cheap kind-specific question, asked of the object as given and of what
        ``prepare`` made of it, before the smoke test: why it is not this kind, or None."""
        return None

    @classmethod
    def recognises(cls, prepared: Any, smoked: Any, settings: Settings) -> str | None:
        """Inference only: why the smoke test's result is not this kind's, or None."""
        return None

    @classmethod
    def build(cls, prepared: Any, obj: Any, name: str, setup: str, settings: Settings) -> Any:
        """The subject the clauses receive."""
        return Subject(name, obj, setup, prepared, cls.binding)

    @staticmethod
    def objects() -> dict[str, Any]:
        """gradcore's own techniques of this kind, by display name."""
        raise NotImplementedError

    # --- what check and inference call ------------------------------------------------

    @classmethod
    def subject(cls, obj: Any, name: str, setup: str, settings: Settings) -> Any:
        """The technique validated, smoke-tested and prepared for the clauses (one-line CheckError)."""
        prepared = cls.prepare(obj, settings)
        cls._smoke(prepared, settings)
        return cls.build(prepared, obj, name, setup, settings)

    @classmethod
    def subject_after(cls, inference: Inference | None, obj: Any, name: str, setup: str,
                      settings: Settings) -> Any:
        """The subject, reusing the smoke test kind inference already ran on ``obj``."""
        if inference is None or not inference.smoked or inference.kind != cls.kind:
            return cls.subject(obj, name, setup, settings)
        return cls.build(inference.prepared, obj, name, setup, settings)

    @classmethod
    def looks_like(cls, obj: Any, settings: Settings) -> bool:
        """Whether ``obj`` is a technique of this kind (for kind inference)."""
        return cls.infer(obj, settings).matches

    @classmethod
    def infer(cls, obj: Any, settings: Settings) -> Inference:
        """Cheap signature questions first, then the smoke test once; never raises, and leaves a module
        instance as it found it (the next kind asks about the technique, not what a smoke test made of it)."""
        with _unchanged(obj):
            return cls._infer(obj, settings)

    @classmethod
    def _infer(cls, obj: Any, settings: Settings) -> Inference:
        if cls.signature is None:
            return Inference(cls.kind, False, cls.never_inferred)
        if cls.signature.recognises(obj):
            names = ", ".join(t.__name__ for t in cls.signature.recognised)
            return Inference(cls.kind, True, f"it is a {names}")
        if (why := cls.signature.mismatch(obj) or cls.excludes(obj)) is not None:
            return Inference(cls.kind, False, why)
        try:
            prepared = cls.prepare(obj, settings)
            if (why := cls.excludes(prepared)) is None:
                why = cls.recognises(prepared, cls._smoke(prepared, settings), settings)
        except Exception as e:   # the technique failing the smoke test is an answer, not an error
            return Inference(cls.kind, False, str(e) if isinstance(e, CheckError) else f"it raised {error_line(e)}")
        if why is not None:
            return Inference(cls.kind, False, why)
        return Inference(cls.kind, True, f"{cls._asked()}; its {cls.kind} smoke test passed", prepared, True)

    @classmethod
    def _smoke(cls, prepared: Any, settings: Settings) -> Any:
        if cls.smoke_failure:
            return run_smoke(cls.smoke, prepared, settings, cls.smoke_failure)
        return cls.smoke(prepared, settings)

    @classmethod
    def _asked(cls) -> str:
        s = cls.signature or Signature()
        said = ["nn.Module" if s.module else "not an nn.Module" if s.module is False else "",
                "a class" if s.cls else "not a class" if s.cls is False else "",
                f"takes {s.accepts} positional argument(s)" if s.accepts is not None else "",
                f"requires {s.requires}" if s.requires is not None else ""]
        return ", ".join(x for x in said if x) or "callable"

    @classmethod
    def builtins(cls) -> dict[str, tuple[Any, str]]:
        """Each built-in with the setup lines that rebuild it, generated from the object."""
        return {name: (obj, rebuild(obj, cls.binding)) for name, obj in cls.objects().items()}


def settle(answers: dict[str, Inference]) -> list[Inference]:
    """The matching answers that no other matching kind ``precedes``, each winner's reason saying
    which kinds it was preferred to and why (a Post-LN block is a transformer, not a norm)."""
    matching = {k: a for k, a in answers.items() if a.matches}
    beaten = {loser: (k, why) for k in matching for loser, why in Contract.registry[k].precedes.items()
              if loser in matching}
    winners = []
    for k, answer in matching.items():
        if k in beaten:
            continue
        over = [f"it also passes the {loser} kind's questions ({matching[loser].reason}), but {why}"
                for loser, (winner, why) in beaten.items() if winner == k]
        winners.append(replace(answer, reason="; ".join([answer.reason, *over])) if over else answer)
    return winners


def declared_kind(obj: Any) -> str | None:
    """The kind ``obj`` declares with a ``gradcore_kind`` attribute (CheckError when it names none)."""
    try:
        kind = getattr(obj, DECLARED, None)
    except Exception:   # a hostile __getattr__ declares nothing
        return None
    if kind is None:
        return None
    if not isinstance(kind, str) or kind not in Contract.registry:
        raise CheckError(f"{DECLARED} = {kind!r} is not a kind; expected one of {', '.join(Contract.registry)}")
    return kind


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

"""The value object every measuring recipe returns, and how its reproduction is made.

A :class:`Measurement` knows its value, what *kind* of number it is (that decides how a
claim is judged from it and how the regression guard compares two runs of it), the
dtype, device and sizes it was taken at, and the Python call that reproduces it. The
reproduction is generated from the recipe's importable name and the arguments it was
called with (:func:`recipe`), never typed by hand, so it cannot drift from the value.
"""
from __future__ import annotations

import enum
import functools
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from ..errors import InputError


class Kind(str, enum.Enum):
    """What a measured number is, which decides how it is judged and guarded."""

    EXACT = "exact"              # symbolic or exactly representable: compared exactly
    NUMERIC = "numeric"          # deterministic floating-point: a dtype × conditioning tolerance
    ROUNDING = "rounding"        # a rounding residual: only whether it stays within `bound` matters
    STATISTICAL = "statistical"  # an estimate over seeds/samples: judged and guarded by its interval
    SEARCH = "search"            # found by search: a one-sided bound in `direction`, not the extremum


EPS = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7, "float32": 2.0 ** -23, "float64": 2.0 ** -52}
ULPS = 64   # a deterministic value may move this many ulp (× its conditioning) between runs


def dtype_name(dtype: Any) -> str | None:
    return None if dtype is None else str(dtype).replace("torch.", "")


@dataclass(frozen=True)
class Measurement:
    """One measured number with everything needed to judge, guard and reproduce it.

    ``interval`` and ``method``/``n`` belong to statistical estimates; ``bound`` is the
    bound a rounding residual must stay within; ``direction`` says which side a search
    bound lies on ("lower": the true supremum is at least ``value``); ``conditioning``
    scales the dtype's epsilon into the tolerance of a deterministic numeric value;
    ``witness`` is where a search found its value (which candidate won).
    """

    value: float
    kind: Kind = Kind.NUMERIC
    dtype: str | None = None
    device: str | None = None
    sizes: Mapping[str, Any] = field(default_factory=dict)
    interval: tuple[float, float] | None = None
    method: str | None = None
    n: int | None = None
    bound: float | None = None
    direction: str | None = None
    conditioning: float = 1.0
    witness: Any = None
    reproduction: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "kind", Kind(self.kind))
        object.__setattr__(self, "dtype", dtype_name(self.dtype))
        if self.kind is Kind.STATISTICAL and (self.interval is None or not self.n):
            raise InputError("measurement: a statistical estimate needs its interval and n")
        if self.kind is Kind.ROUNDING and self.bound is None:
            raise InputError("measurement: a rounding residual needs the bound it must stay within")
        if self.kind is Kind.SEARCH and self.direction not in ("lower", "upper"):
            raise InputError("measurement: a search bound needs direction 'lower' or 'upper'")

    def __float__(self) -> float:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def with_(self, **changes: Any) -> Measurement:
        return replace(self, **changes)

    @property
    def guard_tolerance(self) -> float:
        """How far a rerun may move the value before the guard calls it a change.

        Exact and rounding: 0 (a rounding residual is guarded by its bound instead).
        Numeric and search: ``conditioning`` × 64 ulp of the dtype at the value's scale
        (a search bound may only move the worse way by that much). Statistical: the
        interval's half-width, at least the numeric tolerance (every seed may give the same
        value, e.g. an orthogonal chain's exact gain, and a zero-width interval must not ask
        for bit equality across thread counts).
        """
        if self.kind not in (Kind.NUMERIC, Kind.SEARCH, Kind.STATISTICAL) or not math.isfinite(self.value):
            return 0.0
        eps = EPS.get(self.dtype or "float64", EPS["float64"])
        numeric = ULPS * eps * self.conditioning * max(abs(self.value), 1e-300)
        if self.kind is Kind.STATISTICAL and self.interval is not None:
            return max(0.5 * (self.interval[1] - self.interval[0]), numeric)
        return numeric

    def fields(self) -> dict[str, Any]:
        """The measurement-kind fields a recorded constant carries (results schema)."""
        return {"kind": self.kind.value, "bound": self.bound, "direction": self.direction,
                "method": self.method, "n": self.n, "sizes": dict(self.sizes) or None,
                "reproduction": self.reproduction}


class Given:
    """An argument that is not a plain value (a user's technique), with the code that rebuilds it.

    ``Given(obj, "f", setup="from mymod import mish as f")`` passes ``obj`` to the recipe
    and writes ``f`` into the reproduction after the ``setup`` lines.
    """

    def __init__(self, obj: Any, name: str, setup: str = "") -> None:
        self.obj, self.name, self.setup = obj, name, setup

    def __repr__(self) -> str:
        return self.name


_PLAIN = (bool, int, float, str, type(None))


def _literal(x: Any, where: str) -> str:
    """Python source that evaluates to ``x`` (plain values, tuples/lists/dicts of them, Given)."""
    if isinstance(x, Given):
        return x.name
    if isinstance(x, float) and not math.isfinite(x):
        return f"float({repr(x)!r})"
    if isinstance(x, _PLAIN):
        return repr(x)
    if isinstance(x, enum.Enum):
        return _literal(x.value, where)
    if isinstance(x, (tuple, list)):
        inner = ", ".join(_literal(e, where) for e in x)
        return f"({inner}{',' if len(x) == 1 else ''})" if isinstance(x, tuple) else f"[{inner}]"
    if isinstance(x, dict):
        return "{" + ", ".join(f"{_literal(k, where)}: {_literal(val, where)}" for k, val in x.items()) + "}"
    raise InputError(f"{where}: a recipe argument must be a plain value or Given(...), got {type(x).__name__}")


def _setups(x: Any) -> list[str]:
    if isinstance(x, Given):
        return [x.setup] if x.setup else []
    if isinstance(x, (tuple, list)):
        return [s for e in x for s in _setups(e)]
    if isinstance(x, dict):
        return [s for e in x.values() for s in _setups(e)]
    return []


def _unwrap(x: Any) -> Any:
    if isinstance(x, Given):
        return x.obj
    if isinstance(x, (tuple, list)):
        return type(x)(_unwrap(e) for e in x)
    if isinstance(x, dict):
        return {k: _unwrap(val) for k, val in x.items()}
    return x


def reproduction(fn: Callable[..., Any], arguments: Mapping[str, Any]) -> str:
    """Python that imports ``fn`` by its public name, calls it with ``arguments`` and prints the value."""
    where = f"{fn.__module__}.{fn.__qualname__}"
    call = ", ".join(f"{k}={_literal(val, where)}" for k, val in arguments.items())
    setup = list(dict.fromkeys(s for val in arguments.values() for s in _setups(val)))
    lines = [f"from {fn.__module__} import {fn.__name__}", *setup, f"print(repr({fn.__name__}({call}).value))"]
    return "\n".join(lines)


F = TypeVar("F", bound=Callable[..., Measurement])


def recipe(fn: F) -> F:
    """Mark ``fn`` as a measuring recipe: keyword arguments only, returns a Measurement.

    The returned Measurement gets its reproduction generated from the call (defaults
    included, so a later change of a default cannot change what the snippet means).
    """
    signature = inspect.signature(fn)
    if any(p.kind is not inspect.Parameter.KEYWORD_ONLY for p in signature.parameters.values()):
        raise TypeError(f"recipe {fn.__qualname__}: every parameter must be keyword-only")

    @functools.wraps(fn)
    def call(**kwargs: Any) -> Measurement:
        try:
            bound = signature.bind(**kwargs)
        except TypeError as e:
            raise InputError(f"{fn.__name__}: {e}") from None
        bound.apply_defaults()
        # A reproduction of a Given argument passes the bare object its setup bound to the
        # parameter's name (``make=make``): a callable technique is taken as Given under that name.
        arguments = {k: Given(val, k) if callable(val) and not isinstance(val, (Given, type(None))) else val
                     for k, val in bound.arguments.items()}
        script = reproduction(fn, arguments)
        m = fn(**_unwrap(arguments))
        if not isinstance(m, Measurement):
            raise TypeError(f"recipe {fn.__qualname__} returned {type(m).__name__}, not a Measurement")
        return m.with_(reproduction=script)

    call.__gradcore_recipe__ = True  # type: ignore[attr-defined]
    return call  # type: ignore[return-value]

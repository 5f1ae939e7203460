"""Contract for a weight initialiser ``fill_(weight)`` (in place, like ``torch.nn.init``).

Claims (catalogue INIT): 003 §4 "Xavier/Glorot 初始化 或 He 初始化…根据网络层的输入输出维度…
设定权重的初始分布…避免梯度过大或过小"; 004 (3.3.13)-(3.3.15): Var(W) = 2/(n_in+n_out)
keeps tanh/sigmoid stable, Var(W) = 2/n_in keeps ReLU stable. The subject's Var(W) is
measured on several shapes and the nets it initialises are measured for λ.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ...measure import Given
from ...measure.initialisation import fan_exponent, weight_variance
from ._stack import SEEDS, banded_transfer, undecided_note
from ..verdicts import within
from .base import CheckError, Clause, Outcome, Settings, callable_or_fail, run_smoke
from .contract import Contract

KIND = "initialiser"
Init = Callable[[torch.Tensor], Any]
FANS = (32, 128, 512)
TRANSFER_BAND = (0.9, 1.1)


@dataclass(frozen=True)
class InitSubject:
    name: str
    init: Init
    setup: str   # Python lines binding the initialiser to ``init``


def smoke(init: Init, settings: Settings) -> None:
    w = torch.zeros(64, 32, device=settings.device)
    init(w)
    if not bool(torch.isfinite(w).all()):
        raise CheckError("initialiser wrote non-finite values into a (64, 32) weight")
    if float(w.std()) == 0.0:
        raise CheckError("initialiser did not fill the weight in place (all entries equal)")


def subject(obj: Any, name: str, setup: str, settings: Settings) -> InitSubject:
    callable_or_fail(obj)
    run_smoke(smoke, obj, settings, "initialiser failed on a (64, 32) weight")
    return InitSubject(name, obj, setup)


def looks_like(obj: Any, settings: Settings) -> bool:
    """A callable that fills a 2-D tensor in place and returns it or None."""
    if not callable(obj):
        return False
    try:
        w = torch.zeros(64, 32, device=settings.device)
        out = obj(w)
        return (out is None or out is w) and float(w.std()) > 0 and bool(torch.isfinite(w).all())
    except Exception:
        return False


def _recipe_argument(s: InitSubject) -> str | Given:
    """A built-in goes to the recipes by its gradcore.init name, anything else as Given bound to ``init``."""
    from ... import init as initialisers

    return s.name if initialisers.INITIALISERS.get(s.name) is s.init else Given(s.init, "init", setup=s.setup)


def _non_finite_fill(s: InitSubject, settings: Settings) -> Outcome | None:
    """A violation naming the first of the clause's (n, n) weights the initialiser fills with
    non-finite values (the smoke test tried (64, 32) only), or None."""
    from ...measure.seeding import seeded

    for n in FANS:
        w = torch.zeros(n, n, dtype=torch.float64, device=settings.device)
        with seeded(settings.seed + n):
            s.init(w)
        bad = int((~torch.isfinite(w)).sum())
        if bad:
            note = f"the initialiser wrote {bad} non-finite value(s) into a ({n}, {n}) weight"
            return Outcome(False, {"first non-finite weight": f"({n}, {n})"},
                           {"shape": [n, n], "non-finite entries": bad}, note=note)
    return None


def fan_scaling(s: InitSubject, settings: Settings) -> Outcome:
    if (broken := _non_finite_fill(s, settings)) is not None:
        return broken
    init = _recipe_argument(s)
    slope = fan_exponent(init=init, fans=FANS, seed=settings.seed, device=settings.device)
    constants: dict[str, Any] = {"exponent p in Var(W) ∝ n^p": slope}
    constants.update({f"n·Var(W), n={n}": weight_variance(init=init, n=n, seed=settings.seed + n,
                                                          device=settings.device) for n in FANS})
    holds = abs(slope.value + 1) <= 0.1
    cex = None if holds else {"shapes": [[n, n] for n in FANS], "exponent": slope.value,
                              "snippet": slope.reproduction}
    return Outcome(holds, constants, cex)


def variance_preserving(s: InitSubject, settings: Settings) -> Outcome:
    depth, width, batch = 24 * settings.scale, 64 * settings.scale, 32
    init = _recipe_argument(s)
    lams = {act: banded_transfer(TRANSFER_BAND, activation=act, init=init, width=width, depth=depth, batch=batch,
                                 seed=settings.seed, device=settings.device)
            for act in ("relu", "tanh")}
    verdicts = {a: within(m.interval, *TRANSFER_BAND) for a, m in lams.items()}
    constants: dict[str, Any] = {f"lambda ({a})": m for a, m in lams.items()}
    constants.update({f"lambda ({a}) 95% CI": f"[{m.interval[0]:.4f}, {m.interval[1]:.4f}]"
                      for a, m in lams.items()})
    constants.update({"depth": depth, "width": width})
    constants.update({f"seeds ({a})": m.sizes["seeds"] for a, m in lams.items()})
    constants["seeds cap"] = SEEDS[-1]
    constants["stable for"] = ", ".join(a for a, ok in verdicts.items() if ok) or "neither"
    holds = True if True in verdicts.values() else (None if None in verdicts.values() else False)
    # The deciding measurement: the activation whose interval came closest to the band.
    closest = min(lams.values(), key=lambda m: abs(math.log(min(max(m.value, 1e-300), 1e300))))
    cex = None if holds is not False else {
        "depth": depth, "width": width, **{f"lambda ({a})": m.value for a, m in lams.items()},
        "witness": closest.witness, "snippet": closest.reproduction}
    notes = [f"{a}: {m.witness}" for a, m in lams.items() if m.witness]
    if holds is None:
        notes += [f"{a}: {undecided_note(m, f'the band {list(TRANSFER_BAND)}')}" for a, m in lams.items()
                  if verdicts[a] is None]
    return Outcome(holds, constants, cex, note="; ".join(notes))


CLAUSES = (
    Clause("fan-scaling", ("INIT-01", "INIT-05", "INIT-07"),
           "Var(W) scales with the layer's fan as 1/n (it adapts to the input/output dimensions)",
           fan_scaling),
    Clause("variance-preserving", ("INIT-04", "INIT-06", "INIT-07"),
           f"a deep ReLU or tanh net it initialises has per-layer gradient factor λ in {list(TRANSFER_BAND)}",
           variance_preserving),
)


def objects() -> dict[str, Any]:
    """gradcore.init's initialisers at their defaults."""
    from ... import init

    return dict(init.INITIALISERS)


class InitialiserContract(Contract):
    kind, binding, clauses = KIND, "init", CLAUSES
    subject, looks_like, objects = staticmethod(subject), staticmethod(looks_like), staticmethod(objects)

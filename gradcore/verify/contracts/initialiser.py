"""Contract for a weight initialiser ``fill_(weight)`` (in place, like ``torch.nn.init``).

Claims (catalogue INIT): 003 §4 "Xavier/Glorot 初始化 或 He 初始化…根据网络层的输入输出维度…
设定权重的初始分布…避免梯度过大或过小"; 004 (3.3.13)-(3.3.15): Var(W) = 2/(n_in+n_out)
keeps tanh/sigmoid stable, Var(W) = 2/n_in keeps ReLU stable. The subject's Var(W) is
measured on several shapes and the nets it initialises are measured for λ; its chains at
‖W‖₂ = 1.5 (DEPTH-05), with every other layer at 3× (DEPTH-06), and the spectrum of JJᵀ at
criticality (LIT-08) through those claims' theorem recipes.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ...measure import Given, Kind, Measurement
from ...measure.initialisation import fan_exponent, weight_variance
from ._stack import SEEDS, banded_transfer, sequential, undecided_note
from ..verdicts import decide, within
from ...measure.transfer import max_derivative, transfer_factor
from .base import Clause, Outcome, Settings
from ...errors import CheckError
from .contract import Contract, Signature

KIND = "initialiser"
Init = Callable[[torch.Tensor], Any]
FANS = (32, 128, 512)
TRANSFER_BAND = (0.9, 1.1)


@dataclass(frozen=True)
class InitSubject:
    name: str
    init: Init
    setup: str   # Python lines binding the initialiser to ``init``


def smoke(init: Init, settings: Settings) -> bool:
    """One-line CheckError unless ``init`` fills a (64, 32) weight with finite, unequal values;
    whether it returns the weight or None (as ``torch.nn.init`` does), for kind inference."""
    w = torch.zeros(64, 32, device=settings.device)
    out = init(w)
    if not bool(torch.isfinite(w).all()):
        raise CheckError("initialiser wrote non-finite values into a (64, 32) weight")
    if float(w.std()) == 0.0:
        raise CheckError("initialiser did not fill the weight in place (all entries equal)")
    return out is None or out is w


def recognises(init: Init, in_place: bool, settings: Settings) -> str | None:
    return None if in_place else "it returns a new object rather than filling the weight in place"


def build(init: Init, obj: Any, name: str, setup: str, settings: Settings) -> InitSubject:
    return InitSubject(name, init, setup)


def _recipe_argument(s: InitSubject) -> str | Given:
    """A built-in goes to the recipes by its gradcore.initialisation name, anything else as Given bound to ``init``."""
    from ... import initialisation as initialisers

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


FAN_BAND = (-1.1, -0.9)    # p in Var(W) ∝ n^p: 1/n to ± 0.1
FAN_DRAWS = (10, 30)       # draws of the fans per estimate of p: 30 when 10 leave the band undecided (the cap)


def fan_scaling(s: InitSubject, settings: Settings) -> Outcome:
    """INIT-01/05/07: the expected log–log exponent p of Var(W) over the fans, a Student-t interval
    with draws added until it decides (cap FAN_DRAWS[-1]); undecided is no pass."""
    if (broken := _non_finite_fill(s, settings)) is not None:
        return broken
    init = _recipe_argument(s)
    slope = sequential(lambda n: fan_exponent(init=init, fans=FANS, draws=n, seed=settings.seed,
                                              device=settings.device),
                       lambda m: within(m.interval, *FAN_BAND), FAN_DRAWS)
    constants: dict[str, Any] = {"exponent p in Var(W) ∝ n^p": slope,
                                 "p 95% CI": f"[{slope.interval[0]:.4f}, {slope.interval[1]:.4f}]",
                                 "draws": slope.sizes["draws"], "draws cap": FAN_DRAWS[-1]}
    constants.update({f"n·Var(W), n={n}": weight_variance(init=init, n=n, seed=settings.seed + n,
                                                          device=settings.device) for n in FANS})
    holds = within(slope.interval, *FAN_BAND)
    cex = None if holds is not False else {"shapes": [[n, n] for n in FANS], "exponent": slope.value,
                                           "95% CI": list(slope.interval), "snippet": slope.reproduction}
    note = "" if holds is not None else (f"could not be decided: the 95% interval {constants['p 95% CI']} still "
                                         f"straddles the band {list(FAN_BAND)} with {FAN_DRAWS[-1]} draws")
    return Outcome(holds, constants, cex, note=note)


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



# ---------------------------------------------------------------- appended clauses (INIT-02, LIT-05/06/14)

VARIANCE_FORMULA_TOL = 0.05     # INIT-02's tolerance on Var(y)/(n_in·Var(W)·Var(x))
GLOROT_LEVELS = (0.5, 0.8)      # LIT-05: Glorot & Bengio's standard and normalized inits
GLOROT_MIDPOINT = sum(GLOROT_LEVELS) / 2
ISOMETRY_DECADES = 1.0          # LIT-14: singular values of a deep linear net within a factor 10
ISOMETRY_DEPTH, ISOMETRY_WIDTH = 8, 32


def _decided(m: Measurement, lo: float, hi: float) -> bool | None:
    return within(m.interval, lo, hi)


def _statistical_outcome(m: Measurement, holds: bool | None, label: str, **facts: Any) -> Outcome:
    lo, hi = m.interval or (m.value, m.value)
    cex = None if holds is not False else {label: m.value, **facts, "witness": m.witness, "snippet": m.reproduction}
    return Outcome(holds, {label: m, "95% CI": f"[{lo:.4f}, {hi:.4f}]", **facts}, cex,
                   note=m.witness or ("" if holds is not None else "confidence interval straddles the band"))


def variance_formula(s: InitSubject, settings: Settings) -> Outcome:
    """INIT-02: Var(y) = n_in·Var(W)·Var(x) for y = W x with zero-mean inputs (zero-mean weights)."""
    from ...measure.initialisation import init_forward_variance_ratio

    if (broken := _non_finite_fill(s, settings)) is not None:
        return broken
    n = 128 * settings.scale
    m = init_forward_variance_ratio(init=_recipe_argument(s), inputs="gaussian", n_in=n, n_out=n, batch=512,
                                    seeds=8, seed=settings.seed, device=settings.device)
    holds = _decided(m, 1 - VARIANCE_FORMULA_TOL, 1 + VARIANCE_FORMULA_TOL)
    return _statistical_outcome(m, holds, "Var(y)/(n_in·Var(W)·Var(x))", shape=f"({n}, {n})", inputs="N(0, 1)")


def glorot_jacobian(s: InitSubject, settings: Settings) -> Outcome:
    """LIT-05: mean singular value of diag(tanh'(z))W in a 5-layer tanh net it initialises, nearer
    Glorot's normalized init (0.8) than his standard init (0.5)."""
    from ...measure.signal import glorot_jacobian_singular_mean

    m = glorot_jacobian_singular_mean(init=_recipe_argument(s), width=64 * settings.scale, depth=5, batch=4,
                                      seeds=settings.seeds)
    holds = _decided(m, GLOROT_MIDPOINT, math.inf)
    return _statistical_outcome(m, holds, "mean singular value of ∂h_(i+1)/∂h_i", width=64 * settings.scale,
                                **{"Glorot: standard / normalized": " / ".join(map(str, GLOROT_LEVELS))})


def relu_forward_variance(s: InitSubject, settings: Settings) -> Outcome:
    """LIT-06: the per-layer factor Var[y_(l+1)]/Var[y_l] = ½ n Var[w] of a ReLU net it initialises is 1."""
    from ...measure.signal import init_relu_layer_gain

    m = init_relu_layer_gain(init=_recipe_argument(s), depth=30, width=64 * settings.scale, batch=32,
                             seeds=2 * settings.seeds)
    holds = _decided(m, *TRANSFER_BAND)
    return _statistical_outcome(m, holds, "Var[y_(l+1)]/Var[y_l] (ReLU)", depth=30, width=64 * settings.scale)


def deep_linear_isometry(s: InitSubject, settings: Settings) -> Outcome:
    """LIT-14: the singular values of a product of its square weights stay within a factor 10."""
    from ...measure.meanfield import product_log10_condition

    init = _recipe_argument(s)
    deep, one = (product_log10_condition(init=init, width=ISOMETRY_WIDTH, depth=d, seed=settings.seed)
                 for d in (ISOMETRY_DEPTH, 1))
    holds = deep.value <= ISOMETRY_DECADES
    constants: dict[str, Any] = {f"log10 σ_max/σ_min, depth {ISOMETRY_DEPTH}": deep,
                                 "log10 σ_max/σ_min, depth 1": one, "width": ISOMETRY_WIDTH}
    cex = None if holds else {"depth": ISOMETRY_DEPTH, "width": ISOMETRY_WIDTH, "log10 condition": deep.value,
                              "snippet": deep.reproduction}
    return Outcome(holds, constants, cex)


CLAUSES = CLAUSES + (
    Clause("variance-formula", ("INIT-02",),
           f"zero-mean weights: Var(y) = n_in·Var(W)·Var(x) (± {VARIANCE_FORMULA_TOL}) for y = W x, x ~ N(0, 1)",
           variance_formula),
    Clause("glorot-jacobian", ("LIT-05",),
           f"the layer Jacobians of a 5-layer tanh net it initialises have mean singular value ≥ {GLOROT_MIDPOINT} "
           f"(nearer Glorot's normalized init, {GLOROT_LEVELS[1]}, than his standard init, {GLOROT_LEVELS[0]})",
           glorot_jacobian, gate=False),
    Clause("relu-forward-variance", ("LIT-06",),
           f"in a deep ReLU net it initialises the per-layer forward variance factor ½ n Var[w] lies in "
           f"{list(TRANSFER_BAND)} (He et al. eq. 10)", relu_forward_variance, gate=False),
    Clause("deep-linear-isometry", ("LIT-14",),
           f"a product of {ISOMETRY_DEPTH} of its {ISOMETRY_WIDTH}×{ISOMETRY_WIDTH} weights keeps its singular "
           f"values within a factor 10 (orthogonal weights keep them all at 1)", deep_linear_isometry, gate=False),
)

# ---------------------------------------------------------------- appended clauses (DEPTH-05/06, LIT-08)

AMPLIFY_NORM, AMPLIFY_RTOL = 1.5, 0.05     # DEPTH-05: ‖W‖₂ = 1.5 claimed to give 1.5 per layer (± 5 %)
AMPLIFY_DEPTH, AMPLIFY_WIDTHS = 12, (32, 64)  # the DEPTH-05 theorem's chains
REVERSAL_DEPTH, REVERSAL_WIDTH = 24, 96     # the DEPTH-06 theorem's nets
REVERSAL_GAINS = (1.0, 3.0)                 # every other layer at 3× the init's scale
CHAIN_SEEDS, CHAIN_BATCH = (3, 8), 16       # networks per λ: 3 (the claims'), 8 (the theorems') when 3 leave
                                            # the decision open; the DEPTH theorems' batch


def _chain_lambda(decides: Callable[[Measurement], bool | None], **net: Any) -> Measurement:
    """The DEPTH theorems' λ with enough networks to decide (the n used is in its sizes)."""
    return sequential(lambda n: transfer_factor(seeds=n, **net), decides, CHAIN_SEEDS)


def _lambda_text(m: Measurement) -> str:
    return f"{m.value:.4f} [{m.interval[0]:.4f}, {m.interval[1]:.4f}]"


def norm_amplification(s: InitSubject, settings: Settings) -> Outcome:
    """DEPTH-05: λ of linear and ReLU chains of its weights, each rescaled to ‖W‖₂ = 1.5, against 1.5."""
    if (broken := _non_finite_fill(s, settings)) is not None:
        return broken
    init = _recipe_argument(s)
    def claimed(m: Measurement) -> bool | None:
        return decide("==", AMPLIFY_NORM, m.value, AMPLIFY_RTOL * AMPLIFY_NORM, m.interval)

    lams = {(act or "linear", width): _chain_lambda(claimed, activation=act, init=init, depth=AMPLIFY_DEPTH,
                                                    width=width, batch=CHAIN_BATCH, seed=settings.seed,
                                                    spectral=AMPLIFY_NORM, device=settings.device)
            for act in (None, "relu") for width in AMPLIFY_WIDTHS}
    verdicts = {k: claimed(m) for k, m in lams.items()}
    constants: dict[str, Any] = {f"λ, {a}, width {w}": m for (a, w), m in lams.items()}
    constants.update({"‖W‖₂ of every layer": AMPLIFY_NORM, "depth": AMPLIFY_DEPTH,
                      "networks (cap)": f"{max(m.sizes['seeds'] for m in lams.values())} ({CHAIN_SEEDS[-1]})"})
    reached = [f"{a}, width {w}" for (a, w), ok in verdicts.items() if ok]
    constants["1.5 per layer reached by"] = ", ".join(reached) or "none"
    if all(verdicts.values()):
        return Outcome(True, constants)
    (a, w), m = next((k, lams[k]) for k, ok in verdicts.items() if not ok)
    cex = {"chain": f"{a}, depth {AMPLIFY_DEPTH}, width {w}, every ‖W‖₂ = {AMPLIFY_NORM}", "λ": _lambda_text(m),
           "snippet": m.reproduction}
    return Outcome(False, constants, cex, note=f"1.5^k is only the bound ∏‖W‖₂: {a} chains of its weights grow "
                                              f"{m.value:.3f}× per layer (width {w})")


def vanishing_reversal(s: InitSubject, settings: Settings) -> Outcome:
    """DEPTH-06: with f' < 1 (tanh, sigmoid) the λ of a net it initialises, with every other layer at 3×
    its scale, stays < 1 (occasional large weights do not reverse vanishing)."""
    if (broken := _non_finite_fill(s, settings)) is not None:
        return broken
    init = _recipe_argument(s)
    net = dict(init=init, width=REVERSAL_WIDTH, depth=REVERSAL_DEPTH, batch=CHAIN_BATCH, seed=settings.seed,
               device=settings.device)
    lams, slopes = {}, {}
    for act in ("tanh", "sigmoid"):
        for gains in ((1.0,), REVERSAL_GAINS):
            lams[act, gains] = m = _chain_lambda(lambda m: decide("<", 1.0, m.value, 0.0, m.interval),
                                                 activation=act, gains=gains, **net)
            # the premise f' < 1, over every pre-activation of the same networks
            slopes[act, gains] = max_derivative(activation=act, gains=gains, seeds=m.sizes["seeds"], **net)
    premise = {k: m.value < 1 for k, m in slopes.items()}
    verdicts = {k: decide("<", 1.0, m.value, 0.0, m.interval) if premise[k] else True for k, m in lams.items()}
    label = {k: f"{k[0]}, gains {list(k[1])} cycled" for k in lams}
    constants: dict[str, Any] = {f"λ, {label[k]}": m for k, m in lams.items()}
    constants.update({f"max f'(z), {label[k]}": m for k, m in slopes.items()})
    constants.update({"depth": REVERSAL_DEPTH, "width": REVERSAL_WIDTH,
                      "networks (cap)": f"{max(m.sizes['seeds'] for m in lams.values())} ({CHAIN_SEEDS[-1]})"})
    holds = False if False in verdicts.values() else None if None in verdicts.values() else True
    if holds is not False:
        return Outcome(holds, constants, note="" if holds else "a λ interval straddles 1")
    k = next(k for k, ok in verdicts.items() if ok is False)
    m = lams[k]
    return Outcome(False, constants, {"net": label[k], "λ": _lambda_text(m), "max f'(z)": slopes[k].value,
                                      "snippet": m.reproduction},
                   note=f"with f' < 1 everywhere, {label[k]} grows the gradient {m.value:.3f}× per layer: "
                        "occasional large weights do reverse vanishing")


SPECTRUM_DEPTHS, SPECTRUM_WIDTH, SPECTRUM_SEEDS = (1, 2, 4, 8), 64, 8   # the LIT-08 theorem's nets


def jacobian_spectrum(s: InitSubject, settings: Settings) -> Outcome:
    """LIT-08: at criticality (each weight rescaled to σ_w²/n, σ_w² = 1 linear, 2 ReLU) the variance
    σ²_{JJᵀ} of JJᵀ's eigenvalues: 0 to rounding (isometry) or growing like L^p in a linear net of its
    weights, growing (p > 0) in a ReLU net whatever the weights."""
    from ...measure.meanfield import spectrum_variance, spectrum_variance_exponent

    if (broken := _non_finite_fill(s, settings)) is not None:
        return broken
    init = _recipe_argument(s)
    spec = dict(init=init if isinstance(init, Given) else _meanfield_name(init), width=SPECTRUM_WIDTH)
    flat = spectrum_variance(activation="linear", depth=SPECTRUM_DEPTHS[-1], seed=settings.seed, **spec)
    isometric = flat.kind is Kind.ROUNDING   # within the rounding bound of an exact 0
    relu = spectrum_variance_exponent(activation="relu", depths=SPECTRUM_DEPTHS, seeds=SPECTRUM_SEEDS, **spec)
    constants: dict[str, Any] = {f"σ²_(JJᵀ), linear, depth {SPECTRUM_DEPTHS[-1]}": flat,
                                 "p in σ²_(JJᵀ) ∝ L^p, ReLU": relu,
                                 "p, ReLU 95% CI": f"[{relu.interval[0]:.3f}, {relu.interval[1]:.3f}]",
                                 "linear net isometric (0 to rounding)": isometric}
    if not isometric:
        constants["p in σ²_(JJᵀ) ∝ L^p, linear"] = spectrum_variance_exponent(
            activation="linear", depths=SPECTRUM_DEPTHS, seeds=SPECTRUM_SEEDS, **spec)
    holds = decide(">", 0.0, relu.value, 0.0, relu.interval)
    cex = None if holds is not False else {"net": f"ReLU, width {SPECTRUM_WIDTH}, depths {list(SPECTRUM_DEPTHS)}",
                                           "p": relu.value, "snippet": relu.reproduction}
    return Outcome(holds, constants, cex, note="" if holds is not None else "the ReLU exponent's interval straddles 0")


def _meanfield_name(name: str) -> str | Given:
    """gradcore's orthogonal init by the name the LIT-08 recipes know; every other built-in as Given
    (its weights rescaled to criticality like a user's)."""
    from ... import initialisation as initialisers

    if name == "orthogonal":
        return name
    return Given(initialisers.get(name), "init",
                 setup=f"import gradcore.initialisation\ninit = gradcore.initialisation.get({name!r})")


CLAUSES = CLAUSES + (
    Clause("norm-amplification", ("DEPTH-05",),
           f"linear and ReLU chains of its weights, each rescaled to ‖W‖₂ = {AMPLIFY_NORM} (depth {AMPLIFY_DEPTH}, "
           f"widths {list(AMPLIFY_WIDTHS)}), amplify the gradient {AMPLIFY_NORM}× per layer (± 5 %)",
           norm_amplification, gate=False),
    Clause("vanishing-reversal", ("DEPTH-06",),
           f"with f' < 1 (tanh, sigmoid) a net it initialises keeps λ < 1 with every other layer at "
           f"{REVERSAL_GAINS[1]:g}× its scale (depth {REVERSAL_DEPTH}, width {REVERSAL_WIDTH})",
           vanishing_reversal, gate=False),
    Clause("jacobian-spectrum", ("LIT-08",),
           "at criticality a ReLU net of its weights spreads JJᵀ's spectrum with depth (σ²_(JJᵀ) ∝ L^p, p > 0: no "
           "dynamical isometry); whether a linear net of them is isometric", jacobian_spectrum, gate=False),
)


def objects() -> dict[str, Any]:
    """gradcore.initialisation's initialisers at their defaults."""
    from ... import initialisation as init

    return dict(init.INITIALISERS)


class InitialiserContract(Contract):
    """A callable that fills a 2-D tensor in place and returns it or None."""

    kind, binding, clauses, signature = KIND, "init", CLAUSES, Signature(cls=False, accepts=1)
    smoke_failure = "initialiser failed on a (64, 32) weight"
    smoke, recognises, build = staticmethod(smoke), staticmethod(recognises), staticmethod(build)
    objects = staticmethod(objects)

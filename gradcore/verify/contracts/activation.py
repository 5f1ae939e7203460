"""Contract for an activation function f: derivative bound, saturation, depth behaviour.

Claims (catalogue ACT/SAT/DEPTH; 000 §主要“罪魁祸首”, 004 §3.3.1 and §3.3.5): sup |f'| ≤ 1,
saturation regions S = {|f'(x)| < ε}, the per-layer transfer factor λ. The derivative and
saturation clauses call the recipes of :mod:`gradcore.measure.derivative` and
:mod:`gradcore.measure.saturation` on the subject (a built-in by its registry name, a
user's object as ``Given``) — the same recipes ACT-03 and the SAT theorems measure with:
sup |f'| symbolically when a sympy form is given and by search always (a non-finite f or
f' anywhere in the probed domain is an explosion); λ through a deep network at the init
the subject recommends (or, if it names none, the standard one that suits it best).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sympy as sp
import torch
from torch import nn

from ...measure import Given, Measurement
from ...measure import derivative as D
from ...measure import saturation as S
from ._stack import SEEDS, banded_transfer, depth_to, undecided_note
from ..verdicts import within
from .base import Clause, Outcome, Settings, finite
from ...errors import CheckError
from .contract import Contract, Signature

KIND = "activation"
RANGE = D.RANGE       # probed interval [-RANGE, RANGE] for f' (plus the far points D.TAILS)
SATURATION_EPS = 0.01  # 004 Theorem 3.3.1 uses ε = 0.01
TRANSFER_BAND = (0.9, 1.1)


@dataclass(frozen=True)
class ActivationSubject:
    """An activation prepared for measurement."""

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    expr: sp.Expr | None
    init: Callable[[torch.Tensor], Any] | None
    init_name: str | None
    setup: str  # Python lines that bind the technique to ``f`` (for counterexample snippets)
    measured: str | Given = ""  # what the recipes are called with: a registry name, or the object as Given


# --- building the subject ---------------------------------------------------------------

_callable_of = D.callable_of   # kind inference (gradcore.verify.check) asks for it by this name


def _init_of(obj: Any) -> tuple[Callable[[torch.Tensor], Any] | None, str | None]:
    rec = getattr(obj, "recommended_init", None)
    if rec is None:
        return None, None
    if callable(rec):
        return rec, getattr(rec, "__name__", repr(rec))
    from ... import initialisation as initialisers   # helper module; imported only when needed

    found = initialisers.get(rec)
    fn = getattr(found, "fn", found)
    if not callable(fn):
        raise CheckError(f"recommended_init {rec!r} does not name a usable initialiser")
    return fn, str(rec)


def _probe(settings: Settings) -> torch.Tensor:
    """The smoke test's input: 12 points of [−3, 3] in float64, shaped (3, 4)."""
    return torch.linspace(-3, 3, 12, dtype=torch.float64, device=settings.device).reshape(3, 4)


def smoke(fn: Callable[[torch.Tensor], torch.Tensor], settings: Settings) -> Callable[[torch.Tensor], torch.Tensor]:
    """One-line CheckError unless f maps tensors elementwise to finite tensors of the same shape
    that autograd can differentiate (``prepare`` has already put an in-place f on a copy)."""
    x = _probe(settings)
    y = fn(x.clone())
    if not isinstance(y, torch.Tensor):
        raise CheckError(f"activation returned {type(y).__name__}, expected a Tensor")
    if y.device != x.device:
        raise CheckError(f"activation returned a tensor on {y.device} for an input on {x.device}")
    if y.is_complex() or not y.is_floating_point():
        raise CheckError(f"activation returned a {str(y.dtype).removeprefix('torch.')} tensor for a float64 input; "
                         "f must map real floats to real floats (f' is measured by autograd)")
    if y.shape != x.shape:
        raise CheckError(f"activation changed the shape: input {tuple(x.shape)}, output {tuple(y.shape)}")
    if not bool(torch.isfinite(y).all()):
        raise CheckError("activation returned non-finite values on inputs in [-3, 3]")
    _attached(fn, x, y)
    _finite_on_domain(fn, settings)
    again = fn(x.clone())
    if not torch.equal(again, y):
        raise CheckError("activation is not deterministic: two calls on the same input returned different values")
    x2 = x.clone()
    x2[0, 0] += 0.5
    changed = (fn(x2) - y).abs() > 1e-12
    changed[0, 0] = False
    if bool(changed.any()):
        raise CheckError("not elementwise: changing one input entry changed other outputs")
    return fn


def _attached(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> None:
    """One-line CheckError when f's output does not depend on its input for autograd although its
    value does (``.detach()``, ``torch.no_grad`` inside f): f' would be measured as 0 everywhere."""
    with torch.enable_grad():   # a caller's no_grad must not make every technique look detached
        out = fn(x.clone().requires_grad_(True))
        if not torch.is_grad_enabled():   # f switched autograd off: the sandbox names that change itself
            return
    if not out.requires_grad and not torch.equal(fn(x + 1.0), y):   # a constant f truly has f' = 0
        raise CheckError("activation returns a tensor detached from its input: gradcore cannot differentiate it "
                         "(remove the .detach() / torch.no_grad() inside it)")


class OnCopy:
    """An activation that writes into its input (``nn.ReLU(inplace=True)``), called on a copy,
    so that measuring it never changes the caller's tensor nor a leaf autograd needs."""

    def __init__(self, obj: Any) -> None:
        self.inner = _callable_of(obj)
        self.recommended_init = getattr(obj, "recommended_init", None)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.clone())

    def __repr__(self) -> str:
        return f"OnCopy({self.inner!r})"


def _own_output(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """f itself when it leaves its input alone; f on a copy when it writes into its input and
    autograd records the write (the slope it reports is the value's); else a one-line CheckError:
    a write under ``no_grad`` (``nn.init.zeros_``) is invisible to autograd, which would measure f
    as the identity."""
    given = x.clone()
    fn(given)
    if torch.equal(given, x):
        return fn
    copied = OnCopy(fn)
    if not _slope_is_the_value_s(copied, x):
        raise CheckError("activation mutates its input (it wrote into the tensor it was given, like "
                         "nn.init.zeros_, where autograd does not see it); gradcore measures f(x) as a "
                         "function: pass an out-of-place version")
    return copied


def _slope_is_the_value_s(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> bool:
    """Whether autograd's f' agrees with the central difference of f's values at ``x`` (points
    away from 0, where the kinks of ReLU-like functions lie). h = 1e-6 in float64 leaves a
    difference error near 1e-10, far inside the tolerance; zeros_ differs by 1."""
    try:
        with torch.enable_grad():
            xg = x.clone().requires_grad_(True)
            out = fn(xg)
            (slope,) = torch.autograd.grad(out.sum(), xg, allow_unused=True)   # elementwise: the diagonal
    except RuntimeError:   # e.g. it overwrote a value autograd saved
        return False
    slope = torch.zeros_like(x) if slope is None else slope
    h = 1e-6
    values = (fn(x + h) - fn(x - h)) / (2 * h)
    return bool(torch.allclose(slope, values, rtol=1e-5, atol=1e-6))


def _recipe_argument(obj: Any, setup: str) -> str | Given:
    """A built-in goes to the recipes by its registry name, anything else as Given bound to ``f``.

    The setup rebinds ``f`` as a Given too: a recipe called with the bare object could not
    write its own reproduction, so the generated snippet would not run.
    """
    from ... import activations

    name = getattr(obj, "name", None)
    if isinstance(name, str) and activations.REGISTRY.get(name) is obj:
        return name
    return Given(obj, "f", f"{setup}\nfrom gradcore.measure import Given\nf = Given(f, 'f')")


def _finite_on_domain(fn: Callable[[torch.Tensor], torch.Tensor], settings: Settings) -> None:
    """One-line CheckError unless f is finite on the whole interval the clauses probe."""
    grid = torch.linspace(-RANGE, RANGE, 8001, dtype=torch.float64, device=settings.device)
    bad = ~torch.isfinite(fn(grid))
    if bool(bad.any()):
        x = float(grid[bad.nonzero()[0, 0]])
        raise CheckError(f"activation returned non-finite values on the probed domain [-{RANGE:g}, {RANGE:g}], "
                         f"first at x = {x:.4g}")


def prepare(obj: Any, settings: Settings) -> Callable[[torch.Tensor], torch.Tensor]:
    """The tensor function of ``obj`` (an nn.Module moved to float64 on the device), called on a copy
    of its input when it writes into it the way autograd records (``nn.ReLU(inplace=True)``)."""
    fn = _callable_of(obj)
    if isinstance(fn, nn.Module):
        fn = fn.to(device=settings.device, dtype=torch.float64)
    return _own_output(fn, _probe(settings))


def build(fn: Callable[[torch.Tensor], torch.Tensor], obj: Any, name: str, setup: str,
          settings: Settings) -> ActivationSubject:
    """The subject; ``fn`` is f, or f on a copy of its input (from :func:`prepare`)."""
    measured = fn
    init, init_name = _init_of(obj)
    if isinstance(measured, OnCopy):   # the recipes, and the reproduction, call f on a copy too
        argument: str | Given = Given(OnCopy(obj), "f", f"{setup}\nfrom gradcore.measure import Given\n"
                                      "from gradcore.verify.contracts.activation import OnCopy\n"
                                      "f = Given(OnCopy(f), 'f')")
    else:
        argument = _recipe_argument(obj, setup)
    return ActivationSubject(name, measured, D.sympy_form(obj), init, init_name, setup, argument)


# --- sup |f'| --------------------------------------------------------------------------

def sup_derivative(s: ActivationSubject, settings: Settings, method: str,
                   quantity: str = "value") -> Measurement:
    """sup |f'| (or where it is) over ℝ: the recipe ACT-03 measures the built-ins with."""
    if method == "sympy":
        return D.derivative_extremum(activation=s.measured, method="sympy", quantity=quantity)
    return D.derivative_extremum(activation=s.measured, quantity=quantity, points=40001 * settings.scale,
                                 profile=settings.profile, device=settings.device)


def derivative_bound(s: ActivationSubject, settings: Settings) -> Outcome:
    num, num_x = sup_derivative(s, settings, "search"), sup_derivative(s, settings, "search", "argmax")
    constants: dict[str, Any] = {"sup|f'| (search)": num, "argmax x (search)": num_x}
    sup, at = num, num_x
    if s.expr is not None:
        sym, sym_x = sup_derivative(s, settings, "sympy"), sup_derivative(s, settings, "sympy", "argmax")
        constants.update({"sup|f'| (sympy)": sym, "argmax x (sympy)": sym_x})
        if sym.value > num.value:
            sup, at = sym, sym_x
    holds = sup.value <= 1.0 + 1e-9
    if holds:
        return Outcome(True, constants)
    x = at.value if math.isfinite(at.value) else num_x.value
    slope = D.derivative_at(activation=s.measured, x=x, device=settings.device).value
    note = "" if math.isfinite(num.value) else f"f or f' is not finite at x = {num_x.value:g} (explosion)"
    return Outcome(False, constants, {"x": x, "f'(x)": slope, "snippet": sup.reproduction}, note=note)


# --- saturation ------------------------------------------------------------------------

def saturation(s: ActivationSubject, settings: Settings) -> Outcome:
    grid = dict(activation=s.measured, lo=-RANGE, hi=RANGE, points=8001 * settings.scale, device=settings.device)
    share = S.derivative_share(radius=SATURATION_EPS, **grid)
    left, right = (S.saturation_edge(epsilon=SATURATION_EPS, side=side, **grid) for side in ("left", "right"))
    constants: dict[str, Any] = {f"saturated share of [-{RANGE:g}, {RANGE:g}]": share,
                                 "left saturated below x": _edge(left), "right saturated above x": _edge(right),
                                 "epsilon": SATURATION_EPS}
    holds = math.isnan(left.value) or math.isnan(right.value)
    if holds:
        return Outcome(True, constants)
    # The edges cross (left's innermost point is the domain's right end) only when no grid point
    # is unsaturated: both "tails" are the whole domain, and no edge bounds either of them.
    everywhere = left.value >= right.value
    if everywhere:
        constants.update({"left saturated below x": "everywhere", "right saturated above x": "everywhere"})
    xs = [-RANGE, RANGE] if everywhere else [left.value - 1.0, right.value + 1.0]
    ds = [D.derivative_at(activation=s.measured, x=x, device=settings.device).value for x in xs]
    note = f"|f'| < {SATURATION_EPS} on the whole probed domain [-{RANGE:g}, {RANGE:g}]" if everywhere else ""
    return Outcome(False, constants, {"epsilon": SATURATION_EPS, "x": xs, "f'(x)": ds,
                                      "snippet": f"{left.reproduction}\n{right.reproduction}"}, note=note)


def _edge(m: Measurement) -> Measurement | None:
    """An edge for the report; None when that tail is not saturated."""
    return None if math.isnan(m.value) else m


# --- depth -----------------------------------------------------------------------------

def _standard_inits() -> dict[str, str]:
    return {"he (kaiming_normal_, fan_in)": "kaiming_normal", "xavier (xavier_normal_)": "xavier_normal"}


def _transfer_inits(s: ActivationSubject) -> dict[str, str | Given]:
    """The init λ is measured at: the subject's recommendation (a gradcore.initialisation name, or its own
    function), else gradcore's He and Xavier initialisers."""
    if s.init is None:
        return _standard_inits()
    from ... import initialisation as initialisers

    if s.init_name in initialisers.INITIALISERS:
        return {s.init_name: s.init_name}
    # The activation's setup (it comes first in the recipe's reproduction) has bound f as Given(obj, 'f').
    return {s.init_name: Given(s.init, "init", setup="init = getattr(f, 'obj', f).recommended_init")}


def transfer(s: ActivationSubject, settings: Settings) -> Outcome:
    depth, width, batch = 24 * settings.scale, 64 * settings.scale, 32
    measured = {label: banded_transfer(TRANSFER_BAND, activation=s.measured, init=init, width=width, depth=depth,
                                       batch=batch, seed=settings.seed, device=settings.device)
                for label, init in _transfer_inits(s).items()}
    label = min(measured, key=lambda k: abs(math.log(min(max(measured[k].value, 1e-300), 1e300))))
    m = measured[label]
    lam, (lo, hi) = m.value, m.interval
    constants: dict[str, Any] = {
        "init": label if s.init is not None else f"{label} (none recommended; best of he/xavier)",
        "lambda": m, "lambda 95% CI": f"[{lo:.4f}, {hi:.4f}]",
        "depth": depth, "width": width, "seeds": m.sizes["seeds"], "seeds cap": SEEDS[-1],
        "layers to x1e-6": depth_to(lam, 1e-6) if lam < 1 else None,
        "layers to x1e6": depth_to(lam, 1e6) if lam > 1 else None,
    }
    holds = within(m.interval, *TRANSFER_BAND)
    cex = None
    if holds is False:
        cex = {"init": label, "depth": depth, "width": width, "lambda": lam,
               "gradient ratio over depth": finite(float(torch.tensor(lam, dtype=torch.float64) ** depth)),
               "witness": m.witness, "snippet": m.reproduction}
    return Outcome(holds, constants, cex,
                   note=m.witness or ("" if holds is not None else
                                      undecided_note(m, f"the band {list(TRANSFER_BAND)}")))


CLAUSES = (
    Clause("derivative-bound", ("ACT-03", "ACT-06"),
           "sup |f'| ≤ 1 — the bound the documents assume for common activations", derivative_bound),
    Clause("saturation", ("ACT-07", "SAT-01"),
           f"f' does not vanish on both tails: {{|f'| < {SATURATION_EPS}}} leaves one tail unsaturated",
           saturation),
    Clause("transfer-factor", ("DEPTH-08", "DEPTH-11", "INIT-07"),
           f"at its init the per-layer gradient transfer factor λ lies in {list(TRANSFER_BAND)} "
           "(gradients neither vanish nor explode with depth)", transfer),
)



# ---------------------------------------------------------------- appended clauses (SAT, DEPTH-09/10, ACT-05, LIT-09)

SPAN = 4.0            # ±2 standard deviations of a unit-variance pre-activation
SAT_DEPTH_X = 4.0     # SAT-04 reads the distance to the asymptote at |x| = 4
PRECISIONS = ("float16", "bfloat16", "float32")
PRECISION_DEPTH = 100  # DEPTH-09's depth: 0.1¹⁰⁰
DERIVATIVE_RMS_TOL = 0.02  # ACT-05's tolerance around 1


def _output_saturation(s: ActivationSubject, sides: dict[str, Measurement]) -> dict[str, Any]:
    """SAT-04/05 from the sympy form: where the output comes within ε of its asymptote on each
    gradient-saturated side, and its distance to the nearer asymptote at |x| = 4."""
    from ...errors import InputError

    if s.expr is None:
        return {"output saturation": "not measured (no sympy form)"}
    out: dict[str, Any] = {}
    for side, edge in sides.items():
        if not math.isnan(edge.value):
            out[f"{side} output within ε of its asymptote beyond x"] = S.saturation_edge(
                activation=s.measured, epsilon=SATURATION_EPS, side=side, of="output", method="sympy")
    try:
        out.update({f"distance to the asymptote at x = {x:g}": S.output_distance(activation=s.measured, x=x)
                    for x in (-SAT_DEPTH_X, SAT_DEPTH_X)})
    except InputError:   # raised only when f has no finite asymptote on either side
        out["distance to the asymptote"] = "no finite asymptote"
    return out


def saturation_span(s: ActivationSubject, settings: Settings) -> Outcome:
    """SAT-02/03/06: the saturated tails {|f'| < ε} begin x₁ < x₂ with x₂ − x₁ ≥ SPAN."""
    grid = dict(activation=s.measured, lo=-RANGE, hi=RANGE, points=8001 * settings.scale, device=settings.device)
    sides = {side: S.saturation_edge(epsilon=SATURATION_EPS, side=side, **grid) for side in ("left", "right")}
    x1 = -math.inf if math.isnan(sides["left"].value) else sides["left"].value
    x2 = math.inf if math.isnan(sides["right"].value) else sides["right"].value
    span = x2 - x1
    crossings = S.level_crossings(activation=s.measured, level=SATURATION_EPS, device=settings.device)
    constants: dict[str, Any] = {
        "x₁ (left tail saturated below)": _edge(sides["left"]),
        "x₂ (right tail saturated above)": _edge(sides["right"]),
        "x₂ − x₁": finite(span), "epsilon": SATURATION_EPS,
        "saturated sides": ", ".join(k for k, m in sides.items() if not math.isnan(m.value)) or "none",
        "grid points where f' = ε or crosses it": crossings}
    constants.update(_output_saturation(s, sides))
    holds = span >= SPAN
    if holds:
        return Outcome(True, constants)
    xs = [x1 + (x2 - x1) / 2] if x1 < x2 else [x2]
    ds = [D.derivative_at(activation=s.measured, x=x, device=settings.device).value for x in xs]
    return Outcome(False, constants, {"epsilon": SATURATION_EPS, "x₁": x1, "x₂": x2, "x": xs, "f'(x)": ds,
                                      "snippet": f"{sides['left'].reproduction}\n{sides['right'].reproduction}"},
                   note=f"both tails saturate within a span of {span:.3g} < {SPAN:g}")


def _sigma_w2(init: str | Given, settings: Settings) -> float | Measurement:
    """n·Var(W) of the init on square weights: the formula for a gradcore.initialisation name, a (256 × 256)
    draw for a user's initialiser."""
    from ... import initialisation as initialisers
    from ...measure.initialisation import weight_variance

    if isinstance(init, str):
        return 256 * initialisers.variance(init, 256, 256)
    return weight_variance(init=init, n=256, seed=settings.seed, device=settings.device)


def chi1_criticality(s: ActivationSubject, settings: Settings) -> Outcome:
    """LIT-09: the mean-field χ₁ = σ_w² E[f'(√q* z)²] at the init's σ_w² (σ_b = 0); √χ₁ is λ's
    infinite-width, infinite-depth limit, so it is held to λ's band."""
    from ...measure.meanfield import chi1, fixed_point_length

    per = {}
    for label, init in _transfer_inits(s).items():
        sw2 = _sigma_w2(init, settings)
        per[label] = (sw2, chi1(sigma_w2=float(sw2), activation=s.measured),
                      fixed_point_length(sigma_w2=float(sw2), activation=s.measured))
    label = min(per, key=lambda k: abs(math.log(min(max(per[k][1].value, 1e-300), 1e300))))
    sw2, chi, q = per[label]
    root = math.sqrt(chi.value)
    holds = TRANSFER_BAND[0] <= root <= TRANSFER_BAND[1]
    constants: dict[str, Any] = {
        "init": label if s.init is not None else f"{label} (none recommended; best of he/xavier)",
        "sigma_w^2 = n·Var(W)": sw2, "q* (fixed point of the length map)": q,
        "chi_1": chi, "sqrt(chi_1) (per-layer gradient factor)": root}
    cex = None if holds else {"init": label, "sigma_w^2": float(sw2), "chi_1": chi.value, "snippet": chi.reproduction}
    return Outcome(holds, constants, cex)


def precision_depth(s: ActivationSubject, settings: Settings) -> Outcome:
    """DEPTH-09/10: how many layers of the activation's stack (at its init) a float16 / bfloat16 /
    float32 gradient crosses before it is exactly 0 or inf/NaN."""
    from ...measure.depth import stack_limit_depth

    results = {}
    for label, init in _transfer_inits(s).items():
        results[label] = {(limit, dt): stack_limit_depth(limit=limit, activation=s.measured, init=init, dtype=dt,
                                                         seed=settings.seed, device=settings.device)
                          for limit in ("underflow", "overflow") for dt in PRECISIONS}
    ok = {label: all(m.value > PRECISION_DEPTH for (_, dt), m in r.items() if dt == "float32")
          for label, r in results.items()}
    label = next((k for k, v in ok.items() if v), next(iter(results)))
    r = results[label]
    constants: dict[str, Any] = {"init": label}
    constants.update({f"{limit} depth, {dt}": finite(m.value) if math.isfinite(m.value) else
                      f"none within {m.sizes['max_depth']} layers" for (limit, dt), m in r.items()})
    if ok[label]:
        return Outcome(True, constants)
    (limit, dt), m = min(((k, m) for k, m in r.items() if k[1] == "float32"), key=lambda km: km[1].value)
    return Outcome(False, constants, {"init": label, "dtype": dt, "limit": limit, "depth": m.value,
                                      "snippet": m.reproduction},
                   note=f"the float32 gradient {'vanishes exactly' if limit == 'underflow' else 'overflows'} "
                        f"after {m.value:g} ≤ {PRECISION_DEPTH} layers")


def derivative_rms(s: ActivationSubject, settings: Settings) -> Outcome:
    """ACT-05: the share √E[f'(z)²] (z ~ N(0, 1)) of the gradient norm one diag(f'(z)) keeps."""
    m = D.derivative_rms(activation=s.measured, method="sample", rows=8, samples=50000 * settings.scale,
                         seed=settings.seed, device=settings.device)
    holds = within(m.interval, 1 - DERIVATIVE_RMS_TOL, 1 + DERIVATIVE_RMS_TOL)
    cex = None if holds is not False else {"sqrt E[f'(z)^2]": m.value, "snippet": m.reproduction}
    return Outcome(holds, {"sqrt E[f'(z)^2], z ~ N(0,1)": m,
                           "95% CI": f"[{m.interval[0]:.4f}, {m.interval[1]:.4f}]",
                           "after 10 layers": m.value ** 10}, cex)


CLAUSES = CLAUSES + (
    Clause("saturation-span", ("SAT-05", "SAT-06"),   # SAT-02..04 are the sigmoid's own numbers
           f"the saturated tails {{|f'| < {SATURATION_EPS}}} begin at x₁ < x₂ with x₂ − x₁ ≥ {SPAN:g} "
           "(a unit-variance pre-activation within ±2σ keeps its gradient); with the output's distance to "
           "its asymptotes", saturation_span, gate=False),
    Clause("chi1-criticality", ("LIT-09",),
           f"at its init the mean-field per-layer gradient factor √χ₁ (σ_b = 0) lies in {list(TRANSFER_BAND)}",
           chi1_criticality, gate=False),
    Clause("precision-depth", ("DEPTH-10",),   # DEPTH-09 is arithmetic on 0.1ᵏ
           f"in its stack at its init a float32 gradient crosses more than {PRECISION_DEPTH} layers before it "
           "underflows to 0 or overflows (float16 and bfloat16 depths beside it)", precision_depth, gate=False),
    Clause("derivative-rms", ("ACT-05",),
           f"one layer's diag(f'(z)) keeps the gradient norm: √E[f'(z)²] = 1 ± {DERIVATIVE_RMS_TOL} for "
           "z ~ N(0, 1)", derivative_rms, gate=False),
)

def objects() -> dict[str, Any]:
    """gradcore's activations (registry objects; their repr rebuilds them)."""
    from ... import activations

    return dict(activations.REGISTRY)


def _called(obj: Any) -> Any:
    """What an activation call runs: an Activation's (or look-alike's) ``fn``, else the object."""
    fn = getattr(obj, "fn", None)
    return fn if callable(fn) else obj


def _layer(fn: Any) -> str | None:
    """Why a module with parameters is no activation (PReLU's one slope is allowed), or None."""
    if isinstance(fn, nn.Module) and any(True for _ in fn.parameters()) and not isinstance(fn, nn.PReLU):
        return "an nn.Module with parameters is a layer, not an activation"
    return None


class ActivationContract(Contract):
    """An elementwise Tensor → Tensor map: a function, an Activation, or an nn.Module (class or instance)."""

    kind, binding, clauses, signature = KIND, "f", CLAUSES, Signature(accepts=1, target=_called)
    excludes, prepare, build = staticmethod(_layer), staticmethod(prepare), staticmethod(build)
    smoke, objects = staticmethod(smoke), staticmethod(objects)

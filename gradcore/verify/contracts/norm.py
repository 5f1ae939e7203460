"""Contract for a normalisation layer: Jacobian bound, ε floor, batch dependence, standardisation,
the RMS definition, deep stacks, shattered gradients.

Claims (catalogue NORM): 002 §归一化层与架构细节 "BN的归一化操作的雅可比矩阵，其谱范数
受到批内统计量（特别是标准差 σ）的约束"; the ε of 004 (3.3.16)-(3.3.18); 004 §3.3.4
"层归一化的关键优势是它不依赖于batch size"; 003 §4 and 000 list normalisation as a cure for
vanishing/exploding gradients. The subject is a factory ``width -> nn.Module`` acting on
``(batch, width)`` inputs; Jacobians are dense (``gradcore.jacobian``) on small sizes. The
Jacobian, ε and batch clauses measure through :mod:`gradcore.measure.normalisation` (the theorems'
recipes) with the technique passed as ``Given``; a non-finite output or Jacobian is an
explosion (∞), never a small number. Standardisation (NORM-01/02: 002 "使其具有零均值和单位方差",
004 Def. 3.3.10's biased σ²_B) is judged over each axis the layer centres, the RMS definition
(NORM-06/07: 004 Def. 3.3.13) on a layer that centres nowhere; a probe batch with offset rows and
columns decides which applies, and the other clause says "does not apply" (neither a pass nor a
failure), so both gate. The shattering clause (LIT-13) runs :mod:`gradcore.measure.shattering`'s grid
net with the layer in BN's place, its batch statistics held fixed there (``held_fixed``).
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ...errors import CheckError, NotApplicable
from ...measure import Given
from ...measure import normalisation as M
from ...measure import shattering
from ._stack import SEEDS, banded_transfer, sequential, undecided_note
from ..verdicts import within
from .base import Clause, Outcome, Settings, error_line, probe
from .contract import Contract, Signature

KIND = "norm"
WIDTH, BATCH = 16, 8
TRANSFER_BAND = (0.9, 1.1)
CENTRED_TOL = 0.05      # |mean| / RMS on the probe below which a layer is taken to centre over an axis
STANDARD_TOL = 1e-3     # NORM-02's tolerance on |mean| and |Var − 1|
RMS_TOL = 1e-4          # NORM-06's relative tolerance in float32


@dataclass(frozen=True)
class NormSubject:
    name: str
    make: Callable[..., nn.Module]   # (width, dtype=float64) -> fresh module in training mode on device
    setup: str                         # Python lines binding ``make`` (for snippets)
    obj: Any = None                    # the object itself (a factory, module class or instance): what recipes get


def _factory(obj: Any, settings: Settings) -> Callable[[int], nn.Module]:
    if isinstance(obj, nn.Module):
        def fixed(width: int) -> nn.Module:
            return obj
        return _placed(fixed, settings)
    if not callable(obj):
        raise CheckError(f"{type(obj).__name__} object is not callable")
    return _placed(obj, settings)


def _placed(make: Callable[[int], Any], settings: Settings) -> Callable[..., nn.Module]:
    def build(width: int, dtype: torch.dtype = torch.float64) -> nn.Module:
        m = make(width)
        if not isinstance(m, nn.Module):
            if callable(m):
                return m    # a plain function of the batch is accepted too
            raise CheckError(f"factory returned {type(m).__name__}, expected an nn.Module")
        return m.to(device=settings.device, dtype=dtype).train()
    return build


def smoke(make: Callable[[int], nn.Module], settings: Settings) -> torch.Tensor:
    """One-line CheckError unless the layer maps (batch, width) to a finite tensor of that shape."""
    x = settings.randn(BATCH, WIDTH, offset=7) * 3 + 1
    return probe(lambda: make(WIDTH)(x), what="layer", on=f"a random ({BATCH}, {WIDTH}) input",
                 shape=tuple(x.shape))


def normalises(y: torch.Tensor) -> bool:
    """Unit scale over the feature or the batch dimension (how kind inference spots a norm)."""
    for dim in (0, 1):
        rms = y.pow(2).mean(dim).sqrt()
        std = y.std(dim, unbiased=False)
        if bool(((rms - 1).abs() < 0.05).all()) or bool(((std - 1).abs() < 0.05).all()):
            return True
    return False


def prepare(obj: Any, settings: Settings) -> Callable[..., nn.Module]:
    """The layer's factory ``(width, dtype) -> module`` (a module instance is used as it is)."""
    if inspect.isclass(obj) and not issubclass(obj, nn.Module):
        raise CheckError(f"{obj.__name__} is a class but not an nn.Module")
    return _factory(obj, settings)


def recognises(make: Any, y: torch.Tensor, settings: Settings) -> str | None:
    """Inference: a norm's smoke-test output has unit scale over the features or the batch."""
    return None if normalises(y) else "its output is not normalised over the features or the batch"


def build(make: Callable[..., nn.Module], obj: Any, name: str, setup: str, settings: Settings) -> NormSubject:
    return NormSubject(name, make, setup, obj)


def _given(s: NormSubject) -> Given:
    """The user's object as a recipe argument: its reproduction binds ``make`` with the subject's setup."""
    return Given(s.obj, "make", s.setup)


def jacobian_bound(s: NormSubject, settings: Settings) -> Outcome:
    """NORM-03: sup over inputs of ‖∂y/∂x‖₂·σ_min, searched (a lower bound on the sup)."""
    worst = M.norm_jacobian_sigma(make=_given(s), width=WIDTH, batch=BATCH, seeds=settings.seeds,
                                  seed=settings.seed, profile=settings.profile, device=settings.device)
    holds = worst.value <= 1.0 + 1e-6          # a non-finite Jacobian is ∞: violated, never 0
    cex = None if holds else {"sup ‖J‖₂·σ_min found": worst.value, "input": worst.witness,
                              "snippet": worst.reproduction}
    return Outcome(holds, {"sup ‖J‖₂·σ_min found by search": worst, "found by": worst.witness,
                           "bound": "search (lower bound on the sup)"}, cex)


CONSTANTS = (0.0, 0.5, -3.0, 1e3)   # constant batches (zero variance) the layer must map to finite values


def epsilon_floor(s: NormSubject, settings: Settings) -> Outcome:
    """Measured in float32, the dtype layers train in (an ε tied to the dtype, like
    ``nn.RMSNorm``'s default ``finfo.eps``, only floors the variance in that dtype). The gain's
    growth is the searched sup of ‖J‖₂ over spreads 1e-4 … 1e-8 (every half decade, several
    patterns and offsets, then a search) over the gain at spread 1e-4: an ε that vanishes for
    some band of input scales shows there, where two fixed scales could miss it (issue 24)."""
    j4, j6 = (M.norm_jacobian_norm(make=_given(s), scale=scale, width=WIDTH, batch=BATCH, seed=settings.seed + 200,
                                   dtype="float32", device=settings.device) for scale in (1e-4, 1e-6))
    sup = M.norm_small_spread_gain(make=_given(s), width=WIDTH, seed=settings.seed + 200, profile=settings.profile, device=settings.device)
    finite = {c: M.norm_finite_on_constant(make=_given(s), value=c, width=WIDTH, batch=BATCH, dtype="float32",
                                           device=settings.device) for c in CONSTANTS}
    broken = [c for c, m in finite.items() if not m.value]
    growth = _ratio(sup.value, j4.value)
    # two_scale (the gain's growth between the fixed scales 1e-4 and 1e-6) and the 1e-6 gain stay floats:
    # tests compare them with pytest.approx, which a Measurement does not support yet.
    constants = {"growth sup(1e-4 … 1e-8) / 1e-4 found by search": growth,
                 "sup ‖J‖₂ over spreads 1e-4 … 1e-8 found by search": sup,
                 "growth 1e-4 → 1e-6": _ratio(j6.value, j4.value), "‖J‖₂ at input scale 1e-4": j4,
                 "‖J‖₂ at input scale 1e-6": j6.value, "constant input finite": not broken,
                 "constant inputs": ", ".join(f"{c:g}" for c in CONSTANTS), "dtype": "float32",
                 "bound": "search (lower bound on the sup)"}
    holds = not broken and growth <= 2.0
    if holds:
        return Outcome(True, constants, None)
    if broken:
        cex = {"input": f"constant {broken[0]:g}, shape ({BATCH}, {WIDTH})", "output finite": False,
               "snippet": finite[broken[0]].reproduction}
    else:
        x = sup.witness["example"]
        cex = {"input": x, "found by": sup.witness["source"], "‖J‖₂ growth": growth,
               "snippet": M.norm_jacobian_at(make=_given(s), x=x, device=settings.device).reproduction}
    return Outcome(False, constants, cex)


def _ratio(num: float, den: float) -> float:
    """num / den; ∞ when either gain is not finite (no floor), never a ratio of 0 or NaN."""
    return num / den if 0 < den < math.inf and num < math.inf else math.inf


def batch_independence(s: NormSubject, settings: Settings) -> Outcome:
    gap = M.batch_dependence(make=_given(s), width=WIDTH, sizes=(2, 8, 64), seed=settings.seed + 300,
                             device=settings.device)
    holds = gap.value <= 1e-9                  # non-finite outputs give ∞: dependent, not independent
    cex = None if holds else {"sample": "row 0 of a N(0,1) batch", "batch sizes": [2, 8, 64],
                              "max |Δ output|": gap.value, "snippet": gap.reproduction}
    return Outcome(holds, {"max |Δ output| of one sample, batch 2/8 vs 64": gap}, cex)


def _probe_batch(settings: Settings) -> torch.Tensor:
    """A batch whose samples and features have different means (offsets ±2 across rows and columns),
    so a layer's output is centred over an axis only if the layer centres it."""
    ramp = torch.linspace(-2.0, 2.0, BATCH, dtype=torch.float64).view(-1, 1)
    cols = torch.linspace(-2.0, 2.0, WIDTH, dtype=torch.float64).view(1, -1)
    return settings.randn(BATCH, WIDTH, offset=11) + (ramp + cols + 1).to(settings.device)


def _centring(s: NormSubject, settings: Settings) -> tuple[list[int], str]:
    """The axes the layer centres over on the probe batch, and the fact the decision rests on."""
    ratios = M.centred_axes(s.obj, _probe_batch(settings), tol=CENTRED_TOL)
    fact = ", ".join(f"{M.AXES[a]} {r:.3g}" for a, r in ratios.items())
    return [a for a, r in ratios.items() if r <= CENTRED_TOL], f"max |mean| / RMS of the output over {fact}"


def standardises(s: NormSubject, settings: Settings) -> Outcome:
    """NORM-02 (mean 0, biased variance 1 within 1e-3 for spreads ≥ 0.1) and NORM-01 (the biased
    estimator: an unbiased one leaves (n − 1)/n), over each axis the layer centres."""
    axes, fact = _centring(s, settings)
    if not axes:
        raise NotApplicable(f"the layer centres its output over neither the batch nor the "
                            f"features ({fact} on a probe batch with offset rows and columns), so it is "
                            f"not a standardising norm (an RMS-type layer is checked by rms-definition)")
    constants: dict[str, Any] = {"centred on the probe": fact}
    cex = None
    for axis in axes:
        worst = M.norm_standardisation(make=_given(s), axis=axis, width=WIDTH, seeds=settings.seeds,
                                       seed=settings.seed, profile=settings.profile, device=settings.device)
        constants[f"sup max(|mean|, |Var − 1|) over {M.AXES[axis]} found by search"] = worst
        if worst.value > STANDARD_TOL and cex is None:
            cex = _moments_counterexample(s, worst, axis)
    constants["bound"] = "search (lower bound on the sup)"
    return Outcome(cex is None, constants, cex)


def _moments_counterexample(s: NormSubject, worst: Any, axis: int) -> dict[str, Any]:
    """The witness batch with its moments: the biased and the unbiased variance gap say which
    estimator the layer divides by (NORM-01)."""
    x = worst.witness["example"]
    point = {m: M.norm_output_moments(make=_given(s), x=x, axis=axis, moment=m)
             for m in ("abs_mean", "variance_gap", "unbiased_variance_gap")}
    return {"input": x, "found by": worst.witness["source"], "axis": M.AXES[axis],
            "|mean|": point["abs_mean"].value, "|biased Var − 1|": point["variance_gap"].value,
            "|unbiased Var − 1|": point["unbiased_variance_gap"].value,
            "snippet": point["variance_gap"].reproduction}


def rms_definition(s: NormSubject, settings: Settings) -> Outcome:
    """NORM-06 (layer(h) = h/RMS(h)⊙γ within 1e-4 relative, float32, RMS(h) ≥ 0.1) and NORM-07 (on
    zero-mean h it equals LayerNorm with the same γ, β = 0) for a layer that does not centre."""
    axes, fact = _centring(s, settings)
    if axes:
        raise NotApplicable(f"the layer centres its output over "
                            f"{' and '.join(M.AXES[a] for a in axes)} ({fact}), so it is not an RMS-type "
                            f"layer (a standardising norm is checked by standardises)")
    common = dict(make=_given(s), width=WIDTH, seeds=settings.seeds, seed=settings.seed, profile=settings.profile,
                  device=settings.device)
    rms, ln = (M.norm_rms_definition(reference=r, **common) for r in ("rms", "layer_norm"))
    constants: dict[str, Any] = {"sup |layer(h) − h/RMS(h)⊙γ| / max|·| found by search": rms,
                                 "sup |layer(h) − LN(h)| / max|·|, zero-mean h, found by search": ln,
                                 "γ": "the layer's output on all-ones rows (RMS 1)", "dtype": "float32",
                                 "centred on the probe": fact, "bound": "search (lower bound on the sup)"}
    worst = max((rms, ln), key=lambda m: m.value)
    holds = worst.value <= RMS_TOL
    cex = None if holds else {"h": worst.witness["example"], "found by": worst.witness["source"],
                              "relative gap": worst.value, "snippet": M.norm_rms_gap(
                                  make=_given(s), h=worst.witness["example"],
                                  reference="rms" if worst is rms else "layer_norm").reproduction}
    return Outcome(holds, constants, cex)


def stack_width(s: NormSubject, want: int, settings: Settings) -> tuple[int, str]:
    """The width to build the stack at: ``want``, or the subject's checked WIDTH when the layer
    fails at ``want`` (a layer built for one width, e.g. ``GroupNorm(4, 16)`` whatever the width
    asked for), with a note saying so. Tried once, on one batch."""
    x = settings.randn(4, want, offset=9)
    try:
        s.make(want)(x)
        return want, ""
    except Exception as e:
        return WIDTH, (f"measured at width {WIDTH}: the layer fails at width {want} ({error_line(e)}), "
                       f"so it is taken to accept only the width it was checked at")


def deep_stack(s: NormSubject, settings: Settings) -> Outcome:
    depth, batch = 24 * settings.scale, 32
    width, width_note = stack_width(s, 32 * settings.scale, settings)
    # Xavier × 2 on square weights is N(0, 4/n): twice the He variance, so without a norm it explodes.
    stack = dict(activation="relu", init="xavier_normal", gains=(2.0,), width=width, depth=depth, batch=batch,
                 seed=settings.seed, device=settings.device)
    normed = banded_transfer(TRANSFER_BAND, norm=_given(s), **stack)
    plain = banded_transfer(TRANSFER_BAND, norm=None, **stack)
    holds = within(normed.interval, *TRANSFER_BAND)
    constants = {"lambda with norm": normed,
                 "lambda 95% CI": f"[{normed.interval[0]:.4f}, {normed.interval[1]:.4f}]",
                 "lambda without norm": plain, "depth": depth, "width": width, "seeds": normed.sizes["seeds"],
                 "seeds cap": SEEDS[-1],
                 "weights": "N(0, 4/n) (2× He)"}
    cex = None if holds is not False else {
        "stack": f"{depth} × (Linear({width},{width}) with N(0,4/n) weights → norm → ReLU), batch {batch}",
        "lambda": normed.value, "witness": normed.witness, "snippet": normed.reproduction}
    note = normed.witness or ("" if holds is not None else undecided_note(normed, f"the band {list(TRANSFER_BAND)}"))
    return Outcome(holds, constants, cex, note="; ".join(n for n in (width_note, note) if n))


SHATTER_DEPTHS = (1, 2, 4, 8)
SHATTER_SEEDS = (8, 24)     # nets per estimate: 8 first, 24 when 8 leave the decision open
SHATTER_RATE = 0.005        # per block: ρ₁ moving less than 0.04 over depths 1–8 is taken as no decay


def _beyond(m: Any, sign: int) -> bool | None:
    """Whether the interval of ``sign`` × m lies above SHATTER_RATE (False: below it; None: straddles it)."""
    lo, hi = sorted(sign * b for b in m.interval)
    return True if lo > SHATTER_RATE else False if hi < SHATTER_RATE else None


def shattering_decay(s: NormSubject, settings: Settings) -> Outcome:
    """LIT-13 with the user's norm in BN's place: ρ₁ of df/dx over a grid falls with depth in the
    feedforward net, more slowly with identity skips (the theorem's recipes, smaller sizes)."""
    width, width_note = stack_width(s, 64 * settings.scale, settings)
    grid = dict(depths=SHATTER_DEPTHS, log_rho=False, make=_given(s), width=width, points=128 * settings.scale)
    slope = sequential(lambda n: shattering.gradient_correlation_slope(architecture="feedforward", seeds=n, **grid),
                       lambda m: _beyond(m, -1), SHATTER_SEEDS)
    del grid["log_rho"]
    gap = sequential(lambda n: shattering.skip_slope_gap(seeds=n, **grid), lambda m: _beyond(m, 1), SHATTER_SEEDS)
    verdicts = (_beyond(slope, -1), _beyond(gap, 1))
    holds = False if False in verdicts else None if None in verdicts else True
    constants = {"per-block slope of ρ₁, feedforward": slope, "slope with skips − feedforward slope": gap,
                 "depths": list(SHATTER_DEPTHS), "width": width, "grid points": grid["points"],
                 "nets (slope, gap)": [slope.n, gap.n]}
    cex = None if holds is not False else {
        "feedforward slope": slope.value, "skip gap": gap.value,
        "snippet": (slope if verdicts[0] is False else gap).reproduction}
    undecided = [f"{name} could not be decided: its 95% interval [{m.interval[0]:.4f}, {m.interval[1]:.4f}] "
                 f"still straddles {sign}{SHATTER_RATE:g} with {m.n} nets (cap {SHATTER_SEEDS[-1]})"
                 for name, sign, m, d in zip(("the slope", "the gap"), "−+", (slope, gap), verdicts) if d is None]
    held = f"batch statistics held fixed: {slope.sizes['statistics']}"
    note = "; ".join(n for n in (held, width_note, *undecided) if n)
    return Outcome(holds, constants, cex, note=note)


CLAUSES = (
    Clause("jacobian-bound", ("NORM-03",),
           "‖∂y/∂x‖₂ ≤ 1/σ, σ the smallest per-sample or per-feature std of the input", jacobian_bound),
    Clause("epsilon-floor", ("NORM-03",),
           "the ε keeps the layer well-defined as the input variance → 0: finite on constant inputs, and "
           "‖J‖₂ stops growing (its sup over spreads 1e-4 … 1e-8, searched, ≤ 2 × its value at 1e-4)", epsilon_floor),
    Clause("batch-independence", ("NORM-05",),
           "one sample's output does not depend on the rest of the batch", batch_independence, gate=False),
    Clause("standardises", ("NORM-01", "NORM-02"),
           f"over each axis the layer centres (batch or features), the output as built has mean 0 and biased "
           f"variance 1 within {STANDARD_TOL:g} for every input whose spread there is ≥ {M.MIN_SPREAD:g} "
           f"(an unbiased 1/(n−1) variance leaves (n−1)/n); does not apply to a layer that centres nowhere",
           standardises),
    Clause("rms-definition", ("NORM-06", "NORM-07"),
           f"a layer that does not centre equals h/RMS(h)⊙γ (γ its output on all-ones rows) within {RMS_TOL:g} "
           f"relative for RMS(h) ≥ {M.MIN_SPREAD:g} (float32), and LayerNorm with that γ, β = 0 on zero-mean h; "
           f"does not apply to a centring layer", rms_definition),
    Clause("deep-stack", ("NORM-04",),
           f"in a deep Linear→norm→ReLU stack with oversized weights the per-layer gradient factor λ "
           f"lies in {list(TRANSFER_BAND)}", deep_stack),
    Clause("shattering", ("LIT-13",),
           f"LIT-13 with the layer in BN's place in BN → ReLU → Linear blocks (He init, float64; a scalar "
           f"input on 128·s points in [−2, 2], width 64·s, depths {', '.join(map(str, SHATTER_DEPTHS))}, s = 1 "
           f"under ci: the theorem's 256 points, width 200, depths 1–50 cut for cost; {SHATTER_SEEDS[0]} nets, "
           f"{SHATTER_SEEDS[-1]} when undecided): with the batch statistics held fixed (a per-sample layer as "
           f"it is; a BatchNorm-like one by its running statistics set to the grid batch's, in eval mode), the "
           f"lag-1 autocorrelation ρ₁ of df/dx falls with depth in the feedforward net (per-block slope of "
           f"ρ₁ < −{SHATTER_RATE:g}; ρ₁ itself, not log ρ₁, as ρ₁ may reach 0) and identity skips slow that "
           f"fall (slope gap > {SHATTER_RATE:g}). Descriptive, not a gate: LIT-13 says how BN nets shatter, "
           f"and a norm that keeps gradients correlated prevents shattering rather than breaks anything. "
           f"Does not apply to a batch-coupled layer without running statistics",
           shattering_decay, gate=False),
)


def objects() -> dict[str, Any]:
    """gradcore.normalisation' factories (torch's BatchNorm1d, LayerNorm, RMSNorm) at their defaults."""
    from ... import normalisation as norms

    return {name: getattr(norms, name) for name in ("batch_norm", "layer_norm", "rms_norm")}


class NormContract(Contract):
    """A factory ``width -> nn.Module`` (an nn.Module class or instance is inferred as one)."""

    kind, binding, clauses, signature = KIND, "make", CLAUSES, Signature(module=True, accepts=1)
    prepare, smoke, build = staticmethod(prepare), staticmethod(smoke), staticmethod(build)
    recognises, objects = staticmethod(recognises), staticmethod(objects)

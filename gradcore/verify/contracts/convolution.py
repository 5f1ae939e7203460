"""Contract for a convolution: any module (or ``channels -> module`` factory) mapping N×C×H×W to N×C′×H′×W′.

Claims: CONV-01 and LIT-02 (Sedghi, Gupta & Long 2019: the per-frequency SVDs of a circular
convolution's transfer matrices are its exact singular values), CONV-02/03 (σ_max against a
He-initialised standard convolution), CONV-04 (gradient amplification through a ReLU stack),
STAB-05 (σ_max ≤ 1 at every layer keeps the product non-expansive). σ_max is bracketed: below by
Golub–Kahan–Lanczos on the layer itself (a Ritz value), above by a bound certified from the
layer's weights (:func:`gradcore.measure.conv.certified_upper_bound`: exact for circular stride-1
convolutions, a circular embedding for zero padding and strides). Spectra are taken in float64 in
eval mode, where the layer is one fixed operator; every recipe is in :mod:`gradcore.measure.conv`.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ...measure import Given, Measurement
from ...measure import conv as M
from ..verdicts import decide
from .base import Clause, Outcome, Settings, callable_or_fail, probe
from ...errors import CheckError
from .contract import Contract

KIND = "convolution"
CHANNELS, STACK_CHANNELS = 8, 16
RTOL = 1e-8          # Lanczos converged to a residual of 1e-10·σ² and FFTs in float64: far inside this
EXPLOSION = 2.0      # CONV-04's "more prone to explosion": ≥ 2× the standard stack's amplification


@dataclass(frozen=True)
class ConvSubject:
    name: str
    obj: Any              # a module, or a factory channels -> module
    setup: str            # Python lines binding ``make``
    channels: int         # input channels the spectral clauses use
    stackable: bool       # keeps N×16×8×8 (CONV-04's stack), else why not in ``why``
    why: str = ""
    measured: dict[str, Any] = field(default_factory=dict, compare=False)   # the σ bracket, taken once

    @property
    def given(self) -> Given:
        return Given(self.obj, "make", self.setup)


def _channels(obj: Any) -> int:
    if not isinstance(obj, nn.Module):
        return CHANNELS
    conv = next((m for m in obj.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise CheckError(f"cannot tell how many channels {type(obj).__name__} takes (it has no nn.Conv2d): "
                         "pass a factory channels -> module instead")
    return conv.in_channels


def _output(obj: Any, channels: int, side: int, settings: Settings) -> torch.Tensor:
    """The layer's output on a random (2, channels, side, side) input: a finite 4-D tensor, batch kept."""
    try:
        layer = M.build_layer(obj, channels, settings.seed, settings.device)
    except CheckError:
        raise
    except Exception as e:
        raise CheckError(f"factory make({channels}) failed: {type(e).__name__}: {e}") from None
    if not callable(layer):
        raise CheckError(f"factory returned {type(layer).__name__}, "
                         "expected a module mapping N×C×H×W to N×C′×H′×W′")
    return shaped_output(layer, settings.randn(2, channels, side, side, offset=9), "layer",
                         "must map N×C×H×W to N×C′×H′×W′;")


def shaped_output(layer: Any, x: torch.Tensor, what: str, must: str) -> torch.Tensor:
    """``layer(x)``: a finite tensor with as many dimensions as ``x`` and its batch, else one CheckError
    line naming ``what``, the input's shape and what it ``must`` do."""
    return probe(lambda: layer(x), what=what, on=f"a {tuple(x.shape)} input", must=must,
                 shape=(x.shape[0], *(None,) * (x.dim() - 1)))


def prepare(obj: Any, settings: Settings) -> ConvSubject:
    """The layer with the input channels its spectral clauses use (a module's first nn.Conv2d's)."""
    callable_or_fail(obj)
    if inspect.isclass(obj) and not issubclass(obj, nn.Module):
        raise CheckError(f"{obj.__name__} is a class but not an nn.Module")
    return ConvSubject("", obj, "", _channels(obj), True)


def smoke(s: ConvSubject, settings: Settings) -> torch.Tensor:
    """One-line CheckError unless the layer maps a (2, channels, 8, 8) input to a finite 4-D output."""
    return _output(s.obj, s.channels, 8, settings)


def excludes(obj: Any) -> str | None:
    """Inference: a class that is no nn.Conv2d is no convolution (a factory or module is built and asked)."""
    if inspect.isclass(obj) and not issubclass(obj, nn.Conv2d):
        return "it is a class but not an nn.Conv2d"
    return None


def recognises(s: ConvSubject, y: torch.Tensor, settings: Settings) -> str | None:
    """Inference: the module (or what the factory builds) holds an nn.Conv2d."""
    layer = s.obj if isinstance(s.obj, nn.Module) else M.build_layer(s.obj, CHANNELS, settings.seed, "cpu")
    if not isinstance(layer, nn.Module) or not any(isinstance(m, nn.Conv2d) for m in layer.modules()):
        return "it holds no nn.Conv2d"
    return None


def build(s: ConvSubject, obj: Any, name: str, setup: str, settings: Settings) -> ConvSubject:
    """The subject, with whether the layer keeps N×16×8×8 (CONV-04's stack) and why not."""
    stackable, why = True, ""
    try:
        y = _output(s.obj, STACK_CHANNELS, 8, settings)
        if tuple(y.shape[1:]) != (STACK_CHANNELS, 8, 8):
            stackable, why = False, f"it maps (2, 16, 8, 8) to {tuple(y.shape)}, so it cannot be stacked"
    except CheckError as e:
        stackable, why = False, str(e)
    return ConvSubject(name, s.obj, setup, s.channels, stackable, why)


def _bracket(s: ConvSubject, settings: Settings) -> tuple[Measurement, Measurement]:
    """σ_max from below (Lanczos on the layer) and above (certified), measured once per subject."""
    if "bracket" not in s.measured:
        s.measured["bracket"] = tuple(M.layer_sigma(make=s.given, bound=b, channels=s.channels, side=8 * settings.scale,
                                                    seed=settings.seed, device=settings.device)
                                      for b in ("lower", "upper"))
    return s.measured["bracket"]


def _sigma_constants(lower: Measurement, upper: Measurement) -> dict[str, Any]:
    return {"σ_max lower (Lanczos)": lower, "σ_max upper": upper, "upper from": upper.witness,
            "Lanczos": lower.witness}


def fourier_spectrum(s: ConvSubject, settings: Settings) -> Outcome:
    """CONV-01/LIT-02 on the user's layer: its operator's σ_max never exceeds what its weights give."""
    lower, upper = _bracket(s, settings)
    constants = _sigma_constants(lower, upper)
    if upper.value == float("inf"):
        return Outcome(None, constants, note="no certified upper bound: " + str(upper.witness).removeprefix("none "))
    holds = lower.value <= upper.value * (1 + RTOL)
    cex = None if holds else {"σ_max of the layer ≥": lower, "bound from its weights": upper,
                              "snippet": lower.reproduction}
    return Outcome(holds, constants, cex, note="" if holds else
                   "the layer's operator is larger than the convolution its weights define (its forward "
                   "is not that convolution)")


def rms_gain(s: ConvSubject, settings: Settings) -> Outcome:
    """CONV-03's RMS gain on the user's layer against its σ_max: violated above the certified bound, holds
    below it (or below the Lanczos value when nothing is certified)."""
    lower, upper = _bracket(s, settings)
    rms = M.layer_rms_gain(make=s.given, channels=s.channels, side=8 * settings.scale, seed=settings.seed,
                           device=settings.device)
    lo, hi = rms.interval
    # RMS ≤ σ_max for any operator: above the certified bound, that bound is not the layer's
    known = upper.value if upper.value < float("inf") else lower.value   # a σ_max bound or σ_max's lower end
    holds = False if lo > upper.value * (1 + RTOL) else True if hi <= known * (1 + RTOL) else None
    constants = {"RMS gain ‖J‖_F/√N": rms, "RMS gain 95% CI": f"[{lo:.4f}, {hi:.4f}]",
                 **_sigma_constants(lower, upper)}
    cex = None if holds is not False else {"RMS gain": rms, "certified σ_max": upper, "snippet": rms.reproduction}
    return Outcome(holds, constants, cex)


def non_expansive(s: ConvSubject, settings: Settings) -> Outcome:
    """STAB-05: σ_max ≤ 1, decided from the bracket (violated once Lanczos alone exceeds 1)."""
    lower, upper = _bracket(s, settings)
    holds = True if upper.value <= 1 + RTOL else False if lower.value > 1 + RTOL else None
    side = 8 * settings.scale
    cex = None if holds is not False else {
        "σ_max lower (Lanczos)": lower, "snippet": lower.reproduction,
        "input": f"(1, {s.channels}, {side}, {side}) — the Lanczos top singular vector"}
    return Outcome(holds, _sigma_constants(lower, upper), cex,
                   note="" if holds is not None else "the bracket straddles 1: no certified bound decides")


def stack_growth(s: ConvSubject, settings: Settings) -> Outcome:
    if not s.stackable:
        return Outcome(None, {}, note=f"not measured: {s.why}")
    ratio = M.user_amplification_ratio(make=s.given, blocks=8, seeds=2 * settings.seeds,
                                       device=settings.device)
    holds = decide("<", EXPLOSION, ratio.value, 0.0, ratio.interval)
    lo, hi = ratio.interval
    constants = {"amplification / standard conv's": ratio, "95% CI": f"[{lo:.4g}, {hi:.4g}]",
                 "per-block ratio": ratio.value ** (1 / 8) if ratio.value > 0 else 0.0}
    cex = None if holds is not False else {"blocks": 8, "channels": 16, "input": "4×16×8×8", "ratio": ratio,
                                           "snippet": ratio.reproduction}
    return Outcome(holds, constants, cex)


def versus_standard(s: ConvSubject, settings: Settings) -> Outcome:
    draws = 12 * settings.scale
    kw = dict(make=s.given, draws=draws, channels=s.channels, side=8, device=settings.device)
    share, median = M.user_larger_fraction(**kw), M.user_ratio_median(**kw)
    holds = decide("<", 0.5, share.value, 0.0, share.interval)
    cex = None if holds is not False else {"share above the standard conv": share.value,
                                            "median ratio": median.value, "snippet": share.reproduction}
    return Outcome(holds, {"share of draws σ_max(layer) > σ_max(standard)": share,
                           "median σ_max(layer)/σ_max(standard)": median, "draws": draws}, cex)


CLAUSES = (
    Clause("fourier-spectrum", ("CONV-01", "LIT-02"),
           "σ_max of the layer's Jacobian (Lanczos on the layer) never exceeds the bound its convolution weights "
           "certify (exact per-frequency SVDs for circular stride-1 convs)", fourier_spectrum),
    Clause("rms-gain", ("CONV-03",),
           "the layer's RMS gain ‖J‖_F/√N (Hutchinson probes) lies below its σ_max", rms_gain),
    Clause("non-expansive", ("STAB-05",),
           "σ_max(∂y/∂x) ≤ 1: the layer cannot amplify any gradient", non_expansive),
    Clause("stack-growth", ("CONV-04",),
           f"through 8 (layer → ReLU) blocks the input-gradient amplification is < {EXPLOSION:g}× that of "
           "He-initialised standard 3×3 convolutions", stack_growth),
    Clause("versus-standard", ("CONV-02", "CONV-03"),
           "σ_max is not usually above a He-initialised standard 3×3 conv's of the same channels (share of "
           "draws above it < 1/2; median ratio reported)", versus_standard, gate=False),
)


def objects() -> dict[str, Any]:
    """gradcore.conv's He-initialised circular convolutions, as ``channels -> module`` factories."""
    from ... import conv

    return {name: getattr(conv, f"{name}_conv") for name in conv.KINDS}


class ConvolutionContract(Contract):
    """A module holding an nn.Conv2d (class or instance), or a factory ``channels -> module``, N×C×H×W → 4-D."""

    kind, binding, clauses = KIND, "make", CLAUSES
    prepare, smoke, excludes = staticmethod(prepare), staticmethod(smoke), staticmethod(excludes)
    recognises, build, objects = staticmethod(recognises), staticmethod(build), staticmethod(objects)

"""Contract for a recurrent cell ``(input_size, hidden_size) -> cell``, ``cell(x, h) -> h'``.

Claims (catalogue RNN/GATE): 000 §主要“罪魁祸首” "如果这个矩阵的最大特征值大于1，梯度就会在
时间序列上指数级增长"; 003 §3.b "W 的最大奇异值大于1…以 λᵀ 的速度增长"; 004 Theorem 3.3.4;
002 §循环网络中的门控机制 "梯度几乎可以无衰减地向后传播" and 003 §4 门控机制. The per-step BPTT
rate is the recipe :func:`gradcore.measure.recurrent.cell_bptt_rate` (the one GATE-05 measures
torch's cells with); cells returning ``(h, c)`` (LSTM-like) are run on the concatenated state,
as ``gradcore.recurrent.cell_step`` does for ``nn.LSTMCell``. Appended: weight sharing (RNN-01,
:func:`gradcore.measure.recurrent.cell_tied_residual`), the ‖W_hh‖^t bound (RNN-07, LIT-07,
:func:`gradcore.measure.bptt.cell_weight_bound`) and explosion at a large ‖W_hh‖ (RNN-08,
:func:`gradcore.measure.recurrent.cell_gain_bptt_rate`); the last two read the cell's ``weight_hh``. For cells in torch's GRU layout (GATE-01..03, :mod:`gradcore.measure.gating`):
the forced-gate form (reset 1, constant update gate, no input: the documents' gated update, and with the
gate shut the Elman step) and the searched order of ‖J − I‖ in the leak 1 − z as the update-gate bias grows.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ...measure import Given, Measurement
from ...measure.recurrent import build_cell, cell_bptt_rate
from .base import Clause, Outcome, Settings, callable_or_fail
from ...errors import CheckError
from .contract import Contract, Signature

KIND = "recurrent"
INPUT, HIDDEN, STEPS = 8, 32, 40
START = 10          # the per-step rate is fitted from 10 steps back (past the first steps' transient)
UPPER, LOWER = 1.02, 0.9


@dataclass(frozen=True)
class RecurrentSubject:
    name: str
    make: Callable[[int, int], nn.Module]
    setup: str
    make_obj: Any = None    # the technique as given (a cell class, factory or module), bound as `make` in setup


def _factory(obj: Any, settings: Settings) -> Callable[[int, int], Any]:
    return lambda n_in, n_h: build_cell(obj, n_in, n_h, settings.device)


def _wants_pair(cell: Any) -> bool:
    return isinstance(cell, nn.LSTMCell)


def smoke(make: Callable[[int, int], Any], settings: Settings) -> int:
    try:
        cell = make(INPUT, HIDDEN)
        x = settings.randn(2, INPUT, offset=3)
        h = torch.zeros(2, HIDDEN, dtype=torch.float64, device=settings.device)
        out = cell(x, (h, h)) if _wants_pair(cell) else cell(x, h)
    except Exception as e:
        raise CheckError(f"cell failed on input (2, {INPUT}) and hidden (2, {HIDDEN}): "
                         f"{type(e).__name__}: {e}") from None
    parts = out if isinstance(out, tuple) else (out,)
    if not all(isinstance(p, torch.Tensor) and p.shape == (2, HIDDEN) for p in parts):
        raise CheckError(f"cell must return a (batch, {HIDDEN}) hidden state (or a tuple of them)")
    if not all(bool(torch.isfinite(p).all()) for p in parts):
        raise CheckError("cell returned non-finite values on a random input")
    return HIDDEN * len(parts)


def prepare(obj: Any, settings: Settings) -> Callable[[int, int], Any]:
    callable_or_fail(obj)
    return _factory(obj, settings)


def build(make: Callable[[int, int], Any], obj: Any, name: str, setup: str, settings: Settings) -> RecurrentSubject:
    return RecurrentSubject(name, make, setup, obj)


# A Given is written into a reproduction by its bare name, and a recipe called with a bare object
# cannot write its own reproduction: rebinding `make` as a Given lets the reproduction run.
_REBIND = "from gradcore.measure import Given\nmake = Given(make, 'make')"


def _rate(s: RecurrentSubject, settings: Settings) -> Measurement:
    """The BPTT per-step rate recipe (the one GATE-05 uses) on the subject, one seed per profile seed."""
    return cell_bptt_rate(cell=Given(s.make_obj, "make", f"{s.setup}\n{_REBIND}"), input_size=INPUT,
                          hidden=HIDDEN, T=STEPS, batch=1,
                          seeds=tuple(settings.seed + 50 + k for k in range(settings.seeds)),
                          state_std=0.1, start=START, device=settings.device)


def _outcome(m: Measurement, holds: bool | None) -> Outcome:
    lo, hi = m.interval or (m.value, m.value)
    cex = None if holds is not False else {"steps": STEPS, "hidden": HIDDEN, "per-step factor": m.value,
                                           "snippet": m.reproduction}
    return Outcome(holds, {"per-step factor": m, "95% CI": f"[{lo:.4f}, {hi:.4f}]",
                           f"‖g_0‖/‖g_{STEPS}‖": m.value ** STEPS}, cex)


def no_explosion(s: RecurrentSubject, settings: Settings) -> Outcome:
    m = _rate(s, settings)
    lo, hi = m.interval or (m.value, m.value)
    return _outcome(m, True if hi <= UPPER else (False if lo > UPPER else None))


def long_memory(s: RecurrentSubject, settings: Settings) -> Outcome:
    m = _rate(s, settings)
    lo, hi = m.interval or (m.value, m.value)
    return _outcome(m, True if lo >= LOWER else (False if hi < LOWER else None))


CLAUSES = (
    Clause("bptt-no-explosion", ("RNN-05", "RNN-06"),
           f"at its default init BPTT gradients do not grow: per-step factor ≤ {UPPER}", no_explosion),
    Clause("bptt-long-memory", ("GATE-04", "GATE-05"),
           f"at its default init BPTT gradients survive {STEPS} steps: per-step factor ≥ {LOWER}", long_memory),
)


# ---------------------------------------------------------------- appended clauses (RNN-02..04)

PEAK = 2.0          # transient BPTT amplification above which a decaying cell still blows gradients up first


def _cell(s: RecurrentSubject) -> Given:
    return Given(s.make_obj, "make", f"{s.setup}\n{_REBIND}")


def bptt_transient(s: RecurrentSubject, settings: Settings) -> Outcome:
    """RNN-04's non-normal transient: the BPTT norm's largest rise over its terminal value (search bound)."""
    from ...measure.recurrent import cell_bptt_peak

    peak = cell_bptt_peak(cell=_cell(s), input_size=INPUT, hidden=HIDDEN, T=STEPS, batch=1,
                          seeds=tuple(settings.seed + 50 + k for k in range(settings.seeds)), state_std=0.1,
                          device=settings.device)
    holds = peak.value <= PEAK
    cex = None if holds else {"steps": STEPS, "max_k ‖∂L/∂s_(T−k)‖/‖∂L/∂s_T‖": peak.value, "at": peak.witness,
                              "snippet": peak.reproduction}
    return Outcome(holds, {"max_k ‖∂L/∂s_(T−k)‖/‖∂L/∂s_T‖": peak}, cex)


def step_jacobian_spectrum(s: RecurrentSubject, settings: Settings) -> Outcome:
    """RNN-02/03: σ_max and ρ of the step Jacobian at a typical state, beside the BPTT factor they bracket."""
    from ...measure.recurrent import cell_step_spectrum

    top, rho = (cell_step_spectrum(cell=_cell(s), quantity=q, input_size=INPUT, hidden=HIDDEN, seed=settings.seed,
                                   device=settings.device) for q in ("sigma_max", "rho"))
    return Outcome(True, {"σ_max(∂s_t/∂s_(t−1))": top, "ρ(∂s_t/∂s_(t−1))": rho, "per-step factor": _rate(s, settings)})


CLAUSES = CLAUSES + (
    Clause("bptt-transient", ("RNN-04",),
           f"BPTT gradients do not rise on their way back: max_k ‖∂L/∂s_(T−k)‖/‖∂L/∂s_T‖ ≤ {PEAK} over "
           f"{STEPS} steps (a non-normal step Jacobian amplifies transiently even with ρ < 1)", bptt_transient),
    Clause("step-jacobian-spectrum", ("RNN-02", "RNN-03"),
           "σ_max and ρ of the step Jacobian ∂s_t/∂s_(t−1) at a typical state, beside the BPTT per-step factor "
           "(σ_max > 1 does not make gradients grow)", step_jacobian_spectrum, gate=False),
)

# ---------------------------------------------------------------- appended clauses (RNN-01, -07, -08, LIT-07)

TIED_STEPS = 8            # RNN-01's theorem unrolls up to T = 8
BOUND_STEPS = 6           # RNN-07's theorem: T = 6
CONTRACTIVE = 0.9         # LIT-07: ‖W‖₂ = 0.9/γ with γ = 1 (tanh, ReLU)
LARGE_NORM = 12.0         # RNN-08's largest gain g = 6 has ‖W‖₂ ≈ 2g
GAIN_SEEDS = (6, 12)      # cells per rate: 6 first (3 leave LSTMCell undecided), 12 when 6 do
ROUND = 1e-9              # rounding allowance of a ratio of norms of 6-step Jacobian products (float64)


def weight_sharing(s: RecurrentSubject, settings: Settings) -> Outcome:
    """RNN-01: the unrolled cell is the deep net of T tied copies: ∂L/∂θ = Σ_t ∂L/∂θ_t."""
    from ...measure.recurrent import cell_tied_residual

    m = cell_tied_residual(cell=_cell(s), input_size=INPUT, hidden=HIDDEN, T=TIED_STEPS, batch=2,
                           seed=settings.seed + 50, device=settings.device)
    if m.sizes["parameters"] == 0:
        return Outcome(True, {"max |∂L/∂θ − Σ_t ∂L/∂θ_t| / max |∂L/∂θ|": m},
                       note="vacuous: the cell has no parameters, so nothing is shared across its steps")
    holds = m.value <= m.bound
    cex = None if holds else {"steps": TIED_STEPS, "relative gap": m.value, "snippet": m.reproduction,
                              "why": "the cell is not the same function of (θ, x, h) at every step "
                                     "(state kept between calls, or parameters changed while it runs)"}
    return Outcome(holds, {"max |∂L/∂θ − Σ_t ∂L/∂θ_t| / max |∂L/∂θ|": m}, cex)


def weight_norm_bound(s: RecurrentSubject, settings: Settings) -> Outcome:
    """RNN-07 at the default init, LIT-07 with ‖W_hh‖₂ = 0.9: ‖∂s_t/∂s_0‖₂ ≤ ‖W_hh‖₂^t (search bounds)."""
    from ...measure.bptt import cell_weight_bound

    found = {norm: cell_weight_bound(cell=_cell(s), weight_norm=norm, input_size=INPUT, hidden=HIDDEN,
                                     steps=BOUND_STEPS, seed=settings.seed + 50, profile=settings.profile,
                                     device=settings.device) for norm in (None, CONTRACTIVE)}
    names = {None: "max_t ‖∂s_t/∂s_0‖/‖W_hh‖^t, default init",
             CONTRACTIVE: f"max_t ‖∂s_t/∂s_0‖/{CONTRACTIVE}^t, ‖W_hh‖₂ = {CONTRACTIVE}"}
    broken = [norm for norm, m in found.items() if not m.value <= 1 + ROUND]
    constants = {names[k]: m for k, m in found.items()} | {"‖W_hh‖₂ at default init": found[None].sizes["‖W‖₂"]}
    cex = None if not broken else {"‖W_hh‖₂": found[broken[0]].sizes["‖W‖₂"], "steps": BOUND_STEPS,
                                   "ratio": found[broken[0]].value, "trajectory": found[broken[0]].witness,
                                   "snippet": found[broken[0]].reproduction}
    return Outcome(not broken, constants, cex, note="found by search (a lower bound on the sup)")


def large_weight_explodes(s: RecurrentSubject, settings: Settings) -> Outcome:
    """RNN-08: with weight_hh rescaled to ‖W_hh‖₂ = 12, BPTT gradients grow (per-step factor > 1)."""
    from ...measure.recurrent import cell_gain_bptt_rate
    from ._stack import sequential

    def decide(m: Measurement) -> bool | None:
        lo, hi = m.interval or (m.value, m.value)
        return True if lo > 1 else (False if hi < 1 else None)

    m = sequential(lambda n: cell_gain_bptt_rate(cell=_cell(s), recurrent_norm=LARGE_NORM, input_size=INPUT,
                                                 hidden=HIDDEN, T=STEPS, batch=16,
                                                 seeds=tuple(settings.seed + 50 + k for k in range(n)),
                                                 start=START, device=settings.device),
                   decide, GAIN_SEEDS)
    holds = decide(m)
    lo, hi = m.interval or (m.value, m.value)
    cex = None if holds is not False else {"‖W_hh‖₂": LARGE_NORM, "per-step factor": m.value, "snippet": m.reproduction}
    return Outcome(holds, {f"per-step factor at ‖W_hh‖₂ = {LARGE_NORM:g}": m, "95% CI": f"[{lo:.4f}, {hi:.4f}]"},
                   cex, note="" if holds is not None else f"could not be decided: the 95% interval [{lo:.4f}, "
                                                          f"{hi:.4f}] still straddles 1 with {GAIN_SEEDS[-1]} cells")


CLAUSES = CLAUSES + (
    Clause("weight-sharing", ("RNN-01",),
           f"the cell unrolled {TIED_STEPS} steps is a weight-shared deep net: autograd's ∂L/∂θ equals the sum "
           "of the per-layer gradients of the deep net of untied copies θ_1..θ_T (relative gap ≤ 1e-10)",
           weight_sharing),
    Clause("weight-norm-bound", ("RNN-07", "LIT-07"),
           f"a cell with a square recurrent weight W_hh (γ = sup|σ'| = 1) obeys ‖∂s_t/∂s_0‖₂ ≤ ‖W_hh‖₂^t for "
           f"t ≤ {BOUND_STEPS} on every searched trajectory, at its default init and with ‖W_hh‖₂ = {CONTRACTIVE} "
           "(contractive: gradients vanish at least as η^t); does not apply to a cell without one",
           weight_norm_bound),
    Clause("large-weight-explodes", ("RNN-08",),
           f"with its recurrent weight rescaled to ‖W_hh‖₂ = {LARGE_NORM:g}, BPTT gradients grow through the "
           "cell's nonlinearity: per-step factor > 1", large_weight_explodes, gate=False),
)


# ---------------------------------------------------------------- appended clauses (GATE-01..03): GRU-layout cells

FORCED_Z = 0.7            # GATE-01's constant update gate
FORCED_STEPS = 5          # GATE-01's theorem runs 5 steps
LEAK_BIASES = (12.0, 20.0)  # update-gate input biases: the leak 1 − σ(b) shrinks by e^−8 between them
LEAST_ORDER = 0.9         # ‖J − I‖ ∝ (1 − z)^p: p = 1 − O(1 − z) for a GRU, ≈ 0 for a gate that does not close


def _forced(s: RecurrentSubject, settings: Settings, z: float) -> Measurement:
    from ...measure.gating import forced_gru_gap

    return forced_gru_gap(cell=_cell(s), n=HIDDEN, m=INPUT, z=z, steps=FORCED_STEPS, seed=settings.seed + 50,
                          jacobian=z == 0, device=settings.device)


def _rounding_outcome(name: str, m: Measurement, extra: dict[str, Any] | None = None) -> Outcome:
    holds = m.value <= m.bound
    cex = None if holds else {"steps": FORCED_STEPS, "hidden": HIDDEN, name: m.value, "snippet": m.reproduction}
    return Outcome(holds, {name: m} | (extra or {}), cex)


def gated_update_form(s: RecurrentSubject, settings: Settings) -> Outcome:
    """GATE-01: with r ≡ 1, no input and a constant z, the cell is z ⊙ h + (1 − z) ⊙ tanh(W h)."""
    from ...measure.gating import gru_doc_jacobian_error

    outside = gru_doc_jacobian_error(cell=_cell(s), n=HIDDEN, m=INPUT,
                                     seeds=tuple(settings.seed + 50 + k for k in range(settings.seeds)),
                                     device=settings.device)
    return _rounding_outcome(f"max |cell − gated update| after {FORCED_STEPS} steps, z = {FORCED_Z}",
                             _forced(s, settings, FORCED_Z),
                             {"‖J − J_doc‖/‖J‖ at default init (the form's omitted gate terms)": outside})


def shut_gate_is_elman(s: RecurrentSubject, settings: Settings) -> Outcome:
    """GATE-03: with the update gate shut (and r ≡ 1, no input) the cell is the Elman step tanh(W h)."""
    return _rounding_outcome("max |cell − tanh(W h)| and of their Jacobians, z = 0", _forced(s, settings, 0.0))


def update_gate_identity(s: RecurrentSubject, settings: Settings) -> Outcome:
    """GATE-02: as the update-gate bias grows, ‖∂h'/∂h − I‖ → 0 linearly in 1 − z (searched least order)."""
    from ...measure.gating import gate_leak_order

    m = gate_leak_order(cell=_cell(s), n=HIDDEN, m=INPUT, biases=LEAK_BIASES, seed=settings.seed + 50,
                        profile=settings.profile, device=settings.device)
    holds = m.value >= LEAST_ORDER
    cex = None if holds else {"update-gate biases": list(LEAK_BIASES), "order": m.value, "at": m.witness,
                              "why": "‖J − I‖ does not shrink with 1 − z: saturating the update gate does not "
                                     "make the step the identity", "snippet": m.reproduction}
    return Outcome(holds, {"least order p of ‖J − I‖ in 1 − z": m}, cex,
                   note="found by search (an upper bound on the inf)")


_GRU = ("a cell keeping torch's GRU layout (weight_ih, weight_hh, bias_ih, bias_hh of 3·hidden rows: reset, update, "
        "candidate)")
_ELSE = " does not apply to another cell"
CLAUSES = CLAUSES + (
    Clause("gated-update-form", ("GATE-01",),
           f"with its reset gate forced to 1, no input and a constant update gate z = {FORCED_Z}, {_GRU} "
           f"is h' = z ⊙ h + (1 − z) ⊙ tanh(W h) (W: its candidate rows of weight_hh) over {FORCED_STEPS} steps "
           f"(max difference ≤ 1e-12, float64);{_ELSE}", gated_update_form),
    Clause("shut-gate-is-elman", ("GATE-03",),
           f"with its update gate shut (z = σ(−40)), reset gate 1 and no input, {_GRU} reduces to "
           f"the simple RNN step tanh(W h), and so does its step Jacobian (max difference ≤ 1e-12);"
           f"{_ELSE}", shut_gate_is_elman),
    Clause("update-gate-identity", ("GATE-02",),
           f"as the update-gate bias of {_GRU} grows, ‖∂h'/∂h − I‖₂ → 0 linearly in 1 − z: its "
           f"order p = Δlog‖J − I‖/Δlog(1 − σ(b)) between biases {LEAK_BIASES[0]:g} and {LEAK_BIASES[1]:g} is "
           f"≥ {LEAST_ORDER} on every searched state (h ∈ [−1, 1]^n, x ∈ [−2, 2]^m);{_ELSE}",
           update_gate_identity),
)

def objects() -> dict[str, Any]:
    """torch's cells (what gradcore.recurrent unrolls) at their default init."""
    return {name: getattr(nn, name) for name in ("RNNCell", "GRUCell", "LSTMCell")}


class RecurrentContract(Contract):
    """An ``nn.RNNCellBase`` (class or instance), or an nn.Module class whose constructor takes
    (input_size, hidden_size) and whose instances map (x, h) to h."""

    kind, binding, clauses = KIND, "make", CLAUSES
    signature = Signature(module=True, cls=True, accepts=2, recognised=(nn.RNNCellBase,))
    prepare, smoke, build = staticmethod(prepare), staticmethod(smoke), staticmethod(build)
    objects = staticmethod(objects)

"""Contract for a recurrent cell ``(input_size, hidden_size) -> cell``, ``cell(x, h) -> h'``.

Claims (catalogue RNN/GATE): 000 §主要“罪魁祸首” "如果这个矩阵的最大特征值大于1，梯度就会在
时间序列上指数级增长"; 003 §3.b "W 的最大奇异值大于1…以 λᵀ 的速度增长"; 004 Theorem 3.3.4;
002 §循环网络中的门控机制 "梯度几乎可以无衰减地向后传播" and 003 §4 门控机制. BPTT norms come
from ``gradcore.recurrent.bptt_gradient_norms``; cells returning ``(h, c)`` (LSTM-like) are
run on the concatenated state, as ``gradcore.recurrent.cell_step`` does for ``nn.LSTMCell``.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ._stack import factor_of, summarise
from .base import CheckError, Clause, Outcome, Settings, callable_or_fail

KIND = "recurrent"
INPUT, HIDDEN, STEPS = 8, 32, 40
UPPER, LOWER = 1.02, 0.9


@dataclass(frozen=True)
class RecurrentSubject:
    name: str
    make: Callable[[int, int], nn.Module]
    setup: str


def _factory(obj: Any, settings: Settings) -> Callable[[int, int], Any]:
    def build(n_in: int, n_h: int) -> Any:
        cell = obj if isinstance(obj, nn.Module) else obj(n_in, n_h)
        return cell.to(device=settings.device, dtype=torch.float64) if isinstance(cell, nn.Module) else cell
    return build


def _step(cell: Any, xs: torch.Tensor, hidden: int) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """A step on the full state; tuple states (h, c) are concatenated."""
    def step(s: torch.Tensor, t: int) -> torch.Tensor:
        if s.shape[-1] == 2 * hidden:
            out = cell(xs[t - 1], (s[..., :hidden], s[..., hidden:]))
        else:
            out = cell(xs[t - 1], s)
        return torch.cat(list(out), dim=-1) if isinstance(out, tuple) else out
    return step


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


def subject(obj: Any, name: str, setup: str, settings: Settings) -> RecurrentSubject:
    callable_or_fail(obj)
    make = _factory(obj, settings)
    smoke(make, settings)
    return RecurrentSubject(name, make, setup)


def looks_like(obj: Any, settings: Settings) -> bool:
    """An ``nn.RNNCellBase`` subclass/instance, or a class whose constructor takes
    (input_size, hidden_size) and whose instances map (x, h) to h."""
    if isinstance(obj, nn.RNNCellBase) or (inspect.isclass(obj) and issubclass(obj, nn.RNNCellBase)):
        return True
    if not (inspect.isclass(obj) and issubclass(obj, nn.Module)):
        return False
    try:
        params = list(inspect.signature(obj.forward).parameters)
        if len(params) < 3:
            return False
        smoke(_factory(obj, settings), settings)
        return True
    except Exception:
        return False


def _rates(s: RecurrentSubject, settings: Settings) -> tuple[float, float, float, list[float]]:
    from ... import recurrent

    rates = []
    for k in range(settings.seeds):
        torch.manual_seed(settings.seed + 50 + k)
        cell = s.make(INPUT, HIDDEN)
        xs = settings.randn(STEPS, 1, INPUT, offset=60 + k)
        pair = _wants_pair(cell) or smoke(s.make, settings) == 2 * HIDDEN
        s0 = settings.randn(1, 2 * HIDDEN if pair else HIDDEN, offset=70 + k) * 0.1
        norms = recurrent.bptt_gradient_norms(_step(cell, xs, HIDDEN), s0, STEPS)[:, 0]
        rates.append(factor_of(norms))
    m, lo, hi = summarise(rates)
    return m, lo, hi, rates


def _snippet(s: RecurrentSubject) -> str:
    return (f"{s.setup}\nimport torch\nfrom gradcore.recurrent import bptt_gradient_norms\n"
            f"torch.manual_seed(0); cell = make({INPUT}, {HIDDEN}).double()\n"
            f"xs = torch.randn({STEPS}, 1, {INPUT}, dtype=torch.float64)\n"
            f"h0 = 0.1 * torch.randn(1, {HIDDEN}, dtype=torch.float64)  # [h, c] concatenated for LSTM-like cells\n"
            f"n = bptt_gradient_norms(lambda h, t: cell(xs[t - 1], h), h0, {STEPS})[:, 0]\n"
            f"print((n[0] / n[-1]) ** (1 / {STEPS}))  # per-step factor")


def no_explosion(s: RecurrentSubject, settings: Settings) -> Outcome:
    m, lo, hi, _ = _rates(s, settings)
    holds = True if hi <= UPPER else (False if lo > UPPER else None)
    cex = None if holds is not False else {"steps": STEPS, "hidden": HIDDEN, "per-step factor": m,
                                           "snippet": _snippet(s)}
    return Outcome(holds, {"per-step factor": m, "95% CI": f"[{lo:.4f}, {hi:.4f}]",
                           f"‖g_0‖/‖g_{STEPS}‖": m ** STEPS}, cex)


def long_memory(s: RecurrentSubject, settings: Settings) -> Outcome:
    m, lo, hi, _ = _rates(s, settings)
    holds = True if lo >= LOWER else (False if hi < LOWER else None)
    cex = None if holds is not False else {"steps": STEPS, "hidden": HIDDEN, "per-step factor": m,
                                           "snippet": _snippet(s)}
    return Outcome(holds, {"per-step factor": m, "95% CI": f"[{lo:.4f}, {hi:.4f}]",
                           f"‖g_0‖/‖g_{STEPS}‖": m ** STEPS}, cex)


CLAUSES = (
    Clause("bptt-no-explosion", ("RNN-05", "RNN-06"),
           f"at its default init BPTT gradients do not grow: per-step factor ≤ {UPPER}", no_explosion),
    Clause("bptt-long-memory", ("GATE-04", "GATE-05"),
           f"at its default init BPTT gradients survive {STEPS} steps: per-step factor ≥ {LOWER}", long_memory),
)


def builtins() -> dict[str, tuple[Any, str]]:
    """torch's cells (what gradcore.recurrent unrolls) at their default init."""
    return {name: (getattr(nn, name), f"from torch import nn\nmake = nn.{name}")
            for name in ("RNNCell", "GRUCell", "LSTMCell")}

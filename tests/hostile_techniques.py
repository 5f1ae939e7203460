"""Techniques a careless or hostile user might hand to `gradcore check` (tests only)."""
from __future__ import annotations

import sys
import time

import torch
from torch import nn


def huge(x: torch.Tensor) -> torch.Tensor:
    """1e30·x: finite on every probe, but gradients explode through depth."""
    return 1e30 * x


def expo(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(x)


def constant(x: torch.Tensor) -> torch.Tensor:
    """Does not depend on x: f' = 0 everywhere (autograd has no graph to differentiate)."""
    return torch.full_like(x, 0.5)


def nan_beyond_five(x: torch.Tensor) -> torch.Tensor:
    """tanh on [-3, 3] (the smoke range), NaN for x > 5."""
    return torch.where(x > 5, torch.full_like(x, float("nan")), torch.tanh(x))


def raises(x: torch.Tensor) -> torch.Tensor:
    raise RuntimeError("this activation always fails")


def slow_on_big_inputs(x: torch.Tensor) -> torch.Tensor:
    """ReLU (every clause holds), but it hangs on the dense grid of the derivative-bound clause."""
    if x.numel() > 20000:
        time.sleep(3600)
    return torch.relu(x)


def raises_on_big_inputs(x: torch.Tensor) -> torch.Tensor:
    """tanh that raises inside a clause (not in the smoke test): the technique's own failure."""
    if x.numel() > 20000:
        raise RuntimeError("too many inputs")
    return torch.tanh(x)


class NaNBeyondDepth(nn.Module):
    """A 'norm' layer that returns NaN once activations grow past 1e3."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-5)
        return torch.where(x.abs().amax() > 1e3, torch.full_like(y, float("nan")), y)


def exits(x: torch.Tensor) -> torch.Tensor:
    sys.exit(3)


def exits_on_big_inputs(x: torch.Tensor) -> torch.Tensor:
    """ReLU that calls sys.exit inside a clause (not in the smoke test)."""
    if x.numel() > 20000:
        sys.exit(0)
    return torch.relu(x)


def laggy(x: torch.Tensor) -> torch.Tensor:
    """tanh that takes 50 ms a call: a derivative search of it runs for minutes."""
    time.sleep(0.05)
    return torch.tanh(x)


def sleeps(x: torch.Tensor) -> torch.Tensor:
    """Hangs on every call, the smoke test of kind inference included."""
    time.sleep(3600)
    return x


def swallows_on_big_inputs(x: torch.Tensor) -> torch.Tensor:
    """ReLU that hangs inside a clause and swallows every Exception meant to stop it."""
    while x.numel() > 20000:
        try:
            time.sleep(3600)
        except Exception:
            pass
    return torch.relu(x)


def mutates(x: torch.Tensor) -> torch.Tensor:
    """tanh of half its input, halving the input in place first where autograd does not see it."""
    with torch.no_grad():
        x.mul_(0.5)
    return torch.tanh(x)


def mutates_tracked(x: torch.Tensor) -> torch.Tensor:
    """tanh of half its input, halving the input in place first (autograd records the write)."""
    x.mul_(0.5)
    return torch.tanh(x)


def detached(x: torch.Tensor) -> torch.Tensor:
    """tanh, detached from its input: autograd would see f' = 0 everywhere."""
    return torch.tanh(x).detach()


def complex_valued(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(1j * x)


def sign(x: torch.Tensor) -> torch.Tensor:
    """f' = 0 everywhere: saturated on the whole domain."""
    return torch.sign(x)


def nan_at_large_fans(w: torch.Tensor) -> torch.Tensor:
    """LeCun-normal on a (64, 32) weight (the smoke test), one NaN entry once fan_in > 100."""
    with torch.no_grad():
        w.normal_(0, w.shape[1] ** -0.5)
        if w.shape[1] > 100:
            w[0, 0] = float("nan")
    return w


def turns_grad_off(x: torch.Tensor) -> torch.Tensor:
    """tanh that switches autograd off for the whole process when called."""
    torch.set_grad_enabled(False)
    return torch.tanh(x)


def chatty(x: torch.Tensor) -> torch.Tensor:
    """tanh that prints on every call."""
    print("chatty was called")
    return torch.tanh(x)


def raises_keyboard_interrupt(x: torch.Tensor) -> torch.Tensor:
    raise KeyboardInterrupt


def on_meta(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x, device="meta")


def noisy(x: torch.Tensor) -> torch.Tensor:
    """tanh plus fresh noise on every call."""
    return torch.tanh(x) + 1e-3 * torch.randn_like(x)

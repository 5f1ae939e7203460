"""Techniques a careless or hostile user might hand to `gradcore check` (tests only)."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable

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


# --- issue 24: techniques an under-searched clause passes ---------------------------------------

class DeepNormBlock(nn.Module):
    """Post-LN residual block with an up-weighted skip (DeepNorm, Wang et al. 2022): LN(αx + G(x)),
    G = Linear → GELU → Linear with Xavier-normal weights of gain β and zero biases. At α = 2,
    β = 0.25 the three draws of the old clause give max ‖∂y/∂x‖₂ = 0.986, yet it exceeds 1 in
    about two thirds of random draws (largest seen over 100: 1.55)."""

    def __init__(self, width: int, alpha: float = 2.0, beta: float = 0.25) -> None:
        super().__init__()
        self.alpha = alpha
        self.branch = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))
        with torch.no_grad():
            for layer in (self.branch[0], self.branch[2]):
                nn.init.xavier_normal_(layer.weight, gain=beta)
                layer.bias.zero_()
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.alpha * x + self.branch(x))


def per_tensor_clip(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """Clips each tensor to norm 1 on its own: every single-tensor direction is kept, the list's is not."""
    return [g * min(1.0, 1.0 / max(float(g.double().norm()), 1e-12)) for g in grads]


class AutoClip:
    """AutoClip (Seetharaman et al. 2020): clip the list's norm to the 10th percentile of the norms seen so far."""

    def __init__(self, percentile: float = 10.0) -> None:
        self.percentile, self.history = percentile, []

    def __call__(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        norm = float(torch.sqrt(sum(g.double().pow(2).sum() for g in grads)))
        self.history.append(norm)
        ranked = sorted(self.history)
        threshold = ranked[int(len(ranked) * self.percentile / 100)]
        scale = min(1.0, threshold / max(norm, 1e-12))
        return [g * scale for g in grads]


def float32_norm_clip(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """Global-norm clipping to 1 with the norm accumulated in float32 (torch's own behaviour before
    gradcore's fix): a finite gradient with ‖g‖ > 3.4e38 comes back as zeros."""
    norm = torch.sqrt(sum(g.float().pow(2).sum() for g in grads))
    scale = torch.clamp(1.0 / (norm + 1e-6), max=1.0)
    return [g * scale.to(g.dtype) for g in grads]


def squareplus(x: torch.Tensor) -> torch.Tensor:
    """Squareplus (So 2021) with b = 4: (x + √(x² + 4))/2, a smooth ReLU; λ lies close to 0.9."""
    return (x + torch.sqrt(x * x + 4.0)) / 2


class AbsLeakyReLU:
    """Leaky ReLU (slope 0.1) with its sympy form written with Abs: 0.55x + 0.45|x|."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 0, x, 0.1 * x)

    @staticmethod
    def sympy(x):
        import sympy
        return sympy.Rational(11, 20) * x + sympy.Rational(9, 20) * sympy.Abs(x)


class HeavisideReLU:
    """ReLU with its sympy form written with Heaviside: x·H(x)."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)

    @staticmethod
    def sympy(x):
        import sympy
        return x * sympy.Heaviside(x)


class FixedGroupNorm(nn.Module):
    """GroupNorm(4 groups) built for width 16 whatever width it is asked for (a user's module)."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(4, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)



def barely_scaled_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(0.9·qkᵀ)v: a fixed temperature instead of 1/√d_k. Its mean largest weight at d_k = 256
    is about 0.916 (40 draws), but the first 3 draws average 0.897."""
    return torch.softmax(0.9 * q @ k.transpose(-2, -1), dim=-1) @ v


class FixedWidthMHA(nn.Module):
    """nn.MultiheadAttention built for d = 8 (2 heads; the probe's width), called as attend(q, k, v)."""

    def __init__(self) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(8, 2, dtype=torch.float64)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.mha(q, k, v, need_weights=False)[0]


def _seeded(make: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    """A module whose weights do not depend on which tests ran first in this process (xdist workers differ)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return make()


fixed_width_mha = _seeded(FixedWidthMHA)


def forgetful_fan_init(w: torch.Tensor) -> torch.Tensor:
    """N(0, 1/fan_in), except that on a random 40 % of its calls it forgets the fan and uses the first
    one it saw (32): one draw per fan (seeds 32, 128, 512) happens to scale as 1/n (slope −0.998), the
    expected exponent over draws is about −0.7."""
    fan = 32 if float(torch.rand(())) < 0.4 else w.shape[1]
    return w.normal_(0.0, fan ** -0.5)

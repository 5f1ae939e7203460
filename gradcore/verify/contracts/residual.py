"""Contract for a residual/skip block ``width -> nn.Module`` mapping (batch, width) to itself.

Claims (catalogue RES): 004 (3.3.7)-(3.3.9) "梯度至少可以通过恒等路径（I部分）无衰减地传播";
003 §4 "梯度在反向传播时可以“抄近道”…避免…连乘衰减"; 002 §残差与密集连接 "如果…‖I + f'‖₂ > 1，
梯度爆炸依然可能发生" and the scaled residual that keeps "每层雅可比矩阵的谱范数小于等于1".
Block Jacobians are dense (``gradcore.jacobian``) on small widths.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ...jacobian import jacobian
from ...spectral import singular_values, spectral_norm
from ._stack import transfer_factor
from .base import CheckError, Clause, Outcome, Settings, callable_or_fail, probe

KIND = "residual"
WIDTH, DEPTH = 32, 16
FLOOR = 0.9


@dataclass(frozen=True)
class ResidualSubject:
    name: str
    make: Callable[[int], nn.Module]   # width -> fresh block, float64, on device
    setup: str


def _factory(obj: Any, settings: Settings) -> Callable[[int], nn.Module]:
    def build(width: int) -> nn.Module:
        m = obj if isinstance(obj, nn.Module) else obj(width)
        if not callable(m):
            raise CheckError(f"factory returned {type(m).__name__}, expected an nn.Module")
        return m.to(device=settings.device, dtype=torch.float64) if isinstance(m, nn.Module) else m
    return build


def smoke(make: Callable[[int], nn.Module], settings: Settings) -> None:
    x = settings.randn(4, WIDTH, offset=5)
    probe(lambda: make(WIDTH)(x), what="block", on=f"a random (4, {WIDTH}) input", shape=tuple(x.shape))


def subject(obj: Any, name: str, setup: str, settings: Settings) -> ResidualSubject:
    callable_or_fail(obj)
    make = _factory(obj, settings)
    smoke(make, settings)
    return ResidualSubject(name, make, setup)


def looks_like(obj: Any, settings: Settings) -> bool:
    """Residual blocks are not inferred (any shape-preserving module would match): use --kind."""
    return False


def block_bound(s: ResidualSubject, settings: Settings) -> Outcome:
    worst, where = 0.0, None
    for k in range(settings.seeds):
        torch.manual_seed(settings.seed + 10 + k)
        block = s.make(WIDTH)
        x = settings.randn(WIDTH, offset=20 + k)
        sn = spectral_norm(jacobian(lambda t: block(t.unsqueeze(0)).squeeze(0), x).detach())
        if sn > worst:
            worst, where = sn, (k, x)
    holds = worst <= 1.0 + 1e-6
    cex = None if holds else {
        "max ‖∂block/∂x‖₂": worst, "seed": settings.seed + 10 + where[0], "x": where[1].tolist(),
        "snippet": f"{s.setup}\nimport torch\nfrom gradcore.jacobian import jacobian\n"
                   "from gradcore.spectral import spectral_norm\n"
                   f"torch.manual_seed({settings.seed + 10 + where[0]}); block = make({WIDTH}).double()\n"
                   f"x = torch.randn({WIDTH}, dtype=torch.float64)\n"
                   "print(spectral_norm(jacobian(lambda t: block(t[None])[0], x)))  # > 1"}
    return Outcome(holds, {"max ‖∂block/∂x‖₂": worst, "blocks tried": settings.seeds}, cex)


def _stack(s: ResidualSubject, depth: int) -> list[nn.Module]:
    return [s.make(WIDTH) for _ in range(depth)]


def no_vanishing(s: ResidualSubject, settings: Settings) -> Outcome:
    m = transfer_factor(lambda _: _stack(s, DEPTH), depth=DEPTH, width=WIDTH, batch=16, settings=settings)
    holds = True if m["lambda_lo"] >= FLOOR else (False if m["lambda_hi"] < FLOOR else None)
    constants = {"lambda per block": m["lambda"], "lambda 95% CI": f"[{m['lambda_lo']:.4f}, {m['lambda_hi']:.4f}]",
                 "depth": DEPTH, "width": WIDTH}
    cex = None if holds is not False else {
        "depth": DEPTH, "width": WIDTH, "lambda": m["lambda"],
        "snippet": f"{s.setup}\nimport torch\ntorch.manual_seed(0)\n"
                   f"blocks = [make({WIDTH}).double() for _ in range({DEPTH})]\n"
                   f"h0 = torch.randn(16, {WIDTH}, dtype=torch.float64, requires_grad=True); h = h0\n"
                   "for b in blocks: h = b(h)\nr = torch.randn_like(h); (h * r).sum().backward()\n"
                   f"print((h0.grad.norm() / r.norm()) ** (1 / {DEPTH}))"}
    return Outcome(holds, constants, cex)


def identity_floor(s: ResidualSubject, settings: Settings) -> Outcome:
    torch.manual_seed(settings.seed + 40)
    blocks = _stack(s, DEPTH)

    def through(t: torch.Tensor) -> torch.Tensor:
        h = t.unsqueeze(0)
        for b in blocks:
            h = b(h)
        return h.squeeze(0)

    sv = singular_values(jacobian(through, settings.randn(WIDTH, offset=41)).detach())
    smin, smax = float(sv[-1]), float(sv[0])
    holds = smin >= 1.0 - 1e-6
    cex = None if holds else {
        "depth": DEPTH, "width": WIDTH, "σ_min(∂x_D/∂x_0)": smin,
        "snippet": f"{s.setup}\nimport torch\nfrom gradcore.jacobian import jacobian\n"
                   f"torch.manual_seed({settings.seed + 40})\nblocks = [make({WIDTH}).double() for _ in range({DEPTH})]\n"
                   "def f(t):\n    h = t[None]\n    for b in blocks: h = b(h)\n    return h[0]\n"
                   f"print(torch.linalg.svdvals(jacobian(f, torch.randn({WIDTH}, dtype=torch.float64)))[-1])"}
    return Outcome(holds, {"σ_min(∂x_D/∂x_0)": smin, "σ_max(∂x_D/∂x_0)": smax, "depth": DEPTH}, cex)


CLAUSES = (
    Clause("block-jacobian-bound", ("RES-06", "RES-07"),
           "every block's Jacobian has ‖∂y/∂x‖₂ ≤ 1 (no block can amplify a gradient)", block_bound),
    Clause("no-vanishing", ("RES-05", "RES-08"),
           f"through {DEPTH} stacked blocks the per-block gradient factor λ stays ≥ {FLOOR}", no_vanishing),
    Clause("identity-floor", ("RES-05",),
           "no gradient direction decays through the stack: σ_min(∂x_D/∂x_0) ≥ 1", identity_floor, gate=False),
)


def builtins() -> dict[str, tuple[Any, str]]:
    """gradcore.residual's blocks around its default tanh MLP branch, and the branch alone."""
    from ... import residual as r

    def scaled(width: int, beta: float = 0.5) -> nn.Module:
        branch = r.mlp_branch(width)
        return r.ScaledResidual(branch, r.safe_scaling(r.branch_lipschitz_bound(branch), beta), beta)

    pre = "from gradcore import residual as r\n"
    return {
        "Residual(mlp)": (lambda w: r.Residual(r.mlp_branch(w)), pre + "make = lambda w: r.Residual(r.mlp_branch(w))"),
        "ScaledResidual(safe α, β=0.5)": (scaled, pre + "def make(w):\n    b = r.mlp_branch(w)\n"
                                          "    return r.ScaledResidual(b, r.safe_scaling(r.branch_lipschitz_bound(b), 0.5), 0.5)"),
        "mlp branch, no skip": (lambda w: r.mlp_branch(w), pre + "make = r.mlp_branch"),
    }

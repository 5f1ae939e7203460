"""Residual and scaled-residual blocks and their layer Jacobians.

004 §3.3.2 Definition 3.3.4 / eq (3.3.7)–(3.3.9): ŷ = x + F(x), ∂ŷ/∂x = I + ∂F/∂x.
002 §残差与密集连接: x_{l+1} = x_l + f_l(x_l) and the scaled form
x_{l+1} = (1−β) x_l + α f_l(x_l). 003 §4 "残差连接": y = H(x) + x.
The blocks wrap any ``nn.Module`` branch; Jacobians come from ``torch.func``.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from . import _validate as v
from .jacobian import jacobian

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "identity": nn.Identity}
# Lipschitz constants of the activations above; the branch bound below needs them.
ACTIVATION_LIPSCHITZ = {"tanh": 1.0, "relu": 1.0, "sigmoid": 0.25, "identity": 1.0}


def _module(f: object, name: str) -> nn.Module:
    if not isinstance(f, nn.Module):
        v.fail(name, f"expected a torch.nn.Module, got {type(f).__name__}")
    return f  # type: ignore[return-value]


class Residual(nn.Module):
    """ŷ = x + f(x) (004 Definition 3.3.4; 003 "y = H(x) + x")."""

    def __init__(self, f: nn.Module) -> None:
        super().__init__()
        self.f = _module(f, "f")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x)


class ScaledResidual(nn.Module):
    """x_{l+1} = (1−β) x_l + α f(x_l) (002 "缩放残差连接")."""

    def __init__(self, f: nn.Module, alpha: float, beta: float) -> None:
        super().__init__()
        self.f = _module(f, "f")
        self.alpha = v.real(alpha, "alpha")
        self.beta = v.real(beta, "beta")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (1.0 - self.beta) * x + self.alpha * self.f(x)


def residual_stack(blocks: Iterable[nn.Module]) -> nn.Sequential:
    """Compose blocks in order: x_{l+1} = block_l(x_l), l = 1 … L."""
    blocks = list(blocks)
    if not blocks:
        v.fail("blocks", "expected at least one block")
    for i, b in enumerate(blocks):
        _module(b, f"blocks[{i}]")
    return nn.Sequential(*blocks)


def block_jacobian(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Dense Jacobian ∂block(x)/∂x of one sample ``x`` (rows: outputs), detached from autograd."""
    block = _module(block, "block")
    x = v.module_input(block, v.tensor(x, "x", ndim=1), "x")
    return jacobian(v.guarded(block, "block"), x).detach()


def safe_scaling(lipschitz_f: float, beta: float) -> float:
    """Largest α ≥ 0 with |1−β| + α·Lip(f) ≤ 1.

    Since ‖(1−β)I + α f'(x)‖₂ ≤ |1−β| + |α|·‖f'(x)‖₂ ≤ |1−β| + |α|·Lip(f), this α makes
    every scaled block's Jacobian norm ≤ 1 (002 "保证每层雅可比矩阵的谱范数小于等于1").
    The bound is sufficient, not necessary. Requires 0 ≤ β ≤ 2 so that |1−β| ≤ 1.
    """
    lip = v.real(lipschitz_f, "lipschitz_f", positive=True)
    beta = v.real(beta, "beta", nonnegative=True)
    if beta > 2.0:
        v.fail("beta", f"must be <= 2 so that |1-beta| <= 1, got {beta}")
    alpha = (1.0 - abs(1.0 - beta)) / lip
    if alpha == float("inf"):
        v.fail("lipschitz_f", f"{lip:g} is so small that the safe α overflows float64")
    return alpha


def mlp_branch(width: int, hidden: int | None = None, *, activation: str = "tanh",
               gain: float = 1.0, bias: bool = False, dtype: torch.dtype = torch.float32,
               device: str | torch.device = "cpu") -> nn.Sequential:
    """Residual branch Linear → activation → Linear, weights N(0, gain²/fan_in).

    Uses ``nn.init.kaiming_normal_`` (linear gain) scaled by ``gain``, so ``gain``
    sets the typical size of the branch Jacobian relative to the identity.
    """
    width = v.integer(width, "width", minimum=1)
    hidden = width if hidden is None else v.integer(hidden, "hidden", minimum=1)
    act = v.choice(activation, "activation", ACTIVATIONS)
    gain = v.real(gain, "gain", nonnegative=True)
    v.float_dtype(dtype)
    net = nn.Sequential(nn.Linear(width, hidden, bias=bias), ACTIVATIONS[act](),
                        nn.Linear(hidden, width, bias=bias))
    # initialise on the CPU generator so a seed gives the same weights on every device
    with torch.no_grad():
        for layer in (net[0], net[2]):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="linear")
            layer.weight.mul_(gain)
    return net.to(device=device, dtype=dtype)


def fixup_scale(blocks: int, layers: int) -> float:
    """Fixup's rescaling L^(−1/(2m−2)) of the weight layers inside each of L residual branches of
    m layers (Zhang, Dauphin & Ma 2019 §3, LIT-11): the branches' summed contribution to one SGD
    step's function change is then Θ(η) at every depth."""
    blocks = v.integer(blocks, "blocks", minimum=1)
    layers = v.integer(layers, "layers", minimum=2)
    return blocks ** (-1.0 / (2 * layers - 2))


def relu_branch(width: int, layers: int, *, scale: float = 1.0, zero_last: bool = False,
                dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """A residual branch of ``layers`` bias-free Linear layers with ReLU between them (LIT-11).

    Each weight is He-normal (``nn.init.kaiming_normal_``, fan-in, ReLU gain) times ``scale``;
    with ``zero_last`` the last layer starts at 0, as Fixup initialises it. Drawn in ``dtype``.
    """
    width = v.integer(width, "width", minimum=1)
    layers = v.integer(layers, "layers", minimum=1)
    scale = v.real(scale, "scale", nonnegative=True)
    v.float_dtype(dtype)
    mods: list[nn.Module] = []
    for i in range(layers):
        linear = nn.Linear(width, width, bias=False, dtype=dtype)
        with torch.no_grad():
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
            linear.weight.mul_(0.0 if zero_last and i == layers - 1 else scale)
        mods += [linear, nn.ReLU()]
    return nn.Sequential(*mods[:-1])


def branch_lipschitz_bound(branch: nn.Sequential) -> float:
    """Upper bound Π‖W_i‖₂ · Π Lip(σ) on Lip(branch) for a Linear/activation sequence."""
    if not isinstance(branch, nn.Sequential):
        v.fail("branch", f"expected an nn.Sequential, got {type(branch).__name__}")
    bound = 1.0
    lips = {cls: ACTIVATION_LIPSCHITZ[name] for name, cls in ACTIVATIONS.items()}
    for i, layer in enumerate(branch):
        if isinstance(layer, nn.Linear):
            bound *= float(torch.linalg.matrix_norm(layer.weight.detach(), ord=2))
        elif type(layer) in lips:
            bound *= lips[type(layer)]
        else:
            v.fail(f"branch[{i}]", f"no Lipschitz bound known for {type(layer).__name__}")
    if bound == float("inf"):
        v.fail("branch", "the bound Π‖W_i‖₂ overflows float64; the weights are too large to bound this way")
    return bound


def residual_mlp(width: int) -> Residual:
    """x + f(x) around :func:`mlp_branch` (the built-in residual block ``gradcore check`` compares with)."""
    return Residual(mlp_branch(width))


def safely_scaled_mlp(width: int, beta: float = 0.5) -> ScaledResidual:
    """(1−β)x + αf(x) around :func:`mlp_branch`, α the safe scaling for the branch's Lipschitz bound."""
    branch = mlp_branch(width)
    return ScaledResidual(branch, safe_scaling(branch_lipschitz_bound(branch), beta), beta)

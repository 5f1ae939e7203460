"""Deep chains of layers: the networks whose gradient products the documents discuss.

000 §链式法则 (z_i = W_i a_{i-1} + b_i, a_i = σ(z_i)), 003 §1 (ŷ = W₃W₂W₁x and the
n-layer product), 004 §3.3.1 Theorem 3.3.3 (h^{(l)} = σ(W^{(l)} h^{(l-1)} + b^{(l)})).
Networks are plain ``nn.Sequential`` stacks of ``nn.Linear`` and an activation module.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from . import _validate as v
from . import activations as acts
from . import initialisation as inits

Tensor = torch.Tensor


class Elementwise(nn.Module):
    """An :class:`~gradcore.activations.Activation` as a module."""

    def __init__(self, activation: acts.Activation) -> None:
        super().__init__()
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        return self.activation.fn(x)

    def extra_repr(self) -> str:
        return self.activation.name


def _activation(activation: str | acts.Activation) -> acts.Activation:
    return activation if isinstance(activation, acts.Activation) else acts.get(activation)


def feedforward(depth: int, width: int, activation: str | acts.Activation, init: str, *,
                bias: bool = False, in_features: int | None = None,
                init_kwargs: dict | None = None, dtype: torch.dtype = torch.float32,
                device: str | torch.device = "cpu") -> nn.Sequential:
    """``depth`` blocks of Linear(width) + activation, weights drawn by initialiser ``init``.

    Biases, when present, start at zero so that only the weight scale sets the signal.
    Randomness comes from torch's global generator (seed it before calling).
    """
    depth = v.integer(depth, "depth", minimum=1)
    width = v.integer(width, "width", minimum=1)
    n_in = width if in_features is None else v.integer(in_features, "in_features", minimum=1)
    v.float_dtype(dtype)
    act = _activation(activation)
    initialiser = inits.get(init)
    layers: list[nn.Module] = []
    for i in range(depth):
        linear = nn.Linear(n_in if i == 0 else width, width, bias=bias, dtype=dtype, device=device)
        with torch.no_grad():
            initialiser(linear.weight, **(init_kwargs or {}))
            if bias:
                linear.bias.zero_()
        layers += [linear, Elementwise(act)]
    return nn.Sequential(*layers)


def blocks(model: nn.Sequential) -> list[nn.Sequential]:
    """The (Linear, activation) pairs of a :func:`feedforward` model: h_l = block_l(h_{l-1})."""
    if not isinstance(model, nn.Sequential) or len(model) == 0 or len(model) % 2:
        v.fail("model", "expected a non-empty nn.Sequential of (Linear, activation) pairs")
    return [nn.Sequential(model[i], model[i + 1]) for i in range(0, len(model), 2)]


def linears(model: nn.Sequential) -> list[nn.Linear]:
    """The Linear layers of ``model``, first to last."""
    return [m for m in model if isinstance(m, nn.Linear)]


def pre_activations(model: nn.Sequential, x: Tensor) -> list[Tensor]:
    """z_l = W_l h_{l-1} + b_l for every Linear layer along a forward pass from ``x``."""
    model = v.module(model, "model", nn.Sequential)
    x = v.module_input(model, v.tensor(x, "x"), "x")
    zs = []
    h = x
    for i, module in enumerate(model):
        h = v.guarded(module, f"model[{i}]")(h)
        if isinstance(module, nn.Linear):
            zs.append(h)
    if not zs:
        v.fail("model", "contains no nn.Linear layer")
    return zs


def hidden_states(model: nn.Sequential, x: Tensor) -> list[Tensor]:
    """[h_0 = x, h_1, …, h_L], the output of each block of a :func:`feedforward` model."""
    parts = blocks(model)
    hs = [v.module_input(model, v.tensor(x, "x"), "x")]
    for i, block in enumerate(parts):
        hs.append(v.guarded(block, f"block {i}")(hs[-1]))
    return hs


def rescale_spectral(model: nn.Module, norm: float) -> nn.Module:
    """Scale every Linear weight in place so that its spectral norm σ_max equals ``norm``."""
    model = v.module(model, "model")
    norm = v.real(norm, "norm", positive=True)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, nn.Linear):
                w = m.weight
                # torch.linalg has no half-precision SVD; measure those in float32.
                wide = w.float() if w.dtype in (torch.float16, torch.bfloat16) else w
                current = torch.linalg.matrix_norm(wide, ord=2)
                if not 0 < float(current) < float("inf"):
                    v.fail("model", f"Linear {name or '(root)'} has spectral norm {float(current):g}; "
                                    "it cannot be rescaled to a given norm")
                w.mul_((norm / current).to(w.dtype))
    return model


def linear_network(weights: Sequence[Tensor]) -> Callable[[Tensor], Tensor]:
    """x ↦ W_n ⋯ W₂ W₁ x for weights [W₁, …, W_n] (003 §1: ŷ = W₃W₂W₁x).

    ``x`` may be a vector or a batch of column vectors (shape ``(n_in,)`` or ``(n_in, k)``).
    """
    if len(weights) == 0:
        v.fail("weights", "expected at least one weight matrix")
    ws = [v.matrix(w, f"weights[{i}]") for i, w in enumerate(weights)]
    for i in range(1, len(ws)):
        v.same_dtype(ws[0], ws[i], "weights[0]", f"weights[{i}]")
        if ws[i].shape[1] != ws[i - 1].shape[0]:
            v.fail(f"weights[{i}]", f"has {ws[i].shape[1]} columns but weights[{i - 1}] has "
                   f"{ws[i - 1].shape[0]} rows")

    def forward(x: Tensor) -> Tensor:
        x = v.tensor(x, "x")
        if x.shape[0] != ws[0].shape[1]:
            v.fail("x", f"leading size {x.shape[0]} does not match weights[0] columns {ws[0].shape[1]}")
        v.same_dtype(ws[0], x, "weights[0]", "x")
        for w in ws:
            x = w @ x
        return v.finite_result(x, "x", f"the product W_n⋯W_1 x overflows {x.dtype}")

    return forward

"""Volume-preserving (det J = 1) flow layers with controllable conditioning.

002 §在现代生成模型中的体现 (归一化流): "即使一个变换是保体积的（即行列式为1）… 其谱范数也可能
远大于1，从而在反向传播中引发梯度爆炸 … 必须对雅可比矩阵的奇异值进行控制，而不仅仅是其行列式".
Two layers: NICE additive coupling (det = 1 exactly, any shear size) and a linear map
W = U diag(s) Vᵀ with Π s = 1 and condition number κ (U, V from ``torch.linalg.qr``).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.nn import functional as F

from . import _validate as v
from .jacobian import jacobian


def volume_preserving_singular_values(dim: int, kappa: float, *, dtype: torch.dtype = torch.float64,
                                      device: str | torch.device = "cpu") -> torch.Tensor:
    """s_i = κ^{1/2 − i/(dim−1)}, descending from √κ to 1/√κ; Σ log s_i = 0 so Π s_i = 1."""
    dim = v.integer(dim, "dim", minimum=2)
    kappa = v.real(kappa, "kappa", positive=True)
    if kappa < 1.0:
        v.fail("kappa", f"a condition number is >= 1, got {kappa}")
    v.float_dtype(dtype)
    t = torch.linspace(0.5, -0.5, dim, dtype=torch.float64)
    s = torch.exp(t * math.log(kappa)).to(device=device, dtype=dtype)
    return v.finite_result(s, "kappa", f"√κ = {math.sqrt(kappa):.3g} overflows {dtype}")


class VolumePreservingLinear(nn.Module):
    """y = W x with W = U diag(s) Vᵀ, det W = ±1, σ_max = √κ, σ_min = 1/√κ.

    U, V are Haar-random orthogonal matrices (QR of a Gaussian with sign fix) drawn
    from ``generator``; κ = 1 gives an orthogonal W.
    """

    def __init__(self, dim: int, kappa: float, *, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> None:
        super().__init__()
        v.float_dtype(dtype)
        s = volume_preserving_singular_values(dim, kappa)
        u, vt = _haar_orthogonal(dim, generator), _haar_orthogonal(dim, generator).T
        self.register_buffer("weight", ((u * s) @ vt).to(device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)


def _haar_orthogonal(dim: int, generator: torch.Generator | None) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    # multiplying by sign(diag R) makes the QR factor Haar-distributed
    return q * torch.sign(torch.diagonal(r))


class AdditiveCoupling(nn.Module):
    """NICE coupling: (x_a, x_b) ↦ (x_a, x_b + t(x_a)); Jacobian [[I, 0], [t', I]], det = 1.

    ``t`` is Linear → tanh → Linear with weights N(0, scale²/fan_in), so ``scale``
    sets the shear ‖t'‖ and hence σ_max while the determinant stays exactly 1.
    ``flip`` swaps the roles of the two halves so that stacked couplings alternate.
    Weights come from ``generator`` when given.
    """

    def __init__(self, dim: int, *, hidden: int | None = None, scale: float = 1.0, flip: bool = False,
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32,
                 device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.dim = v.integer(dim, "dim", minimum=2)
        scale = v.real(scale, "scale", nonnegative=True)
        v.float_dtype(dtype)
        self.split = dim // 2
        self.flip = bool(flip)
        n_in, n_out = (dim - self.split, self.split) if flip else (self.split, dim - self.split)
        hidden = max(n_in, n_out) if hidden is None else v.integer(hidden, "hidden", minimum=1)
        self.t = nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, n_out))
        # Drawn on the CPU (``generator`` or the global one) in float64 whatever ``dtype``: a
        # seed then gives the same weights on every device and CPU. torch's float32 normal
        # kernel is vectorised differently per CPU capability (AVX2 vs AVX-512 builds), so
        # float32 draws differ in the last bits between machines; the float64 kernel does not.
        with torch.no_grad():
            for layer in (self.t[0], self.t[2]):
                w = torch.empty(layer.weight.shape, dtype=torch.float64)
                nn.init.kaiming_normal_(w, nonlinearity="linear", generator=generator)
                layer.weight.copy_(w * scale)
                nn.init.zeros_(layer.bias)
        self.t.to(device=device, dtype=dtype)

    def _halves(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = x[..., :self.split], x[..., self.split:]
        return (b, a) if self.flip else (a, b)

    def _join(self, cond: torch.Tensor, moved: torch.Tensor) -> torch.Tensor:
        return torch.cat([moved, cond] if self.flip else [cond, moved], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cond, moved = self._halves(x)
        return self._join(cond, moved + self.t(cond))

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        cond, moved = self._halves(y)
        return self._join(cond, moved - self.t(cond))


def flow_stack(layers: Iterable[nn.Module]) -> nn.Sequential:
    """Compose flow layers in order (x → f_K(… f_1(x)))."""
    layers = list(layers)
    if not layers:
        v.fail("layers", "expected at least one layer")
    for i, layer in enumerate(layers):
        if not isinstance(layer, nn.Module):
            v.fail(f"layers[{i}]", f"expected a torch.nn.Module, got {type(layer).__name__}")
    return nn.Sequential(*layers)


def log_abs_det_jacobian(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> float:
    """log|det ∂f/∂x| at one sample ``x`` (shape (dim,)) via ``torch.linalg.slogdet``."""
    x = v.tensor(x, "x", ndim=1, low_precision=False)   # slogdet has no float16/bfloat16 kernels
    if isinstance(f, nn.Module):
        v.module_input(f, x, "x")
    jac = jacobian(f, x)
    if jac.shape[0] != jac.shape[1]:
        v.fail("f", f"Jacobian must be square for a flow, got shape {tuple(jac.shape)}")
    logdet = float(torch.linalg.slogdet(jac.detach()).logabsdet)
    if not math.isfinite(logdet):
        v.fail("f", f"its Jacobian at x is singular (log|det| = {logdet}); a flow layer must be invertible")
    return logdet

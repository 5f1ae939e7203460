"""Normalisation layers (BatchNorm, LayerNorm, RMSNorm) and their exact Jacobians.

The layers are torch's own (``nn.BatchNorm1d``, ``nn.LayerNorm``, ``nn.RMSNorm``): the
theorems measure torch's implementation against the seed definitions (004 §3.3.4
Definitions 3.3.10, 3.3.11, 3.3.13; 002 "归一化层与架构细节"). The closed-form Jacobians
below are the reference those measurements compare with; the unit tests check them
against ``torch.func.jacrev`` of torch's modules.
"""
from __future__ import annotations

import copy

import torch
from torch import func, nn

from . import _validate as v


def batch_norm(features: int, *, eps: float = 1e-5, affine: bool = True,
               track_running_stats: bool = False) -> nn.BatchNorm1d:
    """torch's ``nn.BatchNorm1d`` over ``features`` channels.

    Running statistics are off by default: training-mode output then depends only on
    the batch, and ``torch.func`` transforms can differentiate it.
    """
    features = v.integer(features, "features", minimum=1)
    eps = v.real(eps, "eps", positive=True)
    return nn.BatchNorm1d(features, eps=eps, affine=affine, track_running_stats=track_running_stats)


def layer_norm(features: int, *, eps: float = 1e-5, affine: bool = True) -> nn.LayerNorm:
    """torch's ``nn.LayerNorm`` over the last dimension of size ``features``."""
    features = v.integer(features, "features", minimum=1)
    eps = v.real(eps, "eps", positive=True)
    return nn.LayerNorm(features, eps=eps, elementwise_affine=affine)


def rms_norm(features: int, *, eps: float | None = None, affine: bool = True) -> nn.RMSNorm:
    """torch's ``nn.RMSNorm``; ``eps=None`` is torch's default, ``finfo(dtype).eps``."""
    features = v.integer(features, "features", minimum=1)
    if eps is not None:
        eps = v.real(eps, "eps", positive=True)
    return nn.RMSNorm(features, eps=eps, elementwise_affine=affine)


def module_jacobian(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Dense Jacobian of ``module(x)`` w.r.t. the whole batch ``x``, in the module's mode.

    Shape ``(module(x).numel(), x.numel())``. BatchNorm couples the samples of a batch,
    so the Jacobian is taken over the batch, not per sample. A copy of the module is
    differentiated, with running-stat updates removed
    (``torch.func.replace_all_batch_norm_modules_``) because they break functorch.
    """
    if not isinstance(module, nn.Module):
        v.fail("module", f"expected a torch.nn.Module, got {type(module).__name__}")
    x = v.module_input(module, v.tensor(x, "x"), "x")
    _batch_statistics(module, x)
    clone = func.replace_all_batch_norm_modules_(copy.deepcopy(module))
    params = {k: p.detach() for k, p in clone.named_parameters()}
    buffers = dict(clone.named_buffers())

    def f(inp: torch.Tensor) -> torch.Tensor:
        return func.functional_call(clone, (params, buffers), (inp,))

    jac = func.jacrev(v.guarded(f, "module"))(x)
    return jac.reshape(-1, x.numel())


def _batch_statistics(module: nn.Module, x: torch.Tensor) -> None:
    """BatchNorm differentiated here normalises by batch statistics (its running statistics are
    removed), which need more than one value per channel; torch would raise a bare ValueError."""
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()):
        per_channel = x.numel() // x.shape[1] if x.ndim > 1 else x.numel()
        if per_channel < 2:
            v.fail("x", f"shape {tuple(x.shape)} gives BatchNorm one value per channel: a batch "
                        "statistic needs at least 2 samples")


def _gamma(gamma: float | torch.Tensor, size: int, like: torch.Tensor) -> torch.Tensor:
    if isinstance(gamma, torch.Tensor):
        g = v.tensor(gamma, "gamma", ndim=1)
        if g.shape[0] != size:
            v.fail("gamma", f"expected {size} entries, got shape {tuple(g.shape)}")
        return v.finite_result(g.to(dtype=like.dtype, device=like.device), "gamma", f"overflows {like.dtype}")
    gamma = v.fits(v.real(gamma, "gamma"), like.dtype, "gamma")
    return torch.full((size,), gamma, dtype=like.dtype, device=like.device)


def _scale(mean_square: torch.Tensor, eps: float, name: str) -> torch.Tensor:
    s = torch.sqrt(mean_square + eps)
    if bool((s == 0).any()):
        v.fail(name, "has zero spread and eps = 0: the normalisation is undefined")
    return s


def _normalised(centred: torch.Tensor, eps: float, name: str, dim: int | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(centred / r, r) with r = √(mean centred² + ε) over ``dim`` (all entries when None).

    Where mean centred² leaves the normal range (inf at |h| ≈ 1e20 in float32, or an underflow
    to 0/subnormal with ε = 0) the mean square is taken of centred/max|centred| and scaled back:
    r = s·√(mean u² + ε/s²), so the Jacobian stays right instead of turning into zeros. Values
    in the normal range take the plain formula, bit for bit.
    """
    mean_square = centred.pow(2).mean() if dim is None else centred.pow(2).mean(dim)
    tiny = torch.finfo(centred.dtype).tiny
    odd = ~torch.isfinite(mean_square) | ((mean_square < tiny) & (eps < tiny))
    if not bool(odd.any()):
        s = _scale(mean_square, eps, name)
        return centred / s, s
    top = centred.abs().amax() if dim is None else centred.abs().amax(dim)
    top = torch.where(top == 0, torch.ones_like(top), top)
    u = centred / top
    q = _scale(u.pow(2).mean() if dim is None else u.pow(2).mean(dim), eps / top / top, name)   # top² may underflow
    return u / q, v.finite_result(top * q, name, "its scale overflows the dtype")


def batchnorm_jacobian(x: torch.Tensor, eps: float = 1e-5,
                       gamma: float | torch.Tensor = 1.0) -> torch.Tensor:
    """∂y/∂x of training-mode batch normalisation of each feature over the batch.

    Closed form (004 Def. 3.3.10, biased σ²_B): ``(γ/√(σ²+ε))(I − 11ᵀ/m − x̂x̂ᵀ/m)``.
    ``x`` is ``(m,)`` (one feature, returns ``(m, m)``) or ``(m, F)`` (returns the
    per-feature blocks, ``(F, m, m)``).
    """
    x = v.tensor(x, "x")
    if x.ndim not in (1, 2):
        v.fail("x", f"expected shape (m,) or (m, F), got {tuple(x.shape)}")
    eps = v.real(eps, "eps", nonnegative=True)
    cols = x.unsqueeze(1) if x.ndim == 1 else x
    m, n_features = cols.shape
    if m < 2:
        v.fail("x", f"a batch of one (shape {tuple(x.shape)}) has no batch statistics: BatchNorm maps it "
                    "to β whatever x (torch refuses it in training mode)")
    g = _gamma(gamma, n_features, cols)
    centred = cols - cols.mean(0)
    xhat, s = _normalised(centred, eps, "x", 0)
    xhat = xhat.T                                             # (F, m)
    eye = torch.eye(m, dtype=x.dtype, device=x.device)
    proj = eye - 1.0 / m - xhat.unsqueeze(2) * xhat.unsqueeze(1) / m
    jac = (g / s).view(-1, 1, 1) * proj
    return jac[0] if x.ndim == 1 else jac


def layernorm_jacobian(h: torch.Tensor, eps: float = 1e-5,
                       gamma: float | torch.Tensor = 1.0) -> torch.Tensor:
    """∂LN(h)/∂h for one vector ``h ∈ R^C`` (004 Def. 3.3.11):
    ``diag(γ)(I − 11ᵀ/C − ĥĥᵀ/C)/√(σ²+ε)``."""
    h = v.tensor(h, "h", ndim=1)
    eps = v.real(eps, "eps", nonnegative=True)
    c = h.shape[0]
    g = _gamma(gamma, c, h)
    centred = h - h.mean()
    hhat, s = _normalised(centred, eps, "h")
    eye = torch.eye(c, dtype=h.dtype, device=h.device)
    return g.unsqueeze(1) * (eye - 1.0 / c - torch.outer(hhat, hhat) / c) / s


def rmsnorm_jacobian(h: torch.Tensor, eps: float = 0.0,
                     gamma: float | torch.Tensor = 1.0) -> torch.Tensor:
    """∂RMSNorm(h)/∂h for one vector ``h`` (004 Def. 3.3.13, with torch's ε inside the root):
    ``diag(γ)(I − ĥĥᵀ/C)/r`` with ``r = √(mean h² + ε)`` and ``ĥ = h/r``."""
    h = v.tensor(h, "h", ndim=1)
    eps = v.real(eps, "eps", nonnegative=True)
    c = h.shape[0]
    g = _gamma(gamma, c, h)
    hhat, r = _normalised(h, eps, "h")
    eye = torch.eye(c, dtype=h.dtype, device=h.device)
    return g.unsqueeze(1) * (eye - torch.outer(hhat, hhat) / c) / r

"""Recipes for Jacobian products and singular values (STAB-01..05).

Backprop through a layer multiplies by Wᵀ (bounded by σ_max, 004 Theorem 3.3.6); through a
chain by J_1ᵀ⋯J_Lᵀ, whose norm is bounded by the product of the layers' norms but not
decided by them (002 §数值稳定性与最优控制的观点). Random matrices come from explicit
generators, networks from :func:`gradcore.measure.recurrent.seeded`.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..jacobian import chain_jacobians
from ..spectral import spectral_norm
from .measurement import Kind, Measurement, recipe
from .recurrent import F64, gen
from .seeding import seeded

PRODUCT_TOLERANCE = {"float32": 1e-5, "float64": 1e-12}   # max relative residual of a 12-layer product


def _t(a: Any, device: str) -> torch.Tensor:
    return torch.as_tensor(a, dtype=F64, device=device)


def product_norm(mats: list[torch.Tensor]) -> float:
    """‖M_1 M_2 ⋯ M_L‖₂."""
    P = mats[0]
    for M in mats[1:]:
        P = P @ M
    return spectral_norm(P)


def backprop_gain_value(W: Any, g: Any, device: str) -> float:
    W, g = _t(W, device), _t(g, device)
    sigma, g_norm = spectral_norm(W), float(g.norm())
    if sigma == 0 or g_norm == 0:  # σ_max can underflow to 0 for subnormal entries
        return 0.0
    return float((W.T @ g).norm()) / sigma / g_norm  # σ·‖g‖ itself may underflow


@recipe
def backprop_gain(*, W: Any, g: Any, device: str = "cpu") -> Measurement:
    """STAB-01: ‖Wᵀg‖/(σ_max(W)‖g‖), the backward gain through y = Wx relative to its bound."""
    return Measurement(backprop_gain_value(W, g, device), Kind.NUMERIC, F64, device, {"shape": list(_t(W, "cpu").shape)})


@recipe
def top_singular_gain(*, rows: int = 7, cols: int = 5, sigma: float | None = None, seed: int = 0,
                      device: str = "cpu") -> Measurement:
    """STAB-01: ‖Wᵀu₁‖ along the top left singular vector u₁ of W ~ N(0, 1), over σ_max(W)
    (``sigma`` None: the tightness ratio, 1), or with W rescaled to σ_max = ``sigma``."""
    W = torch.randn(rows, cols, generator=gen(seed), dtype=F64).to(device)
    U, S, _ = torch.linalg.svd(W)
    if sigma is None:
        value = float((W.T @ U[:, 0]).norm()) / float(S[0])
    else:
        value = float(((W / S[0] * sigma).T @ U[:, 0]).norm())
    return Measurement(value, Kind.NUMERIC, F64, device, {"rows": rows, "cols": cols})


@recipe
def jacobian_product_residual(*, depth: int = 12, width: int = 16, gain: float = 1.5, seed: int = 0,
                              dtype: str = "float64", device: str = "cpu") -> Measurement:
    """STAB-02: max |J_1ᵀ⋯J_Lᵀ g_L − autograd ∂L/∂x₀| / max|∂L/∂x₀| for a tanh MLP (W ~ N(0, gain²/width)),
    L = ½‖h_L − target‖²; a rounding residual (bound: 1e-5 in float32, 1e-12 in float64)."""
    dt = getattr(torch, dtype)
    with seeded(seed):                                       # layers, then x₀ and the target
        layers = []
        for _ in range(depth):
            lin = torch.nn.Linear(width, width, dtype=dt)
            torch.nn.init.normal_(lin.weight, std=gain / math.sqrt(width))
            layers.append(torch.nn.Sequential(lin, torch.nn.Tanh()).to(device))
        x0, target = torch.randn(width, dtype=dt).to(device), torch.randn(width, dtype=dt).to(device)
    jacs = chain_jacobians(layers, x0)
    x = x0.clone().requires_grad_(True)
    h = x
    for f in layers:
        h = f(h)
    (0.5 * (h - target).pow(2).sum()).backward()
    rel = transposed_product_residual(jacs, (h - target).detach(), x.grad)
    return Measurement(rel, Kind.ROUNDING, dt, device, {"depth": depth, "width": width},
                       bound=PRODUCT_TOLERANCE[dtype])


def transposed_product_residual(jacs: list[torch.Tensor], g_last: torch.Tensor, g_first: torch.Tensor) -> float:
    """STAB-02: max |J_1ᵀ⋯J_Lᵀ g_L − g_0| / max |g_0| for the layers' Jacobians ``jacs`` (J_1 first) and
    autograd's gradients g_L at the output and g_0 at the input (also the residual contract's chain rule)."""
    P = torch.eye(jacs[0].shape[1], dtype=g_last.dtype, device=g_last.device)
    for J in jacs:                                           # P = J_1ᵀ J_2ᵀ ⋯ J_Lᵀ
        P = P @ J.T
    g0 = P @ g_last
    return float((g0.detach() - g_first).abs().max() / g_first.abs().max())


def norm_product_ratio_value(mats: Any, device: str, normalise: bool = False) -> float:
    ms = [_t(m, device) for m in mats]
    if normalise:
        ms = [m / spectral_norm(m) for m in ms]
        return product_norm(ms)
    bound = math.prod(spectral_norm(m) for m in ms)
    return 0.0 if bound == 0 else product_norm(ms) / bound


@recipe
def norm_product_ratio(*, mats: Any, normalise: bool = False, device: str = "cpu") -> Measurement:
    """STAB-03: ‖J_1⋯J_L‖₂ / Π‖J_l‖₂; STAB-05 (``normalise``): ‖Π J_l/‖J_l‖‖₂, every factor with σ_max = 1."""
    return Measurement(norm_product_ratio_value(mats, device, normalise), Kind.NUMERIC, F64, device,
                       {"L": len(mats)})


@recipe
def orthogonal_chain_norm(*, scale: float = 0.9, L: int = 40, n: int = 3, seed: int = 0,
                          device: str = "cpu") -> Measurement:
    """STAB-03: ‖Π_l scale·Q_l‖₂ for L random orthogonal Q_l (QR of N(0, 1) from one generator): scale^L."""
    g = gen(seed)
    Qs = [torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))[0].to(device) for _ in range(L)]
    # a product of L orthogonal factors: rounding grows like L·eps
    return Measurement(product_norm([scale * Q for Q in Qs]), Kind.NUMERIC, F64, device, {"n": n, "L": L},
                       conditioning=L)


@recipe
def alternating_chain_norm(*, a: Any = (2.0, 0.1), b: Any = (0.1, 2.0), L: int = 40,
                           quantity: str = "norm", device: str = "cpu") -> Measurement:
    """STAB-03: ‖diag(a) diag(b) diag(a) ⋯‖₂ (L factors), misaligned Jacobians each of norm max(a) —
    or (``quantity="sigma_min"``) the product of their smallest singular values, Π σ_min."""
    A, B = torch.diag(_t(list(a), device)), torch.diag(_t(list(b), device))
    mats = [A if i % 2 == 0 else B for i in range(L)]
    if quantity == "sigma_min":
        value = math.prod(float(torch.linalg.svdvals(m)[-1]) for m in mats)
    else:
        value = product_norm(mats)
    return Measurement(value, Kind.NUMERIC, F64, device, {"L": L}, conditioning=L)


@recipe
def power_norm(*, W: Any, T: int, quantity: str = "norm", device: str = "cpu") -> Measurement:
    """STAB-05: ‖(Wᵀ)^T‖₂ (``norm``) or its per-step rate ‖(Wᵀ)^T‖^{1/T} (``rate``)."""
    value = spectral_norm(torch.linalg.matrix_power(_t(W, device).T, T))
    # T-fold products of a non-normal matrix: rounding of order T·eps·κ
    return Measurement(value ** (1 / T) if quantity == "rate" else value, Kind.NUMERIC, F64, device, {"T": T},
                       conditioning=10 * T)


def _conditioned(kappas: tuple[float, ...], n: int, samples: int, sigma: float, seed: int,
                 device: str) -> list[torch.Tensor]:
    """J = U diag(σ·logspace(0, −log10 κ)) Vᵀ for each κ, U, V (and the old probe g) drawn in turn from one generator."""
    g = gen(seed)
    out = []
    for kappa in kappas:
        U = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))[0]
        V = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))[0]
        s = sigma * torch.logspace(0, -math.log10(kappa), n, dtype=F64)
        out.append((U @ torch.diag(s) @ V.T).to(device))
        torch.randn(n, samples, generator=g, dtype=F64)   # the probe gradients the stream has always drawn
    return out


@recipe
def conditioned_power_gain(*, kappa: float = 1e6, kappas: tuple[float, ...] = (1.0, 1e2, 1e4, 1e6), L: int = 30,
                           n: int = 6, sigma: float = 0.95, samples: int = 64, seed: int = 1,
                           quantity: str = "gain", device: str = "cpu") -> Measurement:
    """STAB-04: sup_g ‖(Jᵀ)^L g‖/‖g‖ = ‖(Jᵀ)^L‖₂ (``gain``) or κ(J) (``kappa``) for J with σ_max = sigma,
    condition number κ = ``kappa`` (the κ-th of ``kappas``, drawn in turn from one generator)."""
    J = _conditioned(tuple(kappas), n, samples, sigma, seed, device)[list(kappas).index(kappa)]
    if quantity == "kappa":
        s = torch.linalg.svdvals(J)
        return Measurement(float(s[0] / s[-1]), Kind.NUMERIC, F64, device, {"n": n}, conditioning=kappa)
    # the exact sup over g (an operator norm), not a sample of g. An L-fold product of an
    # ill-conditioned J: against 60-digit mpmath the float64 value agrees to ~1e-14 relative
    return Measurement(spectral_norm(torch.linalg.matrix_power(J.T, L)), Kind.NUMERIC, F64, device,
                       {"n": n, "L": L}, conditioning=1e3)

"""DDPM noise schedule, loss weightings, per-time-step gradients and their clipping.

002 §在现代生成模型中的体现 (claims DIFF-01..04): at small t the SNR is high, "损失权重也
相应很大", which gives huge raw gradients; a clipping threshold c(t) ∝ 1/v(t) is said to
make the effective per-step gradient contribution "在所有时间步上保持大致均匀".

Conventions: time steps t = 1..T, tensors indexed by t−1. The denoiser predicts ε and
the per-step base loss is ℓ_t = mean ‖ε̂(x_t, t) − ε‖²; a weighting v(t) multiplies it.
Norm clipping is ``torch.nn.utils.clip_grad_norm_`` applied to cloned gradients.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import func, nn

from . import _validate as v

WEIGHTINGS = ("eps", "vlb", "snr", "min_snr_gamma", "truncated_snr", "v")
SCHEMES = ("none", "global", "time_dependent", "time_dependent_weighted")


@dataclass(frozen=True)
class Schedule:
    """β_t, α_t = 1−β_t and ᾱ_t = Π_{s≤t} α_s for t = 1..T."""

    betas: torch.Tensor

    @property
    def T(self) -> int:
        return self.betas.numel()

    @property
    def alphas(self) -> torch.Tensor:
        return 1 - self.betas

    @property
    def alpha_bar(self) -> torch.Tensor:
        return torch.cumprod(self.alphas, 0)

    @property
    def snr(self) -> torch.Tensor:
        """SNR(t) = ᾱ_t / (1 − ᾱ_t)."""
        ab = self.alpha_bar
        return ab / (1 - ab)


def schedule_from_betas(betas: torch.Tensor) -> Schedule:
    """A schedule from any β_1..β_T in (0, 1)."""
    betas = v.tensor(betas, "betas", ndim=1, low_precision=False)
    if bool((betas <= 0).any()) or bool((betas >= 1).any()):
        v.fail("betas", "every β_t must lie in (0, 1)")
    return _resolved(Schedule(betas), "betas")


def _resolved(schedule: Schedule, name: str) -> Schedule:
    """A schedule whose 1 − ᾱ_t is nonzero: a β below the dtype's resolution makes ᾱ_t round to 1
    and SNR(t) = ᾱ/(1 − ᾱ) infinite."""
    unresolved = (1 - schedule.alpha_bar) == 0
    if bool(unresolved.any()):
        t = int(unresolved.nonzero()[0]) + 1
        v.fail(name, f"1 − ᾱ_t rounds to 0 in {schedule.betas.dtype} at t = {t} (β_t = "
                     f"{float(schedule.betas[t - 1]):.3g}): the SNR is infinite; use larger β or float64")
    return schedule


def linear_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02, *,
                    dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> Schedule:
    """The DDPM linear schedule β_t = linspace(beta_start, beta_end, T) (Ho et al. 2020)."""
    T = v.integer(T, "T", minimum=1)
    beta_start = v.real(beta_start, "beta_start", positive=True, below=1.0)
    beta_end = v.real(beta_end, "beta_end", positive=True, below=1.0)
    dtype = v.float_dtype(dtype, low_precision=False)
    return _resolved(Schedule(torch.linspace(beta_start, beta_end, T, dtype=dtype, device=device)), "beta_start")


def loss_weight(name: str, schedule: Schedule, *, gamma: float = 5.0) -> torch.Tensor:
    """v(t), t = 1..T: the factor multiplying the ε-prediction loss ℓ_t.

    ``eps``: 1 (DDPM L_simple). ``vlb``: β_t/(2α_t(1−ᾱ_t)), the variational-bound weight
    with σ_t² = β_t (Ho et al. eq. 12). ``snr``: SNR(t), a weight growing with the SNR
    as the seed describes. ``min_snr_gamma``: min(SNR, γ)/SNR, Min-SNR-γ (Hang et al.
    2023) for ε-prediction. ``truncated_snr``: max(SNR, 1)/SNR (Salimans & Ho 2022).
    ``v``: (1+SNR)/SNR = 1/ᾱ_t, since ‖v̂ − v‖² = ‖ε̂ − ε‖²/ᾱ_t for v-prediction.
    """
    name = v.choice(name, "name", WEIGHTINGS)
    gamma = v.real(gamma, "gamma", positive=True)
    _schedule(schedule)
    return v.finite_result(_loss_weight(name, schedule, gamma), "schedule",
                           f"the {name!r} weight overflows: ᾱ_t underflows to 0 at large t")


def _schedule(schedule: object) -> Schedule:
    if not isinstance(schedule, Schedule):
        v.fail("schedule", f"expected a gradcore.diffusion.Schedule, got {type(schedule).__name__}")
    return schedule


def _loss_weight(name: str, schedule: Schedule, gamma: float) -> torch.Tensor:
    snr = schedule.snr
    if name == "eps":
        return torch.ones_like(snr)
    if name == "vlb":
        return schedule.betas / (2 * schedule.alphas * (1 - schedule.alpha_bar))
    if name == "snr":
        return snr
    if name == "min_snr_gamma":
        return snr.clamp(max=gamma) / snr
    if name == "truncated_snr":
        return snr.clamp(min=1.0) / snr
    return (1 + snr) / snr


def _time_embedding(t: torch.Tensor, T: int, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    ang = (t.to(torch.float32) / T)[..., None] * 1000.0 * freqs
    return torch.cat([ang.sin(), ang.cos()], -1)


class Denoiser(nn.Module):
    """ε̂(x_t, t): an MLP on the flattened x_t concatenated with a sinusoidal time embedding."""

    def __init__(self, dim: int, hidden: int = 64, emb_dim: int = 32, T: int = 1000) -> None:
        super().__init__()
        self.dim = v.integer(dim, "dim", minimum=1)
        self.T = v.integer(T, "T", minimum=1)
        self.emb_dim = v.integer(emb_dim, "emb_dim", minimum=2)
        hidden = v.integer(hidden, "hidden", minimum=1)
        self.net = nn.Sequential(nn.Linear(self.dim + self.emb_dim, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, self.dim))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # metadata checks only: this runs under vmap, where data-dependent checks are not allowed
        if x_t.shape[-1] != self.dim:
            v.fail("x_t", f"last dim {x_t.shape[-1]} does not match the denoiser's dim {self.dim}")
        v.module_input(self, x_t, "x_t")
        emb = _time_embedding(t, self.T, self.emb_dim).to(x_t.dtype).expand(*x_t.shape[:-1], -1)
        return self.net(torch.cat([x_t.flatten(-1), emb], -1))


def q_sample(x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε, with t broadcast over the leading dims of x₀."""
    x0 = v.tensor(x0, "x0")
    eps = v.tensor(eps, "eps")
    v.same_shape(x0, eps, "x0", "eps")
    v.same_dtype(x0, eps, "x0", "eps")
    _schedule(schedule)
    # t counts 1..T; t = 0 or t < 0 would index alpha_bar from its end (t = 0 → x_T)
    t = v.integer_tensor(t, "t", minimum=1, maximum=schedule.T)
    if tuple(t.shape) != tuple(x0.shape[:t.ndim]):
        v.fail("t", f"shape {tuple(t.shape)} does not match the leading dims of x0 {tuple(x0.shape)}")
    v.same_device(x0, t, "x0", "t")
    return _q_sample(x0, t, eps, schedule)


def _q_sample(x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    # unvalidated: runs under vmap, where data-dependent checks are not allowed
    ab = schedule.alpha_bar.to(x0.dtype)[t - 1]
    while ab.ndim < x0.ndim:
        ab = ab[..., None]
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps


def per_timestep_gradients(model: Denoiser, x0: torch.Tensor, t: torch.Tensor, schedule: Schedule,
                           *, generator: torch.Generator | None = None) -> torch.Tensor:
    """∇_θ ℓ_t for each t in ``t``: rows of a (len(t), #params) matrix, unweighted.

    ``x0`` is (len(t), batch, dim): one batch of data per time step. The gradient of the
    weighted loss v(t)·ℓ_t is v(t) times row t (linearity), see :func:`effective_contributions`.
    """
    model = v.module(model, "model")
    x0 = v.module_input(model, v.tensor(x0, "x0", ndim=3), "x0")
    if isinstance(model, Denoiser) and x0.shape[-1] != model.dim:
        v.fail("x0", f"last dim {x0.shape[-1]} does not match the denoiser's dim {model.dim}")
    _schedule(schedule)
    t = v.integer_tensor(t, "t", minimum=1, maximum=schedule.T)
    if t.ndim != 1 or t.shape[0] != x0.shape[0]:
        v.fail("t", f"shape {tuple(t.shape)}: expected one time step per x0 batch ({x0.shape[0]},)")
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device="cpu").to(x0.device)
    params = {k: p.detach() for k, p in model.named_parameters()}

    def loss(p: dict[str, torch.Tensor], ti: torch.Tensor, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        x_t = _q_sample(x, ti.expand(x.shape[0]), e, schedule)
        pred = func.functional_call(model, p, (x_t, ti.expand(x.shape[0])))
        return (pred - e).square().sum(-1).mean()

    grads = func.vmap(func.grad(loss), in_dims=(None, 0, 0, 0))(params, t, x0, eps)
    return torch.cat([g.reshape(t.shape[0], -1) for g in grads.values()], 1)


def _clip_rows(grad: torch.Tensor, max_norms: torch.Tensor) -> torch.Tensor:
    out = []
    for i, (row, c) in enumerate(zip(grad, max_norms)):
        holder = torch.zeros_like(row)
        holder.grad = row.clone()
        _no_overflow(torch.nn.utils.clip_grad_norm_([holder], float(c)), f"row {i}'s")
        out.append(holder.grad)
    return torch.stack(out)


def _no_overflow(norm: torch.Tensor, whose: str) -> None:
    # torch's clip_grad_norm_ scales a finite gradient whose norm overflows to 0: refuse instead
    if not bool(torch.isfinite(norm)):
        v.fail("grad", f"{whose} norm overflows {norm.dtype}; clip in float64")


def clip_time_dependent(grad: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Clip each row ``grad[i]`` (time step ``t[i]``) to norm ≤ c(t[i]); ``c`` indexed by t−1."""
    grad = v.tensor(grad, "grad", ndim=2)
    c = v.tensor(c, "c", ndim=1)
    t = v.integer_tensor(t, "t", minimum=1, maximum=c.numel())
    if t.ndim != 1 or t.shape[0] != grad.shape[0]:
        v.fail("t", f"shape {tuple(t.shape)}: expected one time step per grad row ({grad.shape[0]},)")
    if bool((c <= 0).any()):
        v.fail("c", "thresholds must be > 0")
    return _clip_rows(grad, c[t - 1])


def clip_global(grad: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Rows of ``grad`` scaled by the one factor that clips their sum to norm ≤ max_norm."""
    grad = v.tensor(grad, "grad", ndim=2)
    max_norm = v.real(max_norm, "max_norm", positive=True)
    holder = torch.zeros_like(grad[0])
    holder.grad = grad.sum(0)
    total = torch.nn.utils.clip_grad_norm_([holder], max_norm)
    _no_overflow(total, "the summed gradient's")
    scale = (holder.grad.norm() / total).clamp(max=1.0) if float(total) > 0 else total.new_ones(())
    return grad * scale


def time_dependent_threshold(weights: torch.Tensor, kappa: float) -> torch.Tensor:
    """c(t) = κ / v(t): inversely proportional to the loss weight (002 §在现代生成模型中的体现)."""
    weights = v.tensor(weights, "weights", ndim=1)
    if bool((weights <= 0).any()):
        v.fail("weights", "loss weights must be > 0")
    return v.finite_result(v.real(kappa, "kappa", positive=True) / weights, "kappa",
                           f"κ / v(t) overflows {weights.dtype} (a loss weight is too small)")


def effective_contributions(grad: torch.Tensor, t: torch.Tensor, weights: torch.Tensor,
                            scheme: str, threshold: float) -> torch.Tensor:
    """e(t) = ‖g_t‖: the norm of time step t's share g_t of the update Σ_t g_t.

    ``grad`` rows are the unweighted ∇ℓ_t, ``weights`` is v(·) indexed by t−1. Schemes:
    ``none`` g_t = v(t)∇ℓ_t; ``global`` the same rows scaled by the one factor that clips
    Σ_t g_t to norm ≤ ``threshold``; ``time_dependent`` g_t = v(t)·clip_{c(t)}(∇ℓ_t) with
    c(t) = threshold/v(t) (clip, then weight: "经过裁剪和加权后"); ``time_dependent_weighted``
    g_t = clip_{c(t)}(v(t)∇ℓ_t) (the weighted gradient clipped at the same c(t)).
    """
    scheme = v.choice(scheme, "scheme", SCHEMES)
    grad = v.tensor(grad, "grad", ndim=2)
    weights = v.tensor(weights, "weights", ndim=1)
    t = v.integer_tensor(t, "t", minimum=1, maximum=weights.numel())
    if t.ndim != 1 or t.shape[0] != grad.shape[0]:
        v.fail("t", f"shape {tuple(t.shape)}: expected one time step per grad row ({grad.shape[0]},)")
    threshold = v.real(threshold, "threshold", positive=True)
    w = weights.to(grad.dtype)[t - 1][:, None]
    if scheme == "none":
        g = w * grad
    elif scheme == "global":
        g = clip_global(w * grad, threshold)
    else:
        c = time_dependent_threshold(weights.to(grad.dtype), threshold)
        g = w * clip_time_dependent(grad, t, c) if scheme == "time_dependent" else \
            clip_time_dependent(w * grad, t, c)
    return v.finite_result(g.norm(dim=1), "grad", f"the weighted contributions overflow {grad.dtype}")


def spread(e: torch.Tensor) -> tuple[float, float]:
    """(max/min, coefficient of variation std/mean) of positive contributions e(t)."""
    e = v.tensor(e, "e", ndim=1)
    if bool((e <= 0).any()):
        v.fail("e", "contributions must be > 0")
    out = float(e.max() / e.min()), float(e.std(correction=0) / e.mean())
    if all(map(math.isfinite, out)):
        return out
    wide = e.double() / e.max().double()   # the ratio or the squares overflowed e's dtype
    out = float(e.max().double() / e.min().double()), float(wide.std(correction=0) / wide.mean())
    if not math.isfinite(out[0]):
        v.fail("e", f"max/min overflows float64 ({float(e.max()):.3g} / {float(e.min()):.3g})")
    return out

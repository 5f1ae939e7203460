"""Numbers of diffusion noise schedules, measured on gradcore.diffusion's schedules.

LIT-03 (Ho et al. 2020 §4): ᾱ_T of the linear β schedule and the prior term
L_T = D_KL(q(x_T|x_0) ‖ N(0, I)) per dimension in bits. LIT-04 (Hang et al. 2023 §3.4):
SNR(t), the ε-prediction Min-SNR-γ weight min(SNR, γ)/SNR, and the first t where it is 1.
"""
from __future__ import annotations

import math
from typing import Any

import mpmath
import torch

from .. import diffusion as D
from .diffusion import resolve
from .measurement import Kind, Measurement, recipe


def _schedule(T: int, beta_start: float, beta_end: float, technique: Any = None) -> D.Schedule:
    """The linear schedule, or ``technique``'s (a user's schedule in the diffusion contract)."""
    if technique is not None:
        return resolve(technique)[0]
    return D.linear_schedule(T, beta_start, beta_end, dtype=torch.float64)


@recipe
def alpha_bar(*, t: int = 1000, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
              technique: Any = None) -> Measurement:
    """LIT-03: ᾱ_t = ∏_{s≤t}(1 − β_s) of the linear schedule, or of ``technique``'s (t is 1-based)."""
    # a product of up to T factors: rounding grows ~T ulp
    return Measurement(float(_schedule(T, beta_start, beta_end, technique).alpha_bar[t - 1]), Kind.NUMERIC, "float64",
                       "cpu", {"T": T}, conditioning=float(T))


@recipe
def prior_kl_bits(*, x0_sq: float = 1.0, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
                  log10: bool = False, technique: Any = None) -> Measurement:
    """LIT-03: D_KL(N(√ᾱ_T x_0, (1−ᾱ_T)) ‖ N(0, 1)) in bits for one dimension with x_0² = ``x0_sq``
    (ᾱ_T of ``technique``'s schedule when given).

    ½[ᾱ_T(x_0² − 1) − ln(1 − ᾱ_T)]/ln 2, with log1p so the small ᾱ_T is not lost; ``log10``
    returns log₁₀ of it (the claim is an order of magnitude).
    """
    ab = float(_schedule(T, beta_start, beta_end, technique).alpha_bar[-1])
    bits = 0.5 * (ab * (x0_sq - 1) - math.log1p(-ab)) / math.log(2)
    # at x0_sq = 0 the two terms cancel to O(ᾱ²): relative rounding ~ε/ᾱ_T ~ 1e5 ulp
    return Measurement(math.log10(bits) if log10 else bits, Kind.NUMERIC, "float64", "cpu",
                       {"T": T, "x_0²": x0_sq}, conditioning=1e5)


def _weights(T: int, beta_start: float, beta_end: float, gamma: float) -> torch.Tensor:
    return D.loss_weight("min_snr_gamma", _schedule(T, beta_start, beta_end), gamma=gamma)


@recipe
def snr(*, t: int = 1, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Measurement:
    """LIT-04: SNR(t) = ᾱ_t/(1 − ᾱ_t) of gradcore.diffusion's linear schedule."""
    # 1 − ᾱ_t loses ~log2(SNR) bits at small t: relative error ~SNR ulp
    s = float(_schedule(T, beta_start, beta_end).snr[t - 1])
    return Measurement(s, Kind.NUMERIC, "float64", "cpu", {"T": T}, conditioning=max(1.0, s))


@recipe
def min_snr_weight(*, t: int = 1, gamma: float = 5.0, T: int = 1000, beta_start: float = 1e-4,
                   beta_end: float = 0.02) -> Measurement:
    """LIT-04: the ε-prediction Min-SNR-γ weight min(SNR(t), γ)/SNR(t) from gradcore.diffusion."""
    w = float(_weights(T, beta_start, beta_end, gamma)[t - 1])
    return Measurement(w, Kind.NUMERIC, "float64", "cpu", {"T": T, "γ": gamma}, conditioning=1e4)


@recipe
def first_unit_weight_step(*, gamma: float = 5.0, T: int = 1000, beta_start: float = 1e-4,
                           beta_end: float = 0.02, precision: str = "float64", technique: Any = None) -> Measurement:
    """LIT-04: the first t (1-based) whose Min-SNR-γ weight is 1, i.e. SNR(t) ≤ γ.

    ``precision`` 'float64' reads gradcore.diffusion's weights; 'mp50' recomputes the
    schedule in 50-digit arithmetic (mpmath), the reference the float64 value must match.
    With ``technique`` (the diffusion contract): the first t from which its ε-loss weight
    v(t) is 1 at every later step (L_simple's weight, as Min-SNR-γ from SNR ≤ γ on), 0 if none.
    """
    if technique is not None:
        ones = (resolve(technique)[1] == 1).flip(0).cumprod(0).flip(0)   # 1 where v = 1 from t on
        first = int(ones.argmax()) + 1 if bool(ones.any()) else 0
        return Measurement(first, Kind.EXACT, "float64", "cpu", {"T": len(ones)})
    if precision == "mp50":
        with mpmath.workdps(50):
            start, end = mpmath.mpf(str(beta_start)), mpmath.mpf(str(beta_end))
            ab = mpmath.mpf(1)
            for i in range(T):
                ab *= 1 - (start + (end - start) * i / (T - 1))
                if ab / (1 - ab) <= gamma:
                    return Measurement(i + 1, Kind.EXACT, None, "cpu", {"T": T, "γ": gamma})
        raise ValueError("no step reaches SNR ≤ γ")
    ones = (_weights(T, beta_start, beta_end, gamma) == 1).nonzero()
    return Measurement(int(ones[0]) + 1, Kind.EXACT, "float64", "cpu", {"T": T, "γ": gamma})

"""Weight initialisers (torch.nn.init) and the variance each one's formula prescribes.

004 §3.3.3 Definitions 3.3.8 (Xavier, Var = 2/(n_in+n_out)) and 3.3.9 (He, Var = 2/n_in),
003 §4 "合理的权重初始化". Every initialiser calls torch's own routine in place, so the
claims about Xavier/He are measured on torch's implementation; :func:`variance` gives
the Var(W) its formula intends, for comparison with what torch draws.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from torch import nn

from . import _validate as v

Tensor = torch.Tensor


def _weight(weight: Tensor) -> Tensor:
    # finite=False: an initialiser overwrites every entry, so what was there does not matter
    return v.writable(v.tensor(weight, "weight", ndim=2, finite=False), "weight")


def xavier_normal(weight: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot normal, std = gain·√(2/(n_in+n_out)) (``nn.init.xavier_normal_``)."""
    gain = v.real(gain, "gain", positive=True)
    return _drawn(nn.init.xavier_normal_(_weight(weight), gain=gain), "gain")


def xavier_uniform(weight: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot uniform on ±gain·√(6/(n_in+n_out)) (``nn.init.xavier_uniform_``)."""
    gain = v.real(gain, "gain", positive=True)
    return _drawn(nn.init.xavier_uniform_(_weight(weight), gain=gain), "gain")


def kaiming_normal(weight: Tensor, nonlinearity: str = "relu", a: float = 0.0) -> Tensor:
    """He normal, fan-in mode, std = gain/√n_in (``nn.init.kaiming_normal_``)."""
    weight, nonlinearity, a = _weight(weight), _nonlinearity(nonlinearity), v.real(a, "a")
    return _drawn(nn.init.kaiming_normal_(weight, a=a, mode="fan_in", nonlinearity=nonlinearity), "a")


def kaiming_uniform(weight: Tensor, nonlinearity: str = "relu", a: float = 0.0) -> Tensor:
    """He uniform, fan-in mode (``nn.init.kaiming_uniform_``)."""
    weight, nonlinearity, a = _weight(weight), _nonlinearity(nonlinearity), v.real(a, "a")
    return _drawn(nn.init.kaiming_uniform_(weight, a=a, mode="fan_in", nonlinearity=nonlinearity), "a")


def orthogonal(weight: Tensor, gain: float = 1.0) -> Tensor:
    """gain × a (semi-)orthogonal matrix (``nn.init.orthogonal_``)."""
    weight = _weight(weight)
    if weight.dtype in v.LOW_PRECISION:   # orthogonal_ needs a QR factorisation (no half kernels)
        v.fail("weight", f"dtype {weight.dtype} is not supported by orthogonal init; use float32 or float64")
    return _drawn(nn.init.orthogonal_(weight, gain=v.real(gain, "gain", positive=True)), "gain")


def torch_default(weight: Tensor) -> Tensor:
    """What ``nn.Linear.reset_parameters`` does to a weight (kaiming_uniform, a=√5)."""
    # Call torch's own method on a stand-in so a change to nn.Linear's default is measured.
    nn.Linear.reset_parameters(SimpleNamespace(weight=_weight(weight), bias=None))
    return weight


def normal(weight: Tensor, std: float = 1.0) -> Tensor:
    """N(0, std²) entries (``nn.init.normal_``)."""
    std = v.real(std, "std", positive=True)
    return _drawn(nn.init.normal_(_weight(weight), 0.0, std), "std")


def _drawn(weight: Tensor, scale: str) -> Tensor:
    # a scale too large for the dtype (std 1e10 in float16) fills the weight with ±inf
    return v.finite_result(weight, scale, f"the drawn entries overflow {weight.dtype}; use a smaller {scale} "
                                          "or a wider dtype")


_NONLINEARITIES = ("linear", "sigmoid", "tanh", "relu", "leaky_relu", "selu")


def _nonlinearity(name: str) -> str:
    return v.choice(name, "nonlinearity", _NONLINEARITIES)


def _gain(nonlinearity: str = "relu", a: float = 0.0) -> float:
    return nn.init.calculate_gain(_nonlinearity(nonlinearity), a if nonlinearity == "leaky_relu" else None)


def _var_xavier(n_in: int, n_out: int, gain: float = 1.0) -> float:
    return gain**2 * 2.0 / (n_in + n_out)


def _var_kaiming(n_in: int, n_out: int, nonlinearity: str = "relu", a: float = 0.0) -> float:
    return _gain(nonlinearity, a) ** 2 / n_in


def _var_orthogonal(n_in: int, n_out: int, gain: float = 1.0) -> float:
    # Orthonormal rows (or columns) of length max(n_in, n_out) hold unit energy each.
    return gain**2 / max(n_in, n_out)


def _var_torch_default(n_in: int, n_out: int) -> float:
    bound = _gain("leaky_relu", math.sqrt(5)) * math.sqrt(3.0 / n_in)
    return bound**2 / 3.0


def _var_normal(n_in: int, n_out: int, std: float = 1.0) -> float:
    return std**2


@dataclass(frozen=True)
class Initialiser:
    """An in-place initialiser and the Var(W) its formula prescribes."""

    name: str
    apply: Callable[..., Tensor]
    formula_variance: Callable[..., float]

    def __repr__(self) -> str:
        """The call that rebuilds it (a registry lookup), as Hypothesis-style reprs do."""
        return f"gradcore.initialisation.get({self.name!r})"

    def __call__(self, weight: Tensor, **kw) -> Tensor:
        return self.apply(weight, **kw)


INITIALISERS: dict[str, Initialiser] = {
    "xavier_normal": Initialiser("xavier_normal", xavier_normal, _var_xavier),
    "xavier_uniform": Initialiser("xavier_uniform", xavier_uniform, _var_xavier),
    "kaiming_normal": Initialiser("kaiming_normal", kaiming_normal, _var_kaiming),
    "kaiming_uniform": Initialiser("kaiming_uniform", kaiming_uniform, _var_kaiming),
    "orthogonal": Initialiser("orthogonal", orthogonal, _var_orthogonal),
    "torch_default": Initialiser("torch_default", torch_default, _var_torch_default),
    "normal": Initialiser("normal", normal, _var_normal),
}


def get(name: str) -> Initialiser:
    """The initialiser called ``name``."""
    return INITIALISERS[v.choice(name, "name", INITIALISERS)]


def variance(name: str, n_in: int, n_out: int, **kw) -> float:
    """Var(W_ij) prescribed by initialiser ``name`` for an (n_out × n_in) weight."""
    n_in = v.integer(n_in, "n_in", minimum=1)
    n_out = v.integer(n_out, "n_out", minimum=1)
    return get(name).formula_variance(n_in, n_out, **kw)

"""gradcore: machine-checked claims about gradients in deep networks.

Models and techniques (one module each, built on torch.nn / torch.func):
``activations`` (registry with sympy twins), ``init`` (initialisers and their
variance formulas), ``chains`` (deep feed-forward and linear networks),
``recurrent`` (linear/Elman RNNs, the gated form, GRU/LSTM cells, BPTT),
``residual``, ``dense``, ``unet`` (skip paths), ``norms`` (BN/LN/RMSNorm and exact
Jacobians), ``attention`` and ``transformer`` (scaled/unscaled attention, Pre-/Post-LN
blocks), ``conv`` (standard/depthwise/pointwise/separable convolutions and their exact
DFT spectra), ``flows`` (volume-preserving layers), ``diffusion`` (DDPM schedule,
weightings, time-dependent clipping), ``clipping``, ``weight_decay``, ``dynamics``
(forward Euler) and ``adjoint`` (optimal-control costates).

Measuring tools: ``jacobian`` (torch.func Jacobians and jvp/vjp operators),
``spectral`` (norms, radius, condition number, effective rank, matrix-free σ_max),
``probes`` (per-layer gradient norms, transfer factors, overflow depths) and
``stats`` (confidence intervals). ``gradcore.verify`` holds the verification
machinery; ``gradcore.testing`` checks a new technique from a user's own tests.
"""
from .errors import GradcoreInputError

__all__ = ["GradcoreInputError"]
__version__ = "0.1.0"

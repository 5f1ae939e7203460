"""The ``convolution`` kind of `gradcore check` (gradcore/verify/contracts/convolution.py).

Its σ_max bracket is checked against the dense Jacobian; each gating clause is violated by a real
broken variant (a weight-standardised conv whose forward is not the convolution its ``.weight``
defines; torch's spectral_norm, which normalises the reshaped kernel, not the operator; a
depthwise-separable conv in a ReLU stack) and held by a good one.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from gradcore.jacobian import jacobian
from gradcore.measure import conv as M
from gradcore.verify.check import builtin_results, infer_kind, settings_for
from gradcore.verify.contracts import contract

from .contract_helpers import refuses_in_one_line, run_clauses, run_readme_example


class WSConv2d(nn.Conv2d):
    """Weight standardisation (Qiao et al. 2019; BiT): the forward convolves with each output
    channel's kernel standardised to zero mean and unit variance, not with ``.weight``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        w = (w - w.mean((1, 2, 3), keepdim=True)) / w.std((1, 2, 3), keepdim=True)
        return self._conv_forward(x, w, self.bias)


def ws_conv(channels: int) -> nn.Module:
    return WSConv2d(channels, channels, 3, padding=1, bias=False)


class CircularSigma(nn.Module):
    """Parametrisation: the kernel divided by its circular conv's exact σ_max on a 32×32 grid
    (which contains the frequencies of every 8×8 and 16×16 input: σ_max there is ≤ 1)."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        resp = torch.fft.fft2(w, s=(32, 32)).permute(2, 3, 0, 1)
        return w / torch.linalg.matrix_norm(resp, ord=2).max()


def lipschitz_conv(channels: int) -> nn.Module:
    conv = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="circular", bias=False)
    return torch.nn.utils.parametrize.register_parametrization(conv, "weight", CircularSigma())


def to_vector(channels: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(channels, channels, 3), nn.Flatten())


def not_a_module(channels: int) -> int:
    return channels


def _verdicts(obj, *ids: str) -> dict[str, str]:
    return {cid: r.verdict for cid, r in run_clauses("convolution", obj, *ids, name="t").items()}


CONFIGS = [
    dict(padding=1),
    dict(padding=1, stride=2),
    dict(padding=2, dilation=2),
    dict(padding=0),
    dict(padding="same", kernel_size=4),
    dict(padding=1, padding_mode="circular", stride=2),
    dict(padding=1, padding_mode="circular", groups=3),
    dict(padding=0, padding_mode="circular"),
]


@pytest.mark.parametrize("config", CONFIGS, ids=[str(c) for c in CONFIGS])
def test_the_certified_bound_is_at_least_the_dense_operators_sigma(config):
    torch.manual_seed(0)
    kw = {"kernel_size": 3, **config}
    conv = nn.Conv2d(3, 3, bias=False, dtype=torch.float64, **kw)
    x = torch.randn(1, 3, 7, 6, dtype=torch.float64)
    dense = float(torch.linalg.matrix_norm(_dense(conv, x), ord=2))
    bound, how = M.certified_upper_bound(conv, 7, 6)
    assert dense <= bound * (1 + 1e-9), (config, dense, bound)
    exact = config.get("padding_mode") == "circular" and "stride" not in config and config["padding"] == 1
    assert how.startswith("exact") == exact
    if exact:
        assert bound == pytest.approx(dense, rel=1e-9)


def _dense(layer, x):
    return jacobian(lambda t: layer(t.reshape(x.shape)).reshape(-1), x.reshape(-1)).detach()


def test_a_sequential_bound_multiplies_layers_and_activations_and_an_opaque_module_has_none():
    torch.manual_seed(1)
    seq = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, dtype=torch.float64), nn.Tanh(),
                        nn.Conv2d(4, 3, 3, stride=2, padding=1, dtype=torch.float64))
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    bound, how = M.certified_upper_bound(seq, 6, 6)
    assert how.startswith("certified") and float(torch.linalg.matrix_norm(_dense(seq, x), ord=2)) <= bound
    assert M.certified_upper_bound(nn.Sequential(nn.Conv2d(3, 3, 3), nn.GELU()), 6, 6) is None
    assert M.certified_upper_bound(nn.Conv2d(3, 3, 3, padding=1, padding_mode="reflect"), 6, 6) is None
    assert M.certified_upper_bound(WSConv2d(3, 3, 3), 6, 6) is not None   # believed, and checked by a clause


@pytest.fixture(scope="module")
def builtins():
    return {name: {r.clause: r for r in rows} for name, rows in builtin_results("convolution", settings_for()).items()}


def test_builtin_verdicts(builtins):
    assert set(builtins) == {"standard", "depthwise", "pointwise", "separable"}
    for name, rows in builtins.items():
        assert rows["fourier-spectrum"].verdict == "holds" and rows["rms-gain"].verdict == "holds", name
        assert rows["non-expansive"].verdict == "violated", name      # He init: σ_max ≈ 2.3 … 4
        lower, upper = (rows["fourier-spectrum"].constants[k] for k in ("σ_max lower (Lanczos)", "σ_max upper"))
        assert str(upper.witness).startswith("exact") and lower.value == pytest.approx(upper.value, rel=1e-8)
    # CONV-04: the plain depthwise→pointwise stack amplifies ≥ 2× the standard one; the others do not
    assert {n: r["stack-growth"].verdict for n, r in builtins.items()} == {
        "standard": "holds", "depthwise": "holds", "pointwise": "holds", "separable": "violated"}
    assert builtins["separable"]["versus-standard"].verdict == "violated"      # CONV-02: usually larger
    assert builtins["pointwise"]["versus-standard"].verdict == "holds"


def test_a_conv_whose_forward_is_not_its_weight_violates_the_spectrum_and_rms_clauses():
    assert _verdicts(ws_conv, "fourier-spectrum", "rms-gain") == {"fourier-spectrum": "violated",
                                                                   "rms-gain": "violated"}


def test_an_exactly_normalised_circular_conv_is_non_expansive_and_torch_spectral_norm_is_not():
    assert _verdicts(lipschitz_conv, "fourier-spectrum", "rms-gain", "non-expansive") == dict.fromkeys(
        ("fourier-spectrum", "rms-gain", "non-expansive"), "holds")
    sn = lambda c: torch.nn.utils.parametrizations.spectral_norm(nn.Conv2d(c, c, 3, padding=1))  # noqa: E731
    assert _verdicts(sn, "non-expansive") == {"non-expansive": "violated"}


def test_a_layer_without_a_certified_bound_is_inconclusive_not_a_pass():
    gelu_conv = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.GELU())
    assert _verdicts(gelu_conv, "fourier-spectrum") == {"fourier-spectrum": "inconclusive"}


def test_a_layer_that_cannot_be_stacked_leaves_the_stack_clause_open():
    strided = nn.Conv2d(16, 16, 3, stride=2, padding=1)
    assert _verdicts(strided, "stack-growth") == {"stack-growth": "inconclusive"}


@pytest.mark.parametrize("obj, message", [
    (to_vector, r"must map N×C×H×W to N×C′×H′×W′; on a \(2, 8, 8, 8\) input it returned \(2, 288\)"),
    (not_a_module, "factory returned int"),
    (nn.Linear(4, 4), "has no nn.Conv2d"),
    (3, "not callable"),
    (nn.Conv2d(8, 8, 9), r"layer failed on a \(2, 8, 8, 8\) input"),
])
def test_bad_layers_are_one_line_check_errors(obj, message):
    refuses_in_one_line(obj, "convolution", message)


def test_kind_inference():
    settings = settings_for()
    assert infer_kind(nn.Conv2d(4, 4, 3, padding=1), settings).kind == "convolution"
    assert infer_kind(lipschitz_conv, settings).kind == "convolution"
    assert not contract("convolution").looks_like(torch.tanh, settings)
    assert not contract("convolution").looks_like(nn.LayerNorm, settings)
    assert not contract("convolution").looks_like(to_vector, settings)


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch, capsys):
    run_readme_example("myconvs.py", tmp_path, monkeypatch, capsys)
    assert (tmp_path / "checks" / "sn_conv.json").exists()

"""Unit tests of gradcore.normalisation: closed-form Jacobians against jacrev of torch's modules."""
import pytest
import torch
from torch import func

from gradcore import GradcoreInputError
from gradcore import normalisation as norms

DT = torch.float64


def _gamma(n: int, device: str) -> torch.Tensor:
    return torch.linspace(0.5, 2.0, n, dtype=DT, device=device)


@pytest.mark.parametrize("m", [2, 3, 8])
def test_batchnorm_jacobian_matches_torch(device, m):
    x = (torch.randn(m, 3, dtype=DT, device=device) * 2 + 1)
    bn = norms.batch_norm(3, eps=1e-3).to(device, DT)
    with torch.no_grad():
        bn.weight.copy_(_gamma(3, device))
    full = norms.module_jacobian(bn, x).reshape(m, 3, m, 3)
    blocks = norms.batchnorm_jacobian(x, 1e-3, bn.weight.detach())
    for f in range(3):
        torch.testing.assert_close(blocks[f], full[:, f, :, f])
        torch.testing.assert_close(full[:, f, :, (f + 1) % 3], torch.zeros(m, m, dtype=DT, device=device))
    torch.testing.assert_close(norms.batchnorm_jacobian(x[:, 0], 1e-3, 0.5), blocks[0] * 0.5 / bn.weight[0].item())


def test_module_jacobian_leaves_running_stats_alone(device):
    bn = torch.nn.BatchNorm1d(2).to(device, DT)
    x = torch.randn(5, 2, dtype=DT, device=device)
    norms.module_jacobian(bn, x)
    assert bn.track_running_stats and int(bn.num_batches_tracked) == 0
    torch.testing.assert_close(bn.running_mean, torch.zeros(2, dtype=DT, device=device))


def test_layernorm_jacobian_matches_torch(device):
    h = torch.randn(9, dtype=DT, device=device) + 0.7
    ln = norms.layer_norm(9, eps=1e-2).to(device, DT)
    with torch.no_grad():
        ln.weight.copy_(_gamma(9, device))
    torch.testing.assert_close(norms.layernorm_jacobian(h, 1e-2, ln.weight.detach()), func.jacrev(ln)(h))


@pytest.mark.parametrize("eps", [None, 1e-2])
def test_rmsnorm_jacobian_matches_torch(device, eps):
    h = torch.randn(9, dtype=DT, device=device) + 0.7
    rn = norms.rms_norm(9, eps=eps).to(device, DT)
    with torch.no_grad():
        rn.weight.copy_(_gamma(9, device))
    e = torch.finfo(DT).eps if eps is None else eps
    torch.testing.assert_close(norms.rmsnorm_jacobian(h, e, rn.weight.detach()), func.jacrev(rn)(h))


def test_layer_factories_are_torch_modules():
    assert isinstance(norms.batch_norm(4), torch.nn.BatchNorm1d)
    assert isinstance(norms.layer_norm(4), torch.nn.LayerNorm)
    assert isinstance(norms.rms_norm(4), torch.nn.RMSNorm)
    assert norms.batch_norm(4).running_mean is None


@pytest.mark.parametrize("call", [
    lambda: norms.batch_norm(0),
    lambda: norms.layer_norm(3, eps=0.0),
    lambda: norms.rms_norm(3, eps=-1.0),
    lambda: norms.batchnorm_jacobian(torch.ones(4, 2, 2)),
    lambda: norms.batchnorm_jacobian(torch.tensor([1.0, float("nan")])),
    lambda: norms.batchnorm_jacobian(torch.ones(4), eps=0.0),
    lambda: norms.batchnorm_jacobian(torch.randn(4, 3), gamma=torch.ones(2)),
    lambda: norms.layernorm_jacobian(torch.randn(2, 3)),
    lambda: norms.layernorm_jacobian(torch.randn(3), eps=-1e-5),
    lambda: norms.rmsnorm_jacobian(torch.zeros(3), eps=0.0),
    lambda: norms.rmsnorm_jacobian(torch.empty(0)),
    lambda: norms.module_jacobian(lambda t: t, torch.ones(2)),
])
def test_bad_inputs_raise(call):
    with pytest.raises(GradcoreInputError):
        call()


class _NaNWhenFlat(torch.nn.Module):
    """Normalises each row, but returns NaN (with a zero Jacobian) when a row's spread is tiny."""

    def __init__(self, width: int) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.std(-1, keepdim=True, unbiased=False)
        return torch.where(s < 1e-3, torch.full_like(x, float("nan")), (x - x.mean(-1, keepdim=True)) / s)


def test_non_finite_layers_measure_as_infinite_never_zero():
    """Issue 12: a NaN output is an explosion/unmeasurable (∞), not a gain or a gap of 0."""
    from gradcore.measure import Given
    from gradcore.measure import normalisation as M

    make = Given(_NaNWhenFlat, "make")
    assert M.norm_jacobian_norm(make=make, scale=1e-6).value == float("inf")
    assert M.norm_jacobian_norm(make=make, scale=1.0).value < float("inf")
    assert M.batch_dependence(make=make, sizes=(2, 64), shift=0.0).value == 0.0
    nan_layer = Given(lambda width: (lambda x: x * float("nan")), "make")
    assert M.batch_dependence(make=nan_layer).value == float("inf")
    assert M.norm_jacobian_sigma(make=nan_layer, seeds=1).value == float("inf")
    assert M.norm_finite_on_constant(make=make).value == 0.0


def test_norm_recipes_reproduce_in_a_fresh_namespace():
    from gradcore.measure import Given
    from gradcore.measure import normalisation as M
    from gradcore.verify.reproduce import run

    m = M.norm_jacobian_sigma(make=Given(norms.layer_norm, "make", "from gradcore.normalisation import layer_norm as make"),
                              seeds=1)
    assert m.kind.value == "search" and 0.99 < m.value <= 1.0 + 1e-6
    assert run(m.reproduction) == m.value

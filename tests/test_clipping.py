"""Unit tests for gradcore.clipping against torch's in-place utilities and closed forms."""
import math

import pytest
import torch

from gradcore import GradcoreInputError
from gradcore.clipping import (ClippingRule, NormClip, ValueClip, clip_by_norm, clip_by_value,
                               clip_module_grads_by_norm, cosine, total_norm)


def _grads(device, dtype=torch.float64, scale=10.0):
    g = torch.Generator().manual_seed(1)
    return [(scale * torch.randn(s, generator=g, dtype=dtype)).to(device) for s in [(3, 4), (5,)]]


def test_norm_clip_matches_formula_and_torch(device):
    grads = _grads(device)
    norm = math.sqrt(sum(float(g.pow(2).sum()) for g in grads))
    out = clip_by_norm(grads, 2.0)
    for g, o in zip(grads, out):
        torch.testing.assert_close(o, g * 2.0 / (norm + 1e-6))
    assert total_norm(out) == pytest.approx(2.0, rel=1e-6)
    # same as torch.nn.utils.clip_grad_norm_ on a module holding these gradients
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    torch.nn.utils.clip_grad_norm_(params, 2.0)
    for p, o in zip(params, out):
        torch.testing.assert_close(p.grad, o, rtol=0, atol=0)


def test_norm_clip_leaves_inputs_and_small_grads_alone(device):
    grads = _grads(device)
    before = [g.clone() for g in grads]
    out = clip_by_norm(grads, 1e6)
    for g, b, o in zip(grads, before, out):
        assert torch.equal(g, b) and torch.equal(o, g) and o is not g
    single = clip_by_norm(grads[0], 1.0)
    assert isinstance(single, torch.Tensor) and single.device == grads[0].device


def test_value_clip_is_clamp(device):
    grads = _grads(device)
    out = clip_by_value(grads, 0.5)
    for g, o in zip(grads, out):
        assert torch.equal(o, g.clamp(-0.5, 0.5))
    assert isinstance(ValueClip(0.5), ClippingRule) and isinstance(NormClip(1.0), ClippingRule)
    assert all(torch.equal(a, b) for a, b in zip(ValueClip(0.5)(grads), out))


def test_edge_cases_zero_huge_nonfinite(device):
    zero = torch.zeros(4, device=device)
    assert torch.equal(clip_by_norm(zero, 1.0), zero)
    tiny = torch.tensor([1e-5, 0.0], dtype=torch.float64, device=device)
    # torch's eps: ‖g'‖ = θ‖g‖/(‖g‖+1e-6) instead of θ
    assert float(clip_by_norm(tiny, 1e-6).norm()) == pytest.approx(1e-6 * 1e-5 / (1e-5 + 1e-6))
    huge = torch.full((3,), 1e20, device=device)  # float32 norm overflows to inf
    # torch scales it to zeros (kept behind torch_overflow for CLIP-01); gradcore keeps the direction
    assert torch.equal(clip_by_norm(huge, 1.0, torch_overflow=True), torch.zeros(3, device=device))
    assert torch.allclose(clip_by_norm(huge, 1.0), torch.full((3,), 3 ** -0.5, device=device), rtol=1e-6)
    # non-finite entries are rejected, never NaN-scaled or clipped into a finite update
    bad = torch.tensor([1.0, float("nan")], device=device)
    for nonfinite in (True, False):
        with pytest.raises(GradcoreInputError, match=r"grads\[0\]: contains NaN"):
            clip_by_norm(bad, 1.0, error_if_nonfinite=nonfinite)
    with pytest.raises(GradcoreInputError, match=r"grads\[0\]: contains NaN or infinite"):
        clip_by_value(torch.tensor([float("inf"), -float("inf"), 1.0], device=device), 2.0)


def test_module_clip_in_place(device):
    net = torch.nn.Linear(4, 3).to(device)
    net(torch.randn(8, 4, device=device)).pow(2).sum().mul(100).backward()
    ref = [p.grad.clone() for p in net.parameters()]
    before = clip_module_grads_by_norm(net, 0.1)
    assert before == pytest.approx(total_norm(ref), rel=1e-6)
    for p, o in zip(net.parameters(), clip_by_norm(ref, 0.1)):
        torch.testing.assert_close(p.grad, o)


def test_cosine_against_closed_form(device):
    a = torch.tensor([1.0, 0.0, 0.0], device=device)
    b = torch.tensor([1.0, 1.0, 0.0], device=device)
    assert cosine(a, b) == pytest.approx(1 / math.sqrt(2))
    assert cosine([a, b], [2 * a, 2 * b]) == pytest.approx(1.0)
    big = torch.tensor([1e30, 1e30], device=device)
    assert cosine(big, big) == pytest.approx(1.0)


@pytest.mark.parametrize("call", [
    lambda: clip_by_norm([], 1.0),
    lambda: clip_by_norm(torch.ones(3), 0.0),
    lambda: clip_by_norm(torch.ones(3), float("nan")),
    lambda: clip_by_norm("x", 1.0),
    lambda: clip_by_norm(torch.ones(3, dtype=torch.int64), 1.0),
    lambda: clip_by_value(torch.ones(3), -1.0),
    lambda: clip_by_norm(torch.ones(3), 1.0, norm_type=0),
    lambda: cosine(torch.zeros(3), torch.ones(3)),
    lambda: cosine(torch.ones(3), torch.ones(4)),
    lambda: cosine(torch.ones(2), torch.tensor([1.0, float("inf")])),
    lambda: NormClip(-1.0),
    lambda: ValueClip(0),
    lambda: clip_module_grads_by_norm(torch.nn.Linear(2, 2), 1.0),
])
def test_bad_inputs(call):
    with pytest.raises(GradcoreInputError):
        call()

"""Issue 23, round two: the public API under mixed dtypes, wrong shapes, shared memory,
overflowing magnitudes and non-tensors — a gradcore error whose message starts with the
argument's name, or a right answer; never a raw torch error, a NaN, an inf or silent zeros."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from gradcore import (activations, adjoint, attention, chains, clipping, conv, dense, diffusion, dynamics, flows,
                      jacobian, lanczos, probes, recurrent, residual, spectral, stats, transformer,
                      unet, weight_decay)
from gradcore import initialisation as init
from gradcore import normalisation as norms
from gradcore.errors import InputError

D, F16 = torch.float64, torch.float16
S = diffusion.linear_schedule(10)


def _op() -> jacobian.JacobianOperator:
    return jacobian.jacobian_operator(torch.tanh, torch.ones(3))


def _zeroed_linear() -> nn.Sequential:
    net = nn.Sequential(nn.Linear(3, 3))
    with torch.no_grad():
        net[0].weight.zero_()
    return net


def _huge_branch() -> nn.Sequential:
    layers = [nn.Linear(3, 3, bias=False) for _ in range(40)]
    with torch.no_grad():
        for layer in layers:
            layer.weight.fill_(1e10)
    return nn.Sequential(*layers)


def _tf(kind: str = "pre") -> nn.Sequential:
    return transformer.stack(kind, 1, 4, 2, 8)


# (case id, call, the argument the error must name)
CASES = [
    # --- the cases of the issue -----------------------------------------------------------------
    ("linear_rnn float32 h0, float64 W", lambda: recurrent.linear_rnn(torch.eye(3, dtype=D), torch.ones(3), 2), "h0"),
    ("module_jacobian float64 x, float32 module",
     lambda: norms.module_jacobian(nn.Linear(3, 3), torch.ones(2, 3, dtype=D)),
     "x"),
    ("block_jacobian float64 x",
     lambda: residual.block_jacobian(residual.residual_mlp(3), torch.ones(3, dtype=D)), "x"),
    ("xavier_normal on an expanded tensor", lambda: init.xavier_normal(torch.empty(3).expand(4, 3)), "weight"),
    ("BatchNorm1d module, batch of one", lambda: norms.module_jacobian(norms.batch_norm(3), torch.ones(1, 3)), "x"),
    ("batchnorm_jacobian, batch of one", lambda: norms.batchnorm_jacobian(torch.ones(1, 3)), "x"),
    ("JacobianOperator.matvec wrong length", lambda: _op().matvec(torch.ones(4)), "u"),
    ("JacobianOperator.rmatvec wrong length", lambda: _op().rmatvec(torch.ones(4)), "w"),
    ("JacobianOperator.matvec wrong dtype", lambda: _op().matvec(torch.ones(3, dtype=D)), "u"),
    ("decay_only absurd lr", lambda: weight_decay.decay_only(torch.ones(3), 1e300, 1e300, 3), "lr"),
    ("decay_only overflowing step", lambda: weight_decay.decay_only(torch.ones(3), 1e30, 1e30, 3), "lr"),
    ("mean_ci strings", lambda: stats.mean_ci(["1", "2"]), "values"),
    ("mean_ci ±1e308", lambda: stats.mean_ci([1e308, -1e308, 1e308]), "values"),
    ("t_quantile(0)", lambda: stats.t_quantile(0), "df"),
    ("euler_trajectory huge step", lambda: dynamics.euler_trajectory(-torch.eye(2, dtype=D), torch.ones(2, dtype=D),
                                                                    1e100, 10), "steps"),
    ("jacobian of a Python float", lambda: jacobian.jacobian(lambda x: 1.0, torch.ones(3)), "f"),
    ("chain_jacobians misshaped input", lambda: jacobian.chain_jacobians([nn.Linear(3, 3)], torch.ones(4)),
     "layers[0]"),
    # --- round two: mixed dtypes ----------------------------------------------------------------
    ("rnn_unroll float32 xs", lambda: recurrent.rnn_unroll(torch.eye(3, dtype=D), torch.eye(3, dtype=D),
                                                          torch.ones(2, 3), torch.ones(3, dtype=D)), "xs"),
    ("unroll_cell float64 xs", lambda: recurrent.unroll_cell(nn.GRUCell(3, 3), torch.ones(2, 3, dtype=D),
                                                            torch.ones(3, dtype=D)), "xs"),
    ("unroll_cell float64 h0",
     lambda: recurrent.unroll_cell(nn.GRUCell(3, 3), torch.ones(2, 3), torch.ones(3, dtype=D)),
     "h0"),
    ("gated_step float64 gate",
     lambda: recurrent.gated_step(torch.ones(3), torch.eye(3), torch.full((3,), 0.5, dtype=D)),
     "z"),
    ("pre_activations float64 x", lambda: chains.pre_activations(chains.feedforward(2, 3, "tanh", "xavier_normal"),
                                                                torch.ones(3, dtype=D)), "x"),
    ("hidden_states float64 x", lambda: chains.hidden_states(chains.feedforward(2, 3, "tanh", "xavier_normal"),
                                                            torch.ones(3, dtype=D)), "x"),
    ("linear_network mixed weights",
     lambda: chains.linear_network([torch.eye(3), torch.eye(3, dtype=D)]), "weights[1]"),
    ("linear_network float64 x", lambda: chains.linear_network([torch.eye(3)])(torch.ones(3, dtype=D)), "x"),
    ("dense block_jacobian float64 x",
     lambda: dense.block_jacobian(dense.DenseBlock(2, 3), torch.ones(3, dtype=D)), "x"),
    ("unet float64 x", lambda: unet.first_layer_grad_norm(unet.UNet(1), torch.ones(1, 1, 4, 4, dtype=D),
                                                          torch.ones(1, 1, 4, 4, dtype=D)), "x"),
    ("unet float64 cotangent", lambda: unet.first_layer_grad_norm(unet.UNet(1), torch.ones(1, 1, 4, 4),
                                                                  torch.ones(1, 1, 4, 4, dtype=D)), "cotangent"),
    ("residual_norms float64 x", lambda: transformer.residual_norms(_tf(), torch.ones(1, 2, 4, dtype=D)), "x"),
    ("gradient_profile float64 x",
     lambda: transformer.gradient_profile(_tf("post"), torch.ones(1, 2, 4, dtype=D)), "x"),
    ("q_sample float64 eps", lambda: diffusion.q_sample(torch.ones(2, 3), torch.tensor([1, 2]),
                                                        torch.ones(2, 3, dtype=D), S), "eps"),
    ("per_timestep_gradients float64 x0", lambda: diffusion.per_timestep_gradients(
        diffusion.Denoiser(3, T=10), torch.ones(2, 4, 3, dtype=D), torch.tensor([1, 2]), S), "x0"),
    ("Denoiser float64 x_t", lambda: diffusion.Denoiser(3, T=10)(torch.ones(2, 3, dtype=D), torch.tensor([1, 2])),
     "x_t"),
    ("log_abs_det_jacobian float64 x, float32 flow", lambda: flows.log_abs_det_jacobian(flows.AdditiveCoupling(4),
                                                                                       torch.ones(4, dtype=D)), "x"),
    ("forward_states float64 x0", lambda: adjoint.forward_states([nn.Linear(3, 3)], torch.ones(3, dtype=D)),
     "layers[0]"),
    ("layer_gradient_norms float64 x", lambda: probes.layer_gradient_norms([nn.Linear(3, 3)], torch.ones(3, dtype=D)),
     "model_layers[0]"),
    ("operator_singular_values float64 x, float32 layer", lambda: spectral.operator_singular_values(
        nn.Linear(3, 3), torch.ones(3, dtype=D)), "f"),
    # --- wrong shapes -----------------------------------------------------------------------------
    ("pre_activations wrong width", lambda: chains.pre_activations(chains.feedforward(2, 3, "tanh", "xavier_normal"),
                                                                  torch.ones(4)), "model[0]"),
    ("unet wrong channel count", lambda: unet.first_layer_grad_norm(unet.UNet(1), torch.ones(1, 2, 4, 4),
                                                                    torch.ones(1, 1, 4, 4)), "x"),
    ("residual_norms wrong d_model", lambda: transformer.residual_norms(_tf(), torch.ones(1, 2, 5)), "x"),
    ("gradient_profile wrong d_model", lambda: transformer.gradient_profile(_tf("post"), torch.ones(1, 2, 5)), "x"),
    ("attention batch dims that do not broadcast", lambda: attention.attention_logits(torch.ones(2, 2, 3),
                                                                                      torch.ones(3, 2, 3)), "k"),
    ("per_timestep_gradients wrong dim", lambda: diffusion.per_timestep_gradients(
        diffusion.Denoiser(3, T=10), torch.ones(2, 4, 5), torch.tensor([1, 2]), S), "x0"),
    ("costates misshaped input", lambda: adjoint.costates([nn.Linear(3, 3)], torch.ones(4), lambda x: x.sum()),
     "layers[0]"),
    ("backprop_state_gradients misshaped input", lambda: adjoint.backprop_state_gradients(
        [nn.Linear(3, 3)], torch.ones(4), lambda x: x.sum()), "layers[0]"),
    ("backprop_state_gradients vector loss", lambda: adjoint.backprop_state_gradients([torch.tanh], torch.ones(3),
                                                                                     lambda x: x), "loss"),
    ("layer_gradient_norms misshaped input", lambda: probes.layer_gradient_norms([nn.Linear(3, 3)], torch.ones(4)),
     "model_layers[0]"),
    ("overflow_depth with a layer that cannot run", lambda: probes.overflow_depth(lambda l: nn.Linear(4, 4),
                                                                                 torch.ones(3), "float32", 4),
     "model_layers[0]"),
    ("batched_jacobian misshaped samples", lambda: jacobian.batched_jacobian(nn.Linear(3, 3), torch.ones(2, 4)), "f"),
    ("lanczos 1-d start", lambda: lanczos.bidiagonalise(lambda u: u, lambda w: w, torch.ones(3, dtype=D), k=1,
                                                       tol=1e-6, max_steps=3), "start"),
    ("lanczos rmatvec of the wrong width", lambda: lanczos.bidiagonalise(lambda u: u[:, :2], lambda w: w,
                                                                        torch.ones(1, 3, dtype=D), k=1, tol=1e-6,
                                                                        max_steps=3), "rmatvec"),
    ("slope_ci strings", lambda: stats.slope_ci(["1", "2", "3"], [1, 2, 3]), "x"),
    ("per_seed_slope_ci negative y on a log axis", lambda: stats.per_seed_slope_ci([1, 2, 3], [[1, 2, -3], [1, 2, 3]]),
     "ys"),
    # --- 0-size, NaN, non-tensors, wrong kinds ------------------------------------------------------
    ("lanczos zero start vector", lambda: lanczos.bidiagonalise(lambda u: u, lambda w: w, torch.zeros(1, 3, dtype=D),
                                                               k=1, tol=1e-6, max_steps=3), "start"),
    ("lanczos max_steps 0", lambda: lanczos.bidiagonalise(lambda u: u, lambda w: w, torch.ones(1, 3, dtype=D), k=1,
                                                         tol=1e-6, max_steps=0), "max_steps"),
    ("activation derivative at NaN", lambda: activations.get("tanh").derivative(torch.tensor([math.nan, 1.0])), "x"),
    ("gelu derivative at +inf (inf·0)", lambda: activations.get("gelu").derivative(torch.tensor([math.inf])), "x"),
    ("kaiming_normal a = NaN", lambda: init.kaiming_normal(torch.empty(3, 3), "leaky_relu", a=math.nan), "a"),
    ("rescale_spectral of a zero weight", lambda: chains.rescale_spectral(_zeroed_linear(), 1.0), "model"),
    ("pre_activations of a string", lambda: chains.pre_activations("m", torch.ones(3)), "model"),
    ("xavier_init_ of a string", lambda: transformer.xavier_init_("m"), "model"),
    ("relu_stack of an int", lambda: conv.relu_stack([3]), "blocks[0]"),
    ("loss_weight of a string schedule", lambda: diffusion.loss_weight("snr", "s"), "schedule"),
    ("per_timestep_gradients of a string model", lambda: diffusion.per_timestep_gradients(
        "m", torch.ones(2, 4, 3), torch.tensor([1, 2]), S), "model"),
    ("backprop_state_gradients non-callable layer", lambda: adjoint.backprop_state_gradients(
        [3], torch.ones(3), lambda x: x.sum()), "layers[0]"),
    ("step_jacobian of a float step", lambda: recurrent.step_jacobian(lambda h, t: 1.0, torch.ones(3)), "step"),
    ("bptt step that fails", lambda: recurrent.bptt_gradient_norms(lambda h, t: h @ torch.ones(4, 4), torch.ones(3), 2),
     "step"),
    ("flows log det of a singular map", lambda: flows.log_abs_det_jacobian(lambda x: x * 0, torch.ones(3, dtype=D)),
     "f"),
    # --- integer and half dtypes where a float module is built ----------------------------------------
    ("feedforward int64 dtype", lambda: chains.feedforward(2, 3, "tanh", "xavier_normal", dtype=torch.int64), "dtype"),
    ("mlp_branch int64 dtype", lambda: residual.mlp_branch(3, dtype=torch.int64), "dtype"),
    ("relu_branch int64 dtype", lambda: residual.relu_branch(3, 2, dtype=torch.int64), "dtype"),
    ("DenseBlock int64 dtype", lambda: dense.DenseBlock(2, 3, dtype=torch.int64), "dtype"),
    ("make_conv int64 dtype", lambda: conv.make_conv("standard", 2, dtype=torch.int64), "dtype"),
    ("AdditiveCoupling int64 dtype", lambda: flows.AdditiveCoupling(4, dtype=torch.int64), "dtype"),
    ("random_orthogonal int64 dtype", lambda: recurrent.random_orthogonal(3, dtype=torch.int64), "dtype"),
    ("linear_schedule float16 (1 − ᾱ unresolved)", lambda: diffusion.linear_schedule(5000, dtype=F16), "dtype"),
    ("frequency_response float16 (no half FFT)", lambda: conv.frequency_response(torch.ones(2, 2, 3, 3, dtype=F16),
                                                                                 4, 4), "weight"),
    # --- magnitudes that overflow (finite inputs, non-finite result) ---------------------------------
    ("normal init, std overflows float16", lambda: init.normal(torch.empty(3, 3, dtype=F16), 1e10), "std"),
    ("gaussian_matrix overflows float32", lambda: recurrent.gaussian_matrix(3, 1e300, dtype=torch.float32), "gain"),
    ("normal_matrix overflows float32", lambda: recurrent.normal_matrix(3, 1e308, dtype=torch.float32), "rho"),
    ("linear_rnn states overflow", lambda: recurrent.linear_rnn(torch.eye(3) * 1e20, torch.ones(3), 4), "T"),
    ("bptt gradients overflow", lambda: recurrent.bptt_gradient_norms(recurrent.linear_step(torch.eye(3) * 1e20),
                                                                      torch.ones(3), 4), "T"),
    ("linear_network product overflows", lambda: chains.linear_network([torch.eye(3) * 1e30] * 2)(torch.ones(3)), "x"),
    ("safe_scaling α overflows", lambda: residual.safe_scaling(1e-320, 0.5), "lipschitz_f"),
    ("branch_lipschitz_bound overflows", lambda: residual.branch_lipschitz_bound(_huge_branch()), "branch"),
    ("unet gradient overflows", lambda: unet.first_layer_grad_norm(unet.UNet(1), torch.full((1, 1, 4, 4), 1e37),
                                                                   torch.full((1, 1, 4, 4), 1e37)), "x"),
    ("batchnorm_jacobian gamma 1e300 in float32", lambda: norms.batchnorm_jacobian(torch.tensor([1.0, 2.0]),
                                                                                   gamma=1e300), "gamma"),
    ("attention_weights logits overflow", lambda: attention.attention_weights(torch.full((2, 3), 1e20),
                                                                              torch.full((2, 3), 1e20)), "q"),
    ("attention output overflows", lambda: attention.attention(torch.full((2, 3), 1e20), torch.full((2, 3), 1e20),
                                                               torch.ones(2, 3)), "q"),
    ("conv singular values overflow float32", lambda: conv.conv_singular_values(torch.full((2, 2, 3, 3), 3e37), 4, 4),
     "weight"),
    ("conv response overflows float32", lambda: conv.conv_gains(torch.full((2, 2, 3, 3), 3e38), 4, 4), "weight"),
    ("volume-preserving √κ overflows float32", lambda: flows.volume_preserving_singular_values(
        3, 1e300, dtype=torch.float32), "kappa"),
    ("schedule whose 1 − ᾱ rounds to 0", lambda: diffusion.schedule_from_betas(torch.full((3,), 1e-30)), "betas"),
    ("loss weight overflows where ᾱ underflows", lambda: diffusion.loss_weight(
        "v", diffusion.schedule_from_betas(torch.full((800,), 0.9, dtype=D))), "schedule"),
    ("clip_global norm overflows", lambda: diffusion.clip_global(torch.full((2, 3), 1e38), 1.0), "grad"),
    ("clip_time_dependent norm overflows", lambda: diffusion.clip_time_dependent(
        torch.full((2, 3), 1e38), torch.tensor([1, 2]), torch.ones(10)), "grad"),
    ("time_dependent_threshold overflows", lambda: diffusion.time_dependent_threshold(torch.tensor([1e-40, 1.0]),
                                                                                      1e10), "kappa"),
    ("effective_contributions overflow", lambda: diffusion.effective_contributions(
        torch.full((2, 3), 1e30), torch.tensor([1, 2]), torch.full((10,), 1e30), "none", 1.0), "grad"),
    ("l2_penalty overflows", lambda: weight_decay.l2_penalty(torch.full((3,), 1e30), 1.0), "W"),
    ("euler_iteration_matrix overflows", lambda: dynamics.euler_iteration_matrix(torch.full((2, 2), 1e38), 1e10), "h"),
    ("spectral_norm overflows float32", lambda: spectral.spectral_norm(torch.full((3, 3), 3e38)), "m"),
    ("singular_values overflow float32", lambda: spectral.singular_values(torch.full((3, 3), 3e38)), "m"),
    ("spectral_radius overflows float64", lambda: spectral.spectral_radius(torch.full((3, 3), 1e308, dtype=D)), "m"),
    ("total_norm beyond float64", lambda: clipping.total_norm(torch.full((4,), 1.7e308, dtype=D)), "grads"),
    ("clip_by_norm overflow with error_if_nonfinite", lambda: clipping.clip_by_norm(
        torch.full((4,), 6e4, dtype=F16), 1.0, error_if_nonfinite=True), "grads"),
    ("slope_ci overflows", lambda: stats.slope_ci([1e200, 2e200, 3e200], [1, 2, 3]), "y"),
    ("spread max/min overflows float64", lambda: diffusion.spread(torch.tensor([1e-300, 1e300], dtype=D)), "e"),
]


@pytest.mark.parametrize("call, argument", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input_is_an_error_naming_the_argument(call, argument):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError) as e:
            call()
    message = str(e.value)
    assert message.startswith(f"{argument}:"), message
    assert "\n" not in message


# --- where the fix computes the right answer instead of raising ------------------------------------

def test_clip_by_norm_of_a_float16_gradient_whose_norm_overflows_keeps_its_direction():
    g = torch.tensor([6e4, -3e4, 6e4, 1e4], dtype=F16)
    out = clipping.clip_by_norm(g, 1.0)
    want = g.double() / g.double().norm()
    assert out.dtype == F16
    assert torch.allclose(out.double(), want, rtol=2e-3, atol=1e-3), out   # float16 rounding
    assert clipping.total_norm(g) == pytest.approx(float(g.double().norm()), rel=1e-12)
    assert clipping.total_norm(out) == pytest.approx(1.0, rel=2e-3)


def test_clip_by_norm_beyond_float64_scales_without_forming_the_norm():
    g = torch.full((4,), 1.7e308, dtype=D)
    out = clipping.clip_by_norm(g, 2.0)
    assert torch.allclose(out, torch.full((4,), 1.0, dtype=D), rtol=1e-12)


def test_torch_overflow_keeps_torchs_zeros_for_clip01():
    """CLIP-01 measures torch's own arithmetic: with ``torch_overflow`` the zeros stay."""
    out = clipping.clip_by_norm(torch.full((3,), 1e20), 1.0, torch_overflow=True)
    assert not bool(out.any())


def test_clip_module_grads_whose_norm_overflows_are_clipped_not_zeroed():
    m = nn.Linear(2, 2, bias=False)
    m.weight.grad = torch.full((2, 2), 3e38)
    before = clipping.clip_module_grads_by_norm(m, 1.0)
    assert before == pytest.approx(6e38, rel=1e-6)
    assert torch.allclose(m.weight.grad, torch.full((2, 2), 0.5), rtol=1e-6)


@pytest.mark.parametrize("scale", [1e20, 1e-30])
def test_norm_jacobians_far_from_one_match_float64(scale):
    h = torch.tensor([1.0, 2.0, -1.5, 0.25])
    exact = norms.rmsnorm_jacobian(h.double(), eps=0.0) / scale
    out = norms.rmsnorm_jacobian(h * scale, eps=0.0)
    assert bool(out.any())
    assert torch.allclose(out.double(), exact, rtol=1e-5, atol=0.0)
    exact_ln = norms.layernorm_jacobian(h.double(), eps=0.0) / scale
    assert torch.allclose(norms.layernorm_jacobian(h * scale, eps=0.0).double(), exact_ln, rtol=1e-5,
                          atol=1e-6 / scale)
    exact_bn = norms.batchnorm_jacobian(h.double(), eps=0.0) / scale
    assert torch.allclose(norms.batchnorm_jacobian(h * scale, eps=0.0).double(), exact_bn, rtol=1e-5,
                          atol=1e-6 / scale)


def test_rmsnorm_jacobian_at_1e20_is_not_all_zero():
    j = norms.rmsnorm_jacobian(torch.tensor([1e20, 2e20, -1e20]))
    assert bool(j.any()) and bool(torch.isfinite(j).all())


@pytest.mark.parametrize("a, expected", [(-1e200, 2e-200), (-1e-200, 2e200)])
def test_max_stable_step_where_the_square_of_lambda_leaves_the_range(a, expected):
    assert dynamics.max_stable_step(a * torch.eye(2, dtype=D)) == pytest.approx(expected, rel=1e-12, abs=0.0)


def test_mean_ci_near_the_float64_limit_is_scaled_not_inf():
    m, lo, hi = stats.mean_ci([1e308, 9e307, 1.1e308])
    assert m == pytest.approx(1e308, rel=1e-12)
    assert lo < m < hi < 1.7976931348623157e308


def test_mean_ci_accepts_numbers_arrays_and_0d_tensors_alike():
    want = stats.mean_ci([1.0, 2.0, 4.0])
    assert stats.mean_ci(np.array([1, 2, 4])) == want
    assert stats.mean_ci([torch.tensor(1.0), torch.tensor(2.0), torch.tensor(4.0)]) == want


def test_spread_whose_ratio_overflows_float32_is_computed_in_float64():
    ratio, cv = diffusion.spread(torch.tensor([1e-30, 1e30]))
    assert ratio == pytest.approx(1e60, rel=1e-6) and cv == pytest.approx(1.0, rel=1e-6)


def test_conv_gains_near_the_float32_limit_match_float64():
    w = torch.full((2, 2, 3, 3), 1e30)
    top, rms = conv.conv_gains(w, 4, 4)
    top64, rms64 = conv.conv_gains(w.double(), 4, 4)
    assert top == pytest.approx(top64, rel=1e-6) and rms == pytest.approx(rms64, rel=1e-6)


def test_transposed_and_sliced_weights_are_still_initialised_in_place():
    w = torch.empty(4, 3).t()
    assert init.xavier_normal(w) is w and bool(torch.isfinite(w).all())
    base = torch.zeros(3, 8)
    init.normal(base[:, ::2])
    assert bool(base[:, ::2].all()) and not bool(base[:, 1::2].any())


def test_validation_does_not_change_valid_results():
    """Values on valid input are those of the unvalidated arithmetic, bit for bit."""
    W = torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
    ref = W
    for _ in range(3):
        ref = ref.add(torch.zeros_like(W).add(ref, alpha=0.1), alpha=-0.5)
    assert torch.equal(weight_decay.decay_only(W, 0.5, 0.1, 3), ref)
    h = torch.tensor([1.0, 2.0, -1.5, 0.25])
    r = torch.sqrt(h.pow(2).mean() + 1e-5)
    hhat = h / r
    want = (torch.eye(4) - torch.outer(hhat, hhat) / 4) / r
    assert torch.equal(norms.rmsnorm_jacobian(h, eps=1e-5), want)

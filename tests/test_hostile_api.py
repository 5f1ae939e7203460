"""The public Python API under hostile input: a gradcore error naming the argument, or a
result without a silent NaN — never a raw torch exception."""
from __future__ import annotations

import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcore import (attention, clipping, diffusion, dynamics, flows, jacobian, probes, recurrent,
                      spectral, weight_decay)
from gradcore import initialisation as init
from gradcore import normalisation as norms
from gradcore.errors import GradcoreError, InputError

CI = settings.get_profile("ci")
S = diffusion.linear_schedule(10)


def raises_naming(argument: str, call) -> InputError:
    with pytest.raises(InputError) as e:
        call()
    assert str(e.value).startswith(f"{argument}:"), str(e.value)
    assert "\n" not in str(e.value)
    return e.value


# --- the cases of the issue ---------------------------------------------------------------

@pytest.mark.parametrize("t", [0, -1, 11])
def test_q_sample_time_steps_outside_1_to_T_do_not_wrap_around(t):
    raises_naming("t", lambda: diffusion.q_sample(torch.ones(2, 3), torch.tensor([t, 1]), torch.ones(2, 3), S))


@pytest.mark.parametrize("t", [torch.tensor([1.0, 2.0]), torch.tensor([True, True])])
def test_q_sample_time_steps_must_be_integers(t):
    raises_naming("t", lambda: diffusion.q_sample(torch.ones(2, 3), t, torch.ones(2, 3), S))


def test_q_sample_at_t_1_is_barely_noised():
    x = diffusion.q_sample(torch.ones(1, 3, dtype=torch.float64), torch.tensor([1]),
                           torch.zeros(1, 3, dtype=torch.float64), S)
    assert float(x[0, 0]) == pytest.approx(math.sqrt(float(S.alpha_bar[0])))


@pytest.mark.parametrize("call, argument", [
    (lambda: diffusion.clip_time_dependent(torch.ones(2, 3), torch.tensor([1, 99]), torch.ones(10)), "t"),
    (lambda: diffusion.effective_contributions(torch.ones(2, 3), torch.tensor([0, 1]), torch.ones(10), "none", 1.0),
     "t"),
    (lambda: diffusion.per_timestep_gradients(torch.nn.Linear(3, 3), torch.ones(2, 4, 3), torch.tensor([1, 11]), S),
     "t"),
    (lambda: diffusion.q_sample(torch.ones(2, 3), torch.tensor([1, 2]), torch.ones(2, 4), S), "eps"),
    (lambda: clipping.cosine(torch.ones(3), torch.ones(4)), "b"),
    (lambda: weight_decay.decay_step(torch.ones(3, 3), torch.ones(2, 3), 0.1, 0.1), "grad"),
    (lambda: recurrent.linear_rnn(torch.eye(3), torch.ones(4), 3), "h0"),
    (lambda: recurrent.growth_rate(torch.ones(5), 10), "start"),
])
def test_mismatched_shapes_and_out_of_range_indices(call, argument):
    raises_naming(argument, call)


def test_condition_number_of_a_singular_zero_matrix_is_inf():
    assert spectral.condition_number(torch.zeros(3, 3)) == math.inf
    assert spectral.condition_number(torch.diag(torch.tensor([2.0, 0.0]))) == math.inf
    assert spectral.condition_number(torch.diag(torch.tensor([4.0, 2.0]))) == 2.0


def test_jacobian_of_a_nan_producing_function_is_an_error():
    raises_naming("f", lambda: jacobian.jacobian(torch.sqrt, torch.tensor([-1.0, 1.0])))
    assert torch.isnan(jacobian.jacobian(torch.sqrt, torch.tensor([-1.0, 1.0]), check_finite=False)).any()


def test_clipping_non_finite_gradients_is_an_error_not_a_nan_or_a_threshold():
    raises_naming("grads[0]", lambda: clipping.clip_by_norm(torch.tensor([1.0, math.nan]), 1.0))
    raises_naming("grads[1]", lambda: clipping.clip_by_norm([torch.ones(2), torch.tensor([math.inf])], 1.0))
    raises_naming("grads[0]", lambda: clipping.clip_by_value(torch.tensor([math.inf, 1.0]), 1.0))
    raises_naming("grads[0]", lambda: clipping.total_norm(torch.tensor([math.nan])))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_policy(dtype):
    m = torch.eye(3, dtype=dtype)
    raises_naming("m", lambda: spectral.spectral_norm(m))             # no half linear algebra on the CPU
    raises_naming("weight", lambda: init.orthogonal(torch.empty(3, 3, dtype=dtype)))
    raises_naming("x", lambda: flows.log_abs_det_jacobian(torch.tanh, torch.ones(3, dtype=dtype)))
    out = clipping.clip_by_norm(torch.full((4,), 2.0, dtype=dtype), 1.0)   # elementwise work is fine
    assert out.dtype == dtype and bool(torch.isfinite(out).all())


def test_meta_complex_sparse_and_non_tensors_are_named():
    raises_naming("m", lambda: spectral.spectral_norm(torch.eye(3, device="meta")))
    raises_naming("m", lambda: spectral.spectral_norm(torch.eye(3, dtype=torch.complex64)))
    raises_naming("m", lambda: spectral.spectral_norm(torch.eye(3).to_sparse()))
    raises_naming("x", lambda: jacobian.jacobian(torch.tanh, [1.0, 2.0]))
    raises_naming("grads[0]", lambda: clipping.clip_by_norm(torch.ones(3, device="meta"), 1.0))


def test_probes_reject_non_tensor_layers_and_losses():
    raises_naming("model_layers[0] output", lambda: probes.layer_gradient_norms([lambda h: 3], torch.ones(3)))
    raises_naming("loss", lambda: probes.layer_gradient_norms([torch.tanh], torch.ones(3), loss=lambda o: [1]))
    raises_naming("loss", lambda: probes.layer_gradient_norms([torch.tanh], torch.ones(3), loss=lambda o: o))


def test_a_constant_layer_has_zero_gradient_below_it():
    lin = torch.nn.Linear(3, 3)
    norms_ = probes.layer_gradient_norms([lambda h: torch.zeros_like(h) + 1, lin, torch.tanh], torch.ones(2, 3))
    assert norms_[0] == 0 and norms_[1] == 0 and bool((norms_[2:] > 0).all())


# --- generated hostile tensors ------------------------------------------------------------

ONE_TENSOR = {
    "singular_values": spectral.singular_values,
    "spectral_norm": spectral.spectral_norm,
    "spectral_radius": spectral.spectral_radius,
    "effective_rank": lambda x: spectral.effective_rank(x, 0.1),
    "jacobian": lambda x: jacobian.jacobian(torch.tanh, x),
    "batched_jacobian": lambda x: jacobian.batched_jacobian(torch.tanh, x),
    "total_norm": clipping.total_norm,
    "clip_by_norm": lambda x: clipping.clip_by_norm(x, 1.0),
    "clip_by_value": lambda x: clipping.clip_by_value(x, 1.0),
    "cosine": lambda x: clipping.cosine(x, x),
    "transfer_factor": probes.transfer_factor,
    "layer_gradient_norms": lambda x: probes.layer_gradient_norms([torch.tanh], x),
    "attention_weights": lambda x: attention.attention_weights(x, x),
    "attention_entropy": attention.attention_entropy,
    "layernorm_jacobian": norms.layernorm_jacobian,
    "rmsnorm_jacobian": norms.rmsnorm_jacobian,
    "batchnorm_jacobian": norms.batchnorm_jacobian,
    "euler_iteration_matrix": lambda x: dynamics.euler_iteration_matrix(x, 0.1),
    "max_stable_step": dynamics.max_stable_step,
    "l2_penalty": lambda x: weight_decay.l2_penalty(x, 0.1),
    "decay_step": lambda x: weight_decay.decay_step(x, x, 0.1, 0.1),
    "growth_rate": recurrent.growth_rate,
    "schedule_from_betas": diffusion.schedule_from_betas,
    "spread": diffusion.spread,
    "xavier_normal": init.xavier_normal,
    "orthogonal": init.orthogonal,
    "log_abs_det_jacobian": lambda x: flows.log_abs_det_jacobian(torch.tanh, x),
}
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.int64, torch.bool]


@st.composite
def hostile_tensors(draw) -> torch.Tensor:
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=3)))
    values = draw(st.lists(st.floats(-1e3, 1e3) | st.sampled_from([0.0, math.nan, math.inf, -math.inf, 1e38]),
                           min_size=1, max_size=64))
    n = math.prod(shape)
    x = torch.tensor((values * (n // len(values) + 1))[:n], dtype=torch.float64).reshape(shape)
    x = x.to(draw(st.sampled_from(DTYPES)))
    if draw(st.booleans()) and x.ndim == 2:
        x = x.t()   # non-contiguous
    if draw(st.integers(0, 5)) == 0:
        x = x.to("meta")
    return x


def _has_nan(out: object) -> bool:
    items = out if isinstance(out, (tuple, list)) else [out]
    for o in items:
        if isinstance(o, torch.Tensor) and o.device.type != "meta" and (o.is_floating_point() or o.is_complex()):
            if bool(torch.isnan(o).any()):
                return True
        elif isinstance(o, float) and math.isnan(o):
            return True
    return False


@pytest.mark.parametrize("name", sorted(ONE_TENSOR))
@settings(CI, max_examples=25)
@given(x=hostile_tensors())
def test_generated_hostile_tensors_give_a_gradcore_error_or_no_nan(name, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = ONE_TENSOR[name](x)
        except GradcoreError as e:
            assert "\n" not in str(e)
            return
    assert not _has_nan(out), f"{name} returned NaN for {x.dtype} {tuple(x.shape)} without an error"

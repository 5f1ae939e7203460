"""The diffusion kind (gradcore/verify/contracts/diffusion.py): schedules and loss weightings.

Each gating clause is caught on a real broken variant and holds on a good technique; the
built-ins' constants are the DIFF/LIT theorems' own values (one measurement, not two).
"""
from __future__ import annotations

import math

import pytest
import torch

from gradcore.measure import Given
from gradcore.measure import diffusion as M
from gradcore.measure import schedules as S
from gradcore.testing import check_technique
from gradcore.verify.check import builtin_results, infer_kind, settings_for
from gradcore.cli import main
from gradcore.verify.contracts import contract

from .contract_helpers import clause_of, refuses_in_one_line, run_readme_example, value

T = M.T_STEPS


def _linear_alpha_bar(beta_end: float = 0.02) -> torch.Tensor:
    return torch.cumprod(1 - torch.linspace(1e-4, beta_end, T, dtype=torch.float64), 0)


# --- techniques -----------------------------------------------------------------------------

def p2_weight(snr):
    """P2 weighting (Choi et al. 2022), k = 1, γ = 0.5, on the ε-loss."""
    return (1 + snr) ** -0.5


def snr_weight(snr):
    """v = SNR: the weighting 002 describes (large at high SNR)."""
    return snr


def unit_x0_weight(sigma):
    """λ(σ) = 1/σ² on the denoiser loss is v = λσ² = 1 on the ε-loss: L_simple."""
    return sigma ** -2


def cosine(t):
    """Nichol & Dhariwal's cosine ᾱ(t) (s = 0.008), without the β ≤ 0.999 clip."""
    f = torch.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2
    return f / math.cos(0.008 / 1.008 * math.pi / 2) ** 2


SHORT = _linear_alpha_bar(beta_end=0.01)                  # ᾱ_T ≈ 6e-3: x_T still carries signal
CLAMPED = _linear_alpha_bar().clamp(min=1e-4)             # a common ᾱ floor: the last steps share one SNR


# --- built-ins --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def builtins():
    return builtin_results("diffusion", settings_for())


def test_builtin_verdicts(builtins):
    violated = {name: [r.clause for r in rows if r.violated] for name, rows in builtins.items()}
    assert violated == {"linear β, eps": [], "linear β, vlb": ["gradient-spike"], "linear β, snr": ["gradient-spike"],
                        "linear β, min_snr_gamma": [], "linear β, truncated_snr": [], "linear β, v": [],
                        "cosine β, eps": []}
    assert all(r.verdict != "unmeasured" for rows in builtins.values() for r in rows)


def test_builtins_measure_what_the_theorems_measure(builtins, device):
    snr = {r.clause: r for r in builtins["linear β, snr"]}
    spike = snr["gradient-spike"].constants["‖∇θ v(1)ℓ_1‖ / median_t ‖∇θ v(t)ℓ_t‖"]
    assert spike.value == M.weighted_gradient_spike(weighting="snr", seeds=4).value   # DIFF-03's own number
    ratio = snr["weight-ratio"].constants["v(1)/v(T)"]
    assert ratio.value == M.loss_weight_ratio(weighting="snr").value                 # DIFF-02's
    prior = {r.clause: r for r in builtins["linear β, eps"]}["prior-term"]
    assert prior.constants["L_T bits/dim at x_0 = ±1"].value == S.prior_kl_bits(x0_sq=1.0).value   # LIT-03's
    minsnr = {r.clause: r for r in builtins["linear β, min_snr_gamma"]}["weight-ratio"]
    assert minsnr.constants["first t from which v(t) = 1 (0: none)"].value == S.first_unit_weight_step().value == 131
    spread = {r.clause: r for r in builtins["linear β, snr"]}["uniformity"].constants
    assert spread["max/min_t e(t), clipped at κ/v(t), κ = median_t v(t)‖∇ℓ_t‖"].value == \
        M.contribution_spread(scheme="time_dependent", kappa="median").value            # DIFF-04's


# --- each gating clause: a broken variant is caught, a good technique holds -------------------

def test_snr_ordering_catches_a_clamped_schedule():
    res = check_technique(CLAMPED, kind="diffusion", name="clamped")
    order = clause_of(res, "snr-ordering")
    assert order.verdict == "violated"
    assert value(res, "snr-ordering", "max_t SNR(t+1) − SNR(t)") == 0.0    # a plateau: two steps, one SNR
    assert "snippet" in order.counterexample
    assert clause_of(check_technique(cosine, kind="diffusion"), "snr-ordering").verdict == "holds"


def test_prior_term_catches_a_schedule_that_stops_early():
    res = check_technique(SHORT, kind="diffusion", name="short")
    ab = float(SHORT[-1])
    # closed form: ½[ᾱ_T(x_0² − 1) − ln(1 − ᾱ_T)]/ln 2 at x_0² = 1
    assert value(res, "prior-term", "L_T bits/dim at x_0 = ±1") == pytest.approx(-0.5 * math.log1p(-ab) / math.log(2),
                                                                                 rel=1e-12)
    assert clause_of(res, "prior-term").verdict == "violated" and clause_of(res, "snr-ordering").verdict == "holds"
    good = check_technique(_linear_alpha_bar(), kind="diffusion", name="linear")
    assert clause_of(good, "prior-term").verdict == "holds"


def test_gradient_spike_catches_snr_weighting_and_p2_holds():
    bad = check_technique(snr_weight, kind="diffusion")
    assert [r.clause for r in bad.violations] == ["gradient-spike"]
    assert value(bad, "gradient-spike", "‖∇θ v(1)ℓ_1‖ / median_t ‖∇θ v(t)ℓ_t‖") == \
        M.weighted_gradient_spike(weighting="snr", seeds=4).value
    good = check_technique(p2_weight, kind="diffusion")
    assert good.ok and value(good, "weight-ratio", "v(1)/v(T)") == pytest.approx(
        math.sqrt((1 + 4.036e-5) / (1 + 9999)), rel=1e-3)


def test_sigma_weighting_is_put_on_the_epsilon_loss():
    # λ(σ) = 1/σ² on ‖x̂₀ − x₀‖² is L_simple on the ε-loss: the same numbers as gradcore's 'eps'
    schedule, weights = M.resolve(unit_x0_weight)
    assert torch.allclose(weights, torch.ones(T, dtype=torch.float64), rtol=1e-12, atol=0)
    m = M.weighted_gradient_spike(technique=Given(unit_x0_weight, "technique"), seeds=2)
    assert m.value == pytest.approx(M.weighted_gradient_spike(weighting="eps", seeds=2).value, rel=1e-6)


def test_a_schedule_function_of_t_is_the_same_as_its_tensor():
    t = torch.arange(1, T + 1, dtype=torch.float64)
    a, b = (M.snr(quantity="max_step", technique=Given(x, "technique")).value for x in (cosine, cosine(t)))
    assert a == b < 0


# --- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("obj,message", [
    (_linear_alpha_bar()[:10], "wrong length: expected ᾱ_1..ᾱ_1000"),
    (torch.full((T,), float("nan"), dtype=torch.float64), "non-finite schedule"),
    (torch.cat([torch.tensor([1.5], dtype=torch.float64), _linear_alpha_bar()[1:]]), r"must lie in \(0, 1\]"),
    (_linear_alpha_bar().flip(0), "increases at t = 2"),
    (torch.cat([torch.ones(1, dtype=torch.float64), _linear_alpha_bar()[1:]]), "SNR\\(1\\) is infinite"),
    (torch.cat([_linear_alpha_bar()[:-1], torch.zeros(1, dtype=torch.float64)]), "must lie in"),
    (lambda snr: snr - 1, "finite and > 0"),
    (lambda snr: snr.sum(), "one weight per time step"),
    (lambda snr: snr ** 40, "outside float32's range"),
    (lambda x, y: x, "expected ᾱ_t"),
])
def test_bad_schedules_and_weightings_are_one_line(obj, message):
    refuses_in_one_line(obj, "diffusion", message)


def test_bad_input_exits_2(tmp_path, capsys, monkeypatch):
    (tmp_path / "badsched.py").write_text("import torch\nalpha_bar = torch.linspace(1, 0.5, 1000).flip(0)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["check", "badsched:alpha_bar", "--kind", "diffusion", "--no-compare"]) == 2
    assert "increases" in capsys.readouterr().err


# --- kind inference ------------------------------------------------------------------------------

def test_kind_inference():
    settings = settings_for()
    looks = contract("diffusion").looks_like
    assert looks(p2_weight, settings) and looks(unit_x0_weight, settings) and looks(cosine, settings)
    assert looks(M.Technique("linear", "snr"), settings) and looks(SHORT, settings)
    assert not looks(torch.tanh, settings) and not looks(lambda x: x, settings) and not looks(3, settings)
    assert infer_kind(p2_weight, settings).kind == "diffusion"    # (1+snr)^-0.5 is NaN below -1: no activation
    assert not looks(lambda t: torch.tanh(t), settings)   # named t, but ᾱ_t = tanh(t) increases: no schedule


@pytest.mark.parametrize("technique", [snr_weight, cosine])
def test_a_weighting_or_schedule_finite_on_the_activation_probe_is_inferred_diffusion(technique):
    """v = snr and ᾱ(t) are finite elementwise maps on [−3, 3] (activations, and v = snr a clipping
    rule too); the parameter's name and a valid schedule or weighting make them diffusion."""
    found = infer_kind(technique, settings_for())
    assert found.kind == "diffusion" and "activation kind" in found.reason and "named t, snr or sigma" in found.reason
    assert contract("activation").looks_like(technique, settings_for())   # the ambiguity is real, and settled


def test_a_weighting_that_diverges_at_zero_is_diffusion_on_every_cpu():
    """λ(σ) = 1/σ² overflows near σ = 0, where the activation probe's smallest |σ| lies: whether that
    is inf depends on the CPU's kernel path (ATEN_CPU_CAPABILITY=default makes it so), so the
    activation kind may or may not also recognise it (and the reason says so only when it does) —
    the kind is diffusion either way."""
    found = infer_kind(unit_x0_weight, settings_for())
    assert found.kind == "diffusion" and "its diffusion smoke test passed" in found.reason


# --- the README example, run as written ------------------------------------------------------------

def test_readme_edm_example(tmp_path, monkeypatch, capsys):
    run_readme_example("edm.py", tmp_path, monkeypatch, capsys)

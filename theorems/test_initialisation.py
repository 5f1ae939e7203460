"""Initialisation claims (catalogue: gradcore/claims/initialisation.toml), 004 §3.3.1/§3.3.3, 003 §4.

Initialisers are torch's (``gradcore.initialisation``); every number comes from a recipe in
``gradcore.measure.initialisation`` (variances of sampled weights and of signals pushed
through real networks, with Student-t intervals over seeds) or ``gradcore.measure.transfer``
(the per-layer gradient transfer factor λ).
"""
import math

import pytest
import sympy as sp

from gradcore.measure import initialisation as M
from gradcore.measure import transfer as T


@pytest.mark.claim("INIT-01")
def test_xavier_variance(claim, device):
    """INIT-01 (004 §3.3.1 / 定义3.3.8): Xavier's Var(W) = 2/(n_in + n_out)."""
    for name in ("xavier_normal", "xavier_uniform"):
        for n_in, n_out in ((64, 256), (300, 100)):
            claim.compare(f"Var(W)·(n_in+n_out)/2, torch {name}, n_in={n_in}, n_out={n_out}", claimed=1.0,
                          measured=M.variance_ratio(init=name, n_in=n_in, n_out=n_out, device=device))


@pytest.mark.claim("INIT-02")
def test_forward_variance_formula(claim, device):
    """INIT-02 (004 eq. 3.3.14): Var(y_i) = n_in · Var(W) · Var(x) for i.i.d. x."""
    claim.compare("Var(Σ_j w_j x_j) − n·Var(w)·Var(x) at E[x] = 0 (sympy)", claimed=0.0,
                  measured=M.forward_variance_gap(mean=0.0), atol=1e-12)
    for inputs, label in (("gaussian", "x ~ N(0, 1)"), ("sigmoid", "x = sigmoid(N(0, 1)) (mean ≈ 0.5)")):
        ratio = M.forward_variance_ratio(inputs=inputs, device=device)
        claim.compare(f"Var(y)/(n_in·Var(W)·Var(x)), {label}", claimed=1.0, measured=ratio, atol=0.05,
                      counterexample={"x": label, "n_in": 256, "exact": str(M.forward_variance())})
    claim.correct(f"Var(y_i) = {sp.sstr(M.forward_variance())} = n_in·Var(W)·E[x²]; it equals n_in·Var(W)·Var(x) "
                  f"only for zero-mean x — sigmoid outputs (mean ≈ 0.5) give a ratio of {ratio:.2f}")


@pytest.mark.claim("INIT-03")
def test_xavier_is_which_mean(claim):
    """INIT-03 (004 §3.3.3): Xavier's 2/(n_in + n_out) called the geometric mean of 1/n_in and 1/n_out."""
    claim.compare("2/(n_in+n_out) − harmonic mean of 1/n_in, 1/n_out (sympy)", claimed=0.0,
                  measured=M.xavier_mean_gap(mean="harmonic"))
    n_in, n_out = 100, 400
    xavier = M.xavier_variance(n_in=n_in, n_out=n_out)
    geometric = 1 / math.sqrt(n_in * n_out)
    claim.compare(f"2/(n_in+n_out) vs geometric mean 1/√(n_in·n_out) at n_in={n_in}, n_out={n_out}",
                  claimed=geometric, measured=xavier, rtol=1e-9, counterexample={"n_in": n_in, "n_out": n_out})
    claim.correct(f"2/(n_in+n_out) is the harmonic mean of 1/n_in and 1/n_out (e.g. {xavier.value} at "
                  f"100→400); the geometric mean 1/√(n_in n_out) would be {geometric}")


@pytest.mark.claim("INIT-04")
def test_xavier_keeps_sigmoid_tanh_variance(claim, device):
    """INIT-04 (004 §3.3.1): Xavier keeps the output variance of sigmoid and tanh layers stable."""
    depth, widths, seeds, results = 24, (64, 128), 4, {}
    for act in ("sigmoid", "tanh"):
        net = dict(activation=act, init="xavier_normal", depth=depth, batch=256, device=device)
        results[act] = M.variance_drift(widths=widths, seeds=seeds, **net)
        claim.compare(f"Var(h_{depth})/Var(h_1), {act}, Xavier normal (widths 64, 128)", claimed=1.0,
                      measured=results[act], rtol=0.5, counterexample={"activation": act, "init": "xavier_normal"})
        for width in widths:
            claim.curve("xavier-activation-variance", f"{act}, Xavier, width {width}", range(depth + 1),
                        M.signal_curve(width=width, seed=0, signal="variance", **net),
                        xlabel="layer l", ylabel="Var(h_l)", logy=True)
    claim.correct("under Xavier the activation variance drifts down with depth: Var(h_24)/Var(h_1) = "
                  + ", ".join(f"{a}: {m:.3f}" for a, m in results.items())
                  + " (sigmoid settles at a small fixed point after a few layers; tanh keeps decaying ~1/l)")


@pytest.mark.claim("INIT-05")
def test_he_variance_and_half_zero(claim, device):
    """INIT-05 (004 定义3.3.9): He's Var(W) = 2/n_in, and about half the ReLU outputs are zero."""
    for n_in, n_out in ((64, 256), (300, 100)):
        claim.compare(f"Var(W)·n_in/2, torch kaiming_normal, n_in={n_in}", claimed=1.0,
                      measured=M.variance_ratio(init="kaiming_normal", n_in=n_in, n_out=n_out, device=device))
    claim.compare("E[ReLU(z)²]/Var(z), z ~ N(0, s²) (sympy)", claimed=0.5, measured=M.relu_second_moment())
    claim.compare("share of ReLU outputs equal to 0, z ~ N(0, 1)", claimed=0.5, measured=M.relu_zero_share(device=device))


@pytest.mark.claim("INIT-06")
def test_he_preserves_relu_second_moment(claim, device):
    """INIT-06 (004 定义3.3.9): He is tuned for ReLU (signal kept through depth, vs Xavier)."""
    depth, widths = 24, (96, 192)
    for init, claimed in (("kaiming_normal", 1.0), ("xavier_normal", 0.5)):
        net = dict(activation="relu", init=init, depth=depth, batch=128, device=device)
        claim.compare(f"per-layer factor of E[z_l²], ReLU, {init}", claimed=claimed, rtol=0.05,
                      measured=M.second_moment_factor(widths=widths, seeds=4, **net))
        for width in widths:
            claim.curve("relu-second-moment", f"ReLU, {init}, width {width}", range(1, depth + 1),
                        M.signal_curve(width=width, seed=0, signal="second_moment", **net),
                        xlabel="layer l", ylabel="E[z_l²]", logy=True)


@pytest.mark.claim("INIT-07")
def test_init_avoids_bad_gradients(claim, device):
    """INIT-07 (003 §4): Xavier/He initialisation avoids too large or too small gradients at the start."""
    depth, width = 30, 64
    pairs = {("tanh", "xavier_normal"), ("sigmoid", "xavier_normal"), ("relu", "kaiming_normal")}
    lambdas = {}
    for act in ("sigmoid", "tanh", "relu"):
        for init in ("xavier_normal", "kaiming_normal", "torch_default"):
            net = dict(activation=act, init=init, width=width, depth=depth, batch=32, dtype="float32", device=device)
            claim.curve("grad-norm-vs-depth-init", f"{act}, {init}, width {width}", range(depth + 1),
                        T.gradient_profile(**net), xlabel="layers backpropagated k", ylabel="‖g‖ / ‖g_L‖", logy=True)
            if (act, init) not in pairs:
                continue
            lam = lambdas[f"{act} + {init}"] = T.transfer_factor(seeds=8, **net)
            claim.compare(f"per-layer gradient factor λ, {act} + {init} (depth {depth}, width {width})", claimed=1.0,
                          measured=lam, rtol=0.1, counterexample={"activation": act, "init": init, "depth": depth})
    worst = max(lambdas, key=lambda k: abs(math.log(lambdas[k].value)))
    claim.correct("per-layer λ at initialisation: " + ", ".join(f"{k}: {v:.3f}" for k, v in lambdas.items())
                  + f"; {worst} leaves the input-layer gradient at {lambdas[worst].value ** depth:.1e} of the output's "
                  f"after {depth} layers")

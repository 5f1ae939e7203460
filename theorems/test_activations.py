"""Activation-function claims (catalogue: gradcore/claims/activations.toml)."""
import pytest
import sympy as sp


@pytest.mark.claim("ACT-01")
def test_sigmoid_derivative_maximum(claim):
    """003 §2.b / 004 §3.3.1: "最大值仅为 0.25"."""
    x = sp.symbols("x", real=True)
    sigma = 1 / (1 + sp.exp(-x))
    d = sp.diff(sigma, x)
    critical = sp.solve(sp.Eq(sp.diff(d, x), 0), x)
    peak = sp.nsimplify(max(d.subs(x, c) for c in critical))
    claim.check("max σ'(x)", claimed=0.25, measured=float(peak))
    claim.check("argmax σ'(x)", claimed=0.0, measured=float(critical[0]))

"""Depth-product claims (catalogue: gradcore/claims/depth.toml).

Gradients come from torch autograd on real networks (``gradcore.chains``) and are read
with the gradient-flow probes (``gradcore.probes``); formulas from the documents are
evaluated literally and compared with autograd.
"""
import math
import textwrap

import pytest
import sympy as sp
import torch
from hypothesis import strategies as st

from gradcore import activations as A
from gradcore import chains as C
from gradcore import probes as P
from gradcore.jacobian import jacobian
from gradcore.verify.search import maximize

F64 = torch.float64


def _snippet(code: str) -> str:
    """A counterexample's copy-paste reproduction: ``code`` without its common indentation."""
    return textwrap.dedent(code).strip()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _sigmoid_net(width: int, depth: int, device: str, seed: int):
    """Weights, biases, input, target and the per-layer z_i, a_i of 000's n-layer sigmoid network."""
    g = torch.Generator().manual_seed(seed)
    ws = [torch.randn(width, width, generator=g, dtype=F64).to(device) for _ in range(depth)]
    bs = [torch.randn(width, generator=g, dtype=F64).to(device) * 0.1 for _ in range(depth)]
    x = torch.randn(width, generator=g, dtype=F64).to(device)
    y = torch.randn(width, generator=g, dtype=F64).to(device)
    return ws, bs, x, y


def _forward(ws, bs, x):
    zs, a = [], x
    for w, b in zip(ws, bs):
        zs.append(w @ a + b)
        a = torch.sigmoid(zs[-1])
    return zs, a


def _autograd_dW1(ws, bs, x, y):
    w1 = ws[0].clone().requires_grad_(True)
    _, a = _forward([w1, *ws[1:]], bs, x)
    return torch.autograd.grad(0.5 * ((a - y) ** 2).sum(), w1)[0]


@pytest.mark.claim("DEPTH-01")
def test_chain_rule_product_formula(claim, device):
    """000 §链式法则: "∂L/∂W₁ = (∂L/∂a_n · ∂z₁/∂W₁) · ∏_{i=2}^{n} (σ'(z_i) · W_i)"."""
    ds = A.get("sigmoid").derivative
    ws, bs, x, y = _sigmoid_net(1, 4, device, seed=0)
    zs, a = _forward(ws, bs, x)
    exact = _autograd_dW1(ws, bs, x, y)
    literal = (a - y) * x
    for i in range(1, len(ws)):
        literal = literal * ds(zs[i]) * ws[i]
    literal = literal.reshape(1, 1)
    claim.check("scalar net (width 1, depth 4): formula / autograd", claimed=1.0,
                measured=float(literal / exact), rtol=1e-9, dtype=F64,
                counterexample={"W": [float(w) for w in ws], "b": [float(b) for b in bs], "x": float(x),
                                "y": float(y), "activation": "sigmoid", "missing_factor_sigma'(z1)": float(ds(zs[0])),
                                "snippet": _snippet(f"""
                    import torch
                    from gradcore.activations import get
                    ds = get('sigmoid').derivative
                    W, b = {[float(w) for w in ws]!r}, {[float(b) for b in bs]!r}
                    x, y = {float(x)!r}, {float(y)!r}
                    w1 = torch.tensor([W[0]], dtype=torch.float64, requires_grad=True)
                    a, zs = torch.tensor([x], dtype=torch.float64), []
                    for w, bi in zip([w1] + [torch.tensor([v], dtype=torch.float64) for v in W[1:]], b):
                        zs.append(w * a + bi)
                        a = torch.sigmoid(zs[-1])
                    autograd = torch.autograd.grad(0.5 * ((a - y) ** 2).sum(), w1)[0].item()
                    formula = (a.item() - y) * x  # (dL/da_n * dz_1/dW_1) * prod_(i=2..n) sigma'(z_i) W_i
                    for i in range(1, len(W)):
                        formula *= ds(zs[i].detach())[0].item() * W[i]
                    print("formula / autograd: measured", formula / autograd, "claimed 1.0",
                          "; missing factor sigma'(z_1) =", ds(zs[0].detach())[0].item())
                """)})
    claim.check("scalar net: formula × σ'(z₁) / autograd", claimed=1.0,
                measured=float(literal * ds(zs[0]) / exact), rtol=1e-9, dtype=F64)
    # Matrix case (width 5): the literal order ∏_{i=2}^{n} diag(σ'(z_i)) W_i vs the backprop order.
    ws, bs, x, y = _sigmoid_net(5, 4, device, seed=1)
    zs, a = _forward(ws, bs, x)
    exact = _autograd_dW1(ws, bs, x, y)
    prod = torch.eye(5, dtype=F64, device=device)
    for i in range(1, len(ws)):
        prod = prod @ (torch.diag(ds(zs[i])) @ ws[i])
    literal = torch.outer((a - y) @ prod, x)
    correct = a - y
    for i in range(len(ws) - 1, 0, -1):
        correct = ws[i].T @ (ds(zs[i]) * correct)
    correct = torch.outer(ds(zs[0]) * correct, x)
    err = _rel(literal, exact)
    claim.check("matrix net (width 5): ‖literal − autograd‖/‖autograd‖", claimed=0.0, measured=err,
                atol=1e-9, dtype=F64, counterexample={"width": 5, "depth": 4, "seed": 1, "relative_error": err,
                                                      "snippet": _snippet("""
                    import torch
                    from gradcore.activations import get
                    ds, f64 = get('sigmoid').derivative, torch.float64
                    g = torch.Generator().manual_seed(1)
                    ws = [torch.randn(5, 5, generator=g, dtype=f64) for _ in range(4)]
                    bs = [torch.randn(5, generator=g, dtype=f64) * 0.1 for _ in range(4)]
                    x, y = torch.randn(5, generator=g, dtype=f64), torch.randn(5, generator=g, dtype=f64)
                    w1 = ws[0].clone().requires_grad_(True)
                    a, zs = x, []
                    for w, b in zip([w1] + ws[1:], bs):
                        zs.append(w @ a + b)
                        a = torch.sigmoid(zs[-1])
                    autograd = torch.autograd.grad(0.5 * ((a - y) ** 2).sum(), w1)[0]
                    prod = torch.eye(5, dtype=f64)
                    for i in range(1, 4):  # the literal order prod_(i=2..n) diag(sigma'(z_i)) W_i
                        prod = prod @ (torch.diag(ds(zs[i].detach())) @ ws[i])
                    literal = torch.outer((a.detach() - y) @ prod, x)
                    print("||literal - autograd|| / ||autograd||: measured",
                          ((literal - autograd).norm() / autograd.norm()).item(), "claimed 0.0")
                """)})
    claim.check("matrix net: [D₁W₂ᵀD₂⋯W_nᵀD_n ∂L/∂a_n] xᵀ vs autograd", claimed=0.0,
                measured=_rel(correct, exact), atol=1e-9, dtype=F64)
    claim.correct(f"the simplified product drops ∂a₁/∂z₁ = σ'(z₁) (scalar ratio {float(ds(zs[0])[0]):.3g} here) "
                  f"and, for matrices, reverses the order and the transposes (relative error {err:.2f}); "
                  f"correctly ∂L/∂W₁ = [diag(σ'(z₁)) W₂ᵀ diag(σ'(z₂)) ⋯ W_nᵀ diag(σ'(z_n)) ∂L/∂a_n] xᵀ")


@pytest.mark.claim("DEPTH-02")
def test_separated_weight_and_derivative_products(claim, device):
    """003 §1: "∂L/∂Wᵢ ≈ (∂L/∂zₙ) * (Wₙᵀ * ... * Wᵢ₊₁ᵀ) * (f'(zₙ) * ... * f'(zᵢ))"."""
    errs, coss = {}, {}
    for act, init in (("relu", "kaiming_normal"), ("tanh", "xavier_normal")):
        d = A.get(act).derivative
        errs[act], coss[act] = [], []
        for seed in range(4):
            torch.manual_seed(seed)
            m = C.feedforward(8, 32, act, init, dtype=F64, device=device)
            zs = [z.detach() for z in C.pre_activations(m, torch.randn(1, 32, dtype=F64, device=device))]
            ws = [lin.weight.detach() for lin in C.linears(m)]
            # Autograd's order for L = Σ h_n: ∂L/∂z₁ = D₁W₂ᵀD₂ ⋯ W_nᵀD_n 1 (as row vectors).
            g_true = d(zs[-1])
            for i in range(len(ws) - 1, 0, -1):
                g_true = (g_true @ ws[i]) * d(zs[i - 1])
            # 003's separated form: all weights first, then the product of all derivative vectors.
            g_sep = torch.ones_like(zs[-1])
            for i in range(len(ws) - 1, 0, -1):
                g_sep = g_sep @ ws[i]
            for z in zs:
                g_sep = g_sep * d(z)
            errs[act].append(_rel(g_sep, g_true))
            coss[act].append(float(torch.nn.functional.cosine_similarity(g_sep, g_true).squeeze()))
        err = sum(errs[act]) / len(errs[act])
        claim.check(f"width 32, depth 8, {act} ({init}): ‖separated − autograd‖/‖autograd‖ (mean of 4 seeds)",
                    claimed=0.0, measured=err, atol=0.5, dtype=F64,
                    counterexample={"width": 32, "depth": 8, "activation": act, "init": init, "seeds": [0, 1, 2, 3],
                                    "relative_errors": errs[act], "cosines": coss[act], "snippet": _snippet(f"""
                        import torch
                        from gradcore import chains
                        from gradcore.activations import get
                        d, f64, errs = get({act!r}).derivative, torch.float64, []
                        for seed in range(4):
                            torch.manual_seed(seed)
                            m = chains.feedforward(8, 32, {act!r}, {init!r}, dtype=f64)
                            zs = [z.detach() for z in chains.pre_activations(m, torch.randn(1, 32, dtype=f64))]
                            ws = [lin.weight.detach() for lin in chains.linears(m)]
                            true = d(zs[-1])  # backprop order: dL/dz_1 = D_1 W_2^T D_2 ... W_n^T D_n 1, L = sum(h_n)
                            for i in range(len(ws) - 1, 0, -1):
                                true = (true @ ws[i]) * d(zs[i - 1])
                            sep = torch.ones_like(zs[-1])  # separated: (W_n^T ... W_2^T) then prod of all f'(z_j)
                            for i in range(len(ws) - 1, 0, -1):
                                sep = sep @ ws[i]
                            for z in zs:
                                sep = sep * d(z)
                            errs.append(((sep - true).norm() / true.norm()).item())
                        print("||separated - backprop|| / ||backprop||, {act}, width 32, depth 8, seeds 0-3: measured",
                              sum(errs) / len(errs), errs, "claimed 0.0")
                    """)})
    # Width 1: scalars commute, so the separation itself is exact (boundary factors aside).
    ws, bs, x, y = _sigmoid_net(1, 5, device, seed=3)
    zs, a = _forward(ws, bs, x)
    d = A.get("sigmoid").derivative
    sep = float((a - y) * d(zs[-1]) * math.prod(float(w) for w in ws[1:]) * math.prod(float(d(z)) for z in zs[:-1]))
    chain = (a - y) * d(zs[-1])
    for i in range(len(ws) - 1, 0, -1):
        chain = ws[i] * (d(zs[i - 1]) * chain)
    claim.check("width 1: separated product = backprop ∂L/∂z₁", claimed=float(chain), measured=sep, rtol=1e-9)
    claim.correct("only for width 1 (scalars commute); with matrices diag(f'(z_j)) and W_jᵀ interleave "
                  "(∂L/∂zᵢ = D_i W_{i+1}ᵀ D_{i+1} ⋯ W_nᵀ ∂L/∂z_n); the separated form's relative error is "
                  + ", ".join(f"{a}: {sum(e) / len(e):.2f}" for a, e in errs.items())
                  + " (for ReLU the product of all masks keeps almost no coordinates); ∂L/∂Wᵢ is then that "
                  "vector times a_{i−1}ᵀ")


@pytest.mark.claim("DEPTH-03")
def test_linear_network_chain(claim, device):
    """003 §1: "ŷ = W₃ * W₂ * W₁ * x … `∂ŷ/∂L₃` 的计算涉及到 `W₃` … `∂L₂/∂W₁` 的计算涉及到 `W₁`"."""
    g = torch.Generator().manual_seed(0)
    w1, w2, w3 = (torch.randn(s, generator=g, dtype=F64).to(device) for s in ((4, 3), (5, 4), (2, 5)))
    x = torch.randn(3, generator=g, dtype=F64).to(device)
    c = torch.randn(2, generator=g, dtype=F64).to(device)

    def grad_w1(w1_: torch.Tensor) -> torch.Tensor:
        return torch.func.grad(lambda w: c @ C.linear_network([w, w2, w3])(x))(w1_)

    claim.check("∂L/∂W₁ = W₂ᵀW₃ᵀ(∂L/∂ŷ)xᵀ (autograd, L = cᵀŷ)", claimed=0.0,
                measured=_rel(grad_w1(w1), torch.outer(w2.T @ w3.T @ c, x)), atol=1e-12, dtype=F64)
    # Does ∂L₂/∂W₁ involve W₁?  Then ∂L/∂W₁ would change with W₁.
    moved = grad_w1(w1 + torch.randn(w1.shape, generator=g, dtype=F64).to(device))
    change = _rel(moved, grad_w1(w1))
    claim.check("‖Δ(∂L/∂W₁)‖ when W₁ changes (linear loss)", claimed=1.0, measured=change, relation=">=",
                atol=0.5, counterexample={"W1_shift": "N(0,1)", "relative_change": change, "snippet": _snippet("""
                    import torch
                    from gradcore import chains
                    f64, g = torch.float64, torch.Generator().manual_seed(0)
                    w1, w2, w3 = (torch.randn(s, generator=g, dtype=f64) for s in ((4, 3), (5, 4), (2, 5)))
                    x, c = torch.randn(3, generator=g, dtype=f64), torch.randn(2, generator=g, dtype=f64)
                    grad_w1 = lambda w: torch.func.grad(lambda w_: c @ chains.linear_network([w_, w2, w3])(x))(w)
                    moved = grad_w1(w1 + torch.randn(w1.shape, generator=g, dtype=f64))  # resample-shift W1
                    print("relative change of dL/dW1 when W1 changes: measured",
                          ((moved - grad_w1(w1)).norm() / grad_w1(w1).norm()).item(), "claimed >= 1 (W1 involved)")
                """)})
    l2 = lambda v: w2 @ v  # noqa: E731  L₂ as a function of L₁ = W₁x
    l3 = lambda v: w3 @ v  # noqa: E731
    yhat = lambda v: v  # noqa: E731  ŷ = L₃
    j_yhat = jacobian(yhat, w3 @ w2 @ w1 @ x)
    claim.check("‖∂ŷ/∂L₃ − I‖ (does it involve W₃?)", claimed=1.0,
                measured=float((j_yhat - torch.eye(2, dtype=F64, device=device)).norm()), relation=">=", atol=0.5,
                counterexample={"dyhat_dL3": j_yhat, "snippet": _snippet("""
                    import torch
                    from gradcore.jacobian import jacobian
                    f64, g = torch.float64, torch.Generator().manual_seed(0)
                    w1, w2, w3 = (torch.randn(s, generator=g, dtype=f64) for s in ((4, 3), (5, 4), (2, 5)))
                    x = torch.randn(3, generator=g, dtype=f64)
                    J = jacobian(lambda l3: l3, w3 @ w2 @ w1 @ x)  # yhat = L3
                    print("dyhat/dL3 =", J.tolist(), "; ||dyhat/dL3 - I||: measured", (J - torch.eye(2, dtype=f64)).norm().item(),
                          "claimed >= 1 (W3 involved)")
                """)})
    claim.check("∂L₃/∂L₂ = W₃ (autograd)", claimed=0.0, measured=_rel(jacobian(l3, w2 @ w1 @ x), w3), atol=1e-12)
    claim.check("∂L₂/∂L₁ = W₂ (autograd)", claimed=0.0, measured=_rel(jacobian(l2, w1 @ x), w2), atol=1e-12)
    claim.correct(f"the product is right (∂L/∂W₁ = W₂ᵀW₃ᵀ ∂L/∂ŷ · xᵀ) but the attribution is shifted: ∂ŷ/∂L₃ = I, "
                  f"∂L₃/∂L₂ = W₃, ∂L₂/∂L₁ = W₂, and ∂L₁/∂W₁ involves x, not W₁ (the gradient moved by "
                  f"{change:.1e} when W₁ was resampled)")


@pytest.mark.claim("DEPTH-04")
def test_layer_jacobian_transpose(claim, device):
    """004 定理3.3.3: "∂h^{(l)}/∂h^{(l-1)} = diag(σ'(W^{(l)} h^{(l-1)} + b^{(l)})) W^{(l)T}"."""
    g = torch.Generator().manual_seed(0)
    d = A.get("sigmoid").derivative
    square_err = float("nan")
    for n_out, n_in in ((4, 4), (3, 5)):
        w = torch.randn(n_out, n_in, generator=g, dtype=F64).to(device)
        b = torch.randn(n_out, generator=g, dtype=F64).to(device)
        h = torch.randn(n_in, generator=g, dtype=F64).to(device)
        jac = jacobian(lambda v: torch.sigmoid(w @ v + b), h)
        dz = torch.diag(d(w @ h + b))
        claim.check(f"{n_out}×{n_in}: autograd J vs diag(σ')W", claimed=0.0, measured=_rel(dz @ w, jac), atol=1e-12)
        stated = dz @ w.T if n_out == n_in else None
        err = _rel(stated, jac) if stated is not None else float("inf")
        square_err = err if stated is not None else square_err
        claim.check(f"{n_out}×{n_in}: autograd J vs diag(σ')Wᵀ (stated)", claimed=0.0, measured=err, atol=1e-9,
                    counterexample={"W": w, "b": b, "h": h, "relative_error": err,
                                    "note": "shapes do not conform" if stated is None else None,
                                    "snippet": _snippet(f"""
                        import torch
                        from gradcore.activations import get
                        from gradcore.jacobian import jacobian
                        W = torch.tensor({w.tolist()!r}, dtype=torch.float64)
                        b = torch.tensor({b.tolist()!r}, dtype=torch.float64)
                        h = torch.tensor({h.tolist()!r}, dtype=torch.float64)
                        J = jacobian(lambda v: torch.sigmoid(W @ v + b), h)
                        D = torch.diag(get('sigmoid').derivative(W @ h + b))
                        print("{n_out}x{n_in}: ||diag(s')W - J|| / ||J|| =", ((D @ W - J).norm() / J.norm()).item())
                        try:
                            err = ((D @ W.T - J).norm() / J.norm()).item()
                        except RuntimeError as e:
                            err = float('inf')
                            print("diag(s') @ W^T: shapes do not conform:", e)
                        print("||diag(s')W^T - J|| / ||J|| (stated): measured", err, "claimed 0.0")
                    """)})
    claim.correct("∂h^{(l)}/∂h^{(l−1)} = diag(σ'(z^{(l)})) W^{(l)} (shape n_out × n_in); W^{(l)T} belongs to the "
                  f"backward vector–Jacobian product g_{{l−1}} = W^{{(l)T}} diag(σ') g_l (square case: relative error {square_err:.2f}; 3×5: shapes do not conform)")


def _growth(blocks, width: int, device: str) -> float:
    x = torch.randn(16, width, dtype=F64, device=device)
    return P.transfer_factor(P.layer_gradient_norms(blocks, x)).geometric


@pytest.mark.claim("DEPTH-05")
def test_norm_15_amplifies_15_per_layer(claim, device):
    """000 §权重值过大: "∂L/∂W₁ ∝ ∏ W_i … 每一层的权重（的范数）都大于1，比如 1.5 … 梯度就会被放大 1.5^k 倍"."""
    depth, widths, seeds = 12, (32, 64), range(3)
    cases = {"linear, orthogonal×1.5": ("orthogonal", False), "linear, Gaussian σ_max=1.5": ("xavier_normal", False),
             "ReLU, orthogonal×1.5": ("orthogonal", True), "ReLU, Gaussian σ_max=1.5": ("xavier_normal", True)}
    results = {}
    for label, (init, relu) in cases.items():
        vals = []
        for width in widths:
            for seed in seeds:
                torch.manual_seed(seed)
                m = C.rescale_spectral(C.feedforward(depth, width, "relu", init, dtype=F64, device=device), 1.5)
                vals.append(_growth(C.blocks(m) if relu else C.linears(m), width, device))
        mean = sum(vals) / len(vals)
        se = (sum((v_ - mean) ** 2 for v_ in vals) / (len(vals) - 1) / len(vals)) ** 0.5
        results[label] = mean
        claim.check(f"per-layer gradient factor, {label} (depth {depth}, widths {widths}, 3 seeds)", claimed=1.5,
                    measured=mean, interval=(mean - 1.96 * se, mean + 1.96 * se), dtype=F64,
                    counterexample={"network": label, "depth": depth, "widths": list(widths), "factor": mean,
                                    "snippet": _snippet(f"""
                        import torch
                        from gradcore import chains, probes
                        vals, norms = [], []
                        for width in {tuple(widths)!r}:
                            for seed in {list(seeds)!r}:
                                torch.manual_seed(seed)
                                m = chains.rescale_spectral(chains.feedforward({depth}, width, 'relu', {init!r},
                                                                               dtype=torch.float64), 1.5)
                                norms += [torch.linalg.matrix_norm(lin.weight, 2).item() for lin in chains.linears(m)]
                                layers = {'chains.blocks(m)' if relu else 'chains.linears(m)'}  # {label}
                                x = torch.randn(16, width, dtype=torch.float64)
                                vals.append(probes.transfer_factor(probes.layer_gradient_norms(layers, x)).geometric)
                        print("{label}: ||W_i||_2 =", round(max(norms), 12), "; per-layer gradient factor: measured",
                              sum(vals) / len(vals), "claimed 1.5")
                    """)})
        claim.check(f"factor ≤ ‖W‖₂ = 1.5 (submultiplicativity), {label}", claimed=1.5, measured=max(vals),
                    relation="<=", atol=1e-9, dtype=F64)
        torch.manual_seed(0)
        m = C.rescale_spectral(C.feedforward(depth, 64, "relu", init, dtype=F64, device=device), 1.5)
        norms = P.layer_gradient_norms(C.blocks(m) if relu else C.linears(m), torch.randn(16, 64, dtype=F64, device=device))
        claim.curve("grad-norm-vs-depth-norm1.5", f"{label}, width 64", range(depth + 1),
                    (norms / norms[-1]).flip(0).cpu(), xlabel="layers backpropagated k", ylabel="‖g‖ / ‖g_L‖", logy=True)
    claim.correct("1.5^k is only the upper bound ∏‖W_i‖₂; measured per-layer factors: "
                  + ", ".join(f"{k}: {v:.3f}" for k, v in results.items())
                  + " — it is reached only when each W_i's top singular directions line up (orthogonal×1.5, all units active)")


@pytest.mark.claim("DEPTH-06")
def test_large_weights_cannot_reverse_vanishing(claim, device):
    """003 §2.b 因素2: "即使权重范数偶尔大于1，只要激活函数的导数持续小于1，梯度消失的趋势就很难逆转"."""
    depth, width = 24, 96
    factors = {}
    for act in ("tanh", "sigmoid"):
        for gains in ((1.0,), (1.0, 3.0)):
            vals, max_deriv = [], 0.0
            for seed in range(3):
                torch.manual_seed(seed)
                m = C.feedforward(depth, width, act, "xavier_normal", dtype=F64, device=device)
                with torch.no_grad():
                    for l, lin in enumerate(C.linears(m)):
                        lin.weight.mul_(gains[l % len(gains)])
                x = torch.randn(16, width, dtype=F64, device=device)
                with torch.no_grad():
                    zs = C.pre_activations(m, x)
                max_deriv = max(max_deriv, max(float(A.get(act).derivative(z).max()) for z in zs))
                vals.append(P.transfer_factor(P.layer_gradient_norms(C.blocks(m), x)).geometric)
            mean = sum(vals) / len(vals)
            se = (sum((v_ - mean) ** 2 for v_ in vals) / (len(vals) - 1) / len(vals)) ** 0.5
            label = f"{act}, Xavier × gains {list(gains)} cycled"
            factors[label] = mean
            claim.check(f"max {act}'(z) over the network's pre-activations < 1", claimed=1.0, measured=max_deriv,
                        relation="<", dtype=F64)
            claim.check(f"per-layer gradient factor, {label}", claimed=1.0, measured=mean, relation="<",
                        interval=(mean - 1.96 * se, mean + 1.96 * se), dtype=F64,
                        counterexample={"activation": act, "gains_cycled": list(gains), "depth": depth, "width": width,
                                        "factor": mean, "growth_over_depth": mean**depth, "snippet": _snippet(f"""
                            import torch
                            from gradcore import chains, probes
                            from gradcore.activations import get
                            gains, vals, max_deriv = {list(gains)!r}, [], 0.0
                            for seed in range(3):
                                torch.manual_seed(seed)
                                m = chains.feedforward({depth}, {width}, {act!r}, 'xavier_normal', dtype=torch.float64)
                                with torch.no_grad():
                                    for l, lin in enumerate(chains.linears(m)):
                                        lin.weight.mul_(gains[l % len(gains)])
                                x = torch.randn(16, {width}, dtype=torch.float64)
                                with torch.no_grad():
                                    zs = chains.pre_activations(m, x)
                                max_deriv = max([max_deriv] + [get({act!r}).derivative(z).max().item() for z in zs])
                                vals.append(probes.transfer_factor(probes.layer_gradient_norms(chains.blocks(m), x)).geometric)
                            print("max {act}'(z) =", max_deriv, "< 1; per-layer gradient factor: measured",
                                  sum(vals) / len(vals), "claimed < 1 (vanishing)")
                        """)})
    bad = {k: v for k, v in factors.items() if v >= 1}
    claim.correct("with tanh' < 1 everywhere, every other layer at 3× Xavier scale already reverses the trend: "
                  + ", ".join(f"{k}: {v:.3f}/layer" for k, v in factors.items())
                  + f" (growth where ≥ 1: {', '.join(bad) or 'none'}); sigmoid (σ' ≤ 1/4) stays vanishing")


@pytest.mark.claim("DEPTH-07")
def test_quarter_power_ten(claim, device):
    """003 §2.b: "`0.25¹⁰ ≈ 0.00000095` (10层后梯度就衰减到百万分之一)" and "`0.25¹⁰⁰` (100层后梯度基本就为0了)"."""
    q10 = sp.Rational(1, 4) ** 10
    claim.check("0.25¹⁰ (exact)", claimed=0.00000095, measured=float(q10), rtol=0.01)
    claim.check("0.25¹⁰ vs one millionth", claimed=1e-6, measured=float(q10), rtol=0.05)
    _, best = maximize(st.lists(st.floats(-8, 8), min_size=10, max_size=10),
                       lambda zs: math.prod(float(A.get("sigmoid").derivative(torch.tensor([z], dtype=F64))[0])
                                            for z in zs))
    claim.check("max over z of ∏_{i=1}^{10} σ'(z_i) (Hypothesis)", claimed=float(q10), measured=best, relation="<=",
                rtol=1e-12)
    q100 = {dt: float(torch.tensor(0.25, dtype=dt, device=device) ** 100) for dt in (torch.float32, F64)}
    claim.check("0.25¹⁰⁰ in float32", claimed=0.0, measured=q100[torch.float32], dtype=torch.float32, atol=1e-40)
    claim.check("0.25¹⁰⁰ in float64 (exact 2⁻²⁰⁰)", claimed=float(sp.Rational(1, 4) ** 100),
                measured=q100[F64], rtol=1e-12, dtype=F64)
    # Whole gradients of real 10-layer sigmoid networks include the weights too.
    ratios = {}
    for init in ("xavier_normal", "kaiming_normal"):
        vals = []
        for seed in range(3):
            torch.manual_seed(seed)
            m = C.feedforward(10, 128, "sigmoid", init, dtype=F64, device=device)
            n = P.layer_gradient_norms(C.blocks(m), torch.randn(16, 128, dtype=F64, device=device))
            vals.append(float(n[0] / n[-1]))
        ratios[init] = sum(vals) / len(vals)
        claim.check(f"‖∂L/∂h₀‖/‖∂L/∂h₁₀‖, 10-layer sigmoid net, {init}, width 128", claimed=1e-6,
                    measured=ratios[init], relation="<=", outside="whole gradient (weights included), not ∏σ'",
                    dtype=F64, counterexample={"init": init, "depth": 10, "width": 128, "ratio": ratios[init],
                                               "snippet": _snippet(f"""
                        import torch
                        from gradcore import chains, probes
                        vals = []
                        for seed in range(3):
                            torch.manual_seed(seed)
                            m = chains.feedforward(10, 128, 'sigmoid', {init!r}, dtype=torch.float64)
                            n = probes.layer_gradient_norms(chains.blocks(m), torch.randn(16, 128, dtype=torch.float64))
                            vals.append((n[0] / n[-1]).item())
                        print("||dL/dh_0|| / ||dL/dh_10||, sigmoid, {init}, width 128: measured", sum(vals) / len(vals),
                              "claimed <= 1e-6 (0.25^10 =", 0.25 ** 10, ")")
                    """)})
    claim.correct(f"0.25¹⁰ = {float(q10):.4g} bounds ∏σ'; a real 10-layer sigmoid network's gradient ratio is "
                  + ", ".join(f"{k}: {v:.2g}" for k, v in ratios.items()) + " — one millionth only at Xavier scale")


@pytest.mark.claim("DEPTH-08")
def test_sigmoid_transfer_factor(claim, device):
    """004 §3.3.1 累积衰减模型: "对于Sigmoid激活函数，平均λ ≈ 0.1"."""
    depth, widths, seeds = 20, (64, 192), range(3)
    measured = {}
    for init in ("xavier_normal", "kaiming_normal", "torch_default"):
        vals = []
        for width in widths:
            for seed in seeds:
                torch.manual_seed(seed)
                m = C.feedforward(depth, width, "sigmoid", init, device=device)
                n = P.layer_gradient_norms(C.blocks(m), torch.randn(32, width, device=device))
                vals.append(P.transfer_factor(n).geometric)
                if seed == 0:
                    claim.curve("sigmoid-grad-vs-depth", f"sigmoid, {init}, width {width}", range(depth + 1),
                                (n / n[-1]).flip(0).cpu(), xlabel="layers backpropagated k",
                                ylabel="‖g‖ / ‖g_L‖", logy=True)
        mean = sum(vals) / len(vals)
        se = (sum((v_ - mean) ** 2 for v_ in vals) / (len(vals) - 1) / len(vals)) ** 0.5
        measured[init] = (mean, se)
        claim.check(f"λ, sigmoid, {init} (depth {depth}, widths {widths}, 3 seeds)", claimed=0.1, measured=mean,
                    interval=(mean - 1.96 * se, mean + 1.96 * se), dtype=torch.float32,
                    counterexample={"activation": "sigmoid", "init": init, "depth": depth, "lambda": mean,
                                    "snippet": _snippet(f"""
                        import torch
                        from gradcore import chains, probes
                        vals = []
                        for width in {tuple(widths)!r}:
                            for seed in {list(seeds)!r}:
                                torch.manual_seed(seed)
                                m = chains.feedforward({depth}, width, 'sigmoid', {init!r})
                                n = probes.layer_gradient_norms(chains.blocks(m), torch.randn(32, width))
                                vals.append(probes.transfer_factor(n).geometric)
                        print("lambda, sigmoid, {init}, depth {depth}: measured", sum(vals) / len(vals), vals, "claimed 0.1")
                    """)})
    claim.correct("λ depends on the initialisation and none of the usual ones gives 0.1: "
                  + ", ".join(f"{k}: {m:.3f} ± {1.96 * s:.3f}" for k, (m, s) in measured.items()))


def _scaled_orthogonal(n: int, gain: float, device: str) -> torch.nn.Linear:
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))
    lin = torch.nn.Linear(n, n, bias=False, device=device)
    with torch.no_grad():
        lin.weight.copy_(gain * q)
    return lin


@pytest.mark.claim("DEPTH-09")
def test_underflow_of_01_power_100(claim, device):
    """004 §3.3.1: "当L=100时，梯度衰减为0.1^{100} = 10^{-100}，在数值上完全不可检测"."""
    lin = _scaled_orthogonal(8, 0.1, device)
    x = torch.randn(2, 8, device=device)
    depths = {}
    for dtype in (torch.float16, torch.bfloat16, torch.float32, F64):
        d = depths[dtype] = P.underflow_depth(lambda l: lin, x, dtype, 400)
        wide = dtype == F64
        claim.check(f"depth at which ∂L/∂x is exactly 0, {dtype} (λ = 0.1 chain)", claimed=100,
                    measured=float("inf") if d is None else d, relation="<=", dtype=dtype,
                    outside="float64 arithmetic" if wide else None,
                    counterexample={"dtype": str(dtype), "underflow_depth": d, "min_subnormal":
                                    float(torch.finfo(dtype).tiny * torch.finfo(dtype).eps),
                                    "snippet": _snippet(f"""
                        import torch
                        from gradcore import probes
                        g = torch.Generator().manual_seed(0)
                        q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64))
                        lin = torch.nn.Linear(8, 8, bias=False)
                        with torch.no_grad():
                            lin.weight.copy_(0.1 * q)  # lambda = 0.1 per layer
                        x = torch.tensor({x.tolist()!r})
                        d = probes.underflow_depth(lambda l: lin, x, {dtype}, 400)
                        print("depth at which dL/dx is exactly 0 in {dtype}: measured", d, "claimed <= 100")
                    """)})
    claim.check("10⁻¹⁰⁰ stored in float64", claimed=1e-100, measured=float(torch.tensor(1e-100, dtype=F64)),
                rtol=1e-15, dtype=F64)
    claim.correct("0.1¹⁰⁰ underflows to exactly 0 in training precisions (gradient exactly 0 from depth "
                  + ", ".join(f"{str(k).replace('torch.', '')}: {v}" for k, v in depths.items() if k != F64)
                  + f") but is representable in float64, where the gradient first vanishes at depth {depths[F64]}")


@pytest.mark.claim("DEPTH-10")
def test_overflow_depth_per_dtype(claim, device):
    """000 §核心概念: "梯度值过大，超出了计算机浮点数的表示范围，最终变为 `NaN` … 或 `Inf`"; 003 §3.a 数值溢出."""
    x = torch.randn(2, 8, device=device)
    for gain in (2.0, 4.0):
        lin = _scaled_orthogonal(8, gain, device)
        depths = []
        for dtype in (torch.float16, torch.bfloat16, torch.float32):
            d = P.overflow_depth(lambda l: lin, x, dtype, 400)
            predicted = math.log(float(torch.finfo(dtype).max)) / math.log(gain)
            depths.append(float("nan") if d is None else d)
            claim.check(f"overflow depth, {dtype}, linear chain ×{gain} vs log(max)/log({gain}) = {predicted:.1f}",
                        claimed=predicted, measured=float("inf") if d is None else d, atol=4, dtype=dtype)
        claim.curve("overflow-depth", f"orthogonal×{gain} linear chain, width 8", [16, 16.5, 32], depths,
                    xlabel="bits of the dtype (float16, bfloat16 plotted at 16.5, float32)",
                    ylabel="depth where ∂L/∂x has inf/NaN", kind="scatter")


@pytest.mark.claim("DEPTH-11")
def test_exploding_definition(claim, device, seed):
    """004 定义3.3.3: "存在常数C > 1使得‖∂L/∂w^{(l)}‖ ≥ C^L ‖∂L/∂w^{(L)}‖"."""
    depth, width = 12, 64
    # tanh at 3× Xavier: the backward signal grows while the forward one stays bounded (|tanh| < 1),
    # so the weight gradients ‖∂L/∂W_l‖ = growth of ‖g_l‖ times a bounded ‖h_{l−1}‖ explode too.
    m = C.feedforward(depth, width, "tanh", "xavier_normal", init_kwargs={"gain": 3.0}, dtype=F64, device=device)
    m(torch.randn(4, width, dtype=F64, device=device)).sum().backward()
    norms = torch.stack([lin.weight.grad.norm() for lin in C.linears(m)])
    c = P.transfer_factor(norms).geometric  # ‖∂L/∂W_l‖ ≈ c^{L−l}‖∂L/∂W_L‖
    claim.check("measured per-layer growth C of ‖∂L/∂W_l‖ (tanh, 3× Xavier, depth 12)", claimed=1.0, measured=c,
                relation=">")
    worst_literal = min(float(norms[l] / norms[-1]) / c ** depth for l in range(depth))
    claim.check("min_l ‖∂L/∂W_l‖ / (C^L ‖∂L/∂W_L‖) ≥ 1 (literal definition)", claimed=1.0, measured=worst_literal,
                relation=">=", rtol=1e-6, counterexample={"l": depth, "L": depth, "C": c, "ratio": worst_literal,
                                                         "snippet": _snippet(f"""
                    import torch
                    from gradcore import chains, probes
                    torch.manual_seed({seed})  # the suite's base seed
                    L = {depth}
                    m = chains.feedforward(L, {width}, 'tanh', 'xavier_normal', init_kwargs={{'gain': 3.0}}, dtype=torch.float64)
                    m(torch.randn(4, {width}, dtype=torch.float64)).sum().backward()
                    norms = torch.stack([lin.weight.grad.norm() for lin in chains.linears(m)])
                    C = probes.transfer_factor(norms).geometric  # measured per-layer growth, > 1
                    ratios = [(norms[l] / norms[-1]).item() / C ** L for l in range(L)]
                    print("C =", C, "; min_l ||dL/dW_l|| / (C^L ||dL/dW_L||): measured", min(ratios), "claimed >= 1",
                          "(at l = L the ratio is C^-L =", C ** -L, ")")
                """)})
    worst_fixed = min(float(norms[l] / norms[-1]) / c ** (depth - 1 - l) for l in range(depth))
    fit = P.transfer_factor(norms)
    claim.check("log-linear fit of ‖∂L/∂W_l‖ against L − l (R²): growth is geometric in L − l", claimed=1.0,
                measured=fit.r2, relation=">=", atol=0.05)
    claim.note(f"with exponent L − l and the same C, min_l ratio = {worst_fixed:.3f} (finite-width fluctuation)")
    claim.correct(f"with exponent L the definition fails at l = L for every C > 1 (here C = {c:.4f}, ratio "
                  f"{worst_literal:.3g}); it should read ‖∂L/∂w^(l)‖ ≥ C^(L−l) ‖∂L/∂w^(L)‖")

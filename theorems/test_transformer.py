"""Pre-LN / Post-LN Transformer claims (catalogue: gradcore/claims/transformer.toml)."""
import numpy as np
import pytest
import torch
from torch import nn

from gradcore import transformer as tr
from gradcore.stats import mean_ci

D_MODEL, HEADS, D_FF = 32, 4, 64


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _torch_layer(norm_first: bool, src: nn.Module, device: str) -> nn.TransformerEncoderLayer:
    layer = nn.TransformerEncoderLayer(D_MODEL, HEADS, D_FF, dropout=0.0, batch_first=True,
                                       norm_first=norm_first).to(device)
    layer.load_state_dict(src.state_dict())
    return layer


@pytest.mark.claim("PLN-01")
def test_definition_is_post_ln(claim, device):
    """004 §3.3.4 Def. 3.3.12: "Pre-LN Transformer: h_l^(1) = LN(h_{l−1} + Attention(h_{l−1}))"."""
    b = tr.block("pre", D_MODEL, HEADS, D_FF).to(device)
    x = torch.randn(2, 6, D_MODEL, device=device)
    with torch.no_grad():
        h1 = b.norm1(x + b.attn(x))                          # the definition, verbatim
        seed_def = b.norm2(h1 + b.ffn(h1))
        pre = _torch_layer(True, b, device)(x)
        post = _torch_layer(False, b, device)(x)
    claim.check("‖Def. 3.3.12 − torch Pre-LN (norm_first=True)‖ / ‖Pre-LN‖", claimed=0.0, measured=_rel(seed_def, pre),
                dtype=torch.float32, counterexample={
                    "d_model": D_MODEL, "n_heads": HEADS, "d_ff": D_FF, "snippet":
                    "import torch; from gradcore import transformer as tr; b = tr.block('pre', 32, 4, 64); "
                    "x = torch.randn(2, 6, 32); h = b.norm1(x + b.attn(x)); y = b.norm2(h + b.ffn(h)); "
                    "print((y - b(x)).norm() / b(x).norm())"})
    post_gap = _rel(seed_def, post)
    claim.check("‖Def. 3.3.12 − torch Post-LN (norm_first=False)‖ / ‖Post-LN‖", claimed=0.0, measured=post_gap,
                dtype=torch.float32)
    claim.correct(f"Def. 3.3.12 is the Post-LN block (relative gap to torch's norm_first=False {post_gap:.1e}, to "
                  f"norm_first=True {_rel(seed_def, pre):.2f}); Pre-LN is h ← h + Attn(LN(h)), h ← h + FFN(LN(h))")


@pytest.mark.claim("PLN-02")
def test_pre_ln_main_path_carries_gradient(claim, device):
    """004 §3.3.4 Def. 3.3.12: "这种结构将层归一化置于残差分支内部，确保了主路径的梯度可以直接传播"."""
    depths, seeds = (2, 4, 8, 16), range(3)
    direct, ratio = {"pre": [], "post": []}, {"pre": [], "post": []}
    for kind in ("pre", "post"):
        for depth in depths:
            cs, rs = [], []
            for s in seeds:
                torch.manual_seed(s)
                model = tr.stack(kind, depth, D_MODEL, HEADS, D_FF).to(device)
                x = torch.randn(2, 8, D_MODEL, device=device, requires_grad=True)
                out = model(x)
                g = torch.randn_like(out)
                out.backward(g)
                # share of the output gradient that reaches the input unchanged (identity path)
                cs.append(float((x.grad * g).sum() / g.pow(2).sum()))
                rs.append(float(x.grad.norm() / g.norm()))
            direct[kind].append(mean_ci(cs))
            ratio[kind].append(float(np.exp(np.mean(np.log(rs)))))
        claim.curve("pln-direct-gradient-vs-depth", f"{kind}-LN (d=32, 4 heads, 3 seeds)", depths,
                    [m for m, _, _ in direct[kind]], xlabel="depth", ylabel="⟨∂L/∂x₀, ∂L/∂x_L⟩ / ‖∂L/∂x_L‖²")
        claim.curve("pln-input-gradient-vs-depth", f"{kind}-LN (d=32, 4 heads, 3 seeds)", depths, ratio[kind],
                    xlabel="depth", ylabel="‖∂L/∂x₀‖ / ‖∂L/∂x_L‖", logy=True)
    for depth, (m, lo, hi) in zip(depths, direct["pre"]):
        claim.check(f"Pre-LN depth {depth}: identity-path share of the input gradient = 1", claimed=1.0, measured=m,
                    interval=(lo, hi), dtype=torch.float32)
    m_post, lo_post, hi_post = direct["post"][-1]
    claim.check(f"Post-LN depth {depths[-1]}: identity-path share < Pre-LN's (LN on the main path)",
                claimed=direct["pre"][-1][0], measured=m_post, interval=(lo_post, hi_post),
                relation="<", dtype=torch.float32)
    torch.manual_seed(0)
    prof = {k: tr.gradient_profile(tr.stack(k, 16, D_MODEL, HEADS, D_FF).to(device),
                                   torch.randn(4, 8, D_MODEL, device=device)) for k in ("pre", "post")}
    for k, p in prof.items():
        claim.curve("pln-layer-gradients", f"{k}-LN, depth 16, seed 0", range(1, 17), p.param.cpu(), xlabel="layer",
                    ylabel="‖∂L/∂θ_l‖", logy=True)
    claim.note(f"at init both stacks keep ‖∂L/∂x₀‖/‖∂L/∂x_L‖ of order 1 at depth 16 (Pre-LN {ratio['pre'][-1]:.2f}, "
               f"Post-LN {ratio['post'][-1]:.2f}); what differs is the direct identity path "
               f"(share {direct['pre'][-1][0]:.2f} vs {m_post:.2f})")


@pytest.mark.claim("PLN-03")
def test_where_layernorm_sits(claim, device):
    """004 §3.3.4: "层归一化通常部署在注意力层和前馈层之间（Pre-LN Transformer）或之后（Post-LN Transformer）"."""
    b = tr.block("pre", D_MODEL, HEADS, D_FF).to(device)
    x = torch.randn(2, 6, D_MODEL, device=device)
    with torch.no_grad():
        pre, post = _torch_layer(True, b, device)(x), _torch_layer(False, b, device)(x)
        y = x + b.attn(b.norm1(x))
        pre_formula = y + b.ffn(b.norm2(y))                  # LN before each sublayer, inside the branch
        z = b.norm1(x + b.attn(x))
        post_formula = b.norm2(z + b.ffn(z))                 # LN after each residual addition
        w = x + b.attn(x)
        between = w + b.ffn(b.norm2(w))                      # LN only between attention and FFN
    claim.check("torch Post-LN = LN after each sublayer's residual add", claimed=0.0, measured=_rel(post_formula, post),
                atol=1e-5, dtype=torch.float32)
    claim.check("torch Pre-LN = LN before each sublayer (incl. before attention)", claimed=0.0,
                measured=_rel(pre_formula, pre), atol=1e-5, dtype=torch.float32)
    gap = _rel(between, pre)
    claim.check("block with LN only between attention and FFN vs torch Pre-LN", claimed=0.0, measured=gap, atol=1e-5,
                outside="literal reading: LN only between the two sublayers", dtype=torch.float32,
                counterexample={"d_model": D_MODEL, "snippet":
                                "import torch; from gradcore import transformer as tr; b = tr.block('pre', 32, 4, 64); "
                                "x = torch.randn(2, 6, 32); w = x + b.attn(x); print((w + b.ffn(b.norm2(w)) - b(x)).norm() / b(x).norm())"})
    claim.correct(f"Post-LN puts LN after each residual addition; Pre-LN puts LN at the input of every sublayer, "
                  f"including before attention — an LN only between attention and FFN is a different block "
                  f"(relative gap {gap:.2f} to torch's norm_first=True)")

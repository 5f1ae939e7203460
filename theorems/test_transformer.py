"""Pre-LN / Post-LN Transformer claims (catalogue: gradcore/claims/transformer.toml)."""
import pytest

from gradcore.measure import transformer as T

ROUNDING = 1e-5   # float32 block outputs of O(1): ~100 ulp (the catalogue's atol)


@pytest.mark.claim("PLN-01")
def test_definition_is_post_ln(claim, device):
    """PLN-01 (004 §3.3.4 Def. 3.3.12): the block the definition names Pre-LN."""
    pre = T.block_formula_gap(formula="ln_after_add", norm_first=True, device=device)
    claim.compare("‖Def. 3.3.12 − torch Pre-LN (norm_first=True)‖ / ‖Pre-LN‖", claimed=0.0, measured=pre,
                  counterexample={"d_model": T.D_MODEL, "n_heads": T.HEADS, "d_ff": T.D_FF})
    post = T.block_formula_gap(formula="ln_after_add", norm_first=False, bound=ROUNDING, device=device)
    claim.compare("‖Def. 3.3.12 − torch Post-LN (norm_first=False)‖ / ‖Post-LN‖", claimed=0.0, measured=post)
    claim.correct(f"Def. 3.3.12 is the Post-LN block (relative gap to torch's norm_first=False {post:.1e}, to "
                  f"norm_first=True {pre:.2f}); Pre-LN is h ← h + Attn(LN(h)), h ← h + FFN(LN(h))")


@pytest.mark.claim("PLN-02")
def test_pre_ln_main_path_carries_gradient(claim, device):
    """PLN-02 (004 §3.3.4 Def. 3.3.12): with LN inside the residual branch the main path carries the gradient."""
    depths = (2, 4, 8, 16)
    share = {(k, d): T.identity_path_share(kind=k, depth=d, device=device) for k in ("pre", "post") for d in depths}
    for kind in ("pre", "post"):
        claim.curve("pln-direct-gradient-vs-depth", f"{kind}-LN (d=32, 4 heads, 3 seeds)", depths,
                    [share[kind, d].value for d in depths], xlabel="depth", ylabel="⟨∂L/∂x₀, ∂L/∂x_L⟩ / ‖∂L/∂x_L‖²")
        claim.curve("pln-input-gradient-vs-depth", f"{kind}-LN (d=32, 4 heads, 3 seeds)", depths,
                    [T.input_gradient_ratio(kind=kind, depth=d, device=device) for d in depths],
                    xlabel="depth", ylabel="‖∂L/∂x₀‖ / ‖∂L/∂x_L‖", logy=True)
        claim.curve("pln-layer-gradients", f"{kind}-LN, depth 16, seed 0", range(1, 17),
                    T.layer_gradients(kind=kind, device=device), xlabel="layer", ylabel="‖∂L/∂θ_l‖", logy=True)
    for depth in depths:
        claim.compare(f"Pre-LN depth {depth}: identity-path share of the input gradient = 1", claimed=1.0,
                      measured=share["pre", depth])
    pre, post = share["pre", depths[-1]], share["post", depths[-1]]
    claim.compare(f"Post-LN depth {depths[-1]}: identity-path share < Pre-LN's (LN on the main path)",
                  claimed=pre, measured=post, relation="<")
    ratio = {k: T.input_gradient_ratio(kind=k, depth=depths[-1], device=device) for k in ("pre", "post")}
    claim.note(f"at init both stacks keep ‖∂L/∂x₀‖/‖∂L/∂x_L‖ of order 1 at depth 16 (Pre-LN {ratio['pre']:.2f}, "
               f"Post-LN {ratio['post']:.2f}); what differs is the direct identity path "
               f"(share {pre:.2f} vs {post:.2f})")


@pytest.mark.claim("PLN-03")
def test_where_layernorm_sits(claim, device):
    """PLN-03 (004 §3.3.4): LN sits between attention and FFN (Pre-LN) or after them (Post-LN)."""
    post = T.block_formula_gap(formula="ln_after_add", norm_first=False, bound=ROUNDING, device=device)
    claim.compare("torch Post-LN = LN after each sublayer's residual add", claimed=0.0, measured=post)
    pre = T.block_formula_gap(formula="ln_before_sublayer", norm_first=True, bound=ROUNDING, device=device)
    claim.compare("torch Pre-LN = LN before each sublayer (incl. before attention)", claimed=0.0, measured=pre)
    gap = T.block_formula_gap(formula="ln_between", norm_first=True, device=device)
    claim.compare("block with LN only between attention and FFN vs torch Pre-LN", claimed=0.0, measured=gap,
                  outside="literal reading: LN only between the two sublayers", counterexample={"d_model": T.D_MODEL})
    claim.correct(f"Post-LN puts LN after each residual addition; Pre-LN puts LN at the input of every sublayer, "
                  f"including before attention — an LN only between attention and FFN is a different block "
                  f"(relative gap {gap:.2f} to torch's norm_first=True)")

"""Unit tests of gradcore.transformer: blocks equal torch's TransformerEncoderLayer and
the written formulas; gradient profiles equal autograd's."""
import pytest
import torch
from torch import nn

from gradcore import GradcoreInputError
from gradcore import transformer as tr


@pytest.mark.parametrize("kind,norm_first", [("pre", True), ("post", False)])
def test_block_equals_torch_encoder_layer(device, kind, norm_first):
    b = tr.block(kind, 16, 4, 32).to(device)
    ref = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=norm_first).to(device)
    ref.load_state_dict(b.state_dict())
    x = torch.randn(2, 5, 16, device=device)
    torch.testing.assert_close(b(x), ref(x))


def test_block_formulas(device):
    pre, post = tr.block("pre", 8, 2, 16).to(device), tr.block("post", 8, 2, 16).to(device)
    post.load_state_dict(pre.state_dict())
    x = torch.randn(3, 4, 8, device=device)
    y = x + pre.attn(pre.norm1(x))
    torch.testing.assert_close(pre(x), y + pre.ffn(pre.norm2(y)))
    z = post.norm1(x + post.attn(x))
    torch.testing.assert_close(post(x), post.norm2(z + post.ffn(z)))
    assert (pre(x) - post(x)).abs().max() > 0.1


def test_gradient_profile_matches_autograd(device):
    model = tr.stack("post", 3, 8, 2, 16, final_norm=True).to(device)
    x = torch.randn(2, 4, 8, device=device)
    up = torch.randn(2, 4, 8, device=device)
    prof = tr.gradient_profile(model, x, up)
    hs = [x.requires_grad_(True)]
    for m in model:
        hs.append(m(hs[-1]))
        hs[-1].retain_grad()
    model.zero_grad()
    hs[-1].backward(up)
    assert prof.param.shape == (3,) and prof.hidden.shape == (3,)
    for i in range(3):
        want = torch.sqrt(sum(p.grad.pow(2).sum() for p in model[i].parameters()))
        torch.testing.assert_close(prof.param[i].cpu(), want.cpu())
        g_in = hs[i].grad
        torch.testing.assert_close(prof.hidden[i].item(), g_in.norm().item(), rtol=1e-5, atol=1e-6)
    assert len(model) == 4 and isinstance(model[-1], nn.LayerNorm)


@pytest.mark.parametrize("call", [
    lambda: tr.block("middle", 8, 2, 16),
    lambda: tr.block("pre", 8, 3, 16),
    lambda: tr.block("pre", 8, 2, 16, activation="swish"),
    lambda: tr.stack("pre", 0, 8, 2, 16),
    lambda: tr.gradient_profile(nn.Sequential(nn.Linear(2, 2)), torch.randn(1, 2, 2)),
    lambda: tr.gradient_profile(tr.stack("pre", 1, 8, 2, 16), torch.randn(2, 8)),
    lambda: tr.gradient_profile(tr.stack("pre", 1, 8, 2, 16), torch.randn(1, 2, 8), torch.randn(1, 3, 8)),
])
def test_bad_inputs_raise(call):
    with pytest.raises(GradcoreInputError):
        call()


def test_xavier_init_draws_each_projection_as_a_square_matrix():
    model = tr.xavier_init_(tr.stack("pre", 2, 64, 4, 64).double())
    for b in model:
        for w in (*b.self_attn.in_proj_weight.chunk(3), b.linear1.weight, b.linear2.weight):
            assert w.std().item() == pytest.approx(64 ** -0.5, rel=0.05)   # N(0, 2/(d + d)) = N(0, 1/d)
        assert all(p.abs().max() == 0 for p in (b.self_attn.in_proj_bias, b.linear1.bias, b.linear2.bias))


@pytest.mark.parametrize("kind", tr.KINDS)
def test_residual_norms_are_the_sums_each_block_ends_with(kind):
    """LIT-10: Post-LN's x^{post,5} = x3 + FFN(x3) before norm2, Pre-LN's block output, written out."""
    model = tr.xavier_init_(tr.stack(kind, 3, 16, 2, 16).double())
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    want, h = [], x
    with torch.no_grad():
        for b in model:
            if kind == "post":
                x3 = b.norm1(h + b.attn(h))
                r = x3 + b.ffn(x3)
                h = b.norm2(r)
            else:
                r = h = b(h)
            want.append(r.pow(2).sum(-1).mean() / 16)
    torch.testing.assert_close(tr.residual_norms(model, x), torch.stack(want))


def test_residual_norms_rejects_a_model_without_blocks():
    with pytest.raises(GradcoreInputError, match="no Pre-LN/Post-LN blocks"):
        tr.residual_norms(nn.Sequential(nn.Linear(4, 4)), torch.randn(1, 2, 4))

"""Pre-LN and Post-LN Transformer encoder blocks, stacks of them, and per-layer gradients.

004 §3.3.4 Definition 3.3.12 names a "Pre-LN" block and claims it keeps LN inside the
residual branch so the main path carries the gradient directly. The two arrangements:

* Pre-LN:  x ← x + Attn(LN₁(x));  x ← x + FFN(LN₂(x))
* Post-LN: x ← LN₁(x + Attn(x));  x ← LN₂(x + FFN(x))

Submodules carry the names of torch's ``nn.TransformerEncoderLayer`` (``self_attn``,
``linear1``, ``linear2``, ``norm1``, ``norm2``), so its state dict loads unchanged;
the unit tests show each block equals ``nn.TransformerEncoderLayer`` with
``norm_first=True`` / ``False``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import _validate as v

KINDS = ("pre", "post")
_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


class _Block(nn.Module):
    """Shared parts: multi-head self-attention and a two-layer feed-forward network."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, activation: str = "relu",
                 eps: float = 1e-5) -> None:
        super().__init__()
        d_model = v.integer(d_model, "d_model", minimum=1)
        n_heads = v.integer(n_heads, "n_heads", minimum=1)
        d_ff = v.integer(d_ff, "d_ff", minimum=1)
        if d_model % n_heads:
            v.fail("n_heads", f"{n_heads} does not divide d_model {d_model}")
        self.act = _ACTIVATIONS[v.choice(activation, "activation", _ACTIVATIONS)]
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=0.0, batch_first=True)
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model, eps=eps)
        self.norm2 = nn.LayerNorm(d_model, eps=eps)

    def attn(self, x: torch.Tensor) -> torch.Tensor:
        return self.self_attn(x, x, x, need_weights=False)[0]

    def ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.act(self.linear1(x)))


class PreLNBlock(_Block):
    """x + Attn(LN(x)), then x + FFN(LN(x)); input (batch, seq, d_model)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class PostLNBlock(_Block):
    """LN(x + Attn(x)), then LN(x + FFN(x)); input (batch, seq, d_model)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.attn(x))
        return self.norm2(x + self.ffn(x))


def block(kind: str, d_model: int, n_heads: int, d_ff: int, activation: str = "relu") -> _Block:
    """One block of ``kind`` ``"pre"`` or ``"post"``."""
    cls = {"pre": PreLNBlock, "post": PostLNBlock}[v.choice(kind, "kind", KINDS)]
    return cls(d_model, n_heads, d_ff, activation)


def stack(kind: str, depth: int, d_model: int, n_heads: int, d_ff: int, *,
          activation: str = "relu", final_norm: bool = False) -> nn.Sequential:
    """``depth`` blocks of ``kind``, optionally followed by a final LayerNorm (usual for Pre-LN)."""
    depth = v.integer(depth, "depth", minimum=1)
    layers: list[nn.Module] = [block(kind, d_model, n_heads, d_ff, activation) for _ in range(depth)]
    if final_norm:
        layers.append(nn.LayerNorm(d_model))
    return nn.Sequential(*layers)


def _input(blocks: list[_Block], x: object) -> torch.Tensor:
    """A (batch, seq, d_model) input in the blocks' dtype and on their device."""
    x = v.module_input(blocks[0], v.tensor(x, "x", ndim=3), "x")
    d_model = blocks[0].norm1.normalized_shape[0]
    if x.shape[-1] != d_model:
        v.fail("x", f"last dim {x.shape[-1]} does not match d_model {d_model}")
    return x


def xavier_init_(model: nn.Module) -> nn.Module:
    """Xiong et al. 2020 §3's initialisation, in place: every weight matrix Xavier-Gaussian
    (``nn.init.xavier_normal_``; the query, key and value projections each as its own d×d
    matrix, as the paper writes them), every bias 0 (LIT-10). Returns ``model``."""
    for m in v.module(model, "model").modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.MultiheadAttention):
            for w in m.in_proj_weight.data.chunk(3):
                nn.init.xavier_normal_(w)
            nn.init.zeros_(m.in_proj_bias)
    return model


def residual_norms(model: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Per block l, E‖r_l‖²/d over the tokens of ``x``: the residual sum a block ends with (LIT-10).

    Xiong et al.'s Lemma measures, for Post-LN, x^{post,5}_l = x^{post,3}_l + FFN(x^{post,3}_l),
    the sum entering the block's closing LayerNorm (``norm2``); for Pre-LN, x^{pre}_{l+1}, the
    block's output. Post-LN sums are caught by a forward pre-hook on ``norm2``.
    """
    blocks = [m for m in v.module(model, "model", nn.Sequential) if isinstance(m, _Block)]
    if not blocks:
        v.fail("model", "contains no Pre-LN/Post-LN blocks")
    x = _input(blocks, x)
    sums: list[torch.Tensor] = []

    def mean_square(t: torch.Tensor) -> torch.Tensor:
        return t.pow(2).sum(-1).mean() / t.shape[-1]

    handles = [b.norm2.register_forward_pre_hook(lambda mod, args: sums.append(mean_square(args[0])))
               for b in blocks if isinstance(b, PostLNBlock)]
    try:
        with torch.no_grad():
            h = x
            for m in model:
                h = m(h)
                if isinstance(m, PreLNBlock):
                    sums.append(mean_square(h))
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack(sums)


@dataclass(frozen=True)
class GradientProfile:
    """Per-block gradient norms of one backward pass, block 0 nearest the input."""

    param: torch.Tensor   # ‖∂L/∂θ_l‖ over the parameters of block l
    hidden: torch.Tensor  # ‖∂L/∂x_{l}‖, the gradient reaching block l's input


def gradient_profile(model: nn.Sequential, x: torch.Tensor,
                     upstream: torch.Tensor | None = None) -> GradientProfile:
    """Backpropagate ``L = ⟨upstream, model(x)⟩`` and record per-block gradient norms.

    ``upstream`` defaults to a standard normal tensor like the output (drawn from torch's
    global generator), i.e. a random unit-variance output gradient. Blocks are the
    ``_Block`` members of ``model``; hidden-state gradients are caught with full
    backward hooks.
    """
    if not isinstance(model, nn.Sequential):
        v.fail("model", f"expected torch.nn.Sequential, got {type(model).__name__}")
    blocks = [m for m in model if isinstance(m, _Block)]
    if not blocks:
        v.fail("model", "contains no Pre-LN/Post-LN blocks")
    x = _input(blocks, x)
    caught: dict[int, float] = {}
    handles = [b.register_full_backward_hook(
        lambda mod, gin, gout, i=i: caught.__setitem__(i, float(gin[0].norm())))
        for i, b in enumerate(blocks)]
    try:
        model.zero_grad(set_to_none=True)
        out = model(x.detach().requires_grad_(True))
        if upstream is None:
            upstream = torch.randn_like(out)
        else:
            upstream = v.tensor(upstream, "upstream")
            v.same_shape(out, upstream, "model(x)", "upstream")
        out.backward(upstream)
    finally:
        for h in handles:
            h.remove()
    param = [torch.sqrt(sum(p.grad.pow(2).sum() for p in b.parameters())) for b in blocks]
    return GradientProfile(torch.stack(param).detach(),
                           torch.tensor([caught[i] for i in range(len(blocks))], dtype=x.dtype))

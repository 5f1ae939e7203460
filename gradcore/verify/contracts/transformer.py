"""Contract for a Transformer block: a factory ``d -> block`` (or a block) mapping (batch, tokens, d) to itself.

Claims (catalogue PLN, LIT-10): 004 §3.3.4 Def. 3.3.12 and "层归一化通常部署在注意力层和前馈层
之间（Pre-LN Transformer）或之后（Post-LN Transformer）"; "这种结构将层归一化置于残差分支内部，
确保了主路径的梯度可以直接传播"; Xiong et al. 2020 Lemma 2 and Theorem 1 (Post-LN keeps ‖x_l‖² flat and its last layer's gradient
O(1) in depth; Pre-LN's grows like l and its last layer's gradient shrinks like 1/√L). Where a block's
LayerNorm sits is measured from what it computes, never read from its attributes; a declared
``norm_first`` (torch's name) is then checked against it. Blocks are measured at init in eval mode
(dropout off). Every clause measures through :mod:`gradcore.measure.transformer` (the PLN and LIT-10
theorems' recipes) with the factory passed as ``Given`` (``kind=make``).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ...measure import Given
from ...measure import transformer as M
from .base import Clause, Outcome, Settings, callable_or_fail, probe
from ...errors import CheckError
from .contract import Contract

KIND = "transformer"
BATCH, TOKENS = 2, 8
DEPTH = 16                  # PLN-02's deepest stack
SHARE = 0.8                 # identity-path share: Pre-LN's is 1 (PLN-02), Post-LN's ≈ 0.35 at depth 16
SEEDS = (8, 32)             # stacks per share estimate: 8 first, 32 when 8 leave the decision open
GROWTH_SEEDS, GRADIENT_SEEDS, GRADIENT_DEPTHS = 8, 6, (2, 4, 8, 16)   # LIT-10's seeds, depths up to DEPTH
NORMALISED = 1e-2   # |RMS(y) − 1| of a normalised output (LayerNorm's eps moves it by ~1e-9 at ×100)
PASSES = 0.1        # ‖y − x‖/‖x‖ at ×100 of a block the input passes through (Pre-LN's ≈ 0.003)
FLAT = 1e-4         # |slope| of E‖x_l‖²/d on l LayerNorm's eps (1e-5) can give a normalised output


@dataclass(frozen=True)
class BlockSubject:
    name: str
    make: Any              # a factory d -> block (an instance is wrapped in M.FreshCopies)
    setup: str             # Python lines binding ``make``
    width: int             # d the clauses build blocks at
    declared: str | None   # "pre"/"post" from a ``norm_first`` attribute, None when none is declared

    @property
    def given(self) -> Given:
        return Given(self.make, "make", self.setup)


def block_width(block: nn.Module) -> int:
    """An instance's width d: ``d_model``, else its first LayerNorm's, attention's or Linear's; CheckError."""
    d = getattr(block, "d_model", None)
    for m in block.modules():
        if d is not None:
            break
        d = (m.normalized_shape[-1] if isinstance(m, nn.LayerNorm) else m.embed_dim
             if isinstance(m, nn.MultiheadAttention) else m.in_features if isinstance(m, nn.Linear) else None)
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise CheckError("cannot tell the block's width d: give it an integer d_model or pass a factory d -> block")
    return d


def build(make: Any, d: int) -> nn.Module:
    """``make(d)`` in eval mode; one-line CheckError when the factory cannot build a block of width d."""
    try:
        block = make(d)
    except Exception as e:
        raise CheckError(f"factory cannot build a block of width {d}: {type(e).__name__}: {e}") from None
    if not isinstance(block, nn.Module):
        raise CheckError(f"factory returned {type(block).__name__} for width {d}, expected an nn.Module block")
    return block.eval()


@dataclass(frozen=True)
class Factory:
    """What the smoke test runs: a factory d -> block and the width d it is checked at."""

    make: Any
    width: int


def _block_and_input(f: Factory, settings: Settings) -> tuple[nn.Module, torch.Tensor]:
    """A block of width d on the device and the (batch, tokens, d) probe input."""
    d = f.width
    return build(f.make, d).to(settings.device), settings.randn(BATCH, TOKENS, d, offset=11, dtype=torch.float32)


def smoke(f: Factory, settings: Settings) -> torch.Tensor:
    """One-line CheckError unless ``make(d)`` maps a (batch, tokens, d) input to a finite tensor of that shape."""
    (block, x), d = _block_and_input(f, settings), f.width
    return probe(lambda: block(x), what="block", on=f"a ({BATCH}, {TOKENS}, {d}) input (batch, tokens, d)",
                 shape=(BATCH, TOKENS, d))


def _declared(block: nn.Module) -> str | None:
    first = getattr(block, "norm_first", None)
    return None if not isinstance(first, bool) else ("pre" if first else "post")


FRESH = "from gradcore.measure.transformer import FreshCopies\nmake = FreshCopies(make)"


def prepare(obj: Any, settings: Settings) -> Factory:
    """The factory and its width: an instance becomes fresh copies of itself at its own width."""
    if isinstance(obj, nn.Module):
        return Factory(M.FreshCopies(obj), block_width(obj))
    callable_or_fail(obj)
    return Factory(obj, M.D_MODEL * settings.scale)


def excludes(obj: Any) -> str | None:
    """Inference: a class that is no nn.Module builds no block."""
    return "it is a class but not an nn.Module" if inspect.isclass(obj) and not issubclass(obj, nn.Module) else None


def recognises(f: Factory, y: torch.Tensor, settings: Settings) -> str | None:
    """Inference: a block mixes tokens (attention): moving token 0 moves token 1's output."""
    block, x = _block_and_input(f, settings)
    moved = x.clone()
    moved[:, 0] += settings.randn(BATCH, f.width, offset=12, dtype=torch.float32)   # not constant: LN removes that
    with torch.no_grad():
        y, z = block(x), block(moved)
    if bool((y[:, 1:] - z[:, 1:]).abs().max() > 1e-6):
        return None
    return "it does not mix tokens: moving token 0 leaves the other tokens' outputs unchanged"


def subject_of(f: Factory, obj: Any, name: str, setup: str, settings: Settings) -> BlockSubject:
    setup = f"{setup}\n{FRESH}" if isinstance(obj, nn.Module) else setup
    return BlockSubject(name, f.make, setup, f.width, _declared(build(f.make, f.width)))


def _placement(s: BlockSubject, settings: Settings) -> tuple[str, dict[str, Any]]:
    rms, passes = (M.block_placement(kind=s.given, part=part, d_model=s.width, seed=settings.seed,
                                     device=settings.device) for part in M.PLACEMENT_PARTS)
    measured = "post" if rms.value <= NORMALISED else "pre" if passes.value <= PASSES else "neither"
    return measured, {"max |RMS(y_t) − 1|, x ×100": rms, "‖y − x‖/‖x‖, x ×100": passes}


def ln_placement(s: BlockSubject, settings: Settings) -> Outcome:
    measured, constants = _placement(s, settings)
    constants = {"measured placement": measured, "declared (norm_first)": s.declared or "none", **constants}
    holds = s.declared is None or s.declared == measured
    witness = constants["max |RMS(y_t) − 1|, x ×100" if measured == "post" else "‖y − x‖/‖x‖, x ×100"]
    cex = None if holds else {"declared": s.declared, "measured": measured, "snippet": witness.reproduction}
    note = "" if s.declared else "no norm_first declared: the placement is described, not checked"
    return Outcome(holds, constants, cex, note)


def direct_path(s: BlockSubject, settings: Settings) -> Outcome:
    for seeds in SEEDS:
        m = M.identity_path_share(kind=s.given, depth=DEPTH, seeds=seeds * settings.scale, d_model=s.width,
                                  device=settings.device)
        lo, hi = m.interval
        holds = True if lo >= SHARE else (False if hi < SHARE else None)
        if holds is not None:
            break
    constants = {f"identity-path share, depth {DEPTH}": m, "95% CI": f"[{lo:.3f}, {hi:.3f}]"}
    cex = None if holds is not False else {"depth": DEPTH, "share": m.value, "snippet": m.reproduction}
    return Outcome(holds, constants, cex, note="" if holds is not None else "confidence interval straddles the bound")


def residual_growth(s: BlockSubject, settings: Settings) -> Outcome:
    args = {"kind": s.given, "depth": DEPTH, "seeds": GROWTH_SEEDS * settings.scale, "d_model": s.width}
    first = M.residual_norm(layer=1, **args)
    per_block = M.residual_norm_increment(**args)
    slope = M.residual_norm_slope(**args)
    lo, hi = slope.interval
    # a normalised output gives E‖x_l‖²/d = 1 − O(eps) at every l; a growing stream's slope is ≥ 1e-2
    trend = ("grows with l (Pre-LN: Lemma 2)" if lo > FLAT else "falls with l" if hi < -FLAT
             else "flat in l (Post-LN: Lemma 2)")
    return Outcome(True, {"E‖x_1‖²/d": first, "mean of (E‖x_l‖²/d − 1)/l": per_block,
                          "slope of E‖x_l‖²/d on l": slope, "trend": trend},
                   note="the block's own init, float64 on the CPU; Lemma 2's bounds [1/2, 3/2] per block are for "
                        "Xavier-Gaussian weights")


def last_layer_gradient(s: BlockSubject, settings: Settings) -> Outcome:
    p = M.last_ffn_gradient_exponent(kind=s.given, depths=GRADIENT_DEPTHS,
                                     seeds=GRADIENT_SEEDS * settings.scale, d_model=s.width)
    lo, hi = p.interval
    return Outcome(True, {"exponent p in ‖∂L/∂θ_L‖ ∝ L^p": p, "95% CI": f"[{lo:.3f}, {hi:.3f}]"},
                   note="Theorem 1: p = 0 for Post-LN (needs warm-up), −1/2 for Pre-LN")


CLAUSES = (
    Clause("ln-placement", ("PLN-01", "PLN-03"),
           "where LayerNorm sits, measured at inputs ×100: after the residual addition (output RMS 1: Post-LN, "
           "DeepNorm) or inside the branch (the input passes through: Pre-LN, sandwich-LN); a declared "
           "norm_first must match", ln_placement),
    Clause("direct-path", ("PLN-02",),
           f"through {DEPTH} freshly drawn blocks the input receives the output gradient along a direct path: "
           f"identity-path share ⟨∂L/∂x₀, ∂L/∂x_L⟩/‖∂L/∂x_L‖² ≥ {SHARE}", direct_path),
    Clause("residual-growth", ("LIT-10",),
           f"E‖x_l‖²/d through {DEPTH} blocks: flat for Post-LN, growing like l for Pre-LN", residual_growth,
           gate=False),
    Clause("last-layer-gradient", ("LIT-10",),
           "the exponent p of the last block's gradient ‖∂L/∂θ_L‖ ∝ L^p over depths "
           f"{', '.join(map(str, GRADIENT_DEPTHS))} (stack closed by a LayerNorm)", last_layer_gradient, gate=False),
)


def _gradcore_block(kind: str, d: int) -> nn.Module:
    from ... import transformer as tr

    block = tr.block(kind, d, M.HEADS, 2 * d)
    block.norm_first = kind == "pre"     # torch's name for the placement, declared to be checked
    return block


def pre_ln_block(d: int) -> nn.Module:
    """gradcore.transformer.PreLNBlock (torch's norm_first=True): 4 heads, d_ff = 2d, torch's default init."""
    return _gradcore_block("pre", d)


def post_ln_block(d: int) -> nn.Module:
    """gradcore.transformer.PostLNBlock (torch's norm_first=False): 4 heads, d_ff = 2d, torch's default init."""
    return _gradcore_block("post", d)


def objects() -> dict[str, Any]:
    """gradcore.transformer's Pre-LN and Post-LN blocks (each equal to torch's TransformerEncoderLayer)."""
    return {"Pre-LN block": pre_ln_block, "Post-LN block": post_ln_block}


class TransformerContract(Contract):
    """A factory ``d -> block`` (a class or a function) or a block, mixing tokens of (batch, tokens, d)."""

    kind, binding, clauses = KIND, "make", CLAUSES
    # a Post-LN or DeepNorm block ends in a LayerNorm, so on (tokens, d) its output is normalised too
    precedes = {"norm": "it mixes tokens (attention), which a normalisation layer does not: a block with a "
                        "LayerNorm after its residual (Post-LN, DeepNorm)"}
    prepare, excludes, smoke = staticmethod(prepare), staticmethod(excludes), staticmethod(smoke)
    recognises, build, objects = staticmethod(recognises), staticmethod(subject_of), staticmethod(objects)

"""Contract for a residual/skip block ``width -> nn.Module`` mapping (batch, width) to itself.

Claims (catalogue RES-05…RES-08; 004 §3.3.2, 003 §4, 002 §残差与密集连接): a block's Jacobian norm,
the per-block gradient factor λ through a stack, and the smallest singular value of the stack's
Jacobian, measured by the recipes of :mod:`gradcore.measure.residual` on the user's block (dense
Jacobians on small widths). The Jacobian bound is a supremum: it is searched (block draws,
structured and random inputs) and reported as a search bound.

RES-01…RES-04 and STAB-02…STAB-04 on a stack of the user's blocks: each block's Jacobian is taken by
central differences of its values, independent of autograd, and compared with the gradient autograd
propagates (per block, along the recursion, and as the product J_1ᵀ⋯J_Dᵀ), so a block whose backward
pass is not its map's derivative (a straight-through estimator) is caught. LIT-11: how one SGD step's
function change scales with the depth of a stack of the block (descriptive).
STAB-01 (‖Wᵀg‖ ≤ σ_max(W)‖g‖) is the definition of the operator norm: no clause can break it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ...measure import Given
from ...measure import residual as M
from ._stack import SEEDS, sequential, undecided_note
from ..verdicts import within
from .base import Clause, Outcome, Settings, callable_or_fail, probe
from ...errors import CheckError
from .contract import Contract

KIND = "residual"
WIDTH, DEPTH = 32, 16
FLOOR = 0.9
BLOCK_DRAWS = 4   # Gaussian (block, input) draws scored before the search


@dataclass(frozen=True)
class ResidualSubject:
    name: str
    make: Callable[[int], nn.Module]   # width -> fresh block, float64, on device
    setup: str
    obj: Any = None                    # the technique as given, bound to ``make`` in ``setup``

    @property
    def given(self) -> Given:
        """The technique as a recipe argument: its reproduction binds it as ``make``."""
        return Given(self.obj, "make", self.setup)


def _factory(obj: Any, settings: Settings) -> Callable[[int], nn.Module]:
    def build(width: int) -> nn.Module:
        m = M.build_block(obj, width, settings.device)
        if not callable(m):
            raise CheckError(f"factory returned {type(m).__name__}, expected an nn.Module")
        return m
    return build


def smoke(make: Callable[[int], nn.Module], settings: Settings) -> None:
    x = settings.randn(4, WIDTH, offset=5)
    probe(lambda: make(WIDTH)(x), what="block", on=f"a random (4, {WIDTH}) input", shape=tuple(x.shape))


def prepare(obj: Any, settings: Settings) -> Callable[[int], nn.Module]:
    callable_or_fail(obj)
    return _factory(obj, settings)


def build(make: Callable[[int], nn.Module], obj: Any, name: str, setup: str, settings: Settings) -> ResidualSubject:
    return ResidualSubject(name, make, setup, obj)


def block_bound(s: ResidualSubject, settings: Settings) -> Outcome:
    """RES-06/07: sup over block draws and inputs of ‖∂block/∂x‖₂, searched (a lower bound on the
    sup: a pass says no amplifying block was found, a violation names one)."""
    sup = M.user_block_norm_bound(make=s.given, width=WIDTH, seed=settings.seed, draws=BLOCK_DRAWS,
                                  profile=settings.profile, device=settings.device)
    holds = sup.value <= 1.0 + 1e-6           # ∞ (a non-finite Jacobian) is an explosion: violated
    constants = {"sup ‖∂block/∂x‖₂ found by search": sup, "blocks drawn": f"{BLOCK_DRAWS} + search",
                 "bound": "search (lower bound on the sup)"}
    cex = None if holds else {"sup ‖∂block/∂x‖₂ found": sup, "found by": sup.witness["source"],
                              "seed": sup.witness["seed"], "x": sup.witness["x"], "snippet": sup.reproduction}
    return Outcome(holds, constants, cex)


def no_vanishing(s: ResidualSubject, settings: Settings) -> Outcome:
    """RES-05/08: E[λ] ≥ FLOOR, decided on a Student-t interval with networks added until it
    excludes FLOOR (settings.seeds, then 10, then the cap 40)."""
    m = sequential(lambda n: M.user_stack_transfer_factor(make=s.given, width=WIDTH, depth=DEPTH, batch=16, seeds=n,
                                                          seed=settings.seed, device=settings.device),
                   lambda m: _above(m, FLOOR), tuple(sorted({settings.seeds, *SEEDS})))
    lo, hi = m.interval
    holds = _above(m, FLOOR)
    constants = {"lambda per block": m, "lambda 95% CI": f"[{lo:.4f}, {hi:.4f}]", "depth": DEPTH, "width": WIDTH,
                 "seeds": m.sizes["seeds"], "seeds cap": SEEDS[-1]}
    cex = None if holds is not False else {"depth": DEPTH, "width": WIDTH, "lambda": m, "snippet": m.reproduction}
    return Outcome(holds, constants, cex,
                   note=m.witness or ("" if holds is not None else undecided_note(m, f"the floor {FLOOR}")))


def _above(m: Any, floor: float) -> bool | None:
    lo, hi = m.interval
    return True if lo >= floor else (False if hi < floor else None)


def identity_floor(s: ResidualSubject, settings: Settings) -> Outcome:
    smin, smax = (M.user_stack_singular_value(make=s.given, which=which, width=WIDTH, depth=DEPTH,
                                              seed=settings.seed + 40, x_seed=settings.seed + 41,
                                              device=settings.device) for which in ("min", "max"))
    holds = smin.value >= 1.0 - 1e-6
    cex = None if holds else {"depth": DEPTH, "width": WIDTH, "σ_min(∂x_D/∂x_0)": smin, "snippet": smin.reproduction}
    return Outcome(holds, {"σ_min(∂x_D/∂x_0)": smin, "σ_max(∂x_D/∂x_0)": smax, "depth": DEPTH}, cex)


CHAIN_DEPTH = 4   # blocks in the stack the chain-rule clauses differentiate (Jacobians by differences)


def _chain(s: ResidualSubject, settings: Settings, recipe: Callable[..., Any], quantity: str) -> Any:
    return recipe(make=s.given, quantity=quantity, width=WIDTH, depth=CHAIN_DEPTH, seed=settings.seed + 50,
                  x_seed=settings.seed + 51, device=settings.device)


def _within(m: Any) -> bool:
    return m.value <= m.bound          # ∞ (a non-finite Jacobian) is an explosion: violated


def block_derivative(s: ResidualSubject, settings: Settings) -> Outcome:
    """RES-01/RES-02: the Jacobian autograd backpropagates through each block is the derivative of the
    block's map, I + ∂F/∂x with F = block − id (central differences), so every backward gain lies in
    1 ± ‖∂F/∂x‖₂."""
    block, band = (_chain(s, settings, M.user_chain_rule_error, q) for q in ("block", "band"))
    holds = _within(block) and _within(band)
    constants = {"max|autograd ∂y/∂x − (I + ∂F/∂x)| / max|I + ∂F/∂x|": block,
                 "excess of max_i |σ_i(∂y/∂x) − 1| over ‖∂F/∂x‖₂ (0 inside the band)": band,
                 "blocks": CHAIN_DEPTH, "width": WIDTH}
    worst = block if not _within(block) else band
    cex = None if holds else {"blocks": CHAIN_DEPTH, "width": WIDTH, "error": worst, "snippet": worst.reproduction}
    return Outcome(holds, constants, cex, note=block.witness or "")


def chain_rule(s: ResidualSubject, settings: Settings) -> Outcome:
    """RES-03/RES-04/STAB-02: autograd's gradient at every block input is the next one's times the block's
    Jacobian at its own input, and g_0 = J_1ᵀ⋯J_Dᵀ g_D (the product runs l = D…1; the written order
    l = 1…D of eq 3.3.9 is reported beside it)."""
    rec, prod, written = (_chain(s, settings, M.user_chain_rule_error, q) for q in ("recursion", "product", "written"))
    holds = _within(rec) and _within(prod)
    constants = {"max_l ‖g_{l+1} J_l − g_l‖/‖g_l‖ (eq 3.3.8)": rec, "max|J_1ᵀ⋯J_Dᵀ g_D − g_0| / max|g_0|": prod,
                 "‖g_D J_1⋯J_D − g_0‖/‖g_0‖ (eq 3.3.9 as written)": written, "blocks": CHAIN_DEPTH}
    worst = rec if not _within(rec) else prod
    cex = None if holds else {"blocks": CHAIN_DEPTH, "width": WIDTH, "error": worst, "snippet": worst.reproduction}
    return Outcome(holds, constants, cex, note=rec.witness or "")


def jacobian_product(s: ResidualSubject, settings: Settings) -> Outcome:
    """STAB-03/STAB-04: the stack's backward gain ‖J_D⋯J_1‖₂ against Π‖J_l‖₂, with the blocks' σ_max and
    conditioning (every σ_max < 1 shrinks every gradient however ill-conditioned the blocks are)."""
    ratio, smax, smax_min, kappa = (_chain(s, settings, M.user_stack_product_ratio, q)
                                    for q in M.PRODUCT_QUANTITIES)
    holds = ratio.value <= 1.0 + 1e-6
    constants = {"‖J_D⋯J_1‖₂ / Π‖J_l‖₂": ratio, "max_l ‖J_l‖₂": smax, "min_l ‖J_l‖₂": smax_min,
                 "max_l κ(J_l)": kappa, "blocks": CHAIN_DEPTH,
                 "every ‖J_l‖₂ < 1 (the stack shrinks every gradient)": str(smax.value < 1.0)}
    cex = None if holds else {"blocks": CHAIN_DEPTH, "ratio": ratio, "snippet": ratio.reproduction}
    return Outcome(holds, constants, cex, note=ratio.witness or "")


SGD_BAND = 0.2    # LIT-11: Fixup's exponent lies within ±0.2 of 0 (a factor ≤ 1.5 over L = 4…32)


def _in_band(m: Any) -> bool | None:
    return within(m.interval, -SGD_BAND, SGD_BAND) if m.interval else False   # ∞: the change explodes


def sgd_depth(s: ResidualSubject, settings: Settings) -> Outcome:
    """LIT-11: whether one SGD step's first-order function change ‖∇_θF‖² is depth-independent in a stack of
    the block (Fixup's aim): the exponent p of Δf ∝ L^p, networks added until its interval decides."""
    p = sequential(lambda n: M.user_sgd_change_slope(make=s.given, width=WIDTH, seeds=n, seed=settings.seed + 60,
                                                     device=settings.device),
                   _in_band, (settings.seeds, SEEDS[0]))   # descriptive: 10 networks at most
    holds = _in_band(p)
    constants = {"exponent p of Δf/η ∝ L^p": p, "depths": str(p.sizes["depths"]), "seeds": p.sizes["seeds"]}
    cex = None if holds is not False else {"exponent p": p, "snippet": p.reproduction}
    return Outcome(holds, constants, cex,
                   note=p.witness or ("" if holds is not None else _undecided(p)))


def _undecided(m: Any) -> str:
    lo, hi = m.interval
    return (f"could not be decided: the 95% interval [{lo:.4f}, {hi:.4f}] still straddles the band ±{SGD_BAND} "
            f"with {m.sizes['seeds']} networks (this descriptive clause's cap)")


CLAUSES = (
    Clause("block-jacobian-bound", ("RES-06", "RES-07"),
           "every block's Jacobian has ‖∂y/∂x‖₂ ≤ 1 (no block can amplify a gradient)", block_bound),
    Clause("no-vanishing", ("RES-05", "RES-08"),
           f"through {DEPTH} stacked blocks the per-block gradient factor λ stays ≥ {FLOOR}", no_vanishing),
    Clause("identity-floor", ("RES-05",),
           "no gradient direction decays through the stack: σ_min(∂x_D/∂x_0) ≥ 1", identity_floor, gate=False),
    Clause("block-derivative", ("RES-01", "RES-02"),
           "the Jacobian autograd backpropagates through a block is its map's derivative I + ∂F/∂x (F = block − "
           "id, by central differences), so a backward step scales a gradient within 1 ± ‖∂F/∂x‖₂",
           block_derivative),
    Clause("chain-rule", ("RES-03", "RES-04", "STAB-02"),
           f"through {CHAIN_DEPTH} blocks autograd's gradient obeys ∂L/∂x_l = ∂L/∂x_{{l+1}} J_l with J_l the "
           "block's derivative at its own input, so g_0 = J_1ᵀ⋯J_Dᵀ g_D (the product in the order l = D…1)",
           chain_rule),
    Clause("jacobian-product", ("STAB-03", "STAB-04"),
           f"through {CHAIN_DEPTH} blocks the backward gain ‖J_D⋯J_1‖₂ is at most Π‖J_l‖₂ (blocks' σ_max and "
           "condition numbers beside it)", jacobian_product, gate=False),
    Clause("sgd-depth", ("LIT-11",),
           f"one SGD step's first-order function change ‖∇_θF‖² is depth-independent in a stack of L blocks "
           f"(a factory taking depth= is told L): Δf ∝ L^p with |p| ≤ {SGD_BAND}, Fixup's aim", sgd_depth, gate=False),
)


def objects() -> dict[str, Any]:
    """gradcore.residual's blocks around its default tanh MLP branch, and the branch alone."""
    from ... import residual as r

    return {"Residual(mlp)": r.residual_mlp, "ScaledResidual(safe α, β=0.5)": r.safely_scaled_mlp,
            "mlp branch, no skip": r.mlp_branch}


class ResidualContract(Contract):
    """A block factory ``width -> nn.Module`` mapping (batch, width) to itself."""

    kind, binding, clauses, signature = KIND, "make", CLAUSES, None
    never_inferred = "residual blocks are not inferred (any shape-preserving module would match): pass the kind"
    prepare, smoke, build = staticmethod(prepare), staticmethod(smoke), staticmethod(build)
    objects = staticmethod(objects)

"""Contract for an activation function f: derivative bound, saturation, depth behaviour.

Claims (catalogue ACT/SAT/DEPTH): 000 §主要“罪魁祸首” "Sigmoid、Tanh、ReLU 这些常用激活
函数的导数都小于或等于1"; 004 §3.3.1 saturation regions S = {|σ'(x)| < ε} and the
per-layer transfer factor λ; 004 §3.3.5 原则3.3.1 (avoid saturation). Every constant is
measured on the subject: sup |f'| symbolically when a sympy form is given and by
Hypothesis search plus a dense grid always; λ through a deep network at the init the
subject recommends (or, if it names none, the standard one that suits it best).
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mpmath
import sympy as sp
import torch
from hypothesis import strategies as st
from torch import nn

from ..search import maximize
from ._stack import decide_interval, depth_to, linear_layers, transfer_factor
from .base import CheckError, Clause, Outcome, Settings, finite

KIND = "activation"
X = sp.Symbol("x", real=True)
RANGE = 40.0          # search interval [-RANGE, RANGE] for f'
SATURATION_EPS = 0.01  # 004 Theorem 3.3.1 uses ε = 0.01
TRANSFER_BAND = (0.9, 1.1)


@dataclass(frozen=True)
class ActivationSubject:
    """An activation prepared for measurement."""

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    expr: sp.Expr | None
    init: Callable[[torch.Tensor], Any] | None
    init_name: str | None
    setup: str  # Python lines that bind the technique to ``f`` (for counterexample snippets)


def derivative(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """f'(x) elementwise by autograd (f is elementwise, so the VJP with ones is f')."""
    x = x.detach().requires_grad_(True)
    y = fn(x)
    if not (isinstance(y, torch.Tensor) and y.requires_grad):
        return torch.zeros_like(x.detach())   # f does not depend on x (a constant): f' = 0
    (g,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
    return torch.zeros_like(x.detach()) if g is None else g.detach()


# --- building the subject ---------------------------------------------------------------

def _callable_of(obj: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    if hasattr(obj, "fn") and callable(obj.fn):   # gradcore.activations.Activation
        return obj.fn
    if inspect.isclass(obj) and issubclass(obj, nn.Module):
        try:
            return obj()
        except TypeError as e:
            raise CheckError(f"cannot instantiate {obj.__name__}() without arguments: {e}") from None
    if not callable(obj):
        raise CheckError(f"{type(obj).__name__} object is not callable")
    return obj


def _expr_of(obj: Any) -> sp.Expr | None:
    form = getattr(obj, "sympy", None)
    if form is None:
        return None
    expr = form(X) if callable(form) else sp.sympify(form)
    free = expr.free_symbols
    if len(free) > 1:
        raise CheckError(f"sympy form {expr} has more than one free symbol")
    return expr.subs(next(iter(free)), X) if free else expr


def _init_of(obj: Any) -> tuple[Callable[[torch.Tensor], Any] | None, str | None]:
    rec = getattr(obj, "recommended_init", None)
    if rec is None:
        return None, None
    if callable(rec):
        return rec, getattr(rec, "__name__", repr(rec))
    from ... import init as initialisers   # helper module; imported only when needed

    found = initialisers.get(rec)
    fn = getattr(found, "fn", found)
    if not callable(fn):
        raise CheckError(f"recommended_init {rec!r} does not name a usable initialiser")
    return fn, str(rec)


def smoke(fn: Callable[[torch.Tensor], torch.Tensor], settings: Settings) -> None:
    """One-line CheckError unless f maps tensors elementwise to finite tensors of the same shape."""
    x = torch.linspace(-3, 3, 12, dtype=torch.float64, device=settings.device).reshape(3, 4)
    y = fn(x)
    if not isinstance(y, torch.Tensor):
        raise CheckError(f"activation returned {type(y).__name__}, expected a Tensor")
    if y.shape != x.shape:
        raise CheckError(f"activation changed the shape: input {tuple(x.shape)}, output {tuple(y.shape)}")
    if not bool(torch.isfinite(y).all()):
        raise CheckError("activation returned non-finite values on inputs in [-3, 3]")
    _finite_on_domain(fn, settings)
    x2 = x.clone()
    x2[0, 0] += 0.5
    changed = (fn(x2) - y).abs() > 1e-12
    changed[0, 0] = False
    if bool(changed.any()):
        raise CheckError("not elementwise: changing one input entry changed other outputs")


def _finite_on_domain(fn: Callable[[torch.Tensor], torch.Tensor], settings: Settings) -> None:
    """One-line CheckError unless f is finite on the whole interval the clauses probe."""
    grid = torch.linspace(-RANGE, RANGE, 8001, dtype=torch.float64, device=settings.device)
    bad = ~torch.isfinite(fn(grid))
    if bool(bad.any()):
        x = float(grid[bad.nonzero()[0, 0]])
        raise CheckError(f"activation returned non-finite values on the probed domain [-{RANGE:g}, {RANGE:g}], "
                         f"first at x = {x:.4g}")


def subject(obj: Any, name: str, setup: str, settings: Settings) -> ActivationSubject:
    fn = _callable_of(obj)
    if isinstance(fn, nn.Module):
        fn = fn.to(device=settings.device, dtype=torch.float64)
    smoke(fn, settings)
    init, init_name = _init_of(obj)
    return ActivationSubject(name, fn, _expr_of(obj), init, init_name, setup)


def looks_like(obj: Any, settings: Settings) -> bool:
    """An elementwise Tensor → Tensor map (what kind inference tries first)."""
    try:
        fn = _callable_of(obj)
        if isinstance(fn, nn.Module) and any(True for _ in fn.parameters()) and not isinstance(fn, nn.PReLU):
            return False
        smoke(fn, settings)
        return True
    except Exception:
        return False


# --- sup |f'| --------------------------------------------------------------------------

def symbolic_sup(expr: sp.Expr) -> tuple[float, float | None]:
    """sup |f'| from the exact form: f' and f'' by ``sympy.diff``; |f'| at every root of f''
    in [-RANGE, RANGE] (sign changes on a grid, refined by ``mpmath.findroot`` at 30 digits)
    and at the far tails x = ±1000."""
    d1 = sp.diff(expr, X)
    d2 = sp.diff(d1, X)
    f1 = sp.lambdify(X, d1, "mpmath")
    f2 = sp.lambdify(X, d2, "mpmath")
    candidates: list[tuple[float, float | None]] = []
    with mpmath.workdps(30):
        for end in (-1000, 1000):
            candidates.append((abs(float(f1(mpmath.mpf(end)))), float(end)))
        grid = [mpmath.mpf(-RANGE) + i * mpmath.mpf(2 * RANGE) / 2000 for i in range(2001)]
        vals = [_value(f2, t) for t in grid]
        for a, b, fa, fb in zip(grid, grid[1:], vals, vals[1:]):
            if fa is None or fb is None or fa * fb > 0:
                continue
            root = a if fa == 0 else (b if fb == 0 else _root(f2, a, b))
            value = _value(f1, root)
            if value is not None:
                candidates.append((abs(value), float(root)))
    return max(candidates, key=lambda c: c[0])


def _value(f: Callable[[Any], Any], t: Any) -> float | None:
    try:
        out = float(f(t))
    except (ValueError, ZeroDivisionError, OverflowError, TypeError):
        return None
    return out if math.isfinite(out) else None


def _root(f: Callable[[Any], Any], a: Any, b: Any) -> Any:
    try:
        return mpmath.findroot(f, (a, b), solver="anderson")
    except (ValueError, ZeroDivisionError):
        return (a + b) / 2


def numeric_sup(fn: Callable[[torch.Tensor], torch.Tensor], settings: Settings) -> tuple[float, float]:
    """sup |f'| on [-RANGE, RANGE] (plus far tails): dense grid, Hypothesis search, then zoom."""
    dev = settings.device
    grid = torch.linspace(-RANGE, RANGE, 40001 * settings.scale, dtype=torch.float64, device=dev)
    far = torch.tensor([-1e6, -1e3, 1e3, 1e6], dtype=torch.float64, device=dev)
    xs = torch.cat([grid, far])
    d = derivative(fn, xs).abs().nan_to_num(nan=float("inf"))
    i = int(d.argmax())
    best_x, best = float(xs[i]), float(d[i])

    def objective(t: float) -> float:
        return float(derivative(fn, torch.tensor([t], dtype=torch.float64, device=dev)).abs()[0])

    hx, hv = maximize(st.floats(-RANGE, RANGE, allow_nan=False), objective, **settings.hypothesis)
    if hv > best:
        best_x, best = hx, hv
    step = 2 * RANGE / (grid.numel() - 1)
    for _ in range(3):   # zoom in around the best point
        local = torch.linspace(best_x - step, best_x + step, 2001, dtype=torch.float64, device=dev)
        dl = derivative(fn, local).abs()
        j = int(dl.argmax())
        if float(dl[j]) >= best:
            best_x, best = float(local[j]), float(dl[j])
        step /= 1000
    return best, best_x


def derivative_bound(s: ActivationSubject, settings: Settings) -> Outcome:
    num, num_x = numeric_sup(s.fn, settings)
    constants: dict[str, Any] = {"sup|f'| (search)": num, "argmax x (search)": num_x}
    sup, at = num, num_x
    if s.expr is not None:
        sym, sym_x = symbolic_sup(s.expr)
        constants.update({"sup|f'| (sympy)": sym, "argmax x (sympy)": sym_x})
        sup, at = max((sym, sym_x), (num, num_x), key=lambda c: c[0])
    holds = sup <= 1.0 + 1e-9
    cex = None
    if not holds:
        x = at if at is not None else num_x
        cex = {"x": x, "f'(x)": float(derivative(s.fn, torch.tensor([x], dtype=torch.float64,
                                                                      device=settings.device))[0]),
               "snippet": f"{s.setup}\nimport torch\nx = torch.tensor([{x!r}], dtype=torch.float64, "
                          f"requires_grad=True)\nf(x).sum().backward()\nprint(x.grad)  # |f'(x)| > 1"}
    return Outcome(holds, constants, cex)


# --- saturation ------------------------------------------------------------------------

def saturation(s: ActivationSubject, settings: Settings) -> Outcome:
    grid = torch.linspace(-RANGE, RANGE, 8001 * settings.scale, dtype=torch.float64, device=settings.device)
    sat = derivative(s.fn, grid).abs() < SATURATION_EPS
    left = _tail_edge(sat, grid, from_left=True)
    right = _tail_edge(sat, grid, from_left=False)
    constants = {"saturated share of [-40, 40]": float(sat.double().mean()), "left saturated below x": left,
                 "right saturated above x": right, "epsilon": SATURATION_EPS}
    holds = left is None or right is None
    cex = None
    if not holds:
        xs = [left - 1.0, right + 1.0]
        ds = derivative(s.fn, torch.tensor(xs, dtype=torch.float64, device=settings.device)).tolist()
        cex = {"epsilon": SATURATION_EPS, "x": xs, "f'(x)": ds,
               "snippet": f"{s.setup}\nimport torch\nx = torch.tensor({xs!r}, dtype=torch.float64, "
                          f"requires_grad=True)\nf(x).sum().backward()\nprint(x.grad)  # both below ε"}
    return Outcome(holds, constants, cex)


def _tail_edge(sat: torch.Tensor, grid: torch.Tensor, *, from_left: bool) -> float | None:
    """Where a saturated tail ends (None when that tail is not saturated)."""
    seq = sat if from_left else sat.flip(0)
    if not bool(seq[0]):
        return None
    unsat = (~seq).nonzero()
    if unsat.numel() == 0:
        return float(grid[-1] if from_left else grid[0])
    k = int(unsat[0]) - 1
    return float(grid[k] if from_left else grid.flip(0)[k])


# --- depth -----------------------------------------------------------------------------

def _standard_inits() -> dict[str, Callable[[torch.Tensor], Any]]:
    return {"he (kaiming_normal_, fan_in)": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
            "xavier (xavier_normal_)": nn.init.xavier_normal_}


def transfer(s: ActivationSubject, settings: Settings) -> Outcome:
    depth, width, batch = 24 * settings.scale, 64 * settings.scale, 32
    candidates = {s.init_name: s.init} if s.init is not None else _standard_inits()
    measured = {}
    for label, init in candidates.items():
        def build(_: int, init: Callable[[torch.Tensor], Any] = init) -> list:
            lins = linear_layers(depth, width, init, settings)
            return [(lambda h, lin=lin: s.fn(lin(h))) for lin in lins]
        measured[label] = transfer_factor(build, depth=depth, width=width, batch=batch, settings=settings)
    label = min(measured, key=lambda k: abs(math.log(max(measured[k]["lambda"], 1e-300))))
    m = measured[label]
    lam = m["lambda"]
    constants: dict[str, Any] = {
        "init": label if s.init is not None else f"{label} (none recommended; best of he/xavier)",
        "lambda": lam, "lambda 95% CI": f"[{m['lambda_lo']:.4f}, {m['lambda_hi']:.4f}]",
        "depth": depth, "width": width,
        "layers to x1e-6": depth_to(lam, 1e-6) if lam < 1 else None,
        "layers to x1e6": depth_to(lam, 1e6) if lam > 1 else None,
    }
    holds = decide_interval(m["lambda_lo"], m["lambda_hi"], *TRANSFER_BAND)
    cex = None
    if holds is False:
        cex = {"init": label, "depth": depth, "width": width, "lambda": lam,
               "gradient ratio over depth": finite(lam ** depth),
               "snippet": f"{s.setup}\nimport torch\nfrom torch import nn\ntorch.manual_seed(0)\n"
                          f"lins = [nn.Linear({width}, {width}).double() for _ in range({depth})]\n"
                          f"for l in lins: nn.init.{'xavier_normal_' if 'xavier' in label else 'kaiming_normal_'}"
                          "(l.weight); nn.init.zeros_(l.bias)  # the init measured\n"
                          f"h0 = torch.randn(32, {width}, dtype=torch.float64, requires_grad=True); h = h0\n"
                          "for l in lins: h = f(l(h))\n"
                          "r = torch.randn_like(h); (h * r).sum().backward()\n"
                          f"print((h0.grad.norm() / r.norm()) ** (1 / {depth}))  # per-layer factor"}
    return Outcome(holds, constants, cex,
                   note="" if holds is not None else "confidence interval straddles the band")


CLAUSES = (
    Clause("derivative-bound", ("ACT-03", "ACT-06"),
           "sup |f'| ≤ 1 — the bound the documents assume for common activations", derivative_bound),
    Clause("saturation", ("ACT-07", "SAT-01"),
           f"f' does not vanish on both tails: {{|f'| < {SATURATION_EPS}}} leaves one tail unsaturated",
           saturation),
    Clause("transfer-factor", ("DEPTH-08", "DEPTH-11", "INIT-07"),
           f"at its init the per-layer gradient transfer factor λ lies in {list(TRANSFER_BAND)} "
           "(gradients neither vanish nor explode with depth)", transfer),
)


def builtins() -> dict[str, tuple[Any, str]]:
    """gradcore's activations, each with the setup lines that rebuild it."""
    from ... import activations

    return {name: (act, f"from gradcore.activations import get\nf = get({name!r}).fn")
            for name, act in activations.REGISTRY.items()}

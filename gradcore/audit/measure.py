"""Measurements of one network at initialisation: per-block Jacobians, the gradient
profile through depth, and the catalogue claims that apply to each block kind.

Everything is matrix-free (``gradcore.spectral.operator_singular_values``: Lanczos on
JᵀJ, one linearisation per block), so the real sizes can be measured on a CPU.
"""
from __future__ import annotations

import copy
import inspect
import math
import os
import time
import zlib
from dataclasses import dataclass, field
from collections.abc import Callable
from functools import cached_property

import torch
from torch import nn

from .. import _validate as v
from .. import spectral, stats
from ..jacobian import JacobianOperator, jacobian_operator
from ..measure.measurement import EPS, ULPS, Kind, Measurement, dtype_name
from . import DEFAULT_TOL
from . import blocks as B
from .pullbacks import CheapPullbacks


MODES = ("train", "eval")
INPUTS = ("float", "ids")
EMBEDDING = "embedding output"   # the profile's first entry when the model reads token ids


@dataclass(frozen=True)
class AuditOptions:
    dtype: torch.dtype = torch.float32
    tol: float = DEFAULT_TOL     # residual ‖JᵀJv − σ²v‖ ≤ tol·σ²: σ_max to ≤ tol/2 relative
    max_steps: int = 40
    probes: int = 4              # Hutchinson probes for the RMS gain
    seed: int = 0
    mode: str = "train"          # BatchNorm: "train" batch statistics, "eval" running statistics
    inputs: str = "float"        # "float": N(0, 1) entries; "ids": token ids uniform over the vocabulary
    device: str = "cpu"          # where the model is measured ("cuda" needs a CUDA build and device)


@dataclass
class AuditedClaim:
    """One catalogue claim measured on a real block."""

    claim: str                   # catalogue id
    quantity: str
    measured: Measurement
    reference: float | None = None   # what the claim predicts, when it predicts a number
    holds: bool | None = None
    note: str = ""
    relation: str = "=="         # how ``measured`` is compared with ``reference``

    @property
    def key(self) -> str:
        """The name of this quantity in the block's measurements (and the results file)."""
        return f"{self.claim}: {self.quantity}"


SIGMA, RMS = "σ_max", "RMS gain"


@dataclass
class BlockResult:
    name: str
    kind: str
    type: str
    in_shape: tuple[int, ...]
    sigma: Measurement           # σ_max of the block's Jacobian (a Lanczos Ritz value)
    residual: float              # relative Lanczos residual of σ_max
    steps: int
    rms: Measurement             # ‖J‖_F / √n_in, Hutchinson estimate with its 95 % interval
    rms_se: float                # its standard error over the probes
    seconds: float
    claims: list[AuditedClaim] = field(default_factory=list)
    unapplied: list[tuple[str, str]] = field(default_factory=list)   # (claim, why it was not applied)

    @property
    def sigma_max(self) -> float:
        return self.sigma.value

    @property
    def rms_gain(self) -> float:
        return self.rms.value

    @property
    def rms_interval(self) -> tuple[float, float]:
        return self.rms.interval or (0.0, math.inf)

    def measurements(self) -> dict[str, Measurement]:
        """Every quantity measured on this block, by name."""
        return {SIGMA: self.sigma, RMS: self.rms, **{c.key: c.measured for c in self.claims}}


@dataclass
class Audit:
    model: str
    input_shape: tuple[int, ...]
    settings: AuditOptions
    blocks: list[BlockResult]
    profile: list[tuple[str, float]]     # (tensor, ‖∂L/∂h‖) from input to output
    wall_s: float
    environment: dict
    cpu_s: float | None = None       # process CPU time: the cost on a machine shared with others
    outputs: list[str] = field(default_factory=lambda: ["output"])   # the output tensors L is taken over
    notes: list[str] = field(default_factory=list)   # what could not be measured, and why
    target: str | None = None        # MODULE:FACTORY the model was built from (its reproductions rebuild it)
    weights: str | None = None       # the state_dict file loaded into it; None: its initialisation
    config: str | None = None        # the config it was built from (--config), if any


Skip = tuple[str, str]   # (claim, why it was not applied)
RMS_METHOD = f"Hutchinson estimate; {stats.MEAN_METHOD} of ‖Jz‖²/n, square-rooted"


def _sizes(x: torch.Tensor, **more: object) -> dict[str, object]:
    return {"input": list(x.shape), **more}


def lanczos_conditioning(s: AuditOptions, dtype: torch.dtype, factors: int = 1) -> float:
    """The Lanczos tolerance in the dtype's ulps: a Ritz value converged to tol/2 relative may land
    anywhere within that on another CPU (``factors`` Ritz values in a ratio)."""
    eps = EPS[dtype_name(dtype)]
    return max(1.0, factors * (s.tol / 2) / (ULPS * eps))


def numeric(value: float, x: torch.Tensor, s: AuditOptions, factors: int = 0, **sizes: object) -> Measurement:
    """A deterministic number measured at ``x`` (``factors`` Lanczos values in it set its tolerance)."""
    conditioning = lanczos_conditioning(s, x.dtype, factors) if factors else 1.0
    return Measurement(value, Kind.NUMERIC, dtype=x.dtype, sizes=_sizes(x, **sizes), conditioning=conditioning)


def rms_gain(op: JacobianOperator, probes: int, generator: torch.Generator) -> tuple[Measurement, float]:
    """‖J‖_F/√n (Hutchinson: E‖Jz‖² = ‖J‖_F² for z ~ N(0, I)) with its 95 % interval (Student-t
    interval of the mean of ‖Jz‖²/n, square-rooted), and its standard error."""
    x = op.x
    sq = torch.stack([op.matvec(torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device))
                      .double().square().sum() for _ in range(probes)]) / x.numel()
    mean = float(sq.mean())
    se = float(sq.std() / math.sqrt(probes))
    _, lo, hi = stats.mean_ci(sq.tolist()) if mean > 0 else (mean, 0.0, 0.0)
    rms = math.sqrt(mean)
    m = Measurement(rms, Kind.STATISTICAL, dtype=x.dtype, sizes=_sizes(x, probes=probes),
                    interval=(math.sqrt(max(lo, 0.0)), math.sqrt(max(hi, 0.0))), method=RMS_METHOD, n=probes)
    return m, se / (2 * rms) if mean > 0 else math.inf


def block_generator(s: AuditOptions, name: str) -> torch.Generator:
    """The block's own random stream: its probes do not depend on which blocks were measured before it."""
    return torch.Generator().manual_seed(s.seed * 1_000_003 + zlib.crc32(name.encode()))


UNCONVERGED = "no verdict: Lanczos stopped at --max-steps before its residual reached --tol (σ_max is a lower bound)"


def converged(residual: float, s: AuditOptions) -> bool:
    """Whether a Lanczos σ_max reached the tolerance (else it is only a lower bound, too weak for a verdict)."""
    return residual <= s.tol


@dataclass(frozen=True)
class AuditOperator(JacobianOperator):
    """A :class:`JacobianOperator` recorded with :class:`~gradcore.audit.pullbacks.CheapPullbacks`:
    the same forward values, the products J u through convolutions and BatchNorm 5–60× cheaper."""

    @cached_property
    def _linearised(self) -> tuple[torch.Tensor, Callable, Callable]:
        with CheapPullbacks():
            return JacobianOperator._linearised.func(self)


def operator(f, x: torch.Tensor) -> JacobianOperator:
    """The block's Jacobian at ``x``, matrix-free (:class:`AuditOperator`)."""
    checked = jacobian_operator(f, x)
    return AuditOperator(checked.f, checked.x)


def top(op: JacobianOperator, s: AuditOptions) -> spectral.OperatorSpectrum:
    return spectral.jacobian_spectrum(op, 1, which="largest", tol=s.tol,
                                      max_steps=min(s.max_steps, op.x.numel()), seed=s.seed)


def sigma_max(f, x: torch.Tensor, s: AuditOptions) -> float:
    return float(top(operator(f, x), s).values[0])


def block_function(block: B.Block, call: B.Call):
    """The block as the model calls it, a map of its input stream (masks, memory, kwargs as captured)."""
    return call.bind(block.module)


def measure_block(block: B.Block, call: B.Call, s: AuditOptions) -> BlockResult:
    start = time.perf_counter()
    op = operator(block_function(block, call), call.x)
    spec = top(op, s)
    rms, se = rms_gain(op, s.probes, block_generator(s, block.name))
    sigma = numeric(float(spec.values[0]), call.x, s, 1, lanczos_steps=spec.steps)
    result = BlockResult(block.name, block.kind, type(block.module).__name__, tuple(call.x.shape),
                         sigma.with_(method=f"Lanczos on JᵀJ, residual ≤ {s.tol:g}·σ²: a Ritz value, ≤ the true σ_max"),
                         float(spec.residuals[0]), spec.steps, rms, se, 0.0)
    found = CLAIMS.get(block.kind, lambda *a: [])(block, call, op, s, result)
    result.claims = [c for c in found if isinstance(c, AuditedClaim)]
    result.unapplied = [c for c in found if not isinstance(c, AuditedClaim)]
    result.seconds = time.perf_counter() - start
    return result


def residual_claims(block: B.Block, call: B.Call, op: JacobianOperator, s: AuditOptions,
                    r: BlockResult) -> list[AuditedClaim | Skip]:
    """RES-02: σ_max(block) ≤ 1 + σ_max(F') on an identity block act ∘ (I + F) (act 1-Lipschitz,
    slopes 0/1 — ReLU, ReLU6 or none); RES-05: ‖Jᵀg‖ ≥ ‖g‖ for an upstream g."""
    if block.residual is None:
        why = "no identity addition found in its forward (a projection shortcut, or not traceable by torch.fx)"
        return [("RES-02", why), ("RES-05", why)]
    x = op.x
    branch = top(operator(call.bind(block.residual.branch), x), s)
    eps = float(branch.values[0])
    bound = 1 + eps
    slack = 1 + s.tol   # the Lanczos values carry tol/2 relative error each
    both = converged(r.residual, s) and converged(float(branch.residuals[0]), s)
    g = torch.randn(op.out_shape, dtype=x.dtype, generator=torch.Generator().manual_seed(s.seed)).to(x.device)
    ratio = float(op.rmatvec(g).norm() / g.norm())
    after = f" then {block.residual.after}" if block.residual.after else ""
    return [AuditedClaim("RES-02", f"σ_max(block) vs 1 + σ_max(∂F/∂x), block = x + F(x){after}", r.sigma,
                       bound, r.sigma_max <= bound * slack if both else None, relation="<=",
                       note=f"branch σ_max = {eps:.4g}" + ("" if both else f"; {UNCONVERGED}")),
            AuditedClaim("RES-05", "‖Jᵀg‖/‖g‖, Gaussian upstream g", numeric(ratio, x, s), 1.0, ratio >= 1.0,
                       note="the claim ignores the activation after the addition" if ratio < 1 else "",
                       relation=">=")]


def _standard_like(conv: nn.Conv2d, out_channels: int, s: AuditOptions, seed: int) -> nn.Conv2d:
    """A He-initialised (kaiming_normal, fan_in) dense conv with ``conv``'s geometry."""
    std = nn.Conv2d(conv.in_channels, out_channels, conv.kernel_size, conv.stride, conv.padding,
                    bias=False, dtype=s.dtype, device=conv.weight.device)
    with torch.no_grad():
        nn.init.kaiming_normal_(std.weight, mode="fan_in", nonlinearity="relu",
                                generator=torch.Generator().manual_seed(seed))
    std.weight.requires_grad_(False)
    return std


def depthwise_claims(block: B.Block, call: B.Call, op: JacobianOperator, s: AuditOptions,
                     r: BlockResult) -> list[AuditedClaim | Skip]:
    """CONV-03 on the real layer: σ_max(depthwise) / σ_max(standard conv of the same
    geometry, He init), zero padding and the layer's stride, both measured matrix-free."""
    conv = block.module
    std = _standard_like(conv, conv.out_channels, s, s.seed)
    ratio = r.sigma_max / sigma_max(std, op.x, s)
    return [AuditedClaim("CONV-03", "σ_max(depthwise, as the model initialises it) / σ_max(standard, He init)",
                       numeric(ratio, op.x, s, 2), note="CONV-03's √2 compares depthwise+pointwise with standard, both He; "
                                   "this is the real depthwise layer alone, same geometry")]


def norm_claims(block: B.Block, call: B.Call, op: JacobianOperator, s: AuditOptions,
                r: BlockResult) -> list[AuditedClaim | Skip]:
    """NORM-03: a BatchNorm Jacobian's σ_max is set by γ/√(σ² + ε), largest over channels: the batch's
    variance in train mode (to the Lanczos tolerance), the running one in eval mode (exactly: diagonal)."""
    m, x = block.module, op.x
    if not isinstance(m, nn.modules.batchnorm._BatchNorm):
        return [("NORM-03", f"about BatchNorm; this is {type(m).__name__} (σ_max measured only)")]
    if x.ndim < 2:
        return [("NORM-03", "the input has no channel axis")]
    if m.training:
        dims = [0] + list(range(2, x.ndim))
        var, where = x.double().var(dim=dims, unbiased=False), "batch"
    else:
        var, where = m.running_var.double(), "running"
    gamma = m.weight.double() if m.weight is not None else torch.ones_like(var)
    predicted = float((gamma.abs() / (var + m.eps).sqrt()).max())
    ok = converged(r.residual, s)
    return [AuditedClaim("NORM-03", f"σ_max vs max_c γ_c/√(σ²_c + ε), {where} variance", r.sigma, predicted,
                       abs(r.sigma_max / predicted - 1) <= s.tol if ok else None, note="" if ok else UNCONVERGED)]


def transformer_claims(block: B.Block, call: B.Call, op: JacobianOperator, s: AuditOptions,
                       r: BlockResult) -> list[AuditedClaim | Skip]:
    """PLN-02: the same weights with the other LayerNorm placement (Pre-LN ↔ Post-LN), called as the model calls it."""
    if not hasattr(block.module, "norm_first"):
        return [("PLN-02", f"{type(block.module).__name__} has no switchable LayerNorm placement (norm_first)")]
    other = copy.deepcopy(block.module)
    other.norm_first = not block.module.norm_first
    sigma = sigma_max(call.bind(other), op.x, s)
    here, there = ("Pre-LN", "Post-LN") if block.module.norm_first else ("Post-LN", "Pre-LN")
    return [AuditedClaim("PLN-02", f"σ_max {here} (as built) / {there} (same weights)",
                       numeric(r.sigma_max / sigma, op.x, s, 2), note=f"{there} σ_max = {sigma:.4g}")]


def attention_claims(block: B.Block, call: B.Call, op: JacobianOperator, s: AuditOptions,
                     r: BlockResult) -> list[AuditedClaim | Skip]:
    """ATTN-04 / ATTN-02 on the real layer: logit variance and softmax peak with and without 1/√d_k,
    from the query and key the model passes (a cross-attention's keys come from its memory)."""
    m = block.module
    if not isinstance(m, nn.MultiheadAttention) or not m._qkv_same_embed_dim or m.in_proj_weight is None:
        return [("ATTN-04", f"{type(m).__name__}: gradcore reads logits of nn.MultiheadAttention with packed "
                            "q/k/v projections only")]
    args, kwargs = call.arguments(op.x)
    bound = inspect.signature(m.forward).bind(*args, **kwargs).arguments
    query, key = (t if m.batch_first else t.transpose(0, 1) for t in (bound["query"], bound["key"]))
    h, d, e = m.num_heads, m.head_dim, m.embed_dim
    w, b = m.in_proj_weight, m.in_proj_bias
    q = nn.functional.linear(query, w[:e], None if b is None else b[:e])
    k = nn.functional.linear(key, w[e:2 * e], None if b is None else b[e:2 * e])
    q = q.reshape(*q.shape[:-1], h, d).transpose(-3, -2)
    k = k.reshape(*k.shape[:-1], h, d).transpose(-3, -2)
    raw = q @ k.transpose(-1, -2)
    mask = _additive(bound.get("attn_mask"), raw)
    out = []
    for label, logits in (("scaled 1/√d_k", raw / math.sqrt(d)), ("unscaled", raw)):
        peak = float((logits + mask).softmax(-1).amax(-1).mean())
        allowed = logits.double()[torch.isfinite(mask.expand_as(logits))]
        out.append(AuditedClaim("ATTN-04", f"logit variance, {label}", numeric(float(allowed.var()), op.x, s),
                              1.0 if label.startswith("scaled") else None,
                              note=f"mean max softmax weight {peak:.3f}" + (" (masked)" if mask.any() else "")))
    return out


def _additive(mask: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
    """An attention mask as the additive term of the logits (boolean True = not allowed)."""
    if mask is None:
        return torch.zeros((), dtype=logits.dtype)
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=logits.dtype).masked_fill(mask, -math.inf)
    return mask.to(logits.dtype)


CLAIMS = {"residual": residual_claims, "depthwise": depthwise_claims, "norm": norm_claims,
          "transformer": lambda b, c, op, s, r: transformer_claims(b, c, op, s, r) + (
              residual_claims(b, c, op, s, r) if b.residual else []),
          "attention": attention_claims}


def tensor_outputs(y: object, path: str = "") -> list[tuple[str, torch.Tensor]]:
    """The floating-point tensors in a model's output, by where they sit in it: the tensor itself
    (``""``), a tuple's or list's items (``[0]``, ``[1][0]`` — an ``nn.LSTM``'s ``(out, (h, c))``),
    a dict's values (``["logits"]``). Anything else (ints, strings, masks) is not differentiable."""
    if isinstance(y, torch.Tensor):
        return [(path or "output", y)] if y.is_floating_point() else []
    if isinstance(y, dict):
        return [o for k, v in y.items() for o in tensor_outputs(v, f"{path}[{k!r}]")]
    if isinstance(y, (tuple, list)):
        return [o for i, v in enumerate(y) for o in tensor_outputs(v, f"{path}[{i}]")]
    return []


def required_parameters(fn: object) -> list[str]:
    """The parameters ``fn`` cannot be called without (none when its signature cannot be read)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):   # no signature to read (a C-level callable): just try it
        return []
    return [p.name for p in params if p.default is inspect.Parameter.empty
            and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]


def checked_outputs(net: nn.Module, x: torch.Tensor) -> list[str]:
    """Run ``net`` once on ``x``: where its finite floating-point outputs are, or an InputError
    naming ``model`` (it needs more arguments, fails on ``x``, returns no such tensor or a
    non-finite one: a gradient through it is not a number)."""
    extra = required_parameters(net.forward)[1:]   # the first takes the input
    if extra:
        v.fail("model", f"its forward needs arguments besides the input: {', '.join(extra)}; "
                        "audit feeds it one tensor of --input-shape (wrap it in a module that supplies them)")
    try:
        with torch.no_grad():
            y = net(x)
    except Exception as e:
        first = (str(e).splitlines() or [""])[0]
        v.fail("model", f"does not run on an input of shape {tuple(x.shape)}: {type(e).__name__}: {first}")
    found = tensor_outputs(y)
    if not found:
        v.fail("model", f"returns no floating-point tensor (got {type(y).__name__}); audit measures the "
                        "gradient through the floating-point tensors of its output")
    bad = [name for name, t in found if not bool(torch.isfinite(t).all())]
    if bad:
        where = "" if bad == ["output"] else f" {', '.join(bad)}"
        v.fail("model", f"its output{where} is not finite (NaN or inf) at initialisation on a N(0, 1) "
                        f"input of shape {tuple(x.shape)}, so no gradient through it is a number")
    return [name for name, _ in found]


def _embedding_leaf(first: nn.Module, kept: dict[str, torch.Tensor]):
    """A pre-hook making the first stage's input stream (the embedding output, when the model reads
    token ids) a leaf that requires grad, kept under ``EMBEDDING``."""
    def hook(module, args, kwargs):
        if EMBEDDING not in kept:
            stream = B._stream(args, kwargs)
            if stream is not None and stream.is_floating_point():
                kept[EMBEDDING] = stream.detach().clone().requires_grad_(True)
                return B.with_stream(args, kwargs, kept[EMBEDDING])
        return None
    return first.register_forward_pre_hook(hook, with_kwargs=True)


def gradient_profile(model: nn.Module, stages: list[B.Block], x: torch.Tensor,
                     gen: torch.Generator) -> list[tuple[str, float]]:
    """‖∂L/∂h‖ at the input and after every stage, L = Σ ⟨g, y⟩ over the model's floating-point
    output tensors y with g ~ N(0, I): one backward pass. Token ids have no gradient: the first
    entry is then the embedding output, the input stream of the first stage."""
    outs: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(module, args, output):
            output = B.first_tensor(output)
            if isinstance(output, torch.Tensor) and output.requires_grad:
                output.retain_grad()
                outs[name] = output
        return hook
    handles = [b.module.register_forward_hook(keep(b.name)) for b in stages]
    ids = not x.is_floating_point()
    if ids and stages:
        handles.append(_embedding_leaf(stages[0].module, outs))
    try:
        x = x.clone().requires_grad_(not ids)
        ys = [y for _, y in tensor_outputs(model(x))]
        gs = [torch.randn(y.shape, generator=gen, dtype=y.dtype).to(y.device) for y in ys]
        loss = sum((y * g).sum() for y, g in zip(ys, gs))
        if loss.requires_grad:   # an output that does not depend on x has gradient 0 there
            loss.backward()
    finally:
        for hd in handles:
            hd.remove()
    first = outs.pop(EMBEDDING, None) if ids else x
    profile = [(EMBEDDING if ids else "input", float(first.grad.norm()) if first is not None and first.grad is not None
                else 0.0)]
    profile += [(name, float(t.grad.norm())) for name, t in outs.items() if t.grad is not None]
    profile.append(("output", float(torch.cat([g.flatten() for g in gs]).norm())))
    return profile


def audit(model: nn.Module, input_shape: tuple[int, ...], *, name: str = "model",
          settings: AuditOptions = AuditOptions(), target: str | None = None, only: str | None = None,
          weights: str | None = None, config: str | None = None) -> Audit:
    """Every recognised block of ``model`` measured on the call the model makes to it, plus the depth
    profile. ``target`` (``MODULE:FACTORY``), ``config`` (what it was built from) and ``weights`` (the
    state_dict file loaded into it) are recorded; :func:`gradcore.audit.recipes.audited` gives every measurement a reproduction from them.
    ``only`` measures that one block (no profile)."""
    if not isinstance(model, nn.Module):
        v.fail("model", f"expected an nn.Module, got {type(model).__name__}")
    input_shape = tuple(v.integer(d, "input_shape", minimum=1) for d in input_shape)
    if not input_shape:
        v.fail("input_shape", "expected at least one dimension")
    if settings.mode not in MODES or settings.inputs not in INPUTS:
        v.fail("settings", f"mode must be one of {', '.join(MODES)} and inputs one of {', '.join(INPUTS)}, "
                           f"got {settings.mode!r}, {settings.inputs!r}")
    if settings.device not in ("cpu", "cuda") or (settings.device == "cuda" and not torch.cuda.is_available()):
        v.fail("settings", f"device must be 'cpu', or 'cuda' where CUDA is available, got {settings.device!r}"
                           + (" (this torch sees no CUDA device)" if settings.device == "cuda" else ""))
    start, cpu = time.perf_counter(), time.process_time()
    torch.manual_seed(settings.seed)
    net = B.at_initialisation(model, settings.dtype, settings.mode).to(settings.device)
    gen = torch.Generator().manual_seed(settings.seed)   # on the CPU: the same draws on every device
    x = model_input(net, input_shape, settings, gen).to(settings.device)
    outputs = checked_outputs(net, x)
    candidates = B.candidates(net)
    calls = B.capture(net, candidates, x)
    found = B.confirmed(candidates, calls)
    if only is not None and only not in {b.name for b in found}:
        v.fail("only", f"no measured block is named {only!r}; blocks: {', '.join(b.name for b in found) or 'none'}")
    results = [measure_block(b, calls[b.name], settings) for b in found
               if b.kind != "recurrent" and only in (None, b.name)]
    profile = gradient_profile(net, list(B.stages(found)), x, gen) if only is None else []
    env = {"torch": torch.__version__, "threads": torch.get_num_threads(), "load_average": os.getloadavg()[0]}
    return Audit(name, tuple(input_shape), settings, results, profile, time.perf_counter() - start, env,
                 time.process_time() - cpu, outputs, notes=audit_notes(net, candidates, found, calls), target=target,
                 weights=weights, config=config)


def vocabulary(net: nn.Module) -> int:
    """The number of token ids ``net`` embeds: its input embedding's rows (``transformers``'
    ``get_input_embeddings``), else its first ``nn.Embedding``'s; InputError naming ``settings`` if none."""
    get = getattr(net, "get_input_embeddings", None)
    emb = get() if callable(get) else None
    emb = emb if isinstance(emb, nn.Embedding) else next((m for m in net.modules() if isinstance(m, nn.Embedding)), None)
    if emb is None:
        v.fail("settings", f"inputs='ids' needs a model that embeds token ids; {type(net).__name__} has no nn.Embedding")
    return emb.num_embeddings


def model_input(net: nn.Module, shape: tuple[int, ...], s: AuditOptions, gen: torch.Generator) -> torch.Tensor:
    """The audit's input: N(0, 1) entries in the measuring dtype, or token ids uniform over the vocabulary."""
    if s.inputs == "ids":
        return torch.randint(0, vocabulary(net), shape, generator=gen)
    return torch.randn(shape, generator=gen, dtype=s.dtype)


def wants_ids(model: nn.Module) -> bool:
    """Whether ``model`` reads token ids (a ``transformers`` model whose main input is ``input_ids``)."""
    return getattr(model, "main_input_name", None) == "input_ids"


def audit_notes(net: nn.Module, candidates: list[B.Block], found: list[B.Block], calls: dict) -> list[str]:
    """What the audit could not measure, and why (an empty audit says so instead of "0 blocks")."""
    notes = [f"`{b.name}` ({type(b.module).__name__}): not called on a floating-point tensor in the forward pass"
             for b in candidates if b.name not in calls]
    notes += [f"`{b.name}` ({type(b.module).__name__}): adds its input but its output shape "
              f"{calls[b.name].out_shape} is not its input's {tuple(calls[b.name].x.shape)}; not a residual block"
              for b in candidates if b.name in calls and b not in found]
    notes += [f"`{b.name}` ({type(b.module).__name__}): recurrent cells are in the gradient profile only, "
              "their Jacobian is not measured" for b in found if b.kind == "recurrent"]
    if not found:
        notes.append(f"no block gradcore's claims are about was found in {type(net).__name__}: it has no residual "
                     "addition x + F(x) (torch.fx), transformer layer, attention, normalisation, depthwise "
                     "convolution or recurrent cell; only the gradient profile is measured")
    return notes

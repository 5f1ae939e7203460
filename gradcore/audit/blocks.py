"""Find the blocks of a network whose gradient behaviour gradcore's claims describe, and capture
the call the model makes to each.

A block is recognised by its structure or its type:

* residual — a module whose forward adds its own input to something computed from it, read off
  its ``torch.fx`` graph (children kept as leaves) and confirmed by the captured call (output
  shape == input shape): torchvision's ``BasicBlock``, ``Bottleneck``, ``InvertedResidual``,
  ``MBConv``, ``CNBlock``, timm's blocks and any hand-written ``x + f(x)`` alike;
* transformer — ``nn.TransformerEncoderLayer`` / ``nn.TransformerDecoderLayer`` (their forward is
  not traceable) and the layer classes of ``transformers`` / ``timm`` by name;
* attention (``nn.MultiheadAttention`` and ``…Attention`` classes of those libraries), normalisation
  layers, depthwise convolutions (``groups == in_channels > 1``) and recurrent cells.

The model itself (name ``""``) is a candidate too, so a factory returning one bare block is audited.
Each block is measured on the function the model computes with it (:class:`Call`): its captured
arguments — masks, memory, keyword arguments — held fixed, the input stream the variable.
"""
from __future__ import annotations

import copy
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn
from torch.utils import _pytree as pytree

NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)
KINDS = ("residual", "transformer", "attention", "norm", "depthwise", "recurrent")
MODEL = "(model)"   # how the model itself is named when it is a block
# optional libraries' layer classes, by the package that defines them (never imported here)
LIBRARY_LAYERS = {"transformers.": ("Block", "Layer", "DecoderLayer", "EncoderLayer"), "timm.": ("Block",)}
LIBRARY_NORMS = ("RMSNorm", "LayerNorm")
# residual blocks by type, measured even where a projection shortcut replaces the identity path
RESIDUAL_TYPES = {"torchvision.": ("BasicBlock", "Bottleneck", "InvertedResidual", "MBConv", "FusedMBConv", "CNBlock"),
                  "timm.": ("BasicBlock", "Bottleneck", "InvertedResidual", "DepthwiseSeparableConv",
                            "ConvNeXtBlock", "EdgeResidual")}
ADDS = {operator.add, operator.iadd, torch.add}
# 1-Lipschitz elementwise maps with slopes in [0, 1] an addition may pass through (RES-02's act)
ACTS = (nn.ReLU, nn.ReLU6, nn.Identity)
ACT_FUNCTIONS = {torch.relu, nn.functional.relu, nn.functional.relu6}
STREAM_NAMES = ("hidden_states", "x", "input", "src", "tgt", "query")


def _library_kind(module: nn.Module) -> str | None:
    cls = type(module)
    if any(cls.__module__.startswith(p) and cls.__name__ in names for p, names in RESIDUAL_TYPES.items()):
        return "residual"
    for prefix, endings in LIBRARY_LAYERS.items():
        if cls.__module__.startswith(prefix):
            if cls.__name__.endswith("Attention"):
                return "attention"
            if cls.__name__.endswith(LIBRARY_NORMS):
                return "norm"
            if cls.__name__.endswith(endings):
                return "transformer"
    return None


def kind_of(module: nn.Module) -> str | None:
    """The block kind of ``module`` by its type, or None (residual structure is found by :func:`residual_add`)."""
    if isinstance(module, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
        return "transformer"
    if isinstance(module, nn.MultiheadAttention):
        return "attention"
    if isinstance(module, NORMS):
        return "norm"
    if isinstance(module, nn.Conv2d) and module.groups == module.in_channels > 1:
        return "depthwise"
    if isinstance(module, nn.RNNBase):
        return "recurrent"
    return _library_kind(module)


class _Shallow(fx.Tracer):
    """Trace one module's own forward: every child module is a leaf."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return True


@dataclass(frozen=True)
class ResidualAdd:
    """``act(x + F(x))`` found in a module's graph: F as a graph module (``branch``) and the act's name."""

    branch: fx.GraphModule
    after: str    # "" or the activation applied after the addition


def residual_add(module: nn.Module) -> ResidualAdd | None:
    """The identity addition of ``module``'s forward, or None (not traceable, no addition of the
    first input, or the sum reaches the output through something other than a 0/1-slope act)."""
    if isinstance(module, (nn.Sequential, nn.ModuleList, nn.ModuleDict)) or not any(module.children()):
        return None
    try:
        graph = _Shallow().trace(module)
    except Exception:   # data-dependent control flow etc.: fx cannot read it, the type rules still apply
        return None
    nodes = list(graph.nodes)
    inputs = [n for n in nodes if n.op == "placeholder"]
    output = next((n for n in nodes if n.op == "output"), None)
    if not inputs or output is None:
        return None
    for node in nodes:
        operands = [_through_identity(a, module) for a in node.args[:2]] if _is_add(node) else []
        if inputs[0] in operands:
            after = _path_to_output(node, output, module)
            other = node.args[1] if operands[0] is inputs[0] else node.args[0]
            if after is not None and isinstance(other, fx.Node):
                return ResidualAdd(_branch(module, graph, other), after)
    return None


def _through_identity(node: Any, module: nn.Module) -> Any:
    """The node an ``nn.Identity`` shortcut passes on (timm's ``x + self.shortcut(shortcut)``), else itself."""
    while isinstance(node, fx.Node) and node.op == "call_module" and \
            isinstance(module.get_submodule(str(node.target)), nn.Identity):
        node = node.args[0]
    return node


def _is_add(node: fx.Node) -> bool:
    return ((node.op == "call_function" and node.target in ADDS)
            or (node.op == "call_method" and node.target in ("add", "add_"))) and len(node.args) >= 2


def _path_to_output(node: fx.Node, output: fx.Node, module: nn.Module) -> str | None:
    """The activations between the addition and the output ("" none), or None if it goes elsewhere."""
    acts: list[str] = []
    while True:
        users = list(node.users)
        if users == [output] and output.args[0] is node:
            return " ∘ ".join(reversed(acts))
        if len(users) != 1 or not _is_act(users[0], module):
            return None
        node = users[0]
        acts.append(str(node.target))


def _is_act(node: fx.Node, module: nn.Module) -> bool:
    if node.op == "call_module":
        return isinstance(module.get_submodule(str(node.target)), ACTS)
    return (node.op == "call_function" and node.target in ACT_FUNCTIONS) or \
        (node.op == "call_method" and node.target in ("relu", "relu_"))


def _branch(module: nn.Module, graph: fx.Graph, other: fx.Node) -> fx.GraphModule:
    """F: the graph with its output moved to the addition's other operand."""
    g = copy.deepcopy(graph)
    env = {n.name: n for n in g.nodes}
    out = next(n for n in g.nodes if n.op == "output")
    out.args = (env[other.name],)
    branch = fx.GraphModule(module, g)
    branch.graph.eliminate_dead_code()
    branch.recompile()
    return branch


@dataclass(frozen=True)
class Call:
    """One call of a block as the model made it: its arguments (detached copies), which of them are
    the input stream (the same tensor may be query, key and value), and the shapes in and out."""

    leaves: tuple[Any, ...]
    spec: Any
    stream: tuple[int, ...]
    out_shape: tuple[int, ...] | None = None

    @property
    def x(self) -> torch.Tensor:
        return self.leaves[self.stream[0]]

    def arguments(self, h: torch.Tensor) -> tuple[tuple, dict]:
        leaves = list(self.leaves)
        for i in self.stream:
            leaves[i] = h
        return pytree.tree_unflatten(leaves, self.spec)

    def bind(self, module: Callable[..., Any]) -> Callable[[torch.Tensor], torch.Tensor]:
        """h ↦ the block's (first floating-point) output with h as the stream, the rest as captured."""
        def f(h: torch.Tensor) -> torch.Tensor:
            args, kwargs = self.arguments(h)
            return first_tensor(module(*args, **kwargs))
        return f


def first_tensor(y: Any) -> Any:
    """The first floating-point tensor of a block's output (attention returns (output, weights))."""
    for leaf in pytree.tree_leaves(y):
        if isinstance(leaf, torch.Tensor) and leaf.is_floating_point():
            return leaf
    return y


def _stream(args: tuple, kwargs: dict) -> torch.Tensor | None:
    if args and isinstance(args[0], torch.Tensor):
        return args[0]
    for key in STREAM_NAMES:
        if isinstance(kwargs.get(key), torch.Tensor):
            return kwargs[key]
    return next((t for t in pytree.tree_leaves((args, kwargs))
                 if isinstance(t, torch.Tensor) and t.is_floating_point()), None)


def _capture(args: tuple, kwargs: dict) -> Call | None:
    stream = _stream(args, kwargs)
    if stream is None or not stream.is_floating_point():
        return None
    leaves, spec = pytree.tree_flatten((args, kwargs))
    where = tuple(i for i, leaf in enumerate(leaves) if leaf is stream)
    kept = tuple(leaf.detach().clone() if isinstance(leaf, torch.Tensor) else leaf for leaf in leaves)
    return Call(kept, spec, where)


@dataclass(frozen=True)
class Block:
    name: str        # qualified module name in the model; MODEL for the model itself
    kind: str
    module: nn.Module
    residual: ResidualAdd | None = None


def candidates(model: nn.Module) -> list[Block]:
    """Every module a claim is about, in ``named_modules`` order (outer before inner), the model included."""
    found = []
    for name, m in model.named_modules():
        kind, res = kind_of(m), None
        if kind in (None, "transformer", "residual"):
            res = residual_add(m)
            kind = kind or ("residual" if res else None)
        if kind is not None:
            found.append(Block(name or MODEL, kind, m, res))
    return found


def capture(model: nn.Module, blocks: list[Block], x: torch.Tensor) -> dict[str, Call]:
    """The first call the model makes to each block on one forward pass at ``x``.

    Recorded with autograd on and ``x`` requiring grad (token ids cannot: the blocks' streams are
    floating point from the embedding on), as the measurement will run: the fused inference fast
    paths (``nn.MultiheadAttention``, ``nn.TransformerEncoderLayer``) stay off and every block is
    called as a module, with the arguments the differentiated function gets.
    """
    seen: dict[str, Call] = {}
    handles = []
    for b in blocks:
        handles.append(b.module.register_forward_pre_hook(_keeper(seen, b.name), with_kwargs=True))
        handles.append(b.module.register_forward_hook(_shaper(seen, b.name)))
    try:
        with torch.enable_grad():
            model(x.detach().clone().requires_grad_(x.is_floating_point()))
    finally:
        for h in handles:
            h.remove()
    return {name: call for name, call in seen.items() if call is not None}


def with_stream(args: tuple, kwargs: dict, h: torch.Tensor) -> tuple[tuple, dict]:
    """A block's arguments with its input stream (every place it appears) replaced by ``h``."""
    stream = _stream(args, kwargs)
    leaves, spec = pytree.tree_flatten((args, kwargs))
    return pytree.tree_unflatten([h if leaf is stream else leaf for leaf in leaves], spec)


def _keeper(seen: dict[str, Call | None], name: str):
    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        if name not in seen:
            seen[name] = _capture(args, kwargs)
    return hook


def _shaper(seen: dict[str, Call | None], name: str):
    def hook(module: nn.Module, args: tuple, output: Any) -> None:
        call = seen.get(name)
        y = first_tensor(output)
        if call is not None and call.out_shape is None and isinstance(y, torch.Tensor):
            seen[name] = Call(call.leaves, call.spec, call.stream, tuple(y.shape))
    return hook


def confirmed(blocks: list[Block], calls: dict[str, Call]) -> list[Block]:
    """The blocks the forward pass called; one found by its addition alone only where its output has its input's shape."""
    return [b for b in blocks if b.name in calls and not (
        b.kind == "residual" and kind_of(b.module) is None and calls[b.name].out_shape != tuple(calls[b.name].x.shape))]


def at_initialisation(model: nn.Module, dtype: torch.dtype, mode: str = "train") -> nn.Module:
    """A copy measured as it runs at step 0, without side effects.

    Dropout off (eval) so the Jacobian is deterministic; a ``transformers`` model's key/value cache
    off, so every call of a block sees the same keys; parameters frozen, since only input
    Jacobians are measured. ``mode="train"``: BatchNorm normalises with the batch's own statistics
    (as in training) and updates no running statistics; ``mode="eval"``: it uses its running ones.
    """
    model = copy.deepcopy(model).to(dtype).eval()
    config = getattr(model, "config", None)
    if getattr(config, "use_cache", None):   # transformers: a key/value cache would grow with every call
        config.use_cache = False
    if mode == "train":
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.track_running_stats = False
                m.running_mean = m.running_var = m.num_batches_tracked = None
                m.train()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def stages(blocks: list[Block]) -> Iterator[Block]:
    """Outermost residual / transformer blocks: the depth axis of the gradient profile."""
    names: list[str] = []
    for b in blocks:
        if b.kind in ("residual", "transformer", "recurrent") and b.name != MODEL \
                and not any(b.name.startswith(n + ".") for n in names):
            names.append(b.name)
            yield b

"""Find the blocks of a network whose gradient behaviour gradcore's claims describe.

Blocks are found by module type: residual blocks (torchvision's ``BasicBlock``,
``Bottleneck``, ``InvertedResidual``), transformer layers (``nn.TransformerEncoderLayer``),
attention (``nn.MultiheadAttention``), normalisation layers, depthwise convolutions
(``groups == in_channels > 1``) and recurrent cells (``nn.RNNBase``). torchvision is
optional: without it its block types are simply not recognised.
"""
from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)
KINDS = ("residual", "transformer", "attention", "norm", "depthwise", "recurrent")


def _residual_types() -> tuple[type, ...]:
    try:
        from torchvision.models import mobilenetv2, resnet
    except ImportError:
        return ()
    return resnet.BasicBlock, resnet.Bottleneck, mobilenetv2.InvertedResidual


def kind_of(module: nn.Module) -> str | None:
    """The block kind of ``module``, or None when no claim is about it."""
    if isinstance(module, _residual_types()):
        return "residual"
    if isinstance(module, nn.TransformerEncoderLayer):
        return "transformer"
    if isinstance(module, nn.MultiheadAttention):
        return "attention"
    if isinstance(module, NORMS):
        return "norm"
    if isinstance(module, nn.Conv2d) and module.groups == module.in_channels > 1:
        return "depthwise"
    if isinstance(module, nn.RNNBase):
        return "recurrent"
    return None


@dataclass(frozen=True)
class Block:
    name: str        # qualified module name in the model
    kind: str
    module: nn.Module


def find_blocks(model: nn.Module) -> list[Block]:
    """Every recognised block, in ``named_modules`` order (outer blocks before inner ones)."""
    return [Block(name, kind, m) for name, m in model.named_modules()
            if name and (kind := kind_of(m)) is not None]


def has_identity_path(block: nn.Module) -> bool:
    """Whether a residual block adds its input unchanged (no downsampling projection)."""
    if hasattr(block, "use_res_connect"):
        return bool(block.use_res_connect)
    return getattr(block, "downsample", None) is None


def residual_branch(block: nn.Module):
    """F of a torchvision residual block (output = act(x + F(x)) or x + F(x)), or None."""
    if hasattr(block, "use_res_connect"):        # InvertedResidual: x + conv(x)
        return block.conv
    names = ("conv1", "bn1", "relu", "conv2", "bn2", "conv3", "bn3")
    if not all(hasattr(block, n) for n in names[:5]):
        return None

    def branch(x: torch.Tensor) -> torch.Tensor:
        h = block.relu(block.bn1(block.conv1(x)))
        h = block.bn2(block.conv2(h))
        if hasattr(block, "conv3"):
            h = block.bn3(block.conv3(block.relu(h)))
        return h
    return branch


def at_initialisation(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy measured as training sees it at step 0, without side effects.

    Dropout off (eval) so the Jacobian is deterministic; BatchNorm normalises with the
    batch's own statistics (as in training) but updates no running statistics;
    parameters frozen, since only input Jacobians are measured.
    """
    model = copy.deepcopy(model).to(dtype).eval()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = m.running_var = m.num_batches_tracked = None
            m.train()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def block_inputs(model: nn.Module, blocks: list[Block], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The tensor each block receives on one forward pass of ``model`` at ``x``."""
    seen: dict[str, torch.Tensor] = {}
    handles = [b.module.register_forward_pre_hook(_keeper(seen, b.name)) for b in blocks]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return seen


def _keeper(seen: dict[str, torch.Tensor], name: str):
    def hook(module: nn.Module, args: tuple) -> None:
        if name not in seen and args and isinstance(args[0], torch.Tensor):
            seen[name] = args[0].detach().clone()
    return hook


def stages(blocks: list[Block]) -> Iterator[Block]:
    """Outermost residual / transformer blocks: the depth axis of the gradient profile."""
    names: list[str] = []
    for b in blocks:
        if b.kind in ("residual", "transformer", "recurrent") and not any(b.name.startswith(n + ".") for n in names):
            names.append(b.name)
            yield b

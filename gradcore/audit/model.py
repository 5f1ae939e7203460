"""The model an audit measures: built from ``MODULE:FACTORY`` under the stated seed, with a state_dict
loaded when one is given. Every failure is one line (CheckError: the CLI's exit 2)."""
from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from ..verify import sandbox
from ..verify.check import load_object
from ..verify.contracts import CheckError
from ..verify.contracts.base import error_line
from .measure import required_parameters


def load_model(target: str, seed: int, weights: str | None = None) -> Any:
    """The model ``MODULE:FACTORY`` builds after ``torch.manual_seed(seed)`` — so the weights the report's
    seed names are the ones measured, every run alike — with ``weights`` (a state_dict file) loaded."""
    torch.manual_seed(seed)
    model = build(load_object(target), target)
    if weights is not None:
        load_weights(model, weights, target)
    return model


def read_state_dict(path: str) -> dict[str, Any]:
    """The tensors of a state_dict file (``.safetensors``, or a ``torch.save`` of a dict of tensors,
    possibly under ``"state_dict"``); CheckError, one line, for anything else."""
    if not os.path.isfile(path):
        raise CheckError(f"--weights {path}: no such file")
    try:
        if path.endswith(".safetensors"):
            try:
                from safetensors.torch import load_file
            except ImportError:
                raise CheckError(f"--weights {path}: reading .safetensors needs the safetensors package "
                                 "(pip install safetensors)") from None
            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except CheckError:
        raise
    except Exception as e:   # a corrupt or foreign file: the user's input (exit 2)
        raise CheckError(f"--weights {path} cannot be read: {error_line(e)}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise CheckError(f"--weights {path} holds a {type(state).__name__}, not a state_dict (names → tensors)")
    return state


def load_weights(model: Any, path: str, target: str) -> None:
    """Load the state_dict at ``path`` into ``model`` strictly; CheckError, one line, naming what does not match."""
    state = read_state_dict(path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and state[k].shape != own[k].shape]
    problems = [f"{len(found)} {what} ({', '.join(found[:3])}{', …' if len(found) > 3 else ''})"
                for what, found in (("missing", missing), ("unexpected", extra), ("of another shape", shapes))
                if found]
    if problems:
        raise CheckError(f"--weights {path} do not match {target}: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def build(factory: Any, target: str) -> Any:
    """The model ``MODULE:FACTORY`` names: the factory called with no arguments (a module is used
    as it is); CheckError, one line, when the factory needs arguments, exits, fails or returns
    something other than an ``nn.Module``."""
    if isinstance(factory, nn.Module):
        return factory
    if not callable(factory):
        raise CheckError(f"{target} is a {type(factory).__name__}, expected a factory or an nn.Module")
    needed = required_parameters(factory)
    if needed:
        raise CheckError(f"{target} needs arguments ({', '.join(needed)}); audit calls it with none: "
                         "pass a function that builds the model without arguments")
    try:
        with sandbox.controlled():
            model = factory()
    except SystemExit as e:   # any code, 0 too: the factory did not build a model
        raise CheckError(f"{target}() called sys.exit({e.code!r}) instead of returning a model") from None
    except Exception as e:   # the user's factory failed: their input, not gradcore's bug (exit 2)
        raise CheckError(f"{target}() failed: {error_line(e)}") from None
    if not isinstance(model, nn.Module):
        raise CheckError(f"{target} gave a {type(model).__name__}, expected an nn.Module")
    return model

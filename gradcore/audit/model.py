"""The model an audit measures: built from ``MODULE:FACTORY`` under the stated seed, with a state_dict
loaded when one is given. Every failure is one line (CheckError: the CLI's exit 2)."""
from __future__ import annotations

import importlib.util
import json
import os
from typing import Any

import torch
from torch import nn

from ..verify import sandbox
from ..verify.check import load_object
from ..errors import CheckError
from ..verify.contracts.base import error_line
from .measure import required_parameters


# the optional libraries an audit target may come from, and the extra that installs each
EXTRAS = {"transformers": "hf", "timm": "timm", "safetensors": "hf"}


def load_model(target: str, seed: int, weights: str | None = None, config: str | None = None) -> Any:
    """The model ``MODULE:FACTORY`` builds (from ``config`` when given) after ``torch.manual_seed(seed)``
    — so the weights the report's seed names are the ones measured, every run alike — with ``weights``
    (a state_dict file) loaded."""
    root = target.split(":")[0].split(".")[0]
    if root in EXTRAS and importlib.util.find_spec(root) is None:
        raise CheckError(f"{target} needs the {root} package: pip install 'gradcore[{EXTRAS[root]}]'")
    factory = load_object(target)
    torch.manual_seed(seed)
    model = build(factory, target) if config is None else build_from_config(factory, target, config)
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


def build(factory: Any, target: str, call: str | None = None) -> Any:
    """The model ``MODULE:FACTORY`` names: the factory called with no arguments (a module is used
    as it is); CheckError, one line, when the factory needs arguments, exits, fails or returns
    something other than an ``nn.Module``. ``call`` names the call in errors (default ``target()``)."""
    call = call or f"{target}()"
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
        raise CheckError(f"{call} called sys.exit({e.code!r}) instead of returning a model") from None
    except Exception as e:   # the user's factory failed: their input, not gradcore's bug (exit 2)
        raise CheckError(f"{call} failed: {error_line(e)}") from None
    if not isinstance(model, nn.Module):
        raise CheckError(f"{target} gave a {type(model).__name__}, expected an nn.Module")
    return model


def build_from_config(factory: Any, target: str, config: str) -> Any:
    """The model ``factory`` builds from ``config``: a ``transformers`` model class (it has a
    ``config_class``) from a config JSON file or ``key=value,...`` pairs of its config class; any
    other factory (``timm:create_model``) called with ``config`` (a model name) as its one argument.
    CheckError, one line, for a key the config class does not have or a factory that fails."""
    config_class = getattr(factory, "config_class", None)
    if config_class is None:
        return build(lambda: factory(config), target, f"{target}({config!r})")
    built = transformers_config(config_class, config)   # its own one-line errors, not "the factory failed"
    return build(lambda: factory(built), target, f"{target}({config_class.__name__}({config}))")


def transformers_config(config_class: Any, config: str) -> Any:
    """A ``transformers`` config: read from a JSON file, or the class's defaults with ``key=value`` pairs
    (values read as JSON where they parse, else as strings) — an unknown key is an error, not ignored."""
    if config.endswith(".json"):
        if not os.path.isfile(config):
            raise CheckError(f"--config {config}: no such file")
        try:
            return config_class.from_json_file(config)
        except Exception as e:   # a malformed file: the user's input (exit 2)
            raise CheckError(f"--config {config} cannot be read: {error_line(e)}") from None
    pairs = [p.split("=", 1) for p in config.split(",") if p.strip()]
    if not pairs or any(len(p) != 2 or not p[0].strip() for p in pairs):
        raise CheckError(f"--config expects a .json file or key=value,... pairs, got {config!r}")
    known = config_class().to_dict()
    unknown = [k.strip() for k, _ in pairs if k.strip() not in known]
    if unknown:
        raise CheckError(f"--config: {config_class.__name__} has no {', '.join(unknown)}")
    return config_class(**{k.strip(): _value(val.strip()) for k, val in pairs})


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text

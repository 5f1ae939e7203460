"""Seeded draws for recipes whose models are initialised by torch's global generator.

torch's initialisers (``nn.init``, ``nn.Conv2d.reset_parameters``) and a user's factory take no
generator, so a recipe forks the global CPU generator and seeds it: what it builds depends on
its ``seed`` argument alone, never on what ran before, and the caller's state is untouched.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Draw from torch's CPU generator seeded with ``seed`` inside, restoring its state after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield

"""Hypothesis settings profiles: ``ci`` (derandomized, fast), ``dev``, ``thorough``.

Chosen with ``--hypothesis-profile NAME`` or the ``GRADCORE_PROFILE`` environment
variable; ``ci`` is the default so that every run reproduces the committed report. The
profiles are registered with Hypothesis on first use (:func:`register`), so naming them —
``gradcore --help``, the command-line choices — does not import Hypothesis.
"""
from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from typing import Any

from ..errors import InputError

PROFILES = ("ci", "dev", "thorough")


@functools.cache
def register() -> None:
    """Register the three profiles with Hypothesis (once; every function here that needs them calls it)."""
    from hypothesis import HealthCheck, settings
    from hypothesis.database import DirectoryBasedExampleDatabase

    common: dict[str, Any] = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.data_too_large])
    settings.register_profile("ci", max_examples=40, derandomize=True, database=None, print_blob=True, **common)
    # dev/thorough keep failing examples; GRADCORE_EXAMPLE_DB points them at a directory that
    # CI runs can cache and share (the ci profile is derandomized and needs none).
    db = {"database": DirectoryBasedExampleDatabase(os.environ["GRADCORE_EXAMPLE_DB"])} \
        if os.environ.get("GRADCORE_EXAMPLE_DB") else {}
    settings.register_profile("dev", max_examples=100, **db, **common)
    settings.register_profile("thorough", max_examples=1000, **db, **common)


def settings_of(name: str) -> Any:
    """The ``hypothesis.settings`` of profile ``name`` (one of :data:`PROFILES`)."""
    from hypothesis import settings

    if name not in PROFILES:
        raise InputError(f"profile: expected one of {PROFILES}, got {name!r}")
    register()
    return settings.get_profile(name)


def selected() -> str:
    """The profile named by ``GRADCORE_PROFILE`` (default ``ci``)."""
    name = os.environ.get("GRADCORE_PROFILE", "ci")
    if name not in PROFILES:
        raise InputError(f"GRADCORE_PROFILE={name!r} is not one of {', '.join(PROFILES)}")
    return name


_loaded: list[str] = []


@contextlib.contextmanager
def pinned_generation(name: str) -> Iterator[None]:
    """Within the block, Hypothesis draws as the ``name`` profile does in gradcore's own runs.

    ``gradcore check`` and ``gradcore.testing.check_technique`` both measure inside this
    block, so the command line and the Python API find the same examples (the ``ci``
    profile pins Hypothesis's local-constant pool, :func:`_stop_mining_local_constants`);
    the user's own Hypothesis state is restored afterwards.
    """
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover
        yield
        return
    saved = getattr(providers, "_get_local_constants", None)
    if name == "ci":
        _stop_mining_local_constants()
    try:
        yield
    finally:
        if saved is not None:
            providers._get_local_constants = saved


def _stop_mining_local_constants() -> None:
    """Make generation independent of which local modules happen to be imported.

    Hypothesis ≥ 6.131 mixes numeric literals found in every loaded local module into
    the examples it draws. Which modules are loaded differs between a serial run, each
    xdist worker and a subset run, so even a derandomized search finds different
    examples. There is no public switch; the ``ci`` profile pins the (private) pool to
    its empty start so a rerun reproduces every constant. Older Hypothesis has no pool.
    """
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover
        return
    if hasattr(providers, "_get_local_constants") and hasattr(providers, "_local_constants"):
        providers._get_local_constants = lambda: providers._local_constants


def load(name: str | None = None) -> str:
    """Load ``name`` (default: :func:`selected`) and remember it for the results file."""
    name = name or selected()
    if name not in PROFILES:
        raise InputError(f"Hypothesis profile {name!r} is not one of {', '.join(PROFILES)}")
    register()
    from hypothesis import settings

    settings.load_profile(name)
    if name == "ci":
        _stop_mining_local_constants()
    _loaded[:] = [name]
    return name


def selected_name() -> str:
    """The profile loaded last (what this run used)."""
    return _loaded[0] if _loaded else selected()


def hypothesis_overrides(profile: str) -> dict[str, Any]:
    """The named profile's search settings, without its example database (a rerun must not replay)."""
    prof = settings_of(profile)
    return {"max_examples": prof.max_examples, "derandomize": True, "database": None, "deadline": None,
            "suppress_health_check": prof.suppress_health_check}

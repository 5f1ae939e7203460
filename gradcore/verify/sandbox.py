"""The process state gradcore runs a user's code in (``gradcore check``, ``gradcore audit``).

A technique's module or call may change state that is global to the process —
``torch.set_grad_enabled(False)``, ``os.chdir``, ``torch.set_num_threads``,
``torch.set_default_dtype`` / ``set_default_device`` — and every measurement after it would
change with it (λ = 0 from a network without autograd, a report written under another
directory). :func:`controlled` puts that state back when the user's code returns or raises
and says what the code changed, so a caller can refuse a technique whose *call* changes
what gradcore measures with. What the code prints goes to stderr. It also tells a KeyboardInterrupt the user's code raised
itself (:class:`RaisedInterrupt`, an ordinary failure of that code) from a real Ctrl-C.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields

import torch

# What the measurements depend on; the rest of State is merely put back.
MEASURED = ("grad mode", "default dtype", "default device")


class RaisedInterrupt(Exception):
    """The user's code raised KeyboardInterrupt itself (no Ctrl-C arrived)."""

    def __init__(self) -> None:
        super().__init__("KeyboardInterrupt raised by the code itself (no Ctrl-C arrived)")


@dataclass(frozen=True)
class State:
    """The process-wide settings gradcore measures under."""

    grad_mode: bool
    default_dtype: torch.dtype
    default_device: torch.device
    working_directory: str
    torch_threads: int

    @classmethod
    def now(cls) -> State:
        try:
            cwd = os.getcwd()
        except OSError:   # the directory was removed under us: nothing to go back to
            cwd = ""
        return cls(torch.is_grad_enabled(), torch.get_default_dtype(), torch.get_default_device(), cwd,
                   torch.get_num_threads())

    def differences(self, other: State) -> list[str]:
        """What differs in ``other``, e.g. ``"grad mode True → False"``."""
        return [f"{f.name.replace('_', ' ')} {getattr(self, f.name)} → {getattr(other, f.name)}"
                for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]

    def restore(self) -> None:
        now = State.now()
        torch.set_grad_enabled(self.grad_mode)
        if now.default_dtype != self.default_dtype:
            torch.set_default_dtype(self.default_dtype)
        if now.default_device != self.default_device:
            torch.set_default_device(None if self.default_device.type == "cpu" else self.default_device)
        if self.working_directory and now.working_directory != self.working_directory:
            os.chdir(self.working_directory)
        if now.torch_threads != self.torch_threads:
            torch.set_num_threads(self.torch_threads)


def measured(changes: list[str]) -> list[str]:
    """The changes that alter what gradcore measures (grad mode, default dtype or device)."""
    return [c for c in changes if c.startswith(MEASURED)]


@contextmanager
def controlled() -> Iterator[list[str]]:
    """Run user code; afterwards the yielded list names what it changed, and the state is put back."""
    before = State.now()
    changes: list[str] = []
    try:   # what the user's code prints goes to stderr: gradcore's stdout (table, paths) stays parseable
        with _own_interrupts(), contextlib.redirect_stdout(sys.stderr):
            yield changes
    finally:
        changes.extend(before.differences(State.now()))
        before.restore()


@contextmanager
def _own_interrupts() -> Iterator[None]:
    """A KeyboardInterrupt without a SIGINT behind it becomes RaisedInterrupt (traceback kept)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield   # signals reach the main thread only; None: a handler set outside Python, left alone
        return
    signalled: list[bool] = []

    def on_sigint(signum: int, frame: object) -> None:
        signalled.append(True)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    except KeyboardInterrupt as e:
        if signalled:
            raise
        raise RaisedInterrupt().with_traceback(e.__traceback__) from None
    finally:
        signal.signal(signal.SIGINT, previous)

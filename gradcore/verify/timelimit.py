"""A wall-clock limit on user code (``gradcore check`` runs techniques it did not write).

Implemented with ``signal.setitimer`` on the main thread: when the limit passes, SIGALRM
raises :class:`~gradcore.errors.TimeLimitError` inside whatever Python code is running
(``time.sleep`` and Python loops are interrupted; one long C call, e.g. a huge matmul,
is interrupted when it returns). The alarm repeats every second until the block ends, so
a technique that swallows the first exception with ``except Exception`` still stops.
Off the main thread, or without ``setitimer`` (Windows), no limit applies: signals can
only be delivered to the main thread, and a thread cannot be killed.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import TimeLimitError

REPEAT_S = 1.0


def available() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def time_limit(seconds: float | None, what: str) -> Iterator[None]:
    """Raise TimeLimitError in the block when it runs longer than ``seconds`` (None: no limit)."""
    if not seconds or not available():
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise TimeLimitError(f"{what} ran past its time limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds, REPEAT_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

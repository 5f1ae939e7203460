"""A wall-clock limit on user code (``gradcore check`` runs techniques it did not write).

Implemented with ``signal.setitimer`` on the main thread: when the limit passes, SIGALRM
raises an exception inside whatever Python code is running (``time.sleep`` and Python
loops are interrupted; one long C call, e.g. a huge matmul, is interrupted when it
returns). That exception derives from ``BaseException``, not ``Exception``, so neither a
technique's ``except Exception``, nor Hypothesis (which would report an ``Exception`` in a
search as a failing or flaky example and go on shrinking), nor a kind's ``looks_like``
swallows it; the alarm also repeats every second until the block ends, for code that
catches everything. However the block ends after the alarm — that exception, another one
(a search's FlakyFailure) or a normal return — it ends in :class:`TimeLimitError`.
Off the main thread, or without ``setitimer`` (Windows), no limit applies: signals can
only be delivered to the main thread, and a thread cannot be killed.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import TimeLimitError

DEFAULT_TIME_LIMIT_S = 300.0   # per clause, and per preparation of a technique

REPEAT_S = 1.0


class _Expired(BaseException):
    """What the alarm raises in the user's code (turned into TimeLimitError when the block ends)."""


def available() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def time_limit(seconds: float | None, what: str) -> Iterator[None]:
    """Raise TimeLimitError in the block when it runs longer than ``seconds`` (None: no limit)."""
    if not seconds or not available():
        yield
        return
    state = {"armed": True, "fired": False}

    def on_alarm(signum: int, frame: object) -> None:
        if state["armed"]:   # never raise in the few bytecodes that disarm the alarm
            state["fired"] = True
            raise _Expired

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds, REPEAT_S)
    try:
        yield
    except BaseException as e:
        state["armed"] = False
        if not state["fired"] or isinstance(e, KeyboardInterrupt):
            raise
    finally:
        state["armed"] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if state["fired"]:
        raise TimeLimitError(f"{what} ran past its time limit of {seconds:g} s")

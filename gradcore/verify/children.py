"""Child processes that never outlive gradcore (``gradcore verify``'s pytest run).

The child runs in its own process group, so a SIGINT or SIGTERM sent to gradcore reaches it
once, through gradcore: gradcore passes the signal on to the whole group (pytest and any
pytest-xdist workers), waits for the group to end, and only then exits (130 or 143). On
Linux the child is also told to receive SIGTERM when gradcore dies of a signal it cannot
handle (SIGKILL), so no pytest is left running to rewrite the results file later.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

FORWARDED = (signal.SIGINT, signal.SIGTERM)
PR_SET_PDEATHSIG = 1


def _ends_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel for SIGTERM when the parent dies (Linux), else None."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:   # the parent died before the request took effect
            os._exit(143)
    return preexec


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_for_group(pgid: int, grace_s: float = 10.0) -> None:
    """Wait until nothing in the group is left (xdist workers end after their controller)."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
    _signal_group(pgid, signal.SIGKILL)


def run(command: list[str], **popen: Any) -> tuple[int, int | None]:
    """Run ``command``; return its exit status and the signal (SIGINT/SIGTERM) gradcore received
    while it ran, if any — that signal was passed on to the child's process group and waited for."""
    received: list[int] = []
    child: subprocess.Popen | None = None

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        if child is not None:
            _signal_group(child.pid, signum)

    handling = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, forward) for s in FORWARDED} if handling else {}
    try:
        child = subprocess.Popen(command, process_group=0, preexec_fn=_ends_with_parent(), **popen)
        if received:   # a signal came while the child was being started
            _signal_group(child.pid, received[0])
        status = child.wait()
        if received:
            _wait_for_group(child.pid)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return status, (received[0] if received else None)

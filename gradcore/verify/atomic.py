"""Atomic file output: every file gradcore writes appears whole or not at all.

Each write goes to a temporary file in the target's directory (same filesystem), is
flushed to disk, given the permissions a plain ``open(path, "w")`` would give (the
umask's, not ``mkstemp``'s 0600), and then ``os.replace``-d onto the target. A process
killed at any moment leaves either the previous file or the complete new one; SIGTERM,
SIGINT and SIGHUP remove the temporary first, so only a SIGKILL can leave a stray
``.name.*.tmp``. Only regular files are ever replaced (never a device, FIFO or symlink).
Read-modify-write cycles of one file (the results file) run under :func:`locked`.
Input files are read by :func:`read_text`: regular files of bounded size only.
"""
from __future__ import annotations

import errno
import fcntl
import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from ..errors import UsageError

# Temporaries and lock files this process holds open; a SIGTERM/SIGINT/SIGHUP whose default
# action would end the process removes them first (a handler the program installed decides
# itself, and an exception it raises unwinds through the ``finally`` blocks below).
_LIVE: set[str] = set()
_ENDING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def shown(path: str | Path) -> str:
    """A path for a one-line message (control characters such as NUL escaped)."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def _kind(mode: int) -> str:
    kinds = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "a special file")


def check_target(path: str | Path) -> None:
    """UsageError unless ``path`` is absent or a regular file: a write replaces the target, so
    a directory, a device (``/dev/null``), a FIFO or a symbolic link is never an output."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return   # a missing parent is made (or refused) by the write itself
    except ValueError:
        raise UsageError(f"cannot write {shown(path)}: the name contains a NUL byte") from None
    except OSError as e:
        raise UsageError(f"cannot write {shown(path)}: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"cannot write {shown(path)}: it is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"cannot write {shown(path)}: it is {_kind(st.st_mode)}, not a regular file")


def _directory(path: Path) -> None:
    """Create the parent directory; a one-line UsageError when that or the target is impossible."""
    check_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create directory {shown(path.parent)}: {e.strerror or e}") from None


def _remove_and_end(signum: int, frame: object) -> None:
    for name in list(_LIVE):
        with suppress(OSError):
            os.unlink(name)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)   # end as the signal would have, with its status


@contextmanager
def _cleaned_on_signals() -> Iterator[None]:
    """While inside, a signal that would end the process removes the files in ``_LIVE`` first."""
    if threading.current_thread() is not threading.main_thread():
        yield   # only the main thread may set handlers; its own writes are covered
        return
    installed = [s for s in _ENDING if signal.getsignal(s) == signal.SIG_DFL]
    for s in installed:
        signal.signal(s, _remove_and_end)
    try:
        yield
    finally:
        for s in installed:
            if signal.getsignal(s) == _remove_and_end:
                signal.signal(s, signal.SIG_DFL)


@contextmanager
def _live(name: str) -> Iterator[None]:
    _LIVE.add(name)
    try:
        yield
    finally:
        _LIVE.discard(name)


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    _directory(path)
    with _cleaned_on_signals():
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:200]}.", suffix=".tmp", dir=path.parent)
        except OSError as e:
            raise UsageError(f"cannot write {shown(path)}: {e.strerror or e}") from None
        with _live(tmp):
            try:
                os.close(fd)
                yield Path(tmp)
                with open(tmp, "rb") as f:
                    os.fsync(f.fileno())
                os.chmod(tmp, _umask_mode())
                os.replace(tmp, path)
            except BaseException:
                with suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise


# The file system refusing a write: no permission, no space, over the file-size limit (RLIMIT_FSIZE), ...
_REFUSALS = {errno.EACCES, errno.EPERM, errno.EFBIG, errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENAMETOOLONG}


def write_with(path: str | Path, produce: Callable[[Path], object]) -> Path:
    """Let ``produce(tmp)`` write the file's content to ``tmp``, then move it onto ``path``.

    Any failure to write (no permission, disk full, file-size limit, a name too long) is one
    UsageError line naming ``path``; the previous file is left as it was.
    """
    path = Path(path)
    try:
        with replacing(path) as tmp:
            produce(tmp)
    except OSError as e:
        if e.errno not in _REFUSALS:
            raise
        raise UsageError(f"cannot write {shown(path)}: {e.strerror or e}") from None
    return path


@contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (``flock`` on ``.NAME.lock`` beside it) while inside,
    so that read-modify-write cycles of the same file by several processes run one after another.

    The lock file is removed on the way out; a waiter that then holds a lock on the removed
    file notices (its inode is no longer the path's) and locks the new one instead.
    """
    path = Path(path)
    _directory(path)
    lock = path.with_name(f".{path.name[:200]}.lock")
    with _cleaned_on_signals():
        fd = _acquire(lock)
        try:
            with _live(str(lock)):
                yield
        finally:
            with suppress(FileNotFoundError):
                os.unlink(lock)
            os.close(fd)   # releases the lock


def _acquire(lock: Path) -> int:
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise UsageError(f"cannot lock {shown(lock)}: {e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.path.samestat(os.fstat(fd), os.stat(lock)):
                return fd
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def write_text(text: str, path: str | Path) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def copy(source: str | Path, target: str | Path) -> Path:
    """Copy ``source`` onto ``target`` atomically (never a half-copied target)."""
    return write_with(target, lambda tmp: shutil.copyfile(source, tmp))


class Unreadable(Exception):
    """Why an input file is not read (the reason only; the caller names the file and its role)."""


def read_text(path: str | Path, max_bytes: int) -> str:
    """The UTF-8 text of ``path``, which must be a regular file of at most ``max_bytes``.

    Opened without blocking and checked on the open descriptor (no race with a swapped path):
    a FIFO would block forever, ``/dev/zero`` never ends and a huge file exhausts memory, so
    each is :class:`Unreadable`. OSError and UnicodeDecodeError reach the caller unchanged.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise Unreadable("it is a directory")
        if not stat.S_ISREG(mode):
            raise Unreadable(f"it is {_kind(mode)}, not a regular file")
        data = f.read(max_bytes + 1)   # not st_size alone: the file may grow while we read
    if len(data) > max_bytes:
        raise Unreadable(f"it holds more than {max_bytes // 2 ** 20} MiB, more than such a file ever holds")
    return data.decode("utf-8")


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name the same file (also when neither exists yet)."""
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()

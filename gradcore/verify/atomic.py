"""Atomic file output: every file gradcore writes appears whole or not at all.

Each write goes to a temporary file in the target's directory (same filesystem), is
flushed to disk, given the permissions a plain ``open(path, "w")`` would give (the
umask's, not ``mkstemp``'s 0600), and then ``os.replace``-d onto the target. A process
killed at any moment leaves either the previous file or the complete new one, plus at
worst a stray ``.name.*.tmp`` file.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import UsageError


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _directory(path: Path) -> None:
    """Create the parent directory; a one-line UsageError when that or the target is impossible."""
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create directory {path.parent}: {e.strerror or e}") from None


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    _directory(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# The file system refusing a write: no permission, no space, over the file-size limit (RLIMIT_FSIZE), ...
_REFUSALS = {errno.EACCES, errno.EPERM, errno.EFBIG, errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENAMETOOLONG}


def write_with(path: str | Path, produce: Callable[[Path], object]) -> Path:
    """Let ``produce(tmp)`` write the file's content to ``tmp``, then move it onto ``path``."""
    path = Path(path)
    try:
        with replacing(path) as tmp:
            produce(tmp)
    except OSError as e:
        if e.errno not in _REFUSALS:
            raise
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    return path


def write_text(text: str, path: str | Path) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def copy(source: str | Path, target: str | Path) -> Path:
    """Copy ``source`` onto ``target`` atomically (never a half-copied target)."""
    return write_with(target, lambda tmp: shutil.copyfile(source, tmp))


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name the same file (also when neither exists yet)."""
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()

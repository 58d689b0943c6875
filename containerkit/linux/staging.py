"""Temp files and staging dirs that tell whether their writer is still alive.

The writer holds a shared ``flock`` on what it stages for as long as it works on it; the kernel
drops the lock when the process dies, SIGKILL included. Recovery removes exactly the entries
nobody holds, so it is safe while other processes share the root and stage their own.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import time
from pathlib import Path

from containerkit.linux import proc

__all__ = ["hold", "hold_dir", "is_held", "owner_tag", "reap"]

MIN_AGE = 1.0
"""Seconds an entry must be old before it is reaped: covers a writer between creating the entry
and taking its lock."""


_OWNER = re.compile(r"-p(\d+)\.(\d+)-")


def owner_tag() -> str:
    """``-p<pid>.<start time>-``, to put in a staged entry's name: recovery can then tell an
    entry whose writer died at once (between creating and locking it) from one a live writer is
    about to lock, without waiting out :data:`MIN_AGE`."""
    return f"-p{os.getpid()}.{proc.start_time(os.getpid()) or 0}-"


def _writer_is_dead(name: str) -> bool:
    found = _OWNER.search(name)
    return found is not None and not proc.is_alive(int(found[1]), int(found[2]))


def hold(fd: int) -> None:
    """Mark the open file ``fd`` as in use by this process until the fd is closed."""
    fcntl.flock(fd, fcntl.LOCK_SH)
    if os.fstat(fd).st_nlink == 0:  # reaped in the instant between its creation and the lock
        raise FileNotFoundError(errno.ENOENT, "staged entry was removed by recovery before it was locked")


def hold_dir(path: str | os.PathLike[str]) -> int:
    """Mark the directory ``path`` as in use until the returned fd is closed (the directory may
    be renamed meanwhile)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        hold(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def reap(directory: str | os.PathLike[str], *, min_age: float = MIN_AGE, prefix: str = "") -> list[str]:
    """Remove the entries of ``directory`` that no live process holds; the names removed.
    ``prefix``: only the entries whose name starts with it (temp files beside kept ones)."""
    removed: list[str] = []
    cutoff = time.time() - min_age
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime > cutoff and not _writer_is_dead(entry.name):
                continue
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # held: its writer is alive
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
            removed.append(entry.name)
        finally:
            os.close(fd)
    return removed


def is_held(path: Path) -> bool:
    """Whether a live process holds ``path`` (for tests and diagnostics)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False

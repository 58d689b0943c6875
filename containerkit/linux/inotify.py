"""inotify: sleep until something in a directory changes, instead of polling it with sleeps.

A follower of a growing file (``docker logs -f``, an attach stream) and of the record that
ends it (a container's exit) waits here: written output or a new record wakes it at once.

Closing an inotify descriptor waits in the kernel for an SRCU grace period (10-20 ms here):
:meth:`DirectoryWatch.close` removes the watch at once (no more notices, nothing held in the
directory) and leaves the close to a short-lived thread, so that the end of a follower (an
attach stream that ends ``docker run``) does not wait for it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

from containerkit.linux._libc import load_libc

__all__ = ["CHANGES", "IN_CLOSE_NOWRITE", "DirectoryWatch", "watch_directory"]

IN_MODIFY = 0x002
IN_CLOSE_WRITE = 0x008
IN_CLOSE_NOWRITE = 0x010
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

CHANGES = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF
"""A file written, closed, renamed into place, created or deleted, or the directory itself gone."""

_lib: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        lib = load_libc()
        lib.inotify_init1.argtypes = [ctypes.c_int]
        lib.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        lib.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
        _lib = lib
    return _lib


_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)
_ABOUT_THE_WATCH = IN_DELETE_SELF | IN_MOVE_SELF | IN_Q_OVERFLOW | IN_IGNORED
"""Notices that concern no one name: the directory itself went, or notices were lost."""


class DirectoryWatch:
    """One inotify instance watching one directory for ``mask`` (:data:`CHANGES` by default).

    ``names``: only a notice about a name it accepts (or about the directory itself, or lost
    notices) ends a :meth:`wait`; a follower of one file then sleeps through the writes of the
    files beside it."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        mask: int = CHANGES,
        names: Callable[[str], bool] | None = None,
    ) -> None:
        lib = _libc()
        fd = lib.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        wd = lib.inotify_add_watch(fd, os.fsencode(os.fspath(path)), mask)
        if wd < 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise OSError(err, f"inotify_add_watch {path}: {os.strerror(err)}", str(path))
        self.fd = fd
        self._wd = wd
        self._names = names
        self._poller = select.poll()
        self._poller.register(fd, select.POLLIN)

    def __enter__(self) -> DirectoryWatch:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def wait(self, timeout: float) -> bool:
        """True once something changed since the last call (the notices are consumed), False
        after ``timeout`` seconds without a change."""
        deadline = time.monotonic() + timeout
        while True:
            if not self._poller.poll(max(0, int((deadline - time.monotonic()) * 1000))):
                return False
            if self._consume():
                return True

    def _consume(self) -> bool:
        """Read every pending notice; whether one of them counts (see ``names``)."""
        counts = False
        while True:
            try:
                data = os.read(self.fd, 65536)
            except (BlockingIOError, InterruptedError):
                return counts
            if not data:
                return counts
            counts = counts or self._names is None or self._counts(data)

    def _counts(self, data: bytes) -> bool:
        assert self._names is not None
        offset = 0
        while offset + _EVENT.size <= len(data):
            _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
            offset += _EVENT.size + length
            if mask & _ABOUT_THE_WATCH or not name or self._names(os.fsdecode(name)):
                return True
        return False

    def close(self) -> None:
        """Stop watching now; the descriptor itself is closed by a thread of its own (see the
        module docstring), which ends once the kernel let go of it."""
        if self.fd != -1:
            fd, self.fd = self.fd, -1
            self._poller.unregister(fd)
            _libc().inotify_rm_watch(fd, self._wd)  # cheap, and no notice comes after it
            try:
                threading.Thread(target=os.close, args=(fd,), name="inotify-close", daemon=True).start()
            except RuntimeError:  # no new threads (the interpreter is shutting down): wait for it
                os.close(fd)


def watch_directory(
    path: str | os.PathLike[str], mask: int = CHANGES, names: Callable[[str], bool] | None = None
) -> DirectoryWatch | None:
    """A watch on ``path``, or None where there can be none (the per-user limit of inotify
    instances reached, no such directory): the caller polls instead."""
    try:
        return DirectoryWatch(Path(path), mask, names)
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOSPC, errno.ENOENT, errno.ENOMEM, errno.ENOSYS):
            return None
        raise

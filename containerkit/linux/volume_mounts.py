"""The mounts behind a ``local`` volume with driver options (docker's local driver): a tmpfs, or a
bind of a host path, on the volume's ``_data`` directory while a container uses it.

The options arrive already checked against an allow-list by the engine; this module only mounts.
A tmpfs is always ``nosuid,nodev``: a volume never brings setuid files or device nodes.
"""

from __future__ import annotations

import errno
import os

from containerkit.errors import ContainerkitError, InvalidArgument
from containerkit.linux import _libc
from containerkit.linux._libc import MNT_DETACH, MS_BIND, MS_NODEV, MS_NOSUID, MS_RDONLY, MS_REC, MS_REMOUNT
from containerkit.linux.overlay import is_mountpoint

__all__ = ["is_mounted", "mount_bind", "mount_tmpfs", "unmount"]


def is_mounted(target: str) -> bool:
    return is_mountpoint(target)


def mount_tmpfs(target: str, data: str) -> None:
    """A fresh tmpfs on ``target`` with ``data`` (``size=100m,mode=755``)."""
    try:
        _libc.libc.mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, data or None)
    except OSError as exc:
        raise _error(f"mount tmpfs ({data}) on {target}", exc) from exc


def mount_bind(source: str, target: str, *, recursive: bool, read_only: bool) -> None:
    """``source`` (a host path) on ``target``; ``read_only`` remounts the bind read-only."""
    flags = MS_BIND | (MS_REC if recursive else 0)
    try:
        _libc.libc.mount(source, target, None, flags, None)
    except OSError as exc:
        raise _error(f"bind {source} on {target}", exc) from exc
    if read_only:
        try:
            _libc.libc.mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)
        except OSError as exc:
            unmount(target)
            raise _error(f"remount {target} read-only", exc) from exc


def unmount(target: str) -> None:
    """Lazily, so a container that still holds it never blocks; not mounted is no error."""
    try:
        _libc.libc.umount2(target, MNT_DETACH)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOENT):
            raise _error(f"unmount {target}", exc) from exc


def _error(what: str, exc: OSError) -> ContainerkitError:
    message = f"{what}: {os.strerror(exc.errno or 0)}"
    if exc.errno in (errno.EINVAL, errno.ENOENT, errno.ENOTDIR):
        return InvalidArgument(message)
    return ContainerkitError(message)

"""Namespaces by their OCI names: unshare, join by path, and the ``/proc/<pid>/ns`` files.

Joining another process's namespaces opens every fd first, then calls ``setns``: once the
mount namespace changes, ``/proc/<pid>/ns`` may no longer be reachable.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
from collections.abc import Iterable, Mapping

from containerkit.errors import InvalidArgument, RuntimeFailure
from containerkit.linux import _libc
from containerkit.linux.mounts import cgroup_hierarchies

__all__ = [
    "NAMESPACE_FLAGS",
    "PROC_NAMES",
    "bring_up_loopback",
    "join_namespaces",
    "join_process_cgroups",
    "namespace_path",
    "open_namespaces",
    "same_namespace",
    "setns_path",
    "unshare",
]

NAMESPACE_FLAGS: dict[str, int] = {
    "pid": _libc.CLONE_NEWPID,
    "network": _libc.CLONE_NEWNET,
    "mount": _libc.CLONE_NEWNS,
    "ipc": _libc.CLONE_NEWIPC,
    "uts": _libc.CLONE_NEWUTS,
    "user": _libc.CLONE_NEWUSER,
    "cgroup": _libc.CLONE_NEWCGROUP,
}
"""OCI namespace type -> ``CLONE_NEW*`` flag."""

PROC_NAMES: dict[str, str] = {
    "pid": "pid",
    "network": "net",
    "mount": "mnt",
    "ipc": "ipc",
    "uts": "uts",
    "user": "user",
    "cgroup": "cgroup",
}
"""OCI namespace type -> file name under ``/proc/<pid>/ns``."""

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def _flag(name: str) -> int:
    try:
        return NAMESPACE_FLAGS[name]
    except KeyError:
        raise InvalidArgument(f"unknown namespace type {name!r}") from None


def namespace_path(pid: int | str, name: str) -> str:
    """``namespace_path(42, "network")`` -> ``/proc/42/ns/net``."""
    _flag(name)
    return f"/proc/{pid}/ns/{PROC_NAMES[name]}"


def unshare(names: Iterable[str], *, lib: _libc.Libc | None = None) -> None:
    """Create fresh namespaces of these OCI types for the calling process, in one call."""
    flags = 0
    for name in names:
        flags |= _flag(name)
    if flags:
        (lib or _libc.libc).unshare(flags)


def setns_path(path: str, name: str, *, lib: _libc.Libc | None = None) -> None:
    """Join the namespace a ``/proc/<pid>/ns/*`` file (or a bind mount of one) refers to."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        (lib or _libc.libc).setns(fd, _flag(name))
    except OSError as exc:
        raise OSError(exc.errno, f"join {name} namespace {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)


def same_namespace(path_a: str, path_b: str) -> bool:
    a, b = os.stat(path_a), os.stat(path_b)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def open_namespaces(pid: int, names: Iterable[str], *, skip_same: bool = True) -> dict[str, int]:
    """Open ``pid``'s namespace files (name -> fd, O_CLOEXEC); ours are skipped when identical."""
    fds: dict[str, int] = {}
    try:
        for name in names:
            path = namespace_path(pid, name)
            if skip_same and same_namespace(path, namespace_path("self", name)):
                continue
            fds[name] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


def join_namespaces(fds: Mapping[str, int], *, lib: _libc.Libc | None = None) -> None:
    """``setns`` into each opened namespace in the mapping's order, closing the fds."""
    lib = lib or _libc.libc
    try:
        for name, fd in fds.items():
            try:
                lib.setns(fd, _flag(name))
            except OSError as exc:
                raise OSError(exc.errno, f"join {name} namespace: {exc.strerror}") from exc
    finally:
        for fd in fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)


def bring_up_loopback() -> None:
    """Set ``lo`` up in the current network namespace, as runc does for a new one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, request + b"\0" * 22)[:18])[1]
        fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | _IFF_UP) + b"\0" * 22)


def join_process_cgroups(pid: int) -> list[str]:
    """Move the calling process into every cgroup ``pid`` is in; returns the ``cgroup.procs`` written.

    A hierarchy that is not mounted here is skipped (nothing can move a process in it); one
    that refuses the move is an error naming the file: an exec left in a host cgroup of the
    ``devices`` hierarchy would escape the container's device rules.
    """
    mounts = cgroup_hierarchies()
    joined = []
    with open(f"/proc/{pid}/cgroup") as f:
        lines = f.read().splitlines()
    for line in lines:
        _hid, controllers, path = line.split(":", 2)
        key = ",".join(sorted(c for c in controllers.split(",") if c))
        mountpoint = mounts.get(key)
        if mountpoint is None:
            continue
        procs = os.path.join(mountpoint, path.lstrip("/"), "cgroup.procs")
        try:
            with open(procs, "w") as out:
                out.write(str(os.getpid()))
        except OSError as exc:
            raise RuntimeFailure(f"cannot join the container's cgroup {procs}: {exc.strerror}") from None
        joined.append(procs)
    return joined

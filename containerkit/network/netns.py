"""Persistent network namespaces as files, and running code inside one.

A namespace is kept alive by bind-mounting ``/proc/thread-self/ns/net`` onto a file we choose
(``<root>/netns/<id>``), as ``ip netns add`` does; a container joins it through the OCI config
(``linux.namespaces: [{"type": "network", "path": ...}]``).

Why a throwaway thread and not a fork: ``unshare(CLONE_NEWNET)`` and ``setns(fd, CLONE_NEWNET)``
change only the calling thread, so a fresh thread that enters a namespace and then ends never
affects the rest of a multi-threaded process, and nothing is forked (DESIGN decision 3). CPython
runs each ``threading.Thread`` on its own OS thread that exits with it, so the namespace dies with
the thread, never with a pooled worker. Sockets keep the namespace they were created in, which is
how :func:`netns_socket` and :func:`iproute` hand back objects bound to a namespace.

Contract with the runtime: a mount namespace created while netns files are mounted holds copies
of those mounts; the runtime drops them when it pivots and detaches the old root.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from containerkit.errors import Conflict, ContainerkitError, InvalidArgument, NotFound
from containerkit.linux._libc import CLONE_NEWNET, MNT_DETACH, MS_BIND, libc
from containerkit.linux.namespaces import bring_up_loopback
from containerkit.network.rtnl import NETLINK_ROUTE, Rtnl

__all__ = [
    "SpareNetns",
    "create_netns",
    "create_netns_rtnl",
    "iproute",
    "is_netns",
    "list_netns",
    "netns_rtnl",
    "netns_socket",
    "remove_netns",
    "run_in_netns",
]

T = TypeVar("T")
PathLike = str | os.PathLike[str]


def _in_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` on a fresh OS thread and hand back its result or exception."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="containerkit-netns", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    result: T = box["result"]
    return result


def _enter(path: str) -> None:
    """Move the calling thread into the namespace at ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"network namespace {path} does not exist") from None
    try:
        libc.setns(fd, CLONE_NEWNET)
    except OSError as exc:
        raise InvalidArgument(f"{path} is not a network namespace: {exc.strerror}") from None
    finally:
        os.close(fd)


def is_netns(path: PathLike) -> bool:
    """True if ``path`` is a mounted namespace file (same nsfs device as our own netns)."""
    try:
        return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return False


def create_netns(path: PathLike) -> None:
    """Create a new network namespace pinned at ``path`` with ``lo`` up.

    Raises Conflict if ``path`` already exists; on failure nothing is left behind.
    """
    create_netns_rtnl(path).close()


def create_netns_rtnl(path: PathLike) -> Rtnl:
    """:func:`create_netns`, handing back a route netlink socket inside the new namespace: what
    configures it next needs no second thread to get into it."""
    target = os.fspath(path)
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0))
    except FileExistsError:
        raise Conflict(f"network namespace file {target} already exists") from None

    def make() -> Rtnl:
        libc.unshare(CLONE_NEWNET)
        libc.mount("/proc/thread-self/ns/net", target, None, MS_BIND)
        bring_up_loopback()
        return Rtnl()

    try:
        return _in_thread(make)
    except BaseException as exc:
        remove_netns(target)
        if isinstance(exc, OSError):
            raise ContainerkitError(f"cannot create network namespace {target}: {exc}") from exc
        raise


class SpareNetns:
    """A fresh network namespace made ahead of need, on a background thread, so a container's
    start does not wait for the kernel to make one (1-4 ms here: every subsystem's per-namespace
    setup). :meth:`take` pins the spare at a path, :meth:`refill` makes the next one; only a
    namespace nobody has used is ever handed out. Held by an fd and a netlink socket inside it,
    never by a file: a process that dies takes its spare with it. :meth:`close` frees it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: tuple[int, Rtnl] | None = None  # (fd of the namespace, socket inside it)
        self._making = False
        self._closed = False

    def take(self, path: PathLike) -> Rtnl:
        """:func:`create_netns_rtnl` from the spare when there is one, else made now."""
        with self._lock:
            spare, self._ready = self._ready, None
        if spare is None:
            return create_netns_rtnl(path)
        fd, sock = spare
        try:
            _pin(fd, os.fspath(path))
        except BaseException:
            sock.close()
            raise
        finally:
            os.close(fd)
        return sock

    def refill(self) -> None:
        """Start making the next spare in the background, if there is none. Called when a
        container's network is torn down: making a namespace takes the kernel's rtnl lock,
        which a start's veths need too, and the thread is long gone by the next start."""
        with self._lock:
            if self._closed or self._making or self._ready is not None:
                return
            self._making = True
        # a threading.Thread, counted by threading.active_count(): a caller that forks only
        # while single-threaded (the runtime's direct launch) sees it
        threading.Thread(target=self._make, name="containerkit-netns-spare", daemon=True).start()

    def _make(self) -> None:
        made: tuple[int, Rtnl] | None = None
        try:
            libc.unshare(CLONE_NEWNET)
            bring_up_loopback()
            fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                made = (fd, Rtnl())
            except BaseException:
                os.close(fd)
                raise
        except Exception:  # take() makes one itself then, and raises what fails
            pass
        with self._lock:
            self._making = False
            if made is not None and not self._closed:
                self._ready, made = made, None
        if made is not None:
            os.close(made[0])
            made[1].close()

    def close(self) -> None:
        """Free the spare; a spare still being made is freed when it is done."""
        with self._lock:
            self._closed = True
            spare, self._ready = self._ready, None
        if spare is not None:
            os.close(spare[0])
            spare[1].close()


def _pin(fd: int, target: str) -> None:
    """Bind-mount the namespace open at ``fd`` onto a new file ``target``; nothing is left on failure."""
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0))
    except FileExistsError:
        raise Conflict(f"network namespace file {target} already exists") from None
    try:
        libc.mount(f"/proc/self/fd/{fd}", target, None, MS_BIND)
    except BaseException as exc:
        remove_netns(target)
        if isinstance(exc, OSError):
            raise ContainerkitError(f"cannot create network namespace {target}: {exc}") from exc
        raise


def remove_netns(path: PathLike) -> None:
    """Unmount and unlink ``path``; the namespace goes when its last user (process, socket) does.

    Idempotent: a missing file or one that is not mounted is fine.
    """
    target = os.fspath(path)
    try:
        libc.umount2(target, MNT_DETACH)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOENT):
            raise ContainerkitError(f"cannot unmount network namespace {target}: {exc}") from exc
    with contextlib.suppress(FileNotFoundError):
        os.unlink(target)


def list_netns(directory: PathLike) -> list[Path]:
    """Every entry of ``directory``, sorted: mounted namespaces and leftovers of a crash alike."""
    try:
        return sorted(p for p in Path(directory).iterdir() if p.is_file())
    except FileNotFoundError:
        return []


def run_in_netns(path: PathLike, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn(*args, **kwargs)`` on a throwaway thread inside the namespace at ``path``."""
    target = os.fspath(path)

    def call() -> T:
        _enter(target)
        return fn(*args, **kwargs)

    return _in_thread(call)


def netns_socket(
    path: PathLike,
    family: int = socket.AF_INET,
    type: int = socket.SOCK_STREAM,
    proto: int = 0,
) -> socket.socket:
    """A socket that lives in the namespace at ``path``; use it from any thread."""
    return run_in_netns(path, socket.socket, family, type, proto)


def netns_rtnl(path: PathLike) -> Rtnl:
    """A :class:`~containerkit.network.rtnl.Rtnl` socket inside the namespace at ``path``."""
    return Rtnl(netns_socket(path, socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE))


def netlink_error() -> Any:
    """pyroute2's ``NetlinkError``, for ``except netlink_error() as exc:`` (evaluated only when
    something is raised, so importing this module does not import pyroute2)."""
    from pyroute2 import NetlinkError

    return NetlinkError


def iproute(path: PathLike | None = None) -> Any:
    """An ``IPRoute`` bound to the namespace at ``path`` (the host's when ``None``).

    pyroute2 is imported here, on first use: it costs ~70 ms, which a container on network
    "none" (or a CLI command) should not pay.

    The netlink socket is opened inside the namespace and handed to pyroute2 by fd, so pyroute2
    forks nothing. Use it as a context manager.
    """
    from pyroute2 import IPRoute

    if path is None:
        return IPRoute()
    sock = netns_socket(path, socket.AF_NETLINK, socket.SOCK_DGRAM, 0)  # NETLINK_ROUTE
    return IPRoute(fileno=sock.detach())

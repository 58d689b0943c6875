"""Mount primitives for building a container's root, after runc's ``rootfs_linux.go``.

Every path inside the new root goes through :func:`secure_join`, which resolves symlinks as if
the root were ``/``, so an image that ships ``etc -> /etc`` can never send a mount to the host.
The final mount is done on ``/proc/self/fd/N`` of an ``O_PATH`` handle whose real path was
checked, which also closes the gap between resolving and mounting.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from containerkit._model import model
from containerkit.errors import InvalidArgument, Unavailable, UnsafeArchive
from containerkit.linux import _libc, inroot
from containerkit.linux._libc import (
    MNT_DETACH,
    MS_BIND,
    MS_DIRSYNC,
    MS_MANDLOCK,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SILENT,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
    MS_UNBINDABLE,
)

__all__ = [
    "MountOptions",
    "bind_device",
    "cgroup_hierarchies",
    "create_device",
    "ensure_mount_point",
    "mask_path",
    "mount_cgroup",
    "mount_in_root",
    "opened_in_root",
    "parse_mount_options",
    "pivot_root",
    "read_cgroup_hierarchies_ahead",
    "readonly_path",
    "real_dir",
    "remount_readonly",
    "secure_join",
    "set_propagation",
]

_MAX_SYMLINKS = 255
_MS_POSIXACL = 1 << 16
_MS_I_VERSION = 1 << 23
_MS_LAZYTIME = 1 << 25

# runc's parseMountOptions table: option -> (clears the flag instead of setting it, flag)
_FLAGS: dict[str, tuple[bool, int]] = {
    "acl": (False, _MS_POSIXACL),
    "async": (True, MS_SYNCHRONOUS),
    "atime": (True, MS_NOATIME),
    "bind": (False, MS_BIND),
    "defaults": (False, 0),
    "dev": (True, MS_NODEV),
    "diratime": (True, MS_NODIRATIME),
    "dirsync": (False, MS_DIRSYNC),
    "exec": (True, MS_NOEXEC),
    "iversion": (False, _MS_I_VERSION),
    "lazytime": (False, _MS_LAZYTIME),
    "loud": (True, MS_SILENT),
    "mand": (False, MS_MANDLOCK),
    "noacl": (True, _MS_POSIXACL),
    "noatime": (False, MS_NOATIME),
    "nodev": (False, MS_NODEV),
    "nodiratime": (False, MS_NODIRATIME),
    "noexec": (False, MS_NOEXEC),
    "noiversion": (True, _MS_I_VERSION),
    "nolazytime": (True, _MS_LAZYTIME),
    "nomand": (True, MS_MANDLOCK),
    "norelatime": (True, MS_RELATIME),
    "nostrictatime": (True, MS_STRICTATIME),
    "nosuid": (False, MS_NOSUID),
    "rbind": (False, MS_BIND | MS_REC),
    "relatime": (False, MS_RELATIME),
    "remount": (False, MS_REMOUNT),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "silent": (False, MS_SILENT),
    "strictatime": (False, MS_STRICTATIME),
    "suid": (True, MS_NOSUID),
    "sync": (False, MS_SYNCHRONOUS),
}
_PROPAGATION: dict[str, int] = {
    "private": MS_PRIVATE,
    "shared": MS_SHARED,
    "slave": MS_SLAVE,
    "unbindable": MS_UNBINDABLE,
    "rprivate": MS_PRIVATE | MS_REC,
    "rshared": MS_SHARED | MS_REC,
    "rslave": MS_SLAVE | MS_REC,
    "runbindable": MS_UNBINDABLE | MS_REC,
}
# statvfs f_flag bits that must survive a bind remount (the kernel refuses to drop locked ones).
_PRESERVED = {
    os.ST_NOSUID: MS_NOSUID,
    os.ST_NODEV: MS_NODEV,
    os.ST_NOEXEC: MS_NOEXEC,
    os.ST_NOATIME: MS_NOATIME,
    os.ST_NODIRATIME: MS_NODIRATIME,
    os.ST_RELATIME: MS_RELATIME,
}


@model
class MountOptions:
    """OCI option strings split into mount(2) flags, propagation changes and fs-specific data."""

    flags: int = 0
    propagation: tuple[int, ...] = ()
    data: str = ""

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & MS_BIND)


def parse_mount_options(options: Sequence[str]) -> MountOptions:
    """``["nosuid", "mode=755", "rprivate"]`` -> flags, propagation, ``"mode=755"`` (like runc)."""
    flags = 0
    propagation: list[int] = []
    data: list[str] = []
    for option in options:
        if option in _FLAGS:
            clear, flag = _FLAGS[option]
            flags = flags & ~flag if clear else flags | flag
        elif option in _PROPAGATION:
            propagation.append(_PROPAGATION[option])
        else:
            data.append(option)
    return MountOptions(flags=flags, propagation=tuple(propagation), data=",".join(data))


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


def secure_join(root: str, unsafe_path: str) -> str:
    """``root`` + ``unsafe_path``, resolving symlinks as if ``root`` were ``/``.

    Absolute link targets restart at ``root`` and ``..`` stops at it, so the result is always
    inside ``root``. Components that do not exist yet are kept literally.
    """
    root = os.path.abspath(root)
    pending: deque[str] = deque(_parts(unsafe_path))
    current: list[str] = []
    links = 0
    while pending:
        part = pending.popleft()
        if part == "..":
            if current:
                current.pop()
            continue
        candidate = os.path.join(root, *current, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            current.append(part)
            continue
        except NotADirectoryError:
            current.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            current.append(part)
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            raise InvalidArgument(f"too many levels of symbolic links resolving {unsafe_path!r} in {root}")
        target = os.readlink(candidate)
        if target.startswith("/"):
            current = []
        pending.extendleft(reversed(_parts(target)))
    return os.path.join(root, *current)


def real_dir(path: str) -> str:
    """``os.path.realpath`` of an existing directory, asked of the kernel in three syscalls
    instead of an lstat per component (this runs for every mount of a container's setup)."""
    try:
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return os.path.realpath(path)
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def _check_inside(root: str, fd: int, shown: str) -> None:
    real = os.readlink(f"/proc/self/fd/{fd}")
    root = real_dir(root)
    if real != root and not real.startswith(root.rstrip("/") + "/"):
        raise UnsafeArchive(f"mount point {shown!r} resolves to {real!r}, outside the root {root!r}")


@contextlib.contextmanager
def opened_in_root(root: str, path: str) -> Iterator[str]:
    """Yield a ``/proc/self/fd/N`` path for ``path`` inside ``root``.

    Resolved by the kernel (``openat2`` with ``RESOLVE_IN_ROOT``: symlinks and ``..`` as if
    ``root`` were ``/``), in one call instead of a walk, an open and a check; where the kernel
    lacks it, walked by :func:`secure_join` and checked to really be inside.
    """
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = inroot.openat2(
            root_fd, path, os.O_PATH, 0, inroot.RESOLVE_IN_ROOT | inroot.RESOLVE_NO_MAGICLINKS
        )
    except Unavailable:
        fd = os.open(secure_join(root, path), os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            _check_inside(root, fd, path)
        except BaseException:
            os.close(fd)
            raise
    finally:
        os.close(root_fd)
    try:
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def ensure_mount_point(root: str, path: str, *, directory: bool = True, mode: int = 0o755) -> str:
    """Create ``path`` inside ``root`` (a dir, or an empty file for file binds); return its host path."""
    resolved = secure_join(root, path)
    parent = os.path.dirname(resolved) if resolved != os.path.abspath(root) else resolved
    os.makedirs(parent, mode=0o755, exist_ok=True)
    if directory:
        with contextlib.suppress(FileExistsError):
            os.mkdir(resolved, mode)
    elif not os.path.lexists(resolved):
        fd = os.open(resolved, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        os.close(fd)
    return resolved


def _preserved_flags(path: str) -> int:
    vfs = os.statvfs(path)
    return sum(flag for bit, flag in _PRESERVED.items() if vfs.f_flag & bit)


def set_propagation(target: str, flags: int, *, lib: _libc.Libc | None = None) -> None:
    (lib or _libc.libc).mount(None, target, None, flags, None)


def remount_readonly(target: str, *, extra: int = 0, lib: _libc.Libc | None = None) -> None:
    """Make an existing mount read-only, keeping the per-mount flags it already has."""
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY | _preserved_flags(target) | extra
    (lib or _libc.libc).mount(None, target, None, flags, None)


def mount_in_root(
    root: str,
    destination: str,
    fstype: str,
    source: str | None,
    options: Sequence[str],
    *,
    lib: _libc.Libc | None = None,
) -> None:
    """One OCI ``mounts`` entry onto ``root``: mount point created safely, then flags as runc does.

    Binds are mounted first and remounted to apply ``ro``/``nosuid``/...; other types get their
    flags and data in one call. Propagation options are applied last.
    """
    lib = lib or _libc.libc
    parsed = parse_mount_options(options)
    if parsed.is_bind or fstype == "bind":
        if not source:
            raise InvalidArgument(f"bind mount on {destination!r} has no source")
        try:
            is_dir = stat.S_ISDIR(os.stat(source).st_mode)
        except OSError as exc:
            raise InvalidArgument(f"bind mount source {source}: {exc.strerror}") from None
        ensure_mount_point(root, destination, directory=is_dir)
        with opened_in_root(root, destination) as target:
            lib.mount(source, target, None, MS_BIND | (parsed.flags & MS_REC), None)
        extra = parsed.flags & ~(MS_BIND | MS_REC | MS_REMOUNT)
        # Opened again: the first handle points under the new mount, not at it.
        with opened_in_root(root, destination) as target:
            if extra:
                lib.mount(None, target, None, MS_BIND | MS_REMOUNT | extra | _preserved_flags(target), None)
            for prop in parsed.propagation:
                lib.mount(None, target, None, prop, None)
        return
    ensure_mount_point(root, destination, directory=True)
    with opened_in_root(root, destination) as target:
        if fstype == "cgroup":
            # Sub-mounts go below the new tmpfs, which the fd (pointing under it) cannot reach.
            mount_cgroup(os.readlink(target), parsed.flags, lib=lib)
        else:
            lib.mount(source or fstype, target, fstype, parsed.flags, parsed.data or None)
    if parsed.propagation:
        with opened_in_root(root, destination) as target:
            for prop in parsed.propagation:
                lib.mount(None, target, None, prop, None)


def cgroup_hierarchies() -> dict[str, str]:
    """Host cgroup mounts: ``/proc/<pid>/cgroup`` controller key (``""`` for v2) -> mount point."""
    with open("/proc/cgroups") as f:
        controllers = {line.split()[0] for line in f if line.strip() and not line.startswith("#")}
    found: dict[str, str] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, extra = left.split(), right.split()
            if len(fields) < 5 or len(extra) < 3:
                continue
            mountpoint = fields[4].replace("\\040", " ")
            if extra[0] == "cgroup2":
                found.setdefault("", mountpoint)
            elif extra[0] == "cgroup":
                opts = [o for o in extra[2].split(",") if o in controllers or o.startswith("name=")]
                found.setdefault(",".join(sorted(opts)), mountpoint)
    return found


_hierarchies_ahead: dict[str, str] | None = None


def read_cgroup_hierarchies_ahead() -> None:
    """Read :func:`cgroup_hierarchies` now for this process's next :func:`mount_cgroup` (a
    container init forked ahead reads them while it waits: /proc/self/mountinfo is long)."""
    global _hierarchies_ahead
    _hierarchies_ahead = cgroup_hierarchies()


def mount_cgroup(target: str, flags: int, *, lib: _libc.Libc | None = None) -> None:
    """``/sys/fs/cgroup`` as the container sees it, from inside its cgroup namespace.

    Unified hosts get one cgroup2 mount. v1/hybrid hosts get a tmpfs with one cgroup v1 mount
    per hierarchy (as docker shows them), made read-only afterwards when ``flags`` asks.
    """
    lib = lib or _libc.libc
    base = flags & ~(MS_RDONLY | MS_REMOUNT | MS_BIND | MS_REC)
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        lib.mount("cgroup", target, "cgroup2", flags, None)
        return
    lib.mount("tmpfs", target, "tmpfs", base, "mode=755")
    global _hierarchies_ahead
    hierarchies, _hierarchies_ahead = _hierarchies_ahead or cgroup_hierarchies(), None
    with open("/proc/self/cgroup") as f:
        keys = [line.split(":", 2)[1] for line in f.read().splitlines()]
    for key in keys:
        if not key or ",".join(sorted(key.split(","))) not in hierarchies:
            continue
        name = key.removeprefix("name=")
        sub = os.path.join(target, name)
        os.mkdir(sub, 0o755)
        lib.mount("cgroup", sub, "cgroup", flags, key)
        if "," in key:
            for alias in key.split(","):
                with contextlib.suppress(FileExistsError):
                    os.symlink(name, os.path.join(target, alias))
    if flags & MS_RDONLY:
        lib.mount(None, target, None, MS_REMOUNT | MS_RDONLY | base, "mode=755")


def create_device(root: str, device: Mapping[str, Any]) -> None:
    """An OCI ``linux.devices`` entry as a node inside ``root``; bind the host's when mknod is denied."""
    path = str(device["path"])
    kinds = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
    kind = kinds.get(str(device.get("type", "c")))
    if kind is None:
        raise InvalidArgument(f"device {path}: unknown type {device.get('type')!r}")
    ensure_mount_point(root, os.path.dirname(path) or "/", directory=True)
    target = secure_join(root, path)
    mode = int(device.get("fileMode", 0o666)) & 0o7777
    with contextlib.suppress(FileNotFoundError):
        os.unlink(target)
    try:
        os.mknod(target, kind | mode, os.makedev(int(device.get("major", 0)), int(device.get("minor", 0))))
    except PermissionError:
        bind_device(root, path, path)
        return
    os.chmod(target, mode)
    os.chown(target, int(device.get("uid", 0)), int(device.get("gid", 0)))


def bind_device(root: str, host_path: str, destination: str, *, lib: _libc.Libc | None = None) -> None:
    """Bind the host's device node ``host_path`` onto ``destination`` inside ``root``."""
    ensure_mount_point(root, destination, directory=False)
    with opened_in_root(root, destination) as target:
        (lib or _libc.libc).mount(host_path, target, None, MS_BIND, None)


def pivot_root(new_root: str, *, lib: _libc.Libc | None = None) -> None:
    """Make ``new_root`` the root and drop the old one, with no ``put_old`` directory (runc's trick)."""
    lib = lib or _libc.libc
    old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new = os.open(new_root, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new)
        lib.pivot_root(".", ".")
        os.fchdir(old)
        # The old root is stacked on "."; keep its unmount from propagating to the host.
        lib.mount(None, ".", None, MS_SLAVE | MS_REC, None)
        lib.umount2(".", MNT_DETACH)
    finally:
        os.close(old)
        os.close(new)
    os.chdir("/")


def mask_path(path: str, *, lib: _libc.Libc | None = None) -> None:
    """Hide ``path``: ``/dev/null`` over a file, an empty read-only tmpfs over a directory."""
    lib = lib or _libc.libc
    try:
        lib.mount("/dev/null", path, None, MS_BIND, None)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return
        if exc.errno != errno.ENOTDIR:
            raise
        lib.mount("tmpfs", path, "tmpfs", MS_RDONLY, None)


def readonly_path(path: str, *, lib: _libc.Libc | None = None) -> None:
    """Bind ``path`` onto itself and make that read-only; a missing path is fine."""
    lib = lib or _libc.libc
    try:
        lib.mount(path, path, None, MS_BIND | MS_REC, None)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return
        raise
    remount_readonly(path, extra=MS_REC, lib=lib)

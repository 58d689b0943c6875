"""Idmapped mounts (``open_tree`` + ``mount_setattr(MOUNT_ATTR_IDMAP)`` + ``move_mount``).

An idmapped mount shows each file's owner through a user namespace's map: with a namespace that
maps 0 onto 100000, a root-owned image layer reads as owned by 100000, without a chown, so one
unpacked layer serves containers of every range (Linux 5.12; under overlayfs lowers since 5.19).
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from containerkit.errors import Unavailable
from containerkit.linux import _libc

__all__ = ["idmapped_bind", "overlay_lowers_supported"]

# x86_64 and aarch64 share these numbers (the new-mount-API calls are in the common table).
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_MOUNT_SETATTR = 442
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000
_OPEN_TREE_CLONE = 1
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MOUNT_ATTR_IDMAP = 0x00100000


# Filesystems with idmapped mounts (FS_ALLOW_IDMAP), and the kernel release that added each.
_IDMAP_FILESYSTEMS = {
    0xEF53: (5, 12),  # ext4
    0x58465342: (5, 12),  # xfs
    0xF2F52010: (5, 12),  # f2fs
    0x9123683E: (6, 0),  # btrfs
    0x01021994: (6, 3),  # tmpfs
}
_OVERLAY_IDMAPPED_LOWERS = (5, 19)


def _kernel_release() -> tuple[int, int]:
    parts = os.uname().release.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return 0, 0


def overlay_lowers_supported(path: str | Path) -> bool:
    """Whether overlayfs can stack idmapped mounts of directories on the filesystem of ``path``
    (decided from the kernel release and the filesystem type: probing would need a user
    namespace, hence a fork, which a threaded engine must not do)."""
    kernel = _kernel_release()
    try:
        since = _IDMAP_FILESYSTEMS.get(_libc.libc.statfs_type(str(path)))
    except OSError:
        return False
    return since is not None and kernel >= max(since, _OVERLAY_IDMAPPED_LOWERS)


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


_lib = _libc.load_libc()
_lib.syscall.restype = ctypes.c_long


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def idmapped_bind(source: str | Path, target: str | Path, userns_fd: int) -> None:
    """Bind ``source`` on ``target`` (an existing directory), idmapped through ``userns_fd``.

    Raises :class:`~containerkit.errors.Unavailable` where the kernel or the filesystem of
    ``source`` has no idmapped mounts.
    """
    src, dst = os.fsencode(str(source)), os.fsencode(str(target))
    flags = _OPEN_TREE_CLONE | os.O_CLOEXEC | _AT_RECURSIVE
    tree = _check(_lib.syscall(_SYS_OPEN_TREE, _AT_FDCWD, src, flags), f"open_tree {source}")
    try:
        attr = _MountAttr(attr_set=_MOUNT_ATTR_IDMAP, userns_fd=userns_fd)
        flags = _AT_EMPTY_PATH | _AT_RECURSIVE
        result = _lib.syscall(_SYS_MOUNT_SETATTR, tree, b"", flags, ctypes.byref(attr), ctypes.sizeof(attr))
        if result < 0:
            err = ctypes.get_errno()
            raise Unavailable(f"idmapped mount of {source}: {os.strerror(err)}")
        _check(
            _lib.syscall(_SYS_MOVE_MOUNT, tree, b"", _AT_FDCWD, dst, _MOVE_MOUNT_F_EMPTY_PATH),
            f"move_mount {source} to {target}",
        )
    finally:
        os.close(tree)

"""The ctypes seam over glibc: the only place containerkit calls the C library directly.

Python 3.11 has no ``os.unshare``/``os.setns`` and no mount syscalls; these wrappers raise
``OSError`` carrying errno and the argument that failed, so callers never check return codes.
Tests may replace :data:`libc` with an object that has the same methods.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

__all__ = [
    "CLONE_NEWCGROUP",
    "CLONE_NEWIPC",
    "CLONE_NEWNET",
    "CLONE_NEWNS",
    "CLONE_NEWPID",
    "CLONE_NEWUSER",
    "CLONE_NEWUTS",
    "MNT_DETACH",
    "MS_BIND",
    "MS_NODEV",
    "MS_NOEXEC",
    "MS_NOSUID",
    "MS_PRIVATE",
    "MS_RDONLY",
    "MS_REC",
    "MS_REMOUNT",
    "MS_SLAVE",
    "Libc",
    "libc",
]

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

MNT_FORCE = 1
MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_SYS_CAPSET = {"x86_64": 126, "aarch64": 91}.get(platform.machine(), 126)
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(platform.machine(), 155)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def _encode(value: str | bytes | None) -> bytes | None:
    if value is None:
        return None
    return os.fsencode(value)


def load_libc() -> ctypes.CDLL:
    """A handle on glibc by its soname: ``ctypes.util.find_library`` runs ``ldconfig -p`` (a
    process) on every call, and each CLI command, exit command and fork server loads libc."""
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:  # not glibc's soname: ask the linker cache
        return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class Libc:
    """Thin, checked wrappers over the glibc calls the kernel layer needs."""

    def __init__(self) -> None:
        self._lib = load_libc()
        self._lib.mount.argtypes = [
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_ulong,
            ctypes.c_char_p,
        ]
        self._lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        self._lib.unshare.argtypes = [ctypes.c_int]
        self._lib.syncfs.argtypes = [ctypes.c_int]
        self._lib.setns.argtypes = [ctypes.c_int, ctypes.c_int]
        self._lib.prctl.argtypes = [
            ctypes.c_int,
            ctypes.c_ulong,
            ctypes.c_ulong,
            ctypes.c_ulong,
            ctypes.c_ulong,
        ]
        self._lib.syscall.restype = ctypes.c_long

    def _check(self, result: int, what: str) -> int:
        if result < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")
        return result

    def mount(
        self,
        source: str | None,
        target: str,
        fstype: str | None,
        flags: int = 0,
        data: str | None = None,
    ) -> None:
        self._check(
            self._lib.mount(_encode(source), _encode(target), _encode(fstype), flags, _encode(data)),
            f"mount {source!r} on {target!r} (type {fstype!r}, flags {flags:#x}, data {data!r})",
        )

    def umount2(self, target: str, flags: int = 0) -> None:
        self._check(self._lib.umount2(_encode(target), flags), f"umount {target!r}")

    def syncfs(self, fd: int) -> None:
        """Write back the whole filesystem holding ``fd`` (one call instead of an fsync per file)."""
        self._check(self._lib.syncfs(fd), f"syncfs(fd={fd})")

    def unshare(self, flags: int) -> None:
        self._check(self._lib.unshare(flags), f"unshare({flags:#x})")

    def setns(self, fd: int, nstype: int = 0) -> None:
        self._check(self._lib.setns(fd, nstype), f"setns(fd={fd}, type={nstype:#x})")

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self._check(
            self._lib.syscall(_SYS_PIVOT_ROOT, _encode(new_root), _encode(put_old)),
            f"pivot_root({new_root!r}, {put_old!r})",
        )

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
        return self._check(self._lib.prctl(option, arg2, arg3, arg4, arg5), f"prctl({option})")

    def current_break(self) -> int:
        """The program break now (``sbrk(0)``): what ``PR_SET_MM_MAP`` must be given back."""
        sbrk = self._lib.sbrk
        sbrk.argtypes = [ctypes.c_long]
        sbrk.restype = ctypes.c_void_p
        return int(sbrk(0) or 0)

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        """Set the three capability sets of the calling thread (64-bit masks)."""
        header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        for i, shift in enumerate((0, 32)):
            data[i].effective = (effective >> shift) & 0xFFFFFFFF
            data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
            data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
        self._check(
            self._lib.syscall(_SYS_CAPSET, ctypes.byref(header), ctypes.byref(data)),
            "capset",
        )

    def statfs_type(self, path: str) -> int:
        """``f_type`` of the filesystem holding ``path`` (``os.statvfs`` does not report it)."""
        buf = (ctypes.c_long * 32)()  # struct statfs is 120 bytes; f_type is its first long
        self._check(self._lib.statfs(_encode(path), ctypes.byref(buf)), f"statfs {path!r}")
        return int(buf[0]) & 0xFFFFFFFF


libc = Libc()

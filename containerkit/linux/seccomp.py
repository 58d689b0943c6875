"""Seccomp filters through libseccomp (Debian's ``libseccomp2``), from an OCI ``linux.seccomp`` object.

libseccomp compiles the rules into BPF for every architecture of the filter; nothing here
assembles BPF by hand. :func:`compile_filter` builds the filter, :meth:`Filter.load` installs it
in the calling thread (with TSYNC: the process), :meth:`Filter.export_bpf` gives libseccomp's
own program so a caller may cache it and install it later with :func:`load_bpf`.
Semantics follow runc's ``libcontainer/seccomp/seccomp_linux.go``: syscall names this
libseccomp does not know are skipped, a rule whose action is the default one is dropped, and
several conditions on the same argument become one rule each (an OR).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import platform
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from containerkit.errors import InvalidArgument, RuntimeFailure, Unavailable

__all__ = [
    "DEFAULT_CACHE",
    "Filter",
    "available",
    "cached_program",
    "compile_filter",
    "filter_flags",
    "load_bpf",
    "native_arch",
    "program",
    "read_program",
]

DEFAULT_CACHE = Path("/run/containerkit/seccomp")
"""Compiled programs by hash of (filter, libseccomp version, machine); private to root."""

SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_KILL_THREAD = 0x00000000
SCMP_ACT_TRAP = 0x00030000
SCMP_ACT_ERRNO = 0x00050000
SCMP_ACT_TRACE = 0x7FF00000
SCMP_ACT_LOG = 0x7FFC0000
SCMP_ACT_ALLOW = 0x7FFF0000

_OPS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

# enum scmp_filter_attr
_FLTATR_CTL_NNP = 3
_FLTATR_CTL_TSYNC = 4
_FLTATR_CTL_LOG = 6
_FLTATR_CTL_SSB = 7
_FLTATR_CTL_OPTIMIZE = 8
_OPTIMIZE_BINARY_TREE = 2

# seccomp(2) flags, for a filter loaded from exported BPF
_SECCOMP_SET_MODE_FILTER = 1
_FILTER_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": (_FLTATR_CTL_TSYNC, 1),
    "SECCOMP_FILTER_FLAG_LOG": (_FLTATR_CTL_LOG, 2),
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": (_FLTATR_CTL_SSB, 4),
}
_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277, "ppc64le": 358, "s390x": 348, "riscv64": 277}
_MAX_ARGS = 6
_NR_SCMP_ERROR = -1


class _ArgCmp(ctypes.Structure):
    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


_lib: ctypes.CDLL | None = None
_libc = ctypes.CDLL(None, use_errno=True)  # at import: a forked container init finds it ready
_libc.syscall.restype = ctypes.c_long


def _libseccomp() -> ctypes.CDLL:
    """libseccomp, loaded on first use: a container start loads the program its create
    compiled and never needs it."""
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError as exc:
            raise Unavailable(f"libseccomp.so.2 cannot be loaded (install libseccomp2): {exc}") from None
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = (ctypes.c_uint32,)
        lib.seccomp_release.restype = None
        lib.seccomp_release.argtypes = (ctypes.c_void_p,)
        lib.seccomp_arch_add.argtypes = (ctypes.c_void_p, ctypes.c_uint32)
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_arch_resolve_name.argtypes = (ctypes.c_char_p,)
        lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
        lib.seccomp_rule_add_array.argtypes = (
            ctypes.c_void_p,
            ctypes.c_uint32,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.POINTER(_ArgCmp),
        )
        lib.seccomp_attr_set.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32)
        lib.seccomp_load.argtypes = (ctypes.c_void_p,)
        lib.seccomp_export_bpf.argtypes = (ctypes.c_void_p, ctypes.c_int)
        lib.seccomp_version.restype = ctypes.POINTER(ctypes.c_uint * 3)
        _lib = lib
    return _lib


def available() -> bool:
    """Whether libseccomp can be loaded here."""
    try:
        _libseccomp()
    except Unavailable:
        return False
    return True


def native_arch() -> str:
    """The OCI name of this machine's architecture (``SCMP_ARCH_X86_64``, ...)."""
    machine = platform.machine()
    names = {"x86_64": "X86_64", "aarch64": "AARCH64", "i686": "X86", "i386": "X86", "armv7l": "ARM"}
    return "SCMP_ARCH_" + names.get(machine, machine.upper())


def _action(name: str, errno_ret: int | None, where: str) -> int:
    """An OCI action name (with ``errnoRet``) as libseccomp's action value (runc's mapping)."""
    ret = errno.EPERM if errno_ret is None else int(errno_ret)
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return SCMP_ACT_KILL_THREAD
    if name == "SCMP_ACT_KILL_PROCESS":
        return SCMP_ACT_KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return SCMP_ACT_TRAP
    if name == "SCMP_ACT_ERRNO":
        return SCMP_ACT_ERRNO | (ret & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        return SCMP_ACT_TRACE | (ret & 0xFFFF)
    if name == "SCMP_ACT_LOG":
        return SCMP_ACT_LOG
    if name == "SCMP_ACT_ALLOW":
        return SCMP_ACT_ALLOW
    if name == "SCMP_ACT_NOTIFY":
        raise Unavailable(f"seccomp {where}: SCMP_ACT_NOTIFY (a listener) is not supported")
    raise InvalidArgument(f"seccomp {where}: unknown action {name!r}")


def _conditions(args: Sequence[Mapping[str, Any]], name: str) -> list[list[_ArgCmp]]:
    """The rules (each a list of conditions, ANDed) for one syscall entry's ``args``."""
    conds: list[_ArgCmp] = []
    for arg in args:
        index = int(arg.get("index", 0))
        op = _OPS.get(str(arg.get("op", "")))
        if op is None:
            raise InvalidArgument(f"seccomp rule for {name}: unknown comparison {arg.get('op')!r}")
        if not 0 <= index < _MAX_ARGS:
            raise InvalidArgument(f"seccomp rule for {name}: argument index {index} out of range 0..5")
        conds.append(_ArgCmp(index, op, int(arg.get("value", 0)), int(arg.get("valueTwo", 0))))
    indexes = [c.arg for c in conds]
    if len(set(indexes)) != len(indexes):  # several on one argument: libseccomp ANDs them; runc ORs
        return [[c] for c in conds]
    return [conds]


class Filter:
    """A libseccomp filter context; release it with :meth:`close` (or use ``with``)."""

    def __init__(self, ctx: int, flags: int) -> None:
        self._ctx: int | None = ctx
        self.flags = flags
        """The seccomp(2) flags :func:`load_bpf` needs for this filter's exported program."""

    def __enter__(self) -> Filter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._ctx is not None:
            _libseccomp().seccomp_release(self._ctx)
            self._ctx = None

    def _handle(self) -> int:
        if self._ctx is None:
            raise RuntimeFailure("seccomp filter already released")
        return self._ctx

    def load(self) -> None:
        """Install the filter: the caller needs no_new_privs or CAP_SYS_ADMIN."""
        rc = _libseccomp().seccomp_load(self._handle())
        if rc < 0:
            raise RuntimeFailure(f"seccomp_load: {os.strerror(-rc)}")

    def export_bpf(self) -> bytes:
        """libseccomp's compiled program (``struct sock_filter`` array, native endianness)."""
        read_fd, write_fd = os.pipe()
        try:
            rc = _libseccomp().seccomp_export_bpf(self._handle(), write_fd)
            os.close(write_fd)
            write_fd = -1
            if rc < 0:
                raise RuntimeFailure(f"seccomp_export_bpf: {os.strerror(-rc)}")
            chunks = []
            while chunk := os.read(read_fd, 65536):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(read_fd)
            if write_fd != -1:
                os.close(write_fd)


def _arch_token(name: str) -> int:
    lib = _libseccomp()
    short = name.removeprefix("SCMP_ARCH_").lower()
    token = int(lib.seccomp_arch_resolve_name(short.encode()))
    if token == 0:
        raise InvalidArgument(f"seccomp: unknown architecture {name!r}")
    return token


def _add_rules(ctx: int, entry: Mapping[str, Any], default: int) -> None:
    lib = _libseccomp()
    names: Iterable[str] = entry.get("names") or ([entry["name"]] if entry.get("name") else [])
    for name in names:
        where = f"rule for syscall {name}"
        action = _action(str(entry.get("action", "")), entry.get("errnoRet"), where)
        if action == default:
            continue  # libseccomp refuses a rule that repeats the default action
        number = int(lib.seccomp_syscall_resolve_name(str(name).encode()))
        if number == _NR_SCMP_ERROR:
            continue  # unknown to this libseccomp: skipped, as runc does
        for rule in _conditions(entry.get("args") or (), str(name)):
            array = (_ArgCmp * max(len(rule), 1))(*rule)
            rc = lib.seccomp_rule_add_array(ctx, action, number, len(rule), array)
            if rc < 0:
                raise RuntimeFailure(f"seccomp: adding the {where} failed: {os.strerror(-rc)}")


def compile_filter(seccomp: Mapping[str, Any]) -> Filter:
    """An OCI ``linux.seccomp`` object as a libseccomp filter, not yet loaded.

    The no_new_privs attribute is off: whoever loads the filter sets no_new_privs itself when
    the container asks for it, as runc does.
    """
    lib = _libseccomp()
    default = _action(str(seccomp.get("defaultAction", "")), seccomp.get("defaultErrnoRet"), "defaultAction")
    ctx = int(lib.seccomp_init(default) or 0)
    if not ctx:
        raise RuntimeFailure(f"seccomp_init({seccomp.get('defaultAction')!r}) failed")
    filter_ = Filter(ctx, 0)
    try:
        for arch in seccomp.get("architectures") or ():
            rc = lib.seccomp_arch_add(ctx, _arch_token(str(arch)))
            if rc < 0 and rc != -errno.EEXIST:
                raise RuntimeFailure(f"seccomp: adding architecture {arch} failed: {os.strerror(-rc)}")
        _set_attr(ctx, _FLTATR_CTL_NNP, 0, "no_new_privs")
        # libseccomp's binary-tree layout: the same decisions, in half the kernel's time to
        # attach the filter (it runs the filter for every syscall number to build its cache)
        lib.seccomp_attr_set(ctx, _FLTATR_CTL_OPTIMIZE, _OPTIMIZE_BINARY_TREE)  # ignored before 2.5
        for flag in seccomp.get("flags") or ():
            if flag not in _FILTER_FLAGS:
                raise InvalidArgument(f"seccomp: unknown flag {flag!r}")
            attr, bit = _FILTER_FLAGS[flag]
            _set_attr(ctx, attr, 1, str(flag))
            filter_.flags |= bit
        for entry in seccomp.get("syscalls") or ():
            _add_rules(ctx, entry, default)
    except BaseException:
        filter_.close()
        raise
    return filter_


def filter_flags(seccomp: Mapping[str, Any]) -> int:
    """The seccomp(2) flags of an OCI ``linux.seccomp`` object's ``flags``."""
    bits = 0
    for flag in seccomp.get("flags") or ():
        if flag not in _FILTER_FLAGS:
            raise InvalidArgument(f"seccomp: unknown flag {flag!r}")
        bits |= _FILTER_FLAGS[flag][1]
    return bits


def _cache_key(seccomp: Mapping[str, Any]) -> str:
    version = ".".join(str(v) for v in _libseccomp().seccomp_version().contents)
    canonical = json.dumps(seccomp, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{version}\0{platform.machine()}\0{canonical}".encode()).hexdigest()


def _private_dir(path: Path) -> bool:
    """Whether ``path`` is a directory only its owner (us) can write: a cache we may trust."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def read_program(path: Path) -> bytes | None:
    """A cached program, if ``path`` is one in a directory private to us; else None."""
    if not _private_dir(path.parent):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    return data if data and not len(data) % 8 else None


def cached_program(seccomp: Mapping[str, Any], cache_dir: Path = DEFAULT_CACHE) -> tuple[bytes, Path | None]:
    """libseccomp's BPF program for ``seccomp``, and the cache file that holds it (None when
    the cache cannot be used).

    Building it costs tens of milliseconds (rules for every architecture of the filter);
    reading it back well under one. The cache is used only while it is a directory private to
    us; a program is written to a temp file and renamed into place.
    """
    path = cache_dir / f"{_cache_key(seccomp)}.bpf"
    data = read_program(path)
    if data is not None:
        return data, path
    with compile_filter(seccomp) as filter_:
        data = filter_.export_bpf()
    try:
        cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private_dir(cache_dir):
            return data, None
        tmp = cache_dir / f".{path.name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        return data, None  # a cache that cannot be written only costs time
    return data, path


def program(seccomp: Mapping[str, Any], cache_dir: Path | None = DEFAULT_CACHE) -> bytes:
    """libseccomp's BPF program for ``seccomp``, through the cache in ``cache_dir`` (None: none)."""
    if cache_dir is None:
        with compile_filter(seccomp) as filter_:
            return filter_.export_bpf()
    return cached_program(seccomp, cache_dir)[0]


def _set_attr(ctx: int, attr: int, value: int, what: str) -> None:
    rc = _libseccomp().seccomp_attr_set(ctx, attr, value)
    if rc < 0:
        raise RuntimeFailure(f"seccomp: setting the {what} attribute failed: {os.strerror(-rc)}")


def load_bpf(bpf: bytes, flags: int = 0) -> None:
    """Install a program :meth:`Filter.export_bpf` produced (libseccomp's output, cached)."""
    if not bpf or len(bpf) % 8:
        raise InvalidArgument(f"seccomp: a BPF program of {len(bpf)} bytes is not whole instructions")
    number = _SYS_SECCOMP.get(platform.machine())
    if number is None:
        raise Unavailable(f"seccomp: no seccomp(2) number known for {platform.machine()}")
    buffer = ctypes.create_string_buffer(bpf, len(bpf))
    fprog = _SockFprog(len(bpf) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    rc = _libc.syscall(
        ctypes.c_long(number),
        ctypes.c_long(_SECCOMP_SET_MODE_FILTER),
        ctypes.c_long(flags),
        ctypes.byref(fprog),
    )
    if rc < 0:
        err = ctypes.get_errno()
        raise RuntimeFailure(f"seccomp(SECCOMP_SET_MODE_FILTER): {os.strerror(err)}")

"""The ``bpf(2)`` calls a cgroup device filter needs: load, attach, query, detach.

Python has no binding for bpf(2), so the ``union bpf_attr`` layouts are packed by hand here
(only the fields these commands read; the rest of the union stays zero, as the kernel requires).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import platform
import struct

__all__ = [
    "BPF_CGROUP_DEVICE",
    "BPF_F_ALLOW_MULTI",
    "BPF_PROG_TYPE_CGROUP_DEVICE",
    "attach_cgroup_program",
    "attached_program_ids",
    "detach_cgroup_program",
    "load_program",
    "program_fd_by_id",
]

_SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine(), 321)

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16

BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

_ATTR_SIZE = 128  # larger than every layout below; the kernel wants the tail zero
_LOG_SIZE = 1 << 16
_MAX_QUERY = 64

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char], what: str) -> int:
    result = int(_libc.syscall(_SYS_BPF, cmd, attr, _ATTR_SIZE))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"bpf {what}: {os.strerror(code)}")
    return result


def _attr(layout: str, *values: int | bytes) -> ctypes.Array[ctypes.c_char]:
    buf = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into(layout, buf, 0, *values)
    return buf


def load_program(prog_type: int, instructions: bytes, *, license: str = "Apache", name: str = "") -> int:
    """Load ``instructions`` (packed ``struct bpf_insn``) and return the program's fd (O_CLOEXEC).

    On a verifier refusal the call is repeated with a log, and the log is in the error.
    """
    if not instructions or len(instructions) % 8:
        raise ValueError(f"BPF program must be a non-empty multiple of 8 bytes, got {len(instructions)}")
    insns = ctypes.create_string_buffer(instructions, len(instructions))
    lic = ctypes.create_string_buffer(license.encode())
    prog_name = name.encode()[:15]

    def attempt(log: ctypes.Array[ctypes.c_char] | None) -> int:
        attr = _attr(
            "<IIQQIIQII16s",
            prog_type,
            len(instructions) // 8,
            ctypes.addressof(insns),
            ctypes.addressof(lic),
            1 if log is not None else 0,
            len(log) if log is not None else 0,
            ctypes.addressof(log) if log is not None else 0,
            0,
            0,
            prog_name,
        )
        return _bpf(BPF_PROG_LOAD, attr, "BPF_PROG_LOAD")

    try:
        return attempt(None)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EACCES):
            raise
        log = ctypes.create_string_buffer(_LOG_SIZE)
        with contextlib.suppress(OSError):
            attempt(log)
        text = log.value.decode(errors="replace").strip()
        raise OSError(exc.errno, f"{exc.strerror}; verifier log: {text or '(empty)'}") from None


def attach_cgroup_program(cgroup_fd: int, prog_fd: int, attach_type: int, flags: int = 0) -> None:
    _bpf(BPF_PROG_ATTACH, _attr("<IIII", cgroup_fd, prog_fd, attach_type, flags), "BPF_PROG_ATTACH")


def detach_cgroup_program(cgroup_fd: int, prog_fd: int, attach_type: int) -> None:
    _bpf(BPF_PROG_DETACH, _attr("<III", cgroup_fd, prog_fd, attach_type), "BPF_PROG_DETACH")


def attached_program_ids(cgroup_fd: int, attach_type: int) -> list[int]:
    """Ids of the programs attached directly to the cgroup (not inherited) for ``attach_type``."""
    ids = (ctypes.c_uint32 * _MAX_QUERY)()
    attr = _attr("<IIIIQI", cgroup_fd, attach_type, 0, 0, ctypes.addressof(ids), _MAX_QUERY)
    _bpf(BPF_PROG_QUERY, attr, "BPF_PROG_QUERY")
    (count,) = struct.unpack_from("<I", attr, 24)
    return list(ids[: min(count, _MAX_QUERY)])


def program_fd_by_id(prog_id: int) -> int:
    return _bpf(BPF_PROG_GET_FD_BY_ID, _attr("<I", prog_id), "BPF_PROG_GET_FD_BY_ID")

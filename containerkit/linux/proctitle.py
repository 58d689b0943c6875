"""A process's title as ``ps`` and ``docker top`` show it: ``/proc/<pid>/cmdline`` and ``comm``.

A forked Python process keeps the argv of the program it was forked from. The builtin init of a
container with ``init`` (PID 1, relaying signals and reaping) would show the host's command line
(a daemon's, a test runner's interpreter path) in ``docker top`` and in the container's ``ps``;
it is named instead as what it stands for, as dockerd shows its ``/sbin/docker-init -- cmd``.

The kernel is pointed at a new argv buffer with ``PR_SET_MM_MAP`` (the whole memory map given
back as it is, only ``arg_start``/``arg_end`` moved): unlike the single ``PR_SET_MM`` fields it
needs no CAP_SYS_RESOURCE, so it works in a user namespace and where the host withholds that
capability; it needs a kernel built with CONFIG_CHECKPOINT_RESTORE (EINVAL otherwise).
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

from containerkit.linux import _libc

__all__ = ["set_title"]

PR_SET_NAME = 15
PR_SET_MM = 35
PR_SET_MM_MAP = 14
_COMM_MAX = 15
_KEEP_EXE = 0xFFFF_FFFF
"""``exe_fd`` -1: leave ``/proc/self/exe`` as it is (changing it would need CAP_CHECKPOINT_RESTORE)."""


class _MmMap(ctypes.Structure):
    """``struct prctl_mm_map`` (include/uapi/linux/prctl.h)."""

    _fields_ = [
        *(
            (name, ctypes.c_uint64)
            for name in (
                "start_code",
                "end_code",
                "start_data",
                "end_data",
                "start_brk",
                "brk",
                "start_stack",
                "arg_start",
                "arg_end",
                "env_start",
                "env_end",
                "auxv",
            )
        ),
        ("auxv_size", ctypes.c_uint32),
        ("exe_fd", ctypes.c_uint32),
    ]


_held: list[ctypes.Array[ctypes.c_char]] = []
"""The buffers the kernel now reads the title from: they live as long as the process."""


def set_title(argv: Sequence[str], comm: str) -> None:
    """Make ``/proc/self/cmdline`` read ``argv`` and ``comm`` read ``comm`` (cut to 15 bytes).

    Raises OSError where the kernel refuses (EINVAL without CONFIG_CHECKPOINT_RESTORE)."""
    if not argv:
        raise ValueError("a process title needs at least one word")
    data = b"\0".join(word.encode() for word in argv) + b"\0"
    buf = ctypes.create_string_buffer(data, len(data))
    with open("/proc/self/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rindex(b")") + 2 :].split()

    def field(number: int) -> int:  # proc(5)'s 1-based numbering; the list starts at field 3
        return int(fields[number - 3])

    mm = _MmMap(
        start_code=field(26),
        end_code=field(27),
        start_data=field(45),
        end_data=field(46),
        start_brk=field(47),
        start_stack=field(28),
        arg_start=ctypes.addressof(buf),
        arg_end=ctypes.addressof(buf) + len(data),
        env_start=field(50),
        env_end=field(51),
        auxv=0,
        auxv_size=0,  # the auxiliary vector kept
        exe_fd=_KEEP_EXE,
    )
    lib = _libc.libc
    mm.brk = lib.current_break()  # last: the break as it is at the call
    lib.prctl(PR_SET_MM, PR_SET_MM_MAP, ctypes.addressof(mm), ctypes.sizeof(mm))
    _held.append(buf)
    name = ctypes.create_string_buffer(comm.encode()[:_COMM_MAX])
    lib.prctl(PR_SET_NAME, ctypes.addressof(name))

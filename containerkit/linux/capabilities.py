"""Linux capabilities: the name table, and applying a set to the calling process.

Order matters and follows runc: drop the bounding set while still privileged, switch user with
``PR_SET_KEEPCAPS`` so permitted survives, then ``capset`` the final sets and raise ambient ones.
"""

from __future__ import annotations

from collections.abc import Iterable

from containerkit.errors import InvalidArgument
from containerkit.linux import _libc

__all__ = [
    "CAPABILITIES",
    "apply_capabilities",
    "capability_mask",
    "capability_number",
    "current_capabilities",
    "drop_bounding",
    "known_capabilities",
    "last_cap",
    "normalize_capability",
]

# Numbers from linux/capability.h; the order is the kernel's.
CAPABILITIES: dict[str, int] = {
    name: number
    for number, name in enumerate(
        (
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_DAC_READ_SEARCH",
            "CAP_FOWNER",
            "CAP_FSETID",
            "CAP_KILL",
            "CAP_SETGID",
            "CAP_SETUID",
            "CAP_SETPCAP",
            "CAP_LINUX_IMMUTABLE",
            "CAP_NET_BIND_SERVICE",
            "CAP_NET_BROADCAST",
            "CAP_NET_ADMIN",
            "CAP_NET_RAW",
            "CAP_IPC_LOCK",
            "CAP_IPC_OWNER",
            "CAP_SYS_MODULE",
            "CAP_SYS_RAWIO",
            "CAP_SYS_CHROOT",
            "CAP_SYS_PTRACE",
            "CAP_SYS_PACCT",
            "CAP_SYS_ADMIN",
            "CAP_SYS_BOOT",
            "CAP_SYS_NICE",
            "CAP_SYS_RESOURCE",
            "CAP_SYS_TIME",
            "CAP_SYS_TTY_CONFIG",
            "CAP_MKNOD",
            "CAP_LEASE",
            "CAP_AUDIT_WRITE",
            "CAP_AUDIT_CONTROL",
            "CAP_SETFCAP",
            "CAP_MAC_OVERRIDE",
            "CAP_MAC_ADMIN",
            "CAP_SYSLOG",
            "CAP_WAKE_ALARM",
            "CAP_BLOCK_SUSPEND",
            "CAP_AUDIT_READ",
            "CAP_PERFMON",
            "CAP_BPF",
            "CAP_CHECKPOINT_RESTORE",
        )
    )
}
_BY_NUMBER = {number: name for name, number in CAPABILITIES.items()}


def normalize_capability(name: str) -> str:
    """``"net_admin"`` / ``"CAP_NET_ADMIN"`` -> ``"CAP_NET_ADMIN"``; unknown names are an error."""
    upper = name.strip().upper()
    full = upper if upper.startswith("CAP_") else f"CAP_{upper}"
    if full not in CAPABILITIES:
        raise InvalidArgument(f'unknown capability: "{full}"')
    return full


def capability_number(name: str) -> int:
    return CAPABILITIES[normalize_capability(name)]


def last_cap() -> int:
    """The highest capability this kernel knows (``/proc/sys/kernel/cap_last_cap``)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read().strip())
    except OSError:
        return max(CAPABILITIES.values())


def known_capabilities() -> list[str]:
    """Every capability name both this table and the running kernel know, in kernel order."""
    top = min(last_cap(), max(CAPABILITIES.values()))
    return [_BY_NUMBER[n] for n in range(top + 1)]


def capability_mask(names: Iterable[str]) -> int:
    """The 64-bit mask of a set of names (names the kernel does not know are skipped)."""
    top = last_cap()
    mask = 0
    for name in names:
        number = capability_number(name)
        if number <= top:
            mask |= 1 << number
    return mask


def current_capabilities(pid: int | str = "self") -> dict[str, int]:
    """A process's sets from ``/proc/<pid>/status``: ``{"CapEff": mask, "CapPrm": ..., ...}``."""
    with open(f"/proc/{pid}/status") as f:
        return {
            key: int(value.strip(), 16)
            for key, _, value in (line.partition(":") for line in f)
            if key.startswith("Cap")
        }


def drop_bounding(keep: int, *, lib: _libc.Libc | None = None) -> None:
    """Remove every capability not in ``keep`` from the bounding set (needs CAP_SETPCAP)."""
    lib = lib or _libc.libc
    for number in range(last_cap() + 1):
        if not keep & (1 << number):
            try:
                lib.prctl(_libc.PR_CAPBSET_DROP, number)
            except OSError as exc:
                raise OSError(exc.errno, f"drop {_BY_NUMBER.get(number, number)} from bounding set") from exc


def apply_capabilities(
    *,
    effective: int,
    permitted: int,
    inheritable: int,
    ambient: int = 0,
    lib: _libc.Libc | None = None,
) -> None:
    """Set the thread's sets, then raise ``ambient`` (each must be permitted and inheritable)."""
    lib = lib or _libc.libc
    lib.capset(effective, permitted, inheritable)
    lib.prctl(_libc.PR_CAP_AMBIENT, _libc.PR_CAP_AMBIENT_CLEAR_ALL)
    for number in range(last_cap() + 1):
        if ambient & (1 << number):
            try:
                lib.prctl(_libc.PR_CAP_AMBIENT, _libc.PR_CAP_AMBIENT_RAISE, number)
            except OSError as exc:
                raise OSError(exc.errno, f"raise ambient {_BY_NUMBER.get(number, number)}") from exc

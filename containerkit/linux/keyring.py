"""Kernel keyrings (keyctl(2)): give a process a session keyring of its own.

A process forked from the host keeps the host's session keyring, and through it whatever keys
a host login put there. runc makes every container join a fresh session keyring named
``_ses.<container id>`` (``KEYCTL_JOIN_SESSION_KEYRING``) and lets its owner search it, so a
later ``exec`` with the same name joins the container's own keyring, never the host's.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform

from containerkit.errors import RuntimeFailure

__all__ = ["describe", "join_session_keyring", "new_session_keyring", "set_permissions"]

KEYCTL_GET_KEYRING_ID = 0
KEYCTL_JOIN_SESSION_KEYRING = 1
KEYCTL_SETPERM = 5
KEYCTL_DESCRIBE = 6
KEY_SPEC_SESSION_KEYRING = -3
KEY_USR_SEARCH = 0x00080000

_SYS_KEYCTL = {"x86_64": 250, "aarch64": 219, "ppc64le": 288, "s390x": 280, "riscv64": 219}

_libc = ctypes.CDLL(None, use_errno=True)  # at import: a forked container init finds it ready
_libc.syscall.restype = ctypes.c_long


def _keyctl(*args: int | bytes | None) -> int:
    number = _SYS_KEYCTL.get(platform.machine())
    if number is None:
        raise OSError(errno.ENOSYS, f"keyctl: no syscall number known for {platform.machine()}")
    converted = [ctypes.c_long(a) if isinstance(a, int) else ctypes.c_char_p(a) for a in args]
    result = int(_libc.syscall(ctypes.c_long(number), *converted))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def join_session_keyring(name: str | None) -> int:
    """Join the session keyring called ``name`` (made if none is there to join; None: a new
    anonymous one); its serial."""
    try:
        return _keyctl(KEYCTL_JOIN_SESSION_KEYRING, None if name is None else name.encode())
    except OSError as exc:
        raise OSError(exc.errno, f"join session keyring {name!r}: {exc.strerror}") from None


def describe(key: int) -> tuple[str, int, int, int, str]:
    """``(type, uid, gid, permissions, description)`` of a key or keyring."""
    buffer = ctypes.create_string_buffer(512)
    try:
        size = _keyctl(KEYCTL_DESCRIBE, key, ctypes.addressof(buffer), len(buffer))
    except OSError as exc:
        raise OSError(exc.errno, f"describe key {key}: {exc.strerror}") from None
    text = buffer.raw[: max(0, min(size, len(buffer)) - 1)].decode(errors="replace")
    kind, uid, gid, perm, description = text.split(";", 4)
    return kind, int(uid), int(gid), int(perm, 16), description


def set_permissions(key: int, permissions: int) -> None:
    try:
        _keyctl(KEYCTL_SETPERM, key, permissions)
    except OSError as exc:
        raise OSError(exc.errno, f"set permissions {permissions:#x} on key {key}: {exc.strerror}") from None


def new_session_keyring(name: str) -> int | None:
    """runc's session keyring step: join ``name``, then let its owner search it.

    None where the kernel has no keyrings (ENOSYS), which runc also tolerates; any other
    failure is a ``RuntimeFailure`` (a keyring with the wrong permissions must not be used).
    """
    try:
        serial = join_session_keyring(name)
    except OSError as exc:
        if exc.errno == errno.ENOSYS:
            return None
        raise RuntimeFailure(str(exc)) from None
    try:
        permissions = describe(serial)[3]
        set_permissions(serial, permissions | KEY_USR_SEARCH)
    except (OSError, ValueError) as exc:
        raise RuntimeFailure(f"session keyring {name!r}: {exc}") from None
    return serial

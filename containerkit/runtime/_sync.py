"""The one error report a child sends its parent, and the exit code an error stands for.

Every process the runtime forks to set something up (the container's init, the user namespace
helper, an exec helper) says why it failed the same way, as runc's sync pipe does: one JSON
object ``{"kind", "message"}`` on a close-on-exec pipe, written once just before
it leaves. An ``exec`` that succeeds closes the pipe, so the parent reads EOF: no report, no
error. The parent rebuilds the error of the same class (``kind``, as the daemon and client map
it), so a missing command is :class:`~containerkit.errors.CommandNotFound` on both sides. A
:class:`PermissionDenied` has :class:`~containerkit.errors.RuntimeFailure`'s kind: the child's
exit status (126) tells it apart, or the reader's context (an exec's failure is 126).

The exit code of an error follows docker: 127 for a command that does not exist, 126 for one
that cannot be executed, and otherwise what the caller's context says (the init exits 128,
docker's own failures are 125). That rule is :func:`exit_code_for`, and nowhere else.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import time
from typing import Any

from containerkit.errors import CommandNotFound, ContainerkitError, RuntimeFailure, Timeout, error_class_for

__all__ = [
    "NOT_EXECUTABLE",
    "NOT_FOUND",
    "PermissionDenied",
    "decode",
    "encode",
    "exit_code_for",
    "read_all",
    "read_report",
    "report",
    "status_exit_code",
]

NOT_FOUND = 127
"""Exit code for a command that does not exist (docker, POSIX shells)."""
NOT_EXECUTABLE = 126
"""Exit code for a command that exists but cannot be executed."""
_INIT_FAILED = 128


class PermissionDenied(RuntimeFailure):
    """The command exists but cannot be executed (docker exits 126)."""


def exit_code_for(error: BaseException | type[BaseException], *, otherwise: int = _INIT_FAILED) -> int:
    """The exit code a failure to start stands for: 127, 126, or ``otherwise``."""
    cls = error if isinstance(error, type) else type(error)
    if issubclass(cls, CommandNotFound):
        return NOT_FOUND
    if issubclass(cls, PermissionDenied):
        return NOT_EXECUTABLE
    return otherwise


def status_exit_code(status: int) -> int:
    """The exit code of a ``waitpid`` status: the process's own, or 128+n after signal n (a shell's)."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def encode(error: BaseException, *, context: str = "", **extra: Any) -> bytes:
    """The report of ``error``; ``context`` prefixes the message of an unexpected exception."""
    if isinstance(error, ContainerkitError):
        kind, message = error.kind, error.message
    else:
        text = str(error) or type(error).__name__
        kind, message = RuntimeFailure.kind, f"{context}: {text}" if context else text
    return json.dumps({"kind": kind, "message": message, **extra}).encode()


def report(fd: int, error: BaseException, *, context: str = "") -> None:
    """Write the report of ``error`` to ``fd``; a parent that is gone is no one to tell."""
    with contextlib.suppress(BaseException):
        os.write(fd, encode(error, context=context))


def decode(raw: bytes, *, default: str = "failed") -> ContainerkitError | None:
    """The error a report holds; None for no report (EOF: the exec succeeded)."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
        kind, message = str(data.get("kind") or RuntimeFailure.kind), str(data.get("message") or "")
    except (ValueError, AttributeError):
        kind, message = RuntimeFailure.kind, raw.decode(errors="replace")
    return error_class_for(500, kind)(message or default)


def read_all(fd: int, timeout: float | None = None, *, what: str = "child") -> bytes:
    """Everything written to ``fd`` until EOF; :class:`Timeout` (naming ``what``) after ``timeout``."""
    return _read(fd, timeout, what, to_newline=False)


def read_line(fd: int, timeout: float | None = None, *, what: str = "child") -> bytes:
    """What is written to ``fd`` up to a newline (kept) or EOF, whichever comes first, for a
    writer that may keep the pipe open after its message; :class:`Timeout` after ``timeout``."""
    return _read(fd, timeout, what, to_newline=True)


def _read(fd: int, timeout: float | None, what: str, *, to_newline: bool) -> bytes:
    deadline = None if timeout is None else time.monotonic() + timeout
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    chunks: list[bytes] = []
    while True:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not poller.poll(int(remaining * 1000) + 1):
                raise Timeout(f"{what} did not report within {timeout} s")
        chunk = os.read(fd, 65536)
        chunks.append(chunk)
        if not chunk or (to_newline and chunk.endswith(b"\n")):
            return b"".join(chunks)


def read_report(
    fd: int, timeout: float | None = None, *, what: str = "child", default: str = "failed"
) -> ContainerkitError | None:
    """Wait for the child's report on ``fd``: its error, or None when it closed the pipe unsaid."""
    return decode(read_all(fd, timeout, what=what), default=default)

"""Process identity that survives pid reuse: start times from ``/proc/<pid>/stat`` and pidfds.

A pid alone names whichever process holds it *now*. containerkit records the pid together with
its start time (clock ticks since boot, field 22 of ``/proc/<pid>/stat``) and only trusts the pid
while that start time still matches. A pidfd opened and then checked against the start time names
the recorded process for good, so waiting and signalling through it cannot hit a newcomer.
"""

from __future__ import annotations

import errno
import os
import select
import signal

__all__ = [
    "ProcessStat",
    "default_signals",
    "is_alive",
    "open_pidfd",
    "read_stat",
    "send_signal",
    "start_time",
    "wait_pidfd",
]


class ProcessStat:
    """The two fields of ``/proc/<pid>/stat`` containerkit needs: state letter and start time."""

    __slots__ = ("pid", "start_time", "state")

    def __init__(self, pid: int, state: str, start_time: int) -> None:
        self.pid = pid
        self.state = state
        self.start_time = start_time

    @property
    def exited(self) -> bool:
        """A zombie (or dying) process has run its course even though its pid is still taken."""
        return self.state in ("Z", "X", "x")


def read_stat(pid: int, *, proc: str = "/proc") -> ProcessStat | None:
    """The stat of ``pid``, or None when no such process exists."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) may hold spaces and parentheses: everything after the last ')' is fixed.
    fields = raw[raw.rindex(b")") + 2 :].split()
    return ProcessStat(pid, fields[0].decode(), int(fields[19]))


def start_time(pid: int, *, proc: str = "/proc") -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None when it does not exist."""
    stat = read_stat(pid, proc=proc)
    return None if stat is None else stat.start_time


def is_alive(pid: int | None, expected_start_time: int | None, *, proc: str = "/proc") -> bool:
    """True while ``pid`` is the very process that started at ``expected_start_time`` and has not exited."""
    if not pid or expected_start_time is None:
        return False
    stat = read_stat(pid, proc=proc)
    return stat is not None and stat.start_time == expected_start_time and not stat.exited


def open_pidfd(pid: int, expected_start_time: int | None = None) -> int | None:
    """A pidfd for ``pid`` (O_CLOEXEC), or None when it is gone or its start time does not match.

    The start time is checked *after* opening: if it matches then, the fd refers to the recorded
    process, whatever happens to the pid number later.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    if expected_start_time is not None and start_time(pid) != expected_start_time:
        os.close(fd)
        return None
    return fd


def wait_pidfd(fd: int, timeout: float | None) -> bool:
    """Block until the process behind ``fd`` exits; False when ``timeout`` seconds passed first."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    ms = None if timeout is None else max(0, int(timeout * 1000))
    while True:
        try:
            return bool(poller.poll(ms))
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for clarity
            continue


def send_signal(pid: int, sig: int, expected_start_time: int | None) -> bool:
    """Signal the recorded process through a pidfd; False when it no longer exists."""
    fd = open_pidfd(pid, expected_start_time)
    if fd is None:
        return False
    try:
        signal.pidfd_send_signal(fd, sig)
    except ProcessLookupError:
        return False
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            return False
        raise
    finally:
        os.close(fd)
    return True


_PYTHON_CHANGED = ("SIGPIPE", "SIGXFSZ", "SIGINT", "SIGCHLD", "SIGTERM", "SIGHUP", "SIGQUIT")


def ensure_stdio() -> None:
    """Put ``/dev/null`` on whichever of fds 0-2 is closed.

    A process started with closed stdio (a detached daemon, a service manager) hands those
    numbers out to the next files and sockets it opens, and the first ``dup2`` onto stdio in a
    child (a shim redirecting its output) then silently replaces them.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            os.set_inheritable(fd, True)


def install_stdio(stdio: tuple[int, int, int]) -> None:
    """Put ``stdio`` (stdin, stdout, stderr fds) on 0/1/2 and close the originals above 2."""
    for target, fd in enumerate(stdio):
        os.dup2(fd, target)
    for fd in set(stdio):
        if fd > 2:
            os.close(fd)


def move_above_stdio(fd: int) -> int:
    """``fd`` itself when it is 3 or more, else a close-on-exec copy numbered 3 or more (the
    original is closed): stdio is about to be replaced."""
    if fd > 2:
        return fd
    import fcntl

    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.close(fd)
    return moved


def default_signals() -> None:
    """Reset dispositions Python (or a parent) changed, before exec'ing someone else's program.

    An ignored signal stays ignored across execve: without this a container would inherit
    Python's ignored SIGPIPE, or the spawner's ignored SIGINT.
    """
    for name in _PYTHON_CHANGED:
        signal.signal(getattr(signal, name), signal.SIG_DFL)

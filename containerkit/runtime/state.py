"""The on-disk runtime state of one container, as its shim leaves it in the state dir.

Files, all written atomically (temp file + rename) so a reader never sees half a record:

``state.json``
    written by the shim when it starts (``shim_pid``, ``shim_start_time``) and again once the
    container's process has exec'd (``pid``, ``pid_start_time``, ``started_at``).
``exit.json``
    written by the shim after the container exited and everything it held was cleaned up:
    ``exit_code`` (128+n for signal n), ``oom_killed``, ``finished_at``, ``error``.
``container.log``
    the json-file log (see :mod:`containerkit.runtime.logs`).
``stdin``
    a FIFO the shim forwards to the container's stdin (only with ``stdin_open``).
``control``
    a FIFO of requests to the shim, one line each (only with a tty): ``resize ROWS COLS``.

Any process can read this back: the pids are trusted only while their start times match, so a
recycled pid is never mistaken for the shim or the container. Above the runtime these names
are not spelled: :class:`containerkit.runtime.task.Task` is the one user of this protocol.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import time
from pathlib import Path
from typing import Any, Literal

from containerkit._model import model
from containerkit.errors import NotFound, NotRunning, RuntimeFailure, Timeout
from containerkit.linux import proc
from containerkit.runtime import trace

__all__ = [
    "CONTROL_FIFO",
    "EXIT_CLAIM",
    "EXIT_FILE",
    "LOG_FILE",
    "STATE_FILE",
    "STDIN_FIFO",
    "PendingWrite",
    "RuntimeState",
    "exit_claimed",
    "make_private_dir",
    "read_exit",
    "read_json",
    "read_state",
    "wait_for_exit",
    "write_json_atomic",
]

STATE_FILE = "state.json"
EXIT_FILE = "exit.json"
LOG_FILE = "container.log"
STDIN_FIFO = "stdin"
CONTROL_FIFO = "control"

PRIVATE_DIR_MODE = 0o700
"""A state dir: its bundle's ``config.json`` holds the container's environment (secrets)."""

DEAD_EXIT_CODE = 137
"""What a container whose shim vanished without a record exited with, as far as anyone can tell."""

Status = Literal["created", "running", "exited", "dead"]


@model(kw_only=True)
class RuntimeState:
    """What the state dir says about a container right now.

    ``created``: no shim has run yet. ``running``: the shim is alive (the container may be
    starting or finishing). ``exited``: the shim recorded an exit. ``dead``: the shim is gone
    without a record; ``exit_code`` is then 137 and ``pid_alive`` tells whether an orphaned
    container process is still there to be killed.
    """

    status: Status
    pid: int | None = None
    pid_start_time: int | None = None
    shim_pid: int | None = None
    shim_start_time: int | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    pid_alive: bool = False

    @property
    def running(self) -> bool:
        return self.status == "running"


def make_private_dir(path: Path, mode: int = PRIVATE_DIR_MODE) -> Path:
    """``mkdir -p path`` whose last component has exactly ``mode`` (not widened by the umask);
    an existing directory is tightened to it, so a root made by an older version is fixed."""
    path = Path(path)
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    if (path.stat().st_mode & 0o7777) != mode:
        os.chmod(path, mode)
    return path


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, json.dumps(data).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


class PendingWrite:
    """A :func:`write_json_atomic` split in two: the temp file is created now, filled and
    renamed over ``path`` by :meth:`commit`.

    Creating a file is the slow part on some disks (up to a millisecond on ext4 here); the shim
    creates its next record's file while it waits for something else, so the write on the
    critical path is a ``write`` and a ``rename``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp = path.with_name(f".{path.name}.{os.getpid()}.next.tmp")
        self._fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)

    def commit(self, data: dict[str, Any]) -> None:
        try:
            os.write(self._fd, json.dumps(data).encode())
        finally:
            os.close(self._fd)
            self._fd = -1
        os.replace(self._tmp, self.path)

    def discard(self) -> None:
        if self._fd != -1:
            os.close(self._fd)
            self._fd = -1
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when the file does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise RuntimeFailure(f"corrupt runtime state file {path}: {exc}") from None
    if not isinstance(value, dict):
        raise RuntimeFailure(f"corrupt runtime state file {path}: expected an object")
    return value


def read_exit(state_dir: Path) -> dict[str, Any] | None:
    """The shim's exit record, or None while there is none."""
    return read_json(Path(state_dir) / EXIT_FILE)


def read_state(state_dir: Path) -> RuntimeState:
    """Classify the container from its state dir; safe to call from any process at any time."""
    state_dir = Path(state_dir)
    record = read_json(state_dir / STATE_FILE) or {}
    common: dict[str, Any] = {
        "pid": record.get("pid"),
        "pid_start_time": record.get("pid_start_time"),
        "shim_pid": record.get("shim_pid"),
        "shim_start_time": record.get("shim_start_time"),
        "started_at": record.get("started_at"),
    }
    exited = read_exit(state_dir)
    if exited is None and not record:
        return RuntimeState(status="created")
    if exited is None and proc.is_alive(record.get("shim_pid"), record.get("shim_start_time")):
        return RuntimeState(status="running", pid_alive=_pid_alive(record), **common)
    if exited is None:
        # The shim may have written exit.json and exited between the two reads above.
        exited = read_exit(state_dir)
    if exited is None:
        return RuntimeState(
            status="dead",
            exit_code=DEAD_EXIT_CODE,
            error="the container's shim exited without recording an exit status",
            pid_alive=_pid_alive(record),
            **common,
        )
    return RuntimeState(
        status="exited",
        exit_code=int(exited["exit_code"]),
        oom_killed=bool(exited.get("oom_killed", False)),
        finished_at=exited.get("finished_at"),
        error=exited.get("error") or None,
        pid_alive=_pid_alive(record),
        **common,
    )


def _pid_alive(record: dict[str, Any]) -> bool:
    return proc.is_alive(record.get("pid"), record.get("pid_start_time"))


def wait_for_exit(state_dir: Path, timeout: float | None = None, *, exit_fd: int | None = None) -> int:
    """Block until the container's exit is recorded and handled (its shim is done with it) and
    return the exit code the shim recorded.

    Works from any process, not only the shim's parent: it waits on a pidfd of the shim (checked
    against its start time), then reads ``exit.json``. A shim that recorded the exit but still
    runs the container's exit command is waited for too: its exit means the exit is handled.
    ``exit_fd``: the end of the shim's ready pipe its starter kept
    (``start_container(keep_exit_fd=True)``), which reads EOF as soon as the exit is recorded and
    handled, a millisecond or two before the shim's process is gone.
    Raises :class:`Timeout` after ``timeout`` seconds, :class:`NotRunning` for a container that
    was never started and :class:`NotFound` for one its exit command removed.
    """
    state_dir = Path(state_dir)
    deadline = None if timeout is None else time.monotonic() + timeout
    state = read_state(state_dir)
    if state.status == "created":
        if not state_dir.exists():
            raise NotFound(f"container in {state_dir} was removed")
        raise NotRunning(f"container in {state_dir} was never started")
    if state.status in ("running", "exited") and state.shim_pid is not None:
        fd = proc.open_pidfd(state.shim_pid, state.shim_start_time)
        if fd is not None:
            try:
                if exit_fd is not None and _handled_before_gone(exit_fd, fd, _left(deadline), state_dir):
                    exited = read_exit(state_dir)
                    if exited is not None:
                        trace.mark("engine.exit_seen")
                        return int(exited["exit_code"])
                    # EOF without a record: the shim died; its pidfd tells when it is gone
                if not proc.wait_pidfd(fd, _left(deadline)):
                    raise Timeout(f"container in {state_dir} still running after {timeout} s")
            finally:
                os.close(fd)
            trace.mark("engine.exit_seen")
            # The shim is gone; what it recorded is the answer (one read, not a full classify).
            exited = read_exit(state_dir)
            if exited is not None:
                return int(exited["exit_code"])
            if not state_dir.exists():  # its exit command removed it (auto-remove)
                raise NotFound(f"container in {state_dir} was removed when it exited")
            if state.exit_code is not None:  # its restart policy started it again meanwhile
                return state.exit_code
        state = read_state(state_dir)
    if state.exit_code is None:
        raise NotRunning(f"container in {state_dir} was started again before its exit was read")
    return state.exit_code


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _handled_before_gone(exit_fd: int, pidfd: int, timeout: float | None, state_dir: Path) -> bool:
    """Wait for EOF on ``exit_fd`` or for the shim behind ``pidfd`` to be gone: True for the
    EOF, False when the shim went first; :class:`Timeout` after ``timeout`` seconds."""
    poller = select.poll()
    poller.register(exit_fd, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    events = poller.poll(None if timeout is None else int(timeout * 1000))
    if not events:
        raise Timeout(f"container in {state_dir} still running after {timeout} s")
    return any(fd == exit_fd for fd, _mask in events)


EXIT_CLAIM = "exit.claim"
"""Held (a shared flock) by a live process that will handle the container's exit itself: the
shim then runs no exit command (``Task.claim_exit``)."""


def exit_claimed(state_dir: Path) -> bool:
    """Whether a live process holds the container's exit claim (the shim asks, at the exit)."""
    try:
        fd = os.open(Path(state_dir) / EXIT_CLAIM, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False

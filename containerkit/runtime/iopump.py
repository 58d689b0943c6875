"""The shim's IO: the container's stdio, the log it writes, the stdin and control FIFOs.

The shim holds the other end of every stdio fd of the container (pipes, or a pty master whose
slave is the container's terminal) and is the only process that does: :class:`IOPump` moves
output to the log, bytes written to the ``stdin`` FIFO to the container's stdin (closing it
after the first writer leaves with ``stdin_once``), and ``resize R C`` lines of the ``control``
FIFO to the terminal (any process may ask, with :func:`request_resize`). After the init exits,
output still buffered in the pipes (or written by processes it left behind) is drained for at
most :data:`DRAIN_SECONDS`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import struct
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

from containerkit.runtime import logs, state

__all__ = ["DRAIN_SECONDS", "IOPump", "request_resize"]

DRAIN_SECONDS = 2.0
"""After the init exits, how long output from processes it left behind is still collected."""

_MAX_CONTROL_LINE = 256
_MAX_PENDING_STDIN = 1 << 20


def request_resize(state_dir: Path, rows: int, cols: int) -> bool:
    """Ask the shim of a tty container to set its terminal to ``rows`` x ``cols``.

    Any process may ask (the pty master lives in the shim). False when no shim is listening
    (the container is not running, or has no tty). The line is shorter than ``PIPE_BUF``, so
    requests of concurrent callers never mix; the shim applies it within its next poll.
    """
    try:
        fd = os.open(state_dir / state.CONTROL_FIFO, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENXIO):  # no FIFO, or no shim reading it
            return False
        raise
    try:
        os.write(fd, f"resize {rows} {cols}\n".encode())
    except OSError as exc:
        if exc.errno in (errno.EPIPE, errno.EAGAIN):  # the shim left, or stopped reading
            return False
        raise
    finally:
        os.close(fd)
    return True


class IOPump:
    """The shim's side of one container's stdio; ``-1`` marks an fd it does not (or no longer) hold.

    ``out_fd``/``err_fd``/``in_fd``: the container's stdout, stderr and stdin (one pty master
    for all three with a tty); ``fifo_fd``/``control_fd``: the FIFOs in the state dir;
    ``child_fds``: the container's ends, closed once the container holds them.
    """

    def __init__(self, state_dir: Path, *, tty: bool, stdin_open: bool, stdin_once: bool) -> None:
        self.state_dir = state_dir
        self.tty = tty
        self.stdin_open = stdin_open
        self.stdin_once = stdin_once
        self.child_fds: list[int] = []
        self.out_fd = -1
        self.err_fd = -1
        self.in_fd = -1
        self.fifo_fd = -1
        self.control_fd = -1
        self._control_pending = b""

    def fds(self) -> set[int]:
        """The shim's fds a forked child must close."""
        return {self.out_fd, self.err_fd, self.in_fd, self.fifo_fd, self.control_fd} - {-1}

    # -- opening -----------------------------------------------------------------------

    def open_fifos(self) -> None:
        """The ``stdin`` FIFO (with stdin open) and the ``control`` FIFO (with a tty)."""
        if self.stdin_open:
            path = self.state_dir / state.STDIN_FIFO
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            os.mkfifo(path, 0o600)
            # O_RDWR: opening never blocks and, without stdin_once, the last writer leaving is no EOF.
            flags = os.O_RDONLY if self.stdin_once else os.O_RDWR
            self.fifo_fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC)
        if self.tty:  # only a tty container has something to control: its window size
            path = self.state_dir / state.CONTROL_FIFO
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            os.mkfifo(path, 0o600)
            # O_RDWR: opening never blocks, and a writer that leaves is no EOF.
            self.control_fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)

    def make_pipes(self) -> tuple[int, int, int]:
        """The container's stdin, stdout, stderr; the shim keeps the other ends."""
        if self.stdin_open:
            stdin_r, self.in_fd = os.pipe2(os.O_CLOEXEC)
            os.set_blocking(self.in_fd, False)
        else:
            stdin_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self.out_fd, stdout_w = os.pipe2(os.O_CLOEXEC)
        self.err_fd, stderr_w = os.pipe2(os.O_CLOEXEC)
        self.child_fds = [stdin_r, stdout_w, stderr_w]
        return stdin_r, stdout_w, stderr_w

    def make_pty(self) -> tuple[int, int, int]:
        """A terminal: the slave is the container's stdio, the master ours."""
        master, slave = os.openpty()
        os.set_inheritable(master, False)
        os.set_inheritable(slave, False)
        self.adopt_terminal(master)
        self.child_fds = [slave]
        return slave, slave, slave

    def make_null(self) -> tuple[int, int, int]:
        """``/dev/null`` stdio, for a runtime that makes the terminal itself (runc's console)."""
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self.child_fds = [null]
        return null, null, null

    def adopt_terminal(self, master: int) -> None:
        """The pty master: the container's output, and its input with stdin open."""
        self.out_fd = master
        if self.stdin_open:
            self.in_fd = master

    def close_child_fds(self) -> None:
        for fd in self.child_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.child_fds = []

    def close(self) -> None:
        self.close_child_fds()
        for fd in self.fds():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.out_fd = self.err_fd = self.in_fd = self.fifo_fd = self.control_fd = -1

    # -- running -----------------------------------------------------------------------

    def run(self, log: logs.LogSink, pidfd: int, reap: Callable[[], int | None]) -> int:
        """Move output to ``log`` and stdin to the container until the init exits; its status.

        ``pidfd`` turns readable when the init exits; ``reap`` then returns its wait status
        (None: not yet). After the exit, output still buffered in the pipes (or written by
        processes the init left behind) is collected until EOF or for at most
        :data:`DRAIN_SECONDS`.
        """
        readers: dict[int, logs.Stream] = {self.out_fd: "stdout"}
        if self.err_fd != -1:
            readers[self.err_fd] = "stderr"
        pending = b""
        status: int | None = None
        deadline = 0.0
        while True:
            if status is not None and (not readers or time.monotonic() >= deadline):
                return status
            wanted = dict.fromkeys(readers, select.POLLIN)
            if status is None:
                wanted[pidfd] = select.POLLIN
            if self.fifo_fd != -1 and len(pending) < _MAX_PENDING_STDIN:
                wanted[self.fifo_fd] = select.POLLIN
            if self.control_fd != -1:
                wanted[self.control_fd] = select.POLLIN
            if pending and self.in_fd != -1:
                wanted[self.in_fd] = wanted.get(self.in_fd, 0) | select.POLLOUT
            poller = select.poll()
            for fd, mask in wanted.items():
                poller.register(fd, mask)
            timeout = None if status is None else max(1, int((deadline - time.monotonic()) * 1000))
            for fd, events in poller.poll(timeout):
                # With a tty the pty master is both output and stdin: only read it when
                # poll says it is readable, not when it was polled for writing only.
                if fd in readers and events & (select.POLLIN | select.POLLHUP | select.POLLERR):
                    data = _read_some(fd)
                    if data:
                        log.write(readers[fd], data)
                    elif data is not None:
                        del readers[fd]
                if fd == pidfd:
                    status = reap()
                    if status is not None:
                        deadline = time.monotonic() + DRAIN_SECONDS
                        pending = b""
                        self._close_fifo()
                        self._close_stdin()
                        self._close_control()
                if fd == self.fifo_fd and fd != -1:
                    data = _read_some(fd)
                    if data:
                        pending += data
                    elif data is not None:  # every writer left a stdin_once FIFO
                        self._close_fifo()
                        if not pending:
                            self._close_stdin()
                if fd == self.control_fd and fd != -1:
                    self._read_control()
                if fd == self.in_fd and fd != -1 and events & ~select.POLLIN and pending:
                    pending = self._write_stdin(pending)
                    if not pending and self.fifo_fd == -1:
                        self._close_stdin()

    def _write_stdin(self, pending: bytes) -> bytes:
        try:
            written = os.write(self.in_fd, pending)
        except BlockingIOError:
            return pending
        except OSError as exc:
            if exc.errno in (errno.EPIPE, errno.EIO):
                return b""  # the container closed its stdin: drop what it will never read
            raise
        return pending[written:]

    def _close_fifo(self) -> None:
        if self.fifo_fd != -1:
            os.close(self.fifo_fd)
            self.fifo_fd = -1

    def _close_stdin(self) -> None:
        if self.in_fd == -1 or self.in_fd == self.out_fd:
            return  # a pty has no separate stdin to close
        os.close(self.in_fd)
        self.in_fd = -1

    def _close_control(self) -> None:
        if self.control_fd != -1:
            os.close(self.control_fd)
            self.control_fd = -1

    def _read_control(self) -> None:
        data = _read_some(self.control_fd)
        if not data:
            return
        lines = (self._control_pending + data).split(b"\n")
        self._control_pending = lines.pop()
        if len(self._control_pending) > _MAX_CONTROL_LINE:
            self._control_pending = b""  # not a request of ours: skip to the next line
        for line in lines:
            self._control(line)

    def _control(self, line: bytes) -> None:
        words = line.split()
        if len(words) == 3 and words[0] == b"resize" and words[1].isdigit() and words[2].isdigit():
            rows, cols = int(words[1]), int(words[2])
            if rows <= 0xFFFF and cols <= 0xFFFF and self.out_fd != -1:
                with contextlib.suppress(OSError):  # the terminal is gone: the container is exiting
                    fcntl.ioctl(self.out_fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
                return
        print(f"control: ignored request {line[:80]!r}", file=sys.stderr)


def _read_some(fd: int) -> bytes | None:
    """Up to 64 KiB; b"" at EOF (or a pty whose slaves all closed), None when nothing is there."""
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return None
    except OSError as exc:
        if exc.errno == errno.EIO:
            return b""
        raise

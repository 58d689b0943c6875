"""Attaching the terminal to a container or an exec: output, stdin, raw mode and window size.

A local container's output is followed in its json-file log (the shim owns its stdio); stdin
goes to the shim's ``stdin`` FIFO through the Engine's ``attach(stdin=True)``. A remote
container's output and stdin share one hijacked attach connection. An exec's stdio are pipes
or a pty master in this process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import struct
import sys
import termios
import threading
from collections.abc import Callable, Iterable, Iterator
from types import FrameType
from typing import TYPE_CHECKING

from containerkit._inprocess import engine_container

if TYPE_CHECKING:
    from containerkit.api import AttachStream, ContainerHandle, ExecHandle
    from containerkit.engine.containers import Container

__all__ = [
    "attach_container",
    "attach_exec",
    "close_output",
    "follow_output",
    "open_output",
    "raw_terminal",
    "write_output",
]


def write_output(stream: str, chunk: bytes) -> None:
    out = sys.stderr if stream == "stderr" else sys.stdout
    out.buffer.write(chunk)
    out.flush()


@contextlib.contextmanager
def raw_terminal(fd: int, enabled: bool = True) -> Iterator[None]:
    """The terminal on ``fd`` in raw mode for the block (keys go to the container as typed)."""
    if not enabled or not os.isatty(fd):
        yield
        return
    import tty

    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSANOW)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _window_size() -> bytes | None:
    for fd in (sys.stdout.fileno(), sys.stdin.fileno()):
        if os.isatty(fd):
            return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    return None


def _resize_exec(process: ExecHandle) -> Callable[[], None]:
    """Set the exec's terminal to our size (a pty here, or the daemon's)."""

    def apply() -> None:
        from containerkit.errors import ContainerkitError

        size = _window_size()
        if size is None:
            return
        rows, cols = struct.unpack("HHHH", size)[:2]
        if (rows, cols) != (0, 0):
            with contextlib.suppress(ContainerkitError):  # it exited meanwhile
                process.resize(rows, cols)

    return apply


@contextlib.contextmanager
def _track_window(apply: Callable[[], None]) -> Iterator[None]:
    """Apply our terminal's size now and on every SIGWINCH (main thread only)."""
    apply()
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_winch(_sig: int, _frame: FrameType | None) -> None:
        apply()

    previous = signal.signal(signal.SIGWINCH, on_winch)
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)


class _StdinPump:
    """Copies our stdin to ``write`` in a thread until EOF (then ``on_eof``) or :meth:`stop`."""

    def __init__(self, write: Callable[[bytes], None], on_eof: Callable[[], None]) -> None:
        self._write = write
        self._on_eof = on_eof
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._run, name="stdin", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from containerkit.errors import ContainerkitError

        try:
            fd = sys.stdin.fileno()
            while True:
                ready, _, _ = select.select([fd, self._stop_r], [], [])
                if self._stop_r in ready:
                    return
                data = os.read(fd, 65536)
                if not data:
                    self._on_eof()
                    return
                self._write(data)
        except (OSError, ContainerkitError):  # no stdin here, or the container's end went away
            return

    def stop(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(timeout=2)
        os.close(self._stop_r)
        os.close(self._stop_w)


# -- containers -------------------------------------------------------------------------------


def follow_output(
    container: ContainerHandle,
    *,
    tail: int | None = None,
    timestamps: bool = False,
    follow: bool = True,
    until_exit: Callable[[float], bool] | None = None,
) -> Iterator[tuple[str, bytes]]:
    """``(stream, chunk)`` from the container's log (local engine) or its ``logs`` stream.

    ``until_exit(timeout)`` waits up to ``timeout`` for the container to exit and says whether
    it did; it lets the follower see the end at once instead of at the next poll.
    """
    local = engine_container(container)
    if local is None:  # a remote container: the daemon streams it
        yield from container.logs(follow=follow, tail=tail, timestamps=timestamps, demux=True)
        return
    if not follow:
        for entry in local.log_entries(tail=tail):
            yield entry.stream, entry.render(timestamps)
        return
    if until_exit is None:
        yield from local.follow_output(tail=tail, timestamps=timestamps)
        return
    waiter = until_exit
    yield from local.follow_output(
        tail=tail, timestamps=timestamps, until=lambda: waiter(0.05), poll_interval=0.0
    )


class _ExitWatch:
    """Waits for a local container's exit in a thread (without auto-removing it)."""

    def __init__(self, container: Container) -> None:
        self._container = container
        self._done = threading.Event()
        self.error: BaseException | None = None
        threading.Thread(target=self._run, name="exit-watch", daemon=True).start()

    def _run(self) -> None:
        try:
            self._container.wait_exit()
        except BaseException as exc:
            self.error = exc
        finally:
            self._done.set()

    def wait(self, timeout: float) -> bool:
        return self._done.wait(timeout)


def _resize_container(container: ContainerHandle) -> Callable[[], None]:
    """Set the container's terminal to our size (its shim holds the pty, local or remote)."""

    def apply() -> None:
        from containerkit.errors import ContainerkitError

        size = _window_size()
        if size is None:
            return
        rows, cols = struct.unpack("HHHH", size)[:2]
        if (rows, cols) == (0, 0):
            return
        with contextlib.suppress(ContainerkitError):  # it exited meanwhile
            container.resize(rows, cols)

    return apply


@contextlib.contextmanager
def _proxy_signals(container: ContainerHandle, enabled: bool) -> Iterator[None]:
    """Like docker's ``--sig-proxy``: SIGINT/SIGTERM/SIGHUP received here go to the container.

    A second signal stops waiting (exit 130) and leaves the container as it is.
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    received = 0

    def forward(sig: int, _frame: FrameType | None) -> None:
        nonlocal received
        received += 1
        if received > 1:  # a container that ignores the signal: the second one detaches
            raise KeyboardInterrupt
        with contextlib.suppress(Exception):
            container.kill(sig)

    saved = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def open_output(container: ContainerHandle, *, stdin: bool = False) -> AttachStream | None:
    """A remote container's output, connected before it starts (then nothing is missed, and
    the daemon keeps an auto-remove container until the stream is drained); None for a local
    one, whose log :func:`attach_container` follows from the start. ``stdin``: the same
    connection also carries our stdin to the container."""
    if engine_container(container) is not None:
        return None
    return container.attach(stdin=stdin)


def close_output(output: AttachStream | None) -> None:
    """Drop what :func:`open_output` opened when the container will not be attached after all."""
    if output is not None:
        output.close()


def attach_container(
    container: ContainerHandle, *, stdin: bool, tty: bool, output: AttachStream | None = None
) -> int:
    """Stream a started container's output (and our stdin to it) until it exits; its exit code.

    ``output``: what :func:`open_output` opened before the start. With ``--rm`` the container
    is removed only after all its output has been read.
    """
    local = engine_container(container)
    watch = _ExitWatch(local) if local is not None else None
    pump: _StdinPump | None = None
    local_stdin: AttachStream | None = None
    try:
        with contextlib.ExitStack() as stack:
            if stdin and local is not None:
                # the output is followed below; this attach is only the write side of stdin
                local_stdin = local.attach(stdout=False, stderr=False, stdin=True)
                pump = _StdinPump(local_stdin.write_stdin, local_stdin.close_stdin)
            elif stdin and output is not None:
                pump = _StdinPump(output.write_stdin, output.close_stdin)
            if tty:
                stack.enter_context(raw_terminal(sys.stdin.fileno(), enabled=stdin))
                stack.enter_context(_track_window(_resize_container(container)))
            stack.enter_context(_proxy_signals(container, enabled=not tty))
            source: Iterable[tuple[str, bytes]] = (
                output
                if output is not None
                else follow_output(container, until_exit=watch.wait if watch else None)
            )
            for stream, chunk in source:
                write_output(stream, chunk)
    finally:
        if pump is not None:
            pump.stop()
        if local_stdin is not None:
            local_stdin.close()
        close_output(output)
    return int(container.wait())


# -- exec -------------------------------------------------------------------------------------


def attach_exec(process: ExecHandle, *, stdin: bool, tty: bool) -> int:
    """Pump our stdin into an exec and its output to ours until it ends; its exit code."""
    pump: _StdinPump | None = None
    with contextlib.ExitStack() as stack:
        if stdin:
            pump = _StdinPump(process.write_stdin, process.close_stdin)
        if tty:
            stack.enter_context(raw_terminal(sys.stdin.fileno(), enabled=stdin))
            stack.enter_context(_track_window(_resize_exec(process)))
        try:
            for stream, chunk in process.stream():
                write_output(stream, chunk)
        finally:
            if pump is not None:
                pump.stop()
    return process.wait()

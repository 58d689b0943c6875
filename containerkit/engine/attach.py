"""An attached in-process container: its output as ``(stream, chunk)`` pairs, and its stdin.

The shim owns the container's stdio: output is followed in the json-file log it writes, and
stdin goes into the ``stdin`` FIFO it reads (made when the container starts, so the FIFO is
opened on the first write, which may come before the start). Closing our end is EOF for a
``stdin_once`` container, as a daemon's half-closed attach connection is.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from types import TracebackType

from containerkit.errors import RuntimeFailure
from containerkit.runtime.logs import Stream
from containerkit.runtime.state import STDIN_FIFO, read_state
from containerkit.spec import ContainerStatus

__all__ = ["AttachStream"]

_OPEN_POLL = 0.02


def _may_run(state_dir: Path) -> bool:
    """Created (may start) or running; False once exited or removed."""
    return state_dir.exists() and ContainerStatus(read_state(state_dir).status) in (
        ContainerStatus.CREATED,
        ContainerStatus.RUNNING,
    )


class AttachStream(Iterator[tuple[Stream, bytes]]):
    """Iterate for ``(stream, chunk)`` until the container stops (a tty's output is all stdout);
    :meth:`write_stdin` and :meth:`close_stdin` when attached with ``stdin=True``."""

    def __init__(
        self,
        output: Iterator[tuple[Stream, bytes]],
        state_dir: Path,
        *,
        stdin: bool,
        stdin_open: bool,
        name: str,
    ) -> None:
        """``stdin``: attached with stdin; ``stdin_open``: the container was created with one."""
        self._frames = self._read(output)
        self._state_dir = state_dir
        self._name = name
        self._stdin_open = stdin
        self._has_stdin = stdin_open
        self._fd = -1

    @staticmethod
    def _read(output: Iterator[tuple[Stream, bytes]]) -> Generator[tuple[Stream, bytes], None, None]:
        yield from output  # closing this closes the log follower too

    def __next__(self) -> tuple[Stream, bytes]:
        return next(self._frames)

    def __enter__(self) -> AttachStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<AttachStream {self._name}>"

    def _open_fifo(self) -> bool:
        """Open the FIFO once the shim made it and reads it; False when the container is gone."""
        path = self._state_dir / STDIN_FIFO
        while self._fd == -1:
            try:
                # O_NONBLOCK: ENXIO instead of blocking while no shim reads it
                self._fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                os.set_blocking(self._fd, True)
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.ENXIO) or not _may_run(self._state_dir):
                    return False
                time.sleep(_OPEN_POLL)
        return True

    def write_stdin(self, data: bytes) -> None:
        """Send ``data`` to the container's stdin (it must have been created with ``stdin_open``)."""
        if not self._stdin_open:
            raise RuntimeFailure(f"attach to {self._name} has no open stdin (attach with stdin=True)")
        if not self._has_stdin:
            raise RuntimeFailure(f"container {self._name} has no stdin (create it with stdin_open)")
        if not self._open_fifo():
            raise RuntimeFailure(f"container {self._name} is not running: its stdin is closed")
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except BrokenPipeError:
            raise RuntimeFailure(f"container {self._name} closed its stdin") from None

    def close_stdin(self) -> None:
        """EOF for the container's stdin (with ``stdin_once``: for good); the output still comes in."""
        if not self._stdin_open or not self._has_stdin:
            return
        self._stdin_open = False
        # Nothing written yet still ends a stdin_once container's input: the shim sees EOF only
        # after a writer came and went.
        if self._fd != -1 or self._open_fifo():
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1

    def close(self) -> None:
        """Stop following the output and let go of stdin (the container runs on)."""
        self._stdin_open = False
        if self._fd != -1:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        self._frames.close()

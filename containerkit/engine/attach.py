"""An attached in-process container: its output as ``(stream, chunk)`` pairs, and its stdin.

The shim owns the container's stdio: output is followed in the json-file log it writes, and
stdin goes to the Task's stdin writer (opened on the first write, which may come before the
start). Closing it is EOF for a ``stdin_once`` container, as a daemon's half-closed attach
connection is.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from types import TracebackType

from containerkit.errors import RuntimeFailure
from containerkit.runtime.logs import Stream
from containerkit.runtime.task import StdinWriter

__all__ = ["AttachStream"]


class AttachStream(Iterator[tuple[Stream, bytes]]):
    """Iterate for ``(stream, chunk)`` until the container stops (a tty's output is all stdout);
    :meth:`write_stdin` and :meth:`close_stdin` when attached with ``stdin=True``."""

    def __init__(
        self,
        output: Iterator[tuple[Stream, bytes]],
        stdin_writer: StdinWriter,
        *,
        stdin: bool,
        stdin_open: bool,
        name: str,
    ) -> None:
        """``stdin``: attached with stdin; ``stdin_open``: the container was created with one."""
        self._frames = self._read(output)
        self._stdin = stdin_writer
        self._name = name
        self._stdin_open = stdin
        self._has_stdin = stdin_open

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

    def write_stdin(self, data: bytes) -> None:
        """Send ``data`` to the container's stdin (it must have been created with ``stdin_open``)."""
        if not self._stdin_open:
            raise RuntimeFailure(f"attach to {self._name} has no open stdin (attach with stdin=True)")
        if not self._has_stdin:
            raise RuntimeFailure(f"container {self._name} has no stdin (create it with stdin_open)")
        try:
            if not self._stdin.write(data):
                raise RuntimeFailure(f"container {self._name} is not running: its stdin is closed")
        except BrokenPipeError:
            raise RuntimeFailure(f"container {self._name} closed its stdin") from None

    def close_stdin(self) -> None:
        """EOF for the container's stdin (with ``stdin_once``: for good); the output still comes in."""
        if not self._stdin_open or not self._has_stdin:
            return
        self._stdin_open = False
        # Nothing written yet still ends a stdin_once container's input: the shim sees EOF only
        # after a writer came and went.
        self._stdin.close(eof=True)

    def close(self) -> None:
        """Stop following the output and let go of stdin (the container runs on)."""
        self._stdin_open = False
        self._stdin.close(eof=False)
        self._frames.close()

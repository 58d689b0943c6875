"""An attached container: its output as ``(stream, chunk)`` pairs, and a write side for its stdin.

The daemon copies what arrives on the hijacked connection into the container's stdin; a
half-close of our write side is its EOF, which closes the stdin of a ``stdin_once`` container
(``docker run -i``: the command sees the end of its input and exits).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from types import TracebackType

from containerkit.client import _frames
from containerkit.client._frames import Stream
from containerkit.client._transport import RawStream
from containerkit.errors import RuntimeFailure

__all__ = ["AttachStream"]


class AttachStream(Iterator[tuple[Stream, bytes]]):
    """Iterate for ``(stream, chunk)`` until the container stops (a tty's output is all stdout);
    :meth:`write_stdin` and :meth:`close_stdin` when attached with ``stdin=True``."""

    def __init__(self, raw: RawStream, *, tty: bool, stdin: bool, name: str) -> None:
        self.tty = tty
        self._raw = raw
        self._name = name
        self._stdin_open = stdin
        self._frames = self._read(_frames.raw(raw.chunks()) if tty else _frames.demux(raw.chunks()))

    def _read(self, frames: Iterator[tuple[Stream, bytes]]) -> Generator[tuple[Stream, bytes], None, None]:
        try:
            yield from frames
        finally:
            self._raw.close()

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
        self._raw.send(data)

    def close_stdin(self) -> None:
        """EOF for the container's stdin: a half-close, so the output still comes in after it."""
        if not self._stdin_open:
            return
        self._stdin_open = False
        self._raw.close_write()

    def close(self) -> None:
        """Drop the connection (the container runs on)."""
        self._stdin_open = False
        self._frames.close()
        self._raw.close()

"""An attached in-process container: its output as ``(stream, chunk)`` pairs, and its stdin.

The shim owns the container's stdio: output is followed in the json-file log it writes, and
stdin goes to the Task's stdin writer (opened on the first write, which may come before the
start). Closing it is EOF for a ``stdin_once`` container, as a daemon's half-closed attach
connection is.

With a tty, the detach keys (dockerd's ``ctrl-p,ctrl-q`` unless others are given) typed into
stdin end the attachment and leave the container running, as on a daemon's attach stream; the
daemon's streams use the same parsing and matching from here.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from types import TracebackType

from containerkit.errors import RuntimeFailure
from containerkit.runtime.logs import Stream
from containerkit.runtime.task import StdinWriter

__all__ = ["DEFAULT_DETACH_KEYS", "AttachStream", "DetachMatcher", "detach_key_bytes"]

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
"""dockerd's default detach sequence (``detachKeys`` in a request replaces it)."""

_CTRL_KEYS = [f"ctrl-{c}" for c in "@abcdefghijklmnopqrstuvwxyz[\\]^_"]
"""moby's ``term.ASCII``: ``ctrl-@`` is 0, ``ctrl-a`` 1, ... ``ctrl-_`` 31."""


def detach_key_bytes(keys: str) -> bytes:
    """moby's ``term.ToBytes``: a comma list of single characters, ``ctrl-<x>`` and ``DEL``.

    :class:`ValueError` names the key it does not know (the routes turn it into docker's 400).
    """
    codes = bytearray()
    for key in keys.split(","):
        if len(key) == 1 and key.isascii():
            codes.append(ord(key))
        elif key in _CTRL_KEYS:
            codes.append(_CTRL_KEYS.index(key))
        elif key == "DEL":
            codes.append(127)
        else:
            raise ValueError(f"Unknown character: {key!r}")
    return bytes(codes)


class DetachMatcher:
    """Finds the detach sequence in stdin as it streams by (split across reads or not).

    Bytes that may start the sequence are held back; if the sequence breaks they go on to the
    process, and once it is complete nothing of it reaches the process (as moby's escape proxy).
    """

    def __init__(self, keys: bytes) -> None:
        self._keys = keys
        self._held = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """``(bytes for the process, detached)``."""
        keys = self._keys
        if not keys or (self._held == 0 and keys[0] not in data):
            return data, False
        out = bytearray()
        for byte in data:
            if byte == keys[self._held]:
                self._held += 1
                if self._held == len(keys):
                    self._held = 0
                    return bytes(out), True
                continue
            out += keys[: self._held]
            self._held = 0
            if byte == keys[0]:
                self._held = 1
                if len(keys) == 1:
                    self._held = 0
                    return bytes(out), True
            else:
                out.append(byte)
        return bytes(out), False


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
        detach_keys: bytes = b"",
    ) -> None:
        """``stdin``: attached with stdin; ``stdin_open``: the container was created with one;
        ``detach_keys``: the sequence that detaches (empty: none, as without a tty)."""
        self._frames = self._read(output)
        self._stdin = stdin_writer
        self._name = name
        self._stdin_open = stdin
        self._has_stdin = stdin_open
        self._detach = DetachMatcher(detach_keys)
        self.detached = False
        """Whether the detach keys ended this attachment (the container runs on)."""

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
        data, detached = self._detach.feed(data)
        if detached:
            if data:
                self._stdin.write(data)
            self.detached = True
            self.close()  # the output ends; the container keeps running with its stdin
            return
        if not data:
            return
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

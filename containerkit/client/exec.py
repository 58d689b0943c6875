"""A running exec in the daemon: output chunks as they come, stdin, and always an exit code.

docker-py returns ``exit_code=None`` for streamed execs; here :meth:`ExecStream.wait` asks the
daemon (``GET /exec/{id}/json``) until the exec has finished, so there is always a code.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from types import TracebackType

from containerkit.client import _frames
from containerkit.client._frames import Stream
from containerkit.client._transport import RawStream, Transport
from containerkit.errors import RuntimeFailure, Timeout

__all__ = ["ExecStream"]

_POLL_FIRST = 0.005
_POLL_MAX = 0.1


class ExecStream:
    """A started exec: iterate for output chunks (or :meth:`stream` for ``(name, chunk)``), then
    :meth:`wait` for the exit code. With a tty everything arrives as stdout."""

    def __init__(
        self, transport: Transport, exec_id: str, raw: RawStream | None, *, tty: bool, stdin: bool
    ) -> None:
        """``raw`` None: a detached exec (``docker exec -d``), no output, only the exit code."""
        self.id = exec_id
        self.tty = tty
        self.error: Exception | None = None  # the in-process handle's field; the daemon reports 126
        self._transport = transport
        self._raw = raw
        self._stdin_open = stdin and raw is not None
        self._source: Iterator[tuple[Stream, bytes]] | None = None
        if raw is not None:
            self._source = _frames.raw(raw.chunks()) if tty else _frames.demux(raw.chunks())
        self._pending: deque[tuple[Stream, bytes]] = deque()
        self._code: int | None = None

    def __enter__(self) -> ExecStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ExecStream {self.id[:12]}>"

    # -- output -------------------------------------------------------------------------------

    def stream(self) -> Iterator[tuple[Stream, bytes]]:
        """``(stream, chunk)`` pairs as the process writes them, until its output ends."""
        while self._pending:
            yield self._pending.popleft()
        if self._source is None:
            return
        try:
            yield from self._source
        finally:
            self._source = None
            self._close_raw()

    def __iter__(self) -> Iterator[bytes]:
        for _name, chunk in self.stream():
            yield chunk

    def communicate(self, input: bytes | None = None, timeout: float | None = None) -> tuple[bytes, bytes]:
        """Feed ``input``, close stdin, collect all output: ``(stdout, stderr)``."""
        if input:
            self.write_stdin(input)
        self.close_stdin()
        deadline = None if timeout is None else time.monotonic() + timeout
        if timeout is not None and self._raw is not None:
            self._raw.set_timeout(timeout)  # a silent command times out too, not only a chatty one
        out: dict[Stream, list[bytes]] = {"stdout": [], "stderr": []}
        for name, chunk in self.stream():
            out[name].append(chunk)
            if deadline is not None and time.monotonic() > deadline:
                raise Timeout(f"exec {self.id[:12]} still writing after {timeout} s")
        return b"".join(out["stdout"]), b"".join(out["stderr"])

    # -- stdin --------------------------------------------------------------------------------

    def write_stdin(self, data: bytes) -> None:
        if not self._stdin_open or self._raw is None:
            raise RuntimeFailure(f"exec {self.id[:12]} has no open stdin (start it with stdin=True)")
        self._raw.send(data)

    def close_stdin(self) -> None:
        """EOF for the process (with a tty: ^D, the terminal's EOF character)."""
        if not self._stdin_open or self._raw is None:
            return
        if self.tty:
            self._raw.send(b"\x04")
        else:
            self._raw.close_write()
        self._stdin_open = False

    def resize(self, rows: int, cols: int) -> None:
        """Set the size of the exec's terminal (``/exec/{id}/resize``); nothing without a tty."""
        if self.tty:
            self._transport.request("POST", f"/exec/{self.id}/resize", params={"h": rows, "w": cols})

    # -- exit ---------------------------------------------------------------------------------

    def inspect(self) -> dict[str, object]:
        data: dict[str, object] = self._transport.get_json(f"/exec/{self.id}/json")
        return data

    @property
    def pid(self) -> int | None:
        pid = self.inspect().get("Pid")
        return pid if isinstance(pid, int) and pid > 0 else None

    def wait(self, timeout: float | None = None) -> int:
        """The exit code (128+n after signal n; 126 when the command could not start).

        Output not read yet is kept for later iteration, so a full pipe never blocks the exit.
        """
        if self._code is not None:
            return self._code
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._source is not None:
            self._drain(timeout)
        delay = _POLL_FIRST
        while True:
            data = self.inspect()
            code = data.get("ExitCode")
            if not data.get("Running") and isinstance(code, int):
                self._code = code
                return code
            if deadline is not None and time.monotonic() > deadline:
                raise Timeout(f"exec {self.id[:12]} still running after {timeout} s")
            time.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)

    def _drain(self, timeout: float | None) -> None:
        """Read the rest of the output into the buffer (the stream is gone if this times out)."""
        source, self._source = self._source, None
        if source is None:
            return
        if self._raw is not None:
            self._raw.set_timeout(timeout)
        try:
            self._pending.extend(source)
        except Timeout:
            raise Timeout(f"exec {self.id[:12]} still running after {timeout} s") from None
        finally:
            self._close_raw()

    def _close_raw(self) -> None:
        if self._raw is not None:
            self._raw.close()

    def close(self) -> None:
        """Drop the connection (does not stop the process)."""
        self._source = None
        self._close_raw()

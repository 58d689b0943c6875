"""Container logs in docker's json-file format: one JSON object per line.

``{"log": "hello\\n", "stream": "stdout", "time": "2024-05-01T12:00:00.123456789Z"}``

The shim writes (:class:`LogWriter`), anyone reads (:func:`read_logs`, :func:`follow_logs`).
Output is split at newlines like docker: each record holds one line with its ``\\n``; a line
longer than 16 KiB is cut into records without one, and a partial last line is flushed when the
container exits. Bytes that are not UTF-8 are kept as ``\\udcXX`` escapes (surrogateescape), so
containerkit reads back exactly what the container wrote while other readers see U+FFFD.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Literal

import attrs

from containerkit.errors import InvalidArgument

__all__ = [
    "LogEntry",
    "LogWriter",
    "follow_logs",
    "follow_logs_demux",
    "format_time",
    "iter_entries",
    "parse_time",
    "read_logs",
]

Stream = Literal["stdout", "stderr"]

MAX_LINE = 16 * 1024
"""docker's json-file buffer: a longer line is split into several records."""


def format_time(ns: int) -> str:
    """RFC 3339 in UTC with nanoseconds and ``Z``, fixed width so records sort as text."""
    seconds, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch from an RFC 3339 time (any fraction width, ``Z`` or offset)."""
    import datetime as dt

    try:
        main, _, rest = text.partition(".")
        frac = ""
        tz = "Z"
        if rest:
            digits = len(rest) - len(rest.lstrip("0123456789"))
            frac, tz = rest[:digits], rest[digits:] or "Z"
        else:
            for marker in ("Z", "+", "-"):
                idx = main.rfind(marker, 19)
                if idx != -1:
                    main, tz = main[:idx], main[idx:]
                    break
        base = dt.datetime.fromisoformat(main + ("+00:00" if tz == "Z" else tz))
    except ValueError:
        raise InvalidArgument(f"cannot parse log time {text!r}") from None
    return int(base.timestamp()) * 1_000_000_000 + int((frac + "000000000")[:9])


@attrs.frozen
class LogEntry:
    """One record of the log: which stream, the raw bytes, and when (ns since the epoch)."""

    stream: Stream
    data: bytes
    time_ns: int
    time: str

    def render(self, timestamps: bool) -> bytes:
        return f"{self.time} ".encode() + self.data if timestamps else self.data


class LogWriter:
    """Appends container output to a json-file log, one record per line per stream."""

    def __init__(self, path: Path, *, raw: bool = False, clock: Callable[[], int] = time.time_ns) -> None:
        """``raw``: every chunk is a record at once, partial lines included (a terminal's
        output: a shell prompt has no newline and must show before the user types)."""
        self.path = Path(path)
        self._raw = raw
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self._partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self._clock = clock

    def write(self, stream: Stream, data: bytes) -> None:
        """Record ``data``; complete lines go out now, a trailing partial line waits for more."""
        buffered = self._partial[stream] + data
        stamp = format_time(self._clock())
        out: list[bytes] = []
        start = 0
        while True:
            end = buffered.find(b"\n", start)
            if end == -1 or end - start >= MAX_LINE:
                if len(buffered) - start >= MAX_LINE:
                    end = start + MAX_LINE - 1
                    out.append(self._record(stream, buffered[start : end + 1], stamp))
                    start = end + 1
                    continue
                break
            out.append(self._record(stream, buffered[start : end + 1], stamp))
            start = end + 1
        self._partial[stream] = buffered[start:]
        if self._raw and self._partial[stream]:
            out.append(self._record(stream, self._partial[stream], stamp))
            self._partial[stream] = b""
        if out:
            os.write(self._fd, b"".join(out))

    def flush(self) -> None:
        """Write out partial lines (at exit: docker keeps an unterminated last line as is)."""
        stamp = format_time(self._clock())
        out = [self._record(s, rest, stamp) for s, rest in self._partial.items() if rest]  # type: ignore[arg-type]
        self._partial = {"stdout": b"", "stderr": b""}
        if out:
            os.write(self._fd, b"".join(out))

    def close(self) -> None:
        self.flush()
        os.close(self._fd)

    @staticmethod
    def _record(stream: Stream, line: bytes, stamp: str) -> bytes:
        text = line.decode("utf-8", "surrogateescape")
        return (json.dumps({"log": text, "stream": stream, "time": stamp}) + "\n").encode()


def _parse(line: bytes) -> LogEntry | None:
    try:
        obj = json.loads(line)
        data = obj["log"].encode("utf-8", "surrogateescape")
        stream = obj.get("stream", "stdout")
        stamp = obj["time"]
        return LogEntry("stderr" if stream == "stderr" else "stdout", data, parse_time(stamp), stamp)
    except (ValueError, KeyError, TypeError, AttributeError, InvalidArgument):
        return None  # a torn or foreign line is skipped, like docker does


def _wanted(entry: LogEntry, stdout: bool, stderr: bool, since_ns: int | None, until_ns: int | None) -> bool:
    if not (stdout if entry.stream == "stdout" else stderr):
        return False
    if since_ns is not None and entry.time_ns < since_ns:
        return False
    return until_ns is None or entry.time_ns <= until_ns


def _to_ns(value: float | None) -> int | None:
    return None if value is None else int(value * 1_000_000_000)


def _lines_from(f: BinaryIO) -> Iterator[bytes]:
    for line in f:
        if line.endswith(b"\n"):
            yield line


def _reverse_lines(f: BinaryIO, end: int | None = None, block: int = 64 * 1024) -> Iterator[bytes]:
    """Complete lines before offset ``end`` (default: EOF) backwards, reading only what is needed."""
    f.seek(0, os.SEEK_END)
    pos = f.tell() if end is None else min(end, f.tell())
    tail = b""
    first = True
    while pos > 0:
        step = min(block, pos)
        pos -= step
        f.seek(pos)
        chunk = f.read(step) + tail
        lines = chunk.split(b"\n")
        tail = lines.pop(0)
        if first:
            lines.pop()  # after the last "\n": empty, or a record still being written
            first = False
        yield from reversed(lines)
    if tail and not first:
        yield tail


def _tail(
    f: BinaryIO,
    count: int,
    end: int | None,
    stdout: bool,
    stderr: bool,
    since_ns: int | None,
    until_ns: int | None,
) -> deque[LogEntry]:
    picked: deque[LogEntry] = deque()
    for line in _reverse_lines(f, end):
        entry = _parse(line)
        if entry is None:
            continue
        if since_ns is not None and entry.time_ns < since_ns:
            break  # records are appended in time order: nothing older can match
        if _wanted(entry, stdout, stderr, since_ns, until_ns):
            picked.appendleft(entry)
            if len(picked) >= count:
                break
    return picked


def iter_entries(
    path: Path,
    *,
    stdout: bool = True,
    stderr: bool = True,
    tail: int | None = None,
    since: float | None = None,
    until: float | None = None,
) -> Iterator[LogEntry]:
    """The records of a log in order, filtered by stream and time; ``tail`` counts kept records.

    ``since``/``until`` are seconds since the epoch (inclusive). ``tail`` applies after the
    stream filter, so ``stderr=False, tail=3`` gives the last three stdout lines.
    """
    since_ns, until_ns = _to_ns(since), _to_ns(until)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; generator keeps it open while iterated
    except FileNotFoundError:
        return
    with f:
        if tail is not None and tail >= 0:
            if tail == 0:
                return
            yield from _tail(f, tail, None, stdout, stderr, since_ns, until_ns)
            return
        for line in _lines_from(f):
            entry = _parse(line)
            if entry is not None and _wanted(entry, stdout, stderr, since_ns, until_ns):
                yield entry


def read_logs(
    path: Path,
    *,
    stdout: bool = True,
    stderr: bool = True,
    tail: int | None = None,
    since: float | None = None,
    until: float | None = None,
    timestamps: bool = False,
) -> bytes:
    """The log as the raw bytes the container wrote (both streams interleaved in time order)."""
    return b"".join(
        entry.render(timestamps)
        for entry in iter_entries(path, stdout=stdout, stderr=stderr, tail=tail, since=since, until=until)
    )


def _last_newline_before(f: BinaryIO, end: int, block: int = 64 * 1024) -> int:
    """The offset just after the last ``\n`` before ``end`` (0 when there is none)."""
    pos = end
    while pos > 0:
        step = min(block, pos)
        pos -= step
        f.seek(pos)
        idx = f.read(step).rfind(b"\n")
        if idx != -1:
            return pos + idx + 1
    return 0


def _follow_entries(
    path: Path,
    *,
    stdout: bool,
    stderr: bool,
    tail: int | None,
    since: float | None,
    is_running: Callable[[], bool],
    poll_interval: float,
) -> Iterator[LogEntry]:
    since_ns = _to_ns(since)
    path = Path(path)
    # The backlog first, then whatever is appended after the offset where the backlog ended.
    offset = 0
    if tail is not None and tail >= 0:
        try:
            with open(path, "rb") as f:
                offset = f.seek(0, os.SEEK_END)
                # Only complete records up to ``offset``; later ones come from the loop below.
                f.seek(max(0, offset - 1))
                if offset and f.read(1) != b"\n":
                    offset = _last_newline_before(f, offset)
                backlog = _tail(f, tail, offset, stdout, stderr, since_ns, None) if tail else deque()
        except FileNotFoundError:
            backlog = deque()
        yield from backlog
    while True:
        # Sample "running" first: whatever was written before it turned False is drained below.
        running = is_running()
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            data = b""
        end = data.rfind(b"\n") + 1
        if end:
            offset += end
            for line in data[:end].splitlines():
                entry = _parse(line)
                if entry is not None and _wanted(entry, stdout, stderr, since_ns, None):
                    yield entry
        if not running:
            return
        time.sleep(poll_interval)


def follow_logs(
    path: Path,
    *,
    is_running: Callable[[], bool],
    stdout: bool = True,
    stderr: bool = True,
    tail: int | None = None,
    since: float | None = None,
    timestamps: bool = False,
    poll_interval: float = 0.05,
) -> Iterator[bytes]:
    """Chunks of the log as they are written; ends once ``is_running()`` is False and all is read.

    ``is_running`` must turn False only when the writer is done, e.g.
    ``lambda: read_state(state_dir).running`` (the shim records the exit after flushing logs).
    """
    for entry in _follow_entries(
        path,
        stdout=stdout,
        stderr=stderr,
        tail=tail,
        since=since,
        is_running=is_running,
        poll_interval=poll_interval,
    ):
        yield entry.render(timestamps)


def follow_logs_demux(
    path: Path,
    *,
    is_running: Callable[[], bool],
    stdout: bool = True,
    stderr: bool = True,
    tail: int | None = None,
    since: float | None = None,
    timestamps: bool = False,
    poll_interval: float = 0.05,
) -> Iterator[tuple[Stream, bytes]]:
    """Like :func:`follow_logs` but yields ``(stream, chunk)`` pairs, for demultiplexed output."""
    for entry in _follow_entries(
        path,
        stdout=stdout,
        stderr=stderr,
        tail=tail,
        since=since,
        is_running=is_running,
        poll_interval=poll_interval,
    ):
        yield entry.stream, entry.render(timestamps)

"""Container logs in docker's json-file format: one JSON object per line.

``{"log": "hello\\n", "stream": "stdout", "time": "2024-05-01T12:00:00.123456789Z"}``

The shim writes (:class:`LogWriter`), anyone reads (:func:`read_logs`, :func:`follow_logs`).
Output is split at newlines like docker: each record holds one line with its ``\\n``; a line
longer than 16 KiB is cut into records without one, and a partial last line is flushed when the
container exits. Bytes that are not UTF-8 are kept as ``\\udcXX`` escapes (surrogateescape), so
containerkit reads back exactly what the container wrote while other readers see U+FFFD.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from containerkit._model import model
from containerkit.errors import InvalidArgument, NotSupported
from containerkit.linux import inotify
from containerkit.spec import log_limits

__all__ = [
    "DiscardLog",
    "LineCursor",
    "LogEntry",
    "LogSink",
    "LogWriter",
    "check_readable",
    "follow_logs",
    "follow_logs_demux",
    "format_time",
    "iter_entries",
    "log_files",
    "open_log",
    "parse_time",
    "read_logs",
    "rotated_name",
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


@model
class LogEntry:
    """One record of the log: which stream, the raw bytes, and when (ns since the epoch)."""

    stream: Stream
    data: bytes
    time_ns: int
    time: str

    def render(self, timestamps: bool) -> bytes:
        return f"{self.time} ".encode() + self.data if timestamps else self.data


class LogWriter:
    """Appends container output to a json-file log, one record per line per stream.

    With ``max_size`` the log rotates like docker's json-file driver: once the next records
    would take ``container.log`` past ``max_size`` bytes it becomes ``container.log.1`` (the
    older ones shift to ``.2`` ...; beyond ``max_files`` files the oldest is deleted) and a fresh
    ``container.log`` is started. ``max_files=1`` keeps only the current file.
    """

    def __init__(
        self,
        path: Path,
        *,
        raw: bool = False,
        clock: Callable[[], int] = time.time_ns,
        max_size: int | None = None,
        max_files: int = 1,
    ) -> None:
        """``raw``: every chunk is a record at once, partial lines included (a terminal's
        output: a shell prompt has no newline and must show before the user types)."""
        if max_files < 1:
            raise InvalidArgument(f"log max_files must be at least 1, got {max_files}")
        self.path = Path(path)
        self._raw = raw
        self._max_size = max_size if max_size and max_size > 0 else None
        self._max_files = max_files
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size
        self._partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self._clock = clock

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)

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
        self._emit(out)

    def flush(self) -> None:
        """Write out partial lines (at exit: docker keeps an unterminated last line as is)."""
        stamp = format_time(self._clock())
        out = [self._record(s, rest, stamp) for s, rest in self._partial.items() if rest]  # type: ignore[arg-type]
        self._partial = {"stdout": b"", "stderr": b""}
        self._emit(out)

    def close(self) -> None:
        self.flush()
        os.close(self._fd)

    def _emit(self, records: list[bytes]) -> None:
        """Write whole records, rotating between them where the size cap says so."""
        if not records:
            return
        if self._max_size is None:
            self._write(b"".join(records))
            return
        batch: list[bytes] = []
        size = self._size
        for record in records:
            if size > 0 and size + len(record) > self._max_size:
                if batch:
                    self._write(b"".join(batch))
                    batch = []
                self._rotate()
                size = 0
            batch.append(record)
            size += len(record)
        self._write(b"".join(batch))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(data)

    def _rotate(self) -> None:
        """``container.log`` -> ``.1`` -> ``.2`` ...; the file past ``max_files`` goes."""
        os.close(self._fd)
        if self._max_files == 1:
            os.unlink(self.path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(rotated_name(self.path, self._max_files - 1))
            for n in range(self._max_files - 2, 0, -1):
                with contextlib.suppress(FileNotFoundError):
                    os.rename(rotated_name(self.path, n), rotated_name(self.path, n + 1))
            os.rename(self.path, rotated_name(self.path, 1))
        self._fd = self._open()
        self._size = 0

    @staticmethod
    def _record(stream: Stream, line: bytes, stamp: str) -> bytes:
        text = line.decode("utf-8", "surrogateescape")
        return (json.dumps({"log": text, "stream": stream, "time": stamp}) + "\n").encode()


class LogSink(Protocol):
    """What the shim writes container output to."""

    def write(self, stream: Stream, data: bytes) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class DiscardLog:
    """The ``none`` driver: output is read from the container and dropped, no file is made."""

    def write(self, stream: Stream, data: bytes) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def check_readable(driver: str) -> None:
    """Docker's answer to reading the logs of a container whose driver keeps none."""
    if driver == "none":
        raise NotSupported("configured logging driver does not support reading")


def open_log(path: Path, *, driver: str, opts: Mapping[str, str], raw: bool = False) -> LogSink:
    """The sink of a container's log driver (``json-file``, ``local`` or ``none``)."""
    max_size, max_files = log_limits(driver, opts)
    if driver == "none":
        return DiscardLog()
    return LogWriter(path, raw=raw, max_size=max_size, max_files=max_files)


def rotated_name(path: Path, n: int) -> Path:
    """The ``n``-th older file of a rotated log: ``container.log.1`` is the newest of them."""
    return path.with_name(f"{path.name}.{n}")


def log_files(path: Path) -> list[Path]:
    """The files of a log, oldest first: ``container.log.N`` ... ``container.log.1``, ``container.log``."""
    path = Path(path)
    prefix = path.name + "."
    numbered: list[tuple[int, Path]] = []
    try:
        entries = os.listdir(path.parent)
    except FileNotFoundError:
        return []
    for name in entries:
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            numbered.append((int(name[len(prefix) :]), path.parent / name))
    return [p for _n, p in sorted(numbered, reverse=True)] + [path]


def _open_chain(path: Path) -> list[BinaryIO]:
    """The log's files opened, oldest first, each once.

    Opened newest first: a rotation meanwhile renames a file already open to an older name,
    which is then seen twice (same inode) and kept once, so no record is read twice.
    """
    opened: list[BinaryIO] = []
    seen: set[tuple[int, int]] = set()
    for file in reversed(log_files(path)):
        try:
            f = open(file, "rb")  # noqa: SIM115 - the caller closes them
        except FileNotFoundError:
            continue
        st = os.fstat(f.fileno())
        if (st.st_dev, st.st_ino) in seen:
            f.close()
            continue
        seen.add((st.st_dev, st.st_ino))
        opened.append(f)
    opened.reverse()
    return opened


def _close_all(files: list[BinaryIO]) -> None:
    for f in files:
        f.close()


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
    files: list[BinaryIO],
    count: int,
    end: int | None,
    stdout: bool,
    stderr: bool,
    since_ns: int | None,
    until_ns: int | None,
) -> deque[LogEntry]:
    """The last ``count`` wanted records of the chain (``end``: where the newest file stops)."""
    picked: deque[LogEntry] = deque()
    for index in range(len(files) - 1, -1, -1):
        for line in _reverse_lines(files[index], end if index == len(files) - 1 else None):
            entry = _parse(line)
            if entry is None:
                continue
            if since_ns is not None and entry.time_ns < since_ns:
                return picked  # records are appended in time order: nothing older can match
            if _wanted(entry, stdout, stderr, since_ns, until_ns):
                picked.appendleft(entry)
                if len(picked) >= count:
                    return picked
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
    """The records of a log in order (rotated files first), filtered by stream and time;
    ``tail`` counts kept records.

    ``since``/``until`` are seconds since the epoch (inclusive). ``tail`` applies after the
    stream filter, so ``stderr=False, tail=3`` gives the last three stdout lines.
    """
    since_ns, until_ns = _to_ns(since), _to_ns(until)
    if tail == 0:
        return
    files = _open_chain(Path(path))
    try:
        if tail is not None and tail > 0:
            yield from _tail(files, tail, None, stdout, stderr, since_ns, until_ns)
            return
        for f in files:
            for line in _lines_from(f):
                entry = _parse(line)
                if entry is not None and _wanted(entry, stdout, stderr, since_ns, until_ns):
                    yield entry
    finally:
        _close_all(files)


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


def _same_file(path: Path, f: BinaryIO) -> bool:
    """Whether ``path`` still names the open file ``f`` (False once it was rotated away;
    True while the writer is between renaming it and creating the next one)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return True
    own = os.fstat(f.fileno())
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _complete_lines(f: BinaryIO, offset: int) -> tuple[list[bytes], int]:
    """The complete records of ``f`` from ``offset``, and the offset after the last one."""
    f.seek(offset)
    data = f.read()
    end = data.rfind(b"\n") + 1
    return data[:end].splitlines(), offset + end


def _successors(path: Path, f: BinaryIO) -> list[BinaryIO]:
    """The files of the log written after ``f`` (all of them when ``f`` was deleted), opened."""
    chain = _open_chain(path)
    own = os.fstat(f.fileno())
    keys = [(os.fstat(g.fileno()).st_dev, os.fstat(g.fileno()).st_ino) for g in chain]
    index = keys.index((own.st_dev, own.st_ino)) if (own.st_dev, own.st_ino) in keys else -1
    _close_all(chain[: index + 1])
    return chain[index + 1 :]


def _follow_entries(
    path: Path,
    *,
    stdout: bool,
    stderr: bool,
    tail: int | None,
    since: float | None,
    is_running: Callable[[], bool],
    poll_interval: float,
    wake_on: Callable[[str], bool] | None = None,
) -> Iterator[LogEntry]:
    since_ns = _to_ns(since)
    path = Path(path)

    def wanted(lines: list[bytes]) -> Iterator[LogEntry]:
        for line in lines:
            entry = _parse(line)
            if entry is not None and _wanted(entry, stdout, stderr, since_ns, None):
                yield entry

    # The backlog first, then whatever is appended after the offset where the backlog ended;
    # when the file followed is rotated away, its rest and then the files after it are read.
    files = _open_chain(path)
    current: BinaryIO | None = files[-1] if files else None
    offset = 0
    # Watched before the first read: output written, a rotation or the exit record (all in
    # the log's directory) wakes the loop below at once; ``poll_interval`` only bounds the
    # wait for what happens elsewhere (``is_running`` turning False on a detach). With
    # ``wake_on`` (the other names ``is_running`` reads), only the log's files and those wake it.
    names = None if wake_on is None else _log_or(path.name, wake_on)
    waker = inotify.watch_directory(path.parent, names=names)
    try:
        if tail is not None and tail >= 0:
            backlog: deque[LogEntry] = deque()
            if current is not None:
                offset = current.seek(0, os.SEEK_END)
                # Only complete records up to ``offset``; later ones come from the loop below.
                current.seek(max(0, offset - 1))
                if offset and current.read(1) != b"\n":
                    offset = _last_newline_before(current, offset)
                if tail:
                    backlog = _tail(files, tail, offset, stdout, stderr, since_ns, None)
            _close_all(files[:-1])
            yield from backlog
        else:
            for f in files[:-1]:
                yield from wanted(list(_lines_from(f)))
                f.close()
        while True:
            # Sample "running" first: whatever was written before it turned False is drained below.
            running = is_running()
            if current is None:
                try:
                    current = open(path, "rb")  # noqa: SIM115 - closed in the finally below
                except FileNotFoundError:
                    current = None
                offset = 0
            while current is not None and not _same_file(path, current):
                lines, offset = _complete_lines(current, offset)
                yield from wanted(lines)
                later = _successors(path, current)
                current.close()
                current = None
                for f in later[:-1]:
                    yield from wanted(list(_lines_from(f)))
                    f.close()
                current, offset = (later[-1], 0) if later else (None, 0)
            if current is not None:
                lines, offset = _complete_lines(current, offset)
                yield from wanted(lines)
            if not running:
                return
            if waker is None:
                time.sleep(poll_interval)
            else:
                waker.wait(poll_interval)
    finally:
        if current is not None:
            current.close()
        if waker is not None:
            waker.close()


def _log_or(log_name: str, other: Callable[[str], bool]) -> Callable[[str], bool]:
    """The log's own files (``container.log``, its rotations ``container.log.N``) or ``other``."""
    return lambda name: name.startswith(log_name) or other(name)


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
    wake_on: Callable[[str], bool] | None = None,
) -> Iterator[bytes]:
    """Chunks of the log as they are written; ends once ``is_running()`` is False and all is read.

    ``is_running`` must turn False only when the writer is done, e.g.
    ``lambda: read_state(state_dir).running`` (the shim records the exit after flushing logs).
    ``wake_on``: the names in the log's directory whose change may turn it False (the exit
    record); without it any change there wakes the follower to ask.
    """
    for entry in _follow_entries(
        path,
        stdout=stdout,
        stderr=stderr,
        tail=tail,
        since=since,
        is_running=is_running,
        poll_interval=poll_interval,
        wake_on=wake_on,
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
    wake_on: Callable[[str], bool] | None = None,
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
        wake_on=wake_on,
    ):
        yield entry.stream, entry.render(timestamps)


class LineCursor:
    """New complete log lines of the chosen streams since the last call, read from the byte
    offset where the last read stopped, so a poll never re-reads the log (``wait`` strategies
    that look for a line). A line longer than a record comes back whole."""

    def __init__(self, path: Path, *, stdout: bool, stderr: bool) -> None:
        self._path = path
        self._offset = 0
        self._streams = {name for name, on in (("stdout", stdout), ("stderr", stderr)) if on}
        self._partial = ""

    def read_new(self) -> list[str]:
        try:
            with self._path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        self._offset += end
        lines = []
        for raw in data[:end].splitlines():
            try:
                record = json.loads(raw)
                text, stream = record["log"], record.get("stream", "stdout")
            except (ValueError, KeyError, TypeError):
                continue
            if stream not in self._streams:
                continue
            # A line over 16 KiB arrives as several records; only the last ends in "\n".
            self._partial += text
            if self._partial.endswith("\n"):
                lines.append(self._partial.rstrip("\n"))
                self._partial = ""
        return lines

"""The json-file log: docker's record format, line splitting, filters and a follow that ends."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from containerkit.runtime import logs


def _clock(values: list[int]) -> Callable[[], int]:
    """Hands out ``values`` in turn, then keeps repeating the last one."""
    it = iter(values)
    last = values[-1]
    return lambda: next(it, last)


def test_records_split_at_newlines_like_docker(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    writer = logs.LogWriter(path, clock=_clock([1_700_000_000_123_456_789] * 10))
    writer.write("stdout", b"a\nb")
    writer.write("stderr", b"e1\n")
    writer.write("stdout", b"c\nd")
    writer.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records == [
        {"log": "a\n", "stream": "stdout", "time": "2023-11-14T22:13:20.123456789Z"},
        {"log": "e1\n", "stream": "stderr", "time": "2023-11-14T22:13:20.123456789Z"},
        {"log": "bc\n", "stream": "stdout", "time": "2023-11-14T22:13:20.123456789Z"},
        {"log": "d", "stream": "stdout", "time": "2023-11-14T22:13:20.123456789Z"},
    ]


def test_long_lines_and_binary_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    writer = logs.LogWriter(path)
    blob = b"x" * (logs.MAX_LINE * 2 + 10) + b"\n"
    writer.write("stdout", blob)
    writer.write("stdout", b"\xff\xfe caf\xc3\xa9\n")
    writer.close()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 4
    assert logs.read_logs(path) == blob + b"\xff\xfe caf\xc3\xa9\n"


def test_time_parsing() -> None:
    assert logs.parse_time("2023-11-14T22:13:20.123456789Z") == 1_700_000_000_123_456_789
    assert logs.parse_time("2023-11-14T22:13:20.5Z") == 1_700_000_000_500_000_000
    assert logs.parse_time("2023-11-14T23:13:20+01:00") == 1_700_000_000_000_000_000
    assert logs.format_time(1_700_000_000_000_000_001) == "2023-11-14T22:13:20.000000001Z"


def _sample(path: Path) -> None:
    writer = logs.LogWriter(path, clock=_clock([s * 1_000_000_000 for s in (100, 101, 102, 103, 104)]))
    for i, stream in enumerate(["stdout", "stderr", "stdout", "stderr", "stdout"]):
        writer.write(stream, f"{stream}{i}\n".encode())  # type: ignore[arg-type]
    writer.close()


def test_tail_since_until_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    _sample(path)
    assert logs.read_logs(path, tail=2) == b"stderr3\nstdout4\n"
    assert logs.read_logs(path, tail=2, stderr=False) == b"stdout2\nstdout4\n"
    assert logs.read_logs(path, tail=0) == b""
    assert logs.read_logs(path, tail=100) == logs.read_logs(path)
    assert logs.read_logs(path, since=102) == b"stdout2\nstderr3\nstdout4\n"
    assert logs.read_logs(path, since=102, until=103, stdout=False) == b"stderr3\n"
    assert logs.read_logs(path, tail=1, timestamps=True) == b"1970-01-01T00:01:44.000000000Z stdout4\n"
    assert logs.read_logs(tmp_path / "missing.log") == b""


def test_torn_last_record_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    _sample(path)
    with open(path, "ab") as f:
        f.write(b'{"log": "half')
    assert logs.read_logs(path, tail=1) == b"stdout4\n"
    assert logs.read_logs(path).endswith(b"stdout4\n")


def test_follow_streams_and_ends_when_writer_is_done(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    _sample(path)
    done = threading.Event()
    following = threading.Event()

    def is_running() -> bool:
        following.set()  # first asked after the backlog was read
        return not done.is_set()

    def write_more() -> None:
        following.wait(10)
        writer = logs.LogWriter(path)
        for i in range(5):
            writer.write("stdout", f"late{i}\n".encode())
            time.sleep(0.02)
        writer.write("stderr", b"no newline")
        writer.close()
        done.set()

    thread = threading.Thread(target=write_more)
    thread.start()
    got = list(logs.follow_logs(path, tail=1, is_running=is_running, poll_interval=0.01))
    thread.join()
    assert b"".join(got) == b"stdout4\n" + b"".join(f"late{i}\n".encode() for i in range(5)) + b"no newline"
    demuxed = list(logs.follow_logs_demux(path, tail=2, is_running=lambda: False))
    assert demuxed == [("stdout", b"late4\n"), ("stderr", b"no newline")]


def test_raw_writer_records_partial_lines_at_once(tmp_path: Path) -> None:
    """A terminal's output (a prompt has no newline) is logged as it comes, not held back."""
    path = tmp_path / "tty.log"
    writer = logs.LogWriter(path, raw=True)
    writer.write("stdout", b"/ # ")
    assert logs.read_logs(path) == b"/ # "
    writer.write("stdout", b"echo hi\r\nhi\r\n/ # ")
    assert logs.read_logs(path) == b"/ # echo hi\r\nhi\r\n/ # "
    writer.close()


def _lines(n: int, start: int = 0) -> list[bytes]:
    return [f"line {i:05d}\n".encode() for i in range(start, start + n)]


def test_rotation_keeps_max_files_of_max_size(tmp_path: Path) -> None:
    path = tmp_path / "container.log"
    writer = logs.LogWriter(path, max_size=1000, max_files=3)
    for line in _lines(200):
        writer.write("stdout", line)
    writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "container.log",
        "container.log.1",
        "container.log.2",
    ]
    assert all(p.stat().st_size <= 1000 for p in tmp_path.iterdir())
    assert logs.log_files(path) == [tmp_path / "container.log.2", tmp_path / "container.log.1", path]
    kept = logs.read_logs(path).splitlines(keepends=True)
    # the newest records, in order, with nothing missing between the files
    assert kept == _lines(200)[-len(kept) :]
    per_file = 1000 // len(path.read_bytes().splitlines(keepends=True)[0])
    assert 2 * per_file < len(kept) <= 3 * per_file  # two full files and the current one
    assert logs.read_logs(path, tail=len(kept) - 3) == b"".join(kept[3:])
    assert logs.read_logs(path, tail=5) == b"".join(_lines(200)[-5:])


def test_one_file_is_truncated_by_rotation(tmp_path: Path) -> None:
    path = tmp_path / "container.log"
    writer = logs.LogWriter(path, max_size=500, max_files=1)
    for line in _lines(100):
        writer.write("stdout", line)
    writer.close()
    assert [p.name for p in tmp_path.iterdir()] == ["container.log"]
    assert path.stat().st_size <= 500
    kept = logs.read_logs(path).splitlines(keepends=True)
    assert kept and kept == _lines(100)[-len(kept) :]


def test_follow_reads_across_rotations(tmp_path: Path) -> None:
    """The writer is driven from the follower's poll: each poll, ten more lines, which rotate
    the file it follows away (at times twice), deterministically."""
    path = tmp_path / "container.log"
    writer = logs.LogWriter(path, max_size=600, max_files=2)
    writer.write("stdout", b"before\n")
    batches = iter(range(12))

    def is_running() -> bool:
        batch = next(batches, None)
        if batch is None:
            writer.close()
            return False
        for line in _lines(10, start=batch * 10):
            writer.write("stdout", line)
        return True

    got = list(logs.follow_logs(path, tail=1, is_running=is_running, poll_interval=0.001))
    assert sorted(tmp_path.iterdir()) == [path, tmp_path / "container.log.1"]
    assert b"".join(got) == b"before\n" + b"".join(_lines(120))


def test_follow_from_the_start_reads_rotated_files_first(tmp_path: Path) -> None:
    path = tmp_path / "container.log"
    writer = logs.LogWriter(path, max_size=300, max_files=4)
    for line in _lines(30):
        writer.write("stdout", line)
    writer.close()
    assert len(logs.log_files(path)) == 4
    got = b"".join(logs.follow_logs(path, is_running=lambda: False))
    assert got == logs.read_logs(path)
    assert (
        got.endswith(_lines(30)[-1]) and got.splitlines(keepends=True) == _lines(30)[-len(got.splitlines()) :]
    )


def test_log_drivers_and_options(tmp_path: Path) -> None:
    from containerkit.errors import InvalidArgument, NotSupported
    from containerkit.spec import log_limits

    sink = logs.open_log(tmp_path / "container.log", driver="none", opts={})
    sink.write("stdout", b"dropped\n")
    sink.close()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(NotSupported, match=r"^configured logging driver does not support reading$"):
        logs.check_readable("none")
    logs.check_readable("json-file")
    assert log_limits("json-file", {}) == (None, 1)
    # json-file sizes are decimal as docker's units.FromHumanSize, local's binary (RAMInBytes)
    assert log_limits("json-file", {"max-size": "10k", "max-file": "3"}) == (10_000, 3)
    assert log_limits("json-file", {"max-size": "1g"}) == (10**9, 1)
    assert log_limits("local", {}) == (20 << 20, 5)
    assert log_limits("local", {"max-size": "1m", "max-file": "2"}) == (1 << 20, 2)
    for bad in ("-1", "0"):
        with pytest.raises(InvalidArgument, match=r"^max-size must be a positive number$"):
            log_limits("json-file", {"max-size": bad})
    with pytest.raises(InvalidArgument, match=r"^compress cannot be true when max-file is less than 2"):
        log_limits("json-file", {"max-size": "1m", "compress": "true"})
    with pytest.raises(InvalidArgument, match=r"^logger: no log driver named 'syslog' is registered$"):
        log_limits("syslog", {})
    with pytest.raises(InvalidArgument, match="unknown log opt 'max-sise' for json-file log driver"):
        log_limits("json-file", {"max-sise": "1m"})
    with pytest.raises(InvalidArgument, match="max-file cannot be less than 1"):
        log_limits("json-file", {"max-file": "0"})
    with pytest.raises(InvalidArgument, match="max-size"):
        log_limits("json-file", {"max-size": "lots"})

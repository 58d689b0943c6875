"""The json-file log: docker's record format, line splitting, filters and a follow that ends."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

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

"""A log follower sleeps until its directory changes: output and the exit record wake it, so it
needs no polling (the poll interval here is an hour: a follower that slept it out would never
finish, and the join below would fail)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from containerkit.linux import inotify
from containerkit.runtime import logs

HOUR = 3600.0


def test_directory_watch_wakes_on_a_write_and_times_out_without_one(tmp_path: Path) -> None:
    with inotify.DirectoryWatch(tmp_path) as watch:
        assert watch.wait(0.05) is False  # nobody writes in this private directory
        (tmp_path / "f").write_bytes(b"x")
        assert watch.wait(HOUR) is True
        assert watch.wait(0.05) is False  # the notices were consumed


def test_watch_directory_of_a_missing_directory_is_none(tmp_path: Path) -> None:
    assert inotify.watch_directory(tmp_path / "missing") is None


def test_follow_wakes_for_output_and_for_the_exit_record(tmp_path: Path) -> None:
    path = tmp_path / "container.log"
    writer = logs.LogWriter(path)
    writer.write("stdout", b"first\n")
    done = threading.Event()
    asked = threading.Event()
    got: list[bytes] = []

    def is_running() -> bool:
        asked.set()
        return not done.is_set()

    def follow() -> None:
        for chunk in logs.follow_logs(path, is_running=is_running, poll_interval=HOUR):
            got.append(chunk)

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    assert asked.wait(30)
    writer.write("stdout", b"second\n")  # wakes the follower: it reads this line
    writer.close()
    done.set()
    # the exit record, renamed into place beside the log as the shim writes it
    (tmp_path / ".exit.tmp").write_text(json.dumps({"exit_code": 0}))
    os.replace(tmp_path / ".exit.tmp", tmp_path / "exit.json")
    follower.join(30)
    assert not follower.is_alive(), "the follower slept through the exit record"
    assert b"".join(got) == b"first\nsecond\n"

"""The end of an attached stream wakes the exit command that waits to remove the container,
ending a follower does not wait for the kernel to let go of its inotify instance, and a
follower told which names end it sleeps through the shim's other files.

The waits here are an hour: a wait that slept it out instead of being woken would never end,
and the joins below would fail."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from containerkit.linux import inotify
from containerkit.runtime import logs
from containerkit.runtime import task as task_module
from containerkit.runtime.task import Task

HOUR = 3600.0


def _is_inotify(fd: int) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify"
    except OSError:
        return False


def test_a_closed_watch_sees_nothing_more_and_its_descriptor_goes(tmp_path: Path) -> None:
    watch = inotify.DirectoryWatch(tmp_path)
    fd = watch.fd
    assert _is_inotify(fd)
    watch.close()
    assert watch.fd == -1
    assert watch.wait(0) is False  # closed: nothing to wait on
    (tmp_path / "f").write_bytes(b"x")
    closers = [t for t in threading.enumerate() if t.name == "inotify-close"]
    for closer in closers:
        closer.join(30)
    assert not _is_inotify(fd), "the inotify descriptor was never closed"


def test_a_watch_for_closes_wakes_when_a_reader_closes(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    with inotify.DirectoryWatch(tmp_path, inotify.IN_CLOSE_NOWRITE) as watch:
        (tmp_path / "g").write_bytes(b"y")  # written, not read: no notice
        assert watch.wait(0.05) is False
        with open(tmp_path / "f", "rb") as f:
            f.read()
        assert watch.wait(HOUR) is True


@pytest.fixture
def no_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wait for readers that polled instead of being woken would sleep an hour."""
    monkeypatch.setattr(task_module, "_READER_POLL", HOUR)
    monkeypatch.setattr(task_module, "_READER_RECHECK", HOUR)


@pytest.mark.usefixtures("no_polling")
def test_wait_for_readers_wakes_when_the_last_reader_lets_go(tmp_path: Path) -> None:
    task = Task("c" * 64, tmp_path)
    holding, release = threading.Event(), threading.Event()

    def reader() -> None:
        with task.hold_output():
            holding.set()
            release.wait(30)

    readers = [threading.Thread(target=reader, daemon=True) for _ in range(2)]
    for thread in readers:
        thread.start()
    assert holding.wait(30)
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(task.wait_for_readers(HOUR)), daemon=True)
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive(), "the wait ended while readers held the output"
    release.set()
    for thread in readers:
        thread.join(30)
    waiter.join(30)
    assert not waiter.is_alive(), "the wait slept through the readers letting go"
    assert result == [True]


def test_wait_for_readers_gives_up_at_its_timeout(tmp_path: Path) -> None:
    task = Task("c" * 64, tmp_path)
    with task.hold_output():
        assert task.wait_for_readers(0.05) is False
    assert task.wait_for_readers(0.05) is True


def test_a_watch_for_some_names_sleeps_through_the_others(tmp_path: Path) -> None:
    with inotify.DirectoryWatch(tmp_path, names=lambda name: name == "exit.json") as watch:
        (tmp_path / "state.json").write_text("{}")
        (tmp_path / "fifo").touch()
        assert watch.wait(0.05) is False
        (tmp_path / ".exit.tmp").write_text("{}")
        os.replace(tmp_path / ".exit.tmp", tmp_path / "exit.json")
        assert watch.wait(HOUR) is True
    gone = tmp_path / "gone"
    gone.mkdir()
    with inotify.DirectoryWatch(gone, names=lambda name: False) as watch:
        gone.rmdir()  # the directory itself: whatever the names
        assert watch.wait(HOUR) is True


def test_a_follower_told_what_ends_it_wakes_for_output_and_that_only(tmp_path: Path) -> None:
    path = tmp_path / "container.log"
    writer = logs.LogWriter(path)
    asked = threading.Semaphore(0)
    done = threading.Event()
    got: list[bytes] = []

    def is_running() -> bool:
        asked.release()
        return not done.is_set()

    def follow() -> None:
        for chunk in logs.follow_logs(
            path, is_running=is_running, poll_interval=HOUR, wake_on=lambda name: name == "exit.json"
        ):
            got.append(chunk)

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    assert asked.acquire(timeout=30)
    (tmp_path / "state.json").write_text("{}")  # the shim's other records: no wake-up
    assert not asked.acquire(timeout=0.1)
    writer.write("stdout", b"out\n")  # output: a wake-up
    assert asked.acquire(timeout=30)
    writer.close()
    done.set()
    (tmp_path / "exit.json").write_text("{}")
    follower.join(30)
    assert not follower.is_alive(), "the follower slept through the exit record"
    assert b"".join(got) == b"out\n"

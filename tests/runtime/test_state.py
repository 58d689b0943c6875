"""State dir records read back from any process; pids are trusted only with their start times."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from containerkit.errors import NotRunning, RuntimeFailure, Timeout
from containerkit.linux import proc
from containerkit.runtime import state


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])


def test_start_time_and_alive_check() -> None:
    me = os.getpid()
    start = proc.start_time(me)
    assert start is not None and start > 0
    assert proc.is_alive(me, start)
    assert not proc.is_alive(me, start + 1)  # same pid, other process: pid reuse
    assert not proc.is_alive(None, start)
    assert proc.start_time(2**22 + 1) is None


def test_zombie_is_not_alive() -> None:
    child = subprocess.Popen(["true"])
    start = proc.start_time(child.pid)
    fd = proc.open_pidfd(child.pid, start)
    assert fd is not None
    try:
        assert proc.wait_pidfd(fd, 5)
        assert not proc.is_alive(child.pid, start)  # exited, not yet reaped
    finally:
        os.close(fd)
        child.wait()


def test_pidfd_refuses_a_reused_pid() -> None:
    child = _sleeper()
    try:
        start = proc.start_time(child.pid)
        assert start is not None
        assert proc.open_pidfd(child.pid, start + 1) is None
        assert not proc.send_signal(child.pid, 9, start + 1)
        assert child.poll() is None
        assert proc.send_signal(child.pid, 9, start)
        assert child.wait(5) == -9
    finally:
        child.kill()
        child.wait()


def test_created_running_dead_exited(tmp_path: Path) -> None:
    assert state.read_state(tmp_path).status == "created"
    with pytest.raises(NotRunning):
        state.wait_for_exit(tmp_path, 0.1)
    child = _sleeper()
    try:
        start = proc.start_time(child.pid)
        state.write_json_atomic(
            tmp_path / state.STATE_FILE,
            {"shim_pid": child.pid, "shim_start_time": start, "pid": child.pid, "pid_start_time": start},
        )
        running = state.read_state(tmp_path)
        assert running.status == "running" and running.pid_alive
        with pytest.raises(Timeout):
            state.wait_for_exit(tmp_path, 0.1)
        child.kill()
        child.wait()
        dead = state.read_state(tmp_path)
        assert (dead.status, dead.exit_code, dead.pid_alive) == ("dead", 137, False)
        assert state.wait_for_exit(tmp_path, 1) == 137
    finally:
        child.kill()
        child.wait()
    state.write_json_atomic(
        tmp_path / state.EXIT_FILE,
        {"exit_code": 3, "oom_killed": True, "finished_at": "2024-01-01T00:00:00.000000000Z", "error": None},
    )
    exited = state.read_state(tmp_path)
    assert (exited.status, exited.exit_code, exited.oom_killed) == ("exited", 3, True)
    assert state.wait_for_exit(tmp_path, 0) == 3


def test_recycled_shim_pid_is_dead(tmp_path: Path) -> None:
    # This process holds the recorded pid, but started at another time: not the shim.
    me = os.getpid()
    state.write_json_atomic(
        tmp_path / state.STATE_FILE, {"shim_pid": me, "shim_start_time": (proc.start_time(me) or 0) - 1}
    )
    assert state.read_state(tmp_path).status == "dead"
    assert state.wait_for_exit(tmp_path, 1) == 137


def test_atomic_write_and_corrupt_file(tmp_path: Path) -> None:
    state.write_json_atomic(tmp_path / "x.json", {"a": 1})
    assert state.read_json(tmp_path / "x.json") == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    (tmp_path / state.EXIT_FILE).write_text("{half")
    with pytest.raises(RuntimeFailure, match=str(tmp_path / state.EXIT_FILE)):
        state.read_exit(tmp_path)


def test_pending_write_commits_or_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    state.write_json_atomic(target, {"a": 1})
    pending = state.PendingWrite(target)
    assert state.read_json(target) == {"a": 1}  # made ahead, invisible until committed
    pending.commit({"a": 2})
    assert state.read_json(target) == {"a": 2}
    state.PendingWrite(target).discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]

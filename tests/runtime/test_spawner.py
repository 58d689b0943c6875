"""The forkserver: started lazily, gone when closed, its shims outlive it."""

from __future__ import annotations

import os
import threading
import time

import pytest

from containerkit.errors import RuntimeFailure
from containerkit.linux import proc
from containerkit.runtime import state
from containerkit.runtime.logs import read_logs
from containerkit.runtime.shim import start_container
from containerkit.runtime.spawner import Spawner
from tests.runtime._shim_harness import Boxes, boxes_fixture  # noqa: F401 - the boxes fixture


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    raw = f.read()
            except OSError:
                continue
            if int(raw[raw.rindex(b")") + 2 :].split()[1]) == pid:
                found.append(int(entry))
    return found


def test_lazy_start_and_clean_stop() -> None:
    spawner = Spawner()
    assert spawner.pid is None
    reply = spawner.call({"op": "ping"})
    pid = spawner.pid
    assert pid is not None and reply["pid"] == pid
    assert pid in _children_of(os.getpid())
    start = proc.start_time(pid)
    spawner.close()
    assert not proc.is_alive(pid, start)
    assert pid not in _children_of(os.getpid())
    spawner.close()  # idempotent


def test_bad_request_is_an_error_not_a_crash() -> None:
    with Spawner() as spawner:
        with pytest.raises(RuntimeFailure, match="unknown request"):
            spawner.call({"op": "bogus"})
        assert spawner.call({"op": "ping"})["ok"]


def test_started_from_a_worker_thread_survives_the_thread() -> None:
    spawner = Spawner()
    worker = threading.Thread(target=spawner.start)
    worker.start()
    worker.join()
    try:
        assert spawner.call({"op": "ping"})["ok"]  # no PDEATHSIG tied to the dead thread
    finally:
        spawner.close()


def test_shims_outlive_the_spawner(boxes: Boxes) -> None:
    request = boxes.request(["sleep", "0.5"])
    with Spawner() as spawner:
        started = start_container(request, spawner=spawner)
        assert started.shim_pid in _children_of(spawner.pid or 0)
    assert proc.is_alive(started.shim_pid, started.shim_start_time)
    assert state.wait_for_exit(request.state_dir, timeout=10) == 0


def test_direct_until_ready_forks_here_while_the_forkserver_starts(boxes: Boxes) -> None:
    """The first start need not wait for the forkserver's interpreter: a single-threaded caller
    forks that shim itself; once the forkserver answered, shims are its children again."""
    if threading.active_count() != 1:
        pytest.skip("direct forks are for single-threaded callers only")
    with Spawner(direct_until_ready=True) as spawner:
        first = boxes.request(["true"])
        started = start_container(first, spawner=spawner)
        assert spawner.pid is not None  # it is starting meanwhile
        assert started.shim_pid not in _children_of(spawner.pid)
        assert state.wait_for_exit(first.state_dir, timeout=10) == 0
        spawner.start()  # waits until it answers
        second = boxes.request(["sleep", "0.3"])
        started = start_container(second, spawner=spawner)
        assert started.shim_pid in _children_of(spawner.pid)
        assert state.wait_for_exit(second.state_dir, timeout=10) == 0


def _wait_for_children(pid: int, exclude: set[int]) -> list[int]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [c for c in _children_of(pid) if c not in exclude]
        if found:
            return found
        time.sleep(0.01)
    return []


def test_spare_shim_is_used_and_never_outlives_the_spawner(boxes: Boxes) -> None:
    """A shim is forked ahead of its request; an unused one leaves (reaped) with the spawner."""
    spawner = Spawner()
    spawner.start()
    pid = spawner.pid
    assert pid is not None
    try:
        (spare,) = _wait_for_children(pid, set())
        request = boxes.request(["true"])
        started = start_container(request, spawner=spawner)
        assert started.shim_pid == spare
        assert state.wait_for_exit(request.state_dir, timeout=10) == 0
        (next_spare,) = _wait_for_children(pid, {spare})
    finally:
        spawner.close()
    assert not os.path.exists(f"/proc/{next_spare}")


def test_containers_from_a_spare_run_at_the_spawners_priority(boxes: Boxes) -> None:
    """A spare waits at a low priority; neither its shim nor the container keeps it."""
    with Spawner() as spawner:
        spawner.start()
        assert spawner.pid is not None
        _wait_for_children(spawner.pid, set())
        command = "cut -d' ' -f19 /proc/self/stat; cut -d' ' -f19 /proc/1/stat; sleep 0.3"
        request = boxes.request(["sh", "-c", command])
        started = start_container(request, spawner=spawner)
        shim_nice = os.getpriority(os.PRIO_PROCESS, started.shim_pid)
        assert state.wait_for_exit(request.state_dir, timeout=10) == 0
    expected = os.getpriority(os.PRIO_PROCESS, 0)
    assert shim_nice == expected
    assert read_logs(request.state_dir / state.LOG_FILE).split() == [str(expected).encode()] * 2

"""The forkserver: started lazily, gone when closed, its shims outlive it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
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


def _single_threaded(test: str) -> bool:
    """Whether this process may run ``test`` itself (single-threaded); if not (an xdist worker
    has threads), it has run it in a fresh single-threaded pytest, whose failure fails here."""
    if threading.active_count() == 1:
        return True
    with tempfile.TemporaryDirectory(prefix="ck-spawner-") as base:
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
        argv += [f"--basetemp={base}/t", f"{__file__}::{test}"]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and " passed" in result.stdout, result.stdout + result.stderr
    return False


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
    if not _single_threaded("test_direct_until_ready_forks_here_while_the_forkserver_starts"):
        return
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


def _signals_caught(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("SigCgt:"):
                return int(line.split()[1], 16)
    raise AssertionError(f"no SigCgt in /proc/{pid}/status")


def test_forked_forkserver_keeps_none_of_this_process(boxes: Boxes, tmp_path: os.PathLike[str]) -> None:
    """``fork=True`` in a single-threaded process: the forkserver is a copy of it (no new
    interpreter), holding only stdio and its socket of our fds, none of our signal handlers;
    its shims work and it leaves no process behind."""
    if not _single_threaded("test_forked_forkserver_keeps_none_of_this_process"):
        return
    held = os.open(os.path.join(tmp_path, "held"), os.O_WRONLY | os.O_CREAT, 0o600)
    previous = signal.signal(signal.SIGUSR1, lambda *_: None)
    spawner = Spawner(fork=True)
    try:
        assert spawner.prestart()  # forked, not waited for
        pid = spawner.pid
        assert pid is not None and pid in _children_of(os.getpid())
        assert spawner.call({"op": "ping"})["pid"] == pid
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert b"containerkit.runtime.spawner" not in f.read()  # no fresh interpreter
        # beyond stdio: its socket, its signal pipe, its spare's socket; no file of ours
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd") if int(fd) > 2]
        assert links and all(link.startswith(("socket:", "pipe:")) for link in links), links
        assert os.readlink(f"/proc/{pid}/fd/0") == os.devnull
        assert not _signals_caught(pid) & (1 << (signal.SIGUSR1 - 1))
        request = boxes.request(["true"])
        start_container(request, spawner=spawner)
        assert state.wait_for_exit(request.state_dir, timeout=10) == 0
    finally:
        spawner.close()
        signal.signal(signal.SIGUSR1, previous)
        os.close(held)
    assert not os.path.exists(f"/proc/{pid}")


def test_prestart_starts_no_interpreter_ahead() -> None:
    """Without ``fork`` (or from a threaded process) the forkserver waits for first use."""
    with Spawner() as spawner:
        assert not spawner.prestart()
        assert spawner.pid is None
    blocker = threading.Event()
    worker = threading.Thread(target=blocker.wait)
    worker.start()
    try:
        with Spawner(fork=True) as spawner:
            assert not spawner.prestart()
            assert spawner.pid is None
            reply = spawner.call({"op": "ping"})  # a fresh interpreter, started on first use
            with open(f"/proc/{reply['pid']}/cmdline", "rb") as f:
                assert b"containerkit.runtime.spawner" in f.read()
    finally:
        blocker.set()
        worker.join()


def test_forked_forkserver_closes_where_children_are_reaped_for_us() -> None:
    """A program that ignores SIGCHLD has its children reaped by the kernel: close() still
    returns (as Popen's wait does) instead of failing on a child it cannot wait for."""
    if not _single_threaded("test_forked_forkserver_closes_where_children_are_reaped_for_us"):
        return
    previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        spawner = Spawner(fork=True)
        assert spawner.prestart()
        pid = spawner.pid
        assert spawner.call({"op": "ping"})["pid"] == pid
        spawner.close()
    finally:
        signal.signal(signal.SIGCHLD, previous)
    assert not os.path.exists(f"/proc/{pid}")

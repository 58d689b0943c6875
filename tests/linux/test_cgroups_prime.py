"""MigrationPrimer: a resident shell "moves" itself into the cgroup it already is in on each
request; asking never blocks, nothing about any process's cgroups changes, and the shell leaves
with close() or with the process that started it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from containerkit.linux.cgroups.prime import MigrationPrimer, procs_file

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: writes cgroup.procs")


def _eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_the_procs_file_found_lists_the_process() -> None:
    path = procs_file(os.getpid())
    assert path is not None
    assert str(os.getpid()) in path.read_text().split()


def test_a_gone_process_has_no_procs_file() -> None:
    process = subprocess.Popen(["true"])
    process.wait()
    assert procs_file(process.pid) is None


def test_each_request_writes_the_shells_own_pid_and_close_ends_it(tmp_path: Path) -> None:
    target = tmp_path / "cgroup.procs"  # a plain file standing in for the kernel's
    target.write_text("")
    primer = MigrationPrimer(target)
    try:
        primer.prime()
        pid = primer.pid
        assert pid is not None
        _eventually(lambda: target.read_text() == "0\n", "the shell's write")
        target.write_text("")
        for _ in range(20_000):  # far more than the pipe holds: never blocks, never raises
            primer.prime()
        _eventually(lambda: target.read_text() == "0\n", "the next write")
    finally:
        primer.close()
    assert primer.pid is None
    assert not _alive(pid)


@root_only
def test_priming_moves_nothing() -> None:
    before = Path("/proc/self/cgroup").read_text()
    primer = MigrationPrimer()
    try:
        primer.prime()
        pid = primer.pid
        assert pid is not None
        shell_cgroups = Path(f"/proc/{pid}/cgroup").read_text()
        for _ in range(3):
            primer.prime()
    finally:
        primer.close()
    assert Path("/proc/self/cgroup").read_text() == before
    assert shell_cgroups == before


_KILLED = textwrap.dedent(
    """
    import os, sys, time
    from containerkit.linux.cgroups.prime import MigrationPrimer
    primer = MigrationPrimer()
    primer.prime()
    print(primer.pid, flush=True)
    time.sleep(60)
    """
)


@root_only
def test_the_shell_leaves_when_its_starter_is_killed() -> None:
    starter = subprocess.Popen(
        [sys.executable, "-c", _KILLED], stdout=subprocess.PIPE, start_new_session=False
    )
    assert starter.stdout is not None
    pid = int(starter.stdout.readline())
    assert _alive(pid)
    starter.send_signal(signal.SIGKILL)
    starter.wait()
    _eventually(lambda: not _alive(pid), "the orphaned shell to leave at EOF")


def test_close_without_waiting_returns_and_the_shell_still_leaves(tmp_path: Path) -> None:
    """What a process about to exit does (the command line): it does not wait for the shell."""
    target = tmp_path / "cgroup.procs"
    target.write_text("")
    primer = MigrationPrimer(target)
    primer.prime()
    pid = primer.pid
    assert pid is not None
    primer.close(wait=False)
    assert primer.pid is None
    _eventually(lambda: not _alive(pid), "the shell to leave at EOF")
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)  # ours to reap here, as its Popen was let go

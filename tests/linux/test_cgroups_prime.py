"""prime_migration: the pid is "moved" into the cgroup it already is in, in a hierarchy that
really holds it; nothing about the process changes."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from containerkit.linux.cgroups import prime

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: writes cgroup.procs")


@pytest.fixture
def sleeper() -> Iterator[int]:
    process = subprocess.Popen(["sleep", "60"])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait()


def test_the_procs_file_found_lists_the_process(sleeper: int) -> None:
    path = prime._procs_file(sleeper)
    assert path is not None
    assert str(sleeper) in path.read_text().split()


def test_priming_moves_nothing(sleeper: int) -> None:
    before = Path(f"/proc/{sleeper}/cgroup").read_text()
    prime.prime_migration(sleeper)
    deadline = time.monotonic() + 10
    while any(t.name == "cgroup-prime" for t in threading.enumerate()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert Path(f"/proc/{sleeper}/cgroup").read_text() == before


def test_a_gone_process_is_no_error() -> None:
    process = subprocess.Popen(["true"])
    process.wait()
    prime.prime_migration(process.pid)  # nothing to look up: nothing happens
    assert prime._procs[process.pid] is None

"""The exit codes kept for the late waiters of auto-removed containers: each removal keeps one,
and the expired ones are swept, at most once a minute (a sweep stats every kept code)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import containerkit as ck
from containerkit.engine.container_service import KEEP_EXITS


def _aged(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_kept_exit_code_is_read_back_and_expired_ones_are_swept(engine: ck.Engine) -> None:
    service = engine.container_service
    exits = engine.root / "exits"
    service.keep_exit("a" * 64, 3, None)
    assert service.removed_exit_code("a" * 64) == 3
    _aged(exits / ("a" * 64), KEEP_EXITS + 5)
    _aged(exits / ".swept", 3600)  # the last sweep long ago: the next keep sweeps
    service.keep_exit("b" * 64, 0, None)
    assert service.removed_exit_code("a" * 64) is None
    assert service.removed_exit_code("b" * 64) == 0
    # swept just now: the next keep leaves an expired code for the next sweep
    _aged(exits / ("b" * 64), KEEP_EXITS + 5)
    service.keep_exit("c" * 64, 1, None)
    assert service.removed_exit_code("b" * 64) == 0
    _aged(exits / ".swept", 3600)
    service.keep_exit("d" * 64, 2, None)
    assert service.removed_exit_code("b" * 64) is None
    assert [service.removed_exit_code(c * 64) for c in "cd"] == [1, 2]

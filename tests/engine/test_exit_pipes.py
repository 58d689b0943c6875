"""The exit pipes an Engine keeps for the containers it started: a wait wakes on the pipe's EOF
(the shim's exit record is there by then); none outlives its container or the Engine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import containerkit as ck

from .conftest import IMAGE, leftovers


def _pipes(engine: ck.Engine) -> dict[str, int]:
    return dict(engine.container_service._exit_fds)


def _is_open(fd: int) -> bool:
    return os.path.exists(f"/proc/self/fd/{fd}")


def test_a_wait_uses_the_pipe_and_lets_it_go(engine: ck.Engine) -> None:
    c = engine.containers.run(IMAGE, ["sh", "-c", "exit 3"], network="none")
    fd = _pipes(engine)[c.id]
    assert os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:")
    assert c.wait(timeout=30) == 3
    assert c.id not in _pipes(engine)
    assert not _is_open(fd)
    assert c.status == "exited"
    c.remove()
    assert leftovers(c.id) == []


def test_a_timed_out_wait_keeps_it_for_the_next(engine: ck.Engine) -> None:
    c = engine.containers.run(IMAGE, ["sleep", "30"], network="none")
    fd = _pipes(engine)[c.id]
    try:
        with pytest.raises(ck.Timeout):
            c.wait(timeout=0.05)
        assert _pipes(engine)[c.id] == fd
        c.kill("SIGKILL")
        assert c.wait(timeout=30) == 137
        assert not _is_open(fd)
    finally:
        c.remove(force=True)
    assert leftovers(c.id) == []


def test_remove_and_close_let_go_of_unwaited_pipes(engine_root: Path) -> None:
    with ck.Engine(root=engine_root) as engine:
        removed = engine.containers.run(IMAGE, ["sleep", "30"], network="none")
        kept = engine.containers.run(IMAGE, ["sleep", "30"], network="none")
        first, second = _pipes(engine)[removed.id], _pipes(engine)[kept.id]
        removed.remove(force=True)
        assert removed.id not in _pipes(engine) and not _is_open(first)
    assert not _is_open(second)  # the container runs on without it
    with ck.Engine(root=engine_root) as again:
        survivor = again.containers.get(kept.id)
        assert survivor.status == "running"
        survivor.remove(force=True)
    assert leftovers(removed.id) == [] and leftovers(kept.id) == []

"""The exit pipes an Engine keeps for the containers it started: a wait wakes on the pipe's EOF
(the shim's exit record is there by then); none outlives its container or the Engine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import containerkit as ck

from .conftest import IMAGE, leftovers


def _pipes(engine: ck.Engine) -> dict[str, tuple[int, str]]:
    """Each held exit pipe as (fd, "pipe:[inode]"): a closed fd's number may be reused at once."""
    return {
        cid: (fd, os.readlink(f"/proc/self/fd/{fd}"))
        for cid, fd in engine.container_service._exit_fds.items()
    }


def _is_open(pipe: tuple[int, str]) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{pipe[0]}") == pipe[1]
    except FileNotFoundError:
        return False


def test_a_wait_uses_the_pipe_and_lets_it_go(engine: ck.Engine) -> None:
    c = engine.containers.run(IMAGE, ["sh", "-c", "exit 3"], network="none")
    fd = _pipes(engine)[c.id]
    assert fd[1].startswith("pipe:")
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


def test_remove_and_close_let_go_of_unwaited_pipes(engine: ck.Engine, engine_root: Path) -> None:
    """A second Engine on the session's root (which has the image) that is closed here."""
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

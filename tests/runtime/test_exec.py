"""Exec into running containers: exit codes, streams, stdin, tty, missing commands."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from containerkit.errors import CommandNotFound
from containerkit.linux import proc
from containerkit.runtime import state
from containerkit.runtime.exec import RuncTarget, start_exec
from containerkit.runtime.shim import StartedContainer, start_container
from containerkit.runtime.spawner import Spawner
from tests.runtime._shim_harness import RUNTIMES, Boxes, boxes_fixture  # noqa: F401 - the boxes fixture


@pytest.fixture(scope="module")
def spawner() -> Iterator[Spawner]:
    with Spawner() as s:
        yield s


class Running:
    def __init__(self, boxes: Boxes, spawner: Spawner, runtime: str) -> None:
        self.request = boxes.request(["sleep", "60"], runtime=runtime)
        self.started: StartedContainer = start_container(self.request, spawner=spawner)
        self.runtime = runtime
        self.spawner = spawner

    def exec(self, args: list[str], **kw: Any) -> Any:
        process = {"args": args, "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}}
        runc = None
        if self.runtime != "builtin":
            assert self.request.runc_root is not None
            runc = RuncTarget(
                runtime=self.runtime, root=self.request.runc_root, container_id=self.request.container_id
            )
        spawner = kw.pop("spawner", self.spawner)
        return start_exec(self.started.pid, process, spawner=spawner, runc=runc, **kw)

    def stop(self) -> None:
        proc.send_signal(self.started.pid, 9, self.started.pid_start_time)
        state.wait_for_exit(self.request.state_dir, timeout=10)


@pytest.fixture(params=RUNTIMES)
def running(request: pytest.FixtureRequest, boxes: Boxes, spawner: Spawner) -> Iterator[Running]:
    box = Running(boxes, spawner, request.param)
    yield box
    box.stop()


def test_exit_code_and_streams(running: Running) -> None:
    with running.exec(["sh", "-c", "echo out; echo err >&2; hostname; exit 7"]) as p:
        out, err = p.communicate(timeout=10)
        assert p.wait(10) == 7
    assert (out, err) == (b"out\nbox\n", b"err\n")
    assert p.error is None


def test_signal_exit(running: Running) -> None:
    with running.exec(["sh", "-c", "kill -9 $$"]) as p:
        p.communicate(timeout=10)
        assert p.wait(10) == 137


def test_missing_command_is_126_with_error(running: Running) -> None:
    """dockerd's code for an exec that could not start (a shell's 127 is only ``docker run``'s)."""
    with running.exec(["no-such-command"]) as p:
        p.communicate(timeout=10)
        assert p.wait(10) == 126
        assert isinstance(p.error, CommandNotFound)
        assert "no-such-command" in str(p.error)


def test_stdin(running: Running) -> None:
    with running.exec(["sh", "-c", "tr a-z A-Z"], stdin=True) as p:
        out, _err = p.communicate(b"hello\n", timeout=10)
        assert p.wait(10) == 0
    assert out == b"HELLO\n"


def test_tty(running: Running) -> None:
    with running.exec(["sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo is-a-tty; echo err >&2"], tty=True) as p:
        assert p.stderr is None
        out, _ = p.communicate(timeout=10)
        assert p.wait(10) == 0, (p.error, out)
    assert out == b"is-a-tty\r\nerr\r\n"


def test_sees_the_container(running: Running) -> None:
    with running.exec(["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"]) as p:
        out, _ = p.communicate(timeout=10)
        assert p.wait(10) == 0
    assert out == b"sleep 60 "


def test_without_spawner(boxes: Boxes, spawner: Spawner) -> None:
    box = Running(boxes, spawner, "builtin")
    try:
        with box.exec(["sh", "-c", "echo fresh; exit 4"], spawner=None) as p:
            out, _ = p.communicate(timeout=10)
            assert p.wait(10) == 4
        assert out == b"fresh\n"
        with box.exec(["nope"], spawner=None) as p:
            p.communicate(timeout=10)
            assert p.wait(10) == 126
            assert isinstance(p.error, CommandNotFound)
    finally:
        box.stop()

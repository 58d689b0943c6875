"""What :mod:`containerkit.api` promises, run against the in-process Engine here and against a
Client on a real containerkitd in ``tests/client/test_backend_api_via_daemon.py``."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import containerkit as ck
from containerkit import api

from .conftest import IMAGE


@pytest.fixture
def sleeper(engine: api.Backend) -> Iterator[api.ContainerHandle]:
    container = engine.containers.run(IMAGE, ["sleep", "60"])
    yield container
    container.remove(force=True)


def test_backend_pings(engine: api.Backend) -> None:
    assert engine.ping() is True


def test_exec_resize_reaches_the_exec_terminal(sleeper: api.ContainerHandle) -> None:
    """The exec's process is told its new size (SIGWINCH) and its terminal reports it."""
    # without a SIGWINCH the loop ends by itself after 5 s, and says so
    script = (
        "trap 'stty size; exit 0' WINCH; echo ready; "
        "i=0; while [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; echo no-winch"
    )
    handle = api.exec_stream(sleeper, ["sh", "-c", script], tty=True)
    with handle:
        chunks = handle.stream()
        seen = b""
        deadline = time.monotonic() + 10
        while b"ready" not in seen and time.monotonic() < deadline:
            seen += next(chunks)[1]
        handle.resize(41, 137)
        seen += b"".join(chunk for _stream, chunk in chunks)
        handle.wait(timeout=10)
    assert b"41 137" in seen, seen


def test_exec_resize_without_a_tty_does_nothing(sleeper: api.ContainerHandle) -> None:
    handle = api.exec_stream(sleeper, ["sh", "-c", "echo plain"])
    with handle:
        handle.resize(41, 137)
        assert b"".join(handle) == b"plain\n"
        assert handle.wait(timeout=10) == 0


def test_attach_carries_stdin_to_a_stdin_once_container(engine: api.Backend) -> None:
    """Attach, then start: what is written reaches the command, and closing stdin is its EOF."""
    container = engine.containers.create(
        image=IMAGE, command=["sh", "-c", "timeout 10 cat; echo done:$?"], stdin_open=True, stdin_once=True
    )
    try:
        with container.attach(stdin=True) as stream:
            container.start()
            stream.write_stdin(b"hello ")
            stream.write_stdin(b"world\n")
            stream.close_stdin()
            out = b"".join(chunk for _stream, chunk in stream)
        assert container.wait(timeout=10) == 0
        assert out == b"hello world\ndone:0\n"  # cat saw EOF (not the 10 s timeout)
    finally:
        container.remove(force=True)


def test_attach_without_stdin_refuses_to_write(sleeper: api.ContainerHandle) -> None:
    with sleeper.attach() as stream:
        with pytest.raises(ck.RuntimeFailure, match="no open stdin"):
            stream.write_stdin(b"x")
        stream.close_stdin()  # nothing to close: no error


def test_the_protocols_are_exported() -> None:
    assert ck.Backend is api.Backend
    assert ck.ContainerHandle is api.ContainerHandle
    assert ck.ExecHandle is api.ExecHandle
    assert ck.NetworkHandle is api.NetworkHandle

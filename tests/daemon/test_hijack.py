"""Hijacked streams (exec start, attach) never lose their first output, with no sleep in the daemon.

docker-py parses the ``101 UPGRADED`` head through http.client's buffered reader and then reads
the stream from the raw socket: bytes that arrived together with the head sit in that buffer
and are lost. The daemon starts a stream only once the client has read the head. The
slow-reader tests make the race certain (a client that reads its answer late, as a busy
process does); the round-trip tests run the real clients many times.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import IMAGE

SLOW = 0.2
"""How late the slow client reads its answers (seconds): long after the daemon wrote them."""


@pytest.fixture
def sleeper(client: Any) -> Iterator[Any]:
    container = client.containers.run(IMAGE, ["sleep", "600"], detach=True)
    yield container
    container.remove(force=True)


@pytest.fixture
def slow_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every response of this test process is read SLOW seconds after its request was sent."""
    begin = http.client.HTTPResponse.begin

    def late_begin(self: http.client.HTTPResponse) -> None:
        time.sleep(SLOW)
        begin(self)

    monkeypatch.setattr(http.client.HTTPResponse, "begin", late_begin)


def test_exec_output_reaches_a_client_that_reads_its_answer_late(sleeper: Any, slow_reader: None) -> None:
    for _ in range(3):
        result = sleeper.exec_run("echo x")
        assert (result.exit_code, result.output) == (0, b"x\n")
    result = sleeper.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
    assert result.output == (b"o\n", b"e\n")


def test_attach_replay_reaches_a_client_that_reads_its_answer_late(client: Any, slow_reader: None) -> None:
    container = client.containers.run(IMAGE, ["echo", "hello"], detach=True)
    try:
        assert container.wait()["StatusCode"] == 0
        # logs=1: the daemon writes the replay right after the head, before the client reads it
        assert container.attach(stdout=True, stderr=True, logs=True) == b"hello\n"
    finally:
        container.remove(force=True)


def test_200_docker_py_exec_runs_keep_their_output(sleeper: Any) -> None:
    lost = []
    for i in range(200):
        result = sleeper.exec_run(["echo", f"x{i}"])
        if (result.exit_code, result.output) != (0, f"x{i}\n".encode()):
            lost.append((i, result.exit_code, result.output))
    assert lost == []


def test_50_docker_cli_run_rm_keep_their_output(cli: Any) -> None:
    lost = []
    for i in range(50):
        result = cli("run", "--rm", IMAGE, "echo", f"hi{i}", check=False)
        if (result.returncode, result.stdout) != (0, f"hi{i}\n"):
            lost.append((i, result.returncode, result.stdout, result.stderr[-200:]))
    assert lost == []


def test_docker_cli_exec_keeps_its_output(cli: Any, sleeper: Any) -> None:
    for i in range(20):
        result = cli("exec", sleeper.id, "echo", f"e{i}")
        assert result.stdout == f"e{i}\n"
    assert cli("exec", "-i", sleeper.id, "cat", input="in\n").stdout == "in\n"

"""``docker run --rm``'s requests on raw sockets, in its order: the wait that is already blocked
when the container starts watches that run itself (counts the exit, removes the container).

What must hold whatever thread does it: the attach stream carries all the output before it
closes, the wait answers the right exit code and only once the container is gone, and a wait
whose client left still sees its run through (the container is removed, a later wait answers).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import containerkit as ck
from containerkit.daemon import monitor as monitor_module
from containerkit.daemon.events import EventBus
from containerkit.daemon.monitor import Monitor

from .conftest import IMAGE, Daemon

TIMEOUT = 30.0
"""How long any one read may block: a wait that never answers fails the test instead of hanging."""
CLOSE = "Connection: close\r\n"


def _connect(daemon: Daemon) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(TIMEOUT)
    sock.connect(str(daemon.socket))
    return sock


def _send(sock: socket.socket, method: str, path: str, body: bytes = b"", extra: str = "") -> None:
    head = f"{method} {path} HTTP/1.1\r\nHost: api.moby.localhost\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    sock.sendall(f"{head}{extra}\r\n".encode() + body)


def _head(sock: socket.socket) -> tuple[int, bytes]:
    """The status of the response and what came after its head."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response head: {data[:80]!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), rest


def _read_to_eof(sock: socket.socket, data: bytes = b"") -> bytes:
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _demux(data: bytes) -> bytes:
    """stdout and stderr of a multiplexed attach stream, in order."""
    out = b""
    while data:
        assert len(data) >= 8, f"a cut frame header: {data!r}"
        size = struct.unpack(">I", data[4:8])[0]
        out += data[8 : 8 + size]
        data = data[8 + size :]
    return out


def _status_code(body: bytes) -> int:
    """StatusCode of a wait answer (chunked: the JSON line sits between chunk sizes)."""
    line = next(line for line in body.split(b"\r\n") if line.startswith(b"{"))
    value: Any = json.loads(line)
    assert value["Error"] is None, value
    return int(value["StatusCode"])


def _create(daemon: Daemon, script: str) -> str:
    body = {
        "Image": IMAGE,
        "Cmd": ["sh", "-c", script],
        "AttachStdout": True,
        "AttachStderr": True,
        "HostConfig": {"AutoRemove": True, "NetworkMode": "none"},
    }
    status, _headers, answer = daemon.request(
        "POST", "/v1.50/containers/create", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    assert status == 201, answer
    container_id: str = json.loads(answer)["Id"]
    return container_id


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """Sockets a test opens, closed whatever happens."""
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def _start(daemon: Daemon, container_id: str) -> None:
    status, _headers, body = daemon.request("POST", f"/v1.50/containers/{container_id}/start")
    assert status == 204, body


def _wait_removed(daemon: Daemon, container_id: str, sockets: list[socket.socket]) -> socket.socket:
    waiter = _connect(daemon)
    sockets.append(waiter)
    # Connection: close, so the answer ends with the connection (read to EOF)
    _send(waiter, "POST", f"/v1.50/containers/{container_id}/wait?condition=removed", extra=CLOSE)
    assert _head(waiter)[0] == 200
    return waiter


def test_run_rm_sequence_keeps_output_code_and_removal_order(
    daemon: Daemon, sockets: list[socket.socket]
) -> None:
    """30 runs as the CLI sends them: output whole, the code right, and removed before the answer."""
    wrong = []
    for i in range(30):
        container_id = _create(daemon, f"echo out{i}; echo err{i} >&2; exit {i % 4}")
        attach = _connect(daemon)
        sockets.append(attach)
        _send(
            attach,
            "POST",
            f"/v1.50/containers/{container_id}/attach?stderr=1&stdout=1&stream=1",
            extra="Connection: Upgrade\r\nUpgrade: tcp\r\n",
        )
        status, early = _head(attach)
        assert status == 101
        attach.shutdown(socket.SHUT_WR)  # no stdin, as the CLI
        waiter = _wait_removed(daemon, container_id, sockets)
        _start(daemon, container_id)
        output = _demux(_read_to_eof(attach, early))
        code = _status_code(_read_to_eof(waiter))
        inspected = daemon.request("GET", f"/v1.50/containers/{container_id}/json")[0]
        if (sorted(output.split()), code, inspected) != (sorted([b"out%d" % i, b"err%d" % i]), i % 4, 404):
            wrong.append((i, output, code, inspected))
    assert wrong == []


def test_a_wait_whose_client_left_still_sees_the_run_removed(
    daemon: Daemon, sockets: list[socket.socket]
) -> None:
    """The first wait took the run's watch, then its client hung up: the container is removed all
    the same, and a wait sent after the exit answers its code (kept beyond the removal)."""
    container_id = _create(daemon, "sleep 0.5; exit 3")
    first = _wait_removed(daemon, container_id, sockets)
    _start(daemon, container_id)
    first.close()
    second = _wait_removed(daemon, container_id, sockets)
    assert _status_code(_read_to_eof(second)) == 3
    assert daemon.request("GET", f"/v1.50/containers/{container_id}/json")[0] == 404


def test_two_waits_on_one_run_both_answer(daemon: Daemon, sockets: list[socket.socket]) -> None:
    """The first wait (next-exit) watches the run; the second (removed) is woken by it, and only
    once the container is gone: it is inspected before the watching wait's answer is read."""
    container_id = _create(daemon, "sleep 0.2; exit 5")
    next_exit = _connect(daemon)
    sockets.append(next_exit)
    _send(next_exit, "POST", f"/v1.50/containers/{container_id}/wait?condition=next-exit", extra=CLOSE)
    assert _head(next_exit)[0] == 200
    removed = _wait_removed(daemon, container_id, sockets)
    _start(daemon, container_id)
    assert _status_code(_read_to_eof(removed)) == 5
    assert daemon.request("GET", f"/v1.50/containers/{container_id}/json")[0] == 404
    assert _status_code(_read_to_eof(next_exit)) == 5


def test_watches_held_by_waiters_are_bounded(
    tmp_path: Path, busybox_rootfs_tar: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond ADOPT_MAX watches held by waiters, a run's watch gets a thread of its own even
    when a waiter is idle on it: abandoned waits (docker run -d) never hold more stream threads.
    In-process (a Monitor on an Engine), to lower the bound and see the threads."""
    monkeypatch.setattr(monitor_module, "ADOPT_MAX", 1)
    with ck.Engine(root=tmp_path / "root") as engine:
        engine.images.import_rootfs(busybox_rootfs_tar, IMAGE, config={"Cmd": ["sh"]})
        monitor = Monitor(engine, EventBus(engine.event_log))
        containers = [engine.containers.create(image=IMAGE, command=["sleep", "30"]) for _ in range(2)]
        codes: dict[str, int] = {}
        waits = [
            threading.Thread(
                target=lambda c=c: codes.__setitem__(
                    c.id, monitor.waiter(c.id, "next-exit").wait(c, lambda: False)
                )
            )
            for c in containers
        ]
        try:
            for thread in waits:
                thread.start()
            deadline = time.monotonic() + TIMEOUT
            while len(monitor._idle) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(monitor._idle) == 2, "the waits did not block"
            for container in containers:
                container.start()
                monitor.watch(container)
            names = {t.name for t in threading.enumerate()}
            first, second = (f"watch-{c.id[:12]}" for c in containers)
            assert first not in names  # its waiter watches it
            assert second in names  # the bound: a thread of its own
        finally:
            for container in containers:
                container.remove(force=True)
            for thread in waits:
                thread.join(TIMEOUT)
        assert sorted(codes.values()) == [137, 137]

"""Wait strategies against real containers (and HTTP/TCP probes against a host server)."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import containerkit as ck
from containerkit import wait


def test_log_counts_occurrences_across_polls(containerkit_run: Any, busybox: str) -> None:
    container = containerkit_run(
        busybox, "echo tick; sleep 0.3; echo tock; echo tick; sleep 30", wait=wait.log(r"^tick$", times=2)
    )
    assert container.logs().count(b"tick") == 2


def test_log_line_written_just_before_exit_counts(containerkit_run: Any, busybox: str) -> None:
    containerkit_run(busybox, "echo done", wait=wait.log("done"), wait_timeout=10)


def test_stderr_only(containerkit_run: Any, busybox: str) -> None:
    with pytest.raises(wait.WaitTimeout):
        containerkit_run(busybox, "echo out; sleep 30", wait=wait.log("out", stdout=False), wait_timeout=0.5)
    containerkit_run(busybox, "echo err >&2; sleep 30", wait=wait.log("err", stdout=False))


def test_timeout_names_what_was_waited_for_and_shows_logs(containerkit_run: Any, busybox: str) -> None:
    started = time.monotonic()
    with pytest.raises(wait.WaitTimeout) as caught:
        containerkit_run(busybox, "echo booting; sleep 30", wait=wait.log("never"), wait_timeout=0.5)
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "timed out after 0.5 s waiting for a log line matching 'never'" in message
    assert "booting" in message
    assert isinstance(caught.value, ck.Timeout)
    assert caught.value.waited_for == "a log line matching 'never'"
    assert caught.value.exit_code is None


def test_exit_fails_fast_with_status_and_logs(containerkit_run: Any, busybox: str) -> None:
    started = time.monotonic()
    with pytest.raises(wait.ContainerExited) as caught:
        containerkit_run(busybox, "echo cannot bind >&2; exit 3", wait=wait.log("ready"), wait_timeout=30)
    assert time.monotonic() - started < 10
    assert caught.value.exit_code == 3
    assert "exited with status 3" in str(caught.value)
    assert "cannot bind" in str(caught.value)


def test_command_and_all(containerkit_run: Any, busybox: str) -> None:
    ready = wait.all(wait.log("starting"), wait.command(["test", "-f", "/tmp/ready"]))
    container = containerkit_run(busybox, "echo starting; sleep 0.3; touch /tmp/ready; sleep 30", wait=ready)
    assert container.exec(["test", "-f", "/tmp/ready"]).exit_code == 0


def test_command_failure_detail(containerkit_run: Any, busybox: str) -> None:
    with pytest.raises(wait.WaitTimeout, match=r"command 'cat /nope' to exit 0.*exit status 1"):
        containerkit_run(busybox, "sleep 30", wait=wait.command(["cat", "/nope"]), wait_timeout=0.5)


def test_all_names_the_pending_strategy(containerkit_run: Any, busybox: str) -> None:
    strategy = wait.all(wait.log("up"), wait.log("never"))
    with pytest.raises(wait.WaitTimeout, match="still waiting for a log line matching 'never'"):
        containerkit_run(busybox, "echo up; sleep 30", wait=strategy, wait_timeout=0.5)


@pytest.mark.skipif(not hasattr(ck.Container, "ports"), reason="the engine does not publish ports yet")
def test_http_through_a_published_port(containerkit_run: Any, busybox: str) -> None:
    container = containerkit_run(
        busybox,
        "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www",
        ports={"80/tcp": None},
        wait=wait.all(wait.port(80), wait.http("/", port=80)),
    )
    host, port = wait.host_address(container, 80)
    assert host == "127.0.0.1"
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert b"hello" in sock.recv(4096) + sock.recv(4096)


# -- probes against a host server, through a stand-in container --------------------------


class FakeContainer:
    """Just what the port and HTTP strategies read: published ports, status and logs."""

    name = "fake"
    id = "f" * 64
    short_id = "f" * 12
    exit_code = None

    def __init__(self, ports: dict[str, Any]) -> None:
        self.ports = ports
        self.status = "running"

    def logs(self, **kwargs: Any) -> bytes:
        return b"fake log line\n"


@pytest.fixture
def http_server() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(204 if self.path == "/empty" else 503)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


def test_http_status_forms(http_server: int) -> None:
    container = FakeContainer({"80/tcp": [("0.0.0.0", http_server)]})
    wait.until(container, wait.http("/empty", port=80, status=204), timeout=5)
    wait.until(container, wait.http("/empty", port=80, status=range(200, 300)), timeout=5)
    wait.until(container, wait.http("/empty", port=80, status={204, 205}), timeout=5)
    wait.until(container, wait.http("/empty", port=80, status=lambda code: code < 400), timeout=5)
    with pytest.raises(wait.WaitTimeout, match=r"answer 200.*answered 503"):
        wait.until(container, wait.http("/", port=80), timeout=2)


def test_port_accepts_the_docker_api_shape(http_server: int) -> None:
    container = FakeContainer({"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(http_server)}]})
    wait.until(container, wait.port(80), timeout=5)
    assert wait.host_address(container, 80) == ("127.0.0.1", http_server)


def test_port_refused_then_timeout() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    container = FakeContainer({"80/tcp": [("0.0.0.0", free)]})
    with pytest.raises(wait.WaitTimeout, match=rf"port 80/tcp to accept connections.*127.0.0.1:{free}"):
        wait.until(container, wait.port(80), timeout=0.3)


def test_unpublished_port_is_named() -> None:
    container = FakeContainer({"80/tcp": [("0.0.0.0", 1)]})
    with pytest.raises(ck.InvalidArgument, match=r"port 8080/tcp .* not published \(published: 80/tcp\)"):
        wait.until(container, wait.port(8080), timeout=1)


def test_bad_arguments() -> None:
    with pytest.raises(ck.InvalidArgument, match="udp"):
        wait.port(53, "udp")
    with pytest.raises(ck.InvalidArgument, match="times"):
        wait.log("x", times=0)
    with pytest.raises(ck.InvalidArgument, match="path"):
        wait.http("health")
    with pytest.raises(ck.InvalidArgument, match="no strategies"):
        wait.all()


class RemoteLogs(FakeContainer):
    """Logs as a client returns them: ``since`` filters by time, stamps prefix each line."""

    def __init__(self) -> None:
        super().__init__({})
        self.records: list[tuple[str, str]] = []
        self.calls: list[float | None] = []

    def logs(self, *, since: float | None = None, timestamps: bool = False, **kw: Any) -> bytes:
        self.calls.append(since)
        from containerkit.wait import _stamp_seconds

        picked = [(s, t) for s, t in self.records if since is None or _stamp_seconds(s) >= since]
        return "".join(f"{s} {t}\n" if timestamps else f"{t}\n" for s, t in picked).encode()


def test_remote_log_cursor_reads_each_line_once() -> None:
    container = RemoteLogs()
    probe = wait.log("hit", times=3).probe(container)
    stamp = "2024-05-01T12:00:00.100000000Z"
    container.records += [(stamp, "hit"), (stamp, "hit")]
    assert not probe.ready(1)
    container.records += [(stamp, "miss"), ("2024-05-01T12:00:01.000000000Z", "other")]
    assert not probe.ready(1)
    assert probe.detail == "seen 2 of 3"
    container.records.append(("2024-05-01T12:00:01.000000000Z", "hit"))
    assert probe.ready(1)
    assert container.calls[0] is None and container.calls[-1] is not None

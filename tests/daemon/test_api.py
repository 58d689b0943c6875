"""The HTTP layer and bad input, spoken directly: headers, versions, errors, chunked bodies, hijack."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

from .conftest import IMAGE, Daemon, UnixHTTPConnection


def _json(body: bytes) -> Any:
    return json.loads(body)


def test_ping_headers_and_version_prefixes(daemon: Daemon) -> None:
    status, headers, body = daemon.request("HEAD", "/_ping")
    assert (status, body) == (200, b"")
    assert (
        headers["Api-Version"] == "1.50" and headers["Ostype"] == "linux" and headers["Swarm"] == "inactive"
    )
    assert daemon.request("GET", "/v1.24/_ping")[2] == b"OK"
    status, _, body = daemon.request("GET", "/v1.51/version")
    assert status == 400 and "client version 1.51 is too new" in _json(body)["message"]
    assert daemon.request("GET", "/v1.12/version")[0] == 400
    status, _, body = daemon.request("GET", "/no/such/path")
    assert status == 404 and _json(body)["message"] == "page not found"
    assert daemon.request("GET", "/v1.50/swarm")[0] == 503
    assert daemon.request("GET", "/services")[0] == 503


def test_errors_name_what_failed_and_carry_the_kind(daemon: Daemon) -> None:
    status, _, body = daemon.request("GET", "/containers/nosuch/json")
    assert status == 404 and _json(body) == {"message": "No such container: nosuch", "kind": "not_found"}
    status, _, body = daemon.request("GET", "/images/nosuch:1/json")
    assert status == 404 and "No such image: nosuch:1" in _json(body)["message"]


def test_bad_bodies_are_refused_and_change_nothing(daemon: Daemon) -> None:
    before = daemon.request("GET", "/containers/json?all=1")[2]
    cases = [
        (b"{not json", 400, "invalid JSON"),
        (b"[1, 2]", 400, "expected a JSON object"),
        (json.dumps({"Image": IMAGE, "Cmd": 5}).encode(), 400, "Cmd"),
        (json.dumps({"Image": IMAGE, "HostConfig": {"Memory": "lots"}}).encode(), 400, "HostConfig.Memory"),
        (json.dumps({"Image": IMAGE, "HostConfig": {"PidMode": "host"}}).encode(), 400, "PidMode"),
        (json.dumps({"Image": ""}).encode(), 400, "Image"),
        (json.dumps({"Image": "nosuch:1"}).encode(), 404, "No such image"),
    ]
    for body, status, words in cases:
        got, _, answer = daemon.request(
            "POST", "/containers/create", body, {"Content-Type": "application/json"}
        )
        assert got == status and words in _json(answer)["message"], (body, got, answer)
    got, _, answer = daemon.request(
        "POST", "/containers/create?name=bad/name", json.dumps({"Image": IMAGE}).encode()
    )
    assert got == 400 and "invalid container name" in _json(answer)["message"]
    # unknown keys are ignored, as dockerd (Go's encoding/json) does
    got, _, answer = daemon.request(
        "POST", "/containers/create", json.dumps({"Image": IMAGE, "Bogus": 1}).encode()
    )
    assert got == 201
    daemon.request("DELETE", f"/containers/{_json(answer)['Id']}")
    assert daemon.request("GET", "/containers/json?all=1")[2] == before


def test_huge_body_is_413_and_the_daemon_keeps_serving(daemon: Daemon) -> None:
    for chunked in (False, True):  # a declared length over the limit, and a chunked body that grows past it
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(daemon.socket))
        length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {5 << 20}"
        sock.sendall(f"POST /containers/create HTTP/1.1\r\nHost: x\r\n{length}\r\n\r\n".encode())
        try:
            for _ in range(5):
                piece = b" " * (1 << 20)
                sock.sendall(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece)
        except OSError:
            pass  # the daemon answered and closed before taking it all
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"exceeds the limit" in answer
        sock.close()
    conn = UnixHTTPConnection(str(daemon.socket))
    conn.putrequest("POST", "/containers/create")
    conn.putheader("Content-Length", str(10 << 30))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    assert daemon.request("GET", "/_ping")[0] == 200


def test_bad_filters_and_params(daemon: Daemon) -> None:
    assert daemon.request("GET", "/containers/json?filters=%7Bbad")[0] == 400
    assert daemon.request("GET", '/containers/json?filters={"nosuch":["x"]}'.replace('"', "%22"))[0] == 400
    assert daemon.request("POST", "/containers/nosuch/kill?signal=SIGNOPE")[0] == 404


def test_archive_path_traversal_is_refused(daemon: Daemon, client: Any) -> None:
    import io
    import tarfile

    c = client.containers.create(IMAGE, ["true"])
    try:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("../../../../escape.txt")
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        status, _, body = daemon.request("PUT", f"/containers/{c.id}/archive?path=/tmp", buf.getvalue())
        assert status == 400, body
        assert daemon.request("PUT", f"/containers/{c.id}/archive?path=/nosuchdir", buf.getvalue())[0] == 404
        assert daemon.request("PUT", f"/containers/{c.id}/archive?path=/tmp", b"not a tar" * 100)[0] == 400
    finally:
        c.remove(force=True)


def test_chunked_request_body_and_keep_alive(daemon: Daemon) -> None:
    conn = UnixHTTPConnection(str(daemon.socket))
    body = json.dumps({"Image": IMAGE, "Cmd": ["true"]}).encode()
    conn.request(
        "POST",
        "/containers/create",
        body=iter([body[:10], body[10:]]),
        encode_chunked=True,
        headers={"Transfer-Encoding": "chunked"},
    )
    response = conn.getresponse()
    created = _json(response.read())
    assert response.status == 201
    conn.request("DELETE", f"/containers/{created['Id']}")  # the same connection
    assert conn.getresponse().status == 204
    conn.close()


def test_slow_streams_do_not_block_others(daemon: Daemon) -> None:
    """An open events stream and a follow on a quiet container, while 50 pings run concurrently."""
    events = socket.socket(socket.AF_UNIX)
    events.connect(str(daemon.socket))
    events.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    assert events.recv(4096).startswith(b"HTTP/1.1 200")
    results: list[int] = []

    def ping() -> None:
        results.append(daemon.request("GET", "/_ping")[0])

    started = time.monotonic()
    threads = [threading.Thread(target=ping) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [200] * 50 and time.monotonic() - started < 10
    events.close()


def test_attach_hijack_before_start(daemon: Daemon) -> None:
    """docker run's order: create, attach (101), wait (headers at once), start; then the output."""
    _, _, body = daemon.request(
        "POST", "/containers/create", json.dumps({"Image": IMAGE, "Cmd": ["echo", "att"]}).encode()
    )
    cid = _json(body)["Id"]
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(daemon.socket))
    sock.sendall(
        f"POST /v1.50/containers/{cid}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: x\r\n"
        "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101 UPGRADED")
    assert b"application/vnd.docker.multiplexed-stream" in head
    wait = socket.socket(socket.AF_UNIX)
    wait.connect(str(daemon.socket))
    wait.sendall(f"POST /containers/{cid}/wait?condition=next-exit HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert wait.recv(12) == b"HTTP/1.1 200"  # before start: the CLI waits for these headers
    assert daemon.request("POST", f"/containers/{cid}/start")[0] == 204
    stream = b""
    while chunk := sock.recv(4096):
        stream += chunk
    assert stream == b"\x01\x00\x00\x00\x00\x00\x00\x04att\n"
    rest = b""
    while b'"StatusCode": 0' not in rest:
        rest += wait.recv(4096)
    daemon.request("DELETE", f"/containers/{cid}")

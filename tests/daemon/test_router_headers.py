"""The router's first-segment shortcut answers as trying every route in turn, and request heads
are read as http.client read them (with a clear refusal where they cannot be)."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import pytest

from containerkit.daemon.app import DaemonApp
from containerkit.daemon.errors import MethodNotAllowed, PageNotFound
from containerkit.daemon.router import Handler, Router, _compile
from containerkit.daemon.server import MAX_HEADERS, HeaderError, Headers
from containerkit.engine import Engine

from .conftest import Daemon


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    """The daemon's own routes (an engine without a fork server: nothing runs here)."""
    with Engine(root=tmp_path_factory.mktemp("router") / "root", forkserver=False) as engine:
        yield DaemonApp(engine).router


def _every_route(router: Router, method: str, path: str) -> tuple[Handler, dict[str, str]] | str:
    """What the router answered before the shortcut: each route tried in the order added."""
    allowed = False
    for route_method, pattern, handler in router.routes():
        match = _compile(pattern).match(path)
        if match is None:
            continue
        if route_method == method or (method == "HEAD" and route_method == "GET"):
            return handler, match.groupdict()
        allowed = True
    return "405" if allowed else "404"


def _resolved(router: Router, method: str, path: str) -> tuple[Handler, dict[str, str]] | str:
    try:
        return router.resolve(method, path)
    except MethodNotAllowed:
        return "405"
    except PageNotFound:
        return "404"


def _paths(router: Router) -> Iterator[str]:
    """Each pattern with sample values, with a trailing slash, and some that match nothing."""
    for _method, pattern, _handler in router.routes():
        for value in ("abc", "docker.io/library/busybox:latest"):
            path = re.sub(r"\{[^}]+\}", value, pattern)
            yield path
            yield path + "/"
    yield from ("/", "", "nothing", "/nothing/here", "/containers", "/{id}/json", "//containers/json")


def test_the_shortcut_resolves_every_path_as_every_route_in_turn(router: Router) -> None:
    differ = []
    for path in _paths(router):
        for method in ("GET", "HEAD", "POST", "PUT", "DELETE"):
            if _resolved(router, method, path) != _every_route(router, method, path):
                differ.append((method, path))
    assert differ == []


def test_headers_by_any_case_first_of_repeated_and_folded() -> None:
    headers = Headers(
        b"Host: api.moby.localhost\r\nContent-Length:  12 \r\nX-A: one\r\nx-a: two\r\n"
        b"X-Long: first\r\n  second\r\n\tthird\r\n\r\n"
    )
    assert headers.get("content-length") == "12"
    assert headers.get("CONTENT-LENGTH") == "12"
    assert headers.get("X-A") == "one"
    assert headers.get("X-Long") == "first second third"
    assert headers.get("Transfer-Encoding") is None
    assert headers.get("Transfer-Encoding", "") == ""


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (b"Host api\r\n\r\n", "malformed header line"),
        (b"Host : api\r\n\r\n", "malformed header line"),
        (b": api\r\n\r\n", "malformed header line"),
        (b" folded\r\nHost: api\r\n\r\n", "continuation line before any header"),
        (b"".join(b"X-%d: v\r\n" % i for i in range(MAX_HEADERS + 1)) + b"\r\n", "more than 100"),
    ],
)
def test_heads_that_are_not_header_fields_are_refused(block: bytes, message: str) -> None:
    with pytest.raises(HeaderError, match=message):
        Headers(block)


def _answer_to(daemon: Daemon, head: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(str(daemon.socket))
        sock.sendall(head)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def test_the_daemon_answers_a_bad_head_400_and_too_many_fields_431(daemon: Daemon) -> None:
    bad = _answer_to(daemon, b"GET /_ping HTTP/1.1\r\nHost api\r\n\r\n")
    assert bad.startswith(b"HTTP/1.1 400"), bad[:200]
    assert b"malformed header line" in bad
    many = b"".join(b"X-%d: v\r\n" % i for i in range(MAX_HEADERS + 1))
    refused = _answer_to(daemon, b"GET /_ping HTTP/1.1\r\nHost: api\r\n" + many + b"\r\n")
    assert refused.startswith(b"HTTP/1.1 431"), refused[:200]


def test_a_good_head_is_still_answered(daemon: Daemon) -> None:
    answer = _answer_to(daemon, b"GET /_ping HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"OK"), answer[-200:]

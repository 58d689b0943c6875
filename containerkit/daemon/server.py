"""HTTP/1.1 plumbing: keep-alive, chunked request and response bodies, and the connection hijack.

A thread per connection (stdlib ``socketserver``), so a slow stream (``logs -f``, ``events``,
``attach``) holds only its own thread. Routes receive a :class:`Request` and return a
:class:`Response`; a route that took over the socket (``101 UPGRADED``) returns ``None``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import socket
import socketserver
import ssl
import tempfile
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import IO, Any, BinaryIO

import attrs

from containerkit.daemon.errors import PayloadTooLarge
from containerkit.errors import InvalidArgument

__all__ = [
    "JSON_LIMIT",
    "Request",
    "Response",
    "TCPServer",
    "UnixServer",
    "json_response",
]

log = logging.getLogger("containerkit.daemon")

JSON_LIMIT = 4 << 20
"""Largest JSON request body: docker's bodies are a few KiB; more is a mistake or an attack."""

TICK = None
"""What a stream yields to say "nothing yet": the server checks whether the client went away."""


@attrs.define
class Response:
    """A whole body (``body``) or a chunked stream (``stream``: bytes, or None as a keep-alive tick)."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: dict[str, str] = attrs.field(factory=dict)
    stream: Iterable[bytes | None] | None = None


def json_response(value: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(value).encode() + b"\n")


class _ChunkedReader:
    """A file-like view of a ``Transfer-Encoding: chunked`` request body."""

    def __init__(self, rfile: BinaryIO) -> None:
        self._rfile = rfile
        self._left = 0
        self._done = False

    def read(self, size: int = -1) -> bytes:
        out = bytearray()
        while not self._done and (size < 0 or len(out) < size):
            if self._left == 0:
                line = self._rfile.readline(1024)
                try:
                    self._left = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise InvalidArgument(
                        f"malformed chunked request body: chunk size {line[:40]!r}"
                    ) from None
                if self._left == 0:
                    while self._rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    self._done = True
                    break
            want = self._left if size < 0 else min(self._left, size - len(out))
            data = self._rfile.read(want)
            if not data:
                raise InvalidArgument("request body ended in the middle of a chunk")
            out += data
            self._left -= len(data)
            if self._left == 0:
                self._rfile.readline(16)  # the CRLF after the chunk
        return bytes(out)


class _LimitedReader:
    def __init__(self, rfile: BinaryIO, length: int) -> None:
        self._rfile = rfile
        self._left = length

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if size < 0 else min(size, self._left)
        data = self._rfile.read(want)
        self._left -= len(data)
        if not data:
            self._left = 0
        return data


class Request:
    """One API request: method, path (without the ``/vN`` prefix), query, body, and the socket."""

    def __init__(self, handler: _Handler, method: str, target: str) -> None:
        self._handler = handler
        self.method = method
        parsed = urllib.parse.urlsplit(target)
        self.raw_path = urllib.parse.unquote(parsed.path)
        self.path = self.raw_path
        self.query: dict[str, list[str]] = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        self.headers = handler.headers
        self.api_version = ""
        self.params: dict[str, str] = {}
        self._body: bytes | None = None
        self._reader: Any = None
        self.hijacked = False

    # -- query ------------------------------------------------------------------------------

    def q(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def qbool(self, name: str, default: bool = False) -> bool:
        """moby's ``BoolValue``: "", 0, no, false, none are false; anything else is true."""
        value = self.q(name)
        if value is None:
            return default
        return value.strip().lower() not in ("", "0", "no", "false", "none")

    def qint(self, name: str, default: int | None = None) -> int | None:
        value = self.q(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise InvalidArgument(f"query parameter {name}: expected an integer, got {value!r}") from None

    def qjson(self, name: str) -> Any:
        value = self.q(name)
        if not value:
            return None
        try:
            return json.loads(value)
        except ValueError as exc:
            raise InvalidArgument(f"query parameter {name}: invalid JSON: {exc}") from None

    # -- body -------------------------------------------------------------------------------

    def _body_reader(self) -> Any:
        if self._reader is None:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                self._reader = _ChunkedReader(self._handler.rfile)  # type: ignore[arg-type]
            else:
                self._reader = _LimitedReader(self._handler.rfile, self.content_length())  # type: ignore[arg-type]
        return self._reader

    def content_length(self) -> int:
        text = self.headers.get("Content-Length")
        if not text:
            return 0
        try:
            value = int(text)
        except ValueError:
            raise InvalidArgument(f"invalid Content-Length {text!r}") from None
        if value < 0:
            raise InvalidArgument(f"invalid Content-Length {text!r}")
        return value

    def body(self, limit: int = JSON_LIMIT) -> bytes:
        """The whole body, refusing (413) more than ``limit`` bytes without reading it all."""
        if self._body is None:
            if self.content_length() > limit:
                self._handler.close_connection = True
                raise PayloadTooLarge(
                    f"request body of {self.content_length()} bytes exceeds the limit of {limit}"
                )
            data = self._body_reader().read(limit + 1)
            if len(data) > limit:
                self._handler.close_connection = True
                raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
            self._body = data
        return self._body

    def json(self, *, required: bool = False) -> Any:
        """The JSON body (None when empty, unless ``required``)."""
        data = self.body()
        if not data.strip():
            if required:
                raise InvalidArgument("request body: expected a JSON object, got nothing")
            return None
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"request body: invalid JSON: {exc}") from None

    def spool_body(self, limit: int, directory: str | None = None) -> IO[bytes]:
        """The body in a named temp file (tars may be large); at most ``limit`` bytes."""
        if self.content_length() > limit:
            self._handler.close_connection = True
            raise PayloadTooLarge(
                f"request body of {self.content_length()} bytes exceeds the limit of {limit}"
            )
        reader = self._body_reader()
        spool = tempfile.NamedTemporaryFile(dir=directory, prefix="body-")  # noqa: SIM115 - caller closes
        total = 0
        while chunk := reader.read(1 << 20):
            total += len(chunk)
            if total > limit:
                spool.close()
                self._handler.close_connection = True
                raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
            spool.write(chunk)
        spool.seek(0)
        return spool

    def drain(self) -> None:
        """Consume an unread body so the next request on the connection starts in the right place
        (a refused or very large body closes the connection instead)."""
        if self._handler.close_connection:
            return
        with contextlib.suppress(InvalidArgument):
            if self.content_length() > 1 << 20:
                self._handler.close_connection = True
                return
        if (
            self._reader is None
            and not self.content_length()
            and "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower()
        ):
            return
        if self._body is None:
            try:
                reader = self._body_reader()
                left = 64 << 20
                while left > 0 and (chunk := reader.read(1 << 16)):
                    left -= len(chunk)
                if left <= 0:
                    self._handler.close_connection = True
            except InvalidArgument:
                self._handler.close_connection = True

    # -- the connection ---------------------------------------------------------------------

    @property
    def wants_upgrade(self) -> bool:
        return "upgrade" in (self.headers.get("Connection") or "").lower()

    def hijack(self, content_type: str) -> tuple[socket.socket, BinaryIO]:
        """Answer ``101 UPGRADED`` (or ``200`` to a client that did not ask to upgrade) and hand
        over the raw connection: the socket to write to and the buffered reader for stdin."""
        handler = self._handler
        handler.close_connection = True
        self.hijacked = True
        if self.wants_upgrade:
            head = "HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
        else:
            head = "HTTP/1.1 200 OK\r\n"
        head += f"Content-Type: {content_type}\r\n"
        for key, value in handler.server.common_headers().items():
            head += f"{key}: {value}\r\n"
        handler.wfile.write((head + "\r\n").encode())
        handler.wfile.flush()
        return handler.connection, handler.rfile  # type: ignore[return-value]

    def client_gone(self) -> bool:
        """True once the client closed its side (checked without consuming request bytes)."""
        return _peer_closed(self._handler.connection)


def _peer_closed(sock: socket.socket) -> bool:
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        if isinstance(sock, ssl.SSLSocket):
            return False  # TLS records cannot be peeked at; the next write notices instead
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


App = Callable[[Request], "Response | None"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ServerMixin  # type: ignore[assignment]

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(30)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()

    def version_string(self) -> str:
        return self.server.common_headers()["Server"]

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s", format % args)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, ssl.SSLError, TimeoutError) as exc:
            log.debug("connection dropped: %s", exc)
            self.close_connection = True

    def _dispatch(self) -> None:
        request = Request(self, self.command, self.path)
        response = self.server.app(request)
        if response is None or request.hijacked:
            self.close_connection = True
            return
        request.drain()
        self._send(request, response)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _dispatch

    def _send(self, request: Request, response: Response) -> None:
        self.send_response(response.status)
        headers = {**self.server.common_headers(), **response.headers}
        headers.pop("Server", None)
        for key, value in headers.items():
            self.send_header(key, value)
        bodyless = response.status in (204, 304) or 100 <= response.status < 200
        if response.content_type and not bodyless:
            self.send_header("Content-Type", response.content_type)
        if response.stream is not None and not bodyless:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            self._send_stream(request, response.stream)
            return
        if not bodyless:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if request.method != "HEAD" and not bodyless and response.body:
            self.wfile.write(response.body)
        self.wfile.flush()

    def _send_stream(self, request: Request, stream: Iterable[bytes | None]) -> None:
        iterator: Iterator[bytes | None] = iter(stream)
        try:
            for chunk in iterator:
                if chunk is None:
                    if request.client_gone():
                        self.close_connection = True
                        return
                    continue
                if chunk:
                    self.wfile.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError as exc:
            log.debug("stream to client ended: %s", exc)
            self.close_connection = True
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()


class _ServerMixin:
    """What the handler needs from its server: the app and the headers every response carries."""

    app: App
    headers: dict[str, str]

    def common_headers(self) -> dict[str, str]:
        return self.headers


class UnixServer(_ServerMixin, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256

    def __init__(
        self, path: str, app: App, headers: dict[str, str], *, mode: int = 0o660, gid: int = -1
    ) -> None:
        self.app = app
        self.headers = headers
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        old = os.umask(0o177)
        try:
            super().__init__(path, _Handler)
        finally:
            os.umask(old)
        os.chown(path, 0 if os.geteuid() == 0 else -1, gid)
        os.chmod(path, mode)

    def server_close(self) -> None:
        super().server_close()
        with contextlib.suppress(OSError):
            os.unlink(self.server_address)  # type: ignore[arg-type]


class TCPServer(_ServerMixin, socketserver.ThreadingMixIn, socketserver.TCPServer):
    """TCP, wrapped in TLS when a context is given (the handshake runs in the connection's thread)."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(
        self, address: tuple[str, int], app: App, headers: dict[str, str], tls: ssl.SSLContext | None
    ) -> None:
        self.app = app
        self.headers = headers
        self.tls = tls
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

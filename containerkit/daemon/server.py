"""HTTP/1.1 plumbing: a bounded connection model, keep-alive, chunked bodies, and the hijack.

One selector thread per listening socket accepts connections, holds the idle (keep-alive) ones
and reads request heads without a thread each, so idle or slow clients cost a socket, not a
thread. A complete head goes to a bounded worker pool; requests that stream for as long as the
client likes (``logs``, ``events``, ``attach``, exec start, ``wait``, ``stats``, pulls, builds,
archives) get a thread of their own (kept a while for the next stream) under a separate,
larger cap, so they never starve short requests. Open connections are capped (at the cap the
longest-idle one is closed to make room: accepting never stops), idle connections and slow
heads time out, and a head that is too large or malformed is refused and the connection closed.
Routes receive a :class:`Request` and return a :class:`Response`; a route that took over the
socket (``101 UPGRADED``) returns ``None``.
"""

from __future__ import annotations

import array
import collections
import contextlib
import email.utils
import errno
import fcntl
import http
import http.client
import json
import logging
import os
import queue
import re
import resource
import select
import selectors
import socket
import ssl
import tempfile
import termios
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, BinaryIO

import attrs

from containerkit.daemon.errors import PayloadTooLarge, error_body, status_and_body
from containerkit.errors import InvalidArgument
from containerkit.linux import staging

__all__ = [
    "JSON_LIMIT",
    "Limits",
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

_FD_RESERVE = 512
"""File descriptors kept out of the connection cap for containers, logs, pipes and the store."""


@attrs.frozen
class Limits:
    """How much the server holds at once, and how long it waits for a client."""

    max_connections: int = 16384
    """Open connections; at the cap the longest-idle one is closed for a new one."""
    workers: int = 32
    """Threads for short requests."""
    stream_workers: int = 1024
    """Threads for long streams (one each); beyond this a stream request gets 503."""
    idle_timeout: float = 120.0
    """A keep-alive connection with no request in progress is closed after this long."""
    header_timeout: float = 10.0
    """A request head (or a TLS handshake) must be complete this long after it began."""
    io_timeout: float = 120.0
    """A blocked read of a request body or write of a response gives up after this long."""
    max_header_bytes: int = 64 << 10
    """A larger request head is answered 431 and the connection closed."""
    max_buffered_heads: int = 64 << 20
    """Bytes of unfinished heads held for all connections together: past it, the connection
    that adds more is answered 503 and closed (16,384 slow heads of 64 KiB would be 1 GiB)."""
    backlog: int = max(4096, socket.SOMAXCONN)


@attrs.define
class Response:
    """A whole body (``body``) or a chunked stream (``stream``: bytes, or None as a keep-alive tick).
    ``after``: work the client need not wait for, run by the same worker once the answer is sent
    (before the next request on the connection is read)."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: dict[str, str] = attrs.field(factory=dict)
    stream: Iterable[bytes | None] | None = None
    after: Callable[[], None] | None = None


def json_response(value: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(value).encode() + b"\n")


class _Conn:
    """One client connection: its socket and the bytes read from it but not yet consumed."""

    __slots__ = ("buffer", "closed", "counted", "fd", "handshaking", "head_started", "since", "sock")

    def __init__(self, sock: socket.socket, handshaking: bool) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.buffer = bytearray()
        self.handshaking = handshaking
        self.since = time.monotonic()
        self.head_started: float | None = self.since if handshaking else None
        self.counted = 0  # bytes of ``buffer`` in the server's total of buffered heads
        self.closed = False


class _Reader:
    """Blocking, buffered reads from a connection, starting with what the loop already read."""

    def __init__(self, conn: _Conn) -> None:
        self._conn = conn

    def _fill(self) -> bool:
        data = self._conn.sock.recv(65536)
        if not data:
            return False
        self._conn.buffer += data
        return True

    def _take(self, size: int) -> bytes:
        buf = self._conn.buffer
        out = bytes(buf[:size])
        del buf[:size]
        return out

    def read1(self, size: int = -1) -> bytes:
        if not self._conn.buffer and not self._fill():
            return b""
        return self._take(len(self._conn.buffer) if size < 0 else size)

    def read(self, size: int = -1) -> bytes:
        while (size < 0 or len(self._conn.buffer) < size) and self._fill():
            pass
        return self._take(len(self._conn.buffer) if size < 0 else size)

    def readline(self, limit: int = -1) -> bytes:
        while True:
            buf = self._conn.buffer
            end = buf.find(b"\n")
            if end >= 0 and (limit < 0 or end < limit):
                return self._take(end + 1)
            if 0 <= limit <= len(buf):
                return self._take(limit)
            if not self._fill():
                return self._take(len(self._conn.buffer))


MAX_HEADERS = 100
"""Header fields a request may have (http.client's and Go's limit): more is a 431."""


class HeaderError(ValueError):
    """A request head that cannot be read as header fields."""


class Headers:
    """A request's header fields by name, any case; a repeated name answers its first value (as
    :class:`email.message.Message` does). Parsed in a tenth of ``http.client.parse_headers``'s
    time (30 us a docker CLI request, five of them a ``docker run``)."""

    __slots__ = ("_fields",)

    def __init__(self, block: bytes) -> None:
        fields: dict[str, str] = {}
        folding: str | None = None  # the field a continuation line adds to (a first occurrence)
        count = 0
        for raw in block.split(b"\n"):
            line = raw.rstrip(b"\r").decode("latin-1")
            if not line:
                continue
            if line[0] in " \t":  # obsolete line folding: the previous field goes on
                if count == 0:
                    raise HeaderError(f"a continuation line before any header field: {line[:40]!r}")
                if folding is not None:
                    fields[folding] = f"{fields[folding]} {line.strip()}".strip()
                continue
            key, colon, value = line.partition(":")
            if not colon or not key or key != key.strip():
                raise HeaderError(f"malformed header line {line[:40]!r}")
            count += 1
            if count > MAX_HEADERS:
                raise HeaderError(f"got more than {MAX_HEADERS} headers")
            name = key.lower()
            folding = None if name in fields else name
            fields.setdefault(name, value.strip())
        self._fields = fields

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._fields.get(name.lower(), default)


class _Exchange:
    """One request/response on a connection: what :class:`Request` reads from and writes to."""

    def __init__(self, server: _Server, conn: _Conn, headers: Headers) -> None:
        self.server = server
        self.conn = conn
        self.headers = headers
        self.rfile = _Reader(conn)
        self.close_connection = False

    @property
    def connection(self) -> socket.socket:
        return self.conn.sock

    def common_headers(self) -> dict[str, str]:
        return self.server.headers


class _ChunkedReader:
    """A file-like view of a ``Transfer-Encoding: chunked`` request body.

    A malformed chunk closes the connection after the answer: where the next request would
    start is unknown, and reading on would wait for bytes that never come."""

    def __init__(self, exchange: _Exchange) -> None:
        self._exchange = exchange
        self._rfile = exchange.rfile
        self._left = 0
        self._done = False

    def _fail(self, message: str) -> InvalidArgument:
        self._exchange.close_connection = True
        self._done = True
        return InvalidArgument(message)

    def read(self, size: int = -1) -> bytes:
        out = bytearray()
        while not self._done and (size < 0 or len(out) < size):
            if self._left == 0:
                line = self._rfile.readline(1024)
                text = line.split(b";", 1)[0].strip()
                if not line.endswith(b"\n") or not re.fullmatch(rb"[0-9a-fA-F]{1,15}", text):
                    raise self._fail(f"malformed chunked request body: chunk size {line[:40]!r}")
                self._left = int(text, 16)
                if self._left == 0:
                    while self._rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    self._done = True
                    break
            want = self._left if size < 0 else min(self._left, size - len(out))
            data = self._rfile.read1(want)
            if not data:
                raise self._fail("request body ended in the middle of a chunk")
            out += data
            self._left -= len(data)
            if self._left == 0 and self._rfile.readline(16) not in (b"\r\n", b"\n"):
                raise self._fail("malformed chunked request body: no CRLF after a chunk")
        return bytes(out)


class _LimitedReader:
    def __init__(self, rfile: _Reader, length: int) -> None:
        self._rfile = rfile
        self._left = length

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if size < 0 else min(size, self._left)
        data = self._rfile.read1(want)
        self._left -= len(data)
        if not data:
            self._left = 0
        return data


class Request:
    """One API request: method, path (without the ``/vN`` prefix), query, body, and the socket."""

    def __init__(self, exchange: _Exchange, method: str, target: str) -> None:
        self._exchange = exchange
        self.method = method
        parsed = urllib.parse.urlsplit(target)
        self.raw_path = urllib.parse.unquote(parsed.path)
        self.path = self.raw_path
        self.query: dict[str, list[str]] = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        self.headers = exchange.headers
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
        return _loads(value, f"query parameter {name}")

    # -- body -------------------------------------------------------------------------------

    def _body_reader(self) -> Any:
        if self._reader is None:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                self._reader = _ChunkedReader(self._exchange)
            else:
                self._reader = _LimitedReader(self._exchange.rfile, self.content_length())
        return self._reader

    def body_stream(self) -> Any:
        """The body as a file object (``read(size)``) that reads it as it arrives: for bodies too
        large to hold (a tar extracted while it streams). Whatever is left unread is drained."""
        return self._body_reader()

    def content_length(self) -> int:
        text = self.headers.get("Content-Length")
        if not text:
            return 0
        try:
            value = int(text)
        except ValueError:
            self._exchange.close_connection = True
            raise InvalidArgument(f"invalid Content-Length {text!r}") from None
        if value < 0:
            self._exchange.close_connection = True
            raise InvalidArgument(f"invalid Content-Length {text!r}")
        return value

    def body(self, limit: int = JSON_LIMIT) -> bytes:
        """The whole body, refusing (413) more than ``limit`` bytes without reading it all."""
        if self._body is None:
            if self.content_length() > limit:
                self._exchange.close_connection = True
                raise PayloadTooLarge(
                    f"request body of {self.content_length()} bytes exceeds the limit of {limit}"
                )
            reader = self._body_reader()
            data = bytearray()
            while len(data) <= limit and (chunk := reader.read(limit + 1 - len(data))):
                data += chunk
            if len(data) > limit:
                self._exchange.close_connection = True
                raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
            self._body = bytes(data)
        return self._body

    def json(self, *, required: bool = False) -> Any:
        """The JSON body (None when empty, unless ``required``)."""
        data = self.body()
        if not data.strip():
            if required:
                raise InvalidArgument("request body: expected a JSON object, got nothing")
            return None
        return _loads(data, "request body")

    def spool_body(self, limit: int, directory: str | None = None) -> IO[bytes]:
        """The body in a named temp file (tars may be large); at most ``limit`` bytes."""
        if self.content_length() > limit:
            self._exchange.close_connection = True
            raise PayloadTooLarge(
                f"request body of {self.content_length()} bytes exceeds the limit of {limit}"
            )
        reader = self._body_reader()
        spool = tempfile.NamedTemporaryFile(dir=directory, prefix=f"body{staging.owner_tag()}")  # noqa: SIM115 - caller closes
        try:
            staging.hold(spool.fileno())  # left by a killed daemon: unheld, removed at recovery
            total = 0
            while chunk := reader.read(1 << 20):
                total += len(chunk)
                if total > limit:
                    self._exchange.close_connection = True
                    raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
                spool.write(chunk)
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool

    def drain(self) -> None:
        """Consume an unread body so the next request on the connection starts in the right place
        (a refused or very large body closes the connection instead)."""
        if self._exchange.close_connection:
            return
        try:
            if self.content_length() > 1 << 20:
                self._exchange.close_connection = True
                return
        except InvalidArgument:
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
                    self._exchange.close_connection = True
            except (InvalidArgument, OSError):
                self._exchange.close_connection = True

    # -- the connection ---------------------------------------------------------------------

    @property
    def wants_upgrade(self) -> bool:
        return "upgrade" in (self.headers.get("Connection") or "").lower()

    def hijack(self, content_type: str, *, await_read: bool = True) -> tuple[socket.socket, BinaryIO]:
        """Answer ``101 UPGRADED`` (or ``200`` to a client that did not ask to upgrade) and hand
        over the raw connection: the socket to write to and the buffered reader for stdin.

        Returns once the client has read the head (:meth:`await_read`); with ``await_read=False``
        at once, and the caller calls :meth:`await_read` before it writes."""
        exchange = self._exchange
        exchange.close_connection = True
        self.hijacked = True
        if self.wants_upgrade:
            head = "HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
        else:
            head = "HTTP/1.1 200 OK\r\n"
        head += f"Content-Type: {content_type}\r\n"
        for key, value in exchange.common_headers().items():
            head += f"{key}: {value}\r\n"
        sock = exchange.connection
        sock.settimeout(None)  # stdin may stay quiet for as long as the session lasts
        sock.sendall((head + "\r\n").encode())
        if await_read:
            self.await_read()
        return sock, exchange.rfile  # type: ignore[return-value]

    def await_read(self) -> None:
        """Wait until the client has read what was sent (a hijack's head), at most the header
        timeout. docker-py parses the head through a buffered reader, then reads the stream
        from the raw socket: output that reached it together with the head would be read into
        that buffer and lost."""
        _await_read(self._exchange.connection, self._exchange.server.limits.header_timeout)

    def client_gone(self) -> bool:
        """True once the client closed its side (checked without consuming request bytes)."""
        return _peer_closed(self._exchange.connection)


def _loads(data: str | bytes, what: str) -> Any:
    """JSON from a client; nesting deep enough to exhaust the parser's stack is a 400, too."""
    try:
        return json.loads(data)
    except RecursionError:
        raise InvalidArgument(f"{what}: invalid JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{what}: invalid JSON: {exc}") from None


def _await_read(sock: socket.socket, timeout: float) -> bool:
    """Block until the peer has read every byte sent on ``sock`` (at most ``timeout`` seconds).

    On a unix socket the bytes sent stay charged to the sender until the receiver reads them
    (``SIOCOUTQ``), and each read that frees them wakes the sender's write waiters: an
    edge-triggered ``EPOLLOUT`` sleeps until then, with no polling. TLS needs no wait (the head
    and the stream are separate records, and a read returns one record at most); plain TCP
    (loopback only) cannot tell an acknowledged byte from a read one: False for both."""
    if sock.family != socket.AF_UNIX:
        return False
    poller = select.epoll(1)
    try:
        poller.register(sock.fileno(), select.EPOLLOUT | select.EPOLLET)
        deadline = time.monotonic() + timeout
        while True:
            unread = array.array("i", [0])
            fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, unread)  # TIOCOUTQ is SIOCOUTQ
            if unread[0] == 0:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                log.debug("the client did not read the response head in %.0f s", timeout)
                return False
            poller.poll(left)
    except OSError:
        return False  # the client went away: the stream's first write will say so
    finally:
        poller.close()


def _peer_closed(sock: socket.socket) -> bool:
    try:
        poller = select.poll()  # not select(): descriptors above 1024 are normal here
        poller.register(sock, select.POLLIN)
        events = poller.poll(0)
        if not events:
            return False
        if events[0][1] & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
            return True
        if isinstance(sock, ssl.SSLSocket):
            return False  # TLS records cannot be peeked at; the next write notices instead
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except (OSError, ValueError):
        return True


App = Callable[[Request], "Response | None"]

_LONG = re.compile(
    r"^(?:/v[0-9.]+)?/(?:events|build|images/create|images/load|images/get|images/.+/(?:push|get)"
    r"|containers/[^/]+/(?:logs|attach|attach/ws|wait|stats|archive|export)|exec/[^/]+/start)/?$"
)
"""Requests that may last as long as the client likes: each gets a thread of its own."""

_BODY = re.compile(rb"\n(?:content-length[ \t]*:[ \t]*0*[1-9]|transfer-encoding[ \t]*:)", re.IGNORECASE)
"""A head announcing a body: a client may send that body as slowly as it likes."""


def _is_long(method: str, target: str, head: bytes | bytearray = b"") -> bool:
    """Whether the request gets its own thread: a long stream, or a body to wait for (a worker
    of the pool never waits on a client's upload)."""
    return _LONG.match(target.split("?", 1)[0]) is not None or _BODY.search(head) is not None


def _head_end(buffer: bytearray) -> int:
    """The offset just past the blank line that ends a request head, or -1."""
    ends = [i + n for i, n in ((buffer.find(b"\r\n\r\n"), 4), (buffer.find(b"\n\n"), 2)) if i >= 0]
    return min(ends) if ends else -1


def _status_line(status: int) -> str:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}\r\n"


def _refusal(status: int, message: str, headers: dict[str, str]) -> bytes:
    body = error_body(message, InvalidArgument.kind)
    head = _status_line(status)
    for key, value in headers.items():
        head += f"{key}: {value}\r\n"
    head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    return head.encode() + body


class _Pool:
    """At most ``size`` threads, started as work arrives and kept for the next: a thread's start
    waits until the new thread runs, which on a busy machine costs more than a short request.
    Work beyond ``size`` threads waits its turn; an item is handed to an idle thread only when
    one is free for it, so an item never waits behind a long stream. ``linger``: seconds an
    idle thread stays before it ends (None: until :meth:`stop`)."""

    def __init__(self, size: int, name: str, linger: float | None = None) -> None:
        self._size = max(1, size)
        self._name = name
        self._linger = linger
        self._queue: queue.SimpleQueue[tuple[Callable[[_Conn], None], _Conn] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0  # threads waiting for work that no queued item is promised to

    def submit(self, fn: Callable[[_Conn], None], conn: _Conn) -> None:
        start = False
        with self._lock:
            if self._idle > 0:
                self._idle -= 1  # promised to one of them
            elif self._threads < self._size:
                self._threads += 1
                start = True
            self._queue.put((fn, conn))  # under the lock: an idle thread ending sees it
        if start:
            threading.Thread(target=self._run, name=f"{self._name}-{self._threads}", daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            for _ in range(self._threads):
                self._queue.put(None)

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._linger)
            except queue.Empty:
                with self._lock:
                    if not self._queue.empty():
                        continue  # promised to this thread just now
                    self._idle -= 1
                    self._threads -= 1
                    return
            if item is None:
                with self._lock:
                    self._threads -= 1
                return
            fn, conn = item
            fn(conn)
            with self._lock:
                self._idle += 1


_STREAM_LINGER = 30.0
"""Seconds an idle stream thread is kept for the next stream (a ``docker run`` sends three:
the create with its body, the attach and the wait)."""

_LISTENER = object()
_WAKE = object()


class _Server:
    """The connection loop and the two kinds of worker threads around one listening socket."""

    def __init__(
        self,
        sock: socket.socket,
        app: App,
        headers: dict[str, str],
        limits: Limits | None,
        tls: ssl.SSLContext | None,
    ) -> None:
        self.app = app
        self.headers = headers
        self.tls = tls
        self.limits = limits or Limits()
        self.socket = sock
        sock.listen(self.limits.backlog)
        sock.setblocking(False)
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        budget = self.limits.max_connections
        if soft != resource.RLIM_INFINITY:
            budget = min(budget, soft - _FD_RESERVE)
        self.max_connections = max(16, budget)
        self._selector = selectors.DefaultSelector()
        self._selector.register(sock, selectors.EVENT_READ, _LISTENER)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, _WAKE)
        self._held: collections.OrderedDict[int, _Conn] = collections.OrderedDict()
        self._returned: collections.deque[_Conn] = collections.deque()
        self._lock = threading.Lock()
        self._open = 0
        self._streams = 0
        self._buffered = 0  # bytes of unfinished heads held by the loop (the loop's alone)
        self._pool = _Pool(self.limits.workers, "ckd-worker")
        # room for a stream is checked before it is submitted: none waits for a thread
        self._stream_pool = _Pool(self.limits.stream_workers, "ckd-stream", linger=_STREAM_LINGER)
        self._reserve: int | None = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self._stop = threading.Event()
        self._running = threading.Event()
        self._done = threading.Event()
        self._done.set()

    # -- what the daemon calls ------------------------------------------------------------------

    @property
    def open_connections(self) -> int:
        return self._open

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._done.clear()
        self._running.set()
        next_sweep = 0.0
        try:
            while not self._stop.is_set():
                for key, mask in self._selector.select(poll_interval):
                    if key.data is _LISTENER:
                        self._accept()
                    elif key.data is _WAKE:
                        self._take_back()
                    elif (conn := self._held.get(key.data.fd)) is key.data:  # not dropped meanwhile
                        self._on_ready(conn, mask)
                now = time.monotonic()
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + 0.5
        finally:
            self._running.clear()
            self._done.set()

    def shutdown(self) -> None:
        self._stop.set()
        self._wake()
        self._done.wait(10)

    def server_close(self) -> None:
        self._stop.set()
        self._done.wait(10)
        for conn in list(self._held.values()):
            self._drop(conn)
        self._pool.stop()
        self._stream_pool.stop()
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(self.socket)
        self._selector.close()
        self.socket.close()
        self._wake_r.close()
        self._wake_w.close()
        if self._reserve is not None:
            os.close(self._reserve)
            self._reserve = None

    # -- the loop -------------------------------------------------------------------------------

    def _accept(self) -> None:
        for _ in range(256):
            try:
                sock, _addr = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._out_of_descriptors()
                else:
                    log.warning("accept failed: %s", exc)
                return
            sock.setblocking(False)
            if self._open >= self.max_connections and not self._evict():
                with contextlib.suppress(OSError):
                    sock.send(_refusal(503, "too many connections", self.headers))
                sock.close()
                continue
            self._adopt(sock)

    def _out_of_descriptors(self) -> None:
        """Free descriptors rather than spin: close the longest-idle connections, and refuse the
        waiting client with the reserved descriptor if none could be closed."""
        log.warning("out of file descriptors with %d connections open", self._open)
        if sum(self._evict() for _ in range(16)):
            return
        if self._reserve is not None:
            os.close(self._reserve)
            self._reserve = None
            with contextlib.suppress(OSError):
                self.socket.accept()[0].close()
            with contextlib.suppress(OSError):
                self._reserve = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)

    def _evict(self) -> bool:
        """Close the connection the loop has held longest without activity; False if none.

        Only connections waiting for a client are held here: one in a worker is never evicted."""
        for conn in self._held.values():
            self._drop(conn)
            return True
        return False

    def _adopt(self, sock: socket.socket) -> None:
        if self.tls is not None:
            try:
                sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except (OSError, ValueError) as exc:
                log.debug("TLS wrap failed: %s", exc)
                sock.close()
                return
        conn = _Conn(sock, handshaking=self.tls is not None)
        with self._lock:
            self._open += 1
        self._hold(conn)

    def _hold(self, conn: _Conn) -> None:
        try:
            self._selector.register(conn.sock, selectors.EVENT_READ, conn)
        except (OSError, ValueError) as exc:
            log.debug("cannot watch a connection: %s", exc)
            self._release(conn)
            return
        self._held[conn.fd] = conn
        self._count(conn)

    def _on_ready(self, conn: _Conn, mask: int) -> None:
        if conn.handshaking and not self._handshake(conn):
            return
        try:
            data = conn.sock.recv(65536)
            while isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending():
                data += conn.sock.recv(conn.sock.pending())
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except OSError:
            self._drop(conn)
            return
        if not data:
            self._drop(conn)
            return
        now = time.monotonic()
        conn.since = now
        self._held.move_to_end(conn.fd)
        conn.buffer += data
        if conn.head_started is None:
            while conn.buffer and conn.buffer[0] in b"\r\n":
                del conn.buffer[:1]  # blank lines between requests are allowed
            if conn.buffer:
                conn.head_started = now
        if self._count(conn) > self.limits.max_buffered_heads:
            self._refuse(conn, 503, "too many unfinished request heads held; try again")
            return
        self._dispatch(conn)

    def _handshake(self, conn: _Conn) -> bool:
        sock = conn.sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._selector.modify(sock, selectors.EVENT_READ, conn)
            return False
        except ssl.SSLWantWriteError:
            self._selector.modify(sock, selectors.EVENT_WRITE, conn)
            return False
        except (OSError, ValueError) as exc:
            log.debug("TLS handshake failed: %s", exc)
            self._drop(conn)
            return False
        conn.handshaking = False
        conn.head_started = None
        conn.since = time.monotonic()
        self._selector.modify(sock, selectors.EVENT_READ, conn)
        return True

    def _dispatch(self, conn: _Conn) -> None:
        end = _head_end(conn.buffer)
        if end < 0 and len(conn.buffer) <= self.limits.max_header_bytes:
            return
        if end < 0 or end > self.limits.max_header_bytes:
            self._refuse(conn, 431, f"request head larger than {self.limits.max_header_bytes} bytes")
            return
        self._selector.unregister(conn.sock)
        del self._held[conn.fd]
        self._uncount(conn)
        line = bytes(conn.buffer[: conn.buffer.find(b"\n")]).decode("latin-1").split()
        if len(line) == 3 and _is_long(line[0], line[1], conn.buffer[:end]):
            with self._lock:
                room = self._streams < self.limits.stream_workers
                if room:
                    self._streams += 1
            if not room:
                with contextlib.suppress(OSError):
                    conn.sock.send(_refusal(503, "too many streaming requests", self.headers))
                self._release(conn)
                return
            self._stream_pool.submit(self._serve_stream, conn)
        else:
            self._pool.submit(self._serve, conn)

    def _count(self, conn: _Conn) -> int:
        """Account for what ``conn`` buffers now; the total over held connections."""
        self._buffered += len(conn.buffer) - conn.counted
        conn.counted = len(conn.buffer)
        return self._buffered

    def _uncount(self, conn: _Conn) -> None:
        self._buffered -= conn.counted
        conn.counted = 0

    def _refuse(self, conn: _Conn, status: int, message: str) -> None:
        with contextlib.suppress(OSError):
            conn.sock.send(_refusal(status, message, self.headers))
        self._drop(conn)

    def _sweep(self, now: float) -> None:
        """Close the connections whose head (or handshake) is late, or that idled too long."""
        late = []
        for conn in self._held.values():
            if conn.head_started is not None:
                if now - conn.head_started > self.limits.header_timeout:
                    late.append(conn)
            elif now - conn.since > self.limits.idle_timeout:
                late.append(conn)
        for conn in late:
            log.debug("closing connection %d: timed out", conn.fd)
            self._drop(conn)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _take_back(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass
        while self._returned:
            conn = self._returned.popleft()
            if self._stop.is_set():
                self._release(conn)
            else:
                self._hold(conn)

    def _drop(self, conn: _Conn) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(conn.sock)
        if self._held.pop(conn.fd, None) is not None:
            self._uncount(conn)
        self._release(conn)

    def _release(self, conn: _Conn) -> None:
        with self._lock:
            if conn.closed:
                return
            conn.closed = True
            self._open -= 1
        with contextlib.suppress(OSError):
            conn.sock.close()

    # -- the workers ----------------------------------------------------------------------------

    def _serve_stream(self, conn: _Conn) -> None:
        try:
            self._serve(conn)
        finally:
            with self._lock:
                self._streams -= 1

    def _serve(self, conn: _Conn) -> None:
        """Answer the requests whose heads are in the buffer, then give the connection back."""
        try:
            conn.sock.settimeout(self.limits.io_timeout)
            while self._exchange(conn):
                if self._stop.is_set():
                    break
                if _head_end(conn.buffer) < 0:
                    conn.sock.setblocking(False)
                    conn.since = time.monotonic()
                    conn.head_started = conn.since if conn.buffer else None
                    self._returned.append(conn)
                    self._wake()
                    return
        except (OSError, ssl.SSLError) as exc:
            log.debug("connection dropped: %s", exc)
        except Exception:
            log.exception("connection failed")
        self._release(conn)

    def _exchange(self, conn: _Conn) -> bool:
        """One request and its answer; True when the connection stays open for another."""
        end = _head_end(conn.buffer)
        head = bytes(conn.buffer[:end])
        del conn.buffer[:end]
        request_line, _, header_block = head.partition(b"\n")
        parts = request_line.decode("latin-1").split()
        if len(parts) != 3 or not re.fullmatch(r"HTTP/1\.[01]", parts[2]):
            conn.sock.sendall(_refusal(400, f"malformed request line {request_line[:80]!r}", self.headers))
            return False
        method, target, version = parts
        try:
            headers = Headers(header_block)
        except HeaderError as exc:
            status = 431 if str(exc).startswith("got more than") else 400
            conn.sock.sendall(_refusal(status, f"request head refused: {exc}", self.headers))
            return False
        exchange = _Exchange(self, conn, headers)
        tokens = (headers.get("Connection") or "").lower()
        exchange.close_connection = "close" in tokens or (
            version == "HTTP/1.0" and "keep-alive" not in tokens
        )
        if version == "HTTP/1.1" and (headers.get("Expect") or "").lower() == "100-continue":
            conn.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            request = Request(exchange, method, target)
        except ValueError as exc:
            conn.sock.sendall(_refusal(400, f"malformed request target: {exc}", self.headers))
            return False
        try:
            response = self.app(request)
        except Exception as exc:
            status, body = status_and_body(exc)
            response = Response(status, body)
        if response is None or request.hijacked:
            return False
        request.drain()
        try:
            self._send(exchange, request, response)
        finally:
            if response.after is not None:
                try:
                    response.after()
                except Exception:
                    log.exception("%s %s: the work after the answer failed", method, target)
        return not exchange.close_connection

    def _send(self, exchange: _Exchange, request: Request, response: Response) -> None:
        sock = exchange.connection
        head = _status_line(response.status)
        headers = {**self.headers, **response.headers}
        head += f"Server: {headers.pop('Server', '')}\r\nDate: {email.utils.formatdate(usegmt=True)}\r\n"
        for key, value in headers.items():
            head += f"{key}: {value}\r\n"
        bodyless = response.status in (204, 304) or 100 <= response.status < 200
        if response.content_type and not bodyless:
            head += f"Content-Type: {response.content_type}\r\n"
        if exchange.close_connection:
            head += "Connection: close\r\n"
        if response.stream is not None and not bodyless:
            sock.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
            self._send_stream(exchange, request, response.stream)
            return
        if not bodyless:
            head += f"Content-Length: {len(response.body)}\r\n"
        data = (head + "\r\n").encode()
        if request.method != "HEAD" and not bodyless:
            data += response.body
        sock.sendall(data)

    def _send_stream(self, exchange: _Exchange, request: Request, stream: Iterable[bytes | None]) -> None:
        sock = exchange.connection
        iterator: Iterator[bytes | None] = iter(stream)
        try:
            for chunk in iterator:
                if chunk is None:
                    if request.client_gone():
                        exchange.close_connection = True
                        return
                    continue
                if chunk:
                    sock.sendall(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
        except OSError as exc:
            log.debug("stream to client ended: %s", exc)
            exchange.close_connection = True
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()


class UnixServer(_Server):
    """The API on a unix socket, created ``mode`` (0660 by default) and owned by ``gid``."""

    def __init__(
        self,
        path: str,
        app: App,
        headers: dict[str, str],
        *,
        mode: int = 0o660,
        gid: int = -1,
        limits: Limits | None = None,
    ) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(path)
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old)
        self.server_address = path
        try:
            os.chown(path, 0 if os.geteuid() == 0 else -1, gid)
            os.chmod(path, mode)
            super().__init__(sock, app, headers, limits, None)
        except BaseException:
            sock.close()
            raise

    def server_close(self) -> None:
        super().server_close()
        with contextlib.suppress(OSError):
            os.unlink(self.server_address)


class TCPServer(_Server):
    """TCP, wrapped in TLS when a context is given (the handshake runs in the loop, non-blocking)."""

    def __init__(
        self,
        address: tuple[str, int],
        app: App,
        headers: dict[str, str],
        tls: ssl.SSLContext | None,
        *,
        limits: Limits | None = None,
    ) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            self.server_address = sock.getsockname()
            super().__init__(sock, app, headers, limits, tls)
        except BaseException:
            sock.close()
            raise

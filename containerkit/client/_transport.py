"""HTTP to the daemon: the only module that imports requests / requests-unixsocket.

Every failure leaves here as a :mod:`containerkit.errors` exception: error bodies
(``{"message", "kind"}``) through :func:`containerkit.errors.error_class_for`, a daemon that
does not answer as :class:`~containerkit.errors.DaemonUnavailable` naming the socket and the
fix, a read that outlives its timeout as :class:`~containerkit.errors.Timeout`. Read timeouts
are per call: ``stop(timeout=120)`` must not die at a global 60 s.

Attach and exec start "hijack" the connection (``101 UPGRADED``, then a raw duplex stream);
that is spoken over a plain socket here, because requests would drop bytes that arrive in the
same read as the response headers.
"""

from __future__ import annotations

import contextlib
import enum
import json as jsonlib
import socket
import ssl
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any, Final
from urllib.parse import quote, urlencode

import requests
import requests_unixsocket
import urllib3.exceptions

from containerkit.client._endpoint import Endpoint, describe_connect_failure
from containerkit.errors import (
    ContainerkitError,
    DaemonUnavailable,
    InvalidArgument,
    NotModified,
    Timeout,
    error_class_for,
)

__all__ = ["API_VERSION", "DEFAULT", "RawStream", "Reply", "TimeoutArg", "Transport"]

API_VERSION: Final = "1.44"
"""The API version in every path: served by containerkitd (1.24-1.50) and by dockerd 25 and later."""

CONNECT_TIMEOUT: Final = 10.0
_MAX_HEADER = 64 * 1024
_USER_AGENT: Final = "containerkit-client/0.1"


class _Default(enum.Enum):
    TOKEN = 0


DEFAULT: Final = _Default.TOKEN
"""Use the client's default read timeout for this call."""

TimeoutArg = float | None | _Default
Params = Mapping[str, Any] | None


def _query(params: Params) -> list[tuple[str, str]]:
    """Booleans as ``1``/``0`` (every docker version parses those), ``None`` dropped, lists repeated."""
    out: list[tuple[str, str]] = []
    for key, value in (params or {}).items():
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if isinstance(item, bool):
                out.append((key, "1" if item else "0"))
            elif isinstance(item, (dict, list)):
                out.append((key, jsonlib.dumps(item)))
            else:
                out.append((key, str(item)))
    return out


def error_from_body(status: int, body: bytes, what: str) -> ContainerkitError:
    """The exception for an error response: ``kind`` picks the class, else the status does."""
    message, kind = "", None
    try:
        data = jsonlib.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        message = str(data.get("message") or "")
        kind = data.get("kind") if isinstance(data.get("kind"), str) else None
    elif body:
        message = body.decode("utf-8", "replace").strip()
    if not message:
        message = f"{what}: HTTP {status}"
    return error_class_for(status, kind)(message)


class Reply:
    """A response that succeeded (status < 300, or 304 when the caller asked for it)."""

    def __init__(self, response: requests.Response, transport: Transport, what: str) -> None:
        self._response = response
        self._transport = transport
        self._what = what
        self.status: int = response.status_code
        self.headers: Mapping[str, str] = response.headers

    @property
    def content(self) -> bytes:
        try:
            return self._response.content
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise self._transport.lost(exc, self._what) from None

    def json(self) -> Any:
        content = self.content
        if not content:
            return None
        try:
            return jsonlib.loads(content)
        except ValueError:
            raise DaemonUnavailable(
                f"{self._what}: the daemon at {self._transport.endpoint} sent a body that is not JSON: "
                f"{content[:200]!r}"
            ) from None

    def chunks(self) -> Iterator[bytes]:
        """The body as it arrives (for streams: logs, events, progress); closes at the end."""
        raw = self._response.raw
        chunked = "chunked" in self._response.headers.get("Transfer-Encoding", "").lower()
        try:
            if chunked:
                yield from self._response.iter_content(chunk_size=None)
            else:
                while chunk := raw.read1(65536):
                    yield chunk
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._transport.lost(exc, self._what) from None
        finally:
            self.close()

    def save_to(self, out: IO[bytes]) -> None:
        for chunk in self.chunks():
            out.write(chunk)

    def close(self) -> None:
        self._response.close()


class RawStream:
    """A hijacked connection: the body bytes as they come, and a write side for stdin."""

    def __init__(self, sock: socket.socket, buffered: bytes, mode: str, length: int, what: str) -> None:
        self._sock = sock
        self._buffer = buffered
        self._mode = mode  # "raw" (until EOF), "chunked", "length"
        self._length = length
        self._what = what

    def _read(self) -> bytes:
        try:
            return self._sock.recv(65536)
        except TimeoutError:
            raise Timeout(f"{self._what}: no output within {self._sock.gettimeout()} s") from None
        except OSError as exc:
            raise DaemonUnavailable(f"{self._what}: connection lost: {exc}") from None

    def _recv(self) -> bytes:
        if self._buffer:
            data, self._buffer = self._buffer, b""
            return data
        return self._read()

    def _more(self) -> None:
        data = self._read()
        if not data:
            raise DaemonUnavailable(f"{self._what}: connection closed in the middle of a chunk")
        self._buffer += data

    def _fill(self, want: int) -> bytes:
        while len(self._buffer) < want:
            self._more()
        out, self._buffer = self._buffer[:want], self._buffer[want:]
        return out

    def _line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            self._more()
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    def chunks(self) -> Iterator[bytes]:
        """Body bytes until the daemon ends the stream (close, last chunk or length)."""
        if self._mode == "chunked":
            while True:
                size = int(self._line().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self._line()
                    return
                yield self._fill(size)
                self._line()
        remaining = self._length
        while self._mode == "raw" or remaining > 0:
            data = self._recv()
            if not data:
                return
            if self._mode == "length":
                data = data[:remaining]
                remaining -= len(data)
            yield data

    def set_timeout(self, timeout: float | None) -> None:
        """The longest wait for the next bytes from here on (None: as long as it takes)."""
        self._sock.settimeout(timeout)

    def send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise DaemonUnavailable(f"{self._what}: cannot write stdin: {exc}") from None

    def close_write(self) -> None:
        """EOF for the process's stdin (a half-close; TLS has none, so there it waits for exit)."""
        if isinstance(self._sock, ssl.SSLSocket):
            return
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


class Transport:
    """Requests to one daemon: JSON in, :class:`Reply` out, errors as containerkit exceptions."""

    def __init__(
        self, endpoint: Endpoint, *, timeout: float | None = 60.0, version: str = API_VERSION
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._prefix = f"/v{version}" if version else ""
        self._session: requests.Session
        if endpoint.scheme == "unix":
            self._session = requests_unixsocket.Session()
            self._base = "http+unix://" + quote(endpoint.path, safe="")
        else:
            self._session = requests.Session()
            if endpoint.tls is not None:
                self._base = f"https://{endpoint.host}:{endpoint.port}"
                self._session.verify = endpoint.tls.ca
                self._session.cert = (endpoint.tls.cert, endpoint.tls.key)
            else:
                self._base = f"http://{endpoint.host}:{endpoint.port}"
        self._session.headers["User-Agent"] = _USER_AGENT

    # -- plain requests -----------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params = None,
        body: Any = None,
        data: bytes | IO[bytes] | Iterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: TimeoutArg = DEFAULT,
        stream: bool = False,
        allow_304: bool = False,
    ) -> Reply:
        """One call. ``timeout`` is the read timeout (None: wait as long as it takes)."""
        what = f"{method} {path}"
        read_timeout = self.timeout if timeout is DEFAULT else timeout
        try:
            response = self._session.request(
                method,
                self._base + self._prefix + path,
                params=_query(params),
                json=body,
                data=data,
                headers=dict(headers or {}),
                timeout=(CONNECT_TIMEOUT, read_timeout),
                stream=stream,
            )
        except requests.exceptions.ConnectTimeout as exc:
            raise self.unavailable(exc) from None
        except requests.exceptions.Timeout:
            raise Timeout(f"{what}: no answer from {self.endpoint} within {read_timeout} s") from None
        except requests.exceptions.ConnectionError as exc:
            if _timed_out(exc):  # the headers came, the body did not (wait flushes its headers at once)
                raise Timeout(f"{what}: no answer from {self.endpoint} within {read_timeout} s") from None
            raise self.unavailable(exc) from None
        except requests.exceptions.InvalidURL as exc:
            raise InvalidArgument(f"{what}: {exc}") from None
        status = response.status_code
        if status == 304:
            response.close()
            if allow_304:
                return Reply(response, self, what)
            raise NotModified(f"{what}: not modified")
        if status >= 300:
            try:
                content = response.content
            except (requests.RequestException, urllib3.exceptions.HTTPError):
                content = b""
            response.close()
            raise error_from_body(status, content, what)
        return Reply(response, self, what)

    def get_json(self, path: str, *, params: Params = None, timeout: TimeoutArg = DEFAULT) -> Any:
        return self.request("GET", path, params=params, timeout=timeout).json()

    def post_json(
        self, path: str, *, params: Params = None, body: Any = None, timeout: TimeoutArg = DEFAULT
    ) -> Any:
        return self.request("POST", path, params=params, body=body, timeout=timeout).json()

    # -- hijacked connections -------------------------------------------------------------

    def hijack(
        self, method: str, path: str, *, params: Params = None, body: Any = None, timeout: float | None = None
    ) -> RawStream:
        """Send a request with ``Upgrade: tcp`` and return the raw stream behind the response.

        A ``101`` is the usual answer; a ``200`` (raw, chunked or sized body) is accepted too.
        """
        what = f"{method} {path}"
        sock = self._connect()
        sock.settimeout(timeout)
        payload = b"" if body is None else jsonlib.dumps(body).encode()
        query = urlencode(_query(params))
        target = self._prefix + path + (f"?{query}" if query else "")
        head = (
            f"{method} {target} HTTP/1.1\r\n"
            f"Host: {self.endpoint.host or 'localhost'}\r\n"
            f"User-Agent: {_USER_AGENT}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n"
            "Connection: Upgrade\r\n"
            "Upgrade: tcp\r\n\r\n"
        )
        try:
            sock.sendall(head.encode() + payload)
            status, headers, rest = _read_head(sock, what)
        except TimeoutError:
            sock.close()
            raise Timeout(f"{what}: no answer from {self.endpoint} within {timeout} s") from None
        except OSError as exc:
            sock.close()
            raise self.unavailable(exc) from None
        if status == 101:
            return RawStream(sock, rest, "raw", 0, what)
        encoding = headers.get("transfer-encoding", "").lower()
        length = int(headers.get("content-length", "-1") or -1)
        mode = "chunked" if "chunked" in encoding else ("length" if length >= 0 else "raw")
        stream = RawStream(sock, rest, mode, max(length, 0), what)
        if status >= 300:
            try:
                content = b"".join(stream.chunks()) if status != 304 else b""
            finally:
                stream.close()
            raise error_from_body(status, content, what)
        return stream

    def _connect(self) -> socket.socket:
        endpoint = self.endpoint
        try:
            if endpoint.scheme == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(CONNECT_TIMEOUT)
                try:
                    sock.connect(endpoint.path)
                except OSError:
                    sock.close()
                    raise
                return sock
            sock = socket.create_connection((endpoint.host, endpoint.port), timeout=CONNECT_TIMEOUT)
            if endpoint.tls is None:
                return sock
            context = ssl.create_default_context(cafile=endpoint.tls.ca)
            context.load_cert_chain(endpoint.tls.cert, endpoint.tls.key)
            return context.wrap_socket(sock, server_hostname=endpoint.host)
        except OSError as exc:
            raise self.unavailable(exc) from None

    # -- failures -------------------------------------------------------------------------

    def unavailable(self, error: BaseException) -> DaemonUnavailable:
        return DaemonUnavailable(describe_connect_failure(self.endpoint, _root_cause(error)))

    def lost(self, error: BaseException, what: str) -> ContainerkitError:
        if _timed_out(error):
            return Timeout(f"{what}: the daemon at {self.endpoint} sent nothing within the read timeout")
        return DaemonUnavailable(
            f"{what}: connection to the daemon at {self.endpoint} lost: {_root_cause(error)}"
        )

    def close(self) -> None:
        self._session.close()


def _timed_out(error: BaseException) -> bool:
    cause = _root_cause(error)
    return isinstance(cause, (TimeoutError, urllib3.exceptions.TimeoutError)) or isinstance(
        error, urllib3.exceptions.TimeoutError
    )


def _root_cause(error: BaseException) -> BaseException:
    """The innermost exception of requests' and urllib3's wrappers (for the message)."""
    seen = 0
    current = error
    while seen < 10:
        inner = getattr(current, "reason", None)
        if not isinstance(inner, BaseException):
            args = getattr(current, "args", ())
            inner = next((a for a in args if isinstance(a, BaseException)), None)
        if inner is None:
            inner = current.__context__
        if inner is None or inner is current:
            return current
        current = inner
        seen += 1
    return current


def _read_head(sock: socket.socket, what: str) -> tuple[int, dict[str, str], bytes]:
    """Status, lower-cased headers, and whatever of the body came in the same reads."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            raise ConnectionResetError(f"{what}: the daemon closed the connection before answering")
        buffer += data
        if len(buffer) > _MAX_HEADER:
            raise ConnectionResetError(f"{what}: response headers larger than {_MAX_HEADER} bytes")
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ConnectionResetError(f"{what}: not an HTTP response: {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return int(parts[1]), headers, rest

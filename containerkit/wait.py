"""Wait strategies: when is a freshly started container ready to be used?

A strategy describes what to wait for; :func:`until` polls it against one container until it
is satisfied, the container exits, or the one ``timeout`` for the whole wait runs out::

    import containerkit.wait as wait

    wait.until(container, wait.all(wait.log(r"listening"), wait.http("/health", port=8080)), timeout=30)

Strategies are plain values: one strategy may be used for many containers, each wait gets its
own state (a :class:`Probe`). A failed wait raises :class:`WaitTimeout` (a
:class:`~containerkit.errors.Timeout`) that names what was waited for and carries the last log
lines; when the container exits meanwhile it raises :class:`ContainerExited` at once, with the
exit status, instead of waiting out the timeout.

Ports are reached from the host through the published host port, over IPv4 ``127.0.0.1``
explicitly: ``localhost`` may resolve to ``::1`` first and stall every attempt.
"""

from __future__ import annotations

import abc
import http.client as _http_client
import re
import socket
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING

from containerkit._inprocess import engine_container
from containerkit.errors import ContainerkitError, InvalidArgument, NotFound, Timeout
from containerkit.spec import ContainerStatus

if TYPE_CHECKING:
    from containerkit import api
    from containerkit.engine.containers import Container as EngineContainer

__all__ = [
    "DEFAULT_TIMEOUT",
    "ContainerExited",
    "Probe",
    "Strategy",
    "WaitTimeout",
    "all",
    "command",
    "host_address",
    "http",
    "log",
    "port",
    "until",
]

DEFAULT_TIMEOUT = 60.0
"""Seconds a wait may take in all when no ``timeout`` is given."""

LOG_LINES = 20
"""Log lines quoted in a failed wait's message."""

_FIRST_DELAY = 0.00025
_GROWTH = 1.5
_MAX_DELAY = 0.1
"""Polls start 0.25 ms apart and back off gently to 100 ms (8 polls in the first 10 ms, then
fewer and fewer): a service in a fresh container is often ready a millisecond or a few after
the start returns (busybox httpd behind ``sh -c``: 1-3 ms here), and a refused probe (DNAT to a
port nobody listens on yet) costs 0.1-0.2 ms, so early polls are cheap and a coarse first delay
would be most of the wait. Nothing in the kernel announces a new listening socket
(sock_diag only reports destroyed ones), so there is no edge to wait on instead."""
_STATUS_EVERY = 0.01
"""While polls fail, the container's status (has it exited?) is looked at once per 10 ms at
most: a look costs more than a refused probe (a state read and the paused check in-process, an
inspect round trip through a daemon), and a service is usually ready within a few polls."""
_ATTEMPT_TIMEOUT = 2.0

StatusCheck = int | range | Collection[int] | Callable[[int], bool]


class WaitTimeout(Timeout):
    """A wait did not succeed in time. ``waited_for`` names the strategy, ``logs`` holds the
    container's last log lines and ``exit_code`` its exit status when it had exited."""

    def __init__(
        self,
        message: str,
        *,
        waited_for: str,
        logs: str = "",
        exit_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.waited_for = waited_for
        self.logs = logs
        self.exit_code = exit_code


class ContainerExited(WaitTimeout):
    """The container exited (or died) before it was ready: waiting longer cannot help."""


class Probe(abc.ABC):
    """The state of one wait on one container. ``detail`` says why the last check failed."""

    detail: str = ""

    @abc.abstractmethod
    def ready(self, remaining: float) -> bool:
        """One check; must return within ``remaining`` seconds."""

    def close(self) -> None:  # noqa: B027 - most probes hold nothing
        """Release what the probe holds (sockets, cursors); called once the wait ends."""


class Strategy(abc.ABC):
    """What to wait for. Subclass it (``describe`` and ``probe``) for a custom condition."""

    @abc.abstractmethod
    def describe(self) -> str:
        """What is waited for, in words that end up in the error message."""

    @abc.abstractmethod
    def probe(self, container: api.ContainerHandle) -> Probe:
        """Fresh state for waiting on ``container``."""

    def wait(self, container: api.ContainerHandle, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Shorthand for ``until(container, self, timeout=timeout)``."""
        until(container, self, timeout=timeout)

    def __repr__(self) -> str:
        return f"<wait for {self.describe()}>"


def until(container: api.ContainerHandle, strategy: Strategy, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Poll ``strategy`` until it holds; fail fast with :class:`ContainerExited` when the
    container exits, and with :class:`WaitTimeout` once ``timeout`` seconds passed in all."""
    if timeout <= 0:
        raise InvalidArgument(f"wait timeout must be positive, got {timeout!r}")
    started = time.monotonic()
    deadline = started + timeout
    probe = strategy.probe(container)
    delay = _FIRST_DELAY
    status_due = started + _STATUS_EVERY
    try:
        while True:
            if probe.ready(max(deadline - time.monotonic(), 0.001)):
                return
            now = time.monotonic()
            if now >= status_due or now >= deadline:
                status_due = now + _STATUS_EVERY
                if _ready_at_end(container, strategy, probe, started, deadline, timeout):
                    return
            time.sleep(max(min(delay, deadline - time.monotonic()), 0))
            delay = min(delay * _GROWTH, _MAX_DELAY)
    finally:
        probe.close()


def _ready_at_end(
    container: api.ContainerHandle,
    strategy: Strategy,
    probe: Probe,
    started: float,
    deadline: float,
    timeout: float,
) -> bool:
    """Raise when waiting longer cannot help (the container stopped, or the time is up); True
    when a stopped container's output, written just before its exit, satisfies the probe."""
    status = _status(container)
    if ContainerStatus.of(status).has_stopped:
        if probe.ready(max(deadline - time.monotonic(), 0.001)):
            return True
        code = _exit_code(container)
        raise ContainerExited(
            f"container {_name(container)} exited with status {code} after "
            f"{time.monotonic() - started:.1f} s while waiting for {strategy.describe()}"
            + _detail(probe)
            + _quote_logs(container),
            waited_for=strategy.describe(),
            logs=_last_logs(container),
            exit_code=code,
        )
    if deadline - time.monotonic() <= 0:
        raise WaitTimeout(
            f"timed out after {timeout:g} s waiting for {strategy.describe()} "
            f"(container {_name(container)}, {status})" + _detail(probe) + _quote_logs(container),
            waited_for=strategy.describe(),
            logs=_last_logs(container),
        )
    return False


# -- log lines -----------------------------------------------------------------------------


class _LogStrategy(Strategy):
    def __init__(self, pattern: str | re.Pattern[str], times: int, stdout: bool, stderr: bool) -> None:
        if times < 1:
            raise InvalidArgument(f"wait.log: times must be at least 1, got {times!r}")
        self.pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
        self.times = times
        self.stdout = stdout
        self.stderr = stderr

    def describe(self) -> str:
        count = "" if self.times == 1 else f" {self.times} times"
        return f"a log line matching {self.pattern.pattern!r}{count}"

    def probe(self, container: api.ContainerHandle) -> Probe:
        return _LogProbe(self, _LogCursor.open(container, stdout=self.stdout, stderr=self.stderr))


class _LogProbe(Probe):
    def __init__(self, strategy: _LogStrategy, cursor: _LogCursor) -> None:
        self._strategy = strategy
        self._cursor = cursor
        self._seen = 0

    def ready(self, remaining: float) -> bool:
        for line in self._cursor.read_new():
            if self._strategy.pattern.search(line):
                self._seen += 1
        self.detail = f"seen {self._seen} of {self._strategy.times}"
        return self._seen >= self._strategy.times


class _LogCursor:
    """New complete log lines since the last call, without re-reading what was read.

    In-process containers: the json-file log is read from the byte offset where the last read
    stopped. Remote containers: ``logs(since=...)`` asks only for records from the last one on.
    """

    @staticmethod
    def open(container: api.ContainerHandle, *, stdout: bool, stderr: bool) -> _LogCursor:
        local = engine_container(container)
        if local is not None:  # read in place: the daemon is not in between
            return _LocalLogCursor(local, stdout=stdout, stderr=stderr)
        return _SinceLogCursor(container, stdout=stdout, stderr=stderr)

    def read_new(self) -> list[str]:
        raise NotImplementedError


class _LocalLogCursor(_LogCursor):
    """An in-process container's log, read on from where the last read stopped (by its Task)."""

    def __init__(self, container: EngineContainer, *, stdout: bool, stderr: bool) -> None:
        self._cursor = container.log_cursor(stdout=stdout, stderr=stderr)

    def read_new(self) -> list[str]:
        return self._cursor.read_new()


class _SinceLogCursor(_LogCursor):
    def __init__(self, container: api.ContainerHandle, *, stdout: bool, stderr: bool) -> None:
        self._container = container
        self._stdout = stdout
        self._stderr = stderr
        self._last_stamp = ""
        self._seen_at_last = 0

    def read_new(self) -> list[str]:
        since = _stamp_seconds(self._last_stamp) - 0.001 if self._last_stamp else None
        data = self._container.logs(stdout=self._stdout, stderr=self._stderr, timestamps=True, since=since)
        lines = []
        same = 0
        for raw in bytes(data).decode("utf-8", "replace").splitlines():
            stamp, _, text = raw.partition(" ")
            if stamp < self._last_stamp:
                continue
            if stamp == self._last_stamp:
                same += 1
                if same <= self._seen_at_last:
                    continue
                self._seen_at_last = same
            else:
                self._last_stamp, self._seen_at_last, same = stamp, 1, 1
            lines.append(text)
        return lines


def _stamp_seconds(stamp: str) -> float:
    import datetime as dt

    main, _, frac = stamp.rstrip("Z").partition(".")
    base = dt.datetime.fromisoformat(main).replace(tzinfo=dt.UTC).timestamp()
    return base + float(f"0.{frac or '0'}")


# -- ports and HTTP ------------------------------------------------------------------------


def host_address(
    container: api.ContainerHandle, container_port: int | str, proto: str = "tcp"
) -> tuple[str, int]:
    """The IPv4 address and host port where ``container_port`` is published.

    A port published on every address (``0.0.0.0``) is reached on ``127.0.0.1``.
    """
    key = f"{container_port}/{proto}" if "/" not in str(container_port) else str(container_port)
    ports = container.ports
    bindings: Sequence[object] = ports.get(key) or []
    if not bindings and ContainerStatus.of(_status(container)).has_stopped:
        # A stopped container keeps its port keys with no bindings (dockerd's shape): the
        # reason is the exit, not the port.
        code = _exit_code(container)
        raise ContainerExited(
            f"container {_name(container)} exited with status {code}: port {key} cannot be "
            "reached" + _quote_logs(container),
            waited_for=f"port {key}",
            logs=_last_logs(container),
            exit_code=code,
        )
    if not bindings:
        published = ", ".join(sorted(ports)) or "none"
        raise InvalidArgument(
            f"port {key} of container {_name(container)} is not published "
            f"(published: {published}); run it with ports={{{key!r}: None}}"
        )
    first = bindings[0]
    if isinstance(first, Mapping):  # the Docker API's shape: {"HostIp": ..., "HostPort": "..."}
        host_ip, host_port = str(first.get("HostIp") or ""), int(first["HostPort"])
    elif isinstance(first, tuple):
        host_ip, host_port = str(first[0]), int(first[1])
    else:
        raise InvalidArgument(f"port {key} of container {_name(container)}: unreadable binding {first!r}")
    if host_ip in ("", "0.0.0.0", "::", "[::]"):
        host_ip = "127.0.0.1"
    return host_ip, host_port


class _PortStrategy(Strategy):
    def __init__(self, container_port: int, proto: str) -> None:
        if proto != "tcp":
            raise InvalidArgument(
                f"wait.port: only tcp ports can be probed (udp has no handshake), got {proto!r}; "
                "use wait.log or wait.command for a udp service"
            )
        self.container_port = container_port
        self.proto = proto

    def describe(self) -> str:
        return f"port {self.container_port}/{self.proto} to accept connections"

    def probe(self, container: api.ContainerHandle) -> Probe:
        return _PortProbe(container, self.container_port)


class _PortProbe(Probe):
    def __init__(self, container: api.ContainerHandle, container_port: int) -> None:
        self._container = container
        self._port = container_port

    def ready(self, remaining: float) -> bool:
        host, port = host_address(self._container, self._port)
        try:
            with socket.create_connection((host, port), timeout=min(remaining, _ATTEMPT_TIMEOUT)):
                return True
        except OSError as exc:
            self.detail = f"connect {host}:{port}: {exc.strerror or exc}"
            return False


class _HttpStrategy(Strategy):
    def __init__(self, path: str, container_port: int, status: StatusCheck, method: str) -> None:
        if not path.startswith("/"):
            raise InvalidArgument(f"wait.http: path must start with '/', got {path!r}")
        self.path = path
        self.container_port = container_port
        self.status = status
        self.method = method

    def status_ok(self, code: int) -> bool:
        if isinstance(self.status, int):
            return code == self.status
        if callable(self.status):
            return bool(self.status(code))
        return code in self.status

    def describe(self) -> str:
        if isinstance(self.status, int):
            wanted = str(self.status)
        elif isinstance(self.status, range):
            wanted = f"{self.status.start}-{self.status.stop - 1}"
        elif callable(self.status):
            wanted = getattr(self.status, "__name__", "an accepted status")
        else:
            wanted = " or ".join(str(s) for s in sorted(self.status))
        return f"HTTP {self.method} {self.path} on port {self.container_port} to answer {wanted}"

    def probe(self, container: api.ContainerHandle) -> Probe:
        return _HttpProbe(self, container)


class _HttpProbe(Probe):
    def __init__(self, strategy: _HttpStrategy, container: api.ContainerHandle) -> None:
        self._strategy = strategy
        self._container = container

    def ready(self, remaining: float) -> bool:
        host, port = host_address(self._container, self._strategy.container_port)
        conn = _http_client.HTTPConnection(host, port, timeout=min(remaining, _ATTEMPT_TIMEOUT))
        try:
            conn.request(self._strategy.method, self._strategy.path, headers={"Connection": "close"})
            response = conn.getresponse()
            response.read()
        except (OSError, _http_client.HTTPException) as exc:
            # an attempt cut short by the deadline says less than the answer before it
            if not (isinstance(exc, TimeoutError) and "answered" in self.detail):
                self.detail = f"http://{host}:{port}{self._strategy.path}: {exc}"
            return False
        finally:
            conn.close()
        if self._strategy.status_ok(response.status):
            return True
        self.detail = f"http://{host}:{port}{self._strategy.path} answered {response.status}"
        return False


# -- commands and combinations -------------------------------------------------------------


class _CommandStrategy(Strategy):
    def __init__(self, argv: Sequence[str] | str) -> None:
        if not argv:
            raise InvalidArgument("wait.command: no command given")
        self.argv = argv

    def describe(self) -> str:
        shown = self.argv if isinstance(self.argv, str) else " ".join(self.argv)
        return f"command {shown!r} to exit 0"

    def probe(self, container: api.ContainerHandle) -> Probe:
        return _CommandProbe(self.argv, container)


class _CommandProbe(Probe):
    def __init__(self, argv: Sequence[str] | str, container: api.ContainerHandle) -> None:
        self._argv = argv
        self._container = container

    def ready(self, remaining: float) -> bool:
        try:
            result = self._container.exec(self._argv)
        except NotFound as exc:
            raise InvalidArgument(f"wait.command: {exc}") from None
        except ContainerkitError as exc:  # not running yet, or exiting: the status check decides
            self.detail = str(exc)
            return False
        if result.exit_code == 0:
            return True
        out = (result.stdout + result.stderr).decode("utf-8", "replace").strip()
        self.detail = f"exit status {result.exit_code}" + (f": {out[-300:]}" if out else "")
        return False


class _AllStrategy(Strategy):
    def __init__(self, strategies: Sequence[Strategy]) -> None:
        if not strategies:
            raise InvalidArgument("wait.all: no strategies given")
        self.strategies = tuple(strategies)

    def describe(self) -> str:
        return "all of: " + "; ".join(s.describe() for s in self.strategies)

    def probe(self, container: api.ContainerHandle) -> Probe:
        return _AllProbe([(s, s.probe(container)) for s in self.strategies])


class _AllProbe(Probe):
    def __init__(self, probes: list[tuple[Strategy, Probe]]) -> None:
        self._pending = probes
        self._probes = [p for _, p in probes]

    def ready(self, remaining: float) -> bool:
        self._pending = [(s, p) for s, p in self._pending if not p.ready(remaining)]
        if self._pending:
            strategy, probe = self._pending[0]
            self.detail = f"still waiting for {strategy.describe()}" + (
                f" ({probe.detail})" if probe.detail else ""
            )
        return not self._pending

    def close(self) -> None:
        for probe in self._probes:
            probe.close()


# -- the public constructors ---------------------------------------------------------------


def log(
    pattern: str | re.Pattern[str], times: int = 1, *, stdout: bool = True, stderr: bool = True
) -> Strategy:
    """Wait until ``times`` log lines (counted from the container's start) match ``pattern``
    (``re.search`` on each line, without its newline). Reads only what was appended since the
    previous check."""
    return _LogStrategy(pattern, times, stdout, stderr)


def port(container_port: int, proto: str = "tcp") -> Strategy:
    """Wait until a TCP connection from the host to the published host port succeeds."""
    return _PortStrategy(container_port, proto)


def http(path: str = "/", port: int = 80, status: StatusCheck = 200, *, method: str = "GET") -> Strategy:
    """Wait until an HTTP request through the published ``port`` answers with ``status``: an
    int, a ``range`` (``range(200, 300)``), a collection of ints, or a predicate."""
    return _HttpStrategy(path, port, status, method)


def command(argv: Sequence[str] | str) -> Strategy:
    """Wait until ``argv`` run inside the container (``exec``) exits 0: a readiness check
    the image ships, such as ``["pg_isready"]``. A string runs through ``sh -c``."""
    return _CommandStrategy(argv)


def all(*strategies: Strategy) -> Strategy:
    """Wait until every strategy holds; each is checked until it first succeeds."""
    return _AllStrategy(strategies)


# -- what a failure shows ------------------------------------------------------------------


def _name(container: api.ContainerHandle) -> str:
    name = container.name or "?"
    short = container.short_id or container.id[:12]
    return f"{name} ({short})" if short else str(name)


def _status(container: api.ContainerHandle) -> str:
    try:
        return str(container.status)
    except NotFound:
        return "dead"


def _exit_code(container: api.ContainerHandle) -> int | None:
    try:
        code = container.exit_code
    except NotFound:
        return None
    return None if code is None else int(code)


def _last_logs(container: api.ContainerHandle, lines: int = LOG_LINES) -> str:
    try:
        data = container.logs(tail=lines)
    except ContainerkitError:
        return ""
    return bytes(data).decode("utf-8", "replace").rstrip("\n")


def _quote_logs(container: api.ContainerHandle) -> str:
    text = _last_logs(container)
    if not text:
        return "\n(no log output)"
    indented = "\n".join(f"  {line}" for line in text.splitlines())
    return f"\nlast {LOG_LINES} log lines:\n{indented}"


def _detail(probe: Probe) -> str:
    return f"; last check: {probe.detail}" if probe.detail else ""

"""A container's streams: ``logs``, ``attach`` (hijacked), ``wait`` and ``archive``.

Output comes from the json-file log the shim writes (it is the one copy of the container's
stdout/stderr), so attach is "follow the log from now" and nothing is lost between attach and
start. Framing follows the container's ``Tty`` exactly: raw bytes with a TTY, 8-byte frames
without.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from containerkit.daemon import streams
from containerkit.daemon.monitor import ClientGone
from containerkit.daemon.routes.containers import lookup
from containerkit.daemon.server import Request, Response
from containerkit.engine.frontend import parse_log_time
from containerkit.errors import ContainerkitError, InvalidArgument, NotFound

if TYPE_CHECKING:
    from containerkit.daemon.app import DaemonApp
    from containerkit.daemon.router import Router
    from containerkit.engine import Container

__all__ = ["register"]

ATTACH_POLL = 0.01
"""How often an attach stream the client may detach from (a tty's stdin) looks whether it did
(seconds)."""
ATTACH_IDLE_POLL = 0.1
"""How often any other attach stream looks at the container unbidden: new output and the exit
record wake it at once (inotify), so this only bounds noticing a shim that died without a
record, or the exit where no inotify watch could be had."""


def _tail(request: Request) -> int | None:
    value = request.q("tail", "all") or "all"
    if value == "all":
        return None
    try:
        count = int(value)
    except ValueError:
        raise InvalidArgument(f"tail: expected a number or 'all', got {value!r}") from None
    return None if count < 0 else count


def _seconds(request: Request, name: str) -> float | None:
    value = request.q(name)
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            return parse_log_time(value) / 1e9
        except InvalidArgument:
            raise InvalidArgument(f"{name}: expected a unix timestamp, got {value!r}") from None
    return seconds if seconds > 0 else None


def register(router: Router, app: DaemonApp) -> None:
    monitor = app.monitor

    def logs(request: Request) -> Response:
        container = lookup(app, request)
        container.check_logs_readable()  # driver none: docker's 501
        stdout, stderr = request.qbool("stdout"), request.qbool("stderr")
        if not (stdout or stderr):
            raise InvalidArgument("You must choose at least one stream")
        tail = _tail(request)
        since, until = _seconds(request, "since"), _seconds(request, "until")
        timestamps = request.qbool("timestamps")
        tty = container.spec.tty

        def render(stream: str, data: bytes) -> bytes:
            return data if tty else streams.frame(streams.stream_number(stream), data)

        def snapshot() -> Iterator[bytes | None]:
            for entry in container.log_entries(
                stdout=stdout, stderr=stderr, tail=tail, since=since, until=until
            ):
                yield render(entry.stream, entry.render(timestamps))

        def follow() -> Iterator[bytes | None]:
            for stream, data in container.follow_output(
                stdout=stdout,
                stderr=stderr,
                tail=tail,
                since=since,
                timestamps=timestamps,
                until=request.client_gone,
            ):
                if until is not None and time.time() > until:
                    return
                yield render(stream, data)

        content_type = streams.content_type(tty, app.api_tuple(request))
        return Response(
            200, content_type=content_type, stream=follow() if request.qbool("follow") else snapshot()
        )

    def attach(request: Request) -> Response | None:
        # "From now" is the moment of the request: the CLI starts the container right after the
        # hijack, and a fast `echo` may write before the stream below is set up.
        attached_at = time.time()
        container = lookup(app, request)
        replay, live = request.qbool("logs"), request.qbool("stream")
        # A reader from the request on: an auto-remove container that exits at once (before the
        # stream below is set up) must keep its log until this stream has sent it.
        with monitor.reading(container):
            _attach_stream(request, container, replay=replay, live=live, attached_at=attached_at)
        return None

    def _attach_stream(
        request: Request, container: Container, *, replay: bool, live: bool, attached_at: float
    ) -> None:
        tty = container.spec.tty
        want_stdout, want_stderr = request.qbool("stdout"), request.qbool("stderr")
        keys = detach_keys(request.q("detachKeys") or "", "Invalid detach keys ({}) provided")
        sock, rfile = request.hijack(streams.content_type(tty, app.api_tuple(request)))
        detached = threading.Event()
        detachable = False
        if request.qbool("stdin") and container.spec.stdin_open:
            # moby: the detach keys work on a tty's stdin only; the client leaves, the container runs on
            _StdinFifo(container).pump(rfile, keys if tty else b"", detached.set)
            detachable = tty

        def send(stream: str, data: bytes) -> None:
            sock.sendall(data if tty else streams.frame(streams.stream_number(stream), data))

        try:
            if live and (want_stdout or want_stderr):
                for stream, data in container.follow_output(
                    stdout=want_stdout,
                    stderr=want_stderr,
                    since=None if replay else attached_at,
                    until=detached.is_set,
                    # the exit wakes the stream at once (an attached `docker run` ends with
                    # it); looking more often only costs the start it runs beside
                    poll_interval=ATTACH_POLL if detachable else ATTACH_IDLE_POLL,
                ):
                    send(stream, data)
            elif replay:
                for entry in container.log_entries(stdout=want_stdout, stderr=want_stderr):
                    send(entry.stream, entry.data)
            elif live:
                while container.may_run() and not detached.is_set():
                    time.sleep(ATTACH_POLL)
        except OSError:
            pass  # the client went away
        finally:
            streams.finish(sock)

    def wait(request: Request) -> Response:
        try:
            container = lookup(app, request)
        except NotFound:
            # An auto-remove container may be gone before its client asks (it exited at once).
            code = monitor.removed_exit_code(request.params["id"])
            if code is None:
                raise
            return Response(200, json.dumps({"StatusCode": code, "Error": None}).encode() + b"\n")
        waiter = monitor.waiter(container.id, request.q("condition"))

        def body() -> Iterator[bytes | None]:
            try:
                code = waiter.wait(container, request.client_gone)
            except ClientGone:
                return
            except ContainerkitError as exc:
                yield json.dumps({"StatusCode": -1, "Error": {"Message": exc.message}}).encode() + b"\n"
                return
            yield json.dumps({"StatusCode": code, "Error": None}).encode() + b"\n"

        return Response(200, stream=body())

    def _stat_header(stat: dict[str, Any]) -> dict[str, str]:
        stat = {**stat, "mode": _go_mode(int(stat["mode"]))}
        stat["mtime"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(stat["mtime"])))
        return {"X-Docker-Container-Path-Stat": base64.b64encode(json.dumps(stat).encode()).decode()}

    def archive_head(request: Request) -> Response:
        container = lookup(app, request)
        path = _archive_path(request)
        return Response(200, b"", "application/x-tar", _stat_header(container.stat_path(path)))

    def archive_get(request: Request) -> Response:
        if request.method == "HEAD":
            return archive_head(request)
        container = lookup(app, request)
        path = _archive_path(request)
        # streamed in chunks as the walk reads it: memory stays bounded whatever the size
        stream, stat = container.get_archive(path)
        return Response(200, content_type="application/x-tar", headers=_stat_header(stat), stream=stream)

    def archive_put(request: Request) -> Response:
        container = lookup(app, request)
        path = _archive_path(request)
        # extracted as the body arrives, entry by entry: nothing is buffered whole
        container.put(
            path,
            request.body_stream(),
            copy_uid_gid=request.qbool("copyUIDGID"),
            no_overwrite_dir_non_dir=request.qbool("noOverwriteDirNonDir"),
        )
        app.events.emit("container", "extract-to-dir", container.id, {"name": container.name, "path": path})
        return Response(200, b"", None)

    router.add("GET", "/containers/{id}/logs", logs)
    router.add("POST", "/containers/{id}/attach", attach)
    router.add("POST", "/containers/{id}/wait", wait)
    router.add("HEAD", "/containers/{id}/archive", archive_head)
    router.add("GET", "/containers/{id}/archive", archive_get)
    router.add("PUT", "/containers/{id}/archive", archive_put)


def detach_keys(keys: str, message: str) -> bytes:
    """The detach sequence of a request (dockerd's default when empty); a bad one is docker's 400
    (``message`` has ``{}`` for the keys: attach and exec word it differently)."""
    try:
        return streams.detach_key_bytes(keys or streams.DEFAULT_DETACH_KEYS)
    except ValueError:
        raise InvalidArgument(message.format(keys)) from None


def _archive_path(request: Request) -> str:
    path = request.q("path")
    if not path:
        raise InvalidArgument("path: the archive endpoints need ?path=")
    if not path.startswith("/"):
        path = "/" + path
    return path


def _go_mode(mode: int) -> int:
    """Go's ``os.FileMode`` bits, which the docker CLI decodes (dir, symlink flags)."""
    import stat as stat_mod

    perm = mode & 0o777
    if stat_mod.S_ISDIR(mode):
        perm |= 1 << 31
    elif stat_mod.S_ISLNK(mode):
        perm |= 1 << 27
    return perm


class _StdinFifo:
    """Writes the attach client's stdin into the container's stdin (the Task's writer)."""

    def __init__(self, container: Container) -> None:
        self._writer = container.stdin_writer()

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    def close(self) -> None:
        # A client that sent nothing still ends a stdin_once container's input: the shim sees
        # EOF only after a writer came and went.
        self._writer.close(eof=True)

    def pump(self, rfile: object, keys: bytes, on_detach: Callable[[], None]) -> None:
        def detach() -> None:
            self._writer.close(eof=False)  # detached: the container keeps its stdin
            on_detach()

        streams.pump_stdin(rfile, self.write, self.close, detach_keys=keys, on_detach=detach)  # type: ignore[arg-type]

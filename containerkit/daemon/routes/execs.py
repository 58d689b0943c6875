"""``/containers/{id}/exec`` and ``/exec/{id}/start|json|resize``.

``start`` answers ``101``, starts the process while the client reads that head, and sends the
first output only once the client has read it (:meth:`Request.await_read`): a fast ``echo``'s
output never reaches a client that reads the raw socket (docker-py) together with the head.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import socket
import struct
import termios
import threading
from typing import TYPE_CHECKING, Any

from containerkit.daemon import streams
from containerkit.daemon.execs import ExecRecord
from containerkit.daemon.routes.container_io import detach_keys
from containerkit.daemon.routes.containers import lookup
from containerkit.daemon.server import Request, Response, json_response
from containerkit.dockerapi import exec_inspect
from containerkit.dockerapi.body import Body
from containerkit.errors import Conflict, ContainerkitError, InvalidArgument, NotRunning

if TYPE_CHECKING:
    from containerkit.daemon.app import DaemonApp
    from containerkit.daemon.router import Router
    from containerkit.engine import Container

__all__ = ["register"]


def register(router: Router, app: DaemonApp) -> None:
    def create(request: Request) -> Response:
        container = lookup(app, request)
        body = Body(request.json(required=True))
        argv = body.str_list("Cmd")
        if not argv:
            raise InvalidArgument("Cmd: an exec needs a command (Cmd is empty)")
        if container.status != "running":
            raise NotRunning(f"Container {container.id} is not running")
        detach_keys(body.str("DetachKeys"), "Invalid escape keys ({}) provided")
        record = app.execs.create(
            container.id,
            argv,
            env=body.str_list("Env"),
            user=body.opt_str("User"),
            workdir=body.opt_str("WorkingDir"),
            tty=body.bool("Tty"),
            privileged=body.bool("Privileged"),
            attach_stdin=body.bool("AttachStdin"),
            attach_stdout=body.bool("AttachStdout", True),
            attach_stderr=body.bool("AttachStderr", True),
            detach_keys=body.str("DetachKeys"),
        )
        app.events.emit(
            "container",
            f"exec_create: {' '.join(argv)}",
            container.id,
            {"name": container.name, "execID": record.id},
        )
        return json_response({"Id": record.id}, 201)

    def start(request: Request) -> Response | None:
        record = app.execs.get(request.params["id"])
        body = Body(request.json())
        container = app.engine.containers.get(record.container_id)
        if record.started:
            raise Conflict(f"exec {record.id} has already been started")
        if container.status != "running":
            raise NotRunning(f"Container {container.id} is not running")
        record.started = True
        # moby's postContainerExecStart: the start request's Tty alone picks raw or multiplexed
        # output (an exec created with a tty and started without one gets frames, all stdout)
        raw = body.bool("Tty")
        if body.bool("Detach"):
            process, _message = _spawn(app, container, record)
            if process is not None:
                threading.Thread(
                    target=_drain, args=(app, container, record, process, None), daemon=True
                ).start()
            return Response(200, b"", None)
        sock, rfile = request.hijack(streams.content_type(raw, app.api_tuple(request)), await_read=False)
        # the process starts while the client reads the head; what it says goes out after that
        process, message = _spawn(app, container, record)
        request.await_read()
        if message is not None:
            _send_error(sock, raw, message)
        if process is None:
            streams.finish(sock)
            return None
        detached = threading.Event()
        if record.attach_stdin:
            # moby: the detach keys work on a tty's stdin only; the client leaves, the exec runs on
            keys = detach_keys(record.detach_keys, "Invalid escape keys ({}) provided")
            streams.pump_stdin(
                rfile,
                process.write_stdin,
                process.close_stdin,
                detach_keys=keys if record.tty else b"",
                on_detach=functools.partial(_detach, detached, sock),
            )
        _drain(app, container, record, process, sock, raw=raw, detached=detached)
        return None

    def inspect(request: Request) -> Response:
        return json_response(exec_inspect(app.execs.get(request.params["id"])))

    def resize(request: Request) -> Response:
        record = app.execs.get(request.params["id"])
        height, width = request.qint("h", 0) or 0, request.qint("w", 0) or 0
        process = record.process
        if record.tty and process is not None and height > 0 and width > 0:
            with contextlib.suppress(OSError, ValueError):
                fcntl.ioctl(
                    process.stdout.fileno(), termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0)
                )
        return Response(200, b"", None)

    router.add("POST", "/containers/{id}/exec", create)
    router.add("POST", "/exec/{id}/start", start)
    router.add("GET", "/exec/{id}/json", inspect)
    router.add("POST", "/exec/{id}/resize", resize)


def _spawn(app: DaemonApp, container: Container, record: ExecRecord) -> tuple[Any, str | None]:
    """Start the process; a command that cannot start ends the exec with its code. Returns the
    process (None when there is none) and the message for the client, if any."""
    try:
        process = container.exec(
            record.argv,
            env=record.env,
            user=record.user,
            workdir=record.workdir,
            tty=record.tty,
            stdin=record.attach_stdin,
            privileged=record.privileged,
            stream=True,
        )
    except ContainerkitError as exc:
        app.execs.finish(record, 126)  # dockerd: an exec that cannot start exits 126
        return None, exc.message
    record.process = process
    app.execs.started(record, process.pid)
    app.events.emit(
        "container",
        f"exec_start: {' '.join(record.argv)}",
        container.id,
        {"name": container.name, "execID": record.id},
    )
    return process, None if process.error is None else oci_exec_failure(process.error.message)


def oci_exec_failure(message: str) -> str:
    """dockerd's words for an exec that runc could not start (what ``docker exec`` prints)."""
    message = message.rstrip()
    if "unable to start container process" not in message:
        message = f"exec failed: unable to start container process: {message}"
    if not message.endswith(": unknown"):
        message += ": unknown"
    return f"OCI runtime exec failed: {message}"


def _send_error(sock: Any, raw: bool, message: str) -> None:
    data = (message + "\n").encode()
    with contextlib.suppress(OSError):
        sock.sendall(data if raw else streams.frame(streams.STDERR, data))


def _detach(detached: threading.Event, sock: Any) -> None:
    """The client typed the detach keys: its stream ends now (the drain closes the socket, which
    it may be writing to), the exec runs on."""
    detached.set()
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _drain(
    app: DaemonApp,
    container: Container,
    record: ExecRecord,
    process: Any,
    sock: Any,
    *,
    raw: bool = False,
    detached: threading.Event | None = None,
) -> None:
    """Copy output to the client (or nowhere, detached) until EOF; record the exit code."""
    code = 126
    try:
        for name, chunk in process.stream():
            if sock is not None and detached is not None and detached.is_set():
                streams.finish(sock)  # the client detached: the output goes nowhere
                sock = None
            if sock is None:
                continue
            if (name == "stderr" and not record.attach_stderr) or (
                name == "stdout" and not record.attach_stdout
            ):
                continue
            try:
                sock.sendall(chunk if raw else streams.frame(streams.stream_number(name), chunk))
            except OSError:
                sock = None  # the client left; keep draining so the process is not blocked
        code = process.wait()  # 126 for a command that could not start, as dockerd
    finally:
        with contextlib.suppress(OSError):
            process.close()
        # recorded before the stream ends: the CLI inspects the exec as soon as it sees EOF
        app.execs.finish(record, code)
        if sock is not None:
            streams.finish(sock)
    app.events.emit(
        "container",
        "exec_die",
        container.id,
        {"name": container.name, "execID": record.id, "exitCode": str(code)},
    )

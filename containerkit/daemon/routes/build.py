"""``POST /build`` (docker's classic builder protocol) and ``POST /build/prune``.

The context arrives as a tar body (plain or compressed) that the engine unpacks as it arrives
(no spool: a 50 MB context is written once), then builds from on a thread while its events
stream out as dockerd's JSON lines, one
object per chunk (docker-py reads each chunk as one message). Until the first event an error
is an HTTP status (a bad parameter is a 400 before anything is sent); after that it is the
in-band ``{"errorDetail", "error"}``. Query parameters are read as docker-py and the docker CLI
send them: booleans as ``True``/``False``/``1``/``0``, ``t`` repeated, ``dockerfile`` possibly
twice (docker-py's out-of-context Dockerfile: the first value is its name in the tar), JSON for
``buildargs``, ``labels`` and ``cachefrom``. ``version=2`` asks for BuildKit's session protocol,
which this daemon does not speak: a 400 that says so.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import queue
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from containerkit import RegistryAuth
from containerkit.daemon.server import TICK, Request, Response, json_response
from containerkit.dockerapi.build import build_error, build_message, quiet_message
from containerkit.errors import BuildError, ContainerkitError, InvalidArgument
from containerkit.spec import BuildEvent

if TYPE_CHECKING:
    from containerkit.daemon.app import DaemonApp
    from containerkit.daemon.router import Router

__all__ = ["register"]

log = logging.getLogger("containerkit.daemon")

CONTEXT_LIMIT = 64 << 30
"""Largest build context accepted."""

_POLL = 0.5


def _json_param(request: Request, name: str, kind: type) -> Any:
    value = request.qjson(name)
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise InvalidArgument(f"query parameter {name}: expected a JSON {kind.__name__}, got {value!r}")
    return value


def registry_config(request: Request) -> dict[str, RegistryAuth]:
    """``X-Registry-Config``: base64url JSON of registry host -> AuthConfig, keyed here by the
    host as references name it (``https://index.docker.io/v1/`` is ``docker.io``)."""
    header = (request.headers.get("X-Registry-Config") or "").strip()
    if not header:
        return {}
    try:
        data = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError) as exc:
        log.debug("ignoring an X-Registry-Config header that does not decode: %s", exc)
        return {}
    out: dict[str, RegistryAuth] = {}
    for host, entry in (data or {}).items() if isinstance(data, Mapping) else ():
        if not isinstance(entry, Mapping):
            continue
        name = str(host).split("://", 1)[-1].split("/", 1)[0]
        if name in ("index.docker.io", "registry-1.docker.io"):
            name = "docker.io"
        try:
            out[name] = RegistryAuth.from_json(entry)
        except (InvalidArgument, ValueError):
            continue
    return out


def _extra_hosts(request: Request) -> dict[str, str]:
    hosts: dict[str, str] = {}
    for value in request.query.get("extrahosts", []):
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            name, sep, address = item.partition(":") if "=" not in item else item.partition("=")
            if not sep or not name:
                raise InvalidArgument(f"extrahosts: expected host:ip, got {item!r}")
            hosts[name] = address
    return hosts


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, ContainerkitError):
        return exc.message
    log.error("build failed: %s: %s", type(exc).__name__, exc)
    return f"internal error: {type(exc).__name__}: {exc}"


def register(router: Router, app: DaemonApp) -> None:
    images = app.engine.images

    def build(request: Request) -> Response:
        if (request.q("version") or "1").strip() == "2":
            raise InvalidArgument(
                "BuildKit (version=2) is not supported by containerkitd: use the classic builder "
                "(DOCKER_BUILDKIT=0 with the docker CLI)"
            )
        if request.q("remote"):
            raise InvalidArgument("remote: building from a URL or git repository is not supported")
        dockerfile = (request.query.get("dockerfile") or ["Dockerfile"])[0] or "Dockerfile"
        network = request.q("networkmode") or "bridge"
        if network == "default":
            network = "bridge"
        quiet = request.qbool("q")
        options: dict[str, Any] = {
            "dockerfile": dockerfile,
            "tag": [t for t in request.query.get("t", []) if t],
            "buildargs": _json_param(request, "buildargs", dict),
            "target": request.q("target") or None,
            "labels": _json_param(request, "labels", dict),
            "nocache": request.qbool("nocache"),
            "cache_from": _json_param(request, "cachefrom", list),
            "pull": request.qbool("pull"),
            "network": network,
            "extra_hosts": _extra_hosts(request),
            "platform": request.q("platform") or None,
            "rm": request.qbool("rm", default=True),
            "forcerm": request.qbool("forcerm"),
        }
        auth = registry_config(request)
        if request.content_length() > CONTEXT_LIMIT:
            raise InvalidArgument(
                f"build context of {request.content_length()} bytes exceeds {CONTEXT_LIMIT}"
            )
        body = request.body_stream()
        items: queue.Queue[tuple[str, Any]] = queue.Queue()
        gone = threading.Event()

        def emit(event: BuildEvent) -> None:
            if not gone.is_set() and not (quiet and event.kind not in ("stage",)):
                items.put(("event", event))

        def work() -> None:
            try:
                builder = app.engine.images.builder
                if builder is None:
                    raise InvalidArgument("this engine cannot build")
                # the body is read to its end before the first event: the handler returns
                # (and the server drains what is left) only after that
                image = builder.build(body, progress=emit, auth=auth, cancel=gone, **options)
            except BaseException as exc:  # reported to the client, in-band or as a status
                items.put(("error", exc))
            else:
                items.put(("done", image.id))

        threading.Thread(target=work, name="ckd-build", daemon=True).start()
        head = items.get()
        if head[0] == "error":
            raise head[1]

        def lines() -> Iterator[bytes | None]:
            kind, value = head
            try:
                while kind == "event":
                    message = build_message(value)
                    if message is not None:
                        yield json.dumps(message).encode() + b"\r\n"
                    while True:
                        try:
                            kind, value = items.get(timeout=_POLL)
                            break
                        except queue.Empty:
                            yield TICK
                if kind == "done" and quiet:
                    yield json.dumps(quiet_message(value)).encode() + b"\r\n"
                if kind == "error":
                    code = value.exit_code if isinstance(value, BuildError) else None
                    error_kind = value.kind if isinstance(value, ContainerkitError) else None
                    yield (
                        json.dumps(build_error(_error_text(value), code=code, kind=error_kind)).encode()
                        + b"\r\n"
                    )
            finally:
                gone.set()  # the client left (or the stream ended): a build still going stops

        return Response(200, content_type="application/json", stream=lines())

    def prune(request: Request) -> Response:
        deleted = images.prune_build_cache()
        return json_response({"CachesDeleted": deleted or None, "SpaceReclaimed": 0})

    router.add("POST", "/build", build)
    router.add("POST", "/build/prune", prune)

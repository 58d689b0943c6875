"""``/containers``: create, list, inspect, the lifecycle, rename, top, stats, prune, delete.

The streams of a container (logs, attach, wait, archive) are in :mod:`.container_io`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from containerkit.daemon.convert import create_request
from containerkit.daemon.server import Request, Response, json_response
from containerkit.daemon.shapes import container_inspect, container_summary, stats_json, system_cpu_ns
from containerkit.dockerapi import filters_from_query
from containerkit.dockerapi.containers import size_fields
from containerkit.dockerapi.update import update_from_wire
from containerkit.errors import ContainerkitError, InvalidArgument, NotFound, NotModified, NotRunning
from containerkit.spec import ContainerStatus, Stats, parse_signal

if TYPE_CHECKING:
    from containerkit.daemon.app import DaemonApp
    from containerkit.daemon.router import Router
    from containerkit.engine import Container

__all__ = ["register"]


def lookup(app: DaemonApp, request: Request) -> Container:
    return app.engine.containers.get(request.params["id"])


def _attributes(container: Container, **extra: str) -> dict[str, str]:
    return {**container.labels, "name": container.name, "image": container.image, **extra}


def register(router: Router, app: DaemonApp) -> None:
    engine = app.engine
    events = app.events
    monitor = app.monitor

    def create(request: Request) -> Response:
        created = create_request(request.json(required=True), request.q("name"), networking=app.networking)
        # what inspect shows of the create body, in the create's own record (no second commit)
        container = engine.container_service.create(created.spec, extra=created.docker)
        return json_response({"Id": container.id, "Warnings": created.warnings}, 201)

    def list_(request: Request) -> Response:
        filters = filters_from_query(request.qjson("filters"))
        containers = engine.containers.list(all=request.qbool("all"), filters=filters or None)
        limit = request.qint("limit", -1) or -1
        if limit > 0:
            containers = containers[:limit]
        summaries = []
        sized = request.qbool("size")
        for container in containers:
            with contextlib.suppress(NotFound):  # removed while listing
                summary = container_summary(container)
                if sized:  # walks each writable layer: only when asked, as dockerd
                    summary.update(_size(container, summary=True))
                summaries.append(summary)
        return json_response(summaries)

    def inspect(request: Request) -> Response:
        container = lookup(app, request)
        image = None
        with contextlib.suppress(ContainerkitError):
            image = engine.images.get(container.image_id)
        shape = container_inspect(
            container, image, app.execs.for_container(container.id), driver=engine.snapshots.driver
        )
        if app.api_tuple(request) < (1, 45):
            # before API 1.45 dockerd listed the short id and the hostname among a user network's
            # Aliases (DNSNames came later)
            own = [container.id[:12], container.spec.hostname or container.id[:12]]
            for endpoint in ((shape.get("NetworkSettings") or {}).get("Networks") or {}).values():
                if endpoint.get("DNSNames") is not None:
                    endpoint["Aliases"] = list(dict.fromkeys([*(endpoint.get("Aliases") or []), *own]))
        if request.qbool("size"):
            shape.update(_size(container, summary=False))
        return json_response(shape)

    def _size(container: Container, *, summary: bool) -> dict[str, int]:
        size = container.size()
        return size_fields(size.rw, size.root_fs, summary=summary)

    def start(request: Request) -> Response:
        container = lookup(app, request)
        if ContainerStatus.of(container.status).is_up:
            raise NotModified(f"container {container.name} is already running")
        # an AutoRemove container's exit is the watcher's (below), not a new exit-command process
        container.claim_exit()
        try:
            container.start()
        except NotModified:
            container.release_exit()
            raise
        except BaseException:
            container.release_exit()
            if container.spec.auto_remove:
                with contextlib.suppress(ContainerkitError):
                    container.remove(force=True)
                monitor.mark_removed(container.id, container.name, container.image)
            raise
        # after "start" (a fast exit's "die" must come second), and once the 204 is sent: the
        # watcher's first steps (a state read, its thread start) need not delay the client
        return Response(204, after=lambda: monitor.watch(container))

    def stop(request: Request) -> Response:
        container = lookup(app, request)
        timeout = request.qint("t", None)
        if timeout is None:
            timeout = request.qint("timeout", None)
        if not ContainerStatus.of(container.status).is_up:
            raise NotModified(f"container {container.name} is not running")
        monitor.watch(container)
        container.stop(None if timeout is None or timeout < 0 else timeout)
        _note_removal(container)
        return Response(204)

    def kill(request: Request) -> Response:
        container = lookup(app, request)
        signal = parse_signal(request.q("signal") or "SIGKILL")
        if not ContainerStatus.of(container.status).is_up:
            raise NotRunning(
                f"Cannot kill container: {container.name}: container {container.id} is not running"
            )
        monitor.watch(container)
        container.kill(signal)
        return Response(204)

    def restart(request: Request) -> Response:
        container = lookup(app, request)
        timeout = request.qint("t", None)
        monitor.watch(container)
        container.restart(None if timeout is None or timeout < 0 else timeout)
        monitor.watch(container)
        return Response(204)

    def pause(request: Request) -> Response:
        container = lookup(app, request)
        container.pause()
        return Response(204)

    def unpause(request: Request) -> Response:
        container = lookup(app, request)
        container.unpause()
        return Response(204)

    def remove(request: Request) -> Response:
        container = lookup(app, request)
        attributes = _attributes(container)
        container.remove(force=request.qbool("force"), volumes=request.qbool("v"))
        monitor.mark_removed(container.id, attributes["name"], attributes["image"])
        return Response(204)

    def rename(request: Request) -> Response:
        container = lookup(app, request)
        name = request.q("name") or ""
        container.rename(name.lstrip("/"))
        return Response(204)

    def update(request: Request) -> Response:
        container = lookup(app, request)
        container.update(**update_from_wire(request.json()))
        return json_response({"Warnings": []})

    def resize(request: Request) -> Response:
        container = lookup(app, request)
        height, width = request.qint("h"), request.qint("w")
        if height is None or width is None:
            raise InvalidArgument("resize: both h (rows) and w (columns) are required")
        container.resize(height, width)
        return Response(200, b"", None)

    def top(request: Request) -> Response:
        return json_response(lookup(app, request).top())

    def stats(request: Request) -> Response:
        container = lookup(app, request)
        one_shot = request.qbool("one-shot")
        stream = request.qbool("stream", True)

        def sample() -> Stats | None:
            try:
                return container.stats()
            except NotRunning:
                return None

        def system() -> int:
            return system_cpu_ns()

        if not stream:
            previous, previous_system = None, 0
            if not one_shot and ContainerStatus.of(container.status) is ContainerStatus.RUNNING:
                previous, previous_system = sample(), system()
                time.sleep(0.5)
            return json_response(stats_json(container, sample(), previous, previous_system))

        def frames() -> Iterator[bytes | None]:
            previous, previous_system = None, 0
            while True:
                current = sample()
                yield json.dumps(stats_json(container, current, previous, previous_system)).encode() + b"\n"
                if current is None:
                    return
                previous, previous_system = current, system()
                for _ in range(10):
                    time.sleep(0.1)
                    yield None

        return Response(200, stream=frames())

    def prune(request: Request) -> Response:
        filters = filters_from_query(request.qjson("filters"))
        removed = engine.containers.prune(filters=filters or None)
        for container_id in removed:
            monitor.mark_removed(container_id)
        events.emit("container", "prune", "", {"reclaimed": "0"})
        return json_response({"ContainersDeleted": removed or None, "SpaceReclaimed": 0})

    def _note_removal(container: Container) -> None:
        if container.spec.auto_remove:
            with contextlib.suppress(NotFound):
                engine.containers.get(container.id)
                return
            monitor.mark_removed(container.id, container.name, container.image)

    router.add("POST", "/containers/create", create)
    router.add("GET", "/containers/json", list_)
    router.add("POST", "/containers/prune", prune)
    router.add("GET", "/containers/{id}/json", inspect)
    router.add("POST", "/containers/{id}/start", start)
    router.add("POST", "/containers/{id}/stop", stop)
    router.add("POST", "/containers/{id}/kill", kill)
    router.add("POST", "/containers/{id}/restart", restart)
    router.add("POST", "/containers/{id}/pause", pause)
    router.add("POST", "/containers/{id}/unpause", unpause)
    router.add("POST", "/containers/{id}/rename", rename)
    router.add("POST", "/containers/{id}/resize", resize)
    router.add("GET", "/containers/{id}/top", top)
    router.add("GET", "/containers/{id}/stats", stats)
    router.add("POST", "/containers/{id}/update", update)
    router.add("DELETE", "/containers/{id}", remove)

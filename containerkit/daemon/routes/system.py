"""``/_ping``, ``/version``, ``/info``, ``/events``, ``/auth``, ``/system/df``; swarm answers 503."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from containerkit import __version__
from containerkit.daemon.app import API_VERSION, MIN_API_VERSION
from containerkit.daemon.errors import SwarmUnavailable
from containerkit.daemon.registry import check_login
from containerkit.daemon.server import Request, Response, json_response
from containerkit.daemon.shapes import container_summary, host_platform
from containerkit.dockerapi import filters_from_query, image_summary, volume_json
from containerkit.dockerapi.containers import size_fields
from containerkit.engine.frontend import cgroup_mode
from containerkit.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from containerkit.daemon.app import DaemonApp
from containerkit.daemon.router import Router

__all__ = ["register", "register_fallbacks"]

_SWARM = ("swarm", "services", "nodes", "tasks", "secrets", "configs")


def register(router: Router, app: DaemonApp) -> None:
    def ping(request: Request) -> Response:
        headers = {
            "Cache-Control": "no-cache, no-store, must-revalidate",
            "Pragma": "no-cache",
            "Swarm": "inactive",
            "Builder-Version": "1",
        }
        return Response(200, b"OK", "text/plain; charset=utf-8", headers)

    def version(request: Request) -> Response:
        os_name, arch = host_platform()
        details = {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": os_name, "Arch": arch}
        return json_response(
            {
                "Platform": {"Name": f"containerkit {__version__}"},
                "Components": [{"Name": "containerkit", "Version": __version__, "Details": details}],
                "Version": __version__,
                "ApiVersion": API_VERSION,
                "MinAPIVersion": MIN_API_VERSION,
                "GitCommit": "",
                "GoVersion": f"python{platform.python_version()}",
                "Os": os_name,
                "Arch": arch,
                "KernelVersion": platform.release(),
                "BuildTime": "",
            }
        )

    def info(request: Request) -> Response:
        containers = app.engine.containers.list(all=True)
        states = [c.status for c in containers]
        os_name, arch = host_platform()
        mode = cgroup_mode()
        version = "2" if "2" in mode or "unified" in mode else "1"
        return json_response(
            {
                "ID": _daemon_id(app),
                "Name": platform.node(),
                "ServerVersion": __version__,
                "Containers": len(states),
                "ContainersRunning": states.count("running"),
                "ContainersPaused": states.count("paused"),
                "ContainersStopped": len(states) - states.count("running") - states.count("paused"),
                "Images": len(app.engine.images.list(all=True)),
                "Driver": "overlay2",
                "DriverStatus": [],
                "DockerRootDir": str(app.engine.root),
                "LoggingDriver": "json-file",
                "CgroupDriver": "cgroupfs",
                "CgroupVersion": version,
                "OSType": os_name,
                "OperatingSystem": _os_name(),
                "OSVersion": "",
                "Architecture": platform.machine(),
                "KernelVersion": platform.release(),
                "NCPU": os.cpu_count() or 1,
                "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
                "IndexServerAddress": "https://index.docker.io/v1/",
                "Runtimes": {"builtin": {"path": "containerkit"}, "runc": {"path": "runc"}},
                "DefaultRuntime": "builtin",
                "Swarm": {
                    "LocalNodeState": "inactive",
                    "NodeID": "",
                    "NodeAddr": "",
                    "ControlAvailable": False,
                },
                "SecurityOptions": [],
                "Labels": [],
                "ExperimentalBuild": False,
                "Debug": False,
                "Warnings": []
                if app.networking
                else ["networking is not available: containers get no network"],
                "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "Arch": arch,
            }
        )

    def events(request: Request) -> Response:
        """The engine's durable log, as docker streams it: the kept events from ``since`` (or
        up to ``until``), then new ones, from this daemon or any engine on its root, until
        ``until``. Bad times or filters are a 400 before the stream starts."""
        follow = app.engine.event_log.follow(
            request.q("since"), request.q("until"), filters_from_query(request.qjson("filters"))
        )

        def stream() -> Iterator[bytes | None]:
            try:
                for event in follow:
                    yield None if event is None else json.dumps(event.to_docker()).encode() + b"\n"
            finally:
                follow.close()

        return Response(200, content_type="application/json", stream=stream())

    def auth(request: Request) -> Response:
        """docker login: the credentials are checked against the registry, never stored here
        (the client keeps them and sends them with each pull and push)."""
        body = request.json(required=True)
        if not isinstance(body, dict):
            raise InvalidArgument("auth: expected a JSON object with username, password and serveraddress")
        server = str(body.get("serveraddress") or "")
        username = str(body.get("username") or "")
        password = str(body.get("password") or "")
        if not username or not password:
            raise InvalidArgument(f"login to {server or 'docker.io'}: username and password are required")
        return json_response(check_login(app.engine, server, username, password))

    def system_df(request: Request) -> Response:
        containers = []
        for container in app.engine.containers.list(all=True):  # dockerd: the list with size=1
            with contextlib.suppress(NotFound):  # removed meanwhile
                size = container.size()
                containers.append(
                    {**container_summary(container), **size_fields(size.rw, size.root_fs, summary=True)}
                )
        return json_response(
            {
                "LayersSize": sum(i.size for i in app.engine.images.list()),
                "Images": [image_summary(i) for i in app.engine.images.list()],
                "Containers": containers,
                "Volumes": [volume_json(v) for v in app.engine.volumes.list()],
                "BuildCache": [],
            }
        )

    router.add("GET", "/_ping", ping)
    router.add("HEAD", "/_ping", ping)
    router.add("GET", "/version", version)
    router.add("GET", "/info", info)
    router.add("GET", "/events", events)
    router.add("POST", "/auth", auth)
    router.add("GET", "/system/df", system_df)


def register_fallbacks(router: Router, app: DaemonApp) -> None:
    def swarm(request: Request) -> Response:
        raise SwarmUnavailable(
            "This node is not a swarm manager. containerkit does not implement swarm mode (services, "
            "nodes, tasks, secrets, configs)"
        )

    for prefix in _SWARM:
        for method in ("GET", "POST", "DELETE", "PUT"):
            router.add(method, f"/{prefix}", swarm)
            router.add(method, f"/{prefix}/{{rest:.+}}", swarm)


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _daemon_id(app: DaemonApp) -> str:
    path = app.engine.root / "daemon-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        import uuid

        value = str(uuid.uuid4()).upper()
        path.write_text(value)
        return value

"""``/volumes``: create, list (label, name and dangling filters), inspect, remove, prune."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from containerkit.daemon.server import Request, Response, json_response
from containerkit.dockerapi import filters_from_query, volume_json
from containerkit.dockerapi.body import Body
from containerkit.errors import Conflict, NotFound
from containerkit.spec import Volume

if TYPE_CHECKING:
    from containerkit.daemon.app import DaemonApp
    from containerkit.daemon.router import Router

__all__ = ["register"]

_ANONYMOUS = re.compile(r"^[0-9a-f]{64}$")


def register(router: Router, app: DaemonApp) -> None:
    volumes = app.engine.volumes

    def users(name: str) -> list[str]:
        return [c.name for c in app.engine.containers.list(all=True) if name in c.volume_names]

    def matching(filters: dict[str, list[str]]) -> list[Volume]:
        filters.pop("all", None)  # docker-py's prune sends it; it selects nothing more here
        return volumes.list(filters=filters)

    def list_(request: Request) -> Response:
        found = matching(filters_from_query(request.qjson("filters")))
        return json_response({"Volumes": [volume_json(v) for v in found], "Warnings": None})

    def create(request: Request) -> Response:
        body = Body(request.json())
        driver = body.str("Driver") or "local"
        opts = body.str_map("DriverOpts")
        name = body.opt_str("Name")
        if name is not None:
            try:
                return json_response(volume_json(volumes.get(name)), 201)
            except NotFound:
                pass
        try:
            # an unknown driver is dockerd's 404; local's options are checked by the engine
            volume = volumes.create(name, labels=body.str_map("Labels"), driver=driver, driver_opts=opts)
        except Conflict:
            volume = volumes.get(name or "")
        return json_response(volume_json(volume), 201)

    def inspect(request: Request) -> Response:
        return json_response(volume_json(_get(request.params["name"])))

    def _get(name: str) -> Volume:
        try:
            return volumes.get(name)
        except NotFound:
            raise NotFound(f"get {name}: no such volume") from None

    def remove(request: Request) -> Response:
        name = request.params["name"]
        force = request.qbool("force")
        if not force:
            _get(name)  # docker's "get NAME: no such volume"; with force a missing volume is fine
        volumes.remove(name, force=force)
        return Response(204)

    def prune(request: Request) -> Response:
        filters = filters_from_query(request.qjson("filters"))
        everything = filters.pop("all", ["false"])[-1].lower() in ("1", "true")
        removed = []
        for volume in matching(filters):
            if not everything and not _ANONYMOUS.match(volume.name):
                continue
            if users(volume.name):
                continue
            try:
                volumes.remove(volume.name)
            except (Conflict, NotFound):
                continue
            removed.append(volume.name)
        return json_response({"VolumesDeleted": removed or None, "SpaceReclaimed": 0})

    router.add("GET", "/volumes", list_)
    router.add("POST", "/volumes/create", create)
    router.add("POST", "/volumes/prune", prune)
    router.add("GET", "/volumes/{name}", inspect)
    router.add("DELETE", "/volumes/{name}", remove)

"""``/networks``: create, list (name, id, label, type, driver filters), inspect, remove, prune,
connect, disconnect."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from containerkit.daemon.errors import NotImplementedYet
from containerkit.daemon.server import Request, Response, json_response
from containerkit.dockerapi import filters_from_query, network_inspect
from containerkit.dockerapi.body import Body
from containerkit.errors import Conflict, InvalidArgument, NotFound

if TYPE_CHECKING:
    from containerkit.daemon.app import DaemonApp
    from containerkit.daemon.router import Router

__all__ = ["register"]

_PREDEFINED = ("bridge", "host", "none")


def register(router: Router, app: DaemonApp) -> None:
    def networks() -> Any:
        collection = getattr(app.engine, "networks", None)
        if collection is None:
            raise NotImplementedYet("networks are not available in this containerkit engine yet")
        return collection

    def find(ref: str) -> Any:
        try:
            return networks().get(ref)
        except NotFound:
            if ref == "bridge":
                return networks().default()
            raise NotFound(f"network {ref} not found") from None

    def list_(request: Request) -> Response:
        filters = filters_from_query(request.qjson("filters"))
        kinds = filters.pop("type", [])
        drivers = filters.pop("driver", [])
        if "dangling" in filters:
            raise InvalidArgument("the dangling network filter is not supported")
        found = networks().list(filters=filters or None)
        if "custom" in kinds and "builtin" not in kinds:
            found = [n for n in found if n.name not in _PREDEFINED]
        elif "builtin" in kinds and "custom" not in kinds:
            found = [n for n in found if n.name in _PREDEFINED]
        if drivers:
            found = [n for n in found if (n.driver or "bridge") in drivers]
        return json_response([network_inspect(n) for n in found])

    def create(request: Request) -> Response:
        body = Body(request.json(required=True))
        name = body.str("Name")
        if not name:
            raise InvalidArgument("Name: a network needs a name")
        driver = body.str("Driver") or "bridge"
        if driver != "bridge":
            raise InvalidArgument(f"Driver: network driver {driver!r} is not supported (bridge only)")
        if body.bool("EnableIPv6"):
            raise InvalidArgument("EnableIPv6: IPv6 networks are not supported")
        subnet = gateway = None
        configs = body.obj("IPAM").raw("Config") or []
        if not isinstance(configs, list):
            raise InvalidArgument("IPAM.Config: expected an array")
        if configs:
            first = Body(configs[0], "IPAM.Config[0]")
            subnet, gateway = first.opt_str("Subnet"), first.opt_str("Gateway")
        network = networks().create(
            name,
            subnet=subnet,
            gateway=gateway,
            internal=body.bool("Internal"),
            labels=body.str_map("Labels"),
        )
        return json_response({"Id": network.id, "Warning": ""}, 201)

    def inspect(request: Request) -> Response:
        return json_response(network_inspect(find(request.params["id"])))

    def remove(request: Request) -> Response:
        network = find(request.params["id"])
        if network.name in _PREDEFINED:
            raise Conflict(f"{network.name} is a pre-defined network and cannot be removed")
        networks().remove(network.id)
        return Response(204)

    def prune(request: Request) -> Response:
        filters = filters_from_query(request.qjson("filters"))
        removed = networks().prune(filters=filters or None)
        return json_response({"NetworksDeleted": removed or None})

    def connect(request: Request) -> Response:
        network = find(request.params["id"])
        body = Body(request.json(required=True))
        container = app.engine.containers.get(body.str("Container"))
        aliases = body.obj("EndpointConfig").str_list("Aliases") or []
        network.connect(container, aliases=aliases)
        return Response(200, b"", None)

    def disconnect(request: Request) -> Response:
        network = find(request.params["id"])
        body = Body(request.json(required=True))
        container = app.engine.containers.get(body.str("Container"))
        network.disconnect(container)
        return Response(200, b"", None)

    router.add("GET", "/networks", list_)
    router.add("POST", "/networks/create", create)
    router.add("POST", "/networks/prune", prune)
    router.add("GET", "/networks/{id}", inspect)
    router.add("DELETE", "/networks/{id}", remove)
    router.add("POST", "/networks/{id}/connect", connect)
    router.add("POST", "/networks/{id}/disconnect", disconnect)

"""Volume and network shapes, both ways."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from containerkit.dockerapi.times import ZERO_TIME, parse_time, rfc3339
from containerkit.spec import Volume

__all__ = ["network_inspect", "volume_from_wire", "volume_json"]


def volume_json(volume: Volume) -> dict[str, Any]:
    """``GET /volumes/{name}`` and one entry of ``GET /volumes``."""
    return {
        "Name": volume.name,
        "Driver": volume.driver,
        "Mountpoint": volume.mountpoint,
        "CreatedAt": volume.created.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Labels": dict(volume.labels),
        "Scope": "local",
        "Options": dict(volume.options) or None,
    }


def volume_from_wire(data: Mapping[str, Any]) -> Volume:
    return Volume(
        name=data["Name"],
        mountpoint=data.get("Mountpoint") or "",
        created=parse_time(data.get("CreatedAt")) or dt.datetime.fromtimestamp(0, dt.UTC),
        labels=data.get("Labels") or {},
        driver=data.get("Driver") or "local",
        options=data.get("Options") or {},
    )


def network_inspect(network: Any) -> dict[str, Any]:
    """``GET /networks/{id}`` from a network object, read by attribute (``id``, ``name``,
    ``subnet``, ``gateway``, ``containers``...)."""

    def attr(name: str, default: Any = None) -> Any:
        return getattr(network, name, default)

    created = attr("created")
    subnet, gateway = attr("subnet"), attr("gateway")
    containers: dict[str, Any] = {}
    for item in attr("containers", None) or []:
        cid = str(getattr(item, "id", item))
        containers[cid] = {
            "Name": str(getattr(item, "name", "")),
            "EndpointID": "",
            "MacAddress": "",
            "IPv4Address": str(getattr(item, "ip_address", "") or ""),
            "IPv6Address": "",
        }
    labels = attr("labels", {}) or {}
    return {
        "Name": attr("name", ""),
        "Id": attr("id", ""),
        "Created": rfc3339(created) if created is not None else ZERO_TIME,
        "Scope": "local",
        "Driver": attr("driver", "bridge") or "bridge",
        "EnableIPv4": True,
        "EnableIPv6": False,
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": [{"Subnet": str(subnet), **({"Gateway": str(gateway)} if gateway else {})}]
            if subnet
            else [],
        },
        "Internal": bool(attr("internal", False)),
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": containers,
        "Options": dict(attr("options", {}) or {}),
        "Labels": dict(labels),
    }

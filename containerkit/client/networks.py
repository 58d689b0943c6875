"""``client.networks`` and the remote :class:`Network`: Engine's networks over the Docker API."""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from containerkit.client import _wire
from containerkit.client._transport import Transport
from containerkit.client.containers import Container, ContainerCollection
from containerkit.errors import NotFound

__all__ = ["Network", "NetworkCollection"]

DEFAULT_NETWORK = "bridge"


def _path(ref: str) -> str:
    return "/networks/" + quote(ref, safe="")


class Network:
    """A handle on one network; :meth:`reload` re-reads it."""

    def __init__(
        self, transport: Transport, containers: ContainerCollection, data: Mapping[str, Any]
    ) -> None:
        self._transport = transport
        self._containers = containers
        self.attrs: dict[str, Any] = dict(data)
        self.id: str = self.attrs["Id"]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Network) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<Network {self.short_id} {self.name}>"

    @property
    def name(self) -> str:
        return str(self.attrs.get("Name") or "")

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def driver(self) -> str:
        return str(self.attrs.get("Driver") or "bridge")

    def _ipam(self) -> dict[str, Any]:
        configs = (self.attrs.get("IPAM") or {}).get("Config") or [{}]
        return dict(configs[0] or {})

    @property
    def subnet(self) -> str:
        return str(self._ipam().get("Subnet") or "")

    @property
    def gateway(self) -> str:
        return str(self._ipam().get("Gateway") or "")

    @property
    def internal(self) -> bool:
        return bool(self.attrs.get("Internal"))

    @property
    def bridge(self) -> str:
        """The host's link name for this network (``""`` when the daemon does not say)."""
        return str((self.attrs.get("Options") or {}).get("com.docker.network.bridge.name") or "")

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.attrs.get("Labels") or {})

    @property
    def created(self) -> dt.datetime:
        return _wire.parse_time(self.attrs.get("Created")) or dt.datetime.fromtimestamp(0, dt.UTC)

    @property
    def containers(self) -> list[Container]:
        """Every container connected (running or not)."""
        found = []
        for container_id in self.reload().attrs.get("Containers") or {}:
            try:
                found.append(self._containers.get(container_id))
            except NotFound:
                continue
        return found

    def reload(self) -> Network:
        self.attrs = self._transport.get_json(_path(self.id))
        return self

    def connect(self, container: Container | str, *, aliases: list[str] | tuple[str, ...] = ()) -> None:
        """Connect a container: plugged in at once if it runs, else at its start."""
        target = container if isinstance(container, str) else container.id
        body: dict[str, Any] = {"Container": target, "EndpointConfig": {"Aliases": list(aliases) or None}}
        self._transport.request("POST", f"{_path(self.id)}/connect", body=body)

    def disconnect(self, container: Container | str) -> None:
        target = container if isinstance(container, str) else container.id
        self._transport.request("POST", f"{_path(self.id)}/disconnect", body={"Container": target})

    def remove(self) -> None:
        self._transport.request("DELETE", _path(self.id))


class NetworkCollection:
    """``client.networks``: create, get, list, remove and prune networks."""

    def __init__(self, transport: Transport, containers: ContainerCollection) -> None:
        self._transport = transport
        self._containers = containers

    def _network(self, data: Mapping[str, Any]) -> Network:
        return Network(self._transport, self._containers, data)

    def create(
        self,
        name: str,
        *,
        subnet: str | None = None,
        gateway: str | None = None,
        internal: bool = False,
        labels: Mapping[str, str] | None = None,
    ) -> Network:
        """A bridge network; ``subnet`` defaults to a free one chosen by the daemon."""
        pool: dict[str, str] = {}
        if subnet:
            pool["Subnet"] = subnet
        if gateway:
            pool["Gateway"] = gateway
        body = {
            "Name": name,
            "Driver": "bridge",
            "Internal": internal,
            "Labels": dict(labels or {}),
            "IPAM": {"Driver": "default", "Config": [pool] if pool else [], "Options": {}},
            "CheckDuplicate": True,
        }
        created = self._transport.post_json("/networks/create", body=body)
        return self.get(created["Id"])

    def get(self, ref: str) -> Network:
        """By id, name or unique id prefix."""
        if not ref:
            raise NotFound(f"network {ref} not found")
        return self._network(self._transport.get_json(_path(ref)))

    def default(self) -> Network:
        return self.get(DEFAULT_NETWORK)

    def list(self, *, filters: Mapping[str, Any] | None = None) -> builtins.list[Network]:
        """``filters``: ``name`` (substring), ``id`` (prefix), ``label`` (``k`` or ``k=v``)."""
        entries = self._transport.get_json("/networks", params={"filters": _wire.filters_param(filters)})
        return [self._network(entry) for entry in entries or ()]

    def remove(self, ref: str) -> None:
        """Remove a network; Conflict while containers are connected."""
        self._transport.request("DELETE", _path(ref))

    def prune(self, *, filters: Mapping[str, Any] | None = None) -> builtins.list[str]:
        """Remove user-defined networks no container is connected to; their names."""
        data = self._transport.post_json(
            "/networks/prune", params={"filters": _wire.filters_param(filters)}, timeout=None
        )
        return list((data or {}).get("NetworksDeleted") or [])

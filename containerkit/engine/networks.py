"""``engine.networks``: bridge networks, each a Linux bridge with its own subnet and NAT rules.

The collection and its :class:`Network` handles check names and filters and hold the
:class:`~containerkit.engine.network_service.NetworkService`, which brings bridges up and down
and plugs containers in (its docstring has the naming, locking and subnet rules). Without
nftables the engine still works for ``none``, ``host`` and ``container:`` networks; bringing a
bridge up is then ``Unavailable``, naming the Debian package to install.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from containerkit.engine.events import EventLog
from containerkit.engine.network_service import DEFAULT_NETWORK, NetworkService
from containerkit.errors import Conflict, NotFound
from containerkit.spec import check_object_name, label_matches, normalise_filters
from containerkit.storage.metadata import NetworkRecord
from containerkit.storage.stores import NetworkStore

if TYPE_CHECKING:
    from containerkit.engine.containers import Container, ContainerCollection
    from containerkit.network.nat import NatTable

__all__ = ["Network", "NetworkCollection"]

_PREDEFINED = frozenset({DEFAULT_NETWORK, "host", "none"})


@attrs.define(eq=False)
class Network:
    """A live handle on one network (equal by id); :meth:`reload` re-reads its record."""

    id: str
    _networks: NetworkCollection = attrs.field(repr=False)
    _record: NetworkRecord = attrs.field(repr=False)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def driver(self) -> str:
        return self._record.driver

    @property
    def subnet(self) -> str:
        return self._record.subnet

    @property
    def gateway(self) -> str:
        return self._record.gateway

    @property
    def internal(self) -> bool:
        return self._record.internal

    @property
    def bridge(self) -> str:
        """The host's link name for this network."""
        return self._record.bridge

    @property
    def labels(self) -> dict[str, str]:
        return dict(json.loads(self._record.labels_json))

    @property
    def created(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._record.created, dt.UTC)

    @property
    def containers(self) -> list[Container]:
        """Every container connected (running or not)."""
        ids = [e.container_id for e in self._networks.store.endpoints(network_id=self.id)]
        return [self._networks.containers.get(i) for i in ids]

    def reload(self) -> Network:
        self._record = self._networks.store.get(self.id)
        return self

    def connect(self, container: Container | str, *, aliases: list[str] | tuple[str, ...] = ()) -> None:
        """Connect a container: plugged in at once if it runs (as ``eth<n>``), else at its start."""
        target = self._networks.containers.get(container if isinstance(container, str) else container.id)
        self._networks.service.connect(self.reload()._record, target.id, aliases)
        self._networks.record(self._record, "connect", container=target.id)

    def disconnect(self, container: Container | str) -> None:
        target = self._networks.containers.get(container if isinstance(container, str) else container.id)
        self._networks.service.disconnect(self._record, target.id)
        self._networks.record(self._record, "disconnect", container=target.id)

    def remove(self) -> None:
        self._networks.remove(self.id)


class NetworkCollection:
    """``engine.networks``: create, get, list, remove and prune networks."""

    def __init__(
        self,
        service: NetworkService,
        store: NetworkStore,
        containers: ContainerCollection,
        *,
        events: EventLog,
    ) -> None:
        """``store``: the metadata's network store; ``containers``: to resolve a container
        reference the way ``engine.containers.get`` does; ``events``: where its events go."""
        self.service = service
        self.store = store
        self.containers = containers
        self.events = events

    def record(self, network: NetworkRecord, action: str, **extra: str) -> None:
        """A network event with docker's attributes (``name``, ``type``, and ``container``)."""
        self.events.record("network", action, network.id, {"name": network.name, "type": "bridge", **extra})

    @property
    def nat(self) -> NatTable:
        """This root's nft table (published ports and the bridges' rules)."""
        return self.service.nat

    def _handle(self, record: NetworkRecord) -> Network:
        return Network(record.id, self, record)

    # -- creating ---------------------------------------------------------------------------

    def create(
        self,
        name: str,
        *,
        subnet: str | None = None,
        gateway: str | None = None,
        internal: bool = False,
        labels: Mapping[str, str] | None = None,
    ) -> Network:
        """A bridge network, up at once; ``subnet`` defaults to a free one from docker's pool."""
        check_object_name("network", name)
        if name in _PREDEFINED:
            raise Conflict(f"network name {name} is reserved for the predefined network")
        with contextlib.suppress(NotFound):
            existing = self.store.find(name)
            if existing.name == name:
                raise Conflict(f"network with name {name} already exists (id {existing.id})")
        record = self.service.new_record(name, subnet, gateway, internal, labels)
        created = self.service.create_network(record)
        self.record(created, "create")
        return self._handle(created)

    def release_idle(self) -> None:
        """Take the default network's bridge down while no container is attached to it."""
        self.service.release_idle()

    # -- finding ----------------------------------------------------------------------------

    def get(self, ref: str) -> Network:
        """By id, name or unique id prefix."""
        return self._handle(self.store.find(ref))

    def default(self) -> Network:
        return self._handle(self.service.default_record())

    def list(self, *, filters: Mapping[str, Any] | None = None) -> list[Network]:
        """Oldest first; ``filters``: ``name`` (substring), ``id`` (prefix), ``label`` (``k`` or ``k=v``)."""
        wanted = normalise_filters(filters, ("name", "id", "label"))
        result = []
        for record in self.store.all():
            net = self._handle(record)
            if "name" in wanted and not any(str(v) in net.name for v in wanted["name"]):
                continue
            if "id" in wanted and not any(net.id.startswith(str(v)) for v in wanted["id"]):
                continue
            if "label" in wanted and not all(label_matches(net.labels, str(v)) for v in wanted["label"]):
                continue
            result.append(net)
        return result

    # -- removing ---------------------------------------------------------------------------

    def remove(self, ref: str) -> None:
        """Remove a network and its bridge and rules; Conflict while containers are connected."""
        record = self.store.find(ref)
        if record.name == DEFAULT_NETWORK:
            raise Conflict(f"{record.name} is a pre-defined network and cannot be removed")
        self.service.remove_network(record)
        self.record(record, "destroy")

    def prune(self, *, filters: Mapping[str, Any] | None = None) -> builtins.list[str]:
        """Remove user-defined networks no container is connected to; their names."""
        removed = []
        for net in self.list(filters=filters):
            if net.name == DEFAULT_NETWORK:
                continue
            with contextlib.suppress(Conflict, NotFound):
                self.remove(net.id)
                removed.append(net.name)
        return removed

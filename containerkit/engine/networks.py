"""``engine.networks``: bridge networks, each a Linux bridge with its own subnet and NAT rules.

A user-defined network's bridge exists from ``create`` to ``remove``. The default network
``bridge`` is recorded on first use; its bridge comes up when a container needs it and is
taken down by :meth:`NetworkCollection.release_idle` (``Engine.close``) once no container is
attached, so an engine root used by tests leaves no link behind. Names are per root: with
``P = ck<5 hex of the root>``, bridges are ``P b<7 hex>``, veths ``P v<7 hex>`` and the one nft
table is ``P``, so engines on different roots (parallel test workers) never share or clash.

Subnets come from docker's pool, skipping what the host routes (``docker0`` included). The
default network re-picks its subnet when it comes up and finds that the host took it meanwhile.

Beside Docker (FORWARD policy DROP), a bridge coming up also gets accept rules in the host's
iptables firewall (``network/foreign_firewall.py``); they go with the bridge. Without
nftables the engine still works for ``none``, ``host`` and ``container:`` networks; bringing a
bridge up is then ``Unavailable``, naming the Debian package to install.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import json
import re
import secrets
import time
from collections.abc import Mapping
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from containerkit.engine import _netsetup
from containerkit.engine._handle import RecordHandle
from containerkit.errors import Conflict, ContainerkitError, InvalidArgument, NotFound, Unavailable
from containerkit.network import bridge as bridges
from containerkit.network import foreign_firewall
from containerkit.network.ipam import gateway_for, parse_subnet, pick_subnet
from containerkit.network.nat import NFT_MISSING, NatTable, nft_available
from containerkit.spec import label_matches
from containerkit.storage.metadata import NetworkRecord

if TYPE_CHECKING:
    from containerkit.engine.containers import Container
    from containerkit.engine.engine import Engine

__all__ = ["Network", "NetworkCollection"]

_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_PREDEFINED = frozenset({_netsetup.DEFAULT_NETWORK, "host", "none"})
_DOCKER0 = IPv4Network("172.17.0.0/16")
"""Left to docker's own bridge even while docker is not running, so both can coexist."""
_HOST_LOCK = Path("/run/containerkit/subnets.lock")
"""Host-wide: engines on different roots must not bring up two bridges on one subnet."""


@attrs.define(eq=False)
class Network(RecordHandle[NetworkRecord]):
    """A live handle on one network; :meth:`reload` re-reads its record."""

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
        ids = [e.container_id for e in self._engine.metadata.networks.endpoints(network_id=self.id)]
        return [self._engine.containers.get(i) for i in ids]

    def reload(self) -> Network:
        self._record = self._engine.metadata.networks.get(self.id)
        return self

    def connect(self, container: Container | str, *, aliases: list[str] | tuple[str, ...] = ()) -> None:
        """Connect a container: plugged in at once if it runs (as ``eth<n>``), else at its start."""
        target = self._engine.containers.get(container if isinstance(container, str) else container.id)
        _netsetup.connect(self._engine, self.reload()._record, target.id, aliases)

    def disconnect(self, container: Container | str) -> None:
        target = self._engine.containers.get(container if isinstance(container, str) else container.id)
        _netsetup.disconnect(self._engine, self._record, target.id)

    def remove(self) -> None:
        self._engine.networks.remove(self.id)


class NetworkCollection:
    """``engine.networks``: create, get, list, remove and prune networks."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.nat = NatTable(_netsetup.link_prefix(engine), lock_path=engine.root / "nft.lock")

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
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise InvalidArgument(
                f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )
        if name in _PREDEFINED:
            raise Conflict(f"network name {name} is reserved for the predefined network")
        with contextlib.suppress(NotFound):
            existing = self._engine.metadata.networks.find(name)
            if existing.name == name:
                raise Conflict(f"network with name {name} already exists (id {existing.id})")
        record = self._new_record(name, subnet, gateway, internal, labels)
        with _netsetup.root_lock(self._engine):
            self._engine.metadata.networks.add(record)
            try:
                self._bring_up(record)
            except BaseException:
                self._engine.metadata.networks.remove(record.id)
                raise
        return Network(record.id, self._engine, record)

    def _new_record(
        self,
        name: str,
        subnet: str | None,
        gateway: str | None,
        internal: bool,
        labels: Mapping[str, str] | None,
    ) -> NetworkRecord:
        network_id = secrets.token_hex(32)
        if subnet is None:
            with _netsetup._flock(_HOST_LOCK):
                net = self._free_subnet()
        else:
            net = parse_subnet(subnet)
            for other in self._engine.metadata.networks.all():
                if net.overlaps(IPv4Network(other.subnet)):
                    raise Conflict(f"subnet {net} overlaps {other.subnet} of network {other.name}")
            clash = [n for n in bridges.host_networks() if n.overlaps(net)]
            if clash:
                raise Conflict(f"network {name}: subnet {net} overlaps {clash[0]}, routed by the host")
        if gateway is None:
            gw = gateway_for(net)
        else:
            try:
                gw = IPv4Address(gateway)
            except ValueError:
                raise InvalidArgument(f"network {name}: invalid gateway {gateway!r}") from None
            if gw not in net or gw in (net.network_address, net.broadcast_address):
                raise InvalidArgument(f"network {name}: gateway {gw} is not a host address of {net}")
        return NetworkRecord(
            id=network_id,
            name=name,
            bridge=_netsetup.bridge_name(self._engine, network_id),
            subnet=str(net),
            gateway=str(gw),
            internal=bool(internal),
            labels_json=json.dumps({str(k): str(v) for k, v in (labels or {}).items()}, sort_keys=True),
            created=time.time(),
        )

    def _free_subnet(self, exclude: str | None = None) -> IPv4Network:
        ours = [IPv4Network(n.subnet) for n in self._engine.metadata.networks.all() if n.id != exclude]
        return pick_subnet([*ours, _DOCKER0], bridges.host_networks())

    def _default_record(self) -> NetworkRecord:
        """The default network's record, made on first use (no bridge yet)."""
        with contextlib.suppress(NotFound):
            return self._engine.metadata.networks.find(_netsetup.DEFAULT_NETWORK)
        record = self._new_record(_netsetup.DEFAULT_NETWORK, None, None, False, None)
        try:
            return self._engine.metadata.networks.add(record)
        except Conflict:  # another engine on this root made it first
            return self._engine.metadata.networks.find(_netsetup.DEFAULT_NETWORK)

    # -- bridges up and down (callers hold the root lock) ------------------------------------

    def _ensure_up(self, record: NetworkRecord) -> NetworkRecord:
        """The network's bridge and rules exist; returns the (possibly re-addressed) record."""
        if bridges.bridge_exists(record.bridge):
            return record
        with _netsetup._flock(_HOST_LOCK):
            net = IPv4Network(record.subnet)
            clash = [n for n in bridges.host_networks() if n.overlaps(net)]
            if clash and record.name == _netsetup.DEFAULT_NETWORK:
                net = self._free_subnet(exclude=record.id)
                record = self._engine.metadata.networks.set_subnet(record.id, str(net), str(gateway_for(net)))
            elif clash:
                raise Conflict(f"network {record.name}: subnet {net} overlaps {clash[0]}, routed by the host")
            self._bring_up(record)
        return record

    def _bring_up(self, record: NetworkRecord) -> None:
        """Bridge, our nft rules, and accept rules in a foreign iptables firewall (Docker's
        FORWARD DROP); all or nothing."""
        if not nft_available():
            raise Unavailable(f"network {record.name}: {NFT_MISSING}")
        _netsetup.claim_prefix(self._engine)
        prefix = IPv4Network(record.subnet).prefixlen
        bridges.ensure_bridge(record.bridge, f"{record.gateway}/{prefix}")
        try:
            self.nat.ensure_network(record.bridge, record.subnet, internal=record.internal)
            foreign_firewall.allow_bridge(record.bridge)
        except BaseException:
            with contextlib.suppress(ContainerkitError):
                foreign_firewall.forget_bridge(record.bridge)
            with contextlib.suppress(ContainerkitError):
                self.nat.remove_network(record.bridge)
            bridges.remove_bridge(record.bridge)
            raise

    def _bring_down(self, record: NetworkRecord) -> None:
        foreign_firewall.forget_bridge(record.bridge)
        self.nat.remove_network(record.bridge)
        bridges.remove_bridge(record.bridge)
        if not any(bridges.bridge_exists(n.bridge) for n in self._engine.metadata.networks.all()):
            self.nat.remove_all()
            _netsetup.release_prefix(self._engine)

    def release_idle(self) -> None:
        """Take the default network's bridge down while no container is attached to it."""
        with contextlib.suppress(NotFound):
            record = self._engine.metadata.networks.find(_netsetup.DEFAULT_NETWORK)
            if not bridges.bridge_exists(record.bridge):
                return
            with _netsetup.root_lock(self._engine):
                endpoints = self._engine.metadata.networks.endpoints(network_id=record.id)
                if not any(e.attached for e in endpoints):
                    self._bring_down(record)

    # -- finding ----------------------------------------------------------------------------

    def get(self, ref: str) -> Network:
        """By id, name or unique id prefix."""
        record = self._engine.metadata.networks.find(ref)
        return Network(record.id, self._engine, record)

    def default(self) -> Network:
        record = self._default_record()
        return Network(record.id, self._engine, record)

    def list(self, *, filters: Mapping[str, Any] | None = None) -> list[Network]:
        """Oldest first; ``filters``: ``name`` (substring), ``id`` (prefix), ``label`` (``k`` or ``k=v``)."""
        wanted = {k: v if isinstance(v, list) else [v] for k, v in (filters or {}).items()}
        unknown = set(wanted) - {"name", "id", "label"}
        if unknown:
            raise InvalidArgument(f"invalid network filter(s) {sorted(unknown)}")
        result = []
        for record in self._engine.metadata.networks.all():
            net = Network(record.id, self._engine, record)
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
        record = self._engine.metadata.networks.find(ref)
        if record.name == _netsetup.DEFAULT_NETWORK:
            raise Conflict(f"{record.name} is a pre-defined network and cannot be removed")
        with _netsetup.root_lock(self._engine):
            self._engine.metadata.networks.remove(record.id)
            self._bring_down(record)

    def prune(self, *, filters: Mapping[str, Any] | None = None) -> builtins.list[str]:
        """Remove user-defined networks no container is connected to; their names."""
        removed = []
        for net in self.list(filters=filters):
            if net.name == _netsetup.DEFAULT_NETWORK:
                continue
            with contextlib.suppress(Conflict, NotFound):
                self.remove(net.id)
                removed.append(net.name)
        return removed

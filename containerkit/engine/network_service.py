"""The network service: bridges, and plugging one container into its networks and out again.

:class:`NetworkService` is built from what it uses (the engine root, the metadata database's
network and container stores, and where a container's state dir is) and never sees the
``Engine``; ``engine.networks`` (the collection and its handles) and the container code call it.

A container in bridge mode (the default network or a user-defined one) gets a persistent netns
file ``<root>/netns/<id>`` that ``config.json`` names at create; the namespace itself, its veths,
addresses, published ports and ``/etc/hosts`` are made at start, before the shim runs, and
undone when the container is seen exited (wait, stop, remove, or a later Engine's recover).

Two locks, always taken in this order: a per-container ``flock`` on its state dir (start and teardown of one
container never interleave, and recovery skips a container another process is starting) and a
per-root ``flock`` around anything several containers share (bridges coming up or going away,
addresses, peers' hosts files). Addresses are handed out inside one ``BEGIN IMMEDIATE``
transaction of the metadata store as well. A host-wide lock (``/run/containerkit/subnets.lock``)
is taken inside the root lock while a subnet is chosen or a bridge comes up.

A user-defined network's bridge exists from ``create`` to ``remove``. The default network
``bridge`` is recorded on first use; its bridge comes up when a container needs it and is
taken down by :meth:`NetworkService.release_idle` (``Engine.close``) once no container is
attached. Names are per root: with ``P = ck<5 hex of the root>``, bridges are ``P b<7 hex>``,
veths ``P v<7 hex>`` and the one nft table is ``P``, so engines on different roots (parallel
test workers) never share or clash. Subnets come from docker's pool, skipping what the host
routes (``docker0`` included); the default network re-picks its subnet when it comes up and
finds that the host took it meanwhile. Beside Docker (FORWARD policy DROP), a bridge coming up
also gets accept rules in the host's iptables firewall (``network/foreign_firewall.py``).

``/etc/hosts`` files are bind-mounted into running containers, so they are rewritten in place
(same inode): a peer that joins later becomes resolvable by name in containers already running.
The default ``bridge`` network resolves no names, as in docker.

The network modules (bridges, veths, NAT, address pools) are imported by the methods that use
them: a command line's ``run --network none`` opens an engine and runs a container without them.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from containerkit._model import model
from containerkit.errors import (
    Conflict,
    ContainerkitError,
    InvalidArgument,
    NotFound,
    NotRunning,
    Unavailable,
)
from containerkit.network.dns_files import hosts_file
from containerkit.network.netns import SpareNetns, list_netns, remove_netns
from containerkit.runtime import trace
from containerkit.runtime.task import Task
from containerkit.spec import ContainerSpec, ContainerStatus
from containerkit.storage.metadata import EndpointRecord, NetworkRecord, PortRecord
from containerkit.storage.stores import ContainerStore, NetworkStore

if TYPE_CHECKING:
    from containerkit.network.nat import NatTable
    from containerkit.network.rtnl import Rtnl

__all__ = [
    "DEFAULT_NETWORK",
    "NetPlan",
    "NetworkService",
    "flock",
    "link_prefix",
    "mode_of",
    "reap_vanished_roots",
    "write_in_place",
]

DEFAULT_NETWORK = "bridge"
NetKind = Literal["none", "host", "container", "bridge"]
_ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_STOPPED = (ContainerStatus.EXITED, ContainerStatus.DEAD)
_DOCKER0 = IPv4Network("172.17.0.0/16")
"""Left to docker's own bridge even while docker is not running, so both can coexist."""
_HOST_LOCK = Path("/run/containerkit/subnets.lock")
"""Host-wide: engines on different roots must not bring up two bridges on one subnet."""
_ROOTS = Path("/run/containerkit/roots")
"""One file per root with links up, named by its prefix and holding the root's path: a later
engine (on any root) deletes the links and table of a root whose directory is gone."""
_OUR_LINK = re.compile(r"^(ck[0-9a-f]{5})[bv][0-9a-f]{7}$")
_OUR_TABLE = re.compile(r"^ck[0-9a-f]{5}$")


@model
class NetPlan:
    """What a container's network is, decided at create."""

    kind: NetKind
    network: NetworkRecord | None = None  # bridge mode
    target_id: str | None = None  # container mode


def mode_of(network: str) -> tuple[NetKind, str]:
    """``"container:web"`` -> ``("container", "web")``; a network name -> ``("bridge", name)``."""
    if network in ("none", "host"):
        return network, ""  # type: ignore[return-value]
    if network.startswith("container:"):
        return "container", network.partition(":")[2]
    return "bridge", network


def _hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def link_prefix(root: Path) -> str:
    """``ck`` + 5 hex of the root: every host link of this root starts with it (and a ``b`` for
    bridges, a ``v`` for veths), so engines on different roots never clash or touch each other's."""
    return "ck" + _hash(str(root))[:5]


def _mac_for(ip: str) -> str:
    """docker's scheme: 02:42 then the four address bytes (locally administered, unicast)."""
    return "02:42:" + ":".join(f"{b:02x}" for b in IPv4Address(ip).packed)


@contextlib.contextmanager
def flock(path: Path, *, blocking: bool = True, directory: bool = False) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path``; yields False (not held) if ``blocking`` is off
    and someone else has it. ``directory``: lock the directory ``path`` itself (made if
    missing), so no lock file is created and deleted."""
    if directory:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def write_in_place(path: Path, text: str) -> None:
    """Rewrite ``path`` keeping its inode (a bind mount of it keeps showing it): write, then
    truncate, so a reader never sees it empty."""
    data = text.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def reap_vanished_roots() -> list[str]:
    """Links, nft tables and iptables accept rules of roots that are gone: a root deleted
    while its networks were up (a test's temp root removed after its engine was killed), or
    links and tables with our naming whose root never registered or no longer does (a root
    registers before its first link and releases after its last). The prefixes reaped."""
    if not _ROOTS.exists():
        return []  # no root here ever brought a network up
    from containerkit.network import foreign_firewall
    from containerkit.network.nft import list_tables

    names = sorted(os.listdir("/sys/class/net"))  # cheap: no netlink, no pyroute2 import
    live: set[str] = set()
    vanished: set[str] = set()
    for entry in _ROOTS.glob("ck*"):
        with contextlib.suppress(OSError):
            if (Path(entry.read_text().strip()) / "metadata.db").exists():
                live.add(entry.name)
            else:
                vanished.add(entry.name)
    tables = list_tables()
    names_in_rules = foreign_firewall.interfaces_in_forward(tables)
    seen = {m.group(1) for m in map(_OUR_LINK.match, [*names, *names_in_rules]) if m}
    seen |= {t for t in tables if _OUR_TABLE.match(t)}
    reaped = []
    for prefix in sorted(vanished | (seen - live)):
        from containerkit.network import bridge as bridges
        from containerkit.network import veth
        from containerkit.network.nat import NatTable

        with flock(_ROOTS / f".{prefix}.lock"):
            if (_ROOTS / prefix).exists() and prefix not in vanished:
                continue  # registered meanwhile: a root is bringing its network up
            for name in names:
                with contextlib.suppress(ContainerkitError):
                    if name.startswith(prefix + "v"):
                        veth.detach(name)
            for name in names:
                with contextlib.suppress(ContainerkitError):
                    if name.startswith(prefix + "b"):
                        bridges.remove_bridge(name)
            NatTable(prefix).remove_all()
            with contextlib.suppress(ContainerkitError):
                foreign_firewall.forget_prefix(prefix)
            (_ROOTS / prefix).unlink(missing_ok=True)
        reaped.append(prefix)
    return reaped


class NetworkService:
    """One engine root's networking: bridges up and down, a container's network from create
    to removal, connect / disconnect, recovery, and the locks that order them."""

    def __init__(
        self,
        root: Path,
        networks: NetworkStore,
        containers: ContainerStore,
        task: Callable[[str], Task],
    ) -> None:
        """``networks`` and ``containers``: the metadata database's stores; ``task``: a
        container id to its runtime Task (its lock, its run state, its hosts file)."""
        self.root = root
        self.prefix = link_prefix(root)
        self._networks = networks
        self._containers = containers
        self._task = task
        self._spare_netns = SpareNetns()
        self._setups = 0  # a process that starts one container (a CLI command) makes no spare

    def close(self) -> None:
        """Free what is held for the next container (a network namespace made ahead)."""
        self._spare_netns.close()

    @functools.cached_property
    def nat(self) -> NatTable:
        """This root's nft table (made on first use: a root without bridge networks never loads
        the NAT code)."""
        from containerkit.network.nat import NatTable

        return NatTable(self.prefix, lock_path=self.root / "nft.lock")

    # -- names ----------------------------------------------------------------------------------

    def netns_path(self, container_id: str) -> Path:
        return self.root / "netns" / container_id

    def bridge_name(self, network_id: str) -> str:
        return f"{self.prefix}b{_hash(network_id)[:7]}"

    def host_ifname(self, container_id: str, network_id: str) -> str:
        """Host end of a container's veth on a network: derived, so a crash never loses the name."""
        return f"{self.prefix}v{_hash(container_id, network_id)[:7]}"

    # -- locks ----------------------------------------------------------------------------------

    def container_lock(
        self, container_id: str, *, blocking: bool = True
    ) -> contextlib.AbstractContextManager[bool]:
        """The container's state dir, locked: taken on every start and removal, and creating a lock
        file there costs a file creation and deletion (~0.2 ms on this ext4) per container."""
        return flock(self._task(container_id).state_dir, blocking=blocking, directory=True)

    def root_lock(self) -> contextlib.AbstractContextManager[bool]:
        return flock(self.root / "network.lock")

    # -- networks: records, bridges up and down -------------------------------------------------

    def new_record(
        self,
        name: str,
        subnet: str | None,
        gateway: str | None,
        internal: bool,
        labels: Mapping[str, str] | None,
    ) -> NetworkRecord:
        """A network's record, not stored yet: ``subnet`` defaults to a free one from docker's pool."""
        from containerkit.network import bridge as bridges
        from containerkit.network.ipam import gateway_for, parse_subnet

        network_id = secrets.token_hex(32)
        if subnet is None:
            with flock(_HOST_LOCK):
                net = self._free_subnet()
        else:
            net = parse_subnet(subnet)
            for other in self._networks.all():
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
            bridge=self.bridge_name(network_id),
            subnet=str(net),
            gateway=str(gw),
            internal=bool(internal),
            labels_json=json.dumps({str(k): str(v) for k, v in (labels or {}).items()}, sort_keys=True),
            created=time.time(),
        )

    def create_network(self, record: NetworkRecord) -> NetworkRecord:
        """Store a user-defined network and bring its bridge up; all or nothing."""
        with self.root_lock():
            self._networks.add(record)
            try:
                self._bring_up(record)
            except BaseException:
                self._networks.remove(record.id)
                raise
        return record

    def remove_network(self, record: NetworkRecord) -> None:
        with self.root_lock():
            self._networks.remove(record.id)
            self._bring_down(record)

    def _free_subnet(self, exclude: str | None = None) -> IPv4Network:
        from containerkit.network import bridge as bridges
        from containerkit.network.ipam import pick_subnet

        ours = [IPv4Network(n.subnet) for n in self._networks.all() if n.id != exclude]
        return pick_subnet([*ours, _DOCKER0], bridges.host_networks())

    def default_record(self) -> NetworkRecord:
        """The default network's record, made on first use (no bridge yet)."""
        with contextlib.suppress(NotFound):
            return self._networks.find(DEFAULT_NETWORK)
        record = self.new_record(DEFAULT_NETWORK, None, None, False, None)
        try:
            return self._networks.add(record)
        except Conflict:  # another engine on this root made it first
            return self._networks.find(DEFAULT_NETWORK)

    def _ensure_up(self, record: NetworkRecord) -> NetworkRecord:
        """The network's bridge and rules exist (the caller holds the root lock); returns the
        (possibly re-addressed) record."""
        from containerkit.network import bridge as bridges
        from containerkit.network.ipam import gateway_for

        if bridges.bridge_exists(record.bridge):
            return record
        with flock(_HOST_LOCK):
            net = IPv4Network(record.subnet)
            clash = [n for n in bridges.host_networks() if n.overlaps(net)]
            if clash and record.name == DEFAULT_NETWORK:
                net = self._free_subnet(exclude=record.id)
                record = self._networks.set_subnet(record.id, str(net), str(gateway_for(net)))
            elif clash:
                raise Conflict(f"network {record.name}: subnet {net} overlaps {clash[0]}, routed by the host")
            self._bring_up(record)
        return record

    def _bring_up(self, record: NetworkRecord) -> None:
        """Bridge, our nft rules, and accept rules in a foreign iptables firewall (Docker's
        FORWARD DROP); all or nothing."""
        from containerkit.network import bridge as bridges
        from containerkit.network import foreign_firewall
        from containerkit.network.nft import NFT_MISSING, nft_available

        if not nft_available():
            raise Unavailable(f"network {record.name}: {NFT_MISSING}")
        self._claim_prefix()
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
        from containerkit.network import bridge as bridges
        from containerkit.network import foreign_firewall

        foreign_firewall.forget_bridge(record.bridge)
        self.nat.remove_network(record.bridge)
        bridges.remove_bridge(record.bridge)
        if not any(bridges.bridge_exists(n.bridge) for n in self._networks.all()):
            self.nat.remove_all()
            (_ROOTS / self.prefix).unlink(missing_ok=True)

    def _claim_prefix(self) -> None:
        _ROOTS.mkdir(parents=True, exist_ok=True)
        entry = _ROOTS / self.prefix
        if not entry.exists():
            entry.write_text(str(self.root))

    def release_idle(self) -> None:
        """Take the default network's bridge down while no container is attached to it."""
        from containerkit.network import bridge as bridges

        with contextlib.suppress(NotFound):
            record = self._networks.find(DEFAULT_NETWORK)
            if not bridges.bridge_exists(record.bridge):
                return
            with self.root_lock():
                endpoints = self._networks.endpoints(network_id=record.id)
                if not any(e.attached for e in endpoints):
                    self._bring_down(record)

    # -- a container: create --------------------------------------------------------------------

    def plan(self, spec: ContainerSpec) -> NetPlan:
        """Check the spec's network fields against its mode; Conflict/NotFound/InvalidArgument."""
        kind, arg = mode_of(spec.network)
        if spec.mac_address:
            from containerkit.network import veth

            veth.check_mac(spec.mac_address)
        for alias in spec.aliases:
            if not _ALIAS_RE.match(alias):
                raise InvalidArgument(f"aliases: invalid name {alias!r}")
        if kind != "bridge":
            if spec.ports and kind != "host":  # docker drops ports on the host network
                raise InvalidArgument(f"ports cannot be published with network {spec.network}")
            if spec.aliases:
                raise InvalidArgument(f"aliases need a user-defined network, not {spec.network}")
            if kind == "container":
                return NetPlan(kind, target_id=self._containers.find(arg).id)
            return NetPlan(kind)
        network = self.default_record() if arg == DEFAULT_NETWORK else self._networks.find(arg)
        if spec.aliases and network.name == DEFAULT_NETWORK:
            raise InvalidArgument("aliases need a user-defined network: the default bridge resolves no names")
        if spec.ports and network.internal:
            raise InvalidArgument(f"ports cannot be published from internal network {network.name}")
        return NetPlan("bridge", network=network)

    def register(self, container_id: str, net: NetPlan, spec: ContainerSpec) -> None:
        """Connect a new container to its network (the address comes at start)."""
        if net.network is not None:
            self._networks.add_endpoint(net.network.id, container_id, json.dumps(list(spec.aliases)))

    # -- a container: start ---------------------------------------------------------------------

    def setup(self, container_id: str, spec: ContainerSpec) -> str | None:
        """Make the container's network before its shim starts; all or nothing.

        Bridge mode: netns, veths, addresses, routes, published ports, hosts files. Container mode:
        returns the ``/proc/<pid>/ns/net`` of the (running) target for ``config.json``.
        """
        kind, arg = mode_of(spec.network)
        if kind == "container":
            target = self._containers.find(arg)
            state = self._task(target.id).state()
            if ContainerStatus(state.status) is not ContainerStatus.RUNNING or state.pid is None:
                raise NotRunning(f"cannot join the network of container {target.name}: it is not running")
            return f"/proc/{state.pid}/ns/net"
        if kind != "bridge":
            return None
        path = self.netns_path(container_id)
        trace.mark("net.begin")
        with self.root_lock():
            self._teardown_locked(container_id)  # what a crashed run may have left
            attached: list[tuple[NetworkRecord, EndpointRecord]] = []
            try:
                for endpoint in self._networks.endpoints(container_id=container_id):
                    network = self._ensure_up(self._networks.get(endpoint.network_id))
                    mac = spec.mac_address if endpoint.position == 0 else None
                    attached.append((network, self._allocate(network, endpoint, mac)))
                trace.mark("net.addressed")
                if spec.ports and attached:
                    self._publish(container_id, spec, attached[0][1])
                    trace.mark("net.published")
                with self._spare_netns.take(path) as inside:
                    trace.mark("net.netns")
                    for network, endpoint in attached:
                        _plug(path, network, endpoint, inside)
                    trace.mark("net.plugged")
                self.refresh_hosts({n.id for n, _ in attached}, also=container_id, spec=spec)
            except BaseException:
                self._teardown_locked(container_id)
                raise
        self._setups += 1
        trace.mark("net.ready")
        return None

    def _allocate(self, network: NetworkRecord, endpoint: EndpointRecord, mac: str | None) -> EndpointRecord:
        from containerkit.network.ipam import next_free

        def choose(
            attached: set[str], reserved: set[str], ep: EndpointRecord, net: NetworkRecord
        ) -> tuple[str, str]:
            subnet, gateway = IPv4Network(net.subnet), IPv4Address(net.gateway)
            used = {IPv4Address(a) for a in attached}
            previous = IPv4Address(ep.ip) if ep.ip else None
            if previous is not None and previous in subnet and previous not in used and previous != gateway:
                ip = previous  # a restart keeps its address while nobody else took it
            else:
                try:  # prefer addresses stopped containers do not still remember
                    ip = next_free(subnet, used | {IPv4Address(a) for a in reserved}, gateway)
                except Conflict:
                    try:
                        ip = next_free(subnet, used, gateway)
                    except Conflict:
                        raise Conflict(f"network {net.name}: no free address left in {subnet}") from None
            return str(ip), mac or _mac_for(str(ip))

        return self._networks.attach_endpoint(
            network.id, endpoint.container_id, self.host_ifname(endpoint.container_id, network.id), choose
        )

    def _publish(self, container_id: str, spec: ContainerSpec, primary: EndpointRecord) -> None:
        assert primary.ip is not None
        made = self.nat.publish_many(spec.ports, primary.ip, owner=container_id)
        self._networks.set_ports(
            container_id,
            [
                PortRecord(
                    container_id=container_id,
                    protocol=p.protocol,
                    host_ip=p.host_ip,
                    host_port=p.host_port,
                    container_port=p.container_port,
                )
                for p in made
            ],
        )

    # -- a container: teardown ------------------------------------------------------------------

    def teardown(self, container_id: str, *, settle: bool = True) -> list[str]:
        """Undo :meth:`setup` (idempotent, cheap when there is nothing to undo); the host veths the
        kernel deletes with the namespace, in its background cleanup.

        ``settle``: return only once those veths are gone (removal: docker's ``rm`` leaves no link
        behind); wait and stop leave them to the kernel. A remover that has more to do passes
        False and calls :meth:`settle` with the names at its end, so the kernel's cleanup overlaps
        its own work.
        """
        endpoints = self._networks.endpoints(container_id=container_id)
        attached = [e for e in endpoints if e.attached]
        if attached or self._networks.ports(container_id) or self.netns_path(container_id).exists():
            trace.mark("net.teardown")
            with self.root_lock():
                self._teardown_locked(container_id)
            if self._setups > 1:
                self._spare_netns.refill()  # for the next container
            trace.mark("net.torn_down")
        leaving = [self.host_ifname(container_id, e.network_id) for e in endpoints]
        if settle:
            self.settle(leaving)
        return leaving

    @staticmethod
    def settle(host_ifnames: list[str]) -> None:
        """Return once the veths :meth:`teardown` named are gone (see there)."""
        if host_ifnames:
            from containerkit.network import veth

            veth.wait_gone(host_ifnames)
            trace.mark("net.settled")

    def _teardown_locked(self, container_id: str) -> None:
        attached = [e for e in self._networks.endpoints(container_id=container_id) if e.attached]
        if attached:
            from containerkit.network import veth
        for endpoint in attached:  # gone from the host in a moment, deleted in the background
            veth.retire(endpoint.host_ifname or self.host_ifname(container_id, endpoint.network_id))
        if self._networks.ports(container_id):
            self.nat.unpublish(container_id)
            self._networks.set_ports(container_id, [])
        remove_netns(self.netns_path(container_id))
        for endpoint in attached:
            self._networks.detach_endpoint(endpoint.network_id, container_id)
        if attached:
            self.refresh_hosts({e.network_id for e in attached})

    def wait_teardown(self, container_id: str) -> None:
        """Teardown after an exit seen by wait/stop: skipped while the container runs again (or
        another process is starting it)."""
        with self.container_lock(container_id, blocking=False) as held:
            if held and ContainerStatus(self._task(container_id).state().status) in _STOPPED:
                self.teardown(container_id, settle=False)

    # -- hosts files ----------------------------------------------------------------------------

    def refresh_hosts(
        self, network_ids: Iterable[str], *, also: str | None = None, spec: ContainerSpec | None = None
    ) -> None:
        """Rewrite ``/etc/hosts`` of every container attached to ``network_ids`` (and of ``also``,
        whose ``spec`` the caller may have at hand).

        The default network resolves no names: a peer coming or going there changes no other
        container's file, so its members are not rewritten (each start would rewrite every
        running container's file otherwise)."""
        members: set[str] = {also} if also else set()
        for network_id in network_ids:
            with contextlib.suppress(NotFound):
                if self._networks.get(network_id).name == DEFAULT_NETWORK:
                    continue
            endpoints = self._networks.endpoints(network_id=network_id)
            members |= {e.container_id for e in endpoints if e.attached}
        for container_id in sorted(members):
            with contextlib.suppress(NotFound, FileNotFoundError):
                self._write_hosts(container_id, spec if container_id == also else None)

    def _write_hosts(self, container_id: str, spec: ContainerSpec | None = None) -> None:
        if spec is None:
            spec = ContainerSpec.from_json(self._containers.get(container_id).spec_json)
        if mode_of(spec.network)[0] != "bridge":
            return
        mine = [e for e in self._networks.endpoints(container_id=container_id) if e.attached]
        peers: dict[str, str] = {}
        for endpoint in mine:
            if self._networks.get(endpoint.network_id).name == DEFAULT_NETWORK:
                continue
            for other in self._networks.endpoints(network_id=endpoint.network_id):
                if not other.attached or other.ip is None:
                    continue
                names = json.loads(other.aliases_json)
                if other.container_id != container_id:
                    with contextlib.suppress(NotFound):
                        peer = self._containers.get(other.container_id)
                        # dockerd's DNSNames: name, aliases, short id, hostname
                        peer_host = ContainerSpec.from_json(peer.spec_json).hostname
                        names = [peer.name, *names, peer.id[:12], *([peer_host] if peer_host else [])]
                for name in names:
                    peers.setdefault(name, other.ip)
        hostname = spec.hostname or container_id[:12]
        own_ip = mine[0].ip if mine else None
        peers.pop(hostname, None)
        text = hosts_file(hostname, own_ip, spec.extra_hosts, peers)
        write_in_place(self._task(container_id).etc_path("hosts"), text)

    # -- connect / disconnect -------------------------------------------------------------------

    def connect(self, network: NetworkRecord, container_id: str, aliases: Iterable[str]) -> None:
        """Connect a container (plugged in now if it runs, else at its next start)."""
        from containerkit.network import veth

        record = self._containers.get(container_id)
        spec = ContainerSpec.from_json(record.spec_json)
        kind, _ = mode_of(spec.network)
        if kind != "bridge":
            raise Conflict(
                f"container {record.name} uses network {spec.network}: it cannot join {network.name}"
            )
        names = list(aliases)
        for alias in names:
            if not _ALIAS_RE.match(alias):
                raise InvalidArgument(f"aliases: invalid name {alias!r}")
        if names and network.name == DEFAULT_NETWORK:
            raise InvalidArgument("aliases need a user-defined network: the default bridge resolves no names")
        with self.container_lock(container_id):
            endpoint = self._networks.add_endpoint(network.id, container_id, json.dumps(names))
            state = self._task(container_id).state()
            if ContainerStatus(state.status) is not ContainerStatus.RUNNING:
                return
            with self.root_lock():
                try:
                    up = self._ensure_up(network)
                    endpoint = self._allocate(up, endpoint, None)
                    _plug(self.netns_path(container_id), up, endpoint)
                except BaseException:
                    veth.detach(self.host_ifname(container_id, network.id))
                    self._networks.remove_endpoint(network.id, container_id)
                    raise
                self.refresh_hosts([network.id], also=container_id)

    def disconnect(self, network: NetworkRecord, container_id: str) -> None:
        from containerkit.network import veth

        with self.container_lock(container_id), self.root_lock():
            found = [
                e for e in self._networks.endpoints(container_id=container_id) if e.network_id == network.id
            ]
            if not found:
                name = self._containers.get(container_id).name
                raise NotFound(f"container {name} is not connected to network {network.name}")
            if found[0].attached:
                leaving = found[0].host_ifname or self.host_ifname(container_id, network.id)
                if veth.retire(leaving):
                    veth.wait_gone([leaving])
            self._networks.remove_endpoint(network.id, container_id)
            self.refresh_hosts([network.id], also=container_id if found[0].attached else None)

    # -- recovery -------------------------------------------------------------------------------

    def recover(self) -> list[str]:
        """Undo the network of containers that are not running (a killed engine's leftovers), and
        of netns files and port rules whose container is gone. The container ids cleaned."""
        reap_vanished_roots()
        known = {r.id for r in self._containers.all()}
        suspects = {e.container_id for e in self._networks.endpoints() if e.attached}
        suspects |= {p.name for p in list_netns(self.root / "netns")}
        cleaned = []
        networks = self._networks.all()
        for container_id in sorted(suspects):
            if container_id not in known:
                from containerkit.network import veth

                with self.root_lock():
                    for network in networks:
                        veth.detach(self.host_ifname(container_id, network.id))
                    remove_netns(self.netns_path(container_id))
                cleaned.append(container_id)
                continue
            with self.container_lock(container_id, blocking=False) as held:
                if not held:
                    continue  # another process is starting it right now
                if ContainerStatus(self._task(container_id).state().status) is ContainerStatus.RUNNING:
                    continue
                self.teardown(container_id, settle=False)
                cleaned.append(container_id)
        if networks:
            self._recover_ports(known)
            self._recover_links()
        return cleaned

    def _recover_links(self) -> None:
        """Delete this root's veths no attached endpoint accounts for (a crash between creating a
        pair and recording it)."""
        from containerkit.network import veth

        wanted = {e.host_ifname for e in self._networks.endpoints() if e.attached}
        prefix = self.prefix + "v"
        # the names from sysfs, as reap_vanished_roots lists them: asking netlink through
        # pyroute2 cost every open of a root whose bridge is up ~150-250 ms (its import, an
        # event loop), a command line's ``run --network none`` included
        for name in sorted(os.listdir("/sys/class/net")):
            if name.startswith(prefix) and name not in wanted:
                veth.detach(name)

    def _recover_ports(self, known: set[str]) -> None:
        try:
            owners = {p.owner for p in self.nat.published()}
        except ContainerkitError:
            return
        for owner in owners:
            if owner in known and ContainerStatus(self._task(owner).state().status) in (
                ContainerStatus.RUNNING,
                ContainerStatus.CREATED,
            ):
                continue
            self.nat.unpublish(owner)


def _plug(path: Path, network: NetworkRecord, endpoint: EndpointRecord, inside: Rtnl | None = None) -> None:
    from containerkit.network import veth

    assert endpoint.ip is not None and endpoint.host_ifname is not None
    subnet = IPv4Network(network.subnet)
    routed = endpoint.position == 0 and not network.internal
    # a leftover (a killed engine's, or a previous run's still being deleted) would make the add fail
    if veth.retire(endpoint.host_ifname):
        veth.wait_gone([endpoint.host_ifname])
    veth.attach(
        path,
        network.bridge,
        address_cidr=f"{endpoint.ip}/{subnet.prefixlen}",
        gateway=network.gateway if routed else None,
        ifname=f"eth{endpoint.position}",
        mac=endpoint.mac,
        host_ifname=endpoint.host_ifname,
        netns_rtnl=inside,
    )

"""Plugging one container into its networks, and unplugging it.

A container in bridge mode (the default network or a user-defined one) gets a persistent netns
file ``<root>/netns/<id>`` that ``config.json`` names at create; the namespace itself, its veths,
addresses, published ports and ``/etc/hosts`` are made at start, before the shim runs, and
undone when the container is seen exited (wait, stop, remove, or a later Engine's recover).

Two locks, always taken in this order: a per-container ``flock`` on its state dir (start and teardown of one
container never interleave, and recovery skips a container another process is starting) and a
per-root ``flock`` around anything several containers share (bridges coming up or going away,
addresses, peers' hosts files). Addresses are handed out inside one ``BEGIN IMMEDIATE``
transaction of the metadata store as well.

``/etc/hosts`` files are bind-mounted into running containers, so they are rewritten in place
(same inode): a peer that joins later becomes resolvable by name in containers already running.
The default ``bridge`` network resolves no names, as in docker.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import attrs

from containerkit.errors import Conflict, ContainerkitError, InvalidArgument, NotFound, NotRunning
from containerkit.network import bridge as bridges
from containerkit.network import foreign_firewall, veth
from containerkit.network.dns_files import hosts_file
from containerkit.network.ipam import next_free
from containerkit.network.nat import NatTable, list_tables
from containerkit.network.netns import create_netns_rtnl, iproute, list_netns, remove_netns
from containerkit.network.rtnl import Rtnl
from containerkit.runtime.state import read_state
from containerkit.spec import ContainerSpec, ContainerStatus
from containerkit.storage.metadata import EndpointRecord, NetworkRecord, PortRecord

if TYPE_CHECKING:
    from containerkit.engine.engine import Engine

__all__ = [
    "DEFAULT_NETWORK",
    "NetPlan",
    "bridge_name",
    "connect",
    "container_lock",
    "disconnect",
    "host_ifname",
    "link_prefix",
    "mode_of",
    "netns_path",
    "plan",
    "recover",
    "refresh_hosts",
    "setup",
    "teardown",
    "write_in_place",
]

DEFAULT_NETWORK = "bridge"
NetKind = Literal["none", "host", "container", "bridge"]
_ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_STOPPED = (ContainerStatus.EXITED, ContainerStatus.DEAD)


@attrs.frozen
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


def netns_path(engine: Engine, container_id: str) -> Path:
    return engine.root / "netns" / container_id


def _hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


_ROOTS = Path("/run/containerkit/roots")
"""One file per root with links up, named by its prefix and holding the root's path: a later
engine (on any root) deletes the links and table of a root whose directory is gone."""


def claim_prefix(engine: Engine) -> None:
    _ROOTS.mkdir(parents=True, exist_ok=True)
    entry = _ROOTS / link_prefix(engine)
    if not entry.exists():
        entry.write_text(str(engine.root))


def release_prefix(engine: Engine) -> None:
    (_ROOTS / link_prefix(engine)).unlink(missing_ok=True)


_OUR_LINK = re.compile(r"^(ck[0-9a-f]{5})[bv][0-9a-f]{7}$")
_OUR_TABLE = re.compile(r"^ck[0-9a-f]{5}$")


def reap_vanished_roots() -> list[str]:
    """Links, nft tables and iptables accept rules of roots that are gone: a root deleted
    while its networks were up (a test's temp root removed after its engine was killed), or
    links and tables with our naming whose root never registered or no longer does (a root
    registers before its first link and releases after its last). The prefixes reaped."""
    if not _ROOTS.exists():
        return []  # no root here ever brought a network up
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
        with _flock(_ROOTS / f".{prefix}.lock"):
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


def link_prefix(engine: Engine) -> str:
    """``ck`` + 5 hex of the root: every host link of this root starts with it (and a ``b`` for
    bridges, a ``v`` for veths), so engines on different roots never clash or touch each other's."""
    return "ck" + _hash(str(engine.root))[:5]


def bridge_name(engine: Engine, network_id: str) -> str:
    return f"{link_prefix(engine)}b{_hash(network_id)[:7]}"


def host_ifname(engine: Engine, container_id: str, network_id: str) -> str:
    """Host end of a container's veth on a network: derived, so a crash never loses the name."""
    return f"{link_prefix(engine)}v{_hash(container_id, network_id)[:7]}"


def _mac_for(ip: str) -> str:
    """docker's scheme: 02:42 then the four address bytes (locally administered, unicast)."""
    return "02:42:" + ":".join(f"{b:02x}" for b in IPv4Address(ip).packed)


# -- locks ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _flock(path: Path, *, blocking: bool = True, directory: bool = False) -> Iterator[bool]:
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


def container_lock(
    engine: Engine, container_id: str, *, blocking: bool = True
) -> contextlib.AbstractContextManager[bool]:
    """The container's state dir, locked: taken on every start and removal, and creating a lock
    file there costs a file creation and deletion (~0.2 ms on this ext4) per container."""
    return _flock(engine.containers.state_dir(container_id), blocking=blocking, directory=True)


def root_lock(engine: Engine) -> contextlib.AbstractContextManager[bool]:
    return _flock(engine.root / "network.lock")


# -- create -----------------------------------------------------------------------------------------


def plan(engine: Engine, spec: ContainerSpec) -> NetPlan:
    """Check the spec's network fields against its mode; Conflict/NotFound/InvalidArgument."""
    kind, arg = mode_of(spec.network)
    if spec.mac_address:
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
            return NetPlan(kind, target_id=engine.metadata.containers.find(arg).id)
        return NetPlan(kind)
    network = (
        engine.networks._default_record() if arg == DEFAULT_NETWORK else engine.metadata.networks.find(arg)
    )
    if spec.aliases and network.name == DEFAULT_NETWORK:
        raise InvalidArgument("aliases need a user-defined network: the default bridge resolves no names")
    if spec.ports and network.internal:
        raise InvalidArgument(f"ports cannot be published from internal network {network.name}")
    return NetPlan("bridge", network=network)


def register(engine: Engine, container_id: str, net: NetPlan, spec: ContainerSpec) -> None:
    """Connect a new container to its network (the address comes at start)."""
    if net.network is not None:
        engine.metadata.networks.add_endpoint(net.network.id, container_id, json.dumps(list(spec.aliases)))


# -- start ------------------------------------------------------------------------------------------


def setup(engine: Engine, container_id: str, spec: ContainerSpec) -> str | None:
    """Make the container's network before its shim starts; all or nothing.

    Bridge mode: netns, veths, addresses, routes, published ports, hosts files. Container mode:
    returns the ``/proc/<pid>/ns/net`` of the (running) target for ``config.json``.
    """
    kind, arg = mode_of(spec.network)
    if kind == "container":
        target = engine.containers.get(arg)
        state = target.runtime_state()
        if ContainerStatus(state.status) is not ContainerStatus.RUNNING or state.pid is None:
            raise NotRunning(f"cannot join the network of container {target.name}: it is not running")
        return f"/proc/{state.pid}/ns/net"
    if kind != "bridge":
        return None
    path = netns_path(engine, container_id)
    with root_lock(engine):
        _teardown_locked(engine, container_id)  # what a crashed run may have left
        attached: list[tuple[NetworkRecord, EndpointRecord]] = []
        try:
            for endpoint in engine.metadata.networks.endpoints(container_id=container_id):
                network = engine.networks._ensure_up(engine.metadata.networks.get(endpoint.network_id))
                mac = spec.mac_address if endpoint.position == 0 else None
                attached.append((network, _allocate(engine, network, endpoint, mac)))
            if spec.ports and attached:
                _publish(engine, container_id, spec, attached[0][1])
            with create_netns_rtnl(path) as inside:
                for network, endpoint in attached:
                    _plug(path, network, endpoint, inside)
            refresh_hosts(engine, {n.id for n, _ in attached}, also=container_id)
        except BaseException:
            _teardown_locked(engine, container_id)
            raise
    return None


def _allocate(
    engine: Engine, network: NetworkRecord, endpoint: EndpointRecord, mac: str | None
) -> EndpointRecord:
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

    return engine.metadata.networks.attach_endpoint(
        network.id, endpoint.container_id, host_ifname(engine, endpoint.container_id, network.id), choose
    )


def _publish(engine: Engine, container_id: str, spec: ContainerSpec, primary: EndpointRecord) -> None:
    assert primary.ip is not None
    made = engine.networks.nat.publish_many(spec.ports, primary.ip, owner=container_id)
    engine.metadata.networks.set_ports(
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


def _plug(path: Path, network: NetworkRecord, endpoint: EndpointRecord, inside: Rtnl | None = None) -> None:
    assert endpoint.ip is not None and endpoint.host_ifname is not None
    subnet = IPv4Network(network.subnet)
    routed = endpoint.position == 0 and not network.internal
    veth.detach(endpoint.host_ifname)  # a leftover of a killed engine would make the add fail
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


# -- teardown ---------------------------------------------------------------------------------------


def teardown(engine: Engine, container_id: str, *, settle: bool = True) -> list[str]:
    """Undo :func:`setup` (idempotent, cheap when there is nothing to undo); the host veths the
    kernel deletes with the namespace, in its background cleanup.

    ``settle``: return only once those veths are gone (removal: docker's ``rm`` leaves no link
    behind); wait and stop leave them to the kernel. A remover that has more to do passes
    False and calls :func:`settle` with the names at its end, so the kernel's cleanup overlaps
    its own work.
    """
    endpoints = engine.metadata.networks.endpoints(container_id=container_id)
    attached = [e for e in endpoints if e.attached]
    if attached or engine.metadata.networks.ports(container_id) or netns_path(engine, container_id).exists():
        with root_lock(engine):
            _teardown_locked(engine, container_id)
    leaving = [host_ifname(engine, container_id, e.network_id) for e in endpoints]
    if settle:
        veth.wait_gone(leaving)
    return leaving


def settle(host_ifnames: list[str]) -> None:
    """Return once the veths :func:`teardown` named are gone (see there)."""
    veth.wait_gone(host_ifnames)


def _teardown_locked(engine: Engine, container_id: str) -> None:
    attached = [e for e in engine.metadata.networks.endpoints(container_id=container_id) if e.attached]
    for endpoint in attached:  # down now; the kernel deletes the pairs with the netns, later
        veth.retire(endpoint.host_ifname or host_ifname(engine, container_id, endpoint.network_id))
    if engine.metadata.networks.ports(container_id):
        engine.networks.nat.unpublish(container_id)
        engine.metadata.networks.set_ports(container_id, [])
    remove_netns(netns_path(engine, container_id))
    for endpoint in attached:
        engine.metadata.networks.detach_endpoint(endpoint.network_id, container_id)
    if attached:
        refresh_hosts(engine, {e.network_id for e in attached})


def wait_teardown(engine: Engine, container_id: str) -> None:
    """Teardown after an exit seen by wait/stop: skipped while the container runs again (or
    another process is starting it)."""
    with container_lock(engine, container_id, blocking=False) as held:
        if held and ContainerStatus(read_state(engine.containers.state_dir(container_id)).status) in _STOPPED:
            teardown(engine, container_id, settle=False)


# -- hosts files ------------------------------------------------------------------------------------


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


def refresh_hosts(engine: Engine, network_ids: Iterable[str], *, also: str | None = None) -> None:
    """Rewrite ``/etc/hosts`` of every container attached to ``network_ids`` (and of ``also``)."""
    members: set[str] = {also} if also else set()
    for network_id in network_ids:
        endpoints = engine.metadata.networks.endpoints(network_id=network_id)
        members |= {e.container_id for e in endpoints if e.attached}
    for container_id in sorted(members):
        with contextlib.suppress(NotFound, FileNotFoundError):
            _write_hosts(engine, container_id)


def _write_hosts(engine: Engine, container_id: str) -> None:
    record = engine.metadata.containers.get(container_id)
    spec = ContainerSpec.from_json(record.spec_json)
    if mode_of(spec.network)[0] != "bridge":
        return
    mine = [e for e in engine.metadata.networks.endpoints(container_id=container_id) if e.attached]
    peers: dict[str, str] = {}
    for endpoint in mine:
        if engine.metadata.networks.get(endpoint.network_id).name == DEFAULT_NETWORK:
            continue
        for other in engine.metadata.networks.endpoints(network_id=endpoint.network_id):
            if not other.attached or other.ip is None:
                continue
            names = json.loads(other.aliases_json)
            if other.container_id != container_id:
                with contextlib.suppress(NotFound):
                    names.append(engine.metadata.containers.get(other.container_id).name)
            for name in names:
                peers.setdefault(name, other.ip)
    hostname = spec.hostname or container_id[:12]
    own_ip = mine[0].ip if mine else None
    peers.pop(hostname, None)
    text = hosts_file(hostname, own_ip, spec.extra_hosts, peers)
    write_in_place(engine.containers.state_dir(container_id) / "hosts", text)


# -- connect / disconnect ---------------------------------------------------------------------------


def connect(engine: Engine, network: NetworkRecord, container_id: str, aliases: Iterable[str]) -> None:
    """Connect a container (plugged in now if it runs, else at its next start)."""
    record = engine.metadata.containers.get(container_id)
    spec = ContainerSpec.from_json(record.spec_json)
    kind, _ = mode_of(spec.network)
    if kind != "bridge":
        raise Conflict(f"container {record.name} uses network {spec.network}: it cannot join {network.name}")
    names = list(aliases)
    for alias in names:
        if not _ALIAS_RE.match(alias):
            raise InvalidArgument(f"aliases: invalid name {alias!r}")
    if names and network.name == DEFAULT_NETWORK:
        raise InvalidArgument("aliases need a user-defined network: the default bridge resolves no names")
    with container_lock(engine, container_id):
        endpoint = engine.metadata.networks.add_endpoint(network.id, container_id, json.dumps(names))
        state = read_state(engine.containers.state_dir(container_id))
        if ContainerStatus(state.status) is not ContainerStatus.RUNNING:
            return
        with root_lock(engine):
            try:
                up = engine.networks._ensure_up(network)
                endpoint = _allocate(engine, up, endpoint, None)
                _plug(netns_path(engine, container_id), up, endpoint)
            except BaseException:
                veth.detach(host_ifname(engine, container_id, network.id))
                engine.metadata.networks.remove_endpoint(network.id, container_id)
                raise
            refresh_hosts(engine, [network.id])


def disconnect(engine: Engine, network: NetworkRecord, container_id: str) -> None:
    with container_lock(engine, container_id), root_lock(engine):
        found = [
            e
            for e in engine.metadata.networks.endpoints(container_id=container_id)
            if e.network_id == network.id
        ]
        if not found:
            name = engine.metadata.containers.get(container_id).name
            raise NotFound(f"container {name} is not connected to network {network.name}")
        if found[0].attached:
            veth.detach(found[0].host_ifname or host_ifname(engine, container_id, network.id))
        engine.metadata.networks.remove_endpoint(network.id, container_id)
        refresh_hosts(engine, [network.id], also=container_id if found[0].attached else None)


# -- recovery ---------------------------------------------------------------------------------------


def recover(engine: Engine) -> list[str]:
    """Undo the network of containers that are not running (a killed engine's leftovers), and
    of netns files and port rules whose container is gone. The container ids cleaned."""
    reap_vanished_roots()
    known = {r.id for r in engine.metadata.containers.all()}
    suspects = {e.container_id for e in engine.metadata.networks.endpoints() if e.attached}
    suspects |= {p.name for p in list_netns(engine.root / "netns")}
    cleaned = []
    networks = engine.metadata.networks.all()
    for container_id in sorted(suspects):
        if container_id not in known:
            with root_lock(engine):
                for network in networks:
                    veth.detach(host_ifname(engine, container_id, network.id))
                remove_netns(netns_path(engine, container_id))
            cleaned.append(container_id)
            continue
        with container_lock(engine, container_id, blocking=False) as held:
            if not held:
                continue  # another process is starting it right now
            if (
                ContainerStatus(read_state(engine.containers.state_dir(container_id)).status)
                is ContainerStatus.RUNNING
            ):
                continue
            teardown(engine, container_id, settle=False)
            cleaned.append(container_id)
    if networks:
        _recover_ports(engine, known)
        _recover_links(engine)
    return cleaned


def _recover_links(engine: Engine) -> None:
    """Delete this root's veths no attached endpoint accounts for (a crash between creating a
    pair and recording it)."""
    wanted = {e.host_ifname for e in engine.metadata.networks.endpoints() if e.attached}
    prefix = link_prefix(engine) + "v"
    with iproute() as ipr:
        names = [str(link.get("ifname")) for link in ipr.get_links()]
    for name in names:
        if name.startswith(prefix) and name not in wanted:
            veth.detach(name)


def _recover_ports(engine: Engine, known: set[str]) -> None:
    nat = engine.networks.nat
    try:
        owners = {p.owner for p in nat.published()}
    except ContainerkitError:
        return
    for owner in owners:
        state_dir = engine.containers.state_dir(owner)
        if owner in known and ContainerStatus(read_state(state_dir).status) in (
            ContainerStatus.RUNNING,
            ContainerStatus.CREATED,
        ):
            continue
        nat.unpublish(owner)

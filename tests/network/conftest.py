"""Fixtures for the network tests: namespaces, bridges, an "outside" netns and echo servers.

Everything is named with a per-test random suffix and removed at teardown, so parallel runs
never clash and nothing outlives a test. No traffic ever leaves the host.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from ipaddress import IPv4Network
from pathlib import Path

import attrs
import pytest

from containerkit.network import bridge as bridge_mod
from containerkit.network import veth
from containerkit.network.nat import NatTable
from containerkit.network.netns import create_netns, iproute, list_netns, netns_socket, remove_netns

TIMEOUT = 3.0


@pytest.fixture(autouse=True)
def _root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces, bridges and nftables")


@pytest.fixture
def uid() -> str:
    return secrets.token_hex(3)


def free_subnet(prefixlen: int = 24) -> IPv4Network:
    """A random 10.x.y.0/prefix the host does not route (parallel runs pick different ones)."""
    busy = bridge_mod.host_networks()
    for _ in range(100):
        net = IPv4Network(
            f"10.{random.randint(100, 250)}.{random.randint(0, 255)}.0/{prefixlen}", strict=False
        )
        if not any(net.overlaps(b) for b in busy):
            return net
    raise RuntimeError("no free test subnet")


@pytest.fixture
def netns_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "netns"
    yield directory
    for path in list_netns(directory):
        remove_netns(path)


@pytest.fixture
def make_netns(netns_dir: Path, uid: str) -> Callable[[str], Path]:
    def make(name: str) -> Path:
        path = netns_dir / f"{name}-{uid}"
        create_netns(path)
        return path

    return make


@attrs.define
class Net:
    bridge: str
    subnet: IPv4Network
    gateway: str
    _next: int = 2
    veths: list[str] = attrs.Factory(list)

    def attach(self, netns: Path, *, gateway: bool = True, mac: str | None = None) -> str:
        ip = str(self.subnet.network_address + self._next)
        self._next += 1
        host = veth.attach(
            netns,
            self.bridge,
            address_cidr=f"{ip}/{self.subnet.prefixlen}",
            gateway=self.gateway if gateway else None,
            mac=mac,
        )
        self.veths.append(host)
        return ip


@pytest.fixture
def make_net(uid: str) -> Iterator[Callable[[str], Net]]:
    made: list[Net] = []

    def make(tag: str) -> Net:
        subnet = free_subnet()
        gateway = str(subnet.network_address + 1)
        name = f"ckb{uid}{tag}"
        bridge_mod.ensure_bridge(name, f"{gateway}/{subnet.prefixlen}")
        made.append(Net(name, subnet, gateway))
        return made[-1]

    yield make
    # veths go explicitly: a removed netns takes its pairs away only later, asynchronously
    for net in made:
        for host in net.veths:
            veth.detach(host)
        bridge_mod.remove_bridge(net.bridge)


@pytest.fixture
def nat(uid: str, tmp_path: Path) -> Iterator[NatTable]:
    table = NatTable(f"ckt{uid}", lock_path=tmp_path / "nat.lock")
    yield table
    table.remove_all()


@attrs.define
class Outside:
    """A netns standing for "the world": reached from the host over a /30 veth, no route back."""

    netns: Path
    host_ip: str
    ip: str
    host_ifname: str


@pytest.fixture
def outside(make_netns: Callable[[str], Path], uid: str) -> Iterator[Outside]:
    netns = make_netns("outside")
    net = free_subnet(30)
    host_ip, ip = str(net.network_address + 1), str(net.network_address + 2)
    host_ifname = f"cko{uid}"
    fd = os.open(netns, os.O_RDONLY)
    try:
        with iproute() as ipr:
            ipr.link("add", ifname=host_ifname, kind="veth", peer={"ifname": "eth0", "net_ns_fd": fd})
            (index,) = ipr.link_lookup(ifname=host_ifname)
            ipr.addr("add", index=index, address=host_ip, prefixlen=30)
            ipr.link("set", index=index, state="up")
    finally:
        os.close(fd)
    with iproute(netns) as ipr:
        (index,) = ipr.link_lookup(ifname="eth0")
        ipr.addr("add", index=index, address=ip, prefixlen=30)
        ipr.link("set", index=index, state="up")
    yield Outside(netns, host_ip, ip, host_ifname)
    veth.detach(host_ifname)


class Echo:
    """TCP or UDP echo server on ``ip:port`` in a netns (or the host); remembers client addresses."""

    def __init__(self, netns: Path | None, ip: str, port: int = 0, proto: str = "tcp") -> None:
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        self.sock = (
            netns_socket(netns, socket.AF_INET, kind) if netns else socket.socket(socket.AF_INET, kind)
        )
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.port: int = self.sock.getsockname()[1]
        self.peers: list[str] = []
        self.proto = proto
        if proto == "tcp":
            self.sock.listen(16)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            while True:
                if self.proto == "udp":
                    data, addr = self.sock.recvfrom(65536)
                    if addr is None:  # shut down
                        return
                    self.peers.append(addr[0])
                    self.sock.sendto(data, addr)
                    continue
                conn, addr = self.sock.accept()
                self.peers.append(addr[0])
                with conn:
                    while data := conn.recv(65536):
                        conn.sendall(data)
        except OSError:
            return

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(TIMEOUT)


@pytest.fixture
def echo() -> Iterator[Callable[..., Echo]]:
    servers: list[Echo] = []

    def make(netns: Path | None, ip: str, port: int = 0, proto: str = "tcp") -> Echo:
        server = Echo(netns, ip, port, proto)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def _roundtrip(netns: Path | None, ip: str, port: int, proto: str = "tcp", payload: bytes = b"ping") -> bytes:
    """Send ``payload`` from ``netns`` (or the host) to ``ip:port`` and return the echo."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = netns_socket(netns, socket.AF_INET, kind) if netns else socket.socket(socket.AF_INET, kind)
    with sock:
        sock.settimeout(TIMEOUT)
        sock.connect((ip, port))
        sock.sendall(payload)
        return sock.recv(65536)


def _link_names() -> set[str]:
    with iproute() as ipr:
        return {link.get("ifname") for link in ipr.get_links()}


@pytest.fixture
def roundtrip() -> Callable[..., bytes]:
    return _roundtrip


@pytest.fixture
def link_names() -> Callable[[], set[str]]:
    return _link_names


_ENGINE_LINK = re.compile(r"^ck[0-9a-f]{5}[bv][0-9a-f]{7}$")


def links_back(before: set[str], ours: set[str]) -> bool:
    """The host link list is as ``before``; under xdist other workers add links meanwhile, so
    then only ``ours`` (the links this test made) must be gone. Links of engine roots (other
    test runs on this host; these tests make none) are left out of the comparison."""
    now = _link_names()
    if "PYTEST_XDIST_WORKER" in os.environ:
        return not (now & ours)
    return {n for n in now if not _ENGINE_LINK.match(n)} == {n for n in before if not _ENGINE_LINK.match(n)}


@pytest.fixture
def assert_links_back() -> Callable[[set[str], set[str]], None]:
    def check(before: set[str], ours: set[str]) -> None:
        assert links_back(before, ours), sorted(_link_names() ^ before)

    return check


def _ports_of(bridge: str) -> set[str]:
    with iproute() as ipr:
        (index,) = ipr.link_lookup(ifname=bridge)
        return {link.get("ifname") for link in ipr.get_links() if link.get("IFLA_MASTER") == index}


@pytest.fixture
def ports_of() -> Callable[[str], set[str]]:
    return _ports_of

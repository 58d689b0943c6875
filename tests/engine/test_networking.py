"""Container networking through Engine: bridge and user-defined networks, names, isolation,
outbound NAT, published ports, host/none/container modes, and that nothing is left behind.

The engine here has its own root, so its bridges and nft table (named from a hash of the root)
are its own; "the outside" is a network namespace this module creates. No traffic leaves the host.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

import containerkit as ck
from containerkit.engine.networks import Network
from containerkit.network import veth
from containerkit.network.netns import create_netns, iproute, netns_socket, remove_netns
from containerkit.runtime.state import wait_for_exit
from tests.network.conftest import free_subnet

from .conftest import IMAGE


def _links() -> set[str]:
    with iproute() as ipr:
        return {link.get("ifname") for link in ipr.get_links()}


def _eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    """A container's veth pair goes with its network namespace, which the kernel deletes in
    the background shortly after teardown: link checks poll for it."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _table(engine: ck.Engine) -> str:
    done = subprocess.run(
        ["nft", "list", "table", "ip", engine.networks.nat.name], capture_output=True, text=True
    )
    return done.stdout if done.returncode == 0 else ""


@attrs.frozen
class HostState:
    """What an engine root owns on the host: its links (all named ``ck<root hash>...``) and its
    nft table. Other engines (other tests, colleagues' runs) may change the rest meanwhile."""

    links: frozenset[str]
    table: str

    @classmethod
    def of(cls, engine: ck.Engine) -> HostState:
        prefix = engine.network_service.prefix
        return cls(frozenset(n for n in _links() if n.startswith(prefix)), _table(engine))


@pytest.fixture(scope="module")
def net_engine(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path) -> Iterator[ck.Engine]:
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces, bridges and nftables")
    root = tmp_path_factory.mktemp("net-engine")
    engine = ck.Engine(root=root)
    assert _eventually(lambda: HostState.of(engine) == HostState(frozenset(), ""))
    engine.images.import_rootfs(busybox_rootfs_tar, IMAGE, config={"Cmd": ["sh"]})
    try:
        yield engine
    finally:
        for container in engine.containers.list(all=True):
            container.remove(force=True)
        engine.networks.prune()
        engine.close()
    # the default bridge went with close(): nothing of this root is left on the host
    assert _eventually(lambda: HostState.of(engine) == HostState(frozenset(), ""))
    assert not list((root / "netns").glob("*"))


def run(engine: ck.Engine, command: list[str] | str, **fields: object) -> ck.Container:
    return engine.containers.run(IMAGE, command, **fields)


def output(engine: ck.Engine, command: str, **fields: object) -> tuple[int, str]:
    c = run(engine, command, **fields)
    code = c.wait(timeout=30)
    text = c.logs().decode()
    c.remove()
    return code, text


def sh(c: ck.Container, command: str) -> ck.ExecResult:
    result: ck.ExecResult = c.exec(["sh", "-c", command])
    return result


@pytest.fixture
def network(net_engine: ck.Engine) -> Iterator[Callable[..., Network]]:
    made: list[Network] = []

    def make(name: str, **kwargs: object) -> Network:
        made.append(net_engine.networks.create(name, subnet=str(free_subnet()), **kwargs))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for net in made:
        for container in net.containers:
            container.remove(force=True)
        net.remove()


@attrs.frozen
class Outside:
    netns: Path
    host_ip: str
    ip: str
    host_ifname: str


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Outside]:
    """A netns standing for the world: a /30 to the host and no route back to our bridges."""
    netns = tmp_path / "outside"
    create_netns(netns)
    subnet = free_subnet(30)
    host_ip, ip = str(subnet.network_address + 1), str(subnet.network_address + 2)
    host_ifname = f"cko{os.getpid() % 100000}"
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
    remove_netns(netns)


class Greeter:
    """TCP server that sends a greeting and closes; remembers who connected."""

    def __init__(self, sock: socket.socket, ip: str) -> None:
        self.sock = sock
        sock.bind((ip, 0))
        sock.listen(8)
        self.port: int = sock.getsockname()[1]
        self.peers: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, addr = self.sock.accept()
                self.peers.append(addr[0])
                with conn:
                    conn.sendall(b"hello-from-outside\n")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def _http_get(ip: str, port: int, netns: Path | None = None, timeout: float = 5.0) -> bytes:
    """GET / through a raw socket (from ``netns`` if given), retried until the server is up."""
    deadline = time.monotonic() + timeout
    while True:
        sock = netns_socket(netns) if netns else socket.socket()
        try:
            with sock:
                sock.settimeout(2)
                sock.connect((ip, port))
                sock.sendall(f"GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n".encode())
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
                return data.split(b"\r\n\r\n", 1)[-1]
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _host_address() -> str:
    """A host address that is neither loopback nor one of ours (eth0's here)."""
    with iproute() as ipr:
        for link in ipr.get_links():
            name = link.get("ifname")
            if name == "lo" or name.startswith(("ck", "veth")):
                continue
            for addr in ipr.get_addr(index=link["index"], family=socket.AF_INET):
                return str(addr.get("IFA_ADDRESS"))
    pytest.skip("no host address besides loopback")


HTTPD = "mkdir -p /www && echo served > /www/index.html && exec httpd -f -p 80 -h /www"


# -- tests ------------------------------------------------------------------------------------------


def test_default_bridge_address_route_and_files(net_engine: ck.Engine) -> None:
    c = run(net_engine, "ip -4 -o addr show eth0; ip route; cat /etc/hosts; cat /etc/resolv.conf")
    endpoint = c.networks["bridge"]  # read before wait(), which unplugs the exited container
    assert c.wait(timeout=30) == 0
    logs = c.logs().decode()
    bridge = net_engine.networks.get("bridge")
    assert endpoint.ip and endpoint.gateway == bridge.gateway
    assert f"inet {endpoint.ip}/{endpoint.prefixlen}" in logs
    assert f"default via {bridge.gateway} dev eth0" in logs
    assert f"{endpoint.ip}\t{c.id[:12]}" in logs
    assert "nameserver 127." not in logs
    assert not bridge.subnet.startswith("172.17.")
    # it exited: wait() already took its veth and netns away, and forgot its address
    assert c.ip_address == "" and not net_engine.network_service.netns_path(c.id).exists()
    assert _eventually(lambda: net_engine.network_service.host_ifname(c.id, bridge.id) not in _links())
    c.remove()


def test_names_aliases_late_joiner_and_connect(net_engine: ck.Engine, network: Callable[..., object]) -> None:
    net = network("backend")
    db = run(net_engine, ["sleep", "60"], name="db-box", network="backend", aliases=["db"])
    web = run(net_engine, ["sleep", "60"], name="web-box", network="backend")
    assert sh(web, "ping -c1 -W2 db && ping -c1 -W2 db-box").exit_code == 0
    # docker's default bridge resolves no names
    plain = run(net_engine, ["sleep", "60"], name="plain-box")
    assert sh(plain, "ping -c1 -W1 db-box").exit_code != 0
    # joins later: resolvable from one already running, by name and alias
    late = run(net_engine, ["sleep", "60"], name="late-box", network="backend", aliases=["cache"])
    assert sh(db, "ping -c1 -W2 late-box && ping -c1 -W2 cache").exit_code == 0
    # connect a running container: a second interface, and a name for the others
    net.connect(plain, aliases=["extra"])  # type: ignore[attr-defined]
    assert plain.networks["backend"].ip in sh(plain, "ip -4 -o addr show eth1").stdout.decode()
    assert sh(db, "ping -c1 -W2 extra && ping -c1 -W2 plain-box").exit_code == 0
    net.disconnect(plain)  # type: ignore[attr-defined]
    assert sh(db, "grep -c extra /etc/hosts").stdout.strip() == b"0"
    assert sh(plain, "test -e /sys/class/net/eth1").exit_code != 0
    for c in (db, web, plain, late):
        c.remove(force=True)


def test_a_container_answers_to_its_short_id_and_hostname(
    net_engine: ck.Engine, network: Callable[..., object]
) -> None:
    """dockerd's DNSNames on a user network: name, aliases, short id and hostname."""
    network("shortids")
    named = run(net_engine, ["sleep", "60"], name="sid-box", network="shortids", hostname="sid-host")
    other = run(net_engine, ["sleep", "60"], name="sid-other", network="shortids", aliases=["sid-alias"])
    try:
        ip = named.networks["shortids"].ip
        for name in (named.short_id, "sid-host", "sid-box"):
            resolved = sh(other, f"ping -c1 -W2 {name} | head -1").stdout.decode()
            assert f"({ip})" in resolved, (name, resolved)
        assert sh(named, f"ping -c1 -W2 {other.short_id} && ping -c1 -W2 sid-alias").exit_code == 0
    finally:
        for c in (named, other):
            c.remove(force=True)


def test_networks_are_isolated_and_internal_has_no_route(
    net_engine: ck.Engine, network: Callable[..., object]
) -> None:
    network("red")
    network("blue", internal=True)
    red = run(net_engine, ["sleep", "60"], name="red-box", network="red")
    blue = run(net_engine, ["sleep", "60"], name="blue-box", network="blue")
    blue2 = run(net_engine, ["sleep", "60"], name="blue2-box", network="blue")
    assert sh(blue, "ip route | grep -c default").stdout.strip() == b"0"
    assert sh(blue, "ping -c1 -W2 blue2-box").exit_code == 0  # inside an internal network: fine
    assert sh(red, f"ping -c1 -W1 {blue.ip_address}").exit_code != 0
    assert sh(blue, f"ping -c1 -W1 {red.ip_address}").exit_code != 0
    assert sh(red, "ping -c1 -W1 blue-box").exit_code != 0  # no name either
    for c in (red, blue, blue2):
        c.remove(force=True)


def test_outbound_through_masquerade(net_engine: ck.Engine, outside: Outside) -> None:
    server = Greeter(netns_socket(outside.netns), outside.ip)
    try:
        code, text = output(net_engine, f"nc {outside.ip} {server.port}")
        assert (code, text) == (0, "hello-from-outside\n")
        assert server.peers == [outside.host_ip]  # the host's address: masqueraded
    finally:
        server.close()


def test_published_ports_tcp_and_udp(net_engine: ck.Engine, outside: Outside) -> None:
    net_engine.networks.release_idle()
    before = HostState.of(net_engine)
    c = run(net_engine, HTTPD, ports={"80/tcp": None, "53/udp": None, "8080/tcp": ("127.0.0.1", 0)})
    ports = c.ports
    (any_ip, port), (lo_ip, lo_port), (_, udp_port) = (
        ports["80/tcp"][0],
        ports["8080/tcp"][0],
        ports["53/udp"][0],
    )
    assert any_ip == "0.0.0.0" and lo_ip == "127.0.0.1"
    assert min(port, lo_port, udp_port) > 0
    assert _http_get("127.0.0.1", port) == b"served\n"
    assert _http_get(_host_address(), port) == b"served\n"
    assert _http_get(outside.host_ip, port, outside.netns) == b"served\n"  # from another netns
    assert _http_get(c.ip_address, 80) == b"served\n"
    # UDP: an echo socket in the container's own network namespace
    echo = netns_socket(f"/proc/{c.pid}/ns/net", socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind(("0.0.0.0", 53))

    def serve() -> None:
        with contextlib.suppress(OSError):
            data, addr = echo.recvfrom(100)
            echo.sendto(data.upper(), addr)

    threading.Thread(target=serve, daemon=True).start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(3)
        client.sendto(b"dns?", ("127.0.0.1", udp_port))
        assert client.recv(100) == b"DNS?"
    echo.close()
    assert HostState.of(net_engine) != before
    c.remove(force=True)
    net_engine.networks.release_idle()
    assert _eventually(lambda: HostState.of(net_engine) == before)  # links and nft table as before
    with socket.socket() as probe:  # the port is the host's again
        probe.bind(("0.0.0.0", port))


def test_taken_port_is_a_conflict_and_leaves_nothing(net_engine: ck.Engine) -> None:
    holder = socket.socket()
    holder.bind(("0.0.0.0", 0))
    holder.listen()
    taken = holder.getsockname()[1]
    net_engine.networks.release_idle()
    before = HostState.of(net_engine)
    c = net_engine.containers.create(image=IMAGE, command=["sleep", "60"], ports={"80/tcp": taken})
    try:
        with pytest.raises(ck.Conflict, match=f"0.0.0.0:{taken}/tcp"):
            c.start()
        assert c.status == "created"
        assert c.ports == {} and c.ip_address == ""
        assert not net_engine.network_service.netns_path(c.id).exists()
        assert net_engine.networks.nat.published(owner=c.id) == []
        net_engine.networks.release_idle()  # possible only because nothing is attached
        assert _eventually(lambda: HostState.of(net_engine) == before)
    finally:
        holder.close()
        c.remove()


def test_restart_keeps_address(net_engine: ck.Engine, network: Callable[..., object]) -> None:
    network("again")
    c = run(net_engine, ["sleep", "60"], name="again-box", network="again")
    first = c.ip_address
    c.stop(timeout=0)
    assert c.ip_address == "" and not net_engine.network_service.netns_path(c.id).exists()
    c.start()
    assert c.ip_address == first
    assert first in sh(c, "ip -4 -o addr show eth0").stdout.decode()
    c.remove(force=True)


def test_host_none_and_container_modes(net_engine: ck.Engine) -> None:
    code, text = output(net_engine, "ls /sys/class/net; hostname", network="host")
    assert code == 0 and {"lo", "eth0"} <= set(text.split()) and socket.gethostname() in text.split()
    code, text = output(net_engine, "ls /sys/class/net", network="none")
    assert (code, text.split()) == (0, ["lo"])
    first = run(net_engine, ["sleep", "60"])
    code, text = output(net_engine, "ip -4 -o addr show eth0", network=f"container:{first.id}")
    assert code == 0 and first.ip_address in text
    first.stop(timeout=0)
    joiner = net_engine.containers.create(image=IMAGE, command=["true"], network=f"container:{first.id}")
    with pytest.raises(ck.NotRunning):
        joiner.start()
    joiner.remove()
    first.remove()
    with pytest.raises(ck.InvalidArgument):
        net_engine.containers.create(image=IMAGE, command=["true"], network="none", ports={"80/tcp": 1})


def test_network_remove_needs_no_containers(net_engine: ck.Engine) -> None:
    net = net_engine.networks.create("short-lived", subnet=str(free_subnet()), labels={"a": "b"})
    with pytest.raises(ck.Conflict, match="already exists"):
        net_engine.networks.create("short-lived")
    assert net_engine.networks.list(filters={"label": "a=b"}) == [net]
    before = _table(net_engine)
    assert net.bridge in _links() and f'"{net.bridge}"' in before
    c = net_engine.containers.create(image=IMAGE, command=["true"], network="short-lived")
    with pytest.raises(ck.Conflict, match="connected"):
        net.remove()
    c.remove()
    net.remove()
    assert net.bridge not in _links()
    assert f'"{net.bridge}"' not in _table(net_engine)
    with pytest.raises(ck.NotFound):
        net_engine.networks.get("short-lived")


_KILLED_ENGINE = """
import os, signal, sys
import containerkit as ck
engine = ck.Engine(root=sys.argv[1])
engine.images.import_rootfs(sys.argv[2], "example/busybox:latest", config={"Cmd": ["sh"]})
engine.networks.create("crashnet", subnet=sys.argv[3])
for n in range(2):
    engine.containers.run(
        "example/busybox:latest", ["sleep", "60"], network="crashnet", ports={"80/tcp": None}
    )
done = engine.containers.run("example/busybox:latest", ["true"], ports={"81/tcp": None})
print(done.id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sigkilled_engine_leaves_nothing_after_a_new_engine(tmp_path: Path, busybox_rootfs_tar: Path) -> None:
    root = tmp_path / "killed-root"
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_ENGINE, str(root), str(busybox_rootfs_tar), str(free_subnet())],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    exited_id = proc.stdout.split()[0]
    wait_for_exit(root / "containers" / exited_id, 10)  # nobody of the dead engine waited
    with ck.Engine(root=root) as engine:
        # `true` exited with nobody waiting: the new engine unplugged it at once
        assert not engine.network_service.netns_path(exited_id).exists()
        assert engine.containers.get(exited_id).ports == {}
        # the two running ones keep theirs (the exited one's pair goes with its netns)
        assert _eventually(lambda: len([n for n in HostState.of(engine).links if n[7] == "v"]) == 2)
        assert len(engine.containers.list()) == 2
        for c in engine.containers.list(all=True):
            c.remove(force=True)
        engine.networks.get("crashnet").remove()
    assert _eventually(lambda: HostState.of(engine) == HostState(frozenset(), ""))


def test_veth_is_gone_when_remove_returns(net_engine: ck.Engine) -> None:
    """``remove()`` returns with no host veth left (docker's ``rm`` deletes it synchronously):
    checked at once, without polling, after force removals and after exits seen by wait()
    (the kernel's background cleanup left one in about eight before), and when someone else
    still holds the container's network namespace (then the pair would never go by itself)."""
    bridge_id = net_engine.networks.default().id
    for command in (["sleep", "60"], ["true"]) * 6:
        c = run(net_engine, command)
        name = net_engine.network_service.host_ifname(c.id, bridge_id)
        if command[0] == "sleep":
            assert name in _links()
        else:
            assert c.wait(timeout=30) == 0  # unplugged here; the pair goes in the background
        c.remove(force=True)
        assert name not in _links()
    c = run(net_engine, ["sleep", "60"])
    name = net_engine.network_service.host_ifname(c.id, bridge_id)
    holder = os.open(f"/proc/{c.pid}/ns/net", os.O_RDONLY)  # as an nsenter session would
    try:
        c.remove(force=True)
        assert name not in _links()
    finally:
        os.close(holder)


@pytest.mark.parametrize("paused", [False, True], ids=["running", "paused"])
def test_forced_removal_leaves_nothing_and_keeps_the_event_order(net_engine: ck.Engine, paused: bool) -> None:
    """A forced removal tears the network down while the killed container's shim sees the
    exit (a paused one is thawed after the signal, so the kill lands): when it returns the port
    rule, netns file and veth are gone, the host port can be published again at once, and the
    events come in docker's order (kill, die, disconnect, destroy)."""
    bridge_id = net_engine.networks.default().id
    since = time.time()
    c = run(net_engine, ["sleep", "60"], ports={"80/tcp": None})
    if paused:
        c.pause()
        assert c.status == "paused"
    host_port = int(c.ports["80/tcp"][0][1])
    name = net_engine.network_service.host_ifname(c.id, bridge_id)
    assert net_engine.networks.nat.published(owner=c.id) and name in _links()
    c.remove(force=True)
    assert net_engine.networks.nat.published(owner=c.id) == []
    assert not net_engine.network_service.netns_path(c.id).exists()
    assert name not in _links()
    with pytest.raises(ck.NotFound):
        net_engine.containers.get(c.id)
    again = run(net_engine, ["sleep", "60"], ports={"80/tcp": host_port})
    try:
        assert int(again.ports["80/tcp"][0][1]) == host_port
    finally:
        again.remove(force=True)
    actions = [
        (e.type, e.action)
        for e in net_engine.events(since=since, until=time.time())
        if e.actor_id == c.id or e.attributes.get("container") == c.id
    ]
    assert actions[-4:] == [
        ("container", "kill"),
        ("container", "die"),
        ("network", "disconnect"),
        ("container", "destroy"),
    ]


def test_start_replaces_a_leftover_pair_of_its_name(net_engine: ck.Engine) -> None:
    """A pair left under the container's host veth name (a killed engine's): the start deletes
    it, plugs its own pair on the bridge and works, and the leftover's peer goes with it."""
    bridge_id = net_engine.networks.default().id
    c = net_engine.containers.create(image=IMAGE, command=["sleep", "60"])
    name = net_engine.network_service.host_ifname(c.id, bridge_id)
    peer = f"ckl{os.getpid() % 100000}"
    try:
        with iproute() as ipr:
            ipr.link("add", ifname=name, kind="veth", peer={"ifname": peer})
            (leftover,) = ipr.link_lookup(ifname=name)
        c.start()
        with iproute() as ipr:
            assert ipr.link_lookup(ifname=peer) == []
            (index,) = ipr.link_lookup(ifname=name)
            assert index != leftover
            (bridge,) = ipr.link_lookup(ifname=net_engine.networks.default().bridge)
            assert ipr.get_links(index)[0].get_attr("IFLA_MASTER") == bridge
        assert sh(c, "ip -4 -o addr show eth0").output.decode().count("inet ") == 1
    finally:
        c.remove(force=True)
        for leaked in (peer, name):
            if leaked in _links():
                veth.detach(leaked)
    assert name not in _links() and peer not in _links()


_NO_NFT = """
import json, sys, time, subprocess
from pathlib import Path
import containerkit as ck
from containerkit.network.nat import nft_available

root, tar, socket_path = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
image = "example/busybox:latest"
found = {"nft_available": nft_available()}
with ck.Engine(root=root) as engine:  # the root registry of other roots is swept here too
    engine.images.import_rootfs(tar, image, config={"Cmd": ["sh"]})
    c = engine.containers.run(image, "ls /sys/class/net", network="none")
    found["none"] = [c.wait(timeout=30), c.logs().decode().split()]
    c.remove()
    c = engine.containers.run(image, "true", network="host")
    found["host"] = c.wait(timeout=30)
    c.remove()
    first = engine.containers.run(image, ["sleep", "60"], network="none")
    c = engine.containers.run(image, "ls /sys/class/net", network=f"container:{first.id}")
    found["container"] = c.wait(timeout=30)
    c.remove()
    first.remove(force=True)
    for what, call in (
        ("bridge", lambda: engine.containers.run(image, ["true"])),
        ("create", lambda: engine.networks.create("needs-nft")),
    ):
        try:
            call()
            found[what] = "no error"
        except ck.Unavailable as exc:
            found[what] = str(exc)
    found["networks"] = sorted(n.name for n in engine.networks.list())
    for c in engine.containers.list(all=True):
        c.remove(force=True)
daemon = subprocess.Popen(
    [sys.executable, "-m", "containerkit.daemon.main", "--root", str(root), "--host", f"unix://{socket_path}"],
    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
)
try:
    client = ck.Client(f"unix://{socket_path}")
    deadline = time.monotonic() + 30
    while not Path(socket_path).exists() and daemon.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if daemon.poll() is not None:
        found["daemon"] = daemon.stderr.read()
    else:
        c = client.containers.run(image, "true", network="none")
        found["daemon"] = c.wait(timeout=30)
        c.remove()
finally:
    daemon.terminate()
    daemon.wait(30)
    found["daemon_log"] = daemon.stderr.read()
print(json.dumps(found))
"""


@pytest.mark.slow
def test_without_nftables_the_engine_and_daemon_start(tmp_path: Path, busybox_rootfs_tar: Path) -> None:
    """As on a host without the nftables package: in a private mount namespace the ``nft``
    command and ``libnftables.so.1`` are covered by an empty, non-executable file (a simulation
    of the package being absent; the host's files are untouched). The engine and the daemon
    start, none/host/container networks work, a bridge network says which package to install."""
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    hidden = [
        os.path.realpath(p)
        for p in ("/usr/sbin/nft", *Path("/usr/lib").glob("*/libnftables.so.1"))
        if os.path.exists(p)
    ]
    cover = "".join(f"mount --bind {empty} {path}\n" for path in hidden)
    done = subprocess.run(
        [
            *("unshare", "--mount", "--propagation", "slave", "sh", "-ec", cover + 'exec "$@"', "sh"),
            *(sys.executable, "-c", _NO_NFT, str(tmp_path / "root"), str(busybox_rootfs_tar)),
            str(tmp_path / "d.sock"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["nft_available"] is False
    assert found["none"] == [0, ["lo"]]
    assert found["host"] == 0 and found["container"] == 0
    for what in ("bridge", "create"):
        assert "nftables" in found[what] and "Debian package" in found[what], found
    assert found["networks"] == ["bridge"]  # the failed create left no record
    assert found["daemon"] == 0, found
    assert "WARNING bridge networks need nftables" in found["daemon_log"], found["daemon_log"]


def test_a_traced_bridge_start_marks_the_network_phases_in_order(
    net_engine: ck.Engine, tmp_path: Path
) -> None:
    """CONTAINERKIT_TRACE shows where a bridge container's network time goes: its setup before
    the shim is asked for, its teardown when the exit is seen, the veth gone at removal."""
    from containerkit.runtime import trace

    path = tmp_path / "trace.log"
    trace.enable(str(path))
    try:
        c = run(net_engine, ["true"], ports={"80/tcp": None})
        assert c.wait(timeout=30) == 0
        c.remove()
    finally:
        trace.disable()
    phases = [line.split()[2] for line in path.read_text().splitlines()]
    ordered = [
        "net.begin",
        "net.addressed",
        "net.published",
        "net.netns",
        "net.plugged",
        "net.ready",
        "engine.shim_request",
        "net.teardown",
        "net.torn_down",
        "net.settled",
    ]
    assert [p for p in phases if p in ordered] == ordered


def test_a_start_on_the_default_bridge_rewrites_no_other_hosts_file(
    net_engine: ck.Engine, network: Callable[..., Network]
) -> None:
    """The default bridge resolves no names, so a peer's start leaves running containers' hosts
    files alone there; on a user network the peers' files are rewritten with the newcomer."""
    first = run(net_engine, ["sleep", "60"])
    hosts = first.task.etc_path("hosts")
    before = (hosts.stat().st_mtime_ns, hosts.read_text())
    second = run(net_engine, ["sleep", "60"])
    assert (hosts.stat().st_mtime_ns, hosts.read_text()) == before
    first.remove(force=True)
    second.remove(force=True)
    net = network("hostsnet")
    third = run(net_engine, ["sleep", "60"], network=net.name, name="third-hosts")
    fourth = run(net_engine, ["sleep", "60"], network=net.name, name="fourth-hosts")
    assert "fourth-hosts" in third.task.etc_path("hosts").read_text()
    third.remove(force=True)
    fourth.remove(force=True)


def test_a_spare_netns_is_made_only_once_a_second_container_left(
    tmp_path: Path, busybox_rootfs_tar: Path
) -> None:
    """One container (a CLI command) makes no spare network namespace, and no thread runs beside
    its start (the runtime forks a shim directly only while single-threaded); from the second
    container's teardown on, the next start takes a namespace made ahead."""
    with ck.Engine(root=tmp_path / "root") as engine:
        engine.images.import_rootfs(busybox_rootfs_tar, IMAGE, config={"Cmd": ["sh"]})
        spares = engine.network_service._spare_netns
        first = run(engine, ["true"])
        assert first.wait(timeout=30) == 0
        first.remove()
        assert spares._ready is None and not spares._making
        assert not [t for t in threading.enumerate() if t.name == "containerkit-netns-spare"]
        second = run(engine, ["true"])
        assert second.wait(timeout=30) == 0
        assert _eventually(lambda: spares._ready is not None)
        made = os.fstat(spares._ready[0]).st_ino  # type: ignore[index]
        second.remove()
        third = run(engine, ["sleep", "60"])
        assert os.stat(engine.network_service.netns_path(third.id)).st_ino == made
        third.remove(force=True)

from __future__ import annotations

import errno
import os
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from containerkit.errors import Conflict, InvalidArgument, NotFound
from containerkit.network import bridge, veth
from containerkit.network.netns import iproute, netns_socket
from containerkit.network.ports import automatic_port_range, pick_free_port
from containerkit.spec import PortBinding


def ruleset() -> str:
    return subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=True).stdout


def unreachable(netns: Any, ip: str, port: int) -> bool:
    """True if a TCP connect is dropped or refused (short timeout: a drop just goes silent)."""
    sock = netns_socket(netns) if netns else socket.socket()
    with sock:
        sock.settimeout(0.5)
        try:
            sock.connect((ip, port))
        except (TimeoutError, ConnectionRefusedError):
            return True
        except OSError as exc:
            return exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH)
        return False


def test_masquerade_reaches_outside_as_the_host(
    make_net: Any, make_netns: Any, nat: Any, outside: Any, echo: Any, roundtrip: Any
) -> None:
    net = make_net("m")
    ns = make_netns("m")
    net.attach(ns)
    nat.ensure_network(net.bridge, net.subnet)
    nat.ensure_network(net.bridge, net.subnet)  # idempotent
    assert len(nat.rules()) == 4
    server = echo(outside.netns, outside.ip)
    assert roundtrip(ns, outside.ip, server.port) == b"ping"
    assert server.peers == [outside.host_ip]


def test_published_tcp_and_udp(
    make_net: Any, make_netns: Any, nat: Any, outside: Any, echo: Any, roundtrip: Any
) -> None:
    net = make_net("p")
    ctr, peer = make_netns("ctr"), make_netns("peer")
    ip = net.attach(ctr)
    net.attach(peer)
    nat.ensure_network(net.bridge, net.subnet)
    tcp = echo(ctr, ip, 5000)
    udp = echo(ctr, ip, 5001, "udp")
    ports = nat.publish_many(
        [PortBinding(container_port=5000), PortBinding(container_port=5001, protocol="udp")], ip, owner="c1"
    )
    assert [p.key for p in ports] == ["5000/tcp", "5001/udp"]
    assert all(p.host_port > 0 and p.host_ip == "0.0.0.0" for p in ports)
    assert nat.published("c1") == ports
    tport, uport = ports[0].host_port, ports[1].host_port
    for src, dst in [
        (None, "127.0.0.1"),
        (None, outside.host_ip),
        (outside.netns, outside.host_ip),
        (peer, net.gateway),
    ]:
        assert roundtrip(src, dst, tport, payload=b"t") == b"t", (src, dst)
        assert roundtrip(src, dst, uport, "udp", b"u") == b"u", (src, dst)
    # a container reaches its own published port (hairpin)
    assert roundtrip(ctr, outside.host_ip, tport) == b"ping"
    assert tcp.peers and udp.peers


def test_published_on_one_address_only(
    make_net: Any, make_netns: Any, nat: Any, outside: Any, echo: Any, roundtrip: Any
) -> None:
    net = make_net("l")
    ctr = make_netns("l")
    ip = net.attach(ctr)
    nat.ensure_network(net.bridge, net.subnet)
    echo(ctr, ip, 80)
    (port,) = nat.publish_many([PortBinding(container_port=80, host_ip="127.0.0.1")], ip, owner="c2")
    assert roundtrip(None, "127.0.0.1", port.host_port) == b"ping"
    assert unreachable(None, outside.host_ip, port.host_port)
    assert unreachable(outside.netns, outside.host_ip, port.host_port)


def test_port_conflicts_leave_nothing(nat: Any) -> None:
    holder = socket.socket()
    holder.bind(("0.0.0.0", 0))
    holder.listen()
    busy = holder.getsockname()[1]
    with holder:
        with pytest.raises(Conflict, match=f"0.0.0.0:{busy}/tcp"):
            nat.publish(PortBinding(container_port=80, host_port=busy), "10.1.1.2", owner="c1")
        with pytest.raises(Conflict, match=f"127.0.0.1:{busy}/tcp"):
            nat.publish_many(
                [
                    PortBinding(container_port=81),
                    PortBinding(container_port=80, host_port=busy, host_ip="127.0.0.1"),
                ],
                "10.1.1.2",
                owner="c1",
            )
        assert nat.published() == []
        # udp on the same number is another port
        nat.publish(PortBinding(container_port=80, host_port=busy, protocol="udp"), "10.1.1.2", owner="c1")
    first = nat.publish(PortBinding(container_port=80), "10.1.1.2", owner="c1")
    rules = nat.rules()
    for host_ip in ("0.0.0.0", "127.0.0.1"):
        with pytest.raises(Conflict, match=f"{host_ip}:{first.host_port}/tcp is already published"):
            nat.publish(
                PortBinding(container_port=80, host_port=first.host_port, host_ip=host_ip),
                "10.1.1.3",
                owner="c2",
            )
    assert nat.rules() == rules
    with pytest.raises(InvalidArgument, match=r"::1"):
        nat.publish(PortBinding(container_port=80, host_ip="::1"), "10.1.1.3", owner="c2")
    with pytest.raises(InvalidArgument, match=r"192\.0\.2\.77"):
        nat.publish(PortBinding(container_port=80, host_ip="192.0.2.77"), "10.1.1.3", owner="c2")
    assert len(nat.unpublish("c1")) == 2
    assert nat.published() == []


def test_random_ports_are_above_the_kernels_automatic_range(
    make_net: Any, make_netns: Any, nat: Any, echo: Any, roundtrip: Any
) -> None:
    """A random published port the kernel could hand out again (to a later ``bind(0)`` or an
    outgoing connection) would take that socket's traffic into the container: a test's fake
    registry on such a port answered with the container's httpd."""
    low, high = automatic_port_range()
    net = make_net("r")
    ctr = make_netns("r")
    ip = net.attach(ctr)
    nat.ensure_network(net.bridge, net.subnet)
    echo(ctr, ip, 80)
    made = nat.publish_many([PortBinding(container_port=80) for _ in range(8)], ip, owner="rnd")
    ports = {p.host_port for p in made}
    assert len(ports) == 8
    assert all(high < port <= 65535 for port in ports), (ports, (low, high))
    assert roundtrip(None, "127.0.0.1", made[0].host_port) == b"ping"
    # host listeners the kernel places keep their own traffic
    for _ in range(50):
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            assert listener.getsockname()[1] not in ports
    assert len(nat.unpublish("rnd")) == 8


def test_random_port_falls_back_to_the_kernels_choice_when_nothing_is_above(tmp_path: Path) -> None:
    (tmp_path / "range").write_text("1024\t65535\n")
    assert automatic_port_range(tmp_path / "range") == (1024, 65535)
    (tmp_path / "bad").write_text("garbage\n")
    assert automatic_port_range(tmp_path / "bad") == (32768, 60999)
    assert automatic_port_range(tmp_path / "absent") == (32768, 60999)
    port = pick_free_port("127.0.0.1", "tcp", automatic=(1024, 65535))
    assert 1024 <= port <= 65535
    above = pick_free_port("127.0.0.1", "tcp", automatic=(1024, 65000))
    assert 65000 < above <= 65535
    with pytest.raises(InvalidArgument, match=r"192\.0\.2\.77"):
        pick_free_port("192.0.2.77", "tcp")


def test_isolation_between_bridges(
    make_net: Any, make_netns: Any, nat: Any, echo: Any, roundtrip: Any
) -> None:
    one, two = make_net("i"), make_net("j")
    a, b = make_netns("ia"), make_netns("jb")
    ip_a, ip_b = one.attach(a), two.attach(b)
    nat.ensure_network(one.bridge, one.subnet)
    nat.ensure_network(two.bridge, two.subnet)
    server_b = echo(b, ip_b)
    server_a = echo(a, ip_a)
    assert unreachable(a, ip_b, server_b.port)
    assert unreachable(b, ip_a, server_a.port)
    assert roundtrip(None, ip_b, server_b.port) == b"ping"  # the host still reaches both
    nat.remove_network(two.bridge)
    nat.remove_network(one.bridge)
    assert roundtrip(a, ip_b, server_b.port) == b"ping"  # only our rules did it


def test_internal_network_has_no_way_out(
    make_net: Any, make_netns: Any, nat: Any, outside: Any, echo: Any, roundtrip: Any
) -> None:
    net = make_net("x")
    ns, peer = make_netns("x"), make_netns("xp")
    ip = net.attach(ns, gateway=False)
    net.attach(peer, gateway=False)
    nat.ensure_network(net.bridge, net.subnet, internal=True)
    server = echo(outside.netns, outside.ip)
    assert unreachable(ns, outside.ip, server.port)  # no route at all
    with iproute(ns) as ipr:  # even a route added by hand goes nowhere
        ipr.route("add", dst="0.0.0.0/0", gateway=net.gateway)
    assert unreachable(ns, outside.ip, server.port)
    assert server.peers == []
    mine = echo(ns, ip)
    assert roundtrip(peer, ip, mine.port) == b"ping"  # same network still talks


def test_everything_is_undone(
    make_netns: Any, nat: Any, uid: str, link_names: Any, assert_links_back: Any, echo: Any, roundtrip: Any
) -> None:
    rules_before, links_before = ruleset(), link_names()
    name = f"ckb{uid}u"
    bridge.ensure_bridge(name, "10.253.3.1/24")
    ns = make_netns("u")
    host = veth.attach(ns, name, address_cidr="10.253.3.2/24", gateway="10.253.3.1")
    nat.ensure_network(name, "10.253.3.0/24")
    net_rules = nat.rules()
    echo(ns, "10.253.3.2", 7000)
    port = nat.publish(PortBinding(container_port=7000), "10.253.3.2", owner="ctr")
    assert roundtrip(None, "127.0.0.1", port.host_port) == b"ping"
    assert nat.unpublish("ctr") == [port]
    assert nat.unpublish("ctr") == []
    assert nat.rules() == net_rules
    assert unreachable(None, "127.0.0.1", port.host_port)
    nat.remove_network(name)
    assert nat.rules() == []
    nat.remove_all()
    nat.remove_all()
    assert not nat.exists()
    veth.detach(host)
    bridge.remove_bridge(name)
    assert_links_back(links_before, {name, host})
    if "PYTEST_XDIST_WORKER" not in os.environ:  # other workers change the rule set meanwhile
        assert ruleset() == rules_before
    assert f"ckt{uid}" not in ruleset()


def test_concurrent_publish_of_one_port_has_one_winner(nat: Any, uid: str) -> None:
    port = socket.socket()
    port.bind(("0.0.0.0", 0))
    number = port.getsockname()[1]
    port.close()
    outcomes: list[str] = []

    def publish(owner: str) -> None:
        try:
            nat.publish(PortBinding(container_port=80, host_port=number), "10.1.1.2", owner=owner)
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=publish, args=(f"c{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 5 + ["ok"]
    assert len(nat.published()) == 1


def test_network_rules_need_the_bridge(nat: Any, uid: str) -> None:
    with pytest.raises(NotFound, match=f"ckb{uid}none"):
        nat.ensure_network(f"ckb{uid}none", "10.1.0.0/24")
    with pytest.raises(InvalidArgument, match="subnet"):
        nat.ensure_network(f"ckb{uid}none", "10.1.0.1/24")

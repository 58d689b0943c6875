from __future__ import annotations

import errno
import socket
from typing import Any

import pytest

from containerkit.errors import Conflict, InvalidArgument, NotFound
from containerkit.network import bridge, veth
from containerkit.network.netns import iproute, netns_socket


def test_bridge_idempotent_and_removed(uid: str, link_names: Any, assert_links_back: Any) -> None:
    name = f"ckb{uid}x"
    before = link_names()
    index = bridge.ensure_bridge(name, "10.254.77.1/24")
    assert bridge.ensure_bridge(name, "10.254.77.1/24") == index
    with iproute() as ipr:
        (link,) = ipr.get_links(index=index)
        addrs = [(a.get("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=2)]
    assert link["flags"] & 1
    assert addrs == [("10.254.77.1", 24)]
    with pytest.raises(Conflict, match=name):
        bridge.ensure_bridge(name, "10.254.78.1/24")
    bridge.remove_bridge(name)
    bridge.remove_bridge(name)
    assert_links_back(before, {name})


def test_bridge_rejects_bad_input() -> None:
    with pytest.raises(InvalidArgument):
        bridge.ensure_bridge("a" * 16, "10.0.0.1/24")
    with pytest.raises(InvalidArgument):
        bridge.ensure_bridge("ckbad", "10.0.0.0/24")


def test_two_netns_on_a_bridge_talk(make_net: Any, make_netns: Any, echo: Any, roundtrip: Any) -> None:
    net = make_net("a")
    a, b = make_netns("a"), make_netns("b")
    ip_a = net.attach(a, mac="02:42:ac:11:00:02")
    ip_b = net.attach(b)
    server = echo(b, ip_b)
    assert roundtrip(a, ip_b, server.port, payload=b"hello") == b"hello"
    assert server.peers == [ip_a]
    udp = echo(a, ip_a, proto="udp")
    assert roundtrip(b, ip_a, udp.port, proto="udp") == b"ping"
    # the container reaches the gateway (the host) too
    host = echo(None, net.gateway)
    assert roundtrip(a, net.gateway, host.port) == b"ping"
    with iproute(a) as ipr:
        (eth0,) = ipr.get_links(ifname="eth0")
        routes = [r.get("RTA_GATEWAY") for r in ipr.get_routes(family=2, table=254)]
    assert eth0.get("IFLA_ADDRESS") == "02:42:ac:11:00:02"
    assert net.gateway in routes


def test_no_gateway_means_no_default_route(make_net: Any, make_netns: Any) -> None:
    net = make_net("n")
    ns = make_netns("n")
    net.attach(ns, gateway=False)
    with iproute(ns) as ipr:
        assert all(r["dst_len"] > 0 for r in ipr.get_routes(family=2, table=254))
    sock = netns_socket(ns)
    with sock, pytest.raises(OSError) as info:
        sock.connect(("192.0.2.200", 9))
    assert info.value.errno == errno.ENETUNREACH


def test_attach_errors_leave_nothing(make_net: Any, make_netns: Any, uid: str, ports_of: Any) -> None:
    net = make_net("e")
    ns = make_netns("e")
    with pytest.raises(NotFound, match=f"ckb{uid}zz"):
        veth.attach(ns, f"ckb{uid}zz", address_cidr="10.9.9.2/24", gateway=None)
    with pytest.raises(InvalidArgument, match="gateway"):
        veth.attach(ns, net.bridge, address_cidr="10.9.9.2/24", gateway="10.9.10.1")
    host = veth.attach(
        ns, net.bridge, address_cidr=f"{net.subnet.network_address + 9}/24", gateway=net.gateway
    )
    with pytest.raises(Conflict, match="eth0"):
        veth.attach(ns, net.bridge, address_cidr=f"{net.subnet.network_address + 10}/24", gateway=None)
    assert ports_of(net.bridge) == {host}
    veth.detach(host)
    veth.detach(host)
    assert ports_of(net.bridge) == set()
    with iproute(ns) as ipr:
        assert [link.get("ifname") for link in ipr.get_links()] == ["lo"]


def test_netns_socket_is_in_the_netns(make_netns: Any) -> None:
    ns = make_netns("s")
    with netns_socket(ns, socket.AF_INET, socket.SOCK_DGRAM) as sock, pytest.raises(OSError):
        sock.bind(("192.0.2.2", 0))  # a host address: not there inside

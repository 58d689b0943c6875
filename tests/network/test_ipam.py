from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from containerkit.errors import Conflict, InvalidArgument
from containerkit.network.ipam import DEFAULT_POOL, gateway_for, next_free, parse_subnet, pick_subnet


def test_next_free_skips_gateway_and_used() -> None:
    net = IPv4Network("10.0.0.0/29")
    gw = gateway_for(net)
    assert gw == IPv4Address("10.0.0.1")
    assert next_free(net, set(), gw) == IPv4Address("10.0.0.2")
    used = {IPv4Address("10.0.0.2"), IPv4Address("10.0.0.4")}
    assert next_free(net, used, gw) == IPv4Address("10.0.0.3")
    assert next_free(net, set(), None) == IPv4Address("10.0.0.1")


def test_next_free_full() -> None:
    net = IPv4Network("10.0.0.0/30")
    with pytest.raises(Conflict, match=r"10\.0\.0\.0/30"):
        next_free(net, {IPv4Address("10.0.0.2")}, IPv4Address("10.0.0.1"))


def test_parse_subnet() -> None:
    assert parse_subnet("10.89.0.0/24") == IPv4Network("10.89.0.0/24")
    with pytest.raises(InvalidArgument, match=r"10\.89\.0\.1/24"):
        parse_subnet("10.89.0.1/24")
    with pytest.raises(InvalidArgument, match="too small"):
        parse_subnet("10.0.0.0/31")


def test_pick_subnet_avoids_docker0_and_ours() -> None:
    assert pick_subnet([], []) == IPv4Network("172.17.0.0/16")
    docker0 = IPv4Network("172.17.0.0/16")
    default = IPv4Network("0.0.0.0/0")
    assert pick_subnet([], [default, docker0]) == IPv4Network("172.18.0.0/16")
    ours = [IPv4Network("172.18.0.0/16")]
    assert pick_subnet(ours, [docker0, IPv4Network("172.19.5.0/24")]) == IPv4Network("172.20.0.0/16")
    assert pick_subnet(DEFAULT_POOL[:15], []) == IPv4Network("192.168.0.0/20")
    with pytest.raises(Conflict):
        pick_subnet([IPv4Network("172.16.0.0/12"), IPv4Network("192.168.0.0/16")], [])

"""Host bridges: one per network, holding the gateway address its containers route through."""

from __future__ import annotations

import errno
from ipaddress import IPv4Interface, IPv4Network

from containerkit.errors import Conflict, ContainerkitError, InvalidArgument
from containerkit.network._ifname import check_ifname
from containerkit.network.netns import iproute, netlink_error
from containerkit.network.rtnl import Rtnl

__all__ = ["bridge_exists", "ensure_bridge", "host_networks", "remove_bridge"]


def _parse_cidr(gateway_cidr: str) -> IPv4Interface:
    try:
        iface = IPv4Interface(gateway_cidr)
    except ValueError:
        raise InvalidArgument(
            f"invalid gateway address {gateway_cidr!r} (expected e.g. 172.30.0.1/16)"
        ) from None
    if iface.network.prefixlen > 30 or iface.ip in (
        iface.network.network_address,
        iface.network.broadcast_address,
    ):
        raise InvalidArgument(f"gateway {gateway_cidr} must be a host address in a /30 or larger subnet")
    return iface


def ensure_bridge(name: str, gateway_cidr: str) -> int:
    """Create (or adopt) bridge ``name`` with ``gateway_cidr`` on it, up; returns its ifindex.

    Idempotent and safe against a concurrent creator. An existing link of another kind, or a
    bridge that carries a different IPv4 address, is a Conflict: we never re-address what we
    did not configure. IP forwarding is not touched here (see ``sysctl.enable_ip_forward``):
    an internal network needs none.
    """
    check_ifname(name)
    iface = _parse_cidr(gateway_cidr)
    with iproute() as ipr:
        try:
            ipr.link("add", ifname=name, kind="bridge")
        except netlink_error() as exc:
            if exc.code != errno.EEXIST:
                raise ContainerkitError(f"cannot create bridge {name}: {exc}") from exc
        (link,) = ipr.get_links(ifname=name)
        index: int = link["index"]
        info = link.get("IFLA_LINKINFO")
        kind = info.get("IFLA_INFO_KIND") if info is not None else None
        if kind != "bridge":
            raise Conflict(f"interface {name} exists and is not a bridge (kind {kind})")
        current = {
            IPv4Interface(f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}")
            for a in ipr.get_addr(index=index, family=2)
        }
        if current and iface not in current:
            have = ", ".join(sorted(str(c) for c in current))
            raise Conflict(f"bridge {name} already has address {have}, not {iface}")
        if iface not in current:
            try:
                ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
            except netlink_error() as exc:
                if exc.code != errno.EEXIST:
                    raise ContainerkitError(f"cannot add {iface} to bridge {name}: {exc}") from exc
        ipr.link("set", index=index, state="up")
    return index


def bridge_exists(name: str) -> bool:
    """Whether a link ``name`` exists (checked on every bridge-mode start: no pyroute2 here)."""
    check_ifname(name)
    with Rtnl() as sock:
        return sock.link_index(name) is not None


def remove_bridge(name: str) -> None:
    """Delete bridge ``name`` (its ports are released, not deleted); a missing bridge is fine."""
    check_ifname(name)
    with iproute() as ipr:
        try:
            ipr.link("del", ifname=name)
        except netlink_error() as exc:
            if exc.code not in (errno.ENODEV, errno.ENOENT):
                raise ContainerkitError(f"cannot remove bridge {name}: {exc}") from exc


def host_networks() -> list[IPv4Network]:
    """IPv4 networks the host already routes or holds (default routes excluded), for subnet picking."""
    found: set[IPv4Network] = set()
    with iproute() as ipr:
        for route in ipr.get_routes(family=2, table=254):
            dst = route.get("RTA_DST")
            if dst and route["dst_len"] > 0:
                found.add(IPv4Network(f"{dst}/{route['dst_len']}", strict=False))
        for addr in ipr.get_addr(family=2):
            found.add(IPv4Network(f"{addr.get('IFA_ADDRESS')}/{addr['prefixlen']}", strict=False))
    return sorted(found)

"""Veth pairs that plug a network namespace into a bridge."""

from __future__ import annotations

import errno
import os
import re
import secrets
from ipaddress import IPv4Address, IPv4Interface

from containerkit.errors import Conflict, ContainerkitError, InvalidArgument, NotFound
from containerkit.network._ifname import check_ifname
from containerkit.network.netns import PathLike, iproute, netlink_error

__all__ = ["attach", "check_mac", "detach", "random_ifname"]

_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_BRIDGE_MODE_HAIRPIN = 1


def random_ifname(prefix: str = "veth") -> str:
    """``veth1a2b3c4`` style: unique enough for host-side names, 15 bytes at most."""
    return check_ifname(prefix + secrets.token_hex(8)[: 15 - len(prefix)])


def check_mac(mac: str) -> str:
    mac = mac.lower()
    if not _MAC_RE.match(mac) or int(mac[:2], 16) & 1:
        raise InvalidArgument(f"invalid mac address {mac!r} (expected a unicast aa:bb:cc:dd:ee:ff)")
    return mac


def attach(
    netns_path: PathLike,
    bridge: str,
    *,
    address_cidr: str,
    gateway: str | None,
    ifname: str = "eth0",
    mac: str | None = None,
    host_ifname: str | None = None,
    mtu: int | None = None,
) -> str:
    """Plug the namespace at ``netns_path`` into ``bridge``; returns the host-side interface name.

    Inside the namespace ``ifname`` gets ``address_cidr``, ``mac`` (if given), and a default
    route via ``gateway`` (none when ``gateway`` is None: internal networks). The peer is created
    directly in the namespace, so ``eth0`` never clashes with the host's. Hairpin mode is on so
    a container reaches its own published ports. On failure the pair is deleted.
    """
    check_ifname(bridge)
    check_ifname(ifname)
    host_name = check_ifname(host_ifname) if host_ifname else random_ifname()
    try:
        iface = IPv4Interface(address_cidr)
    except ValueError:
        raise InvalidArgument(f"invalid address {address_cidr!r} (expected e.g. 172.30.0.2/16)") from None
    gw = None
    if gateway is not None:
        try:
            gw = IPv4Address(gateway)
        except ValueError:
            raise InvalidArgument(f"invalid gateway {gateway!r}") from None
        if gw not in iface.network or gw == iface.ip:
            raise InvalidArgument(f"gateway {gw} is not another address in {iface.network}")
    mac = check_mac(mac) if mac else None

    with iproute() as ipr:
        bridges = ipr.link_lookup(ifname=bridge)
        if not bridges:
            raise NotFound(f"bridge {bridge} does not exist")
        try:
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"network namespace {os.fspath(netns_path)} does not exist") from None
        try:
            peer: dict[str, object] = {"ifname": ifname, "net_ns_fd": fd}
            extra: dict[str, object] = {}
            if mtu:
                peer["mtu"] = extra["mtu"] = mtu
            ipr.link("add", ifname=host_name, kind="veth", peer=peer, **extra)
        except netlink_error() as exc:
            if exc.code == errno.EEXIST:
                raise Conflict(
                    f"cannot create veth {host_name}: {host_name} on the host or {ifname} in "
                    f"{os.fspath(netns_path)} already exists"
                ) from None
            raise ContainerkitError(f"cannot create veth {host_name}: {exc}") from exc
        finally:
            os.close(fd)
        try:
            (index,) = ipr.link_lookup(ifname=host_name)
            ipr.link("set", index=index, master=bridges[0], state="up")
            ipr.brport("set", index=index, mode=_BRIDGE_MODE_HAIRPIN)
            _configure_peer(netns_path, ifname, iface, gw, mac)
        except BaseException as exc:
            detach(host_name)
            if isinstance(exc, netlink_error()):
                raise ContainerkitError(f"cannot attach {host_name} to bridge {bridge}: {exc}") from exc
            raise
    return host_name


def _configure_peer(
    netns_path: PathLike, ifname: str, iface: IPv4Interface, gw: IPv4Address | None, mac: str | None
) -> None:
    where = f"{ifname} in {os.fspath(netns_path)}"
    with iproute(netns_path) as ipr:
        (index,) = ipr.link_lookup(ifname=ifname)
        if mac:
            try:
                ipr.link("set", index=index, address=mac)
            except netlink_error() as exc:
                raise ContainerkitError(f"cannot set mac {mac} on {where}: {exc}") from exc
        try:
            ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        except netlink_error() as exc:
            raise ContainerkitError(f"cannot add address {iface} to {where}: {exc}") from exc
        ipr.link("set", index=index, state="up")
        if gw is not None:
            try:
                ipr.route("add", dst="0.0.0.0/0", gateway=str(gw), oif=index)
            except netlink_error() as exc:
                raise ContainerkitError(f"cannot add default route via {gw} on {where}: {exc}") from exc


def retire(host_ifname: str) -> None:
    """Take the host end down, for a pair whose namespace is about to be removed.

    Deleting a veth waits for an RCU grace period (20-40 ms here); removing its namespace
    instead lets the kernel delete the pair in the background, batched with others. Down, the
    host end forwards nothing meanwhile, so the address can be handed out again at once. A
    missing link is fine.
    """
    check_ifname(host_ifname)
    with iproute() as ipr:
        try:
            ipr.link("set", ifname=host_ifname, state="down")
        except netlink_error() as exc:
            if exc.code not in (errno.ENODEV, errno.ENOENT):
                raise ContainerkitError(f"cannot take veth {host_ifname} down: {exc}") from exc


def detach(host_ifname: str) -> None:
    """Delete the pair by its host end (the peer goes with it); a missing link is fine."""
    check_ifname(host_ifname)
    with iproute() as ipr:
        try:
            ipr.link("del", ifname=host_ifname)
        except netlink_error() as exc:
            if exc.code not in (errno.ENODEV, errno.ENOENT):
                raise ContainerkitError(f"cannot remove veth {host_ifname}: {exc}") from exc

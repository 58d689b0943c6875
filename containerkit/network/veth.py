"""Veth pairs that plug a network namespace into a bridge."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import threading
import time
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Interface

from containerkit.errors import Conflict, ContainerkitError, InvalidArgument, NotFound
from containerkit.network import rtnl
from containerkit.network._ifname import check_ifname
from containerkit.network.netns import PathLike
from containerkit.network.netns import netns_rtnl as open_netns_rtnl
from containerkit.network.rtnl import Rtnl, RtnlError

__all__ = ["attach", "check_mac", "detach", "random_ifname", "retire", "wait_gone"]

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
    netns_rtnl: Rtnl | None = None,
) -> str:
    """Plug the namespace at ``netns_path`` into ``bridge``; returns the host-side interface name.

    Inside the namespace ``ifname`` gets ``address_cidr``, ``mac`` (if given), and a default
    route via ``gateway`` (none when ``gateway`` is None: internal networks). The peer is created
    directly in the namespace, so ``eth0`` never clashes with the host's. Hairpin mode is on so
    a container reaches its own published ports. On failure the pair is deleted.
    ``netns_rtnl``: a socket already in the namespace (see ``create_netns_rtnl``).
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

    with Rtnl() as host:
        master = host.link_index(bridge)
        if master is None:
            raise NotFound(f"bridge {bridge} does not exist")
        try:
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"network namespace {os.fspath(netns_path)} does not exist") from None
        try:
            # One write: the pair (up, on the bridge, its peer made up in the namespace with
            # its mac), then hairpin on the new bridge port.
            created, hairpin = host.batch(
                [
                    rtnl.veth_create(
                        host_name, ifname, peer_netns_fd=fd, master=master, peer_mac=mac, mtu=mtu
                    ),
                    rtnl.bridge_port_hairpin(host_name),
                ]
            )
        finally:
            os.close(fd)
        if created is not None:
            if created.errno == errno.EEXIST:
                raise Conflict(
                    f"cannot create veth {host_name}: {host_name} on the host or {ifname} in "
                    f"{os.fspath(netns_path)} already exists"
                ) from None
            raise ContainerkitError(f"cannot create veth {host_name}: {created}") from created
        try:
            if hairpin is not None:
                raise ContainerkitError(
                    f"cannot attach {host_name} to bridge {bridge}: {hairpin}"
                ) from hairpin
            _configure_peer(netns_path, ifname, iface, gw, netns_rtnl)
        except BaseException:
            with contextlib.suppress(RtnlError):
                host.link_del(host_name)
            raise
    return host_name


def _configure_peer(
    netns_path: PathLike, ifname: str, iface: IPv4Interface, gw: IPv4Address | None, ns: Rtnl | None
) -> None:
    """The peer up, its address and default route: one write on a socket in its namespace."""
    where = f"{ifname} in {os.fspath(netns_path)}"
    own = ns is None
    sock = open_netns_rtnl(netns_path) if ns is None else ns
    try:
        index = sock.link_index(ifname)
        if index is None:
            raise ContainerkitError(f"{where} vanished while it was configured")
        requests = [rtnl.link_set_up(index), rtnl.addr_add(index, iface.ip, iface.network.prefixlen)]
        if gw is not None:
            requests.append(rtnl.route_add_default(gw, index))
        errors = sock.batch(requests)
    finally:
        if own:
            sock.close()
    if errors[0] is not None:
        raise ContainerkitError(f"cannot set {where} up: {errors[0]}") from errors[0]
    if errors[1] is not None:
        raise ContainerkitError(f"cannot add address {iface} to {where}: {errors[1]}") from errors[1]
    if gw is not None and errors[2] is not None:
        raise ContainerkitError(f"cannot add default route via {gw} on {where}: {errors[2]}") from errors[2]


def retire(host_ifname: str) -> bool:
    """Start deleting the pair by its host end and return without waiting; False when there is
    no such link (fine).

    The kernel takes the link out of the host's list at the start of the delete request, but
    the request returns only after an RCU barrier and the device's last references (20-40 ms
    here); a removed namespace takes its pairs away later still, in the kernel's background
    cleanup (15-45 ms). A throwaway thread makes the request and waits that out, so the link is
    gone for everyone within a millisecond. It deletes by index: a pair made again under the
    same name meanwhile (a restart) is never the one deleted. A request that fails is left to
    :func:`wait_gone`, which deletes a pair still there after its timeout.
    """
    check_ifname(host_ifname)
    try:
        with Rtnl() as sock:
            index = sock.link_index(host_ifname)
    except RtnlError as exc:
        raise ContainerkitError(f"cannot look up veth {host_ifname}: {exc}") from exc
    if index is None:
        return False
    # a threading.Thread, counted by threading.active_count(), as a direct launch wants
    threading.Thread(
        target=_delete_index, args=(index,), name="containerkit-veth-delete", daemon=True
    ).start()
    return True


def _delete_index(index: int) -> None:
    with contextlib.suppress(OSError), Rtnl() as sock:
        sock.request(*rtnl.link_delete_index(index))


def detach(host_ifname: str) -> None:
    """Delete the pair by its host end (the peer goes with it); a missing link is fine."""
    check_ifname(host_ifname)
    try:
        with Rtnl() as sock:
            sock.link_del(host_ifname)
    except RtnlError as exc:
        raise ContainerkitError(f"cannot remove veth {host_ifname}: {exc}") from exc


def wait_gone(host_ifnames: Sequence[str], timeout: float = 0.5) -> None:
    """Return once none of ``host_ifnames`` exists, as ``docker rm`` leaves no veth behind.

    A retired pair goes with its namespace, deleted by the kernel in the background some
    milliseconds later (the RCU grace period comes with the namespace's cleanup): waiting for
    that costs what remains of it, where deleting a pair here would cost a grace period of its
    own. A pair still there after ``timeout`` (its namespace kept alive by someone) is deleted.
    """
    names = [check_ifname(n) for n in host_ifnames]
    if not names:
        return
    deadline = time.monotonic() + timeout
    # subscribed before the first look: the kernel's deletion wakes the wait, no polling
    with rtnl.LinkEvents() as events, Rtnl() as sock:
        while True:
            try:
                names = [n for n in names if sock.link_index(n) is not None]
            except RtnlError as exc:
                raise ContainerkitError(f"cannot look up veth {names[0]}: {exc}") from exc
            if not names:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                break
            events.wait(left)
    for name in names:
        detach(name)

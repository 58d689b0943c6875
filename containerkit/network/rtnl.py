"""A minimal rtnetlink client for the few requests on a container's start and teardown path.

pyroute2 builds each request through an asyncio loop and costs ~0.7 ms per ``IPRoute()``:
about 5 ms of Python per bridge container, on the critical path and on the CPU the containers
share. The requests made per container are few and fixed (create a veth pair with its peer
already in the namespace, up, on the bridge; hairpin; an address and a default route; a link
down or deleted), so they are packed here with ``struct`` and sent in batches on one socket.
pyroute2 stays for the rare paths (bridges, listing routes).
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
from collections.abc import Sequence
from ipaddress import IPv4Address

__all__ = [
    "LinkEvents",
    "Rtnl",
    "RtnlError",
    "addr_add",
    "bridge_port_hairpin",
    "link_delete_index",
    "link_set_down",
    "link_set_up",
    "route_add_default",
    "veth_create",
]

NETLINK_ROUTE = 0
RTMGRP_LINK = 0x1
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_NEWROUTE = 20, 24
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
IFF_UP = 0x1

IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 4, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_DATA = 1, 2, 5
VETH_INFO_PEER = 1
IFLA_BRPORT_MODE = 4
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_OIF, RTA_GATEWAY = 4, 5
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1

_NLMSG = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTA = struct.Struct("=HH")
_ERR = struct.Struct("=i")


class RtnlError(OSError):
    """A request the kernel refused; ``errno`` as the kernel gave it."""


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    """One rtattr, padded."""
    raw = _RTA.pack(_RTA.size + len(payload), kind) + payload
    return raw + b"\0" * (_align(len(raw)) - len(raw))


def name_attr(kind: int, name: str) -> bytes:
    return attr(kind, name.encode() + b"\0")


def ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change)


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


class Rtnl:
    """One ``NETLINK_ROUTE`` socket: in the namespace it was created in, used from any thread
    (one at a time). :meth:`batch` sends several requests in one write and reads their acks."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE
        )
        self._seq = 0

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def _message(self, kind: int, flags: int, body: bytes) -> tuple[int, bytes]:
        self._seq += 1
        return self._seq, _NLMSG.pack(
            _NLMSG.size + len(body), kind, flags | NLM_F_REQUEST, self._seq, 0
        ) + body

    def batch(self, requests: Sequence[tuple[int, int, bytes]]) -> list[RtnlError | None]:
        """Send ``(type, flags, body)`` requests at once, each acked; their errors in order
        (None for success). The kernel runs them in order, each on its own."""
        seqs: dict[int, int] = {}
        out = bytearray()
        for position, (kind, flags, body) in enumerate(requests):
            seq, raw = self._message(kind, flags | NLM_F_ACK, body)
            seqs[seq] = position
            out += raw
        self.sock.send(out)
        results: list[RtnlError | None] = [None] * len(requests)
        while seqs:
            for kind, seq, payload in self._receive():
                position = seqs.pop(seq, -1) if kind == NLMSG_ERROR else -1
                if position < 0:
                    continue
                (code,) = _ERR.unpack_from(payload)
                if code:
                    results[position] = RtnlError(-code, os.strerror(-code))
        return results

    def request(self, kind: int, flags: int, body: bytes) -> None:
        """One acked request; raises :class:`RtnlError`."""
        (error,) = self.batch([(kind, flags, body)])
        if error is not None:
            raise error

    def _receive(self) -> list[tuple[int, int, bytes]]:
        data = self.sock.recv(65536)
        messages = []
        offset = 0
        while offset + _NLMSG.size <= len(data):
            length, kind, _flags, seq, _pid = _NLMSG.unpack_from(data, offset)
            if length < _NLMSG.size:
                break
            messages.append((kind, seq, data[offset + _NLMSG.size : offset + length]))
            offset += _align(length)
        return messages

    def link_index(self, name: str) -> int | None:
        """The index of link ``name`` in this socket's namespace, None when there is none."""
        seq, raw = self._message(RTM_GETLINK, 0, ifinfo() + name_attr(IFLA_IFNAME, name))
        self.sock.send(raw)
        while True:
            for kind, got, payload in self._receive():
                if got != seq:
                    continue
                if kind == NLMSG_ERROR:
                    (code,) = _ERR.unpack_from(payload)
                    if -code in (errno.ENODEV, errno.ENOENT):
                        return None
                    raise RtnlError(-code, os.strerror(-code))
                index: int = _IFINFO.unpack_from(payload)[2]
                return index

    def link_del(self, name: str) -> bool:
        """Delete link ``name``; False when there was none."""
        try:
            self.request(RTM_DELLINK, 0, ifinfo() + name_attr(IFLA_IFNAME, name))
        except RtnlError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):
                return False
            raise
        return True


class LinkEvents:
    """A subscription to the namespace's link changes (``RTMGRP_LINK``): :meth:`wait` sleeps
    until a link is added, changed or deleted, so a caller looks again only then instead of
    polling. Subscribe before the first look, and no change after it is missed."""

    def __init__(self) -> None:
        self.sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK, NETLINK_ROUTE
        )
        try:
            self.sock.bind((0, RTMGRP_LINK))
        except OSError:
            self.sock.close()
            raise
        self._poller = select.poll()
        self._poller.register(self.sock, select.POLLIN)

    def __enter__(self) -> LinkEvents:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.sock.close()

    def wait(self, timeout: float) -> bool:
        """True once some link changed (the notices are consumed), False after ``timeout`` s."""
        if not self._poller.poll(max(1, int(timeout * 1000) + 1)):
            return False
        while True:
            try:
                if not self.sock.recv(65536):
                    return True
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:  # ENOBUFS: notices overflowed, which says as much
                return True


def link_set_down(name: str) -> tuple[int, int, bytes]:
    return RTM_NEWLINK, 0, ifinfo(0, 0, IFF_UP) + name_attr(IFLA_IFNAME, name)


def link_delete_index(index: int) -> tuple[int, int, bytes]:
    """Delete link number ``index`` (and a veth's peer with it)."""
    return RTM_DELLINK, 0, ifinfo(index)


def link_set_up(index: int) -> tuple[int, int, bytes]:
    return RTM_NEWLINK, 0, ifinfo(index, IFF_UP, IFF_UP)


def veth_create(
    host_name: str,
    peer_name: str,
    *,
    peer_netns_fd: int,
    master: int,
    peer_mac: str | None = None,
    mtu: int | None = None,
) -> tuple[int, int, bytes]:
    """A veth pair: ``host_name`` up on bridge ``master``, its peer ``peer_name`` created
    directly in the namespace of ``peer_netns_fd`` (with ``peer_mac``). The peer cannot be made
    up in the same request (the pair is not linked yet when the kernel configures it)."""
    peer = ifinfo() + name_attr(IFLA_IFNAME, peer_name)
    peer += attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd))
    if peer_mac:
        peer += attr(IFLA_ADDRESS, mac_bytes(peer_mac))
    extra = b""
    if mtu:
        peer += attr(IFLA_MTU, struct.pack("=I", mtu))
        extra = attr(IFLA_MTU, struct.pack("=I", mtu))
    linkinfo = attr(IFLA_INFO_KIND, b"veth") + attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer))
    body = ifinfo(0, IFF_UP, IFF_UP) + name_attr(IFLA_IFNAME, host_name)
    body += attr(IFLA_MASTER, struct.pack("=I", master)) + extra + attr(IFLA_LINKINFO, linkinfo)
    return RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body


def bridge_port_hairpin(name: str) -> tuple[int, int, bytes]:
    """Hairpin mode on bridge port ``name`` (a container reaches its own published ports)."""
    slave = attr(IFLA_INFO_SLAVE_DATA, attr(IFLA_BRPORT_MODE, b"\1"))
    return RTM_NEWLINK, 0, ifinfo() + name_attr(IFLA_IFNAME, name) + attr(IFLA_LINKINFO, slave)


def addr_add(index: int, address: IPv4Address, prefixlen: int) -> tuple[int, int, bytes]:
    body = _IFADDR.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
    body += attr(IFA_LOCAL, address.packed) + attr(IFA_ADDRESS, address.packed)
    return RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body


def route_add_default(gateway: IPv4Address, oif: int) -> tuple[int, int, bytes]:
    body = _RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
    body += attr(RTA_GATEWAY, gateway.packed) + attr(RTA_OIF, struct.pack("=I", oif))
    return RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body

"""Published-port records and host port probing.

With DNAT nothing listens on the host port, so "is it free" is asked by binding a probe socket:
a bind that fails with EADDRINUSE means a host process owns the port. No socket is kept (an
engine may exit while its containers run), so nothing stops the kernel from handing a published
port to the next ``bind(port 0)`` or outgoing connection, whose traffic the DNAT rule would then
take. A random port for ``host_port=0`` is therefore drawn from *above* the kernel's automatic
range (``net.ipv4.ip_local_port_range``, 32768-60999 by default), which neither ``bind(0)``
nor ``connect()`` use; only when that range reaches 65535 does the kernel choose it. The nft
rule set itself is the durable record of what we published (see :mod:`containerkit.network.nat`).
"""

from __future__ import annotations

import errno
import random
import re
import socket
from ipaddress import IPv4Address
from pathlib import Path
from typing import Literal

from containerkit._model import model
from containerkit.errors import Conflict, InvalidArgument

__all__ = [
    "PublishedPort",
    "automatic_port_range",
    "check_owner",
    "normalize_host_ip",
    "pick_free_port",
    "probe_free",
]

_OWNER_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def check_owner(owner: str) -> str:
    if not isinstance(owner, str) or not _OWNER_RE.match(owner):
        raise InvalidArgument(f"invalid owner id {owner!r}: 1-64 of [A-Za-z0-9_.-]")
    return owner


@model(kw_only=True)
class PublishedPort:
    """What was actually published: random ports resolved, and who owns the rule."""

    owner: str
    protocol: Literal["tcp", "udp"]
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int

    @property
    def key(self) -> str:
        """docker's ``"80/tcp"`` key, as in ``container.ports``."""
        return f"{self.container_port}/{self.protocol}"

    @property
    def host(self) -> str:
        return f"{self.host_ip}:{self.host_port}/{self.protocol}"

    def comment(self) -> str:
        """Tag stored on the nft rule (at most 128 bytes), parsed back by :meth:`from_comment`."""
        return (
            f"port:{self.owner}:{self.host_ip}:{self.host_port}/{self.protocol}"
            f":{self.container_ip}:{self.container_port}"
        )

    @classmethod
    def from_comment(cls, text: str) -> PublishedPort | None:
        parts = text.split(":")
        if len(parts) != 6 or parts[0] != "port":
            return None
        _, owner, host_ip, port_proto, container_ip, container_port = parts
        host_port, _, protocol = port_proto.partition("/")
        if protocol not in ("tcp", "udp"):
            return None
        return cls(
            owner=owner,
            protocol=protocol,  # type: ignore[arg-type]
            host_ip=host_ip,
            host_port=int(host_port),
            container_ip=container_ip,
            container_port=int(container_port),
        )

    def overlaps(self, host_ip: str, host_port: int, protocol: str) -> bool:
        """Same port and protocol, and either side on 0.0.0.0 or both on the same address."""
        return (
            self.host_port == host_port
            and self.protocol == protocol
            and (self.host_ip == host_ip or "0.0.0.0" in (self.host_ip, host_ip))
        )


def _sock_type(protocol: str) -> int:
    return socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM


def _bind(host_ip: str, port: int, protocol: str) -> int:
    with socket.socket(socket.AF_INET, _sock_type(protocol)) as sock:
        if protocol == "tcp":
            # TIME_WAIT leftovers are no conflict; a listener still is
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host_ip, port))
        bound: int = sock.getsockname()[1]
        return bound


def probe_free(host_ip: str, port: int, protocol: str) -> None:
    """Raise Conflict naming ``host_ip:port/proto`` if a host socket holds it."""
    try:
        _bind(host_ip, port, protocol)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise Conflict(f"host port {host_ip}:{port}/{protocol} is already in use on the host") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise InvalidArgument(f"host ip {host_ip} is not an address of this host") from None
        raise Conflict(f"host port {host_ip}:{port}/{protocol} cannot be bound: {exc.strerror}") from None


_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_TOP_PORT = 65535


def automatic_port_range(path: Path = _PORT_RANGE) -> tuple[int, int]:
    """The kernel's range for ``bind(0)`` and outgoing connections (its default if unreadable)."""
    try:
        low, high = (int(x) for x in path.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def pick_free_port(host_ip: str, protocol: str, *, automatic: tuple[int, int] | None = None) -> int:
    """A port free on ``host_ip`` right now that the kernel will not hand out by itself: a random
    one above its automatic range, tried until one binds; the kernel's choice when that range
    leaves nothing above it."""
    _, high = automatic or automatic_port_range()
    above = range(high + 1, _TOP_PORT + 1)
    try:
        for port in random.sample(above, min(len(above), 64)):
            try:
                return _bind(host_ip, port, protocol)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
        return _bind(host_ip, 0, protocol)
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            raise InvalidArgument(f"host ip {host_ip} is not an address of this host") from None
        raise


def normalize_host_ip(host_ip: str) -> str:
    """``""`` -> ``"0.0.0.0"``; IPv6 host addresses are not supported yet."""
    if not host_ip:
        return "0.0.0.0"
    try:
        return str(IPv4Address(host_ip))
    except ValueError:
        raise InvalidArgument(f"host ip {host_ip!r}: only IPv4 addresses can be published") from None

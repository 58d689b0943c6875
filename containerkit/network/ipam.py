"""Address and subnet allocation: pure functions, the caller owns storage and locking."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network

from containerkit.errors import Conflict, InvalidArgument

__all__ = ["DEFAULT_POOL", "gateway_for", "next_free", "parse_subnet", "pick_subnet"]


def _pool() -> tuple[IPv4Network, ...]:
    """docker's default pools: 172.17-31.0.0/16, then 192.168.0.0/16 cut into /20s."""
    wide = tuple(IPv4Network(f"172.{n}.0.0/16") for n in range(17, 32))
    narrow = tuple(IPv4Network("192.168.0.0/16").subnets(new_prefix=20))
    return wide + narrow


DEFAULT_POOL: tuple[IPv4Network, ...] = _pool()


def parse_subnet(text: str | IPv4Network) -> IPv4Network:
    """``"10.89.0.0/24"`` -> network; host bits set or a too-small subnet is InvalidArgument."""
    if isinstance(text, IPv4Network):
        subnet = text
    else:
        try:
            subnet = IPv4Network(text)
        except ValueError as exc:
            raise InvalidArgument(f"invalid subnet {text!r}: {exc}") from None
    if subnet.prefixlen > 30:
        raise InvalidArgument(f"subnet {subnet} is too small (at most /30)")
    return subnet


def gateway_for(subnet: IPv4Network) -> IPv4Address:
    """The conventional gateway: the first host address."""
    return parse_subnet(subnet).network_address + 1


def next_free(subnet: IPv4Network, used: set[IPv4Address], gateway: IPv4Address | None) -> IPv4Address:
    """Lowest host address of ``subnet`` that is not ``used``, not the gateway, network or broadcast."""
    subnet = parse_subnet(subnet)
    taken = used | ({gateway} if gateway is not None else set())
    for address in subnet.hosts():
        if address not in taken:
            return address
    raise Conflict(f"no free address left in {subnet}")


def pick_subnet(
    existing: Iterable[IPv4Network],
    host_routes: Iterable[IPv4Network],
    pool: Sequence[IPv4Network] = DEFAULT_POOL,
) -> IPv4Network:
    """First pool subnet that overlaps neither our networks nor anything the host routes.

    ``host_routes`` comes from ``bridge.host_networks()``; a ``docker0`` there (172.17.0.0/16)
    moves us on to 172.18. Default routes (/0) are ignored.
    """
    busy = [n for n in (*existing, *host_routes) if n.prefixlen > 0]
    for candidate in pool:
        if not any(candidate.overlaps(n) for n in busy):
            return candidate
    raise Conflict("no free subnet left in the address pool: pass subnet= explicitly")

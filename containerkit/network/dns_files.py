"""Content of a container's ``/etc/resolv.conf`` and ``/etc/hosts``, as docker writes them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from ipaddress import IPv4Address, ip_address

from containerkit.errors import InvalidArgument

__all__ = ["hosts_file", "resolv_conf"]

_HOSTS_HEADER = (
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "ff00::0\tip6-mcastprefix",
    "ff02::1\tip6-allnodes",
    "ff02::2\tip6-allrouters",
)


def _usable_nameserver(text: str, ipv6: bool) -> bool:
    """Loopback resolvers (systemd-resolved's 127.0.0.53) are unreachable from a container's netns."""
    try:
        address = ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return not (address.is_loopback or (address.version == 6 and (not ipv6 or address.is_link_local)))


def resolv_conf(
    host_text: str,
    dns: Sequence[str],
    *,
    fallback: Sequence[str] = ("8.8.8.8", "8.8.4.4"),
    ipv6: bool = False,
) -> str:
    """The container's resolv.conf from the host's.

    ``dns`` (``--dns``) replaces the nameservers; otherwise the host's are kept minus loopback
    ones (and IPv6 ones unless ``ipv6``), and ``fallback`` is used when none is left. ``search``,
    ``domain`` and ``options`` lines are kept.
    """
    for server in dns:
        try:
            ip_address(server)
        except ValueError:
            raise InvalidArgument(f"dns: invalid nameserver address {server!r}") from None
    servers: list[str] = []
    kept: list[str] = []
    for raw in host_text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        words = line.split()
        if words[0] == "nameserver":
            if len(words) > 1 and _usable_nameserver(words[1], ipv6):
                servers.append(words[1])
        elif words[0] in ("search", "domain", "options"):
            kept.append(" ".join(words))
    if dns:
        servers = list(dns)
    elif not servers:
        servers = list(fallback)
    return "".join(f"nameserver {s}\n" for s in servers) + "".join(f"{k}\n" for k in kept)


def _check_name(name: str, what: str) -> str:
    if not name or any(c.isspace() or c == "#" for c in name):
        raise InvalidArgument(f"{what}: invalid host name {name!r}")
    return name


def _check_ip(value: str, what: str) -> str:
    try:
        return str(ip_address(value))
    except ValueError:
        raise InvalidArgument(f"{what}: invalid address {value!r}") from None


def hosts_file(
    hostname: str,
    ip: IPv4Address | str | None,
    extra_hosts: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    peers: Mapping[str, str] | None = None,
) -> str:
    """The container's ``/etc/hosts``: localhost, itself, ``extra_hosts`` then ``peers`` (name -> ip).

    ``hostname`` ``web.example.com`` is also listed as ``web``. Without an address (network none)
    the name goes on 127.0.0.1 so it still resolves.
    """
    names = [_check_name(hostname, "hostname")]
    if "." in hostname:
        names.append(hostname.split(".", 1)[0])
    lines = list(_HOSTS_HEADER)
    if ip is None:
        lines[0] += " " + " ".join(names)
    else:
        lines.append(f"{_check_ip(str(ip), 'hostname')}\t{' '.join(names)}")
    pairs = extra_hosts.items() if isinstance(extra_hosts, Mapping) else extra_hosts
    for name, address in pairs:
        lines.append(f"{_check_ip(address, 'extra_hosts')}\t{_check_name(name, 'extra_hosts')}")
    for name, address in sorted((peers or {}).items()):
        lines.append(f"{_check_ip(address, 'peers')}\t{_check_name(name, 'peers')}")
    return "\n".join(lines) + "\n"

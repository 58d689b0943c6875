"""Which server answers for a registry name, and whether it may be spoken to without verified TLS.

dockerd's rules: ``docker.io`` is served by ``registry-1.docker.io`` and is the only registry that
``registry_mirrors`` apply to (mirrors are tried first, for pulls only); ``127.0.0.0/8`` and ``::1``
are insecure by default, as is ``localhost`` here; other hosts only when ``insecure_registries``
names them (``host[:port]`` or a CIDR, as in daemon.json). "Insecure" means https with the
certificate unchecked first, then plain http.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from containerkit.errors import InvalidArgument
from containerkit.images.reference import DEFAULT_DOMAIN, ImageRef, parse_reference

if TYPE_CHECKING:
    from containerkit.images.registry.auth import RegistryOptions

__all__ = [
    "DOCKER_HUB_HOST",
    "Endpoint",
    "endpoints",
    "is_insecure",
    "is_loopback",
    "parse_insecure_entry",
    "parse_mirror",
    "reference_host",
    "registry_host",
    "split_host",
]

DOCKER_HUB_HOST = "registry-1.docker.io"
_HUB_NAMES = frozenset({DEFAULT_DOMAIN, "index.docker.io", DOCKER_HUB_HOST})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@attrs.frozen
class Endpoint:
    """One base URL to try (``https://host``), whether its certificate is checked, and if it is a mirror."""

    url: str
    verify_tls: bool = True
    mirror: bool = False

    @property
    def netloc(self) -> str:
        return urllib.parse.urlsplit(self.url).netloc


def split_host(host: str) -> tuple[str, int | None]:
    """``127.0.0.1:5000`` -> (``127.0.0.1``, 5000); ``[::1]:5000`` -> (``::1``, 5000)."""
    if host.startswith("["):
        inner, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return inner, int(port) if port.isdigit() else None
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        return name, int(port)
    return host, None


def _ip(name: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.0.0.0/8`` or ``::1``, with or without a port."""
    name, _ = split_host(host)
    if name.lower() == "localhost":
        return True
    address = _ip(name)
    return address is not None and address.is_loopback


def registry_host(domain: str) -> str:
    """The host that serves a reference's domain: ``docker.io`` is ``registry-1.docker.io``."""
    return DOCKER_HUB_HOST if domain in _HUB_NAMES else domain


def reference_host(reference: str | ImageRef) -> str:
    """The host serving a reference: ``busybox`` -> ``registry-1.docker.io`` (as
    ``docker.io/library/busybox``), ``127.0.0.1:5000/team/app:1`` -> ``127.0.0.1:5000``."""
    ref = parse_reference(reference) if isinstance(reference, str) else reference
    return registry_host(ref.domain)


def parse_insecure_entry(entry: str) -> str | IPNetwork:
    """A daemon.json ``insecure-registries`` entry: a CIDR, or ``host[:port]`` (a scheme is dropped)."""
    text = entry.strip()
    if "://" in text:
        text = urllib.parse.urlsplit(text).netloc
    text = text.rstrip("/")
    if not text:
        raise InvalidArgument(f"insecure registry {entry!r}: empty")
    if "/" in text:
        try:
            return ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise InvalidArgument(f"insecure registry {entry!r}: not a CIDR nor host[:port]: {exc}") from exc
    return text.lower()


def parse_mirror(url: str) -> str:
    """A ``registry-mirrors`` entry: an http(s) URL with a host and no path beyond ``/`` (as dockerd)."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidArgument(f"registry mirror {url!r}: must be an http:// or https:// URL with a host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidArgument(f"registry mirror {url!r}: must not contain a path, query or fragment")
    return f"{parts.scheme}://{parts.netloc}"


def _addresses(name: str) -> list[IPAddress]:
    address = _ip(name)
    if address is not None:
        return [address]
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    found = [_ip(str(info[4][0]).split("%", 1)[0]) for info in infos]
    return [a for a in found if a is not None]


def is_insecure(host: str, insecure_registries: Sequence[str] = ()) -> bool:
    """Whether ``host`` (``name[:port]``) may be spoken to without verified TLS.

    As dockerd's ``isSecureIndex``: loopback always; a listed ``host[:port]`` or bare hostname; a CIDR
    that holds the host's address (a name is resolved only when a CIDR is configured).
    """
    if is_loopback(host):
        return True
    name, _ = split_host(host)
    entries = [parse_insecure_entry(e) for e in insecure_registries]
    if host.lower() in entries or name.lower() in entries:
        return True
    networks = [e for e in entries if not isinstance(e, str)]
    if not networks:
        return False
    return any(address in net for address in _addresses(name) for net in networks)


def endpoints(domain: str, options: RegistryOptions, *, mirrors: bool = True) -> list[Endpoint]:
    """Base URLs to try for ``domain``: mirrors (docker.io only), https, then http when insecure."""
    found: list[Endpoint] = []
    host = registry_host(domain)
    if mirrors and host == DOCKER_HUB_HOST:
        for mirror in options.registry_mirrors:
            url = parse_mirror(mirror)
            insecure = is_insecure(urllib.parse.urlsplit(url).netloc, options.insecure_registries)
            found.append(Endpoint(url, verify_tls=not insecure, mirror=True))
    insecure = is_insecure(host, options.insecure_registries)
    found.append(Endpoint(f"https://{host}", verify_tls=not insecure))
    if insecure:
        found.append(Endpoint(f"http://{host}", verify_tls=False))
    return found

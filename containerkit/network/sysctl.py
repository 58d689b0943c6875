"""The few ``/proc/sys/net`` knobs the network layer turns, written only when they differ."""

from __future__ import annotations

from pathlib import Path

from containerkit.errors import ContainerkitError, NotFound

__all__ = ["enable_ip_forward", "read_sysctl", "set_route_localnet", "write_sysctl"]

_ROOT = Path("/proc/sys")


def read_sysctl(key: str) -> str:
    """``read_sysctl("net/ipv4/ip_forward")`` -> ``"1"``."""
    try:
        return (_ROOT / key).read_text().strip()
    except FileNotFoundError:
        raise NotFound(f"sysctl {key} does not exist") from None


def write_sysctl(key: str, value: str) -> None:
    if read_sysctl(key) == value:
        return
    try:
        (_ROOT / key).write_text(value)
    except OSError as exc:
        raise ContainerkitError(f"cannot set sysctl {key}={value}: {exc.strerror}") from exc


def enable_ip_forward() -> None:
    """Turn on IPv4 forwarding for the whole host (needed for outbound NAT and published ports).

    Never turned back off: other software may rely on it by then. Turning it on resets some
    per-interface defaults (e.g. ``accept_redirects``), as it does for docker.
    """
    write_sysctl("net/ipv4/ip_forward", "1")


def set_route_localnet(ifname: str) -> None:
    """Let 127.0.0.0/8 traffic be routed through ``ifname`` (DNAT of ``127.0.0.1:port`` to a bridge)."""
    write_sysctl(f"net/ipv4/conf/{ifname}/route_localnet", "1")

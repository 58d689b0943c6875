"""Interface-name rules shared by bridge, veth and NAT code."""

from __future__ import annotations

import re

from containerkit.errors import InvalidArgument

__all__ = ["check_ifname"]

# The kernel allows 15 bytes and no '/', ':' or whitespace; we also keep names safe to quote in nft.
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


def check_ifname(name: str) -> str:
    if not isinstance(name, str) or not _IFNAME_RE.match(name) or name in (".", ".."):
        raise InvalidArgument(f"invalid interface name {name!r}: 1-15 of [A-Za-z0-9_.-]")
    return name

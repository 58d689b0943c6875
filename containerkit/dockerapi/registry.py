"""Registry shapes of the Docker API: the ``X-Registry-Auth`` header a client sends, and the
``GET /distribution/{name}/json`` document both ways.

The header is docker's ``AuthConfig`` as JSON, base64url-encoded (docker-py and the CLI both
send it so; ``e30=`` is ``{}``, no credentials). Decoding it is the registry client's business
(``RegistryAuth.from_header``): the daemon uses only what the client sends.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from containerkit.errors import InvalidArgument
from containerkit.spec import RegistryData

__all__ = ["auth_header", "distribution_inspect", "registry_data_from_wire"]


def auth_header(
    *,
    username: str = "",
    password: str = "",
    identity_token: str = "",
    registry_token: str = "",
    server: str = "",
) -> str:
    """``X-Registry-Auth`` for these credentials (empty fields left out, as docker's ``omitempty``)."""
    fields = {
        "username": username,
        "password": password,
        "identitytoken": identity_token,
        "registrytoken": registry_token,
        "serveraddress": server,
    }
    body = json.dumps({k: v for k, v in fields.items() if v}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode()


def distribution_inspect(data: RegistryData) -> dict[str, Any]:
    """``GET /distribution/{name}/json``: the descriptor the tag points at and its platforms."""
    return {
        "Descriptor": {"mediaType": data.media_type, "digest": data.digest, "size": data.size},
        "Platforms": [dict(p) for p in data.platforms],
    }


def registry_data_from_wire(document: Mapping[str, Any]) -> RegistryData:
    """The daemon's distribution document back to :class:`RegistryData`."""
    descriptor = document.get("Descriptor")
    if not isinstance(descriptor, Mapping) or not isinstance(descriptor.get("digest"), str):
        raise InvalidArgument(f"distribution inspect: no Descriptor.digest in {dict(document)!r}")
    platforms = []
    for entry in document.get("Platforms") or ():
        if isinstance(entry, Mapping):
            platforms.append({str(k): str(v) for k, v in entry.items() if isinstance(v, str) and v})
    return RegistryData(
        digest=descriptor["digest"],
        media_type=str(descriptor.get("mediaType") or ""),
        size=int(descriptor.get("size") or 0),
        platforms=platforms,
    )

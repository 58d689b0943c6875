"""``POST /containers/create`` as the daemon takes it: :func:`containerkit.dockerapi.from_create_body`
translates the body; this adds the daemon's policy (what this engine can do, which settings
are warned about) and keeps docker's view of the body for inspect.
"""

from __future__ import annotations

from typing import Any

import attrs

from containerkit.daemon.errors import NotImplementedYet
from containerkit.dockerapi import from_create_body
from containerkit.dockerapi.body import Body
from containerkit.engine.frontend import parse_security_opt
from containerkit.spec import ContainerSpec

__all__ = ["CreateRequest", "create_request"]


@attrs.frozen(kw_only=True)
class CreateRequest:
    """What ``POST /containers/create`` asked for: the spec, and docker's view kept for inspect."""

    spec: ContainerSpec
    docker: dict[str, Any]
    warnings: list[str]


def create_request(raw: Any, name: str | None, *, networking: bool) -> CreateRequest:
    """Translate docker's create body (``Config`` fields plus ``HostConfig``/``NetworkingConfig``)."""
    spec = from_create_body(raw, name)
    host = Body(raw).obj("HostConfig")
    # dockerd's parseSecurityOpt errors; seccomp=<profile JSON> is what the docker CLI sends
    parse_security_opt(host.str_list("SecurityOpt") or [])
    warnings: list[str] = []
    if not networking:
        if spec.ports:
            raise NotImplementedYet(
                "port publishing needs networking, which this containerkit engine does not have yet"
            )
        if spec.network not in ("bridge", "none"):
            raise NotImplementedYet(
                f"network {spec.network!r}: networking is not available in this containerkit engine yet"
            )
        spec = attrs.evolve(spec, network="none", aliases=())
    docker = {
        "Config": {k: v for k, v in raw.items() if k.lower() not in ("hostconfig", "networkingconfig")},
        "HostConfig": raw.get("HostConfig") or {},
        "NetworkingConfig": raw.get("NetworkingConfig") or {},
    }
    return CreateRequest(spec=spec, docker=docker, warnings=warnings)

"""The daemon's side of registry credentials and settings.

dockerd never reads or writes its own ``config.json``: a pull or push uses the credentials the
client sends in ``X-Registry-Auth`` (docker's AuthConfig, base64url JSON), or none, and
``POST /auth`` only checks. A header that does not decode is ignored, as dockerd ignores it
"to increase compatibility". The engine is opened with ``config_credentials=False``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from containerkit import RegistryAuth, RegistryOptions
from containerkit.errors import InvalidArgument

if TYPE_CHECKING:
    from containerkit.daemon.config import DaemonConfig
    from containerkit.daemon.server import Request
    from containerkit.engine import Engine

__all__ = ["check_login", "registry_options", "request_auth"]

log = logging.getLogger("containerkit.daemon")


def registry_options(config: DaemonConfig) -> RegistryOptions:
    """The engine's registry settings from the daemon's config (TOML keys and flags)."""
    return RegistryOptions(
        insecure_registries=tuple(config.insecure_registries),
        registry_mirrors=tuple(config.registry_mirrors),
        max_concurrent_downloads=config.max_concurrent_downloads,
        max_concurrent_uploads=config.max_concurrent_uploads,
        config_credentials=False,
    )


def request_auth(request: Request) -> RegistryAuth | None:
    """The credentials of ``X-Registry-Auth``; None when absent, empty (``e30=``) or undecodable."""
    header = (request.headers.get("X-Registry-Auth") or "").strip()
    if not header:
        return None
    try:
        auth = RegistryAuth.from_header(header)
    except (InvalidArgument, ValueError) as exc:
        log.debug("ignoring an X-Registry-Auth header that does not decode: %s", exc)
        return None
    return None if auth.is_anonymous else auth


def check_login(engine: Engine, server: str, username: str, password: str) -> dict[str, Any]:
    """docker login's check against the registry, keeping nothing: ``POST /auth``'s answer,
    with the identity token the registry's token server gave (the client keeps that one in
    place of the password, as the docker CLI does)."""
    from containerkit.engine.registries import LOGIN_SUCCEEDED

    checked = engine.registries.check(server, username, password)
    return {"Status": LOGIN_SUCCEEDED, "IdentityToken": checked.identity_token}

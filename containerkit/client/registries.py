"""``client.registries``: docker login through the daemon, and the credentials a Client sends.

The daemon checks credentials (``POST /auth``) but never keeps them: like docker-py, a Client
remembers what logged in (in memory, for its own life) and sends it as ``X-Registry-Auth`` with
each pull and push to that registry. Credentials given to one call (``auth=``) win.
"""

from __future__ import annotations

import base64
import json
import threading
from typing import Any, Protocol

from containerkit.client._transport import Transport
from containerkit.dockerapi.registry import auth_header
from containerkit.errors import InvalidArgument

__all__ = ["AuthConfig", "Logins", "RegistryCollection", "registry_of", "server_key"]

DOCKER_HUB = "docker.io"
_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


class AuthConfig(Protocol):
    """docker's AuthConfig as :class:`containerkit.RegistryAuth` holds it."""

    @property
    def username(self) -> str: ...

    @property
    def password(self) -> str: ...

    @property
    def identity_token(self) -> str: ...

    @property
    def registry_token(self) -> str: ...


def server_key(server: str) -> str:
    """A login server as a key: ``127.0.0.1:5000``; docker.io for "" and docker's
    ``https://index.docker.io/v1/``."""
    host = server.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0]
    return DOCKER_HUB if not host or host in _HUB_NAMES else host


def registry_of(ref: str) -> str:
    """The registry of an image reference: its first part when that is a host, else docker.io."""
    first, sep, _rest = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return server_key(first)
    return DOCKER_HUB


class Logins:
    """The credentials this Client logged in with, per registry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_registry: dict[str, dict[str, str]] = {}

    def remember(self, server: str, fields: dict[str, str]) -> None:
        with self._lock:
            self._by_registry[server_key(server)] = fields

    def forget(self, server: str) -> bool:
        with self._lock:
            return self._by_registry.pop(server_key(server), None) is not None

    def get(self, server: str) -> dict[str, str] | None:
        with self._lock:
            fields = self._by_registry.get(server_key(server))
        return dict(fields) if fields is not None else None

    def header(self, ref: str, auth: AuthConfig | None) -> dict[str, str]:
        """``X-Registry-Auth`` for a pull or push of ``ref`` (none without credentials)."""
        registry = registry_of(ref)
        if auth is not None:
            fields = {
                "username": auth.username,
                "password": auth.password,
                "identity_token": auth.identity_token,
                "registry_token": auth.registry_token,
            }
        else:
            with self._lock:
                remembered = self._by_registry.get(registry)
            if remembered is None:
                return {}
            fields = dict(remembered)
        return {"X-Registry-Auth": auth_header(server=registry, **fields)}

    def config_header(self) -> dict[str, str]:
        """``X-Registry-Config`` for a build: every registry this Client logged in to, as
        docker's base64url JSON of server -> AuthConfig (its base images may come from any)."""
        with self._lock:
            remembered = {server: dict(fields) for server, fields in self._by_registry.items()}
        if not remembered:
            return {}
        config = {
            server: json.loads(base64.urlsafe_b64decode(auth_header(server=server, **fields)))
            for server, fields in remembered.items()
        }
        body = json.dumps(config, separators=(",", ":")).encode()
        return {"X-Registry-Config": base64.urlsafe_b64encode(body).decode()}


class RegistryCollection:
    """Log in to a registry through the daemon (it checks), log out (forget)."""

    def __init__(self, transport: Transport, logins: Logins) -> None:
        self._transport = transport
        self._logins = logins

    def login(self, server: str, username: str, password: str) -> str:
        """Check the credentials against ``server`` (the daemon asks the registry); on success
        this Client sends them with later pulls and pushes there. docker's status text."""
        if not username or not password:
            raise InvalidArgument(f"login to {server or DOCKER_HUB}: username and password are required")
        body: dict[str, Any] = {"username": username, "password": password, "serveraddress": server}
        answer = self._transport.post_json("/auth", body=body, timeout=None) or {}
        token = str(answer.get("IdentityToken") or "")
        fields = {"username": username, "password": password}
        if token:  # docker keeps the identity token in place of the password
            fields = {"username": username, "identity_token": token}
        self._logins.remember(server, fields)
        return str(answer.get("Status") or "Login Succeeded")

    def logout(self, server: str) -> bool:
        """Forget the credentials of ``server`` (the daemon kept none); False when there were none."""
        return self._logins.forget(server)

    def logged_in(self, server: str) -> dict[str, str] | None:
        """What this Client sends to ``server`` since its login (``username`` with ``password``
        or ``identity_token``); None without one. The CLI stores it as the docker CLI does."""
        return self._logins.get(server)

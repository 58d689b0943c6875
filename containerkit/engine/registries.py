"""``engine.registries``: ``docker login`` and ``docker logout`` for the in-process engine.

``login`` checks the credentials against the registry first (a Basic registry must accept them
on ``GET /v2/``, a token server must grant a token for them), then stores them where docker
keeps them (a credential helper when config.json names one, else config.json), so the next pull
or push, by this engine or by the docker CLI, finds them. An engine that reads no stored
credentials (``config_credentials=False``: the daemon's) stores none either: its login only
checks, as dockerd's ``POST /auth`` does. :meth:`RegistryCollection.check` and
:meth:`RegistryCollection.store` are the two halves (the CLI stores what a daemon checked).
"""

from __future__ import annotations

from collections.abc import Mapping

from containerkit.errors import InvalidArgument
from containerkit.images.reference import DEFAULT_DOMAIN
from containerkit.images.registry.auth import RegistryAuth, RegistryOptions
from containerkit.images.registry.credentials import CredentialStore

__all__ = ["RegistryCollection"]

LOGIN_SUCCEEDED = "Login Succeeded"


def _server_domain(server: str) -> str:
    """``https://index.docker.io/v1/``, ``127.0.0.1:5000`` or ``http://host:5000`` as a domain."""
    text = server.strip()
    if not text:
        raise InvalidArgument("registry server must not be empty")
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0]
    if text in ("index.docker.io", "registry-1.docker.io"):
        return DEFAULT_DOMAIN
    return text


class RegistryCollection:
    """Credentials for registries: checked by :meth:`login`, forgotten by :meth:`logout`."""

    def __init__(self, options: RegistryOptions, env: Mapping[str, str] | None = None) -> None:
        self.options = options
        self._env = env

    def _store(self) -> CredentialStore:
        return CredentialStore(self._env)

    def login(self, server: str, username: str, password: str) -> str:
        """Check ``username``/``password`` against ``server`` and, unless the options say this
        engine keeps no credentials, store them as docker does; docker's "Login Succeeded".
        ``Unauthorized`` when the registry refuses them."""
        checked = self.check(server, username, password)
        if self.options.config_credentials:
            self.store(server, checked)
        return LOGIN_SUCCEEDED

    def check(self, server: str, username: str, password: str) -> RegistryAuth:
        """Check ``username``/``password`` against ``server``, storing nothing (dockerd's
        ``POST /auth``); what docker would keep: the identity token in place of the password
        when the registry's token server gave one. ``Unauthorized`` when refused."""
        from containerkit.images.registry.transport import RegistryTransport  # the HTTP stack, on use

        domain = _server_domain(server or DEFAULT_DOMAIN)
        auth = RegistryAuth(username=username, password=password)
        with RegistryTransport(domain, auth=auth, options=self.options, mirrors=False) as transport:
            identity_token = transport.login()
        return auth if not identity_token else RegistryAuth(username=username, identity_token=identity_token)

    def store(self, server: str, auth: RegistryAuth) -> None:
        """Keep ``auth`` for ``server`` where docker keeps it, without asking the registry (the
        docker CLI stores what the daemon's ``/auth`` accepted)."""
        self._store().store(_server_domain(server or DEFAULT_DOMAIN), auth)

    def logout(self, server: str) -> bool:
        """Forget ``server``'s credentials; False when none were stored."""
        return self._store().erase(_server_domain(server or DEFAULT_DOMAIN))

    def credentials(self, domain: str) -> RegistryAuth | None:
        """What a pull or push from this engine uses when given no ``auth`` (None in the daemon)."""
        if not self.options.config_credentials:
            return None
        return self._store().get(domain)

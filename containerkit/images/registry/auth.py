"""Registry credentials and the Basic / Bearer token flow (distribution's token spec, docker's client).

``RegistryAuth`` is docker's AuthConfig (what ``X-Registry-Auth`` carries); ``RegistryOptions`` is
the daemon's registry configuration. ``Authorizer`` turns a registry's challenge into an
``Authorization`` header: Basic credentials as they are, or a Bearer token from the realm, asked for
anonymously or with credentials (GET with Basic, or the OAuth2 POST form with an identity token,
falling back to GET where the token server has no POST), cached per realm, service and scope set
until it expires (``expires_in``, 60 s when absent or smaller, from ``issued_at`` when given).

The realm is the registry's word, so it is checked before anything is sent to it (CVE-2020-15157,
go-containerregistry#2193): https, or http only when the registry itself is spoken to over http; a
loopback, private or link-local address only for a registry on the same kind of address; and
credentials cross plain http only to the registry's own host.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import ipaddress
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from containerkit.errors import InvalidArgument, RegistryError, Unauthorized
from containerkit.images.registry.challenge import Challenge, parse_challenges
from containerkit.images.registry.hosts import is_loopback, parse_insecure_entry, parse_mirror, split_host

if TYPE_CHECKING:  # loaded by the first request: an engine that starts containers never needs it
    import requests

__all__ = [
    "DEFAULT_TOKEN_LIFETIME",
    "Authorizer",
    "RegistryAuth",
    "RegistryOptions",
    "check_realm",
]

log = logging.getLogger("containerkit.registry")

DEFAULT_TOKEN_LIFETIME = 60
"""Seconds a token lives when the server gives no ``expires_in`` (and the least we assume)."""
_EXPIRY_MARGIN = 5
CLIENT_ID = "containerkit"
_TOKEN_USER = "<token>"  # docker's Username for an identity token in a credential helper


def _b64decode_lenient(text: str) -> bytes:
    """base64 or base64url, padding optional (docker-py and the docker CLI differ)."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    return base64.b64decode(cleaned, validate=True)


@attrs.frozen
class RegistryAuth:
    """Credentials for one registry, as docker's AuthConfig: a user and password, an identity (refresh)
    token from an earlier login, or a registry token used as the Bearer token as it is."""

    username: str = ""
    password: str = attrs.field(default="", repr=False)
    identity_token: str = attrs.field(default="", repr=False)
    registry_token: str = attrs.field(default="", repr=False)
    server_address: str = ""

    @property
    def is_anonymous(self) -> bool:
        return not (self.password or self.identity_token or self.registry_token)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RegistryAuth:
        """docker's AuthConfig JSON (field names matched case-insensitively, as Go's decoder does)."""
        fields = {str(k).lower(): v for k, v in data.items() if isinstance(v, str)}
        username = fields.get("username", "")
        password = fields.get("password", "")
        encoded = fields.get("auth", "")
        if encoded and not (username or password):
            try:
                username, _, password = _b64decode_lenient(encoded).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
                raise InvalidArgument(f"registry auth: 'auth' is not base64 'user:password': {exc}") from exc
        return cls(
            username=username,
            password=password,
            identity_token=fields.get("identitytoken", ""),
            registry_token=fields.get("registrytoken", ""),
            server_address=fields.get("serveraddress", ""),
        )

    @classmethod
    def from_header(cls, value: str) -> RegistryAuth:
        """Decode ``X-Registry-Auth``: base64url JSON (standard base64 and missing padding accepted).

        An empty header (or ``{}``) is anonymous. Anything else that does not decode is an
        ``InvalidArgument``; dockerd ignores a bad header on pull, which is the caller's choice.
        """
        if not value or not value.strip():
            return cls()
        try:
            data = json.loads(_b64decode_lenient(value))
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise InvalidArgument(f"X-Registry-Auth: not base64url-encoded JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidArgument(f"X-Registry-Auth: expected a JSON object, got {type(data).__name__}")
        return cls.from_json(data)

    def to_json(self) -> dict[str, str]:
        """docker's AuthConfig JSON, without empty fields."""
        out = {
            "username": self.username,
            "password": self.password,
            "identitytoken": self.identity_token,
            "registrytoken": self.registry_token,
            "serveraddress": self.server_address,
        }
        return {k: v for k, v in out.items() if v}

    def to_header(self) -> str:
        """``X-Registry-Auth`` as docker's clients send it (base64url of the JSON)."""
        return base64.urlsafe_b64encode(json.dumps(self.to_json()).encode()).decode()


def _as_tuple(value: Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _positive(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidArgument(f"registry options: {attribute.name} must be a positive integer, got {value!r}")


def _check_insecure(
    _instance: object, _attribute: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]
) -> None:
    for entry in value:
        parse_insecure_entry(entry)


def _check_mirrors(
    _instance: object, _attribute: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]
) -> None:
    for entry in value:
        parse_mirror(entry)


@attrs.frozen
class RegistryOptions:
    """The daemon's registry settings (daemon.json's names). ``config_credentials`` says whether the
    engine may read ``~/.docker/config.json`` and helpers: the daemon uses only what clients send."""

    insecure_registries: tuple[str, ...] = attrs.field(
        default=(), converter=_as_tuple, validator=_check_insecure
    )
    registry_mirrors: tuple[str, ...] = attrs.field(default=(), converter=_as_tuple, validator=_check_mirrors)
    max_concurrent_downloads: int = attrs.field(default=3, validator=_positive)
    max_concurrent_uploads: int = attrs.field(default=5, validator=_positive)
    config_credentials: bool = True


_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(name: str) -> _IPAddress | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def _local_kind(host: str) -> str | None:
    """``loopback``, ``private`` (RFC 1918, ULA, link-local) or ``None`` for a public name or address."""
    if is_loopback(host):
        return "loopback"
    name, _ = split_host(host)
    address = _address(name)
    if address is None:
        return None
    if address.is_link_local or address.is_private or address.is_unspecified or address.is_multicast:
        return "private"
    return None


def check_realm(realm: str, registry: str, *, registry_scheme: str) -> bool:
    """Check a token realm a registry named; True when credentials may be sent to it.

    ``registry`` is the registry's ``host[:port]`` and ``registry_scheme`` the scheme it is spoken to
    with. Raises ``RegistryError`` for a realm nothing may be sent to.
    """
    parts = urllib.parse.urlsplit(realm)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistryError(f"registry {registry}: token realm {realm!r} is not an http(s) URL")
    if parts.scheme == "http" and registry_scheme != "http":
        raise RegistryError(
            f"registry {registry}: refusing plain-http token realm {realm!r} of an https registry"
        )
    realm_host = parts.netloc.rpartition("@")[2]
    realm_name = (parts.hostname or "").lower()
    registry_name = split_host(registry)[0].lower()
    realm_kind = _local_kind(realm_host)
    if realm_kind is not None and realm_host.lower() != registry.lower():
        registry_kind = _local_kind(registry)
        allowed = registry_kind == "loopback" or (realm_kind == "private" and registry_kind == "private")
        if realm_kind == "loopback":
            allowed = registry_kind == "loopback"
        if not allowed:
            raise RegistryError(
                f"registry {registry}: refusing token realm {realm!r}: a {realm_kind} address "
                f"is accepted only from a registry on one"
            )
    return parts.scheme == "https" or realm_name == registry_name


def _parse_time(text: object) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.timestamp()


def _details(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200] or response.reason
    if isinstance(body, dict):
        for key in ("details", "message", "error_description", "error"):
            if isinstance(body.get(key), str):
                return str(body[key])
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message", errors[0]))
    return json.dumps(body)[:200]


@attrs.define
class _Token:
    value: str
    expires_at: float


class Authorizer:
    """The ``Authorization`` for one registry endpoint, from its challenge and the credentials.

    Thread-safe: concurrent downloads share one; a token is fetched once per scope set.
    """

    def __init__(
        self,
        session: requests.Session,
        registry: str,
        auth: RegistryAuth | None,
        *,
        scheme: str,
        verify_tls: bool = True,
        timeout: float = 30.0,
    ) -> None:
        self.session = session
        self.registry = registry
        self.auth = auth or RegistryAuth()
        self.scheme = scheme
        self.verify_tls = verify_tls
        """Whether the token server's certificate is checked: not for an insecure registry's own host,
        as dockerd's token requests share the registry's TLS settings."""
        self.timeout = timeout
        self.challenges: list[Challenge] = []
        self.refresh_token: str | None = None
        """A refresh token the token server gave (``offline_token``), docker's identity token."""
        self._tokens: dict[tuple[str, str, tuple[str, ...]], _Token] = {}
        self._lock = threading.Lock()

    def learn(self, header: str | None) -> list[Challenge]:
        """Take the challenges of a 401's ``WWW-Authenticate``; returns them."""
        parsed = parse_challenges(header or "")
        known = [c for c in parsed if c.scheme in ("basic", "bearer")]
        if known:
            self.challenges = known
        return parsed

    @property
    def bearer(self) -> Challenge | None:
        return next((c for c in self.challenges if c.scheme == "bearer"), None)

    def header(self, scopes: Sequence[str], *, offline: bool = False) -> str | None:
        """The ``Authorization`` value for a request needing ``scopes`` (None: send none)."""
        if self.auth.registry_token:
            return f"Bearer {self.auth.registry_token}"
        bearer = self.bearer
        if bearer is None:
            if any(c.scheme == "basic" for c in self.challenges) and (
                self.auth.username or self.auth.password
            ):
                raw = f"{self.auth.username}:{self.auth.password}".encode()
                return "Basic " + base64.b64encode(raw).decode()
            return None
        realm = bearer.get("realm")
        if not realm:
            raise RegistryError(f"registry {self.registry}: Bearer challenge without a realm")
        service = bearer.get("service")
        key = (realm, service, tuple(sorted(set(scopes))))
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and not offline and time.time() < cached.expires_at - _EXPIRY_MARGIN:
                return f"Bearer {cached.value}"
            token = self._fetch(realm, service, key[2], offline=offline)
            self._tokens[key] = token
            return f"Bearer {token.value}"

    def invalidate(self, scopes: Sequence[str]) -> None:
        """Forget cached tokens for ``scopes`` (after ``invalid_token`` / ``insufficient_scope``)."""
        wanted = tuple(sorted(set(scopes)))
        with self._lock:
            for key in [k for k in self._tokens if k[2] == wanted]:
                del self._tokens[key]

    def _fetch(self, realm: str, service: str, scopes: tuple[str, ...], *, offline: bool) -> _Token:
        send_credentials = check_realm(realm, self.registry, registry_scheme=self.scheme)
        auth = self.auth
        has_password = bool(auth.username and auth.password)
        if not send_credentials and not auth.is_anonymous:
            log.warning(
                "registry %s: token realm %s gets no credentials (plain http to another host)",
                self.registry,
                realm,
            )
        response: requests.Response | None = None
        if send_credentials and auth.identity_token:
            response = self._post(realm, service, scopes, grant="refresh_token")
            if response.status_code in (404, 405):
                response = None  # no OAuth2 POST there (GCR, old token servers): GET below
        if response is None:
            params: list[tuple[str, str]] = [("client_id", CLIENT_ID)]
            if service:
                params.append(("service", service))
            params.extend(("scope", s) for s in scopes)
            basic: tuple[str, str] | None = None
            if send_credentials and has_password:
                basic = (auth.username, auth.password)
            elif send_credentials and auth.identity_token:
                basic = (auth.username or _TOKEN_USER, auth.identity_token)
            if basic is not None:
                params.append(("account", basic[0]))
                if offline:
                    params.append(("offline_token", "true"))
            response = self._send("GET", realm, params=params, auth=basic)
        return self._parse(realm, response, anonymous=not send_credentials or auth.is_anonymous)

    def _post(self, realm: str, service: str, scopes: tuple[str, ...], *, grant: str) -> requests.Response:
        form = {
            "grant_type": grant,
            "client_id": CLIENT_ID,
            "access_type": "offline",
            "refresh_token": self.auth.identity_token,
        }
        if service:
            form["service"] = service
        if scopes:
            form["scope"] = " ".join(scopes)
        return self._send("POST", realm, data=form)

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        import requests

        try:
            same_host = urllib.parse.urlsplit(url).hostname == split_host(self.registry)[0]
            verify = self.verify_tls or not same_host
            return self.session.request(
                method, url, timeout=self.timeout, allow_redirects=False, verify=verify, **kwargs
            )
        except requests.RequestException as exc:
            raise RegistryError(f"registry {self.registry}: token server {url} unreachable: {exc}") from exc

    def _parse(self, realm: str, response: requests.Response, *, anonymous: bool) -> _Token:
        if response.status_code in (401, 403):
            who = (
                "an anonymous token"
                if anonymous
                else f"the credentials of {self.auth.username or 'the user'!r}"
            )
            raise Unauthorized(
                f"registry {self.registry}: token server {realm} refused {who}: {_details(response)}"
            )
        if response.status_code != 200:
            raise RegistryError(
                f"registry {self.registry}: token server {realm} answered {response.status_code}: "
                f"{_details(response)}",
                registry_status=response.status_code,
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise RegistryError(
                f"registry {self.registry}: token server {realm} sent no JSON: {exc}"
            ) from exc
        value = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            raise RegistryError(f"registry {self.registry}: token server {realm} sent no token")
        lifetime = body.get("expires_in")
        if not isinstance(lifetime, int | float) or lifetime < DEFAULT_TOKEN_LIFETIME:
            lifetime = DEFAULT_TOKEN_LIFETIME
        now = time.time()
        issued = _parse_time(body.get("issued_at"))
        if issued is None or abs(issued - now) > 300:
            issued = now  # no issued_at, or a clock too far off to trust
        refresh = body.get("refresh_token")
        if isinstance(refresh, str) and refresh:
            self.refresh_token = refresh
        return _Token(value, issued + float(lifetime))

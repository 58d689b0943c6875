"""Credentials where docker and podman keep them, read and written as ``docker login``/``logout`` do.

Lookup for a registry, first hit wins: ``DOCKER_AUTH_CONFIG`` (JSON with ``auths``, as the newest
docker CLI and testcontainers read it); ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``
(``credHelpers[key]``, else ``credsStore``, else ``auths[key]``); then podman's ``auth.json``
(``$REGISTRY_AUTH_FILE``, ``$XDG_RUNTIME_DIR/containers/auth.json``, ``~/.config/containers/auth.json``).

The key is docker's: ``https://index.docker.io/v1/`` for Docker Hub, ``host[:port]`` otherwise;
legacy keys with a scheme or a path (``https://host/v1/``) match by host. A helper is
``docker-credential-<name>`` on PATH, spoken to as docker does: ``get``/``erase`` read the server on
stdin, ``store`` reads ``{"ServerURL","Username","Secret"}``, a Username of ``<token>`` means the
Secret is an identity token, and "credentials not found" is a miss, not an error.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from containerkit.errors import InvalidArgument, NotFound, Unavailable
from containerkit.images.registry.auth import RegistryAuth

__all__ = [
    "DOCKER_HUB_KEY",
    "CredentialHelper",
    "CredentialStore",
    "auth_key",
    "config_dir",
]

log = logging.getLogger("containerkit.registry")

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_TOKEN_USER = "<token>"
_NOT_FOUND = "credentials not found in native keychain"
_HELPER_TIMEOUT = 30


def _hostname(server: str) -> str:
    """docker's ``ConvertToHostname``: drop a scheme and any path."""
    text = server.strip()
    if "://" in text:
        text = urllib.parse.urlsplit(text).netloc or text.split("://", 1)[1]
    return text.split("/", 1)[0].lower()


def auth_key(server: str) -> str:
    """config.json's key for a registry: ``https://index.docker.io/v1/`` for Docker Hub, else host[:port]."""
    host = _hostname(server)
    if not host:
        raise InvalidArgument(f"registry server {server!r}: no host in it")
    return DOCKER_HUB_KEY if host in _HUB_HOSTS else host


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$DOCKER_CONFIG`` or ``~/.docker``."""
    env = os.environ if env is None else env
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"])
    return Path(env.get("HOME") or Path.home()) / ".docker"


def _decode_entry(entry: Mapping[str, Any], server: str) -> RegistryAuth | None:
    if not isinstance(entry, Mapping):
        return None
    username = str(entry.get("username") or "")
    password = str(entry.get("password") or "")
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            username, _, password = (
                base64.b64decode(encoded + "=" * (-len(encoded) % 4)).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise InvalidArgument(
                f"credentials for {server}: 'auth' is not base64 'user:password': {exc}"
            ) from exc
    identity = str(entry.get("identitytoken") or "")
    registry_token = str(entry.get("registrytoken") or "")
    if not (password or identity or registry_token):
        return None
    return RegistryAuth(
        username=username,
        password=password,
        identity_token=identity,
        registry_token=registry_token,
        server_address=server,
    )


def _match(auths: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    """``auths[key]``, else the entry whose key is the same host (legacy ``https://host/v1/`` keys)."""
    if key in auths:
        return auths[key]  # type: ignore[no-any-return]
    host = _hostname(key)
    for candidate, entry in auths.items():
        other = _hostname(candidate)
        if other == host or (host in _HUB_HOSTS and other in _HUB_HOSTS):
            return entry  # type: ignore[no-any-return]
    return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise Unavailable(f"cannot read {path}: {exc}") from exc
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidArgument(f"{path}: expected a JSON object")
    return data


class CredentialHelper:
    """``docker-credential-<name>``, spoken to over stdin/stdout."""

    def __init__(self, name: str, env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.program = f"docker-credential-{name}"
        self.env = dict(os.environ if env is None else env)

    def _run(self, action: str, payload: str) -> str:
        binary = shutil.which(self.program, path=self.env.get("PATH"))
        if binary is None:
            raise Unavailable(f"credential helper {self.program} not found on PATH")
        try:
            done = subprocess.run(
                [binary, action],
                input=payload,
                capture_output=True,
                text=True,
                env=self.env,
                timeout=_HELPER_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Unavailable(f"credential helper {self.program} {action} failed: {exc}") from exc
        if done.returncode != 0:
            message = (done.stdout.strip() or done.stderr.strip())[:500]
            if _NOT_FOUND in message.lower():
                raise NotFound(f"{self.program}: {message}")
            raise Unavailable(
                f"credential helper {self.program} {action} exited {done.returncode}: {message}"
            )
        return done.stdout

    def get(self, server: str) -> RegistryAuth | None:
        try:
            out = self._run("get", server)
        except NotFound:
            return None
        try:
            data = json.loads(out)
        except ValueError as exc:
            raise Unavailable(f"credential helper {self.program} get: not JSON: {exc}") from exc
        username, secret = str(data.get("Username") or ""), str(data.get("Secret") or "")
        if not secret:
            return None
        if username == _TOKEN_USER:
            return RegistryAuth(identity_token=secret, server_address=server)
        return RegistryAuth(username=username, password=secret, server_address=server)

    def store(self, server: str, auth: RegistryAuth) -> None:
        if auth.identity_token:
            username, secret = _TOKEN_USER, auth.identity_token
        else:
            username, secret = auth.username, auth.password
        self._run("store", json.dumps({"ServerURL": server, "Username": username, "Secret": secret}))

    def erase(self, server: str) -> None:
        with contextlib.suppress(NotFound):
            self._run("erase", server)

    def list(self) -> dict[str, str]:
        data = json.loads(self._run("list", "") or "{}")
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


class CredentialStore:
    """Docker's (and podman's) credential files and helpers for this process's user."""

    def __init__(self, env: Mapping[str, str] | None = None, *, directory: Path | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self.directory = directory or config_dir(self.env)

    @property
    def config_path(self) -> Path:
        return self.directory / "config.json"

    def _podman_files(self) -> Iterator[Path]:
        if self.env.get("REGISTRY_AUTH_FILE"):
            yield Path(self.env["REGISTRY_AUTH_FILE"])
        if self.env.get("XDG_RUNTIME_DIR"):
            yield Path(self.env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json"
        home = Path(self.env.get("HOME") or Path.home())
        yield home / ".config" / "containers" / "auth.json"

    def _helper_for(self, config: Mapping[str, Any], key: str) -> str | None:
        helpers = config.get("credHelpers")
        if isinstance(helpers, Mapping):
            host = _hostname(key)
            hub = key == DOCKER_HUB_KEY
            same = [k for k in helpers if _hostname(k) == host or (hub and _hostname(k) in _HUB_HOSTS)]
            for name in (key, host, *same):
                if isinstance(helpers.get(name), str) and helpers[name]:
                    return str(helpers[name])
        store = config.get("credsStore")
        return str(store) if isinstance(store, str) and store else None

    def get(self, server: str) -> RegistryAuth | None:
        """Credentials for ``server`` (a domain, ``host:port`` or a docker config key), or None."""
        key = auth_key(server)
        env_config = self.env.get("DOCKER_AUTH_CONFIG")
        if env_config:
            try:
                data = json.loads(env_config)
            except ValueError as exc:
                raise InvalidArgument(f"DOCKER_AUTH_CONFIG: not valid JSON: {exc}") from exc
            entry = _match(data.get("auths") or {}, key) if isinstance(data, dict) else None
            found = _decode_entry(entry, key) if entry is not None else None
            if found is not None:
                return found
        config = _read_json(self.config_path)
        helper = self._helper_for(config, key)
        if helper is not None:
            try:
                return CredentialHelper(helper, self.env).get(key)
            except Unavailable as exc:
                # docker stops here; a pull of a public image should not, so say why and go on anonymously
                log.warning("%s; going on without credentials for %s", exc, key)
                return None
        entry = _match(config.get("auths") or {}, key)
        if entry is not None:
            found = _decode_entry(entry, key)
            if found is not None:
                return found
        for path in self._podman_files():
            podman = _read_json(path)
            entry = _match(podman.get("auths") or {}, key)
            if entry is not None:
                found = _decode_entry(entry, key)
                if found is not None:
                    return found
        return None

    def store(self, server: str, auth: RegistryAuth) -> None:
        """Save as ``docker login`` does: to the helper when one is configured (config.json keeps an
        empty entry for the key), else base64 ``auth`` (and ``identitytoken``) in config.json."""
        key = auth_key(server)
        config = _read_json(self.config_path)
        auths = config.setdefault("auths", {})
        if not isinstance(auths, dict):
            raise InvalidArgument(f"{self.config_path}: 'auths' is not an object")
        helper = self._helper_for(config, key)
        if helper is not None:
            CredentialHelper(helper, self.env).store(key, auth)
            auths[key] = {}
        else:
            entry: dict[str, str] = {}
            if auth.username or auth.password:
                raw = f"{auth.username}:{'' if auth.identity_token else auth.password}"
                entry["auth"] = base64.b64encode(raw.encode()).decode()
            if auth.identity_token:
                entry["identitytoken"] = auth.identity_token
            auths[key] = entry
        self._write(config)

    def erase(self, server: str) -> bool:
        """Forget ``server``'s credentials as ``docker logout`` does; False when there were none."""
        key = auth_key(server)
        config = _read_json(self.config_path)
        helper = self._helper_for(config, key)
        if helper is not None:
            CredentialHelper(helper, self.env).erase(key)
        auths = config.get("auths")
        removed = False
        if isinstance(auths, dict):
            host = _hostname(key)
            for candidate in [k for k in auths if k == key or _hostname(k) == host]:
                del auths[candidate]
                removed = True
        if removed:
            self._write(config)
        return removed or helper is not None

    def _write(self, config: Mapping[str, Any]) -> None:
        """Atomically: a 0600 temp file beside config.json (the symlink's target, if it is one), fsynced
        and renamed over it; unknown keys are kept as they were read."""
        target = Path(os.path.realpath(self.config_path))
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".config.json.", dir=target.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                os.fchmod(handle.fileno(), 0o600)
                json.dump(config, handle, indent="\t")
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

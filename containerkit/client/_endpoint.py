"""Where the daemon is: parsing ``unix://`` / ``tcp://`` addresses, the ``from_env`` search order,
and turning a failed connect into a message that says what to do.

Pure stdlib (``os``, ``socket``): the diagnosis probes the socket itself, so it does not depend
on how requests happens to wrap the underlying ``OSError`` this release.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import socket
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import attrs

from containerkit.errors import InvalidArgument

__all__ = [
    "DEFAULT_SOCKET",
    "Endpoint",
    "TLSConfig",
    "describe_connect_failure",
    "endpoint_from_env",
    "parse_host",
]

DEFAULT_SOCKET = "/run/containerkit/containerkit.sock"
USER_SOCKET = "containerkit/containerkit.sock"  # under $XDG_RUNTIME_DIR
DEFAULT_TLS_PORT = 2376
DEFAULT_PLAIN_PORT = 2375


@attrs.frozen
class TLSConfig:
    """Mutual TLS: the CA that signed the daemon's certificate, and our client certificate and key."""

    ca: str
    cert: str
    key: str

    @classmethod
    def from_dir(cls, directory: str | os.PathLike[str]) -> TLSConfig:
        """docker's layout: ``ca.pem``, ``cert.pem``, ``key.pem`` in one directory."""
        base = Path(directory)
        return cls(str(base / "ca.pem"), str(base / "cert.pem"), str(base / "key.pem"))


@attrs.frozen
class Endpoint:
    """One daemon address. ``also_tried`` lists default sockets that were looked at and absent."""

    scheme: Literal["unix", "tcp"]
    path: str = ""
    host: str = ""
    port: int = 0
    tls: TLSConfig | None = None
    also_tried: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        return f"tcp://{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.url


def parse_host(
    base_url: str, *, tls: TLSConfig | tuple[str, str, str] | None = None, also_tried: tuple[str, ...] = ()
) -> Endpoint:
    """``unix:///path``, a bare ``/path``, ``tcp://host:port``, ``http(s)://host:port``."""
    tls_config = TLSConfig(*tls) if isinstance(tls, tuple) else tls
    text = base_url.strip()
    if text.startswith("/"):
        text = "unix://" + text
    parts = urlsplit(text)
    if parts.scheme in ("unix", "http+unix"):
        path = parts.path or parts.netloc
        if not path.startswith("/"):
            raise InvalidArgument(f"daemon address {base_url!r}: a unix socket needs an absolute path")
        return Endpoint("unix", path=path, also_tried=also_tried)
    if parts.scheme in ("tcp", "http", "https"):
        if not parts.hostname:
            raise InvalidArgument(f"daemon address {base_url!r}: no host")
        port = parts.port or (
            DEFAULT_TLS_PORT if tls_config or parts.scheme == "https" else DEFAULT_PLAIN_PORT
        )
        return Endpoint("tcp", host=parts.hostname, port=port, tls=tls_config)
    raise InvalidArgument(
        f"daemon address {base_url!r}: unsupported scheme {parts.scheme!r} (use unix:///path or tcp://host:port)"
    )


def endpoint_from_env(env: Mapping[str, str] | None = None) -> Endpoint:
    """The daemon address from the environment; see :meth:`containerkit.client.Client.from_env`."""
    env = os.environ if env is None else env
    for variable, prefix in (("CONTAINERKIT_HOST", "CONTAINERKIT"), ("DOCKER_HOST", "DOCKER")):
        value = env.get(variable, "").strip()
        if value:
            return parse_host(value, tls=_tls_from_env(env, prefix))
    candidates = []
    runtime_dir = env.get("XDG_RUNTIME_DIR", "").strip()
    if runtime_dir:
        candidates.append(str(Path(runtime_dir) / USER_SOCKET))
    candidates.append(DEFAULT_SOCKET)
    for path in candidates:
        if _is_socket(path):
            return Endpoint("unix", path=path)
    return Endpoint("unix", path=candidates[-1], also_tried=tuple(candidates[:-1]))


def _tls_from_env(env: Mapping[str, str], prefix: str) -> TLSConfig | None:
    cert_path = env.get(f"{prefix}_CERT_PATH", "").strip()
    verify = env.get(f"{prefix}_TLS_VERIFY", "").strip() not in ("", "0", "false", "no")
    if not cert_path and not verify:
        return None
    return TLSConfig.from_dir(cert_path or Path.home() / ".docker")


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


_WHAT_TO_DO = (
    "start containerkitd (containerkitd --host unix://{path}), or set CONTAINERKIT_HOST to its address"
)


def describe_connect_failure(endpoint: Endpoint, error: BaseException | None = None) -> str:
    """Why nothing answers at ``endpoint``, found by probing it, and what to do about it."""
    if endpoint.scheme == "tcp":
        return _describe_tcp(endpoint, error)
    path = endpoint.path
    todo = _WHAT_TO_DO.format(path=path)
    tried = f" (also looked for {', '.join(endpoint.also_tried)})" if endpoint.also_tried else ""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"no containerkitd socket at {path}{tried}: {todo}"
    except PermissionError:
        return (
            f"cannot reach the containerkitd socket {path}: permission denied on a parent directory; {todo}"
        )
    if not stat.S_ISSOCK(st.st_mode):
        return f"{path} exists but is not a unix socket: {todo}"
    probe_errno = _probe_unix(path)
    if probe_errno in (errno.EACCES, errno.EPERM):
        return (
            f"permission denied on the containerkitd socket {path} "
            f"(mode {stat.S_IMODE(st.st_mode):04o}, owner {_owner(st)}): "
            f"run as root or as a member of group {_group(st)}"
        )
    if probe_errno == errno.ECONNREFUSED:
        return f"nothing listens on {path} (a stale socket left by a daemon that exited?): {todo}"
    if probe_errno is None:
        detail = f": {error}" if error is not None else ""
        return f"the connection to containerkitd at {path} failed{detail}"
    return f"cannot connect to containerkitd at {path}: {os.strerror(probe_errno)}; {todo}"


def _describe_tcp(endpoint: Endpoint, error: BaseException | None) -> str:
    where = f"{endpoint.host}:{endpoint.port}"
    detail = f" ({error})" if error is not None else ""
    return (
        f"no containerkitd answers at tcp://{where}{detail}: start it with "
        f"--host tcp://{where} --tlsverify, check the TLS files, or set CONTAINERKIT_HOST"
    )


def _probe_unix(path: str) -> int | None:
    """The errno of a fresh connect to ``path``, or None when it connects."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(path)
    except OSError as exc:
        return exc.errno if exc.errno is not None else errno.EIO
    finally:
        probe.close()
    return None


def _owner(st: os.stat_result) -> str:
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    return f"{user}:{_group(st)}"


def _group(st: os.stat_result) -> str:
    try:
        return grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        return str(st.st_gid)

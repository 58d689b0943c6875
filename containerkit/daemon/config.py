"""containerkitd's settings: command-line flags, or the same keys in a TOML file (flags win).

TCP is served only with mutual TLS (``tlsverify`` plus CA, certificate and key); plain TCP is
refused unless ``insecure-tcp`` is set *and* the address is loopback, because the API is root
on the host for whoever reaches it.
"""

from __future__ import annotations

import argparse
import ipaddress
import ssl
import tomllib
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from containerkit.daemon.activation import for_us
from containerkit.errors import InvalidArgument

__all__ = [
    "ACTIVATED",
    "DEFAULT_HOST",
    "DEFAULT_LOG_FILE",
    "DEFAULT_PIDFILE",
    "DaemonConfig",
    "Listen",
    "load_config",
    "parser",
    "tls_context",
]

DEFAULT_HOST = "unix:///run/containerkit/containerkit.sock"
DEFAULT_ROOT = "/var/lib/containerkit"
DEFAULT_PIDFILE = "/run/containerkitd.pid"
DEFAULT_LOG_FILE = "/var/log/containerkit/containerkitd.log"
ACTIVATED = "fd://"
"""``-H fd://``: serve the sockets systemd passed (socket activation), as dockerd's ``-H fd://``."""
_KEYS = {
    "root",
    "host",
    "hosts",
    "tlsverify",
    "tlscacert",
    "tlscert",
    "tlskey",
    "group",
    "detach",
    "pidfile",
    "insecure-tcp",
    "log-level",
    "log-file",
    "default-pids-limit",
    "userns-remap",
    "insecure-registries",
    "registry-mirrors",
    "max-concurrent-downloads",
    "max-concurrent-uploads",
    "keep-layer-blobs",
}


@attrs.frozen(kw_only=True)
class Listen:
    """One address: ``unix`` with a path, or ``tcp`` with host and port."""

    scheme: str
    path: str = ""
    host: str = ""
    port: int = 0

    @classmethod
    def parse(cls, text: str) -> Listen:
        if text == ACTIVATED:
            return cls(scheme="fd")
        parsed = urllib.parse.urlsplit(text if "://" in text else f"unix://{text}")
        if parsed.scheme == "unix":
            path = (parsed.netloc + parsed.path) or ""
            if not path.startswith("/"):
                raise InvalidArgument(f"--host {text}: a unix socket needs an absolute path")
            return cls(scheme="unix", path=path)
        if parsed.scheme == "tcp":
            if not parsed.hostname or parsed.port is None:
                raise InvalidArgument(f"--host {text}: expected tcp://ADDRESS:PORT")
            return cls(scheme="tcp", host=parsed.hostname, port=parsed.port)
        raise InvalidArgument(f"--host {text}: only unix://, tcp:// and fd:// are supported")

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        if self.scheme == "fd":
            return ACTIVATED
        return f"unix://{self.path}" if self.scheme == "unix" else f"tcp://{self.host}:{self.port}"


@attrs.frozen(kw_only=True)
class DaemonConfig:
    root: Path = Path(DEFAULT_ROOT)
    hosts: tuple[Listen, ...] = (Listen.parse(DEFAULT_HOST),)
    tlsverify: bool = False
    tlscacert: Path | None = None
    tlscert: Path | None = None
    tlskey: Path | None = None
    group: str | None = None
    detach: bool = False
    pidfile: Path | None = None
    insecure_tcp: bool = False
    log_level: str = "info"
    # None: stderr in the foreground, DEFAULT_LOG_FILE when detached
    log_file: Path | None = None
    # A container whose create body sets no PidsLimit gets this one (Podman's); 0 or -1: none.
    default_pids_limit: int = 2048
    # docker's userns-remap: "default" (the containerkit range of /etc/subuid and /etc/subgid,
    # created when missing) or a name with entries there; containers get a user namespace
    userns_remap: str | None = None
    # dockerd's registry settings: hosts (host[:port]) or CIDRs reached over plain http or
    # unverified TLS besides loopback, which always is; mirrors (http[s] URLs) for docker.io
    insecure_registries: tuple[str, ...] = ()
    registry_mirrors: tuple[str, ...] = ()
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    # keep each layer's blob after unpacking it (containerd's way): pushes and saves send it as
    # it is, for the disk of both; default: only the unpacked layers (docker's overlay2)
    keep_layer_blobs: bool = False

    def validate(self) -> DaemonConfig:
        for listen in self.hosts:
            if listen.scheme != "tcp":
                continue
            if self.tlsverify:
                missing = [n for n in ("tlscacert", "tlscert", "tlskey") if getattr(self, n) is None]
                if missing:
                    raise InvalidArgument(
                        f"--tlsverify on {listen} needs {', '.join('--' + m for m in missing)}"
                    )
            elif not self.insecure_tcp:
                raise InvalidArgument(
                    f"refusing plain TCP on {listen}: use --tlsverify with --tlscacert/--tlscert/--tlskey "
                    "(mutual TLS), or --insecure-tcp on a loopback address"
                )
            elif not listen.loopback:
                raise InvalidArgument(f"--insecure-tcp is only allowed on loopback addresses, not {listen}")
        if isinstance(self.default_pids_limit, bool) or not isinstance(self.default_pids_limit, int):
            raise InvalidArgument(f"default-pids-limit: expected an integer, got {self.default_pids_limit!r}")
        if self.default_pids_limit < -1:
            raise InvalidArgument(
                f"default-pids-limit: expected -1, 0 or a positive integer, got {self.default_pids_limit}"
            )
        if self.userns_remap is not None and (
            not isinstance(self.userns_remap, str) or not self.userns_remap or ":" in self.userns_remap
        ):
            raise InvalidArgument(
                f"userns-remap: expected 'default' or a name in /etc/subuid, got {self.userns_remap!r}"
            )
        if not isinstance(self.keep_layer_blobs, bool):
            raise InvalidArgument(f"keep-layer-blobs: expected true or false, got {self.keep_layer_blobs!r}")
        _check_registries(self)
        return self

    @property
    def effective_pidfile(self) -> Path | None:
        """The pidfile in use: the one given, else ``DEFAULT_PIDFILE`` when detached."""
        return self.pidfile or (Path(DEFAULT_PIDFILE) if self.detach else None)

    @property
    def effective_log_file(self) -> Path | None:
        """The log file in use: the one given, else ``DEFAULT_LOG_FILE`` when detached (None: stderr)."""
        return self.log_file or (Path(DEFAULT_LOG_FILE) if self.detach else None)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="containerkitd", description="containerkit's Docker-compatible daemon")
    p.add_argument("--config", type=Path, help="TOML file with the same keys as these flags")
    p.add_argument("--root", type=Path, help=f"engine root (default {DEFAULT_ROOT})")
    p.add_argument(
        "-H",
        "--host",
        action="append",
        help=f"unix://PATH, tcp://ADDR:PORT or fd:// (systemd socket activation; default {DEFAULT_HOST}, "
        "or fd:// when started with sockets)",
    )
    p.add_argument("--tlsverify", action="store_true", default=None, help="require client certificates (TCP)")
    p.add_argument("--tlscacert", type=Path, help="CA that signs client certificates")
    p.add_argument("--tlscert", type=Path, help="server certificate")
    p.add_argument("--tlskey", type=Path, help="server key")
    p.add_argument("--group", help="group owning the unix socket (mode 0660)")
    p.add_argument(
        "--detach",
        action="store_true",
        default=None,
        help="run in the background; returns once the daemon serves, or fails with its error",
    )
    p.add_argument(
        "--pidfile",
        type=Path,
        help=f"write and lock the daemon's pid here (default with --detach: {DEFAULT_PIDFILE})",
    )
    p.add_argument(
        "--log-file",
        type=Path,
        help=f"log here, rotated at 10 MiB (default: stderr; with --detach {DEFAULT_LOG_FILE})",
    )
    p.add_argument("--insecure-tcp", action="store_true", default=None, help="allow plain TCP on loopback")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="default info")
    p.add_argument(
        "--default-pids-limit",
        type=int,
        help="pids limit of containers that set none (default 2048; 0 or -1: unlimited)",
    )
    p.add_argument(
        "--userns-remap",
        help='user namespaces for containers: "default" (a containerkit range in /etc/subuid and '
        "/etc/subgid) or a name with entries there",
    )
    p.add_argument(
        "--insecure-registry",
        action="append",
        metavar="HOST[:PORT]|CIDR",
        help="a registry reached over http or unverified https (loopback always is); repeatable",
    )
    p.add_argument(
        "--registry-mirror",
        action="append",
        metavar="URL",
        help="a pull-through mirror for docker.io (http[s]://host[:port]); repeatable",
    )
    p.add_argument("--max-concurrent-downloads", type=int, help="layers downloaded at once per pull (3)")
    p.add_argument("--max-concurrent-uploads", type=int, help="layers uploaded at once per push (5)")
    p.add_argument(
        "--keep-layer-blobs",
        action="store_true",
        default=None,
        help="keep layer blobs after unpacking: pushes send them as they are (more disk)",
    )
    return p


def _check_registries(config: DaemonConfig) -> None:
    """dockerd's rules for its registry settings, with the value that fails named."""
    for entry in config.insecure_registries:
        if not isinstance(entry, str) or not entry or "://" in entry:
            raise InvalidArgument(
                f"insecure-registries: {entry!r} should be HOST[:PORT] or a CIDR, without a scheme"
            )
        if "/" in entry:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise InvalidArgument(f"insecure-registries: {entry!r} is not a valid CIDR") from None
    for mirror in config.registry_mirrors:
        parsed = urllib.parse.urlsplit(mirror) if isinstance(mirror, str) else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InvalidArgument(f"registry-mirrors: {mirror!r} is not an http:// or https:// URL")
        if parsed.query or parsed.fragment:
            raise InvalidArgument(f"registry-mirrors: {mirror!r} must not have a query or fragment")
    for key, value in (
        ("max-concurrent-downloads", config.max_concurrent_downloads),
        ("max-concurrent-uploads", config.max_concurrent_uploads),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgument(f"{key}: expected a positive integer, got {value!r}")


def _strings(value: Any, key: str) -> tuple[str, ...]:
    """A TOML list of strings (or one string) as a tuple; anything else names the key."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise InvalidArgument(f"{key}: expected a list of strings, got {value!r}")


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise InvalidArgument(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"config file {path}: {exc}") from None
    unknown = set(data) - _KEYS
    if unknown:
        raise InvalidArgument(f"config file {path}: unknown key(s) {sorted(unknown)}")
    return data


def load_config(argv: Sequence[str] | None = None) -> DaemonConfig:
    args = parser().parse_args(argv)
    file = _from_toml(args.config) if args.config else {}
    hosts = args.host or file.get("host") or file.get("hosts") or [ACTIVATED if for_us() else DEFAULT_HOST]
    if isinstance(hosts, str):
        hosts = [hosts]

    def pick(flag: Any, key: str, default: Any = None) -> Any:
        return flag if flag is not None else file.get(key, default)

    def path(flag: Any, key: str) -> Path | None:
        value = pick(flag, key)
        return Path(value) if value is not None else None

    return DaemonConfig(
        root=Path(pick(args.root, "root", DEFAULT_ROOT)),
        hosts=tuple(Listen.parse(str(h)) for h in hosts),
        tlsverify=bool(pick(args.tlsverify, "tlsverify", False)),
        tlscacert=path(args.tlscacert, "tlscacert"),
        tlscert=path(args.tlscert, "tlscert"),
        tlskey=path(args.tlskey, "tlskey"),
        group=pick(args.group, "group"),
        detach=bool(pick(args.detach, "detach", False)),
        pidfile=path(args.pidfile, "pidfile"),
        insecure_tcp=bool(pick(args.insecure_tcp, "insecure-tcp", False)),
        log_level=str(pick(args.log_level, "log-level", "info")),
        log_file=path(args.log_file, "log-file"),
        default_pids_limit=pick(args.default_pids_limit, "default-pids-limit", 2048),
        userns_remap=pick(args.userns_remap, "userns-remap"),
        insecure_registries=_strings(
            pick(args.insecure_registry, "insecure-registries"), "insecure-registries"
        ),
        registry_mirrors=tuple(
            m.rstrip("/")
            for m in _strings(pick(args.registry_mirror, "registry-mirrors"), "registry-mirrors")
        ),
        max_concurrent_downloads=pick(args.max_concurrent_downloads, "max-concurrent-downloads", 3),
        max_concurrent_uploads=pick(args.max_concurrent_uploads, "max-concurrent-uploads", 5),
        keep_layer_blobs=pick(args.keep_layer_blobs, "keep-layer-blobs", False),
    ).validate()


def tls_context(config: DaemonConfig) -> ssl.SSLContext | None:
    """Mutual TLS: the server's certificate, and client certificates signed by the CA required."""
    if not config.tlsverify:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(config.tlscert), str(config.tlskey))
    context.load_verify_locations(cafile=str(config.tlscacert))
    context.verify_mode = ssl.CERT_REQUIRED
    return context

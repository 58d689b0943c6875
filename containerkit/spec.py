"""Frozen models shared by every layer and by the wire.

Validation lives here: a model that constructs is a model every layer may trust. Errors are
:class:`~containerkit.errors.InvalidArgument` and name the field and the value that failed.
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
import re
import shlex
import signal as _signal
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs

from containerkit._model import model
from containerkit.errors import Conflict, InvalidArgument

__all__ = [
    "BuildEvent",
    "Change",
    "ContainerSize",
    "ContainerSpec",
    "ContainerStatus",
    "Event",
    "ExecResult",
    "Health",
    "HealthResult",
    "Healthcheck",
    "HistoryEntry",
    "Image",
    "ImageConfig",
    "Mount",
    "NetworkEndpoint",
    "PortBinding",
    "ProgressEvent",
    "RegistryData",
    "Resources",
    "RestartPolicy",
    "Stats",
    "Volume",
    "allowed_transition",
    "check_container_name",
    "check_object_name",
    "label_matches",
    "normalise_filters",
    "parse_bytes",
    "parse_env",
    "parse_signal",
    "transition",
]


class ContainerStatus(enum.StrEnum):
    """A container's status: Docker's names, plus ``creating`` (a record that holds its name
    while the bundle is written; never listed). A ``str``, so it equals its name (``"running"``)
    and goes into JSON and SQL as that name."""

    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"

    @property
    def is_up(self) -> bool:
        """Running or paused: its process exists (docker's "Up")."""
        return self in (ContainerStatus.RUNNING, ContainerStatus.PAUSED)

    @property
    def has_stopped(self) -> bool:
        """Exited or dead: it ran and its process is gone (docker's "Exited")."""
        return self in (ContainerStatus.EXITED, ContainerStatus.DEAD)

    @property
    def may_start(self) -> bool:
        """Created, or about to run: a start may follow (waiting for output keeps going)."""
        return self in (ContainerStatus.CREATED, ContainerStatus.RUNNING)

    @classmethod
    def of(cls, value: ContainerStatus | str) -> ContainerStatus:
        """``value`` as a status; :class:`~containerkit.errors.InvalidArgument` naming it if unknown."""
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise InvalidArgument(f"container status must be one of {names}, got {value!r}") from None


_S = ContainerStatus
_TRANSITIONS: dict[ContainerStatus, frozenset[ContainerStatus]] = {
    _S.CREATING: frozenset({_S.CREATED}),  # or rolled back: the record goes
    _S.CREATED: frozenset({_S.RUNNING, _S.EXITED, _S.DEAD, _S.REMOVING}),
    _S.RUNNING: frozenset({_S.PAUSED, _S.RESTARTING, _S.EXITED, _S.DEAD, _S.REMOVING}),
    _S.PAUSED: frozenset({_S.RUNNING, _S.EXITED, _S.DEAD, _S.REMOVING}),
    _S.RESTARTING: frozenset({_S.RUNNING, _S.EXITED, _S.DEAD, _S.REMOVING}),
    _S.EXITED: frozenset({_S.CREATED, _S.RUNNING, _S.RESTARTING, _S.REMOVING}),
    _S.DEAD: frozenset({_S.CREATED, _S.RUNNING, _S.REMOVING}),
    # a second remover shares the work; a removal that failed part-way leaves the container
    # visible again, as it was, so the removal can be retried
    _S.REMOVING: frozenset({_S.REMOVING, _S.CREATED, _S.EXITED, _S.DEAD}),
}
"""Every allowed change of status, in one place (a restart of a stopped container may go
through ``created``: its old exit state is removed first)."""


def allowed_transition(current: ContainerStatus | str, new: ContainerStatus | str) -> bool:
    """Whether a container may go from status ``current`` to ``new``."""
    return ContainerStatus.of(new) in _TRANSITIONS[ContainerStatus.of(current)]


def transition(
    current: ContainerStatus | str, new: ContainerStatus | str, *, container: str
) -> ContainerStatus:
    """``new`` as a status if the change from ``current`` is allowed, else
    :class:`~containerkit.errors.Conflict` naming the container and both statuses."""
    if not allowed_transition(current, new):
        raise Conflict(
            f"container {container} cannot go from {ContainerStatus.of(current)} to {ContainerStatus.of(new)}"
        )
    return ContainerStatus.of(new)


_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_CONTAINER_NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")  # dockerd's RestrictedNamePattern
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_bytes(value: int | str | None, *, field: str = "size") -> int | None:
    """``"64m"`` -> 67108864, like docker's ``--memory``; ints pass through."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidArgument(f"{field}: expected a size, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise InvalidArgument(f"{field}: size must not be negative, got {value}")
        return value
    match = _SIZE_RE.match(str(value))
    if not match:
        raise InvalidArgument(f"{field}: cannot parse size {value!r} (expected e.g. 64m, 1g, 512k)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_signal(value: int | str) -> int:
    """``"SIGTERM"``, ``"TERM"``, ``"15"`` or ``15`` -> 15."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = str(value).strip().upper()
        if text.isdigit():
            number = int(text)
        else:
            name = text if text.startswith("SIG") else f"SIG{text}"
            try:
                number = int(_signal.Signals[name])
            except KeyError:
                raise InvalidArgument(f"unknown signal {value!r}") from None
    if not 0 < number < 65:
        raise InvalidArgument(f"signal number out of range: {value!r}")
    return number


def _str_tuple(value: Iterable[str] | str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise InvalidArgument(f"expected a list of strings, got the string {value!r}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise InvalidArgument(f"expected a list of strings, got item {item!r}")
    return items


def _str_tuple_required(value: Iterable[str] | None) -> tuple[str, ...]:
    return _str_tuple(value) or ()


def parse_env(value: Mapping[str, str] | Iterable[str] | None) -> tuple[tuple[str, str], ...]:
    """Accepts ``{"A": "1"}`` or ``["A=1"]``; keeps order, last one wins."""
    if value is None:
        return ()
    pairs: dict[str, str] = {}
    items: Iterable[Any] = value.items() if isinstance(value, Mapping) else value
    for item in items:
        if isinstance(item, str):
            key, sep, val = item.partition("=")
            if not sep:
                raise InvalidArgument(f"env: entry {item!r} has no '=' (expected NAME=value)")
        else:
            key, val = item
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise InvalidArgument(f"env: invalid variable name {key!r}")
        pairs[key] = str(val)
    return tuple(pairs.items())


def _labels(value: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> tuple[tuple[str, str], ...]:
    """A mapping (or pairs) as sorted pairs, so specs stay hashable and compare equal."""
    if value is None:
        return ()
    if isinstance(value, Mapping):
        items: Iterable[Any] = value.items()
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise InvalidArgument(f"expected a mapping, got {type(value).__name__}")
    pairs = {}
    for item in items:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise InvalidArgument(f"expected key/value pairs, got {item!r}")
        pairs[str(item[0])] = str(item[1])
    return tuple(sorted(pairs.items()))


_CPUSET_LIST = re.compile(r"^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$")


def _memory(value: int | str | None) -> int | None:
    return parse_bytes(value, field="memory")


def _memory_swap(value: int | str | None) -> int | None:
    return parse_bytes(value, field="memory_swap")


@model(kw_only=True)
class Resources:
    """Cgroup limits. ``memory`` accepts ``"64m"``; ``cpus`` is a fraction of CPUs (0.5 = half a CPU)."""

    memory: int | None = attrs.field(default=None, converter=_memory)
    memory_swap: int | None = attrs.field(default=None, converter=_memory_swap)
    cpus: float | None = attrs.field(default=None)
    cpu_shares: int | None = attrs.field(default=None)
    pids: int | None = attrs.field(default=None)
    cpuset_cpus: str | None = attrs.field(default=None)
    """The CPUs it may run on, docker's ``--cpuset-cpus`` list (``0-3,5``)."""
    cpuset_mems: str | None = attrs.field(default=None)
    """The memory nodes it may use (``--cpuset-mems``)."""

    @cpuset_cpus.validator
    @cpuset_mems.validator
    def _check_cpuset(self, attribute: attrs.Attribute[str | None], value: str | None) -> None:
        if value is not None and not (isinstance(value, str) and _CPUSET_LIST.match(value)):
            raise InvalidArgument(f"{attribute.name}: expected a list like '0-3,5', got {value!r}")

    @cpus.validator
    def _check_cpus(self, _a: attrs.Attribute[float | None], value: float | None) -> None:
        if value is not None and not (isinstance(value, (int, float)) and value > 0):
            raise InvalidArgument(f"cpus: must be a positive number, got {value!r}")

    @cpu_shares.validator
    def _check_shares(self, _a: attrs.Attribute[int | None], value: int | None) -> None:
        if value is not None and not (isinstance(value, int) and 2 <= value <= 262144):
            raise InvalidArgument(f"cpu_shares: must be an integer in 2..262144, got {value!r}")

    @pids.validator
    def _check_pids(self, _a: attrs.Attribute[int | None], value: int | None) -> None:
        if value is not None and not (
            isinstance(value, int) and not isinstance(value, bool) and (value > 0 or value == -1)
        ):
            raise InvalidArgument(f"pids: must be a positive integer, or -1 for no limit, got {value!r}")

    def effective(self, default_pids: int | None) -> Resources:
        """The limits to apply: an unset ``pids`` takes the engine's default, ``-1`` is none."""
        if self.pids is None and default_pids is not None and default_pids > 0:
            return attrs.evolve(self, pids=default_pids)
        if self.pids == -1:
            return attrs.evolve(self, pids=None)
        return self

    @memory.validator
    def _check_memory(self, _a: attrs.Attribute[int | None], value: int | None) -> None:
        if value is not None and value < 6 * 1024 * 1024:
            raise InvalidArgument(f"memory: minimum is 6m, got {value} bytes")


MountType = Literal["bind", "volume", "tmpfs"]


@model(kw_only=True)
class Mount:
    """One mount into a container: a host path (bind), a named volume, or a tmpfs."""

    target: str = attrs.field()
    source: str = ""
    type: MountType = attrs.field(default="bind")
    read_only: bool = False
    options: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple_required)

    @target.validator
    def _check_target(self, _a: attrs.Attribute[str], value: str) -> None:
        if not isinstance(value, str) or not value.startswith("/"):
            raise InvalidArgument(f"mount target must be an absolute path, got {value!r}")

    @type.validator
    def _check_type(self, _a: attrs.Attribute[str], value: str) -> None:
        if value not in ("bind", "volume", "tmpfs"):
            raise InvalidArgument(f"mount type must be bind, volume or tmpfs, got {value!r}")

    def __attrs_post_init__(self) -> None:
        if self.type == "bind" and not self.source.startswith("/"):
            raise InvalidArgument(f"bind mount source must be an absolute host path, got {self.source!r}")
        if self.type == "volume" and self.source:
            check_object_name("volume", self.source)

    @classmethod
    def parse(cls, text: str) -> Mount:
        """docker's ``-v`` syntax: ``/host:/ctr[:ro]`` (bind) or ``name:/ctr[:ro]`` (volume)."""
        parts = text.split(":")
        if len(parts) == 1:
            return cls(type="volume", target=parts[0])
        if len(parts) not in (2, 3):
            raise InvalidArgument(f"invalid volume spec {text!r} (expected SRC:DST[:ro])")
        read_only = len(parts) == 3 and "ro" in parts[2].split(",")
        source, target = parts[0], parts[1]
        kind: MountType = "bind" if source.startswith("/") else "volume"
        return cls(type=kind, source=source, target=target, read_only=read_only)


@model(kw_only=True)
class PortBinding:
    """A published port: ``container_port``/``protocol`` on ``host_ip``:``host_port`` (0 = any free port)."""

    container_port: int = attrs.field()
    protocol: Literal["tcp", "udp"] = attrs.field(default="tcp")
    host_ip: str = "0.0.0.0"
    host_port: int = attrs.field(default=0)

    @container_port.validator
    def _check_port(self, _a: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or not 0 < value < 65536:
            raise InvalidArgument(f"container port out of range: {value!r}")

    @host_port.validator
    def _check_host_port(self, _a: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or not 0 <= value < 65536:
            raise InvalidArgument(f"host port out of range: {value!r}")

    @protocol.validator
    def _check_proto(self, _a: attrs.Attribute[str], value: str) -> None:
        if value not in ("tcp", "udp"):
            raise InvalidArgument(f"port protocol must be tcp or udp, got {value!r}")

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.protocol}"


_PUBLISH = re.compile(
    r"^(?:(?:(?P<ip>\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(?P<host>\d*):)?(?P<ctr>\d+)(?:/(?P<proto>\w+))?$"
)


def parse_publish(text: str) -> PortBinding:
    """docker's ``-p`` syntax: ``80``, ``8080:80``, ``127.0.0.1:8080:80/udp``, ``127.0.0.1::80``."""
    match = _PUBLISH.match(text.strip())
    if not match:
        raise InvalidArgument(
            f"invalid publish spec {text!r} (expected [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO])"
        )
    proto = match["proto"] or "tcp"
    if proto not in ("tcp", "udp"):
        raise InvalidArgument(f"invalid publish spec {text!r}: protocol must be tcp or udp")
    return PortBinding(
        container_port=int(match["ctr"]),
        protocol=proto,  # type: ignore[arg-type]
        host_ip=(match["ip"] or "0.0.0.0").strip("[]"),
        host_port=int(match["host"] or 0),
    )


def parse_ports(
    ports: Mapping[str | int, Any] | Iterable[PortBinding | str] | None,
) -> tuple[PortBinding, ...]:
    """docker-py's ``ports=`` shape: ``{"80/tcp": 8080, "53/udp": None, "9000": ("127.0.0.1", 0)}``,
    or a list of :class:`PortBinding` and ``-p`` strings (``["8080:80", "127.0.0.1::53/udp"]``)."""
    if ports is None:
        return ()
    if isinstance(ports, str):
        raise InvalidArgument(
            f"ports: expected a mapping or a list, got the string {ports!r}; use [{ports!r}]"
        )
    if not isinstance(ports, Mapping):
        result = []
        for item in ports:
            if isinstance(item, str):
                result.append(parse_publish(item))
            elif isinstance(item, PortBinding):
                result.append(item)
            else:
                raise InvalidArgument(f"ports: expected PortBinding items or '8080:80' strings, got {item!r}")
        return tuple(result)
    bindings: list[PortBinding] = []
    for key, value in ports.items():
        port_text, _, proto = str(key).partition("/")
        if not port_text.isdigit():
            raise InvalidArgument(f"ports: invalid container port {key!r}")
        protocol = proto or "tcp"
        if protocol not in ("tcp", "udp"):
            raise InvalidArgument(f"ports: invalid protocol in {key!r}")
        values = value if isinstance(value, list) else [value]
        for item in values:
            host_ip, host_port = "0.0.0.0", 0
            if isinstance(item, tuple):
                host_ip, host_port = str(item[0]), int(item[1] or 0)
            elif item is not None:
                host_port = int(item)
            bindings.append(
                PortBinding(
                    container_port=int(port_text),
                    protocol=protocol,  # type: ignore[arg-type]
                    host_ip=host_ip,
                    host_port=host_port,
                )
            )
    return tuple(bindings)


def _check_network(_inst: Any, _a: attrs.Attribute[str], value: str) -> None:
    """``bridge``, ``none``, ``host``, ``container:<id or name>`` or a network's name or id."""
    if not isinstance(value, str):
        raise InvalidArgument(f"network: expected a string, got {value!r}")
    kind, sep, target = value.partition(":")
    if sep and kind == "container" and target:
        return
    if not _NAME_RE.match(value):
        raise InvalidArgument(
            f"network: invalid mode {value!r} (bridge, none, host, container:<id> or a network name)"
        )


def _mounts(value: Iterable[Mount | str] | None) -> tuple[Mount, ...]:
    if value is None:
        return ()
    result = []
    for item in value:
        if isinstance(item, str):
            result.append(Mount.parse(item))
        elif isinstance(item, Mount):
            result.append(item)
        else:
            raise InvalidArgument(f"mounts: expected Mount or 'SRC:DST[:ro]', got {item!r}")
    return tuple(result)


def _resources(value: Resources | Mapping[str, Any] | None) -> Resources:
    if value is None:
        return Resources()
    if isinstance(value, Resources):
        return value
    try:
        return Resources(**value)
    except TypeError as exc:
        raise InvalidArgument(f"resources: {exc}") from None


LOG_DRIVERS = ("json-file", "local", "none")
"""docker's drivers that containerkit keeps: ``local`` is kept in the json-file format."""

_LOG_OPTS = {
    "json-file": {"max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag"},
    "local": {"max-size", "max-file", "compress"},
}
_LOG_DEFAULTS = {"json-file": (None, 1), "local": (20 << 20, 5)}


_DECIMAL_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}


def _log_max_size(driver: str, text: str) -> int:
    """json-file reads ``max-size`` as docker's ``units.FromHumanSize`` (decimal: ``1m`` is
    1,000,000 bytes), ``local`` as ``units.RAMInBytes`` (binary); either must be positive."""
    negative = text.strip().startswith("-")
    match = _SIZE_RE.match(text.strip()[1:] if negative else text)
    if not match:
        raise InvalidArgument(f"log-opt max-size: cannot parse size {text!r} (expected e.g. 10m, 1g, 512k)")
    if negative:
        raise InvalidArgument("max-size must be a positive number")
    units = _DECIMAL_UNITS if driver == "json-file" else _UNITS
    size = int(float(match.group(1)) * units[match.group(2).lower()])
    if size <= 0:
        raise InvalidArgument("max-size must be a positive number")
    return size


def log_limits(driver: str, opts: Mapping[str, str]) -> tuple[int | None, int]:
    """``(max_size, max_file)`` for a log driver and its options, with docker's defaults and
    messages: json-file unbounded with one file, local 20 MiB and 5 files."""
    if driver not in LOG_DRIVERS:
        raise InvalidArgument(f"logger: no log driver named '{driver}' is registered")
    if driver == "none":
        return None, 1
    for key in opts:
        if key not in _LOG_OPTS[driver]:
            raise InvalidArgument(f"unknown log opt '{key}' for {driver} log driver")
    max_size, max_file = _LOG_DEFAULTS[driver]
    if "max-size" in opts:
        max_size = _log_max_size(driver, opts["max-size"])
    if "max-file" in opts:
        try:
            max_file = int(opts["max-file"])
        except ValueError:
            raise InvalidArgument(f"log-opt max-file: not an integer: {opts['max-file']!r}") from None
        if max_file < 1:
            raise InvalidArgument("max-file cannot be less than 1")
    compress = opts.get("compress", "false").strip().lower() in ("1", "t", "true")
    if driver == "json-file" and compress and (max_file < 2 or max_size is None):
        raise InvalidArgument("compress cannot be true when max-file is less than 2 or max-size is not set")
    return max_size, max_file


def check_object_name(kind: str, name: str) -> str:
    """A volume's or network's name by dockerd's rule (``[a-zA-Z0-9][a-zA-Z0-9_.-]*``);
    ``InvalidArgument`` naming the ``kind`` and the name when not allowed."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidArgument(f"invalid {kind} name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name


def check_container_name(name: str) -> str:
    """The name without docker's optional leading ``/``, by dockerd's rule (two characters at
    least: ``a`` is refused as dockerd refuses it); ``InvalidArgument`` when not allowed."""
    if not isinstance(name, str) or not _CONTAINER_NAME_RE.match(name):
        raise InvalidArgument(f"invalid container name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")


def _check_name(_inst: Any, _a: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None:
        check_container_name(value)


def normalise_filters(filters: Mapping[str, Any] | None, known: Iterable[str]) -> dict[str, list[str]]:
    """docker's filters as Python callers and the wire give them (``{"status": "running"}``,
    ``{"label": ["a=1", "b"]}``, the older ``{"label": {"a=1": true}}``; booleans as
    ``"true"``/``"false"``) -> ``{key: [values]}``; a key outside ``known`` is refused as dockerd
    refuses it."""
    allowed = set(known)
    result: dict[str, list[str]] = {}
    for key, value in (filters or {}).items():
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")
        if isinstance(value, Mapping):
            values = [str(k) for k, on in value.items() if on]
        elif isinstance(value, bool):
            values = [str(value).lower()]
        elif isinstance(value, (str, int, float)) or not isinstance(value, Iterable):
            values = [str(value)]
        else:
            values = [str(v).lower() if isinstance(v, bool) else str(v) for v in value]
        result.setdefault(str(key), []).extend(values)
    return result


def label_matches(labels: Mapping[str, str], wanted: str) -> bool:
    """docker's ``label`` filter: ``key`` is present, or ``key=value`` is present with that value."""
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


_RESOURCE_KWARGS = {
    "mem_limit": "memory",
    "memswap_limit": "memory_swap",
    "cpu_shares": "cpu_shares",
    "pids_limit": "pids",
}
_RENAMED_KWARGS = {
    "environment": "env",
    "working_dir": "workdir",
    "remove": "auto_remove",
    "security_opt": "security_opt",
    "network_mode": "network",
    "stdin_open": "stdin_open",
    "userns_mode": "userns",
}


def _volume_mounts(volumes: Any) -> list[Mount]:
    """docker-py's ``volumes=``: ``{"name or /host": {"bind": "/ctr", "mode": "ro"}}`` or
    ``["name:/ctr:ro"]``."""
    if isinstance(volumes, Mapping):
        mounts = []
        for source, how in volumes.items():
            if not isinstance(how, Mapping) or "bind" not in how:
                raise InvalidArgument(
                    f"volumes: {source!r} needs {{'bind': '/path', 'mode': 'rw'}}, got {how!r}; "
                    f"or use mounts=['{source}:/path']"
                )
            mode = str(how.get("mode", "rw"))
            if mode not in ("rw", "ro"):
                raise InvalidArgument(f"volumes: mode of {source!r} must be 'rw' or 'ro', got {mode!r}")
            mounts.append(Mount.parse(f"{source}:{how['bind']}:{mode}"))
        return mounts
    if isinstance(volumes, (list, tuple)):
        return [Mount.parse(str(v)) for v in volumes]
    raise InvalidArgument(f"volumes: expected a mapping or a list, got {volumes!r}")


def _translate_docker_py(fields: dict[str, Any]) -> dict[str, Any]:
    out = dict(fields)
    for old, new in _RENAMED_KWARGS.items():
        if old in out and old != new:
            if new in out:
                raise InvalidArgument(f"give either {old}= or {new}=, not both")
            out[new] = out.pop(old)
    detach = out.pop("detach", True)
    if not detach:
        raise InvalidArgument(
            "detach=False: containerkit's run returns once the container started; "
            "call container.wait() and container.logs() for its exit code and output"
        )
    limits = {new: out.pop(old) for old, new in _RESOURCE_KWARGS.items() if old in out}
    if "nano_cpus" in out:
        limits["cpus"] = int(out.pop("nano_cpus")) / 1e9
    if limits:
        base = _resources(out.get("resources"))
        out["resources"] = attrs.evolve(base, **limits)
    if "volumes" in out:
        out["mounts"] = [*_mounts(out.get("mounts")), *_volume_mounts(out.pop("volumes"))]
    if isinstance(out.get("healthcheck"), Mapping):  # docker-py's: nanoseconds
        out["healthcheck"] = Healthcheck.from_wire(out["healthcheck"])
    return out


def _image_ref(value: Any) -> Any:
    """An :class:`Image` (what ``images.get`` or a fixture returns) stands for its id."""
    if isinstance(value, Image):
        return value.id
    return value


RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
"""docker's restart policy names (``HostConfig.RestartPolicy.Name``)."""


def _policy_name(value: str | None) -> str:
    """docker before v25 wrote an empty name for ``no``."""
    return "no" if value in ("", None) else str(value)


@model(kw_only=True)
class RestartPolicy:
    """What happens when the container's process exits: ``no``, ``always``, ``unless-stopped``
    (as ``always``, but not after the user stopped it) or ``on-failure`` (only after a non-zero
    exit; at most ``maximum_retry_count`` restarts, 0 meaning without limit), as docker's.

    Applied by the container's exit command (the shim runs it), so it holds while no daemon or
    Engine runs."""

    name: str = attrs.field(default="no", converter=_policy_name)
    maximum_retry_count: int = attrs.field(default=0)

    @name.validator
    def _check_name(self, _a: attrs.Attribute[str], value: str) -> None:
        if value not in RESTART_POLICIES:
            raise InvalidArgument(
                f"invalid restart policy: unknown policy {value!r}; use one of 'no', 'always', "
                "'on-failure', or 'unless-stopped'"
            )

    @maximum_retry_count.validator
    def _check_count(self, _a: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgument(
                f"restart policy: maximum retry count must be a whole number, got {value!r}"
            )
        if value < 0:
            raise InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
        if value and self.name != "on-failure":
            raise InvalidArgument(
                "invalid restart policy: maximum retry count can only be used with 'on-failure'"
            )

    @property
    def enabled(self) -> bool:
        return self.name != "no"

    @classmethod
    def parse(cls, text: str) -> RestartPolicy:
        """docker's ``--restart`` text: ``no``, ``always``, ``unless-stopped``, ``on-failure[:N]``."""
        name, sep, count = text.partition(":")
        if not sep:
            return cls(name=name)
        if name != "on-failure":
            raise InvalidArgument(f"invalid restart policy {text!r}: only on-failure takes a count")
        try:
            return cls(name=name, maximum_retry_count=int(count))
        except ValueError:
            raise InvalidArgument(f"invalid restart policy {text!r}: {count!r} is not a number") from None

    @classmethod
    def coerce(cls, value: RestartPolicy | Mapping[str, Any] | str | None) -> RestartPolicy:
        """A policy, ``"on-failure:3"``, docker's ``{"Name": ..., "MaximumRetryCount": ...}`` or
        this class's fields as a mapping; None is ``no``."""
        if value is None:
            return cls()
        if isinstance(value, RestartPolicy):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        if not isinstance(value, Mapping):
            raise InvalidArgument(f"restart_policy: expected a mapping or a string, got {value!r}")
        known = {"Name": "name", "MaximumRetryCount": "maximum_retry_count"}
        fields = {known.get(str(k), str(k)): v for k, v in value.items()}
        unknown = sorted(set(fields) - {"name", "maximum_retry_count"})
        if unknown:
            raise InvalidArgument(f"restart_policy: unknown key(s) {', '.join(unknown)}")
        return cls(**fields)


HEALTH_TEST_KINDS = ("NONE", "CMD", "CMD-SHELL")
HEALTH_DEFAULT_INTERVAL = 30.0
HEALTH_DEFAULT_TIMEOUT = 30.0
HEALTH_DEFAULT_START_INTERVAL = 5.0
HEALTH_DEFAULT_RETRIES = 3
_HEALTH_MIN_DURATION = 0.001  # docker's containertypes.MinimumDuration (1 ms)


def _health_test(value: Iterable[str] | str | None) -> tuple[str, ...]:
    """docker-py's shorthand: a string test is ``CMD-SHELL``."""
    if isinstance(value, str):
        return ("CMD-SHELL", value)
    return _str_tuple_required(value)


def _seconds(value: float | int | None) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"healthcheck: expected a duration in seconds, got {value!r}")
    return float(value)


@model(kw_only=True)
class Healthcheck:
    """A container's health check (docker's ``HEALTHCHECK``): ``test`` is ``("CMD", arg, ...)``,
    ``("CMD-SHELL", "command")``, ``("NONE",)`` (no check, not even the image's) or empty (the
    image's). Durations are seconds; 0 means the image's value, else docker's default (interval
    and timeout 30 s, start period 0, start interval 5 s, 3 retries)."""

    test: tuple[str, ...] = attrs.field(default=(), converter=_health_test)
    interval: float = attrs.field(default=0.0, converter=_seconds)
    timeout: float = attrs.field(default=0.0, converter=_seconds)
    start_period: float = attrs.field(default=0.0, converter=_seconds)
    start_interval: float = attrs.field(default=0.0, converter=_seconds)
    retries: int = attrs.field(default=0)

    @test.validator
    def _check_test(self, _a: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]) -> None:
        if not value:
            return
        if value[0] not in HEALTH_TEST_KINDS:
            raise InvalidArgument(
                f"healthcheck test must start with NONE, CMD or CMD-SHELL, got {value[0]!r}"
            )
        if value[0] == "NONE" and len(value) != 1:
            raise InvalidArgument(f"healthcheck test NONE takes no arguments, got {list(value)!r}")
        if value[0] == "CMD" and len(value) < 2:
            raise InvalidArgument("healthcheck test CMD needs a command")
        if value[0] == "CMD-SHELL" and len(value) != 2:
            raise InvalidArgument(f"healthcheck test CMD-SHELL takes one command string, got {list(value)!r}")

    @interval.validator
    @timeout.validator
    @start_period.validator
    @start_interval.validator
    def _check_duration(self, attribute: attrs.Attribute[float], value: float) -> None:
        if value != 0 and value < _HEALTH_MIN_DURATION:
            name = "".join(part.capitalize() for part in attribute.name.split("_"))
            raise InvalidArgument(f"{name} in Healthcheck cannot be less than 1ms, got {value!r} s")

    @retries.validator
    def _check_retries(self, _a: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgument(f"healthcheck retries must be a whole number, got {value!r}")
        if value < 0:
            raise InvalidArgument("Retries in Healthcheck cannot be negative")

    @property
    def disabled(self) -> bool:
        return self.test[:1] == ("NONE",)

    def merged(self, image: Healthcheck | None) -> Healthcheck | None:
        """This check with what it leaves unset taken from the image's, as dockerd merges them;
        None when there is nothing to run (no test, or ``NONE``)."""
        if image is not None:
            base = attrs.asdict(image, recurse=False)
            mine = attrs.asdict(self, recurse=False)
            own = self if self.test else attrs.evolve(self, test=image.test)
            merged = attrs.evolve(
                own, **{k: base[k] for k in mine if k != "test" and not mine[k] and base[k]}
            )
        else:
            merged = self
        if not merged.test or merged.disabled:
            return None
        return merged

    def effective(self) -> Healthcheck:
        """Docker's defaults in place of the zeros."""
        return attrs.evolve(
            self,
            interval=self.interval or HEALTH_DEFAULT_INTERVAL,
            timeout=self.timeout or HEALTH_DEFAULT_TIMEOUT,
            start_interval=self.start_interval or HEALTH_DEFAULT_START_INTERVAL,
            retries=self.retries or HEALTH_DEFAULT_RETRIES,
        )

    def to_wire(self) -> dict[str, Any]:
        """docker's ``Healthcheck`` object (durations in nanoseconds)."""
        out: dict[str, Any] = {"Test": list(self.test)}
        for key, value in (
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
            ("StartInterval", self.start_interval),
        ):
            if value:
                out[key] = round(value * 1e9)
        if self.retries:
            out["Retries"] = self.retries
        return out

    @classmethod
    def from_wire(cls, value: Mapping[str, Any] | None) -> Healthcheck | None:
        """From docker's ``Healthcheck`` (``Test``, durations in nanoseconds) or docker-py's
        lowercase keyword mapping (``test``, ``interval``, ...); None for an empty one."""
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise InvalidArgument(f"healthcheck: expected a mapping, got {value!r}")
        keys = {
            "test": "test",
            "interval": "interval",
            "timeout": "timeout",
            "startperiod": "start_period",
            "start_period": "start_period",
            "startinterval": "start_interval",
            "start_interval": "start_interval",
            "retries": "retries",
        }
        fields: dict[str, Any] = {}
        for key, raw in value.items():
            name = keys.get(str(key).lower())
            if name is None:
                raise InvalidArgument(f"healthcheck: unknown key {key!r}")
            if raw is None:
                continue
            if name in ("interval", "timeout", "start_period", "start_interval"):
                if isinstance(raw, bool) or not isinstance(raw, int):
                    raise InvalidArgument(f"healthcheck: {key} must be nanoseconds (an integer), got {raw!r}")
                raw = raw / 1e9
            fields[name] = raw
        if not fields:
            return None
        return cls(**fields)


HealthStatus = Literal["starting", "healthy", "unhealthy"]
HEALTH_LOG_KEEP = 5
"""How many results a container's health keeps (docker's ``maxLogEntries``)."""
HEALTH_OUTPUT_MAX = 4096
"""How much of a check's output is kept (docker's ``maxOutputLen``)."""


@model(kw_only=True)
class HealthResult:
    """One run of the health check: RFC 3339 start and end, exit code, output (capped)."""

    start: str
    end: str
    exit_code: int
    output: str = ""


def _health_log(value: Iterable[HealthResult | Mapping[str, Any]]) -> tuple[HealthResult, ...]:
    return tuple(v if isinstance(v, HealthResult) else HealthResult(**v) for v in value)


@model
class ContainerSize:
    """``SizeRw`` (bytes of the files a container wrote in its writable layer) and
    ``SizeRootFs`` (that plus its image's unpacked layers), as dockerd reports them for
    ``docker ps -s`` and ``inspect --size``: file sizes added, not disk blocks."""

    rw: int
    root_fs: int


@model(kw_only=True)
class Health:
    """A container's health now: ``starting`` until the first success (or ``retries`` failures
    after the start period), then ``healthy`` or ``unhealthy``; the last five results."""

    status: HealthStatus
    failing_streak: int = 0
    log: tuple[HealthResult, ...] = attrs.field(default=(), converter=_health_log)

    def to_wire(self) -> dict[str, Any]:
        """docker's ``State.Health``."""
        return {
            "Status": self.status,
            "FailingStreak": self.failing_streak,
            "Log": [
                {"Start": r.start, "End": r.end, "ExitCode": r.exit_code, "Output": r.output}
                for r in self.log
            ],
        }

    @classmethod
    def from_wire(cls, value: Mapping[str, Any] | None) -> Health | None:
        if not value or not value.get("Status") or value.get("Status") == "none":
            return None
        return cls(
            status=value["Status"],
            failing_streak=int(value.get("FailingStreak") or 0),
            log=[
                HealthResult(
                    start=str(r.get("Start") or ""),
                    end=str(r.get("End") or ""),
                    exit_code=int(r.get("ExitCode") or 0),
                    output=str(r.get("Output") or ""),
                )
                for r in value.get("Log") or []
            ],
        )


def _restart_policy(value: RestartPolicy | Mapping[str, Any] | str | None) -> RestartPolicy:
    return RestartPolicy.coerce(value)


def _healthcheck(value: Healthcheck | Mapping[str, Any] | None) -> Healthcheck | None:
    """A :class:`Healthcheck` or its fields as a mapping (seconds)."""
    if value is None or isinstance(value, Healthcheck):
        return value
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"healthcheck: expected a Healthcheck or a mapping, got {value!r}")
    try:
        return Healthcheck(**value)
    except TypeError as exc:
        raise InvalidArgument(f"healthcheck: {exc}") from None


@model(kw_only=True)
class ContainerSpec:
    """Everything needed to create a container; the image config fills what is left ``None``."""

    image: str = attrs.field(converter=_image_ref)
    command: tuple[str, ...] | None = attrs.field(default=None, converter=_str_tuple)
    entrypoint: tuple[str, ...] | None = attrs.field(default=None, converter=_str_tuple)
    name: str | None = attrs.field(default=None, validator=_check_name)
    env: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=parse_env)
    workdir: str | None = attrs.field(default=None)
    user: str | None = None
    hostname: str | None = None
    labels: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_labels)
    mounts: tuple[Mount, ...] = attrs.field(default=(), converter=_mounts)
    resources: Resources = attrs.field(default=None, converter=_resources)
    tty: bool = False
    stdin_open: bool = False
    stdin_once: bool = False  # close the container's stdin when the first attached writer ends
    read_only: bool = False
    cap_add: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple_required)
    cap_drop: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple_required)
    privileged: bool = False
    no_new_privileges: bool = False
    init: bool = False
    auto_remove: bool = False
    stop_signal: str | None = attrs.field(default=None)
    stop_timeout: int | None = attrs.field(default=None)
    network: str = attrs.field(default="bridge", validator=_check_network)
    ports: tuple[PortBinding, ...] = attrs.field(default=(), converter=parse_ports)
    aliases: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple_required)
    dns: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple_required)
    extra_hosts: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_labels)
    mac_address: str | None = None
    runtime: str = attrs.field(default="builtin")
    # docker's --security-opt: "seccomp=unconfined", "seccomp=<profile.json>", "apparmor=<name>",
    # "no-new-privileges" (also the no_new_privileges field), "label=..." accepted as docker does.
    security_opt: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple_required)
    # User namespace: None/"host" runs as host root (docker's default); "auto" maps container
    # root to an unprivileged host range from /etc/subuid.
    userns: str | None = attrs.field(default=None)
    log_driver: str = attrs.field(default="json-file")
    log_opts: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_labels)
    restart_policy: RestartPolicy = attrs.field(factory=RestartPolicy, converter=_restart_policy)
    healthcheck: Healthcheck | None = attrs.field(default=None, converter=_healthcheck)

    @image.validator
    def _check_image(self, _a: attrs.Attribute[str], value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise InvalidArgument(f"image: expected a reference, got {value!r}")

    @workdir.validator
    def _check_workdir(self, _a: attrs.Attribute[str | None], value: str | None) -> None:
        if value is not None and not value.startswith("/"):
            raise InvalidArgument(f"workdir must be an absolute path, got {value!r}")

    @stop_signal.validator
    def _check_stop_signal(self, _a: attrs.Attribute[str | None], value: str | None) -> None:
        if value is not None:
            parse_signal(value)

    @stop_timeout.validator
    def _check_stop_timeout(self, _a: attrs.Attribute[int | None], value: int | None) -> None:
        if value is not None and (not isinstance(value, int) or value < 0):
            raise InvalidArgument(f"stop_timeout must be a non-negative integer, got {value!r}")

    @runtime.validator
    def _check_runtime(self, _a: attrs.Attribute[str], value: str) -> None:
        if value not in ("builtin", "runc", "crun"):
            raise InvalidArgument(f"runtime must be builtin, runc or crun, got {value!r}")

    @userns.validator
    def _check_userns(self, _a: attrs.Attribute[str | None], value: str | None) -> None:
        if value not in (None, "", "host", "auto"):
            raise InvalidArgument(f"userns must be 'host' or 'auto', got {value!r}")

    @classmethod
    def from_kwargs(cls, **fields: Any) -> ContainerSpec:
        """A spec from keywords, also in the spellings docker-py users type (``environment=``,
        ``mem_limit=``, ``volumes={"data": {"bind": "/data", "mode": "rw"}}``, ``remove=True``,
        ``detach=True``...); a docker-py keyword with no unambiguous meaning here is an error
        that shows the containerkit spelling."""
        translated = _translate_docker_py(fields)
        unknown = sorted(set(translated) - {f.name for f in attrs.fields(cls)})
        if unknown:
            raise InvalidArgument(
                f"unknown container option(s) {', '.join(unknown)}; see ContainerSpec for the fields"
            )
        return cls(**translated)

    def __attrs_post_init__(self) -> None:
        log_limits(self.log_driver, self.log_opts_dict)
        if self.auto_remove and self.restart_policy.enabled:
            raise InvalidArgument("can't create 'AutoRemove' container with restart policy")

    @property
    def log_opts_dict(self) -> dict[str, str]:
        return dict(self.log_opts)

    @property
    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    def to_json(self) -> str:
        """A JSON text that :meth:`from_json` turns back into an equal spec."""
        return json.dumps(attrs.asdict(self, recurse=True), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ContainerSpec:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise InvalidArgument("container spec: expected a JSON object")
        data["mounts"] = [Mount(**m) for m in data.get("mounts") or []]
        data["ports"] = [PortBinding(**p) for p in data.get("ports") or []]
        data["resources"] = Resources(**(data.get("resources") or {}))
        data["restart_policy"] = RestartPolicy.coerce(data.get("restart_policy"))
        try:
            return cls(**data)
        except TypeError as exc:
            raise InvalidArgument(f"container spec: {exc}") from None

    @property
    def labels_dict(self) -> dict[str, str]:
        return dict(self.labels)


@model(kw_only=True)
class NetworkEndpoint:
    """A container on one network: its address there while attached (``ip`` is ``""`` while the
    container is not running), as ``container.networks[name]`` reports it."""

    network_id: str
    ip: str = ""
    prefixlen: int = 0
    gateway: str = ""
    mac: str = ""
    aliases: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple_required)


_CHANGE_KEYS = {
    "CMD": "Cmd",
    "ENTRYPOINT": "Entrypoint",
    "ENV": "Env",
    "WORKDIR": "WorkingDir",
    "USER": "User",
    "EXPOSE": "ExposedPorts",
    "VOLUME": "Volumes",
    "LABEL": "Labels",
    "STOPSIGNAL": "StopSignal",
}


def _exec_form(change: str, rest: str) -> list[str]:
    """``["a", "b"]`` as a list; anything else is the shell form ``/bin/sh -c rest``."""
    if not rest.startswith("["):
        return ["/bin/sh", "-c", rest]
    try:
        value = json.loads(rest)
    except ValueError:
        raise InvalidArgument(f"change {change!r}: not a JSON array") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"change {change!r}: expected a JSON array of strings")
    return value


@model(kw_only=True)
class ImageConfig:
    """The runtime part of an OCI image config (``config`` in the config blob)."""

    entrypoint: tuple[str, ...] | None = attrs.field(default=None, converter=_str_tuple)
    cmd: tuple[str, ...] | None = attrs.field(default=None, converter=_str_tuple)
    env: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple_required)
    working_dir: str = ""
    user: str = ""
    exposed_ports: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple_required)
    volumes: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple_required)
    labels: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_labels)
    stop_signal: str | None = None
    healthcheck: Healthcheck | None = attrs.field(default=None, converter=_healthcheck)
    shell: tuple[str, ...] | None = attrs.field(default=None, converter=_str_tuple)
    """A Dockerfile's SHELL: what shell-form RUN, CMD and ENTRYPOINT run with (None: /bin/sh -c)."""
    on_build: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple_required)
    """ONBUILD triggers, each an instruction a build from this image runs first."""

    @classmethod
    def from_oci(cls, config: Mapping[str, Any] | None) -> ImageConfig:
        """From the OCI/docker ``config`` object (``Entrypoint``, ``Cmd``, ``Env``...)."""
        config = config or {}
        return cls(
            entrypoint=config.get("Entrypoint"),
            cmd=config.get("Cmd"),
            env=config.get("Env") or (),
            working_dir=config.get("WorkingDir") or "",
            user=config.get("User") or "",
            exposed_ports=tuple(sorted((config.get("ExposedPorts") or {}).keys())),
            volumes=tuple(sorted((config.get("Volumes") or {}).keys())),
            labels=config.get("Labels") or {},
            stop_signal=config.get("StopSignal") or None,
            healthcheck=Healthcheck.from_wire(config.get("Healthcheck")),
            shell=config.get("Shell") or None,
            on_build=config.get("OnBuild") or (),
        )

    @classmethod
    def coerce(cls, config: ImageConfig | Mapping[str, Any] | None) -> ImageConfig:
        """What callers may pass as a config: an ImageConfig, an OCI mapping (``{"Cmd": [...]}``)
        or this class's fields as a mapping (``{"cmd": [...]}``)."""
        if config is None:
            return cls()
        if isinstance(config, ImageConfig):
            return config
        if not isinstance(config, Mapping):
            raise InvalidArgument(
                f"config: expected an ImageConfig or a mapping, got {type(config).__name__}"
            )
        if any(key[:1].isupper() for key in config):
            return cls.from_oci(config)
        try:
            return cls(**config)
        except TypeError as exc:
            raise InvalidArgument(f"config: {exc}") from None

    @classmethod
    def from_changes(cls, changes: Iterable[str]) -> ImageConfig:
        """``docker import --change`` / ``commit --change``: Dockerfile instructions
        (``CMD ["sh"]``, ``ENV A=1``, ``EXPOSE 80``...) as a config."""
        config: dict[str, Any] = {}
        for change in changes:
            word, _, rest = change.strip().partition(" ")
            key = _CHANGE_KEYS.get(word.upper())
            rest = rest.strip()
            if key is None or not rest:
                raise InvalidArgument(f"unsupported change {change!r} (one of {', '.join(_CHANGE_KEYS)})")
            if key in ("Cmd", "Entrypoint"):
                config[key] = _exec_form(change, rest)
            elif key == "Env":
                pairs = shlex.split(rest)
                items = pairs if all("=" in p for p in pairs) else [f"{pairs[0]}={' '.join(pairs[1:])}"]
                config.setdefault("Env", []).extend(items)
            elif key == "Labels":
                for item in shlex.split(rest):
                    name, _, value = item.partition("=")
                    config.setdefault("Labels", {})[name] = value
            elif key in ("ExposedPorts", "Volumes"):
                items = _exec_form(change, rest) if rest.startswith("[") else rest.split()
                for item in items:
                    entry = f"{item}/tcp" if key == "ExposedPorts" and "/" not in item else item
                    config.setdefault(key, {})[entry] = {}
            else:
                config[key] = rest
        return cls.from_oci(config)

    def to_changes(self) -> list[str]:
        """The inverse of :meth:`from_changes`."""
        changes = []
        if self.entrypoint is not None:
            changes.append(f"ENTRYPOINT {json.dumps(list(self.entrypoint))}")
        if self.cmd is not None:
            changes.append(f"CMD {json.dumps(list(self.cmd))}")
        for item in self.env:
            key, _, value = item.partition("=")
            changes.append(f"ENV {key}={shlex.quote(value)}")
        if self.working_dir:
            changes.append(f"WORKDIR {self.working_dir}")
        if self.user:
            changes.append(f"USER {self.user}")
        changes.extend(f"EXPOSE {port}" for port in self.exposed_ports)
        if self.volumes:
            changes.append(f"VOLUME {json.dumps(list(self.volumes))}")
        changes.extend(f"LABEL {shlex.quote(k)}={shlex.quote(v)}" for k, v in self.labels)
        if self.stop_signal:
            changes.append(f"STOPSIGNAL {self.stop_signal}")
        return changes

    def to_oci(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.entrypoint is not None:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            out["Cmd"] = list(self.cmd)
        if self.env:
            out["Env"] = list(self.env)
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.user:
            out["User"] = self.user
        if self.exposed_ports:
            out["ExposedPorts"] = {p: {} for p in self.exposed_ports}
        if self.volumes:
            out["Volumes"] = {v: {} for v in self.volumes}
        if self.labels:
            out["Labels"] = dict(self.labels)
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        if self.healthcheck is not None:
            out["Healthcheck"] = self.healthcheck.to_wire()
        if self.shell is not None:
            out["Shell"] = list(self.shell)
        if self.on_build:
            out["OnBuild"] = list(self.on_build)
        return out


@model(kw_only=True)
class Image:
    """A local image. ``id`` is the digest of its config blob (``sha256:...``)."""

    id: str
    tags: tuple[str, ...] = ()
    digests: tuple[str, ...] = ()
    created: _dt.datetime | None = None
    size: int = 0
    architecture: str = "amd64"
    os: str = "linux"
    config: ImageConfig = attrs.field(factory=ImageConfig)
    layers: tuple[str, ...] = ()  # diff ids, bottom first
    author: str = ""
    """The config's ``author`` (``docker commit -a``, a Dockerfile's MAINTAINER)."""

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[-1][:12]


@model(kw_only=True)
class Volume:
    name: str
    mountpoint: str
    created: _dt.datetime
    labels: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_labels)
    driver: str = "local"
    options: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_labels)
    """The driver options it was created with (``type``, ``device``, ``o``), as pairs."""


def _attributes(value: Mapping[str, Any] | None) -> Mapping[str, str]:
    return {str(k): str(v) for k, v in (value or {}).items()}


@model(kw_only=True)
class Event:
    """One thing that happened, as docker's ``/events`` reports it: ``type`` (container, image,
    network, volume), ``action`` (create, start, die, ``health_status: healthy``, ...), the actor's
    id and docker's attributes (``name``, ``image``, ``exitCode``, ``signal``, ...), and when, in
    nanoseconds since the epoch. Events are kept in the engine root, so every process on it sees them."""

    type: str
    action: str
    actor_id: str
    attributes: Mapping[str, str] = attrs.field(factory=dict, converter=_attributes)
    time_nano: int
    scope: str = "local"

    @property
    def time(self) -> int:
        """Whole seconds since the epoch (docker's ``time``)."""
        return self.time_nano // 1_000_000_000

    @property
    def datetime(self) -> _dt.datetime:
        return _dt.datetime.fromtimestamp(self.time_nano / 1e9, _dt.UTC)

    def to_docker(self) -> dict[str, Any]:
        """docker's JSON message, with the pre-1.22 ``status``/``id``/``from`` old clients read."""
        data: dict[str, Any] = {
            "Type": self.type,
            "Action": self.action,
            "Actor": {"ID": self.actor_id, "Attributes": dict(self.attributes)},
            "scope": self.scope,
            "time": self.time,
            "timeNano": self.time_nano,
        }
        if self.type == "container":
            data.update(
                {"status": self.action, "id": self.actor_id, "from": self.attributes.get("image", "")}
            )
        return data

    @classmethod
    def from_docker(cls, data: Mapping[str, Any]) -> Event:
        """An event from docker's JSON message (pre-1.22 daemons send only ``status``/``id``/``from``)."""
        actor = data.get("Actor") or {}
        time_nano = data.get("timeNano") or int(data.get("time") or 0) * 1_000_000_000
        return cls(
            type=str(data.get("Type") or "container"),
            action=str(data.get("Action") or data.get("status") or ""),
            actor_id=str(actor.get("ID") or data.get("id") or ""),
            attributes=actor.get("Attributes") or {},
            time_nano=int(time_nano),
            scope=str(data.get("scope") or "local"),
        )


@model
class ExecResult:
    """The outcome of a finished exec: always an exit code."""

    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""

    @property
    def output(self) -> bytes:
        return self.stdout + self.stderr


@model(kw_only=True)
class Stats:
    """One sample of a container's resource use."""

    read_at: _dt.datetime
    memory_usage: int = 0
    memory_limit: int | None = None
    cpu_usage_ns: int = 0
    pids: int = 0
    pids_limit: int | None = None


@model(kw_only=True)
class ProgressEvent:
    """One step of a pull or push, in docker's words, so every front-end can render it as docker does.

    ``id`` is a layer's short id (12 hex digits), or "" for an image-level line ("Pulling from
    <repo>", "Digest: sha256:...", "Status: ..."). ``current``/``total`` are bytes where the
    action moves data ("Downloading", "Extracting", "Pushing"), else None.
    """

    id: str
    action: str
    current: int | None = None
    total: int | None = None


BuildEventKind = Literal[
    "step", "cache", "running", "output", "removed", "image", "stage", "built", "tagged", "warning"
]


@model(kw_only=True)
class BuildEvent:
    """One line of a build's progress, as docker's classic builder streams it, typed.

    ``kind``: ``step`` (``Step N/M : <instruction>``: ``step``/``total``, the instruction in
    ``text``), ``cache`` (`` ---> Using cache``), ``running`` (`` ---> Running in <id>``),
    ``output`` (a RUN step's output; ``stream`` says stdout or stderr), ``removed`` (an
    intermediate container removed), ``image`` (the image a step made, `` ---> <id>``),
    ``stage`` (a stage finished: its image ``id``, docker's ``aux``), ``built`` / ``tagged``
    (``Successfully built <id>`` / ``Successfully tagged <name>``) and ``warning``.
    """

    kind: BuildEventKind
    text: str = ""
    id: str = ""
    stream: Literal["stdout", "stderr"] = "stdout"
    step: int = 0
    total: int = 0

    def line(self) -> str:
        """The event as the classic builder prints it (no line for ``stage``)."""
        short = self.id.split(":", 1)[-1][:12]
        lines = {
            "step": f"Step {self.step}/{self.total} : {self.text}\n",
            "cache": " ---> Using cache\n",
            "running": f" ---> Running in {short}\n",
            "output": self.text,
            "removed": f" ---> Removed intermediate container {short}\n",
            "image": f" ---> {short}\n",
            "stage": "",
            "built": f"Successfully built {short}\n",
            "tagged": f"Successfully tagged {self.text}\n",
            "warning": f"[Warning] {self.text}\n",
        }
        return lines[self.kind]


def _platform_entries(value: Iterable[Mapping[str, str]]) -> tuple[Mapping[str, str], ...]:
    return tuple(dict(item) for item in value)


@model(kw_only=True)
class RegistryData:
    """What a registry says about a reference without pulling it (docker's distribution inspect).

    ``digest``/``media_type``/``size`` describe the manifest or index the tag points at;
    ``platforms`` are ``{"architecture", "os", "variant"?}`` of the images it holds.
    """

    digest: str
    media_type: str
    size: int
    platforms: tuple[Mapping[str, str], ...] = attrs.field(default=(), converter=_platform_entries)


_CHANGE_KINDS = {"C": 0, "A": 1, "D": 2}


@model
class Change:
    """One path a container changed over its image (``docker diff``): ``kind`` is ``"C"``
    (changed), ``"A"`` (added) or ``"D"`` (deleted); ``path`` is absolute."""

    path: str
    kind: Literal["C", "A", "D"] = attrs.field()

    @kind.validator
    def _check_kind(self, _a: attrs.Attribute[str], value: str) -> None:
        if value not in _CHANGE_KINDS:
            raise InvalidArgument(f"change kind must be C, A or D, got {value!r}")

    @property
    def kind_code(self) -> int:
        """The Docker API's number for the kind (0 changed, 1 added, 2 deleted)."""
        return _CHANGE_KINDS[self.kind]

    @classmethod
    def from_wire(cls, item: Mapping[str, Any]) -> Change:
        """From the API's ``{"Path": "/tmp", "Kind": 0}``."""
        kind = item.get("Kind")
        names = {code: name for name, code in _CHANGE_KINDS.items()}
        if kind not in names:
            raise InvalidArgument(f"change Kind must be 0, 1 or 2, got {kind!r}")
        return cls(str(item.get("Path")), names[kind])  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"


@model(kw_only=True)
class HistoryEntry:
    """One step of an image's history (``docker history``), newest first in a list.

    ``id`` is the image that step made when it is known here (the image itself or a local
    parent), else ``"<missing>"``; ``size`` is the bytes its layer adds (0 for an
    ``empty_layer`` step such as ENV or CMD); ``tags`` are that image's tags.
    """

    id: str
    created: _dt.datetime | None = None
    created_by: str = ""
    comment: str = ""
    author: str = ""
    empty_layer: bool = False
    size: int = 0
    tags: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple_required)

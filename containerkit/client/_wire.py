"""Models <-> Docker Engine API JSON, in both directions, in one place.

``ContainerSpec`` becomes a ``POST /containers/create`` body (``Cmd``, ``Entrypoint``, ``Env``,
``HostConfig``...); inspect, image, volume and stats objects become the ``spec`` models the
in-process Engine returns. Tmpfs mounts travel as ``HostConfig.Tmpfs`` (their option string
survives intact), bind and volume mounts as ``HostConfig.Mounts``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from typing import Any

from containerkit.errors import InvalidArgument, InvalidReference
from containerkit.spec import (
    LOG_DRIVERS,
    ContainerSpec,
    Image,
    ImageConfig,
    Mount,
    NetworkEndpoint,
    PortBinding,
    Resources,
    Stats,
    Volume,
)

__all__ = [
    "create_body",
    "endpoint_from_wire",
    "exec_body",
    "filters_param",
    "image_config",
    "image_from_wire",
    "import_changes",
    "parse_time",
    "spec_from_inspect",
    "split_tag",
    "stats_from_wire",
    "volume_from_wire",
]

_PROPAGATION = {"private", "rprivate", "shared", "rshared", "slave", "rslave"}
_NO_NETWORK_ENDPOINT = {"none", "host", "default", ""}
_UNLIMITED = 1 << 62


# -- small values ----------------------------------------------------------------------------


def parse_time(value: Any) -> dt.datetime | None:
    """RFC 3339 (any fraction width, ``Z`` or offset) or unix seconds; docker's zero time is None."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    text = str(value)
    if text.startswith("0001-01-01"):
        return None
    main, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{main}.{rest[:digits][:6].ljust(6, '0')}{rest[digits:]}"
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def filters_param(filters: Mapping[str, Any] | None) -> str | None:
    """Engine-style filters (a value, a list, or docker's ``{"v": true}`` map) as the API's JSON."""
    if not filters:
        return None
    wire: dict[str, list[str]] = {}
    for key, value in filters.items():
        if isinstance(value, Mapping):
            values = [str(k) for k, on in value.items() if on]
        elif isinstance(value, bool):
            values = [str(value).lower()]
        elif isinstance(value, (str, int, float)):
            values = [str(value)]
        else:
            values = [str(v).lower() if isinstance(v, bool) else str(v) for v in value]
        wire[str(key)] = values
    return json.dumps(wire)


def split_tag(reference: str) -> tuple[str, str]:
    """``registry:5000/repo:tag`` -> (``registry:5000/repo``, ``tag``); no tag gives ``""``."""
    if "@" in reference:
        raise InvalidReference(f"refusing to create a tag with a digest reference: {reference}")
    repo, sep, tag = reference.rpartition(":")
    if not sep or "/" in tag:
        return reference, ""
    return repo, tag


# -- containers ------------------------------------------------------------------------------


def create_body(spec: ContainerSpec) -> dict[str, Any]:
    """The ``POST /containers/create`` body for ``spec`` (the name goes in the query)."""
    body: dict[str, Any] = {
        "Image": spec.image,
        "Cmd": None if spec.command is None else list(spec.command),
        "Entrypoint": None if spec.entrypoint is None else list(spec.entrypoint),
        "Env": [f"{key}={value}" for key, value in spec.env],
        "Labels": dict(spec.labels),
        "Tty": spec.tty,
        "OpenStdin": spec.stdin_open,
        "StdinOnce": spec.stdin_once,
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "ExposedPorts": {port.key: {} for port in spec.ports},
        "HostConfig": _host_config(spec),
    }
    optional = {
        "WorkingDir": spec.workdir,
        "User": spec.user,
        "Hostname": spec.hostname,
        "StopSignal": spec.stop_signal,
        "StopTimeout": spec.stop_timeout,
        "MacAddress": spec.mac_address,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    if spec.network not in _NO_NETWORK_ENDPOINT:
        endpoint: dict[str, Any] = {"Aliases": list(spec.aliases)} if spec.aliases else {}
        body["NetworkingConfig"] = {"EndpointsConfig": {spec.network: endpoint}}
    return body


def _host_config(spec: ContainerSpec) -> dict[str, Any]:
    host: dict[str, Any] = {
        "NetworkMode": spec.network,
        "Mounts": [_mount_to_wire(m) for m in spec.mounts if m.type != "tmpfs"],
        "Tmpfs": {m.target: _tmpfs_options(m) for m in spec.mounts if m.type == "tmpfs"},
        "ReadonlyRootfs": spec.read_only,
        "CapAdd": list(spec.cap_add),
        "CapDrop": list(spec.cap_drop),
        "Privileged": spec.privileged,
        "SecurityOpt": _security_opt_to_wire(spec),
        "Init": spec.init,
        "AutoRemove": spec.auto_remove,
        "PortBindings": _port_bindings(spec.ports),
        "Dns": list(spec.dns),
        "ExtraHosts": [f"{host}:{address}" for host, address in spec.extra_hosts],
        "LogConfig": {"Type": spec.log_driver, "Config": spec.log_opts_dict},
    }
    resources = spec.resources
    limits = {
        "Memory": resources.memory,
        "MemorySwap": resources.memory_swap,
        "NanoCpus": None if resources.cpus is None else round(resources.cpus * 1e9),
        "CpuShares": resources.cpu_shares,
        "PidsLimit": resources.pids,
    }
    host.update({key: value for key, value in limits.items() if value is not None})
    if spec.runtime != "builtin":  # the daemon's default; dockerd knows no "builtin"
        host["Runtime"] = spec.runtime
    return host


def _mount_to_wire(mount: Mount) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "Type": mount.type,
        "Source": mount.source,
        "Target": mount.target,
        "ReadOnly": mount.read_only,
    }
    propagation = [o for o in mount.options if o in _PROPAGATION]
    if mount.type == "bind" and propagation:
        wire["BindOptions"] = {"Propagation": propagation[-1]}
    if mount.type == "volume" and "nocopy" in mount.options:
        wire["VolumeOptions"] = {"NoCopy": True}
    return wire


def _option_key(option: str) -> str:
    return option.partition("=")[0].partition(":")[0]


def _no_new_privileges(options: Iterable[str]) -> bool:
    """The last no-new-privileges entry of ``SecurityOpt`` (bare, ``=true`` or ``=false``)."""
    value = False
    for option in options:
        if _option_key(option) == "no-new-privileges":
            value = option[len("no-new-privileges") + 1 :].lower() not in ("false", "0", "f")
    return value


def _profile_json(path: str) -> str:
    what = f"seccomp profile ({path})"
    try:
        with open(path) as f:
            return json.dumps(json.load(f), separators=(",", ":"))
    except OSError as exc:
        raise InvalidArgument(f"opening {what} failed: {exc.strerror}") from None
    except ValueError as exc:
        raise InvalidArgument(f"compacting json for {what} failed: {exc}") from None


def _security_opt_to_wire(spec: ContainerSpec) -> list[str]:
    """``SecurityOpt`` as the docker CLI sends it: a seccomp profile file is sent as its JSON
    (the daemon may be on another machine), and the no_new_privileges flag as an option."""
    options = []
    for option in spec.security_opt:
        key, _, value = option.partition("=")
        file = value not in ("unconfined", "builtin", "") and not value.lstrip().startswith("{")
        options.append(f"seccomp={_profile_json(value)}" if key == "seccomp" and file else option)
    if spec.no_new_privileges and not any(_option_key(o) == "no-new-privileges" for o in options):
        options.append("no-new-privileges")
    return options


def _tmpfs_options(mount: Mount) -> str:
    options = list(mount.options)
    if mount.read_only and "ro" not in options:
        options.append("ro")
    return ",".join(options)


def _port_bindings(ports: Iterable[PortBinding]) -> dict[str, list[dict[str, str]]]:
    bindings: dict[str, list[dict[str, str]]] = {}
    for port in ports:
        bindings.setdefault(port.key, []).append(
            {"HostIp": port.host_ip, "HostPort": str(port.host_port) if port.host_port else ""}
        )
    return bindings


def spec_from_inspect(data: Mapping[str, Any]) -> ContainerSpec:
    """The spec as far as inspect tells it (image defaults the daemon filled in are included)."""
    config = data.get("Config") or {}
    host = data.get("HostConfig") or {}
    network = host.get("NetworkMode") or "none"
    endpoints = (data.get("NetworkSettings") or {}).get("Networks") or {}
    runtime = host.get("Runtime") or "builtin"
    return ContainerSpec(
        image=config.get("Image") or data.get("Image") or "unknown",
        command=config.get("Cmd"),
        entrypoint=config.get("Entrypoint"),
        name=str(data.get("Name") or "").lstrip("/") or None,
        env=config.get("Env") or (),
        workdir=config.get("WorkingDir") or None,
        user=config.get("User") or None,
        hostname=config.get("Hostname") or None,
        labels=config.get("Labels") or {},
        mounts=_mounts_from_wire(host),
        resources=Resources(
            memory=host.get("Memory") or None,
            memory_swap=host.get("MemorySwap") or None,
            cpus=(host["NanoCpus"] / 1e9) if host.get("NanoCpus") else None,
            cpu_shares=host.get("CpuShares") or None,
            pids=host.get("PidsLimit") or None,
        ),
        tty=bool(config.get("Tty")),
        stdin_open=bool(config.get("OpenStdin")),
        stdin_once=bool(config.get("StdinOnce")),
        read_only=bool(host.get("ReadonlyRootfs")),
        cap_add=host.get("CapAdd") or (),
        cap_drop=host.get("CapDrop") or (),
        privileged=bool(host.get("Privileged")),
        no_new_privileges=_no_new_privileges(host.get("SecurityOpt") or ()),
        security_opt=[o for o in host.get("SecurityOpt") or () if _option_key(o) != "no-new-privileges"],
        init=bool(host.get("Init")),
        auto_remove=bool(host.get("AutoRemove")),
        stop_signal=config.get("StopSignal") or None,
        stop_timeout=config.get("StopTimeout"),
        network=network,
        ports=_ports_from_wire(host.get("PortBindings") or {}),
        aliases=(endpoints.get(network) or {}).get("Aliases") or (),
        dns=host.get("Dns") or (),
        extra_hosts=[tuple(item.split(":", 1)) for item in host.get("ExtraHosts") or () if ":" in item],
        mac_address=config.get("MacAddress") or None,
        runtime=runtime if runtime in ("builtin", "runc", "crun") else "builtin",
        **_log_config_from_wire(host),
    )


def _log_config_from_wire(host: Mapping[str, Any]) -> dict[str, Any]:
    """``log_driver``/``log_opts`` from ``HostConfig.LogConfig``; a driver containerkit does not
    keep (another daemon's syslog, journald...) reads as the default rather than failing."""
    log = host.get("LogConfig") or {}
    driver = log.get("Type") or "json-file"
    if driver not in LOG_DRIVERS:
        return {}
    return {"log_driver": driver, "log_opts": dict(log.get("Config") or {})}


def _mounts_from_wire(host: Mapping[str, Any]) -> list[Mount]:
    mounts = []
    for item in host.get("Mounts") or ():
        options: list[str] = []
        propagation = (item.get("BindOptions") or {}).get("Propagation")
        if propagation:
            options.append(propagation)
        if (item.get("VolumeOptions") or {}).get("NoCopy"):
            options.append("nocopy")
        mounts.append(
            Mount(
                type=item.get("Type") or "bind",
                source=item.get("Source") or "",
                target=item["Target"],
                read_only=bool(item.get("ReadOnly")),
                options=options,
            )
        )
    for bind in host.get("Binds") or ():
        mounts.append(Mount.parse(bind))
    for target, text in (host.get("Tmpfs") or {}).items():
        options = [o for o in str(text).split(",") if o and o != "ro"]
        mounts.append(
            Mount(type="tmpfs", target=target, read_only="ro" in str(text).split(","), options=options)
        )
    return mounts


def _ports_from_wire(bindings: Mapping[str, Any]) -> list[PortBinding]:
    ports = []
    for key, entries in bindings.items():
        number, _, protocol = key.partition("/")
        for entry in entries or [{}]:
            host_port = str(entry.get("HostPort") or "0")
            ports.append(
                PortBinding(
                    container_port=int(number),
                    protocol=protocol or "tcp",  # type: ignore[arg-type]
                    host_ip=entry.get("HostIp") or "0.0.0.0",
                    host_port=int(host_port) if host_port.isdigit() else 0,
                )
            )
    return ports


def endpoint_from_wire(data: Mapping[str, Any]) -> NetworkEndpoint:
    """One entry of inspect's ``NetworkSettings.Networks``."""
    return NetworkEndpoint(
        network_id=str(data.get("NetworkID") or ""),
        ip=str(data.get("IPAddress") or ""),
        prefixlen=int(data.get("IPPrefixLen") or 0),
        gateway=str(data.get("Gateway") or ""),
        mac=str(data.get("MacAddress") or ""),
        aliases=data.get("Aliases") or (),
    )


def exec_body(
    argv: list[str],
    *,
    env: Mapping[str, str] | Iterable[str] | None,
    user: str | None,
    workdir: str | None,
    tty: bool,
    stdin: bool,
    privileged: bool,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Cmd": argv,
        "User": user or "",
        "Privileged": privileged,
        "Tty": tty,
        "AttachStdin": stdin,
        "AttachStdout": True,
        "AttachStderr": True,
    }
    if env is not None:
        pairs: Iterable[Any] = env.items() if isinstance(env, Mapping) else env
        body["Env"] = [item if isinstance(item, str) else f"{item[0]}={item[1]}" for item in pairs]
    if workdir:
        body["WorkingDir"] = workdir
    return body


def stats_from_wire(data: Mapping[str, Any], *, host_memory: int | None = None) -> Stats:
    """docker's stats object; a memory limit equal to the host's RAM means none was set."""
    memory = data.get("memory_stats") or {}
    memory_limit = _limit(memory.get("limit"))
    if memory_limit is not None and host_memory is not None and memory_limit >= host_memory:
        memory_limit = None
    cpu = (data.get("cpu_stats") or {}).get("cpu_usage") or {}
    pids = data.get("pids_stats") or {}
    return Stats(
        read_at=parse_time(data.get("read")) or dt.datetime.now(dt.UTC),
        memory_usage=int(memory.get("usage") or 0),
        memory_limit=memory_limit,
        cpu_usage_ns=int(cpu.get("total_usage") or 0),
        pids=int(pids.get("current") or 0),
        pids_limit=_limit(pids.get("limit")),
    )


def _limit(value: Any) -> int | None:
    """0, absent and "max" (2**64 - 1) all mean no limit."""
    if not isinstance(value, int) or value <= 0 or value >= _UNLIMITED:
        return None
    return value


# -- images and volumes ------------------------------------------------------------------------


def image_from_wire(data: Mapping[str, Any]) -> Image:
    """An ``Image`` from ``GET /images/{name}/json``."""
    return Image(
        id=data["Id"],
        tags=tuple(t for t in data.get("RepoTags") or () if t != "<none>:<none>"),
        digests=tuple(d for d in data.get("RepoDigests") or () if d != "<none>@<none>"),
        created=parse_time(data.get("Created")),
        size=int(data.get("Size") or 0),
        architecture=data.get("Architecture") or "amd64",
        os=data.get("Os") or "linux",
        config=ImageConfig.from_oci(data.get("Config")),
        layers=tuple((data.get("RootFS") or {}).get("Layers") or ()),
    )


def volume_from_wire(data: Mapping[str, Any]) -> Volume:
    return Volume(
        name=data["Name"],
        mountpoint=data.get("Mountpoint") or "",
        created=parse_time(data.get("CreatedAt")) or dt.datetime.fromtimestamp(0, dt.UTC),
        labels=data.get("Labels") or {},
        driver=data.get("Driver") or "local",
    )


def image_config(config: ImageConfig | Mapping[str, Any] | None) -> ImageConfig:
    """``import_rootfs``'s ``config``, as the Engine takes it."""
    return ImageConfig.coerce(config)


def import_changes(config: ImageConfig) -> list[str]:
    """The config as Dockerfile instructions, the ``changes`` of ``docker import``."""
    return config.to_changes()

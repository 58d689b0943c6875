"""Docker Engine API JSON shapes (v1.50) built from containerkit objects.

Only shapes live here, no I/O beyond reading what the objects expose. The fields are the
ones docker's clients read (see the compat note): ``State.Status``, ``Config.Tty``,
``HostConfig.LogConfig.Type`` (``json-file``/``local``, or docker-py returns no output),
``NetworkSettings.Ports`` (never null), list ``Status`` strings like ``Up 2 seconds``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from containerkit.spec import ContainerSpec, Image, PortBinding, Stats, Volume

if TYPE_CHECKING:
    from containerkit.engine import Container

__all__ = [
    "container_inspect",
    "container_summary",
    "exec_inspect",
    "human_status",
    "image_inspect",
    "image_summary",
    "network_inspect",
    "stats_json",
    "volume_json",
]

ZERO_TIME = "0001-01-01T00:00:00Z"
_TIME_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$")
DOCKER_FILE = "docker.json"
"""docker's view of a container (its create body), kept in the state dir for inspect."""


def rfc3339(value: dt.datetime | float | None) -> str:
    if value is None:
        return ZERO_TIME
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromtimestamp(value, dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str | None) -> float | None:
    """Seconds since the epoch from RFC 3339 with any fraction width (the shim writes nanoseconds)."""
    match = _TIME_RE.match(text or "")
    if match is None:
        return None
    zone = match.group(3) if match.group(3) not in (None, "Z") else "+00:00"
    base = dt.datetime.fromisoformat(match.group(1) + zone)
    return base.timestamp() + float("0." + (match.group(2) or "0"))


def _duration(seconds: float) -> str:
    """docker's ``units.HumanDuration``."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 14:
        return f"{hours // 24} days"
    if hours < 24 * 60:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def human_status(status: str, started_at: str | None, finished_at: str | None, exit_code: int | None) -> str:
    now = time.time()
    if status in ("running", "paused"):
        started = _parse_time(started_at) or now
        text = f"Up {_duration(now - started)}"
        return text + " (Paused)" if status == "paused" else text
    if status in ("exited", "dead"):
        finished = _parse_time(finished_at)
        ago = f" {_duration(now - finished)} ago" if finished else ""
        return f"Exited ({exit_code or 0}){ago}"
    return "Created"


def read_docker_view(state_dir: os.PathLike[str] | str) -> dict[str, Any]:
    try:
        with open(os.path.join(state_dir, DOCKER_FILE)) as f:
            value = json.load(f)
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def _process_args(container: Container) -> list[str]:
    try:
        with open(os.path.join(container.state_dir, "bundle", "config.json")) as f:
            return list(json.load(f)["process"]["args"])
    except (OSError, ValueError, KeyError):
        return list(container.spec.entrypoint or ()) + list(container.spec.command or ())


# -- ports and networks -------------------------------------------------------------------------


def _binding_pairs(value: Any) -> Iterable[tuple[str, str, str]]:
    """(key "80/tcp", host ip, host port) from whatever shape the engine gives."""
    if isinstance(value, Mapping):
        for key, entries in value.items():
            for entry in entries if isinstance(entries, list) else [entries]:
                if entry is None:
                    continue
                if isinstance(entry, Mapping):
                    ip = entry.get("HostIp", entry.get("host_ip", "0.0.0.0"))
                    port = entry.get("HostPort", entry.get("host_port", ""))
                elif isinstance(entry, PortBinding):
                    ip, port = entry.host_ip, entry.host_port
                elif isinstance(entry, tuple):
                    ip, port = entry[0], entry[1]
                else:
                    ip, port = "0.0.0.0", entry
                yield str(key) if "/" in str(key) else f"{key}/tcp", str(ip or "0.0.0.0"), str(port)
    elif isinstance(value, Iterable):
        for entry in value:
            if isinstance(entry, PortBinding):
                yield entry.key, entry.host_ip, str(entry.host_port)


def published_ports(container: Container, running: bool) -> dict[str, list[dict[str, str]] | None]:
    """``NetworkSettings.Ports``: every exposed/bound port, null when not published (yet)."""
    docker = read_docker_view(container.state_dir)
    ports: dict[str, list[dict[str, str]] | None] = {}
    for key in (docker.get("Config") or {}).get("ExposedPorts") or {}:
        ports[key if "/" in key else f"{key}/tcp"] = None
    for binding in container.spec.ports:
        ports.setdefault(binding.key, None)
    if running:
        for key, ip, port in _binding_pairs(getattr(container, "ports", None) or {}):
            entries = ports.get(key) or []
            entries.append({"HostIp": ip, "HostPort": port})
            ports[key] = entries
    return ports


def _endpoint(value: Any, name: str) -> dict[str, Any]:
    def get(*keys: str) -> Any:
        for key in keys:
            if isinstance(value, Mapping) and key in value:
                return value[key]
            if not isinstance(value, Mapping) and hasattr(value, key):
                return getattr(value, key)
        return None

    return {
        "IPAMConfig": None,
        "Links": None,
        "Aliases": list(get("Aliases", "aliases") or []) or None,
        "MacAddress": str(get("MacAddress", "mac_address", "mac") or ""),
        "DriverOpts": None,
        "GwPriority": 0,
        "NetworkID": str(get("NetworkID", "network_id") or ""),
        "EndpointID": str(get("EndpointID", "endpoint_id") or ""),
        "Gateway": str(get("Gateway", "gateway") or ""),
        "IPAddress": str(get("IPAddress", "ip_address", "ip") or ""),
        "IPPrefixLen": int(get("IPPrefixLen", "prefix_len", "prefixlen") or 0),
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": None,
    }


def networks_of(container: Container, running: bool) -> dict[str, dict[str, Any]]:
    found = getattr(container, "networks", None)
    result: dict[str, dict[str, Any]] = {}
    if isinstance(found, Mapping):
        for name, value in found.items():
            result[str(name)] = _endpoint(value, str(name))
    elif isinstance(found, Iterable) and not isinstance(found, (str, bytes)):
        for item in found:
            result[str(getattr(item, "name", item))] = _endpoint(item, str(item))
    if not result:
        result[container.spec.network] = _endpoint(None, container.spec.network)
    return result


# -- containers -------------------------------------------------------------------------


def _security_opt_list(spec: ContainerSpec) -> list[str]:
    """docker's ``HostConfig.SecurityOpt`` for a spec: its options, plus the no_new_privileges flag."""
    options = list(spec.security_opt)
    if spec.no_new_privileges and not any(o.startswith("no-new-privileges") for o in options):
        options.append("no-new-privileges")
    return options


def _host_config(container: Container, docker: Mapping[str, Any]) -> dict[str, Any]:
    spec = container.spec
    res = spec.resources
    raw = dict(docker.get("HostConfig") or {})
    bindings: dict[str, list[dict[str, str]]] = {}
    for binding in spec.ports:
        bindings.setdefault(binding.key, []).append(
            {
                "HostIp": "" if binding.host_ip == "0.0.0.0" else binding.host_ip,
                "HostPort": str(binding.host_port) if binding.host_port else "",
            }
        )
    mode = raw.get("NetworkMode") or spec.network
    raw.update(
        {
            "Binds": raw.get("Binds")
            or [
                f"{m.source}:{m.target}{':ro' if m.read_only else ''}"
                for m in spec.mounts
                if m.type == "bind"
            ]
            or None,
            "LogConfig": {"Type": spec.log_driver, "Config": spec.log_opts_dict},
            "NetworkMode": "bridge" if mode == "default" else mode,
            "PortBindings": bindings,
            "RestartPolicy": raw.get("RestartPolicy") or {"Name": "no", "MaximumRetryCount": 0},
            "AutoRemove": spec.auto_remove,
            "Privileged": spec.privileged,
            "ReadonlyRootfs": spec.read_only,
            "CapAdd": list(spec.cap_add) or None,
            "CapDrop": list(spec.cap_drop) or None,
            # as the client sent it (dockerd keeps it verbatim), else from the spec
            "SecurityOpt": raw.get("SecurityOpt") or _security_opt_list(spec) or None,
            "Dns": list(spec.dns),
            "ExtraHosts": [f"{h}:{ip}" for h, ip in spec.extra_hosts] or None,
            "Init": spec.init or None,
            "Memory": res.memory or 0,
            "MemorySwap": res.memory_swap or 0,
            "NanoCpus": int((res.cpus or 0) * 1e9),
            "CpuShares": res.cpu_shares or 0,
            "PidsLimit": res.pids,
            "Tmpfs": {m.target: ",".join(m.options) for m in spec.mounts if m.type == "tmpfs"} or None,
            "ConsoleSize": raw.get("ConsoleSize") or [0, 0],
        }
    )
    return raw


def _config(container: Container, docker: Mapping[str, Any], image: Image | None) -> dict[str, Any]:
    spec = container.spec
    raw = dict(docker.get("Config") or {})
    image_config = image.config if image is not None else None
    env = dict(item.split("=", 1) for item in (image_config.env if image_config else ()) if "=" in item)
    env.update(spec.env)
    labels = dict(image_config.labels) if image_config else {}
    labels.update(spec.labels)
    exposed: dict[str, Any] = {p: {} for p in (image_config.exposed_ports if image_config else ())}
    exposed.update(raw.get("ExposedPorts") or {})
    for binding in spec.ports:
        exposed.setdefault(binding.key, {})
    volumes: dict[str, Any] = {v: {} for v in (image_config.volumes if image_config else ())}
    volumes.update({m.target: {} for m in spec.mounts if m.type == "volume" and not m.source})
    cmd = (
        list(spec.command)
        if spec.command is not None
        else list((image_config.cmd if image_config else None) or [])
    )
    entrypoint = (
        spec.entrypoint
        if spec.entrypoint is not None
        else (image_config.entrypoint if image_config else None)
    )
    return {
        "Hostname": spec.hostname or container.id[:12],
        "Domainname": "",
        "User": spec.user if spec.user is not None else (image_config.user if image_config else ""),
        "AttachStdin": bool(raw.get("AttachStdin", False)),
        "AttachStdout": bool(raw.get("AttachStdout", True)),
        "AttachStderr": bool(raw.get("AttachStderr", True)),
        "ExposedPorts": exposed or None,
        "Tty": spec.tty,
        "OpenStdin": spec.stdin_open,
        "StdinOnce": spec.stdin_once,
        "Env": [f"{k}={v}" for k, v in env.items()],
        "Cmd": cmd or None,
        "Image": container.image,
        "Volumes": volumes or None,
        "WorkingDir": spec.workdir or (image_config.working_dir if image_config else ""),
        "Entrypoint": list(entrypoint) if entrypoint else None,
        "OnBuild": None,
        "Labels": labels,
        "StopSignal": spec.stop_signal or (image_config.stop_signal if image_config else None) or "SIGTERM",
        **({"StopTimeout": spec.stop_timeout} if spec.stop_timeout is not None else {}),
    }


def _mounts(container: Container) -> list[dict[str, Any]]:
    result = []
    for m in container.spec.mounts:
        result.append(
            {
                "Type": m.type,
                "Name": m.source if m.type == "volume" else "",
                "Source": m.source,
                "Destination": m.target,
                "Driver": "local" if m.type == "volume" else "",
                "Mode": "ro" if m.read_only else "",
                "RW": not m.read_only,
                "Propagation": "rprivate" if m.type == "bind" else "",
            }
        )
    return result


def container_inspect(container: Container, image: Image | None, exec_ids: list[str]) -> dict[str, Any]:
    state = container.runtime_state()
    status = container.status
    running = status in ("running", "paused")
    docker = read_docker_view(container.state_dir)
    args = _process_args(container)
    networks = networks_of(container, running)
    first = next(iter(networks.values()))
    return {
        "Id": container.id,
        "Created": rfc3339(container.created),
        "Path": args[0] if args else "",
        "Args": args[1:],
        "State": {
            "Status": status,
            "Running": running,
            "Paused": status == "paused",
            "Restarting": False,
            "OOMKilled": state.oom_killed,
            "Dead": status == "dead",
            "Pid": (state.pid or 0) if running else 0,
            "ExitCode": state.exit_code or 0,
            "Error": state.error or "",
            "StartedAt": state.started_at or ZERO_TIME,
            "FinishedAt": state.finished_at or ZERO_TIME,
        },
        "Image": container.image_id,
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": os.path.join(container.state_dir, "container.log"),
        "Name": "/" + container.name,
        "RestartCount": 0,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": exec_ids or None,
        "HostConfig": _host_config(container, docker),
        "GraphDriver": {"Name": "overlay2", "Data": None},
        "Mounts": _mounts(container),
        "Config": _config(container, docker, image),
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": "",
            "SandboxKey": "",
            "Ports": published_ports(container, running),
            "HairpinMode": False,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None,
            "EndpointID": first["EndpointID"],
            "Gateway": first["Gateway"],
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": str(getattr(container, "ip_address", "") or first["IPAddress"]) if running else "",
            "IPPrefixLen": first["IPPrefixLen"],
            "IPv6Gateway": "",
            "MacAddress": first["MacAddress"],
            "Networks": networks,
        },
    }


def container_summary(container: Container) -> dict[str, Any]:
    state = container.runtime_state()
    status = container.status
    running = status in ("running", "paused")
    args = _process_args(container)
    ports = []
    for key, entries in published_ports(container, running).items():
        number, _, proto = key.partition("/")
        if not entries:
            ports.append({"PrivatePort": int(number), "Type": proto})
        for entry in entries or []:
            port = {"PrivatePort": int(number), "Type": proto, "IP": entry["HostIp"]}
            if entry["HostPort"].isdigit():
                port["PublicPort"] = int(entry["HostPort"])
            ports.append(port)
    docker = read_docker_view(container.state_dir)
    mode = (docker.get("HostConfig") or {}).get("NetworkMode") or container.spec.network
    return {
        "Id": container.id,
        "Names": ["/" + container.name],
        "Image": container.image,
        "ImageID": container.image_id,
        "Command": " ".join(args),
        "Created": int(container.created.timestamp()),
        "Ports": ports,
        "Labels": container.labels,
        "State": status,
        "Status": human_status(status, state.started_at, state.finished_at, state.exit_code),
        "HostConfig": {"NetworkMode": "bridge" if mode == "default" else mode},
        "NetworkSettings": {"Networks": networks_of(container, running)},
        "Mounts": _mounts(container),
    }


def exec_inspect(record: Any) -> dict[str, Any]:
    return {
        "ID": record.id,
        "Running": record.running,
        "ExitCode": record.exit_code,
        "ProcessConfig": {
            "tty": record.tty,
            "entrypoint": record.argv[0] if record.argv else "",
            "arguments": record.argv[1:],
            "privileged": record.privileged,
            "user": record.user or "",
        },
        "OpenStdin": record.attach_stdin,
        "OpenStderr": record.attach_stderr,
        "OpenStdout": record.attach_stdout,
        "CanRemove": False,
        "ContainerID": record.container_id,
        "DetachKeys": record.detach_keys,
        "Pid": record.pid,
    }


# -- images, volumes, networks ---------------------------------------------------------------------


def _image_config(image: Image) -> dict[str, Any]:
    config = image.config.to_oci()
    config.setdefault("Env", [])
    config.setdefault("Cmd", None)
    config.setdefault("Entrypoint", None)
    config.setdefault("WorkingDir", "")
    config.setdefault("User", "")
    config.setdefault("Labels", None)
    config.setdefault("ExposedPorts", None)
    config.setdefault("Volumes", None)
    return config


def image_inspect(image: Image) -> dict[str, Any]:
    return {
        "Id": image.id,
        "RepoTags": list(image.tags),
        "RepoDigests": list(image.digests),
        "Parent": "",
        "Comment": "",
        "Created": rfc3339(image.created) if image.created else "",
        "DockerVersion": "",
        "Author": "",
        "Config": _image_config(image),
        "Architecture": image.architecture,
        "Os": image.os,
        "Size": image.size,
        "GraphDriver": {"Name": "overlay2", "Data": None},
        "RootFS": {"Type": "layers", "Layers": list(image.layers)},
        "Metadata": {"LastTagTime": ZERO_TIME},
    }


def image_summary(image: Image) -> dict[str, Any]:
    return {
        "Id": image.id,
        "ParentId": "",
        "RepoTags": list(image.tags),
        "RepoDigests": list(image.digests),
        "Created": int(image.created.timestamp()) if image.created else 0,
        "Size": image.size,
        "SharedSize": -1,
        "Labels": dict(image.config.labels) or {},
        "Containers": -1,
    }


def volume_json(volume: Volume) -> dict[str, Any]:
    return {
        "Name": volume.name,
        "Driver": volume.driver,
        "Mountpoint": volume.mountpoint,
        "CreatedAt": volume.created.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Labels": dict(volume.labels),
        "Scope": "local",
        "Options": None,
    }


def network_inspect(network: Any) -> dict[str, Any]:
    """From the engine's network object, read by attribute (``id``, ``name``, ``subnet``...)."""

    def attr(name: str, default: Any = None) -> Any:
        return getattr(network, name, default)

    created = attr("created")
    subnet, gateway = attr("subnet"), attr("gateway")
    containers: dict[str, Any] = {}
    for item in attr("containers", None) or []:
        cid = str(getattr(item, "id", item))
        containers[cid] = {
            "Name": str(getattr(item, "name", "")),
            "EndpointID": "",
            "MacAddress": "",
            "IPv4Address": str(getattr(item, "ip_address", "") or ""),
            "IPv6Address": "",
        }
    labels = attr("labels", {}) or {}
    return {
        "Name": attr("name", ""),
        "Id": attr("id", ""),
        "Created": rfc3339(created) if created is not None else ZERO_TIME,
        "Scope": "local",
        "Driver": attr("driver", "bridge") or "bridge",
        "EnableIPv4": True,
        "EnableIPv6": False,
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": [{"Subnet": str(subnet), **({"Gateway": str(gateway)} if gateway else {})}]
            if subnet
            else [],
        },
        "Internal": bool(attr("internal", False)),
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": containers,
        "Options": dict(attr("options", {}) or {}),
        "Labels": dict(labels),
    }


# -- stats -----------------------------------------------------------------------------------------


def system_cpu_ns() -> int:
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:8]
    return sum(int(x) for x in fields) * (1_000_000_000 // os.sysconf("SC_CLK_TCK"))


def _cpu(sample: Stats | None) -> dict[str, Any]:
    online = os.cpu_count() or 1
    if sample is None:
        return {
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "system_cpu_usage": 0,
            "online_cpus": online,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        }
    return {
        "cpu_usage": {"total_usage": sample.cpu_usage_ns, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "system_cpu_usage": system_cpu_ns(),
        "online_cpus": online,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }


def stats_json(
    container: Container, sample: Stats | None, previous: Stats | None, previous_system: int = 0
) -> dict[str, Any]:
    """docker's stats object: ``memory_stats.usage/limit``, ``cpu_stats``/``precpu_stats``, ``pids_stats``."""
    limit = sample.memory_limit if sample is not None and sample.memory_limit else _host_memory()
    precpu = _cpu(previous)
    if previous is not None:
        precpu["system_cpu_usage"] = previous_system
    return {
        "name": "/" + container.name,
        "id": container.id,
        "read": rfc3339(sample.read_at) if sample else ZERO_TIME,
        "preread": rfc3339(previous.read_at) if previous else ZERO_TIME,
        "pids_stats": {"current": sample.pids, **({"limit": sample.pids_limit} if sample.pids_limit else {})}
        if sample
        else {},
        "blkio_stats": {"io_service_bytes_recursive": None, "io_serviced_recursive": None},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _cpu(sample),
        "precpu_stats": precpu,
        "memory_stats": {"usage": sample.memory_usage, "limit": limit, "stats": {}} if sample else {},
        "networks": {},
    }


def _host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def host_platform() -> tuple[str, str]:
    machine = platform.machine()
    return "linux", {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)

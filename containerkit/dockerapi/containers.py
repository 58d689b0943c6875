"""Container inspect and list shapes (v1.50), and inspect back to a spec.

The fields are the ones docker's clients read: ``State.Status``, ``Config.Tty``,
``HostConfig.LogConfig.Type`` (``json-file``/``local``, or docker-py returns no output),
``NetworkSettings.Ports`` (never null), list ``Status`` strings like ``Up 2 seconds``.
What a container is comes from any object with the ``ContainerView`` attributes (the engine's
handle and the client's both have them); what only the caller can find (the process args, the
storage driver, the create body the daemon kept) is passed in beside it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from containerkit.dockerapi.create import (
    healthcheck_from_wire,
    ports_to_wire,
    restart_policy_from_wire,
    restart_policy_to_wire,
    security_opt_to_wire,
    split_no_new_privileges,
)
from containerkit.dockerapi.times import ZERO_TIME, human_status, rfc3339
from containerkit.spec import (
    LOG_DRIVERS,
    ContainerSpec,
    ContainerStatus,
    Health,
    Healthcheck,
    ImageConfig,
    Mount,
    NetworkEndpoint,
    PortBinding,
    Resources,
)

__all__ = [
    "ContainerView",
    "container_inspect",
    "container_summary",
    "endpoint_from_wire",
    "exec_inspect",
    "health_from_inspect",
    "network_mode",
    "published_ports",
    "size_fields",
    "spec_from_inspect",
]


class ContainerView(Protocol):
    """What the shapes read of a container (a subset of ``api.ContainerHandle``)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def image(self) -> str: ...
    @property
    def image_id(self) -> str: ...
    @property
    def spec(self) -> ContainerSpec: ...
    @property
    def labels(self) -> dict[str, str]: ...
    @property
    def created(self) -> dt.datetime: ...
    @property
    def status(self) -> str: ...
    @property
    def exit_code(self) -> int | None: ...
    @property
    def oom_killed(self) -> bool: ...
    @property
    def pid(self) -> int | None: ...
    @property
    def started_at(self) -> str | None: ...
    @property
    def finished_at(self) -> str | None: ...
    @property
    def ports(self) -> Mapping[str, Sequence[tuple[str, int]]]: ...
    @property
    def networks(self) -> Mapping[str, NetworkEndpoint]: ...
    @property
    def ip_address(self) -> str: ...


def _running(status: str) -> bool:
    return ContainerStatus.of(status).is_up


def network_mode(spec: ContainerSpec, docker: Mapping[str, Any] | None = None) -> str:
    """``HostConfig.NetworkMode``: as the client sent it, else the spec's; ``default`` is ``bridge``."""
    mode = ((docker or {}).get("HostConfig") or {}).get("NetworkMode") or spec.network
    return "bridge" if mode == "default" else str(mode)


def published_ports(
    container: ContainerView, running: bool, docker: Mapping[str, Any] | None = None
) -> dict[str, list[dict[str, str]] | None]:
    """``NetworkSettings.Ports``: every exposed/bound port, null when not published (yet)."""
    ports: dict[str, list[dict[str, str]] | None] = {}
    for key in ((docker or {}).get("Config") or {}).get("ExposedPorts") or {}:
        ports[key if "/" in key else f"{key}/tcp"] = None
    for binding in container.spec.ports:
        ports.setdefault(binding.key, None)
    if running:
        for key, bindings in container.ports.items():
            key = key if "/" in key else f"{key}/tcp"
            entries = ports.get(key) or []
            for host_ip, host_port in bindings:
                entries.append({"HostIp": str(host_ip or "0.0.0.0"), "HostPort": str(host_port)})
            ports[key] = entries
    return ports


def _endpoint(value: NetworkEndpoint | None) -> dict[str, Any]:
    return {
        "IPAMConfig": None,
        "Links": None,
        "Aliases": (list(value.aliases) or None) if value else None,
        "MacAddress": value.mac if value else "",
        "DriverOpts": None,
        "GwPriority": 0,
        "NetworkID": value.network_id if value else "",
        "EndpointID": "",
        "Gateway": value.gateway if value else "",
        "IPAddress": value.ip if value else "",
        "IPPrefixLen": value.prefixlen if value else 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": None,
    }


_BUILTIN_NETWORKS = ("bridge", "host", "none")


def dns_names(container_name: str, container_id: str, hostname: str | None, aliases: Any) -> list[str]:
    """dockerd's (25+) ``DNSNames`` on a user network: the name, the aliases, the short id and
    the hostname, each once; what the other containers of the network resolve it by."""
    names = [container_name.lstrip("/"), *aliases, container_id[:12], hostname or ""]
    return list(dict.fromkeys(n for n in names if n))


def _networks(container: ContainerView) -> dict[str, dict[str, Any]]:
    result = {str(name): _endpoint(value) for name, value in container.networks.items()}
    for name, value in container.networks.items():
        if str(name) not in _BUILTIN_NETWORKS:
            aliases = value.aliases if value else ()
            result[str(name)]["DNSNames"] = dns_names(
                container.name, container.id, container.spec.hostname, aliases
            )
    if not result:
        result[container.spec.network] = _endpoint(None)
    return result


def _binds(spec: ContainerSpec) -> list[str]:
    return [f"{m.source}:{m.target}{':ro' if m.read_only else ''}" for m in spec.mounts if m.type == "bind"]


def _host_config(spec: ContainerSpec, docker: Mapping[str, Any]) -> dict[str, Any]:
    res = spec.resources
    raw = dict(docker.get("HostConfig") or {})
    bindings = {
        key: [
            {"HostIp": "" if e["HostIp"] == "0.0.0.0" else e["HostIp"], "HostPort": e["HostPort"]}
            for e in entries
        ]
        for key, entries in ports_to_wire(spec.ports).items()
    }
    raw.update(
        {
            # dockerd keeps the body verbatim: Binds only as sent, none beside sent Mounts
            # (listing them in both made a client read each bind mount twice)
            "Binds": raw.get("Binds") or (None if raw.get("Mounts") else _binds(spec) or None),
            "LogConfig": {"Type": spec.log_driver, "Config": spec.log_opts_dict},
            "NetworkMode": network_mode(spec, docker),
            "PortBindings": bindings,
            "RestartPolicy": restart_policy_to_wire(spec.restart_policy),
            "AutoRemove": spec.auto_remove,
            "Privileged": spec.privileged,
            "ReadonlyRootfs": spec.read_only,
            "CapAdd": list(spec.cap_add) or None,
            "CapDrop": list(spec.cap_drop) or None,
            # as the client sent it (dockerd keeps it verbatim), else from the spec
            "SecurityOpt": raw.get("SecurityOpt") or security_opt_to_wire(spec) or None,
            "Dns": list(spec.dns),
            "ExtraHosts": [f"{h}:{ip}" for h, ip in spec.extra_hosts] or None,
            "Init": spec.init or None,
            "Memory": res.memory or 0,
            "MemorySwap": res.memory_swap or 0,
            "NanoCpus": int((res.cpus or 0) * 1e9),
            "CpuShares": res.cpu_shares or 0,
            "PidsLimit": res.pids,
            "CpusetCpus": res.cpuset_cpus or "",
            "CpusetMems": res.cpuset_mems or "",
            "Tmpfs": {m.target: ",".join(m.options) for m in spec.mounts if m.type == "tmpfs"} or None,
            "ConsoleSize": raw.get("ConsoleSize") or [0, 0],
        }
    )
    if spec.runtime != "builtin":
        raw.setdefault("Runtime", spec.runtime)
    return raw


def _config(
    container: ContainerView, docker: Mapping[str, Any], image_config: ImageConfig | None
) -> dict[str, Any]:
    spec = container.spec
    raw = dict(docker.get("Config") or {})
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
        **_healthcheck(spec, image_config),
    }


def _healthcheck(spec: ContainerSpec, image_config: ImageConfig | None) -> dict[str, Any]:
    """``Config.Healthcheck`` as dockerd shows it: the container's, with the image's filling what
    it leaves unset (``NONE`` shown as given)."""
    image = image_config.healthcheck if image_config else None
    own = spec.healthcheck
    if own is None and image is None:
        return {}
    if own is not None and own.disabled:
        return {"Healthcheck": own.to_wire()}
    merged = (own or Healthcheck()).merged(image)
    return {"Healthcheck": merged.to_wire()} if merged is not None else {}


def _mounts(spec: ContainerSpec) -> list[dict[str, Any]]:
    return [
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
        for m in spec.mounts
    ]


def container_inspect(
    container: ContainerView,
    *,
    args: Sequence[str],
    image_config: ImageConfig | None,
    driver: str,
    docker: Mapping[str, Any] | None = None,
    error: str = "",
    log_path: str = "",
    exec_ids: Sequence[str] = (),
    health: Health | None = None,
    restart_count: int = 0,
) -> dict[str, Any]:
    """``GET /containers/{id}/json``. ``args`` is the argv the container runs, ``driver`` the
    storage driver's name, ``docker`` the create body as the client sent it (kept verbatim
    fields such as ``ConsoleSize``); ``health`` and ``restart_count`` as the engine reads them
    (``State.Health`` only for a container with a health check, as dockerd)."""
    docker = docker or {}
    status = str(container.status)
    running = _running(status)
    networks = _networks(container)
    first = next(iter(networks.values()))
    health_state = {"Health": health.to_wire()} if health is not None else {}
    return {
        "Id": container.id,
        "Created": rfc3339(container.created),
        "Path": args[0] if args else "",
        "Args": list(args[1:]),
        "State": {
            "Status": status,
            "Running": running,
            "Paused": status == "paused",
            "Restarting": status == "restarting",
            "OOMKilled": bool(container.oom_killed),
            "Dead": status == "dead",
            "Pid": (container.pid or 0) if running else 0,
            "ExitCode": container.exit_code or 0,
            "Error": error,
            "StartedAt": container.started_at or ZERO_TIME,
            "FinishedAt": container.finished_at or ZERO_TIME,
            **health_state,
        },
        "Image": container.image_id,
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": log_path,
        "Name": "/" + container.name,
        "RestartCount": restart_count,
        "Driver": driver,
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": list(exec_ids) or None,
        "HostConfig": _host_config(container.spec, docker),
        "GraphDriver": {"Name": driver, "Data": None},
        "Mounts": _mounts(container.spec),
        "Config": _config(container, docker, image_config),
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": "",
            "SandboxKey": "",
            "Ports": published_ports(container, running, docker),
            "HairpinMode": False,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None,
            "EndpointID": first["EndpointID"],
            "Gateway": first["Gateway"],
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": (container.ip_address or first["IPAddress"]) if running else "",
            "IPPrefixLen": first["IPPrefixLen"],
            "IPv6Gateway": "",
            "MacAddress": first["MacAddress"],
            "Networks": networks,
        },
    }


def container_summary(
    container: ContainerView,
    *,
    args: Sequence[str],
    docker: Mapping[str, Any] | None = None,
    health: Health | None = None,
) -> dict[str, Any]:
    """One entry of ``GET /containers/json`` (``health``: ``Up 3 seconds (healthy)``)."""
    status = str(container.status)
    running = _running(status)
    ports = []
    for key, entries in published_ports(container, running, docker).items():
        number, _, proto = key.partition("/")
        if not entries:
            ports.append({"PrivatePort": int(number), "Type": proto})
        for entry in entries or []:
            port: dict[str, Any] = {"PrivatePort": int(number), "Type": proto, "IP": entry["HostIp"]}
            if entry["HostPort"].isdigit():
                port["PublicPort"] = int(entry["HostPort"])
            ports.append(port)
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
        "Status": human_status(
            status,
            container.started_at,
            container.finished_at,
            container.exit_code,
            health=health.status if health is not None else None,
        ),
        "HostConfig": {"NetworkMode": network_mode(container.spec, docker)},
        "NetworkSettings": {"Networks": _networks(container)},
        "Mounts": _mounts(container.spec),
    }


def size_fields(rw: int, root_fs: int, *, summary: bool) -> dict[str, int]:
    """``SizeRw`` and ``SizeRootFs`` of a ``size=1`` list entry or inspect, as dockerd sends
    them: a list entry leaves out a zero (its ``omitempty`` int64s), inspect keeps both."""
    fields = {"SizeRw": rw, "SizeRootFs": root_fs}
    return {k: v for k, v in fields.items() if v} if summary else fields


def exec_inspect(record: Any) -> dict[str, Any]:
    """``GET /exec/{id}/json`` from an exec record (``id``, ``argv``, ``running``...)."""
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


# -- inspect -> models (what a client reads back) -----------------------------------------------


def spec_from_inspect(data: Mapping[str, Any]) -> ContainerSpec:
    """The spec as far as inspect tells it (image defaults the daemon filled in are included)."""
    config = data.get("Config") or {}
    host = data.get("HostConfig") or {}
    network = host.get("NetworkMode") or "none"
    endpoints = (data.get("NetworkSettings") or {}).get("Networks") or {}
    runtime = host.get("Runtime") or "builtin"
    security, no_new_privileges = split_no_new_privileges(host.get("SecurityOpt") or ())
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
            cpuset_cpus=host.get("CpusetCpus") or None,
            cpuset_mems=host.get("CpusetMems") or None,
        ),
        tty=bool(config.get("Tty")),
        stdin_open=bool(config.get("OpenStdin")),
        stdin_once=bool(config.get("StdinOnce")),
        read_only=bool(host.get("ReadonlyRootfs")),
        cap_add=host.get("CapAdd") or (),
        cap_drop=host.get("CapDrop") or (),
        privileged=bool(host.get("Privileged")),
        no_new_privileges=no_new_privileges,
        security_opt=security,
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
        restart_policy=restart_policy_from_wire(host.get("RestartPolicy")),
        healthcheck=healthcheck_from_wire(config.get("Healthcheck"), "Config.Healthcheck"),
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


def health_from_inspect(data: Mapping[str, Any]) -> Health | None:
    """``State.Health`` of an inspect document, None without a health check."""
    return Health.from_wire((data.get("State") or {}).get("Health"))

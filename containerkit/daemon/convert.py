"""Docker request bodies -> containerkit models (``ContainerSpec``, ports, mounts, filters).

Defaults follow moby: ``NetworkMode`` ``""``/``"default"`` is the bridge, zero limits mean
"none", ``MemorySwap`` -1 is unlimited. A setting containerkit cannot honour is refused with a
400 that names it rather than silently ignored; settings that change nothing here (log
options, ``ConsoleSize``, ``OomScoreAdj`` 0...) are accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from containerkit.daemon.errors import NotImplementedYet
from containerkit.dockerapi.body import Body
from containerkit.errors import InvalidArgument
from containerkit.runtime.seccomp_profile import split_no_new_privileges
from containerkit.spec import ContainerSpec, Mount, PortBinding, Resources

__all__ = ["CreateRequest", "create_request", "filters_from_query", "port_bindings"]

_DEFAULT_NETWORKS = ("", "default", "bridge")


@attrs.frozen(kw_only=True)
class CreateRequest:
    """What ``POST /containers/create`` asked for: the spec, and docker's view kept for inspect."""

    spec: ContainerSpec
    docker: dict[str, Any]
    warnings: list[str]


def port_bindings(value: Body, exposed: list[str], publish_all: bool) -> list[PortBinding]:
    """``{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}``; an empty HostPort is a free port."""
    result: list[PortBinding] = []
    seen: set[str] = set()
    for key, entries in value.items():
        port, protocol = _port_key(key, "HostConfig.PortBindings")
        seen.add(f"{port}/{protocol}")
        if entries is None:
            entries = [{}]
        if not isinstance(entries, list):
            raise InvalidArgument(f"HostConfig.PortBindings[{key}]: expected an array, got {entries!r:.60}")
        for entry in entries or [{}]:
            item = Body(entry, f"HostConfig.PortBindings[{key}]")
            host_port_text = item.str("HostPort").strip()
            if "-" in host_port_text:
                host_port_text = host_port_text.split("-", 1)[0]
            if host_port_text and not host_port_text.isdigit():
                raise InvalidArgument(
                    f"HostConfig.PortBindings[{key}].HostPort: invalid port {host_port_text!r}"
                )
            result.append(
                PortBinding(
                    container_port=port,
                    protocol=protocol,  # type: ignore[arg-type]
                    host_ip=item.str("HostIp") or "0.0.0.0",
                    host_port=int(host_port_text or 0),
                )
            )
    if publish_all:
        for key in exposed:
            port, protocol = _port_key(key, "ExposedPorts")
            if f"{port}/{protocol}" not in seen:
                result.append(PortBinding(container_port=port, protocol=protocol))  # type: ignore[arg-type]
    return result


def _port_key(key: str, field: str) -> tuple[int, str]:
    port, _, protocol = key.partition("/")
    protocol = protocol or "tcp"
    if not port.isdigit() or protocol not in ("tcp", "udp"):
        raise InvalidArgument(f"{field}: invalid port {key!r} (expected e.g. 80/tcp)")
    return int(port), protocol


def _tmpfs(value: Body) -> list[Mount]:
    mounts = []
    for target, options in value.items():
        if not isinstance(options, str):
            raise InvalidArgument(f"HostConfig.Tmpfs[{target}]: expected a string of options")
        opts = [o for o in options.split(",") if o]
        mounts.append(Mount(type="tmpfs", target=target, options=opts, read_only="ro" in opts))
    return mounts


def _mounts(value: Any) -> list[Mount]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidArgument("HostConfig.Mounts: expected an array")
    result = []
    for n, raw in enumerate(value):
        item = Body(raw, f"HostConfig.Mounts[{n}]")
        kind = item.str("Type", "volume")
        if kind not in ("bind", "volume", "tmpfs"):
            raise InvalidArgument(
                f"HostConfig.Mounts[{n}].Type: {kind!r} is not supported (bind, volume, tmpfs)"
            )
        options: list[str] = []
        if kind == "tmpfs":
            tmpfs = item.obj("TmpfsOptions")
            if tmpfs.int("SizeBytes"):
                options.append(f"size={tmpfs.int('SizeBytes')}")
            if tmpfs.int("Mode"):
                options.append(f"mode={tmpfs.int('Mode'):o}")
        result.append(
            Mount(
                type=kind,  # type: ignore[arg-type]
                source=item.str("Source"),
                target=item.str("Target"),
                read_only=item.bool("ReadOnly"),
                options=options,
            )
        )
    return result


def _binds(value: list[str] | None) -> list[Mount]:
    result = []
    for text in value or []:
        parts = text.split(":")
        if len(parts) == 3:
            opts = parts[2].split(",")
            unknown = [
                o for o in opts if o not in ("ro", "rw", "z", "Z", "rprivate", "private", "rslave", "")
            ]
            if unknown:
                raise InvalidArgument(f"HostConfig.Binds: unsupported mode {unknown[0]!r} in {text!r}")
        result.append(Mount.parse(text))
    return result


def _resources(host: Body) -> Resources:
    memory = host.int("Memory") or None
    swap = host.int("MemorySwap")
    cpus: float | None = None
    if host.int("NanoCpus"):
        cpus = host.int("NanoCpus") / 1e9
    elif host.int("CpuQuota") > 0:
        cpus = host.int("CpuQuota") / (host.int("CpuPeriod") or 100_000)
    # Absent, null or 0 is "not set": the daemon's default applies. The docker CLI sends 0 on
    # every create without --pids-limit (28.x), so 0 cannot mean "no limit" here as it does
    # for dockerd, which has no default; -1 (any negative) is no limit.
    pids = host.int("PidsLimit")
    return Resources(
        memory=memory,
        memory_swap=swap if swap > 0 else None,
        cpus=cpus,
        cpu_shares=host.int("CpuShares") or None,
        pids=None if pids == 0 else (pids if pids > 0 else -1),
    )


def _refuse(host: Body) -> None:
    """Settings that would change what the container is, and that containerkit does not do."""
    for key in ("PidMode", "IpcMode", "UTSMode", "CgroupnsMode"):
        value = host.str(key)
        if (
            value
            and value not in ("private", "shareable", "")
            and not (key == "CgroupnsMode" and value == "host")
        ):
            raise InvalidArgument(f"HostConfig.{key}: {value!r} is not supported by containerkit")
    if host.str_list("VolumesFrom"):
        raise InvalidArgument("HostConfig.VolumesFrom is not supported by containerkit")
    if host.raw("Devices"):
        raise InvalidArgument("HostConfig.Devices is not supported by containerkit")


def _userns_mode(host: Body) -> str | None:
    """``UsernsMode``: ``"host"`` opts out of the daemon's ``userns-remap``; empty keeps its default."""
    mode = host.str("UsernsMode")
    if mode not in ("", "host"):
        raise InvalidArgument(
            f"HostConfig.UsernsMode: {mode!r} is not supported (only 'host', or empty for the default)"
        )
    return mode or None


def create_request(raw: Any, name: str | None, *, networking: bool) -> CreateRequest:
    """Translate docker's create body (``Config`` fields plus ``HostConfig``/``NetworkingConfig``)."""
    body = Body(raw)
    image = body.str("Image")
    if not image.strip():
        raise InvalidArgument("Image: a container needs an image (the Image field is empty)")
    host = body.obj("HostConfig")
    _refuse(host)
    warnings: list[str] = []
    restart = host.obj("RestartPolicy").str("Name")
    if restart not in ("", "no"):
        warnings.append(f"restart policy {restart!r} is not applied by containerkit")
    entrypoint = body.str_list("Entrypoint")
    if entrypoint == [""]:
        entrypoint = []
    exposed = body.obj("ExposedPorts").names()
    ports = port_bindings(host.obj("PortBindings"), exposed, host.bool("PublishAllPorts"))
    mode = host.str("NetworkMode")
    if body.bool("NetworkDisabled"):
        mode = "none"
    endpoints = body.obj("NetworkingConfig").obj("EndpointsConfig")
    network = "bridge" if mode in _DEFAULT_NETWORKS else mode
    aliases: list[str] = []
    endpoint = endpoints.raw(mode or "default") or endpoints.raw(network)
    if isinstance(endpoint, dict):
        aliases = Body(endpoint, f"NetworkingConfig.EndpointsConfig.{network}").str_list("Aliases") or []
    if not networking:
        if ports:
            raise NotImplementedYet(
                "port publishing needs networking, which this containerkit engine does not have yet"
            )
        if network not in ("bridge", "none"):
            raise NotImplementedYet(
                f"network {network!r}: networking is not available in this containerkit engine yet"
            )
        network = "none"
    mounts = _binds(host.str_list("Binds")) + _mounts(host.raw("Mounts")) + _tmpfs(host.obj("Tmpfs"))
    bound = {m.target for m in mounts}
    for path in body.obj("Volumes").names():
        if path not in bound:
            mounts.append(Mount(type="volume", target=path))
    # dockerd's parseSecurityOpt errors; seccomp=<profile JSON> is what the docker CLI sends
    security, no_new_privs = split_no_new_privileges(host.str_list("SecurityOpt") or [])
    extra_hosts: dict[str, str] = {}
    for entry in host.str_list("ExtraHosts") or []:
        sep = "=" if "=" in entry else ":"
        hostname, _, address = entry.partition(sep)
        if not hostname or not address:
            raise InvalidArgument(f"HostConfig.ExtraHosts: invalid entry {entry!r} (expected host:ip)")
        extra_hosts[hostname] = address
    fields: dict[str, Any] = {
        "image": image,
        "command": body.str_list("Cmd"),
        "entrypoint": entrypoint,
        "name": name.lstrip("/") if name else None,
        "env": body.str_list("Env") or (),
        "workdir": body.opt_str("WorkingDir"),
        "user": body.opt_str("User"),
        "hostname": body.opt_str("Hostname"),
        "labels": body.str_map("Labels"),
        "mounts": mounts,
        "resources": _resources(host),
        "tty": body.bool("Tty"),
        "stdin_open": body.bool("OpenStdin"),
        "stdin_once": body.bool("StdinOnce"),
        "read_only": host.bool("ReadonlyRootfs"),
        "cap_add": host.str_list("CapAdd") or (),
        "cap_drop": host.str_list("CapDrop") or (),
        "privileged": host.bool("Privileged"),
        "no_new_privileges": no_new_privs,
        "security_opt": security,
        "init": host.bool("Init"),
        "auto_remove": host.bool("AutoRemove"),
        "stop_signal": body.opt_str("StopSignal"),
        "stop_timeout": body.raw("StopTimeout") if isinstance(body.raw("StopTimeout"), int) else None,
        "network": network,
        "ports": ports,
        "aliases": aliases,
        "dns": host.str_list("Dns") or (),
        "extra_hosts": extra_hosts,
        "mac_address": body.opt_str("MacAddress"),
        "userns": _userns_mode(host),
        "runtime": host.opt_str("Runtime") or "builtin",  # `docker run --runtime runc`
        # docker's LogConfig; an unknown Type is refused by the spec with dockerd's message
        "log_driver": host.obj("LogConfig").str("Type") or "json-file",
        "log_opts": host.obj("LogConfig").str_map("Config"),
    }
    if body.raw("StopTimeout") is not None and not isinstance(body.raw("StopTimeout"), int):
        raise InvalidArgument(f"StopTimeout: expected an integer, got {body.raw('StopTimeout')!r}")
    if not networking or network in ("none", "host"):
        fields.pop("aliases")
    spec = ContainerSpec(**fields)
    docker = {
        "Config": {k: v for k, v in raw.items() if k.lower() not in ("hostconfig", "networkingconfig")},
        "HostConfig": raw.get("HostConfig") or {},
        "NetworkingConfig": raw.get("NetworkingConfig") or {},
    }
    return CreateRequest(spec=spec, docker=docker, warnings=warnings)


def filters_from_query(value: Any) -> dict[str, list[str]]:
    """docker's ``filters`` JSON: ``{"k": ["v"]}`` or the older ``{"k": {"v": true}}``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgument("filters: expected a JSON object")
    result: dict[str, list[str]] = {}
    for key, entry in value.items():
        if isinstance(entry, Mapping):
            result[str(key)] = [str(k) for k, on in entry.items() if on]
        elif isinstance(entry, list):
            result[str(key)] = [str(v) for v in entry]
        elif isinstance(entry, str):
            result[str(key)] = [entry]
        else:
            raise InvalidArgument(f"filters.{key}: expected an array of strings")
    return result

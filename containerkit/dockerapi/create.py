"""``POST /containers/create`` bodies <-> ``ContainerSpec``, both ways, round-trip tested.

Defaults follow moby: ``NetworkMode`` ``""``/``"default"`` is the bridge, zero limits mean
"none", ``MemorySwap`` -1 is unlimited. A setting containerkit cannot honour is refused with a
400 that names it rather than silently ignored; settings that change nothing here (log
options, ``ConsoleSize``, ``OomScoreAdj`` 0...) are accepted. Engine policy (is networking
available, which restart policies apply) stays with the daemon; this module only translates.

Tmpfs mounts travel as ``HostConfig.Tmpfs`` (their option string survives intact), bind and
volume mounts as ``HostConfig.Mounts``. The name is not part of the body (it is the ``name``
query parameter); ``from_create_body`` takes it beside the body.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from containerkit.dockerapi.body import Body
from containerkit.errors import InvalidArgument
from containerkit.spec import ContainerSpec, Healthcheck, Mount, PortBinding, Resources, RestartPolicy

__all__ = [
    "from_create_body",
    "healthcheck_from_wire",
    "inline_seccomp_profile",
    "port_bindings",
    "ports_to_wire",
    "restart_policy_from_wire",
    "restart_policy_to_wire",
    "split_no_new_privileges",
    "to_create_body",
]

_DEFAULT_NETWORKS = ("", "default", "bridge")
_NO_NETWORK_ENDPOINT = {"none", "host", "default", ""}
_PROPAGATION = {"private", "rprivate", "shared", "rshared", "slave", "rslave"}
_NNP = "no-new-privileges"


# -- spec -> body ------------------------------------------------------------------------------


def to_create_body(spec: ContainerSpec) -> dict[str, Any]:
    """The create body for ``spec`` as the docker CLI sends it (the name goes in the query).

    ``SecurityOpt`` carries the options verbatim: a client that talks to a daemon on another
    machine sends a seccomp profile file as its JSON, which is I/O and so the caller's job.
    """
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
    if spec.healthcheck is not None:
        body["Healthcheck"] = spec.healthcheck.to_wire()
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
        "SecurityOpt": security_opt_to_wire(spec),
        "Init": spec.init,
        "AutoRemove": spec.auto_remove,
        "RestartPolicy": restart_policy_to_wire(spec.restart_policy),
        "PortBindings": ports_to_wire(spec.ports),
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
        "CpusetCpus": resources.cpuset_cpus,
        "CpusetMems": resources.cpuset_mems,
    }
    host.update({key: value for key, value in limits.items() if value is not None})
    if spec.runtime != "builtin":  # the daemon's default; dockerd knows no "builtin"
        host["Runtime"] = spec.runtime
    if spec.userns:
        host["UsernsMode"] = spec.userns
    return host


def restart_policy_to_wire(policy: RestartPolicy) -> dict[str, Any]:
    """docker's ``HostConfig.RestartPolicy``."""
    return {"Name": policy.name, "MaximumRetryCount": policy.maximum_retry_count}


def restart_policy_from_wire(value: Any, field: str = "HostConfig.RestartPolicy") -> RestartPolicy:
    """``HostConfig.RestartPolicy`` (absent or null: ``no``); errors name the field."""
    if value is None:
        return RestartPolicy()
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{field}: expected an object, got {value!r}")
    try:
        return RestartPolicy(
            name=str(value.get("Name") or ""), maximum_retry_count=value.get("MaximumRetryCount") or 0
        )
    except InvalidArgument as exc:
        raise InvalidArgument(f"{field}: {exc.message}") from None


def healthcheck_from_wire(value: Any, field: str = "Healthcheck") -> Healthcheck | None:
    """docker's ``Config.Healthcheck`` (durations in nanoseconds); errors name the field."""
    if value is None:
        return None
    try:
        return Healthcheck.from_wire(value)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{field}: {exc.message}") from None


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


def _tmpfs_options(mount: Mount) -> str:
    options = list(mount.options)
    if mount.read_only and "ro" not in options:
        options.append("ro")
    return ",".join(options)


def option_key(option: str) -> str:
    """``no-new-privileges=true`` and ``no-new-privileges:true`` -> ``no-new-privileges``."""
    return option.partition("=")[0].partition(":")[0]


def security_opt_to_wire(spec: ContainerSpec) -> list[str]:
    """``HostConfig.SecurityOpt``: the spec's options, plus the no_new_privileges flag."""
    options = list(spec.security_opt)
    if spec.no_new_privileges and not any(option_key(o) == _NNP for o in options):
        options.append(_NNP)
    return options


def ports_to_wire(ports: Iterable[PortBinding]) -> dict[str, list[dict[str, str]]]:
    """``HostConfig.PortBindings``: ``{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}``."""
    bindings: dict[str, list[dict[str, str]]] = {}
    for port in ports:
        bindings.setdefault(port.key, []).append(
            {"HostIp": port.host_ip, "HostPort": str(port.host_port) if port.host_port else ""}
        )
    return bindings


# -- body -> spec ------------------------------------------------------------------------------


def split_no_new_privileges(options: Iterable[str]) -> tuple[list[str], bool]:
    """``(the other options, no_new_privileges)``: the spec keeps the flag in its own field;
    the last entry wins (bare, ``=true``/``:true`` or ``=false``). Checking the other options
    against dockerd's list is the runtime's job (``seccomp_profile.parse_security_opt``)."""
    rest: list[str] = []
    value = False
    for option in options:
        if option_key(option) != _NNP:
            rest.append(option)
            continue
        setting = option[len(_NNP) + 1 :]
        value = setting.lower() not in ("false", "0", "f")
    return rest, value


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
        # "ro" is the read_only flag, not an option (``_tmpfs_options`` adds it back)
        mounts.append(
            Mount(type="tmpfs", target=target, options=[o for o in opts if o != "ro"], read_only="ro" in opts)
        )
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
        propagation = item.obj("BindOptions").str("Propagation")
        if kind == "bind" and propagation:
            if propagation not in _PROPAGATION:
                raise InvalidArgument(
                    f"HostConfig.Mounts[{n}].BindOptions.Propagation: invalid propagation {propagation!r}"
                )
            options.append(propagation)
        if kind == "volume" and item.obj("VolumeOptions").bool("NoCopy"):
            options.append("nocopy")
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
        cpuset_cpus=host.str("CpusetCpus") or None,
        cpuset_mems=host.str("CpusetMems") or None,
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


def _extra_hosts(entries: list[str] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for entry in entries or []:
        sep = "=" if "=" in entry else ":"
        hostname, _, address = entry.partition(sep)
        if not hostname or not address:
            raise InvalidArgument(f"HostConfig.ExtraHosts: invalid entry {entry!r} (expected host:ip)")
        result[hostname] = address
    return result


def network_of(body: Body) -> str:
    """The spec's ``network`` for a create body: ``""``/``default``/``bridge`` are the bridge."""
    mode = body.obj("HostConfig").str("NetworkMode")
    if body.bool("NetworkDisabled"):
        mode = "none"
    return "bridge" if mode in _DEFAULT_NETWORKS else mode


def from_create_body(raw: Any, name: str | None = None) -> ContainerSpec:
    """The spec for docker's create body (``Config`` fields plus ``HostConfig`` and
    ``NetworkingConfig``) and the ``name`` query parameter; errors name the field."""
    body = Body(raw)
    image = body.str("Image")
    if not image.strip():
        raise InvalidArgument("Image: a container needs an image (the Image field is empty)")
    host = body.obj("HostConfig")
    _refuse(host)
    entrypoint = body.str_list("Entrypoint")
    if entrypoint == [""]:
        entrypoint = []
    exposed = body.obj("ExposedPorts").names()
    ports = port_bindings(host.obj("PortBindings"), exposed, host.bool("PublishAllPorts"))
    mode = "none" if body.bool("NetworkDisabled") else host.str("NetworkMode")
    network = network_of(body)
    endpoints = body.obj("NetworkingConfig").obj("EndpointsConfig")
    aliases: list[str] = []
    endpoint = endpoints.raw(mode or "default") or endpoints.raw(network)
    if isinstance(endpoint, dict) and network not in ("none", "host"):
        aliases = Body(endpoint, f"NetworkingConfig.EndpointsConfig.{network}").str_list("Aliases") or []
    mounts = _binds(host.str_list("Binds")) + _mounts(host.raw("Mounts")) + _tmpfs(host.obj("Tmpfs"))
    bound = {m.target for m in mounts}
    for path in body.obj("Volumes").names():
        if path not in bound:
            mounts.append(Mount(type="volume", target=path))
    security, no_new_privs = split_no_new_privileges(host.str_list("SecurityOpt") or [])
    stop_timeout = body.raw("StopTimeout")
    if stop_timeout is not None and (not isinstance(stop_timeout, int) or isinstance(stop_timeout, bool)):
        raise InvalidArgument(f"StopTimeout: expected an integer, got {stop_timeout!r}")
    log = host.obj("LogConfig")
    return ContainerSpec(
        image=image,
        command=body.str_list("Cmd"),
        entrypoint=entrypoint,
        name=name.lstrip("/") if name else None,
        env=body.str_list("Env") or (),
        workdir=body.opt_str("WorkingDir"),
        user=body.opt_str("User"),
        hostname=body.opt_str("Hostname"),
        labels=body.str_map("Labels"),
        mounts=mounts,
        resources=_resources(host),
        tty=body.bool("Tty"),
        stdin_open=body.bool("OpenStdin"),
        stdin_once=body.bool("StdinOnce"),
        read_only=host.bool("ReadonlyRootfs"),
        cap_add=host.str_list("CapAdd") or (),
        cap_drop=host.str_list("CapDrop") or (),
        privileged=host.bool("Privileged"),
        no_new_privileges=no_new_privs,
        security_opt=security,
        init=host.bool("Init"),
        auto_remove=host.bool("AutoRemove"),
        stop_signal=body.opt_str("StopSignal"),
        stop_timeout=stop_timeout,
        network=network,
        ports=ports,
        aliases=aliases,
        dns=host.str_list("Dns") or (),
        extra_hosts=_extra_hosts(host.str_list("ExtraHosts")),
        mac_address=body.opt_str("MacAddress"),
        userns=_userns_mode(host),
        runtime=host.opt_str("Runtime") or "builtin",  # `docker run --runtime runc`
        # docker's LogConfig; an unknown Type is refused by the spec with dockerd's message
        log_driver=log.str("Type") or "json-file",
        log_opts=log.str_map("Config"),
        restart_policy=restart_policy_from_wire(host.raw("RestartPolicy")),
        healthcheck=healthcheck_from_wire(body.raw("Healthcheck")),
    )


def inline_seccomp_profile(option: str) -> str:
    """A ``seccomp=<file>`` security option with the file's JSON in place of its path, as the
    docker CLI sends it (the daemon may be on another machine); other options as given."""
    key, sep, value = option.partition("=")
    if not sep:
        key, sep, value = option.partition(":")
    if key != "seccomp" or value in ("unconfined", "builtin", "") or value.lstrip().startswith("{"):
        return option
    what = f"seccomp profile ({value})"
    try:
        with open(value) as f:
            return "seccomp=" + json.dumps(json.load(f), separators=(",", ":"))
    except OSError as exc:
        raise InvalidArgument(f"opening {what} failed: {exc.strerror}") from None
    except ValueError as exc:
        raise InvalidArgument(f"compacting json for {what} failed: {exc}") from None

"""Objects as docker shows them: ``ps`` rows, ``images`` rows and ``inspect`` documents."""

from __future__ import annotations

import contextlib
import os
import shlex
from typing import TYPE_CHECKING, Any

from containerkit.cli import _output as out

if TYPE_CHECKING:
    from containerkit.api import Backend, ContainerHandle
    from containerkit.spec import ContainerSpec, Image, Volume

__all__ = [
    "container_command",
    "container_inspect",
    "container_row",
    "container_status",
    "image_inspect",
    "image_rows",
    "ports_text",
    "volume_inspect",
]


def _image_config(engine: Backend, container: ContainerHandle) -> dict[str, Any]:
    with contextlib.suppress(Exception):
        return engine.images.config(container.image_id).to_oci()
    return {}


def container_command(engine: Backend, container: ContainerHandle) -> list[str]:
    """The argv the container runs: entrypoint + command, the image filling what the spec left."""
    spec = container.spec
    config = _image_config(engine, container)
    entrypoint = (
        list(spec.entrypoint) if spec.entrypoint is not None else list(config.get("Entrypoint") or [])
    )
    if spec.command is not None:
        command = list(spec.command)
    elif spec.entrypoint is not None:
        command = []
    else:
        command = list(config.get("Cmd") or [])
    return entrypoint + command


def container_status(container: ContainerHandle) -> tuple[str, str]:
    """(state, docker's status text): ("running", "Up 5 seconds"), ("exited", "Exited (0) 2 minutes ago")."""
    state = str(container.status)
    if state in ("running", "paused"):
        text = f"Up {out.human_duration(out.since(container.started_at))}"
        return state, text + (" (Paused)" if state == "paused" else "")
    if state in ("exited", "dead"):
        finished = container.finished_at
        when = f" {out.ago(finished)}" if finished else ""
        return state, ("Exited" if state == "exited" else "Dead") + f" ({container.exit_code}){when}"
    return state, state.capitalize()


def _published(container: ContainerHandle) -> list[tuple[str, int, int, str]]:
    """(host ip, host port, container port, proto) of the published ports."""
    result: list[tuple[str, int, int, str]] = []
    for key, bindings in container.ports.items():
        port, _, proto = key.partition("/")
        for host_ip, host_port in bindings:
            result.append((host_ip, host_port, int(port), proto or "tcp"))
    return result


def ports_text(container: ContainerHandle) -> str:
    items = []
    for host_ip, host_port, port, proto in _published(container):
        items.append(f"{host_ip}:{host_port}->{port}/{proto}" if host_port else f"{port}/{proto}")
    return ", ".join(items)


def container_row(engine: Backend, container: ContainerHandle, *, trunc: bool = True) -> dict[str, str]:
    """One ``ps`` record with docker's ``--format`` field names."""
    state, status = container_status(container)
    command = shlex.join(container_command(engine, container))
    labels = container.labels
    return {
        "ID": container.short_id if trunc else container.id,
        "Image": container.image,
        "Command": f'"{out.truncate(command, 20) if trunc else command}"',
        "CreatedAt": container.created.strftime("%Y-%m-%d %H:%M:%S %z UTC"),
        "RunningFor": out.ago(container.created),
        "Status": status,
        "State": state,
        "Ports": ports_text(container),
        "Names": container.name,
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "Mounts": ",".join(m.source or m.target for m in container.spec.mounts),
        "Networks": ",".join(_networks(container)),
    }


def container_inspect(engine: Backend, container: ContainerHandle) -> dict[str, Any]:
    """docker's ``inspect`` document for a container, as far as the engine knows the fields."""
    from containerkit.cli._backend import client_container, engine_container, local_engine

    remote = client_container(container)
    if remote is not None:  # the daemon's own document, as it gave it
        return dict(remote.attrs)
    local = engine_container(container)
    local_root = local_engine(engine)
    spec = container.spec
    config = _image_config(engine, container)
    argv = container_command(engine, container)
    status = str(container.status)
    env = dict(item.partition("=")[::2] for item in config.get("Env") or [])
    env.update(spec.env_dict)
    ports: dict[str, list[dict[str, str]]] = {}
    for host_ip, host_port, port, proto in _published(container):
        ports.setdefault(f"{port}/{proto}", []).append({"HostIp": host_ip, "HostPort": str(host_port)})
    resources = spec.resources
    return {
        "Id": container.id,
        "Created": out.rfc3339(container.created),
        "Path": argv[0] if argv else "",
        "Args": argv[1:],
        "State": {
            "Status": status,
            "Running": status in ("running", "paused"),
            "Paused": status == "paused",
            "Restarting": False,
            "OOMKilled": bool(container.oom_killed),
            "Dead": status == "dead",
            "Pid": container.pid or 0,
            "ExitCode": container.exit_code or 0,
            "Error": (local.runtime_state().error if local is not None else None) or "",
            "StartedAt": container.started_at or "0001-01-01T00:00:00Z",
            "FinishedAt": container.finished_at or "0001-01-01T00:00:00Z",
        },
        "Image": container.image_id,
        "Name": "/" + container.name,
        "RestartCount": 0,
        "Driver": local_root.snapshots.driver if local_root is not None else "",
        "Platform": "linux",
        "HostConfig": {
            "AutoRemove": spec.auto_remove,
            "Binds": [
                f"{m.source}:{m.target}{':ro' if m.read_only else ''}"
                for m in spec.mounts
                if m.type == "bind"
            ],
            "NetworkMode": spec.network,
            "PortBindings": {
                f"{p.container_port}/{p.protocol}": [
                    {"HostIp": p.host_ip, "HostPort": str(p.host_port or "")}
                ]
                for p in spec.ports
            },
            "CapAdd": list(spec.cap_add),
            "CapDrop": list(spec.cap_drop),
            "Privileged": spec.privileged,
            "ReadonlyRootfs": spec.read_only,
            "Init": spec.init,
            "Memory": resources.memory or 0,
            "MemorySwap": resources.memory_swap or 0,
            "NanoCpus": int((resources.cpus or 0) * 1e9),
            "CpuShares": resources.cpu_shares or 0,
            "PidsLimit": resources.pids,
            "Runtime": spec.runtime,
            "Dns": list(spec.dns),
            "ExtraHosts": [f"{h}:{ip}" for h, ip in spec.extra_hosts],
            "SecurityOpt": _security_opt(spec) or None,
        },
        "Mounts": [
            {
                "Type": m.type,
                "Name": m.source if m.type == "volume" else "",
                "Source": m.source,
                "Destination": m.target,
                "RW": not m.read_only,
            }
            for m in spec.mounts
        ],
        "Config": {
            "Hostname": spec.hostname or container.id[:12],
            "User": spec.user if spec.user is not None else config.get("User", ""),
            "Tty": spec.tty,
            "OpenStdin": spec.stdin_open,
            "Env": [f"{k}={v}" for k, v in env.items()],
            "Cmd": list(spec.command) if spec.command is not None else config.get("Cmd"),
            "Entrypoint": list(spec.entrypoint) if spec.entrypoint is not None else config.get("Entrypoint"),
            "Image": container.image,
            "WorkingDir": spec.workdir or config.get("WorkingDir", ""),
            "Labels": container.labels,
            "StopSignal": spec.stop_signal or config.get("StopSignal") or "SIGTERM",
            "StopTimeout": spec.stop_timeout,
            "ExposedPorts": {p: {} for p in config.get("ExposedPorts") or {}},
        },
        "NetworkSettings": {
            "Ports": ports,
            "IPAddress": container.ip_address,
            "Networks": _networks(container),
        },
    }


def _security_opt(spec: ContainerSpec) -> list[str]:
    """``HostConfig.SecurityOpt``: the spec's options, plus the no_new_privileges flag."""
    options = list(spec.security_opt)
    if spec.no_new_privileges and not any(o.startswith("no-new-privileges") for o in options):
        options.append("no-new-privileges")
    return options


def _networks(container: ContainerHandle) -> dict[str, Any]:
    return {
        name: {
            "NetworkID": e.network_id,
            "IPAddress": e.ip,
            "IPPrefixLen": e.prefixlen,
            "Gateway": e.gateway,
            "MacAddress": e.mac,
            "Aliases": list(e.aliases),
        }
        for name, e in container.networks.items()
    }


def image_rows(images: list[Image], *, trunc: bool = True, digests: bool = False) -> list[dict[str, str]]:
    """``images`` records: one per tag (``<none>`` for an untagged image)."""
    rows = []
    for image in images:
        image_id = image.short_id if trunc else image.id
        names = list(image.tags) or ["<none>:<none>"]
        for name in names:
            repo, _, tag = name.rpartition(":")
            if "/" in tag:  # a registry port, not a tag
                repo, tag = name, "<none>"
            rows.append(
                {
                    "Repository": repo,
                    "Tag": tag,
                    "Digest": next(iter(image.digests), "<none>").rpartition("@")[2] if digests else "",
                    "ID": image_id,
                    "CreatedSince": out.ago(image.created) if image.created else "N/A",
                    "CreatedAt": image.created.strftime("%Y-%m-%d %H:%M:%S %z UTC") if image.created else "",
                    "Size": out.human_size(image.size),
                }
            )
    return rows


def image_inspect(image: Image) -> dict[str, Any]:
    return {
        "Id": image.id,
        "RepoTags": list(image.tags),
        "RepoDigests": list(image.digests),
        "Created": out.rfc3339(image.created),
        "Architecture": image.architecture,
        "Os": image.os,
        "Size": image.size,
        "Config": image.config.to_oci(),
        "RootFS": {"Type": "layers", "Layers": list(image.layers)},
    }


def volume_inspect(volume: Volume) -> dict[str, Any]:
    return {
        "CreatedAt": out.rfc3339(volume.created),
        "Driver": volume.driver,
        "Labels": dict(volume.labels),
        "Mountpoint": volume.mountpoint,
        "Name": volume.name,
        "Options": None,
        "Scope": "local",
    }


def host_memory() -> int:
    """Total memory of the host in bytes (docker's limit for an unlimited container)."""
    with contextlib.suppress(OSError, ValueError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return 0

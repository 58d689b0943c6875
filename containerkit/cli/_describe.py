"""Objects as docker shows them: ``ps`` rows, ``images`` rows and ``inspect`` documents (the
documents come from :mod:`containerkit.dockerapi`, the same the daemon serves)."""

from __future__ import annotations

import contextlib
import os
import shlex
from typing import TYPE_CHECKING, Any

from containerkit.cli import _output as out
from containerkit.spec import ContainerStatus

if TYPE_CHECKING:
    from containerkit.api import Backend, ContainerHandle
    from containerkit.spec import Image, ImageConfig, Volume

__all__ = [
    "container_command",
    "container_inspect",
    "container_row",
    "container_size",
    "container_status",
    "image_inspect",
    "image_rows",
    "ports_text",
    "volume_inspect",
]


def _image_config(engine: Backend, container: ContainerHandle) -> ImageConfig | None:
    with contextlib.suppress(Exception):
        return engine.images.config(container.image_id)
    return None


def _driver(engine: Backend) -> str:
    """The storage driver's name (``overlay``, ``copy``); a remote daemon's is in its documents."""
    from containerkit.cli._backend import local_engine

    local = local_engine(engine)
    return local.snapshots.driver if local is not None else ""


def container_command(engine: Backend, container: ContainerHandle) -> list[str]:
    """The argv the container runs: entrypoint + command, the image filling what the spec left."""
    spec = container.spec
    config = _image_config(engine, container)
    entrypoint = (
        list(spec.entrypoint) if spec.entrypoint is not None else list((config and config.entrypoint) or [])
    )
    if spec.command is not None:
        command = list(spec.command)
    elif spec.entrypoint is not None:
        command = []
    else:
        command = list((config and config.cmd) or [])
    return entrypoint + command


def container_status(container: ContainerHandle) -> tuple[str, str]:
    """(state, docker's status text): ("running", "Up 5 seconds"), ("exited", "Exited (0) 2 minutes ago")."""
    from containerkit.dockerapi.times import human_status

    state = str(container.status)
    health = _health_status(container) if ContainerStatus.of(state) is ContainerStatus.RUNNING else None
    started, finished = container.started_at, container.finished_at
    return state, human_status(state, started, finished, container.exit_code, health=health)


def _health_status(container: ContainerHandle) -> str | None:
    """``starting``/``healthy``/``unhealthy``; None without a health check."""
    from containerkit.cli._backend import client_container, engine_container

    remote = client_container(container)
    if remote is not None:
        health = (remote.attrs.get("State") or {}).get("Health") or {}
        return str(health["Status"]) if health.get("Status") else None
    local = engine_container(container)
    found = local.health if local is not None else None
    return found.status if found is not None else None


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


def container_size(engine: Backend, container: ContainerHandle) -> str:
    """``ps -s``: what the container wrote and, with its image, the virtual size (``12B (virtual
    4.26MB)``), file sizes added as dockerd adds them (the daemon's ``SizeRw``/``SizeRootFs``
    for a remote container); ``N/A`` where it was removed while we listed."""
    from containerkit.cli._backend import client_container, engine_container
    from containerkit.errors import ContainerkitError

    handle = client_container(container) or engine_container(container)
    if handle is None:
        return "N/A"
    try:
        size = handle.size()
    except (ContainerkitError, OSError):  # removed while we listed
        return "N/A"
    written = out.human_size(size.rw)
    # docker's CLI prints the virtual size only where the daemon sent one
    return f"{written} (virtual {out.human_size(size.root_fs)})" if size.root_fs else written


def container_inspect(engine: Backend, container: ContainerHandle) -> dict[str, Any]:
    """docker's ``inspect`` document for a container: the daemon's own for a remote one, else
    the daemon's shape (:func:`containerkit.dockerapi.container_inspect`) from the engine."""
    from containerkit import dockerapi
    from containerkit.cli._backend import client_container, engine_container

    remote = client_container(container)
    if remote is not None:  # the daemon's own document, as it gave it
        return dict(remote.attrs)
    local = engine_container(container)
    return dockerapi.container_inspect(
        container,
        args=container_command(engine, container),
        image_config=_image_config(engine, container),
        driver=_driver(engine),
        error=(local.runtime_state().error if local is not None else None) or "",
        health=local.health if local is not None else None,
        restart_count=local.restart_count if local is not None else 0,
    )


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


def image_inspect(engine: Backend, image: Image) -> dict[str, Any]:
    """docker's ``inspect`` document for an image, as the daemon serves it."""
    from containerkit import dockerapi

    return dockerapi.image_inspect(image, driver=_driver(engine))


def volume_inspect(volume: Volume) -> dict[str, Any]:
    from containerkit import dockerapi

    return dockerapi.volume_json(volume)


def host_memory() -> int:
    """Total memory of the host in bytes (docker's limit for an unlimited container)."""
    with contextlib.suppress(OSError, ValueError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return 0

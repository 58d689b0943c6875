"""The daemon's side of Docker's JSON: gather what the engine knows of a container and hand
it to :mod:`containerkit.dockerapi`, which owns the shapes; and docker's stats objects, which
read the host (``/proc/stat``, the memory size).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from containerkit import dockerapi
from containerkit.dockerapi.times import ZERO_TIME, rfc3339
from containerkit.spec import ContainerStatus, Image, Stats

if TYPE_CHECKING:
    from containerkit.engine import Container

__all__ = [
    "container_inspect",
    "container_summary",
    "host_platform",
    "stats_json",
    "system_cpu_ns",
]


def container_inspect(
    container: Container, image: Image | None, exec_ids: Sequence[str], *, driver: str
) -> dict[str, Any]:
    """``GET /containers/{id}/json``; ``driver`` is the snapshot store's (``overlay``, ``copy``)."""
    seen, state = container.look()
    return dockerapi.container_inspect(
        seen,
        args=container.process_args(),
        image_config=image.config if image is not None else None,
        driver=driver,
        docker=container.extra,  # docker's create body, kept with the container at create
        error=state.error or "",
        log_path=container.log_path,
        exec_ids=exec_ids,
        health=container.health,
        restart_count=container.restart_count,
    )


def container_summary(container: Container) -> dict[str, Any]:
    """One entry of the list; ``(healthy)`` in its status for a running container with a check."""
    health = container.health if ContainerStatus.of(container.status) is ContainerStatus.RUNNING else None
    return dockerapi.container_summary(
        container, args=container.process_args(), docker=container.extra, health=health
    )


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

"""``POST /containers/{id}/update`` (``docker update``) bodies, both ways.

The body is a subset of ``HostConfig``; a zero, empty or absent field leaves that setting as it
is (the docker CLI sends every field, zeros included). The keyword names are those of
``Container.update``. A setting containerkit cannot change is refused naming the field, rather
than answered as done.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from containerkit.dockerapi.body import Body
from containerkit.dockerapi.create import restart_policy_from_wire, restart_policy_to_wire
from containerkit.errors import InvalidArgument
from containerkit.spec import RestartPolicy

__all__ = ["update_from_wire", "update_to_wire"]

_CPU_PERIOD_US = 100_000

_REFUSED = (
    "BlkioWeight",
    "CpuRealtimePeriod",
    "CpuRealtimeRuntime",
    "KernelMemory",
    "KernelMemoryTCP",
    "MemoryReservation",
    "CpuCount",
    "CpuPercent",
    "IOMaximumIOps",
    "IOMaximumBandwidth",
)


def update_from_wire(data: Mapping[str, Any] | None) -> dict[str, Any]:
    """The keywords for ``Container.update`` from docker's body (only what it changes)."""
    body = Body(dict(data or {}))
    for key in _REFUSED:
        if body.raw(key) not in (None, 0, "", []):
            raise InvalidArgument(f"{key}: containerkit cannot update this setting")
    changes: dict[str, Any] = {}
    if body.int("Memory") > 0:
        changes["memory"] = body.int("Memory")
    swap = body.int("MemorySwap")
    if swap:
        changes["memory_swap"] = swap if swap > 0 else -1
    if body.int("NanoCpus") > 0:
        changes["cpus"] = body.int("NanoCpus") / 1e9
    elif body.int("CpuQuota") > 0:
        changes["cpus"] = body.int("CpuQuota") / (body.int("CpuPeriod") or _CPU_PERIOD_US)
    elif body.int("CpuPeriod") > 0:
        raise InvalidArgument("CpuPeriod: set together with CpuQuota (or use NanoCpus)")
    if body.int("CpuShares") > 0:
        changes["cpu_shares"] = body.int("CpuShares")
    pids = body.int("PidsLimit")
    if pids:
        changes["pids"] = pids if pids > 0 else -1
    if body.str("CpusetCpus"):
        changes["cpuset_cpus"] = body.str("CpusetCpus")
    if body.str("CpusetMems"):
        changes["cpuset_mems"] = body.str("CpusetMems")
    policy = body.raw("RestartPolicy")
    if isinstance(policy, Mapping) and policy.get("Name"):
        changes["restart_policy"] = restart_policy_from_wire(policy, "RestartPolicy")
    elif policy is not None and not isinstance(policy, Mapping):
        raise InvalidArgument(f"RestartPolicy: expected an object, got {policy!r}")
    return changes


def update_to_wire(
    *,
    memory: int | None = None,
    memory_swap: int | None = None,
    cpus: float | None = None,
    cpu_shares: int | None = None,
    pids: int | None = None,
    cpuset_cpus: str | None = None,
    cpuset_mems: str | None = None,
    restart_policy: RestartPolicy | None = None,
) -> dict[str, Any]:
    """docker's body for those keywords (what the client sends)."""
    body: dict[str, Any] = {}
    if memory is not None:
        body["Memory"] = memory
    if memory_swap is not None:
        body["MemorySwap"] = memory_swap
    if cpus is not None:
        body["NanoCpus"] = round(cpus * 1e9)
    if cpu_shares is not None:
        body["CpuShares"] = cpu_shares
    if pids is not None:
        body["PidsLimit"] = pids
    if cpuset_cpus is not None:
        body["CpusetCpus"] = cpuset_cpus
    if cpuset_mems is not None:
        body["CpusetMems"] = cpuset_mems
    if restart_policy is not None:
        body["RestartPolicy"] = restart_policy_to_wire(restart_policy)
    return body

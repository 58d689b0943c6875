"""Models <-> Docker Engine API JSON for the client: :mod:`containerkit.dockerapi` owns the
shapes (create bodies, inspect, filters); this adds what only a client does: read a seccomp
profile file to send its JSON, exec and tag requests, and stats read back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from containerkit.dockerapi import (
    endpoint_from_wire,
    image_from_wire,
    parse_time,
    spec_from_inspect,
    to_create_body,
    volume_from_wire,
)
from containerkit.dockerapi import filters_to_query as filters_param
from containerkit.dockerapi.create import inline_seccomp_profile
from containerkit.errors import InvalidReference
from containerkit.spec import ContainerSpec, ImageConfig, Stats

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

_UNLIMITED = 1 << 62


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
    """The ``POST /containers/create`` body for ``spec`` (the name goes in the query); a
    seccomp profile file is sent as its JSON, as the docker CLI does (the daemon may be on
    another machine)."""
    body = to_create_body(spec)
    host = body["HostConfig"]
    host["SecurityOpt"] = [inline_seccomp_profile(option) for option in host["SecurityOpt"]]
    return body


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


# -- images ----------------------------------------------------------------------------------


def image_config(config: ImageConfig | Mapping[str, Any] | None) -> ImageConfig:
    """``import_rootfs``'s ``config``, as the Engine takes it."""
    return ImageConfig.coerce(config)


def import_changes(config: ImageConfig) -> list[str]:
    """The config as Dockerfile instructions, the ``changes`` of ``docker import``."""
    return config.to_changes()

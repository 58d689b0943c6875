"""What a shim is asked to run and what it answers: plain data that crosses process boundaries.

Its own module so the starting side (:mod:`~containerkit.runtime.launcher`, the spawner) and
the shim share it without importing one another.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import attrs

from containerkit._model import model
from containerkit.errors import InvalidArgument
from containerkit.spec import Resources

__all__ = ["RuntimeName", "ShimRequest", "StartedContainer"]

RuntimeName = Literal["builtin", "runc", "crun"]


def _path(value: str | Path) -> Path:
    return Path(value)


def _optional_path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)


def _optional_argv(value: list[str] | tuple[str, ...] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    argv = tuple(str(arg) for arg in value)
    if not argv:
        raise InvalidArgument("exit_command: an empty argv")
    return argv


def _resources(value: Resources | dict[str, Any] | None) -> Resources | None:
    if value is None or isinstance(value, Resources):
        return value
    return Resources(**value)


@model(kw_only=True)
class ShimRequest:
    """Everything a shim needs to run one container; crosses process boundaries as JSON.

    ``rootfs_mount`` ({"type", "source", "options"}) is mounted by the shim at the bundle's
    ``root.path`` for runc/crun (when None, the bundle's ``org.containerkit.rootfs-mount``
    annotation is used); the builtin runtime mounts it inside the container itself.
    ``stdin_once`` closes the container's stdin after the first writer of the FIFO leaves.
    ``exit_command``: an argv the shim runs once the exit is recorded and waits for before it
    exits itself (conmon's ``--exit-command``: the engine's restart policy and auto-remove),
    with ``CONTAINERKIT_EXIT_CODE`` in its environment. ``health``: ``{"check": Healthcheck
    fields, "process": the check's OCI process}`` for the checker the shim runs beside the
    container (:mod:`containerkit.runtime.health`). Both None for most containers: the default
    path starts no extra process.
    """

    container_id: str
    bundle: Path = attrs.field(converter=_path)
    state_dir: Path = attrs.field(converter=_path)
    runtime: RuntimeName = attrs.field(default="builtin")
    tty: bool = False
    stdin_open: bool = False
    stdin_once: bool = False
    cgroup_name: str | None = None
    resources: Resources | None = attrs.field(default=None, converter=_resources)
    rootfs_mount: dict[str, Any] | None = None
    runc_root: Path | None = attrs.field(default=None, converter=_optional_path)
    log_driver: str = "json-file"
    log_opts: dict[str, str] = attrs.field(factory=dict)
    running_marker: Path | None = attrs.field(default=None, converter=_optional_path)
    """A file the engine made before the start: the shim unlinks it once the exit is recorded,
    so that one directory listing tells which containers still run."""
    exit_command: tuple[str, ...] | None = attrs.field(default=None, converter=_optional_argv)
    health: dict[str, Any] | None = None

    @runtime.validator
    def _check_runtime(self, _a: attrs.Attribute[str], value: str) -> None:
        if value not in ("builtin", "runc", "crun"):
            raise InvalidArgument(f"runtime must be builtin, runc or crun, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "container_id": self.container_id,
            "bundle": str(self.bundle),
            "state_dir": str(self.state_dir),
            "runtime": self.runtime,
            "tty": self.tty,
            "stdin_open": self.stdin_open,
            "stdin_once": self.stdin_once,
            "cgroup_name": self.cgroup_name,
            "resources": None if self.resources is None else attrs.asdict(self.resources),
            "rootfs_mount": self.rootfs_mount,
            "runc_root": None if self.runc_root is None else str(self.runc_root),
            "log_driver": self.log_driver,
            "log_opts": dict(self.log_opts),
            "running_marker": None if self.running_marker is None else str(self.running_marker),
            "exit_command": None if self.exit_command is None else list(self.exit_command),
            "health": self.health,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShimRequest:
        return cls(**data)


@model(kw_only=True)
class StartedContainer:
    """A container whose process has exec'd: host pids plus start times (for pid-reuse checks)."""

    pid: int
    pid_start_time: int
    shim_pid: int
    shim_start_time: int
    started_at: str
    state_dir: Path
    exit_fd: int | None = None
    """Asked for with ``start_container(keep_exit_fd=True)``: reads EOF once the exit is handled."""

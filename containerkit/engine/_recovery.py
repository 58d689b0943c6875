"""Finishing what a killed process left half done under an engine root.

A container being created or removed is marked in the metadata with its owner, the process
doing it (pid and start time, so a reused pid is not taken for it); staged files and dirs are
held with a lock by their writer. Only what a process that is gone left behind is rolled back
or finished, so one process recovers safely while others work on the same root.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING

from containerkit._log import get_logger
from containerkit.errors import ContainerkitError
from containerkit.linux import proc, staging
from containerkit.spec import ContainerStatus

if TYPE_CHECKING:
    from containerkit.engine.container_service import ContainerService
    from containerkit.engine.engine import Engine

__all__ = [
    "SPOOL_DIR",
    "finish_containers",
    "finish_lost_removals",
    "owner_alive",
    "owner_token",
    "reap_staging",
    "restart_containers",
]

log = get_logger("containerkit.engine")

SPOOL_DIR = "tmp"
"""``<root>/tmp``: request bodies the daemon spools to disk (image loads)."""

_token: tuple[int, str] | None = None


def owner_token() -> str:
    """``<pid>:<start time>`` of this process."""
    global _token
    pid = os.getpid()
    if _token is None or _token[0] != pid:
        _token = (pid, f"{pid}:{proc.start_time(pid)}")
    return _token[1]


def owner_alive(token: str) -> bool:
    """Whether the process ``token`` names still runs (an unparsable token: no)."""
    pid, _, start = token.partition(":")
    try:
        return proc.is_alive(int(pid), int(start))
    except ValueError:
        return False


def finish_containers(service: ContainerService) -> list[str]:
    """Roll back the creations and finish the removals whose process is gone; the ids done."""
    done = []
    for container_id, state, owner in service.metadata.containers.unfinished():
        if owner_alive(owner):
            continue
        try:
            if state is ContainerStatus.CREATING:
                service.roll_back(container_id)
            else:
                service.take_apart(container_id)
        except ContainerkitError as exc:
            log.warning("cannot finish %s of container %s: %s", state, container_id, exc)
            continue
        done.append(container_id)
    return done + finish_lost_removals(service)


def finish_lost_removals(service: ContainerService) -> list[str]:
    """Take apart the containers recorded as created whose state dir or snapshot is gone: a
    removal commits its "removing" without a sync, so a power cut can lose it (and the record's
    deletion) after the removal had moved the container's dirs away. Such a container can never
    start again. A creation records "created" only once both exist, and a removal moves them
    only after its "removing", so on a live root a created record always has both: both are
    looked at after the records are read (two stats a container), and a container is claimed
    only if still created. The ids."""
    done = []
    for record in service.metadata.containers.all():
        if service.state_dir(record.id).is_dir() and service.snapshots.exists(record.id):
            continue
        if not service.metadata.containers.claim(
            record.id, ContainerStatus.CREATED, ContainerStatus.REMOVING, owner=owner_token()
        ):
            continue  # being removed by a live process, or gone
        try:
            service.take_apart(record.id)
        except ContainerkitError as exc:
            log.warning("cannot finish the removal of container %s: %s", record.id, exc)
            continue
        done.append(record.id)
    return done


def reap_staging(engine: Engine) -> list[str]:
    """Remove spooled request bodies, staged layers and snapshots, and ingest temp files that
    no live process holds; the paths removed."""
    removed = [str(engine.root / SPOOL_DIR / name) for name in staging.reap(engine.root / SPOOL_DIR)]
    removed += engine.snapshots.reap_staging()
    removed += engine.content.reap_ingest()
    if (engine.content.root / "sources").is_dir():  # images.sources' dir, made by a pull
        removed += [str(engine.images.sources.root / name) for name in engine.images.sources.reap()]
    return removed


_POLICY_MARKS = ('"name": "always"', '"name": "unless-stopped"')
"""What a recorded spec with one of the two policies contains (a cheap look before parsing)."""


def restart_containers(service: ContainerService) -> list[str]:
    """Start again the containers with ``always`` or ``unless-stopped`` (not stopped by the user)
    whose shim is gone without a recorded exit (a host reboot, a killed shim) or whose restart
    was pending when its restarter went away, as dockerd does when it starts; the ids started."""
    from containerkit.engine.container_service import status_of
    from containerkit.spec import ContainerSpec

    started = []
    for record in service.metadata.containers.all():
        if not any(mark in record.spec_json for mark in _POLICY_MARKS):
            continue
        try:
            spec = ContainerSpec.from_json(record.spec_json)
            if spec.restart_policy.name not in ("always", "unless-stopped"):
                continue
            task = service.task(record.id)
            state = task.state()
            wanted = task.restart_record()
            if wanted.get("stopped_by_user"):
                continue
            restarter = wanted.get("restarter")
            pending = bool(wanted.get("restarting")) and not (restarter and owner_alive(str(restarter)))
            status = status_of(state)
            if not (status is ContainerStatus.DEAD or (status is ContainerStatus.EXITED and pending)):
                continue
            if state.pid_alive and state.pid is not None:  # an orphaned init of the lost shim
                proc.send_signal(state.pid, signal.SIGKILL, state.pid_start_time)
            service.start(service.handle(record), by_policy=True)
            task.update_restart_record(restarting=False, restarter=None)
        except ContainerkitError as exc:
            log.warning("cannot restart container %s: %s", record.id[:12], exc)
            continue
        started.append(record.id)
    return started


def remove_unhandled_exits(service: ContainerService) -> list[str]:
    """Remove the stopped ``auto_remove`` containers that nobody removed: the process holding
    the exit claim (a daemon's watcher, an attached ``run --rm``) died after the shim left the
    exit to it. A live claim holder or a running container is left alone; the ids removed."""
    from containerkit.engine import exit_hook
    from containerkit.engine.container_service import status_of
    from containerkit.runtime.state import exit_claimed

    removed = []
    for record in service.metadata.containers.all():
        if '"auto_remove": true' not in record.spec_json:
            continue
        task = service.task(record.id)
        try:
            if not status_of(task.state()).has_stopped or exit_claimed(task.state_dir):
                continue
            exit_hook.handle_exit(service, record.id)
        except ContainerkitError as exc:
            log.warning("cannot remove auto-remove container %s: %s", record.id[:12], exc)
            continue
        removed.append(record.id)
    return removed

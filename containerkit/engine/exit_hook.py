"""A container's exit command: what happens after its process exits, owned by its shim.

As conmon runs podman's ``--exit-command``, the shim of a container with a restart policy or
``auto_remove`` runs ``python -c '...exit_hook import main; main()' ROOT ID`` once it has
recorded the exit, and waits for it: whoever waits for the shim (``Container.wait``, the
daemon's watcher, ``docker wait``) sees the exit handled. Because the shim (not a daemon
thread, not the Python program that started the container) runs it, the policy holds while
no daemon or Engine runs. Other containers get no exit command: their start and exit cost no
extra process.

The command, on an Engine of its own (no fork server, no recovery sweep: it handles one
container, and ``Engine.recover`` elsewhere picks up what a lost exit command left):

1. reads the exit (its ``die`` event is recorded on the way) and tears the network down;
2. ``auto_remove``: keeps the exit code for waiters that come after the removal, waits (at most
   :data:`DRAIN_SECONDS`) until no reader holds the output (an attached ``docker run --rm``
   must receive the last line), and removes the container with its anonymous volumes;
3. a restart policy: docker's decision (``ShouldRestart``) and back-off (100 ms, doubling after
   each exit, reset after 10 s up, at most a minute), counted in the Task's restart record
   (``restart_count``); a container the user stopped or killed is not restarted. The restart
   itself happens in a detached process after the back-off, so that the shim (and its
   waiters) are done at once; the container reads as ``restarting`` meanwhile.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from containerkit._log import get_logger
from containerkit.errors import ContainerkitError, NotFound, NotModified
from containerkit.linux import proc
from containerkit.spec import ContainerStatus, RestartPolicy

if TYPE_CHECKING:
    from containerkit.engine.container_service import ContainerService
    from containerkit.runtime.task import Task

__all__ = [
    "BACKOFF_MAX",
    "BACKOFF_START",
    "DRAIN_SECONDS",
    "ENTRY",
    "exit_command",
    "handle_exit",
    "main",
    "next_delay",
    "should_restart",
]

log = get_logger("containerkit.engine")

ENTRY = "from containerkit.engine.exit_hook import main; main()"
"""Not ``python -m``: the package may import this module first, and runpy would run it twice."""

DRAIN_SECONDS = 10.0
"""The longest an auto-remove waits for the readers of the output."""
BACKOFF_START = 0.1
BACKOFF_MAX = 60.0
BACKOFF_RESET_AFTER = 10.0
"""docker's restart manager: 100 ms doubling, at most a minute, reset after 10 s up."""

_STOPPED = (ContainerStatus.EXITED, ContainerStatus.DEAD)


def exit_command(root: Path, container_id: str, default_pids_limit: int | None) -> list[str]:
    """The argv the shim of ``container_id`` runs after the exit; a restart applies the same
    default pids limit as the start by the engine that made the command."""
    return [sys.executable, "-c", ENTRY, str(root), container_id, str(default_pids_limit or 0)]


def next_delay(previous: float, ran_for: float) -> float:
    """The back-off before the next restart (docker's ``ShouldRestart`` timing)."""
    if ran_for >= BACKOFF_RESET_AFTER or previous <= 0:
        return BACKOFF_START
    return min(previous * 2, BACKOFF_MAX)


def should_restart(policy: RestartPolicy, exit_code: int, restart_count: int, stopped_by_user: bool) -> bool:
    """docker's decision for a container that exited (``stop``/``kill`` by the user ends every
    policy; ``on-failure:N`` stops after N restarts)."""
    if stopped_by_user or not policy.enabled:
        return False
    if policy.name in ("always", "unless-stopped"):
        return True
    limit = policy.maximum_retry_count
    return exit_code != 0 and (limit == 0 or restart_count < limit)


def _ran_for(state: Any) -> float:
    from containerkit.runtime.logs import parse_time

    try:
        return (parse_time(state.finished_at) - parse_time(state.started_at)) / 1e9
    except (TypeError, ValueError):
        return 0.0


def handle_exit(service: ContainerService, container_id: str) -> float | None:
    """Steps 1-3 of the module docstring; the back-off before a restart, or None for none.
    Run by the exit command, or in the process that held the container's exit claim."""
    try:
        container = service.get(container_id)
    except NotFound:
        return None
    state = container.runtime_state()  # records the die event
    if ContainerStatus(state.status) not in _STOPPED:
        return None  # started again meanwhile
    with service.networks.container_lock(container_id):
        if ContainerStatus(container.task.state().status) in _STOPPED:
            service.networks.teardown(container_id, settle=False)
    spec = container.spec
    task = container.task
    code = state.exit_code if state.exit_code is not None else 0
    if spec.auto_remove:
        # kept while an attached stream still sends the last output (a docker run --rm waits
        # for that stream, then for the removal)
        service.keep_exit(container_id, code, state.finished_at)
        task.wait_for_readers(DRAIN_SECONDS)
        service.auto_remove(container_id)
        return None
    record = task.restart_record()
    count = int(record.get("restart_count") or 0)
    if not should_restart(spec.restart_policy, code, count, bool(record.get("stopped_by_user"))):
        task.update_restart_record(restarting=False)
        return None
    delay = next_delay(float(record.get("delay") or 0), _ran_for(state))
    # this process holds the pending restart until the restarter does (Engine.recover leaves a
    # restart alone while its holder lives)
    task.update_restart_record(restart_count=count + 1, delay=delay, restarting=True, restarter=_token())
    return delay


def _token() -> str:
    pid = os.getpid()
    return f"{pid}:{proc.start_time(pid)}"


def restart_after(root: str, container_id: str, delay: float, pids_limit: int) -> None:
    """Wait out the back-off, then start the container again unless the user stopped it or
    someone started it meanwhile (runs in the detached restarter)."""
    from containerkit.engine.engine import Engine

    time.sleep(delay)
    engine = Engine(root=root, forkserver=False, default_pids_limit=pids_limit, recover=False)
    try:
        try:
            container = engine.containers.get(container_id)
        except NotFound:
            return
        task = container.task
        record = task.restart_record()
        if not record.get("restarting") or record.get("stopped_by_user"):
            return
        try:
            engine.container_service.start(container, by_policy=True)
        except NotModified:
            pass  # running again already
        except ContainerkitError as exc:
            log.warning("restart of %s failed: %s", container_id[:12], exc)
            print(f"restart of {container_id[:12]} failed: {exc}", file=sys.stderr)
        finally:
            task.update_restart_record(restarting=False, restarter=None)
    finally:
        engine.close(release_network=False)


def _detach_restarter(root: str, task: Task, delay: float, pids_limit: int) -> None:
    """Fork the restarter out of this process's session (double fork: nobody's child here); the
    pending restart is handed to it before this process lets go."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the intermediate and the restarter
        try:
            os.setsid()
            child = os.fork()
            if child == 0:
                code = 0
                try:
                    restart_after(root, task.id, delay, pids_limit)
                except BaseException as exc:
                    print(f"restarter of {task.id[:12]}: {exc!r}", file=sys.stderr)
                    code = 1
                os._exit(code)
            task.update_restart_record(restarter=f"{child}:{proc.start_time(child)}")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def main(argv: list[str] | None = None) -> None:
    """``ROOT CONTAINER_ID DEFAULT_PIDS_LIMIT``: handle the exit of the container (run by its shim)."""
    from containerkit.engine.engine import Engine

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or not args[2].lstrip("-").isdigit():
        print("usage: exit_hook ROOT CONTAINER_ID DEFAULT_PIDS_LIMIT", file=sys.stderr)
        sys.exit(2)
    root, container_id, pids_limit = args[0], args[1], int(args[2])
    import logging

    logging.basicConfig(level=logging.WARNING)
    engine = Engine(root=root, forkserver=False, default_pids_limit=pids_limit, recover=False)
    try:
        delay = handle_exit(engine.container_service, container_id)
        task = engine.container_service.task(container_id)
    finally:
        engine.close(release_network=False)  # a restart would bring the bridge up again
    if delay is not None:  # after the Engine is closed: the restarter opens its own
        _detach_restarter(root, task, delay, pids_limit)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

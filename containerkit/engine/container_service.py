"""The container lifecycle as a service: what creating, starting, exec'ing and removing a
container need, given to it by name (containerd's shape: a service over its stores).

It receives the metadata database, the snapshot store, the image and volume collections, the
network service and a launcher (the fork server, started on first use), never the Engine:
:class:`~containerkit.engine.containers.Container` handles hold this service, and
``engine.containers`` is the public face over it. The Engine only wires services together.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from containerkit._model import model
from containerkit.engine import _filters, _names, _prepare, _recovery
from containerkit.engine.events import EventLog, container_attributes, rfc3339_ns
from containerkit.errors import Conflict, InvalidArgument, NotFound, NotModified, NotRunning, Timeout
from containerkit.linux import proc
from containerkit.runtime import trace, usermap
from containerkit.runtime.state import RuntimeState, wait_for_exit
from containerkit.runtime.task import Task
from containerkit.spec import ContainerSpec, ContainerStatus, Healthcheck, Image, allowed_transition
from containerkit.storage.metadata import ContainerRecord, Database
from containerkit.storage.records import EndpointRecord, NetworkRecord, PortRecord, RunRecord

if TYPE_CHECKING:
    from containerkit.engine.containers import Container
    from containerkit.engine.images import ImageCollection
    from containerkit.engine.network_service import NetworkService
    from containerkit.engine.volumes import VolumeCollection
    from containerkit.runtime.launcher import Launcher
    from containerkit.storage.snapshots import SnapshotStore

__all__ = ["KEEP_EXITS", "ContainerService", "ListedNetwork", "status_of"]

KEEP_EXITS = 600.0
"""Seconds the exit code of an auto-removed container is kept for late waiters."""
_MAX_EXIT_FDS = 256
"""At most this many started containers' exit pipes are held; beyond, waits use the pidfd."""
_SWEEP_EXITS = 60.0
"""The expired exit codes are swept at most this often (a sweep stats every kept one)."""

_RUNNING = ContainerStatus.RUNNING
_STOPPED = (ContainerStatus.EXITED, ContainerStatus.DEAD)


@model
class ListedNetwork:
    """A container's published ports and endpoints as of a list (read for all in two queries)."""

    ports: list[PortRecord]
    endpoints: list[tuple[EndpointRecord, NetworkRecord]]


def status_of(state: RuntimeState) -> ContainerStatus:
    """The status the Task's state file records (created, running, exited or dead)."""
    return ContainerStatus(state.status)


class ContainerService:
    """Create, start, exec, remove: the operations a container handle delegates to."""

    def __init__(
        self,
        *,
        root: Path,
        metadata: Database,
        snapshots: SnapshotStore,
        images: ImageCollection,
        volumes: VolumeCollection,
        networks: NetworkService,
        launcher: Callable[[], Launcher | None],
        default_pids_limit: int | None = None,
        userns_remap: str | None = None,
        prime_start: Callable[[], None] = lambda: None,
    ) -> None:
        """``prime_start``: called as a create begins, for the start that usually follows (see
        :mod:`containerkit.linux.cgroups.prime`)."""
        self.metadata = metadata
        self.snapshots = snapshots
        self.images = images
        self.volumes = volumes
        self.networks = networks
        self.launcher = launcher
        self.prime_start = prime_start
        self.default_pids_limit = default_pids_limit
        self.userns_remap = userns_remap
        self.runc_root = root / "runc"
        self._root = root / "containers"
        self._root.mkdir(parents=True, exist_ok=True)
        # one empty file per container whose shim runs: made before a start, unlinked by the
        # shim once the exit is recorded (a list lists this directory, not every state dir)
        self._running = root / "running"
        self._running.mkdir(mode=0o700, exist_ok=True)
        self._lock = threading.Lock()
        self._health_seen: set[str] = set()  # health_status events this process recorded
        # container id -> the exit pipe of the run this process started (see wait_exit)
        self._exit_fds: dict[str, int] = {}
        self._exit_fds_lock = threading.Lock()
        self.events = EventLog(metadata, self._root)

    def state_dir(self, container_id: str) -> Path:
        return self._root / container_id

    def task(self, container_id: str) -> Task:
        return Task(container_id, self._root / container_id)

    def handle(self, record: ContainerRecord) -> Container:
        from containerkit.engine.containers import Container

        return Container(record.id, self, record)

    # -- creating ---------------------------------------------------------------------------

    def create(self, spec: ContainerSpec, *, extra: Mapping[str, Any] | None = None) -> Container:
        """``extra``: what a front-end keeps with the container (``Container.extra``), stored
        with its record rather than by a commit of its own after the create."""
        self.prime_start()
        image = self.images.get(spec.image)
        net = self.networks.plan(spec)
        container_id = secrets.token_hex(32)
        # The record holds the name from the start but stays hidden ("creating") until the
        # bundle is complete; a crash before that is rolled back by Engine.recover.
        record = self._add_record(container_id, spec, image, extra)
        try:
            config = _prepare.prepare_bundle(
                self, container_id, spec, image, self.state_dir(container_id), net
            )
            args = [str(arg) for arg in config["process"]["args"]]  # as Task.process_args reads them
            with self.metadata.transaction():  # one commit: the container becomes visible whole
                record = self.metadata.containers.update(container_id, args_json=json.dumps(args))
                self.networks.register(container_id, net, spec)
                self.metadata.containers.set_state(container_id, ContainerStatus.CREATED)
                self.metadata.containers.set_run(RunRecord(container_id=container_id, status="created"))
        except BaseException:
            self.roll_back(container_id)
            raise
        container = self.handle(record)
        self.record(container, "create")
        return container

    def _add_record(
        self, container_id: str, spec: ContainerSpec, image: Image, extra: Mapping[str, Any] | None = None
    ) -> ContainerRecord:
        """Record the container; a generated name taken meanwhile by another process is
        replaced by a fresh one, a name the user chose is a ``Conflict``."""
        for attempt in range(20):
            name = _names.check(spec.name) if spec.name else self._free_name()
            record = ContainerRecord(
                id=container_id,
                name=name,
                image_id=image.id,
                image_ref=spec.image,
                created=time.time(),
                spec_json=spec.to_json(),
                labels_json=json.dumps(spec.labels_dict, sort_keys=True),
                runtime=spec.runtime,
                extra_json=json.dumps(dict(extra or {}), sort_keys=True),
            )
            try:
                # Without its own fsync (the "created" commit syncs it): other processes see it
                # at once, and what a power cut leaves of a creation it loses, a state dir and
                # a snapshot without a record, Engine.recover removes.
                with self.metadata.lazy_sync():
                    self.metadata.containers.add(
                        record, state=ContainerStatus.CREATING, owner=_recovery.owner_token()
                    )
            except Conflict:
                if spec.name or attempt == 19:
                    raise
                continue
            return record
        raise AssertionError("unreachable")

    def _free_name(self) -> str:
        """A generated name no container has, each candidate looked up by the name's index
        (reading every record to list the names cost 0.5 ms a create with 100 containers)."""
        for _ in range(100):
            name = _names.random_name()
            if not self.metadata.containers.name_taken(name):
                return name
        return f"{_names.random_name()}_{secrets.token_hex(3)}"

    # -- finding ----------------------------------------------------------------------------

    def get(self, ref: str) -> Container:
        return self.handle(self.metadata.containers.find(ref))

    def list(self, *, all: bool, filters: Mapping[str, Any] | None) -> builtins.list[Container]:
        """One query and one directory listing: each container's run as recorded, re-read
        from its Task only where the running markers disagree (it exited, or was started, since)."""
        records = sorted(self.metadata.containers.all(), key=lambda r: r.created, reverse=True)
        runs = self.metadata.containers.runs()
        running = self._running_ids()
        wanted = _filters.normalise(filters)
        store = self.metadata.networks
        networks = {n.id: n for n in store.all()}
        ports: dict[str, builtins.list[PortRecord]] = {}
        for port in store.all_ports():
            ports.setdefault(port.container_id, []).append(port)
        endpoints: dict[str, builtins.list[tuple[EndpointRecord, NetworkRecord]]] = {}
        for endpoint in store.endpoints():
            endpoints.setdefault(endpoint.container_id, []).append((endpoint, networks[endpoint.network_id]))
        result = []
        for record in records:
            run = runs.get(record.id)
            if run is None or ContainerStatus(run.status).is_up != (record.id in running):
                run = self.observe(record.id)
            status = ContainerStatus(run.status)
            if not all and not status.is_up and "status" not in wanted:
                continue
            container = self.handle(record)
            if _filters.matches(container, status, wanted, self.images):
                container._listed = run
                container._listed_net = ListedNetwork(ports.get(record.id, []), endpoints.get(record.id, []))
                result.append(container)
        return result

    def _running_ids(self) -> set[str]:
        try:
            return set(os.listdir(self._running))
        except FileNotFoundError:
            return set()

    def observe(self, container_id: str) -> RunRecord:
        """Read a container's run from its Task and record it (for the next list)."""
        task = self.task(container_id)
        state = task.state()
        status = status_of(state)
        if status is _RUNNING and task.paused():
            status = ContainerStatus.PAUSED
        run = RunRecord(
            container_id=container_id,
            status=status.value,
            pid=state.pid if status.is_up else None,
            started_at=state.started_at,
            finished_at=state.finished_at,
            exit_code=state.exit_code,
            oom_killed=state.oom_killed,
        )
        if status.has_stopped:  # a shim killed before it unlinked its marker
            (self._running / container_id).unlink(missing_ok=True)
        self.metadata.containers.set_run(run)
        if status.has_stopped:  # a list is often the first to see an exit: its die event
            with contextlib.suppress(NotFound):
                self.observe_exit(self.get(container_id), state)
        return run

    def reap_running_markers(self) -> builtins.list[str]:
        """Unlink the markers of containers that are gone or no longer run (their shim was
        killed, or the host rebooted); the ids."""
        known = {r.id for r in self.metadata.containers.all()}
        stale = []
        for container_id in self._running_ids():
            if container_id not in known or not self.task(container_id).running():
                (self._running / container_id).unlink(missing_ok=True)
                stale.append(container_id)
        return stale

    def prune(self, *, filters: Mapping[str, Any] | None) -> builtins.list[str]:
        removed = []
        labels = {k: v for k, v in _filters.normalise(filters).items() if k == "label"}
        for container in self.list(all=True, filters=None):
            status = container.current_status()
            if status in (*_STOPPED, ContainerStatus.CREATED) and _filters.matches(
                container, status, labels, self.images
            ):
                try:
                    self.remove(container, force=False, volumes=False)
                except (Conflict, NotFound):
                    continue
                removed.append(container.id)
        return removed

    # -- running ----------------------------------------------------------------------------

    def start(self, container: Container, *, by_policy: bool = False) -> None:
        """``by_policy``: a restart by the container's restart policy (its exit command), which
        keeps the restart count; a start by the user resets it and forgets a stop, as docker's."""
        with self.networks.container_lock(container.id):
            restartable = not by_policy and container.spec.restart_policy.enabled
            if restartable and not status_of(container.task.state()).is_up:
                container.task.update_restart_record(
                    restart_count=0, delay=0, stopped_by_user=False, restarting=False
                )
            self._start_locked(container)

    def _start_locked(self, container: Container) -> None:
        state = container.runtime_state()
        if not allowed_transition(status_of(state), _RUNNING):
            raise NotModified(f"container {container.name} is already running")
        spec = container.spec
        state_dir = container.state_dir
        if status_of(state) in _STOPPED:
            self.observe_exit(container, state)  # before its record goes
            _prepare.reset_for_restart(state_dir)
        for name in container.volume_names:
            self.volumes.mount(name)  # a tmpfs or bind volume's mount, before the shim binds it
        shared_netns = self.networks.setup(container.id, spec)
        marker = self._running / container.id
        try:
            if shared_netns is not None:
                _prepare.set_netns_path(state_dir, shared_netns)
            marker.touch(mode=0o600)
            started = container.task.start(
                running_marker=marker,
                runtime=spec.runtime,
                tty=spec.tty,
                stdin_open=spec.stdin_open,
                stdin_once=spec.stdin_once,
                resources=spec.resources.effective(self.default_pids_limit),
                runc_root=self.runc_root,
                log_driver=spec.log_driver,
                log_opts=spec.log_opts_dict,
                launcher=self.launcher(),
                exit_command=self._exit_command(container, spec),
                health=self._health_check(container, spec),
                keep_exit_fd=True,
            )
        except BaseException:
            marker.unlink(missing_ok=True)
            self.networks.teardown(container.id)
            self.release_volumes(container)
            raise
        if started.exit_fd is not None:
            self._hold_exit_fd(container.id, started.exit_fd)
        self.metadata.containers.set_run(
            RunRecord(
                container_id=container.id, status="running", pid=started.pid, started_at=started.started_at
            )
        )
        self._network_events(container, "connect")
        for name, destination in self._volume_mounts(container):
            self.events.record(
                "volume",
                "mount",
                name,
                {"container": container.id, "destination": destination, "driver": "local"},
            )
        # at the time it started (the shim's report: a quick container's exit may come first)
        self.record(container, "start", time_nano=rfc3339_ns(started.started_at))

    # -- waiting for an exit ----------------------------------------------------------------

    def _hold_exit_fd(self, container_id: str, fd: int) -> None:
        with self._exit_fds_lock:
            old = self._exit_fds.pop(container_id, None)
            if len(self._exit_fds) < _MAX_EXIT_FDS:
                self._exit_fds[container_id], fd = fd, -1
        for unused in (old, fd):
            if unused is not None and unused != -1:
                os.close(unused)

    def _take_exit_fd(self, container_id: str) -> int | None:
        with self._exit_fds_lock:
            return self._exit_fds.pop(container_id, None)

    def wait_exit(self, container_id: str, timeout: float | None) -> int:
        """The exit code, once the shim recorded the exit and handled it. For a run this
        process started, the shim's ready pipe (EOF once the exit is handled) wakes the wait
        a millisecond or two before the shim's process is gone; otherwise its pidfd does."""
        fd = self._take_exit_fd(container_id)
        try:
            return wait_for_exit(self.state_dir(container_id), timeout, exit_fd=fd)
        except Timeout:
            if fd is not None:  # for the next wait
                self._hold_exit_fd(container_id, fd)
                fd = None
            raise
        finally:
            if fd is not None:
                os.close(fd)

    def close(self) -> None:
        """Let go of the exit pipes still held (their containers run on); wait for the
        removed containers' files to be deleted."""
        with self._exit_fds_lock:
            fds, self._exit_fds = builtins.list(self._exit_fds.values()), {}
        for fd in fds:
            os.close(fd)
        self.snapshots.drain()

    def _exit_command(self, container: Container, spec: ContainerSpec) -> builtins.list[str] | None:
        """What the shim runs after the exit (:mod:`~containerkit.engine.exit_hook`): only for a
        container with a restart policy or ``auto_remove``."""
        if not (spec.auto_remove or spec.restart_policy.enabled):
            return None
        from containerkit.engine import exit_hook

        return exit_hook.exit_command(self._root.parent, container.id, self.default_pids_limit)

    def _health_check(self, container: Container, spec: ContainerSpec) -> dict[str, Any] | None:
        """The checker's configuration (the spec's check over the image's; the check's process),
        None for a container without a health check."""
        image_check = self.images.config(container.image_id).healthcheck
        if spec.healthcheck is None and image_check is None:
            return None
        check = (spec.healthcheck or Healthcheck()).merged(image_check)
        if check is None:
            return None
        argv = builtins.list(check.test[1:]) if check.test[0] == "CMD" else ["/bin/sh", "-c", check.test[1]]
        process = self.exec_process(
            container, argv, env=None, user=None, workdir=None, tty=False, privileged=False
        )
        return {"check": attrs.asdict(check), "process": process}

    # -- what outlives an auto-removed container --------------------------------------------

    def keep_exit(self, container_id: str, exit_code: int, finished_at: str | None) -> None:
        """Keep the exit code of a container about to be auto-removed, for the waiters that read
        it after the removal (podman keeps exit codes the same way); kept for :data:`KEEP_EXITS`."""
        exits = self._root.parent / "exits"
        exits.mkdir(mode=0o700, exist_ok=True)
        now = time.time()
        swept = exits / ".swept"
        try:
            due = now - swept.stat().st_mtime > _SWEEP_EXITS
        except FileNotFoundError:
            due = True
        if due:
            swept.touch()
            for old in exits.iterdir():
                with contextlib.suppress(OSError):
                    if old != swept and now - old.stat().st_mtime > KEEP_EXITS:
                        old.unlink()
        tmp = exits / f".{container_id}.tmp"
        tmp.write_text(json.dumps({"exit_code": exit_code, "finished_at": finished_at}))
        os.replace(tmp, exits / container_id)

    def removed_exit_code(self, container_id: str) -> int | None:
        """The exit code of an auto-removed container (full id), None when none was kept."""
        try:
            return int(json.loads((self._root.parent / "exits" / container_id).read_text())["exit_code"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def exec_process(
        self,
        container: Container,
        command: Sequence[str] | str,
        *,
        env: Mapping[str, str] | Iterable[str] | None,
        user: str | None,
        workdir: str | None,
        tty: bool,
        privileged: bool,
    ) -> dict[str, Any]:
        """The OCI process of an exec in ``container``: its own, with the exec's overrides."""
        argv = ["sh", "-c", command] if isinstance(command, str) else builtins.list(command)
        if not argv:
            raise InvalidArgument("exec: no command given")
        return _prepare.exec_process(
            self,
            container.id,
            container.spec,
            container.image_id,
            argv,
            env=env,
            user=user,
            workdir=workdir,
            tty=tty,
            privileged=privileged,
        )

    # -- events -----------------------------------------------------------------------------

    def record(
        self,
        container: Container,
        action: str,
        *,
        time_nano: int | None = None,
        key: str | None = None,
        **extra: str,
    ) -> None:
        """A container event with docker's attributes (its labels, ``image``, ``name``); with
        ``key``, only the first recording of that key counts."""
        attributes = container_attributes(container.name, container.image, container.labels)
        self.events.record(
            "container", action, container.id, {**attributes, **extra}, time_nano=time_nano, key=key
        )

    def observe_exit(self, container: Container, state: RuntimeState) -> None:
        """Record the exit ``state`` shows (``oom``, ``die`` and its volumes' ``unmount``),
        once per run whoever observes it first; nothing while it runs."""
        if status_of(state) not in _STOPPED:
            return
        attributes = container_attributes(container.name, container.image, container.labels)
        if self.events.observe_exit(container.id, state, attributes):
            self._network_events(container, "disconnect")
            self.release_volumes(container)
            for name, destination in self._volume_mounts(container):
                self.events.record(
                    "volume",
                    "unmount",
                    name,
                    {"container": container.id, "destination": destination, "driver": "local"},
                )

    def scan_for_events(self) -> None:
        """What an event follower looks at now and then: every container's run (its exit, if
        nobody saw it) and the health changes of the running ones (the checker records none)."""
        for container in self.list(all=True, filters=None):
            if container.status != "running":
                continue
            record = container.task.health_record()
            if record is not None:
                self.observe_health(container, record, container.started_at)

    def observe_health(self, container: Container, record: Mapping[str, Any], started_at: str | None) -> None:
        """Record the health checker's status changes (``health_status: healthy``) not recorded
        yet, each with the time of the change, once whoever observes it first (the checker runs
        beside the shim and writes no events itself)."""
        for change in record.get("transitions") or ():
            status = change.get("status")
            if status in (None, "starting") or not isinstance(change.get("time_nano"), int):
                continue
            key = f"health:{container.id}:{started_at}:{change.get('seq')}"
            if key in self._health_seen:
                continue
            self._health_seen.add(key)
            self.record(container, f"health_status: {status}", time_nano=change["time_nano"], key=key)

    def _network_events(self, container: Container, action: str) -> None:
        """docker's ``network connect`` at a start and ``disconnect`` after the exit, for each
        network the container is on (none for ``none`` or ``host``)."""
        for name, endpoint in container.networks.items():
            attributes = {"name": name, "type": "bridge", "container": container.id}
            self.events.record("network", action, endpoint.network_id, attributes)

    def release_volumes(self, container: Container) -> None:
        """Unmount the tmpfs or bind of each volume ``container`` used that no other running
        container uses (docker's local driver unmounts at the last user's stop)."""
        mounted = [name for name in container.volume_names if self.volumes.options(name)]
        if not mounted:
            return
        others = [self.get(cid) for cid in self._running_ids() - {container.id} if self._exists(cid)]
        in_use = {name for other in others for name in other.volume_names}
        for name in mounted:
            if name not in in_use:
                self.volumes.unmount(name)

    def _exists(self, container_id: str) -> bool:
        try:
            self.get(container_id)
        except NotFound:
            return False
        return True

    def _volume_mounts(self, container: Container) -> builtins.list[tuple[str, str]]:
        named = {m.source: m.target for m in container.spec.mounts if m.type == "volume" and m.source}
        return [(name, named.get(name, "")) for name in container.volume_names]

    # -- removing ---------------------------------------------------------------------------

    def remove(self, container: Container, *, force: bool, volumes: bool) -> None:
        state = container.runtime_state()
        if status_of(state) is _RUNNING:
            if not force:
                raise Conflict(
                    f"You cannot remove a running container {container.id}. "
                    "Stop the container before attempting removal or force remove"
                )
            with contextlib.suppress(NotRunning):
                if container.send_signal(signal.SIGKILL):
                    container.task.resume_if_paused()  # a frozen cgroup (v1) holds the signal until it thaws
            trace.mark("engine.kill_sent")
            # The network goes while the shim sees the exit (milliseconds of other processes'
            # work): the container is being killed, and take_apart finds nothing left to undo.
            with self.networks.container_lock(container.id):
                self.networks.teardown(container.id, settle=False)
            code = self.wait_exit(container.id, 30)  # the ready pipe: before the shim's process is gone
            # for the waiters that read the exit after the state dir is gone (as an auto-removal)
            self.keep_exit(container.id, code, None)
        elif status_of(state) is ContainerStatus.DEAD and state.pid_alive and state.pid is not None:
            proc.send_signal(state.pid, signal.SIGKILL, state.pid_start_time)
        self.observe_exit(container, container.runtime_state())
        self.release_volumes(container)  # also when its exit was observed before
        anonymous = _prepare.anonymous_volumes(container.state_dir) if volumes else []
        # From here on a crash part-way is finished by Engine.recover. Without its own fsync
        # (1-3 ms here): a process crash keeps it (WAL); a power cut that loses it and the
        # record's deletion brings the record back as created with its state dir or snapshot
        # gone, which Engine.recover takes apart as well (_recovery.finish_lost_removals).
        with self.metadata.lazy_sync():
            self.metadata.containers.set_state(
                container.id, ContainerStatus.REMOVING, owner=_recovery.owner_token()
            )
        try:
            self.take_apart(container.id)
        except BaseException:
            with contextlib.suppress(NotFound):  # visible again, so the removal can be retried
                self.metadata.containers.set_state(container.id, ContainerStatus.CREATED)
            raise
        self.record(container, "destroy")
        for name in anonymous:
            with contextlib.suppress(NotFound, Conflict):
                self.volumes.remove(name)

    def auto_remove(self, container_id: str) -> None:
        """Remove a stopped ``auto_remove`` container (gone already, or taken: nothing to do)."""
        with contextlib.suppress(NotFound, Conflict):
            container = self.get(container_id)
            if status_of(container.runtime_state()) in _STOPPED:
                self.remove(container, force=False, volumes=True)

    def roll_back(self, container_id: str) -> None:
        """Undo a creation that did not finish: everything of the container, and the anonymous
        volumes made for it."""
        anonymous = _prepare.anonymous_volumes(self.state_dir(container_id))
        self.take_apart(container_id)
        for name in anonymous:
            with contextlib.suppress(NotFound, Conflict):
                self.volumes.remove(name)

    def take_apart(self, container_id: str) -> None:
        """Network, cgroup, snapshot, state dir, record of a container that no longer runs; each
        step may be done again (recovery repeats what a killed removal began)."""
        with self.networks.container_lock(container_id):
            leaving = self.networks.teardown(container_id, settle=False)
        self._discard(container_id, cgroup_gone=self.task(container_id).cleaned_up())
        self.networks.settle(leaving)  # the kernel deletes the veths meanwhile

    def _discard(self, container_id: str, *, cgroup_gone: bool = False) -> None:
        """Remove everything of a container that is not running: cgroup, snapshot, state, record.

        ``cgroup_gone``: its shim destroyed the cgroup and said so; checking every v1 hierarchy
        again costs a millisecond per container. The shared parent cgroup stays while the
        engine is open (removing and re-creating it for every container costs milliseconds on
        each start); :meth:`Engine.close` and :meth:`Engine.recover` remove it when empty.
        """
        task = self.task(container_id)
        fd = self._take_exit_fd(container_id)
        if fd is not None:
            os.close(fd)
        if not cgroup_gone:
            task.destroy_cgroup()
        # a user-namespaced container's staged mounts, if its shim died before releasing them
        usermap.release_staging(container_id)
        # Both gone at once (renamed away); their files are deleted in the background, which
        # Engine.close waits for (a crash leaves trash that recovery removes).
        with contextlib.suppress(NotFound):  # a crash between this and the record's removal
            self.snapshots.remove(container_id, wait=False)
        if task.state_dir.exists():
            self.snapshots.discard_dir(task.state_dir)
        (self._running / container_id).unlink(missing_ok=True)
        # Without its own fsync: a power cut that loses this commit brings back a record that
        # is "removing" (durably, before any of this began) or "creating", and Engine.recover
        # takes it apart again (every step above may be done twice), or none at all.
        with contextlib.suppress(NotFound), self.metadata.lazy_sync():
            self.metadata.containers.remove(container_id)

    # -- its files --------------------------------------------------------------------------

    @contextlib.contextmanager
    def rootfs(self, container: Container) -> Iterator[Path]:
        """The container's merged root as a host path: ``/proc/<pid>/root`` while it runs,
        else the snapshot mounted for the duration of the block."""
        state = container.runtime_state()
        if status_of(state) is _RUNNING and state.pid is not None:
            yield Path(f"/proc/{state.pid}/root")
            return
        with self._lock:
            target = container.state_dir / "host-rootfs"
            target.mkdir(exist_ok=True)
            self.snapshots.mount(container.id, target)
            try:
                yield target
            finally:
                self.snapshots.unmount(target)
                with contextlib.suppress(OSError):
                    target.rmdir()

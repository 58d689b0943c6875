"""``engine.containers``: the container lifecycle on top of images, snapshots and the runtime.

A container is a metadata record (what was asked), a :class:`~containerkit.runtime.task.Task`
(its state dir under ``<root>/containers/<id>``: the OCI bundle, the shim's records, the log)
and a writable snapshot. The shim owns the running process; the Task reads what it wrote, so
any Engine on the same root, in any process, sees the same container.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import functools
import json
import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, cast

import attrs

from containerkit.engine import _names, _prepare, exit_hook
from containerkit.engine._handle import RecordHandle
from containerkit.engine.attach import DEFAULT_DETACH_KEYS, AttachStream, detach_key_bytes
from containerkit.engine.container_service import ListedNetwork
from containerkit.engine.container_service import status_of as _status
from containerkit.errors import (
    Conflict,
    ContainerkitError,
    InvalidArgument,
    NotFound,
    NotModified,
    NotRunning,
    Timeout,
)
from containerkit.linux.cgroups import open_cgroup
from containerkit.linux.inroot import Root
from containerkit.linux.users import resolve_user
from containerkit.runtime import logs as runtime_logs
from containerkit.runtime.logs import LineCursor, LogEntry, Stream
from containerkit.runtime.state import RuntimeState
from containerkit.runtime.task import ExitClaim, StdinWriter, Task, cgroup_name
from containerkit.spec import (
    Change,
    ContainerSize,
    ContainerSpec,
    ContainerStatus,
    ExecResult,
    Health,
    Image,
    ImageConfig,
    NetworkEndpoint,
    Resources,
    RestartPolicy,
    Stats,
    parse_signal,
)
from containerkit.storage.metadata import ContainerRecord
from containerkit.storage.records import EndpointRecord, NetworkRecord, PortRecord, RunRecord

if TYPE_CHECKING:
    # docker cp, diff, commit and export: imported by the methods that use them, so that
    # starting containers (the command line's run) loads no tar or image-writing code
    from containerkit.engine import _archive
    from containerkit.engine.container_service import ContainerService
    from containerkit.runtime.exec import ExecProcess

__all__ = ["Container", "ContainerCollection", "StatusName", "cgroup_name"]

_STOPPED_OR_RESET = (ContainerStatus.EXITED, ContainerStatus.DEAD, ContainerStatus.CREATED)
"""Between runs: exited, or created while a restart resets the state files."""

StatusName = Literal["created", "running", "paused", "restarting", "exited", "dead"]
"""The statuses a container shows (``api.ContainerStatus``): never ``creating`` or ``removing``."""

_RUNNING, _PAUSED = ContainerStatus.RUNNING, ContainerStatus.PAUSED
_SIGKILL = 9
_KILL_WAIT = 10.0
"""How long a SIGKILL waits for the exit record (dockerd waits too, then reports the kill done)."""


@attrs.define(eq=False)
class Container(RecordHandle[ContainerRecord, "ContainerService"]):
    """A live handle on one container; properties read the current state on each access.

    A handle from :meth:`ContainerCollection.list` shows the state as of the list (status,
    pid, times, exit code: what docker's list shows, read without opening any container's
    files) until it is used for anything else or :meth:`reload` is called; then it is live.
    """

    _listed: RunRecord | None = attrs.field(default=None, repr=False)
    _listed_net: ListedNetwork | None = attrs.field(default=None, repr=False)
    _claim: ExitClaim | None = attrs.field(default=None, repr=False)

    # -- what it is -------------------------------------------------------------------------

    @property
    def image_id(self) -> str:
        return self._record.image_id

    @property
    def image(self) -> str:
        return self._record.image_ref

    @property
    def volume_names(self) -> list[str]:
        """The named and anonymous volumes this container mounts."""
        named = [m.source for m in self.spec.mounts if m.type == "volume" and m.source]
        return sorted({*named, *_prepare.anonymous_volumes(self.state_dir)})

    @property
    def spec(self) -> ContainerSpec:
        return _parse_spec(self._record.spec_json)

    @property
    def labels(self) -> dict[str, str]:
        return dict(json.loads(self._record.labels_json or "{}"))

    @property
    def created(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._record.created, dt.UTC)

    @property
    def state_dir(self) -> Path:
        return self._service.state_dir(self.id)

    @property
    def task(self) -> Task:
        """The runtime side: the one owner of the state dir and everything in it."""
        self._listed = self._listed_net = None  # acting on it, or reading it live: the list's view is done
        return self._service.task(self.id)

    @property
    def log_path(self) -> str:
        """Where the json-file log is (docker's ``LogPath``)."""
        return str(self.task.log_path)

    def process_args(self) -> list[str]:
        """The argv the container runs: the bundle's, else the spec's entrypoint and command."""
        if self._record.args_json is not None:
            return [str(arg) for arg in json.loads(self._record.args_json)]
        args = self.task.process_args()
        if args is None:
            return list(self.spec.entrypoint or ()) + list(self.spec.command or ())
        return args

    @property
    def extra(self) -> dict[str, Any]:
        """What a front-end kept with the container (the daemon: docker's create body)."""
        value = json.loads(self._record.extra_json or "{}")
        return value if isinstance(value, dict) else {}

    def set_extra(self, value: Mapping[str, Any]) -> None:
        self._record = self._service.metadata.containers.update(
            self.id, extra_json=json.dumps(dict(value), sort_keys=True)
        )

    # -- its state --------------------------------------------------------------------------

    def runtime_state(self) -> RuntimeState:
        """The Task's state; an exit no one recorded yet becomes its ``die`` event here."""
        state = self.task.state()
        self._service.observe_exit(self, state)
        return state

    @property
    def status(self) -> StatusName:
        return cast(StatusName, self.current_status().value)

    def current_status(self) -> ContainerStatus:
        """The status as an enum: the Task's, and ``paused`` while its cgroup is frozen."""
        if self._listed is not None:
            return ContainerStatus(self._listed.status)
        return self._status_from(self.runtime_state())

    def _status_from(self, state: RuntimeState) -> ContainerStatus:
        status = _status(state)
        if status is _RUNNING and self._is_paused():
            return _PAUSED
        if status in _STOPPED_OR_RESET and self.spec.restart_policy.enabled and self._restart_pending():
            return ContainerStatus.RESTARTING
        return status

    def look(self) -> tuple[Container, RuntimeState]:
        """This container as of one read of its Task's state and of its network records, with
        that state: a live handle reads them again for each of status, pid, exit code, times,
        networks and ports, which an inspect asks for one after the other. ``NotFound`` once a
        removal took its state dir (between finding the record and reading the state)."""
        state = self.runtime_state()
        if state.status == "created" and not self.task.exists():
            raise NotFound(f"No such container: {self.id}")
        status = self._status_from(state)
        view = self._service.handle(self._record)
        view._listed = RunRecord(
            container_id=self.id,
            status=status.value,
            # the pid while the process is there (paused too), as the live handle shows it
            pid=state.pid if _status(state) is _RUNNING else None,
            started_at=state.started_at,
            finished_at=state.finished_at,
            exit_code=state.exit_code,
            oom_killed=state.oom_killed,
        )
        view._listed_net = ListedNetwork(self._port_records(), self._endpoint_records())
        return view, state

    def _is_paused(self) -> bool:
        return self.task.paused()

    @property
    def restarting(self) -> bool:
        """Exited, and its restart policy starts it again after the back-off (docker's
        ``State.Restarting``)."""
        return self.current_status() is ContainerStatus.RESTARTING

    def _restart_pending(self) -> bool:
        return bool(self.task.restart_record().get("restarting"))

    @property
    def restart_count(self) -> int:
        """How often its restart policy restarted it since the user last started it."""
        if not self.spec.restart_policy.enabled:
            return 0
        return int(self.task.restart_record().get("restart_count") or 0)

    @property
    def health(self) -> Health | None:
        """Its health check's status and last five results; None without a health check. A status
        change nobody saw yet becomes its ``health_status`` event here."""
        # not self.task: a listed handle keeps the list's view (docker ps reads health per row)
        task = self._service.task(self.id)
        record = task.health_record()  # the shim writes one before the start returns
        if record is None:
            return None
        self._service.observe_health(self, record, self.started_at)
        return task.health()

    @property
    def exit_code(self) -> int | None:
        if self._listed is not None:
            return self._listed.exit_code
        return self.runtime_state().exit_code

    @property
    def oom_killed(self) -> bool:
        if self._listed is not None:
            return self._listed.oom_killed
        return self.runtime_state().oom_killed

    @property
    def pid(self) -> int | None:
        if self._listed is not None:
            return self._listed.pid if ContainerStatus(self._listed.status).is_up else None
        state = self.runtime_state()
        return state.pid if _status(state) is _RUNNING else None

    @property
    def started_at(self) -> str | None:
        if self._listed is not None:
            return self._listed.started_at
        return self.runtime_state().started_at

    @property
    def finished_at(self) -> str | None:
        if self._listed is not None:
            return self._listed.finished_at
        return self.runtime_state().finished_at

    # -- its network ------------------------------------------------------------------------

    def _port_records(self) -> builtins.list[PortRecord]:
        if self._listed_net is not None:
            return self._listed_net.ports
        return self._service.metadata.networks.ports(self.id)

    def _endpoint_records(self) -> builtins.list[tuple[EndpointRecord, NetworkRecord]]:
        if self._listed_net is not None:
            return self._listed_net.endpoints
        store = self._service.metadata.networks
        return [(e, store.get(e.network_id)) for e in store.endpoints(container_id=self.id)]

    @property
    def ports(self) -> dict[str, list[tuple[str, int]]]:
        """What is published, random ports resolved: ``{"80/tcp": [("0.0.0.0", 8080)]}``."""
        result: dict[str, list[tuple[str, int]]] = {}
        for port in self._port_records():
            result.setdefault(f"{port.container_port}/{port.protocol}", []).append(
                (port.host_ip, port.host_port)
            )
        return result

    @property
    def networks(self) -> dict[str, NetworkEndpoint]:
        """Each connected network by name; addresses only while the container is plugged in."""
        result = {}
        for endpoint, network in self._endpoint_records():
            on = endpoint.attached and endpoint.ip is not None
            result[network.name] = NetworkEndpoint(
                network_id=network.id,
                ip=endpoint.ip or "" if on else "",
                prefixlen=int(network.subnet.rpartition("/")[2]) if on else 0,
                gateway=network.gateway if on else "",
                mac=endpoint.mac or "" if on else "",
                aliases=json.loads(endpoint.aliases_json),
            )
        return result

    @property
    def ip_address(self) -> str:
        """The address on the first network (``""`` when not running or without one)."""
        attached = [e for e, _network in self._endpoint_records() if e.attached]
        return attached[0].ip or "" if attached else ""

    def reload(self) -> Container:
        """Re-read the record (a rename by another process shows up)."""
        self._listed = self._listed_net = None
        self._record = self._service.metadata.containers.get(self.id)
        return self

    def _running_state(self) -> RuntimeState:
        state = self.runtime_state()
        if _status(state) is not _RUNNING or state.pid is None:
            raise NotRunning(f"container {self.name} is not running")
        return state

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the container; returns once its process runs (or raises with the reason)."""
        self._service.start(self)

    def claim_exit(self) -> None:
        """Take an ``auto_remove`` container's exit upon this process: its shim then leaves the
        removal to :meth:`wait` here instead of starting its exit command (a new interpreter
        on the exit path). Take it before :meth:`start` when the container may exit at once;
        :meth:`wait` releases it, and so does the end of this process (then the shim's exit
        command, or the next ``Engine.recover``, removes the container)."""
        if self.spec.auto_remove and self._claim is None:
            self._claim = self.task.claim_exit()

    def release_exit(self) -> None:
        """Let go of the exit claim :meth:`claim_exit` took (a start that failed)."""
        claim, self._claim = self._claim, None
        if claim is not None:
            claim.release()

    def wait(self, timeout: float | None = None) -> int:
        """Block until the container exits; its exit code (128+n when killed by signal n).
        Its network is torn down and an ``auto_remove`` container removed before this returns:
        here, holding its exit claim, or by its exit command if the exit came first."""
        if self.spec.auto_remove:
            self.claim_exit()
            try:
                code = self.wait_exit(timeout)
                exit_hook.handle_exit(self._service, self.id)
            finally:
                self.release_exit()
            return code
        code = self.wait_exit(timeout)
        if not _has_exit_command(self.spec):
            self._service.networks.wait_teardown(self.id)
        return code

    def wait_exit(self, timeout: float | None = None) -> int:
        """Only wait for the exit record and return its code: no network teardown, no
        auto-remove (for a watcher that does those itself, or leaves them to another)."""
        if not self.task.exists():  # auto-removed already: the exit code kept for waiters
            kept = self._service.removed_exit_code(self.id)
            if kept is not None:
                return kept
        if _status(self.runtime_state()) is ContainerStatus.CREATED:
            raise NotRunning(f"container {self.name} has not been started")
        try:
            code = self._service.wait_exit(self.id, timeout)
        except NotFound:  # its exit command removed it (auto_remove)
            kept = self._service.removed_exit_code(self.id)
            if kept is None:
                raise
            return kept
        self.runtime_state()  # its die event, if this is the first to see the exit
        return code

    def kill(self, sig: int | str = "SIGKILL") -> None:
        """Send ``sig`` to the container's init. SIGKILL returns once the exit is recorded (bounded,
        as dockerd's kill): an inspect right after shows the container exited."""
        number = parse_signal(sig)
        paused = self.send_signal(number)
        if number == _SIGKILL:
            if paused:
                self.task.resume_if_paused()  # a frozen cgroup (v1) holds the signal until it thaws
            with contextlib.suppress(Timeout, NotFound):
                self.task.wait(_KILL_WAIT)
                self.runtime_state()  # the exit recorded, its die event

    def send_signal(self, number: int) -> bool:
        """:meth:`kill` without waiting for the exit (a forced removal does its own work
        meanwhile); whether the container was paused (a frozen v1 cgroup holds a SIGKILL)."""
        self._running_state()
        paused = number == _SIGKILL and self._is_paused()  # running: only the freezer to read
        if self.spec.restart_policy.enabled:  # killed by the user: not restarted, as docker's
            self.task.update_restart_record(stopped_by_user=True)
        # recorded before the signal goes: any observer of the exit it causes (a list, a wait in
        # another process) records the die after it, in docker's order
        self._service.record(self, "kill", signal=str(number))
        if not self.task.kill(number):
            raise NotRunning(f"container {self.name} is not running")
        return paused

    def stop(self, timeout: float | None = None) -> None:
        """The stop signal, then SIGKILL after ``timeout`` seconds (the spec's, default 10)."""
        state = self.runtime_state()
        spec = self.spec
        if _status(state) is not _RUNNING:
            if spec.restart_policy.enabled and self.task.restart_record().get("restarting"):
                self.task.update_restart_record(stopped_by_user=True, restarting=False)
                return  # a restart waiting out its back-off: cancelled
            raise NotModified(f"container {self.name} is not running")
        if spec.restart_policy.enabled:  # stopped by the user: not restarted
            self.task.update_restart_record(stopped_by_user=True)
        if timeout is None:
            timeout = spec.stop_timeout if spec.stop_timeout is not None else 10
        stop_signal = spec.stop_signal or self._service.images.config(self.image_id).stop_signal or "SIGTERM"
        if self.current_status() is _PAUSED:
            self.task.resume()
        try:
            self.kill(stop_signal)
            self.task.wait(timeout)
        except (NotRunning, NotFound):  # NotFound: auto-removed at the exit
            pass
        except Timeout:
            with contextlib.suppress(NotRunning):
                self.kill("SIGKILL")
        with contextlib.suppress(NotFound):
            self.task.wait(30)
        self.runtime_state()  # die, then stop, as docker orders them
        self._service.record(self, "stop")
        if not _has_exit_command(spec):  # else the exit command tore it down (and removed it)
            self._service.networks.wait_teardown(self.id)

    def restart(self, timeout: float | None = None) -> None:
        if _status(self.runtime_state()) is _RUNNING:
            self.stop(timeout)
        self.start()
        self._service.record(self, "restart")

    def pause(self) -> None:
        self._running_state()
        self.task.pause()
        self._service.observe(self.id)
        self._service.record(self, "pause")

    def unpause(self) -> None:
        self._running_state()
        self.task.resume()
        self._service.observe(self.id)
        self._service.record(self, "unpause")

    def remove(self, *, force: bool = False, volumes: bool = False) -> None:
        self._service.remove(self, force=force, volumes=volumes)

    def rename(self, name: str) -> None:
        _names.check(name)
        old = self.name
        self._record = self._service.metadata.containers.rename(self.id, name)
        self._service.record(self, "rename", oldName=f"/{old}")

    def update(
        self,
        *,
        memory: int | str | None = None,
        memory_swap: int | str | None = None,
        cpus: float | None = None,
        cpu_shares: int | None = None,
        pids: int | None = None,
        cpuset_cpus: str | None = None,
        cpuset_mems: str | None = None,
        restart_policy: RestartPolicy | None = None,
    ) -> None:
        """``docker update``: change limits (None keeps one as it is) and the restart policy.

        A running container's cgroup gets them at once; the spec keeps them, so inspect shows
        them and the next start applies them. ``memory_swap`` is memory plus swap (-1: back to
        the default, as much swap as memory), ``pids`` -1 is no limit. A memory limit below what
        the container uses now is a :class:`Conflict` (the kernel's EBUSY) and nothing changes.
        A new restart policy holds at the next exit, except for a container that runs without
        any policy or auto-remove: its shim has no exit command, so the policy holds from its
        next start.
        """
        spec = self.spec
        changes: dict[str, Any] = {
            name: value
            for name, value in (
                ("memory", memory),
                ("memory_swap", memory_swap),
                ("cpus", cpus),
                ("cpu_shares", cpu_shares),
                ("pids", pids),
                ("cpuset_cpus", cpuset_cpus),
                ("cpuset_mems", cpuset_mems),
            )
            if value is not None
        }
        if changes.get("memory_swap") == -1:
            changes["memory_swap"] = None  # as create reads -1: the default swap, as much as memory
        resources = attrs.evolve(spec.resources, **changes)
        new_spec = attrs.evolve(
            spec, resources=resources, restart_policy=restart_policy or spec.restart_policy
        )
        if resources != spec.resources and self.current_status() in (_RUNNING, _PAUSED):
            self._apply_resources(spec.resources, resources)
        if resources != spec.resources:
            _prepare.set_resources(self.state_dir, new_spec, self._service.default_pids_limit)
        self._record = self._service.metadata.containers.update(self.id, spec_json=new_spec.to_json())
        self._service.record(self, "update")

    def _apply_resources(self, old: Resources, new: Resources) -> None:
        default = self._service.default_pids_limit
        cgroup = open_cgroup(cgroup_name(self.id))
        try:
            cgroup.apply(new.effective(default))
        except ContainerkitError as exc:
            with contextlib.suppress(ContainerkitError):
                cgroup.apply(old.effective(default))  # as it was: nothing half-changed
            if isinstance(exc, Conflict) and new.memory is not None:
                raise Conflict(
                    f"Cannot update container {self.id}: memory limit {new.memory} is below what "
                    f"the container uses now ({exc.message})"
                ) from exc
            raise

    # -- io ---------------------------------------------------------------------------------

    def logs(
        self,
        *,
        stdout: bool = True,
        stderr: bool = True,
        tail: int | None = None,
        since: float | dt.datetime | None = None,
        timestamps: bool = False,
        follow: bool = False,
        demux: bool = False,
    ) -> Any:
        """A snapshot of the logs as bytes; with ``follow=True`` an iterator ending at exit.

        ``demux=True`` keeps the streams apart (a command line prints each where it belongs):
        always an iterator of ``("stdout" | "stderr", chunk)``; a tty's output is all stdout.
        Raises :class:`NotSupported` for a container whose log driver is ``none``, as docker.
        """
        self.check_logs_readable()
        task = self.task
        since_ts = since.timestamp() if isinstance(since, dt.datetime) else since
        if demux and not follow:
            entries = task.log_entries(stdout=stdout, stderr=stderr, tail=tail, since=since_ts)
            return iter([(entry.stream, entry.render(timestamps)) for entry in entries])
        if follow:
            # A removed container (no state dir) reads as "created": it ends too.
            return task.follow_log(
                stdout=stdout, stderr=stderr, tail=tail, since=since_ts, timestamps=timestamps, demux=demux
            )
        return task.read_log(stdout=stdout, stderr=stderr, tail=tail, since=since_ts, timestamps=timestamps)

    def check_logs_readable(self) -> None:
        """:class:`NotSupported` for a log driver that keeps nothing to read (``none``), as docker."""
        runtime_logs.check_readable(self.spec.log_driver)

    def log_entries(
        self,
        *,
        stdout: bool = True,
        stderr: bool = True,
        tail: int | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> Iterator[LogEntry]:
        """The log's records now (``.stream``, ``.data``, ``.render(timestamps)``), oldest first."""
        return self.task.log_entries(stdout=stdout, stderr=stderr, tail=tail, since=since, until=until)

    def follow_output(
        self,
        *,
        stdout: bool = True,
        stderr: bool = True,
        tail: int | None = None,
        since: float | None = None,
        timestamps: bool = False,
        until: Callable[[], bool] | None = None,
        poll_interval: float = 0.05,
    ) -> Iterator[tuple[Stream, bytes]]:
        """``(stream, chunk)`` of the log from ``since`` until the container stops (a created one
        counts as about to run) or ``until()`` is true."""
        return self.task.follow_log(
            stdout=stdout,
            stderr=stderr,
            tail=tail,
            since=since,
            timestamps=timestamps,
            while_created=True,
            until=until,
            poll_interval=poll_interval,
        )

    def log_cursor(self, *, stdout: bool = True, stderr: bool = True) -> LineCursor:
        """``read_new()``: the complete log lines written since the last call (a poll that looks
        for a line reads each byte once)."""
        return self.task.log_cursor(stdout=stdout, stderr=stderr)

    def may_run(self) -> bool:
        """Created (may start) or running; False once exited or removed."""
        return self.task.may_run()

    def stdin_writer(self) -> StdinWriter:
        """The container's stdin (created with ``stdin_open``), written from any process."""
        return self.task.stdin_writer()

    def attach(
        self,
        *,
        stdout: bool = True,
        stderr: bool = True,
        logs: bool = False,
        stdin: bool = False,
        detach_keys: str | None = None,
    ) -> AttachStream:
        """``(stream, chunk)`` of the output from now (``logs=True``: from the first line) until
        the container stops; a created container counts as about to run, so attach, then start,
        and nothing is missed.

        ``stdin=True`` sends :meth:`AttachStream.write_stdin` to a container created with
        ``stdin_open``; :meth:`AttachStream.close_stdin` ends it (with ``stdin_once``: for good).
        With a tty, ``detach_keys`` (docker's ``ctrl-p,ctrl-q`` when None) written to stdin end
        the attachment and leave the container running, as on dockerd.
        """
        spec = self.spec
        try:
            keys = detach_key_bytes(detach_keys or DEFAULT_DETACH_KEYS)
        except ValueError:
            raise InvalidArgument(f"Invalid detach keys ({detach_keys}) provided") from None
        task = self.task
        output = task.follow_log(
            stdout=stdout, stderr=stderr, since=None if logs else time.time(), while_created=True
        )
        return AttachStream(
            output,
            task.stdin_writer(),
            stdin=stdin,
            stdin_open=spec.stdin_open,
            name=self.name or self.short_id,
            detach_keys=keys if spec.tty else b"",
        )

    def resize(self, rows: int, cols: int) -> None:
        """Set the size of the container's terminal; its processes get SIGWINCH.

        The shim holds the pty master, so this works from any process on the root.
        """
        _check_terminal_size(rows, cols)
        self._running_state()
        if not self.spec.tty:
            raise InvalidArgument(
                f"container {self.name} has no terminal to resize (it was created without tty)"
            )
        if not self.task.resize(rows, cols):
            raise NotRunning(f"container {self.name} is not running")

    def exec(
        self,
        command: Sequence[str] | str,
        *,
        env: Mapping[str, str] | Iterable[str] | None = None,
        user: str | None = None,
        workdir: str | None = None,
        tty: bool = False,
        stdin: bool = False,
        privileged: bool = False,
        stream: bool = False,
        detach: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Run a command in the running container: an ``ExecResult``, or with ``stream=True`` a
        process handle to iterate and ``.wait()`` on (always an exit code).

        ``detach=True`` (``docker exec -d``) returns the handle once the command started, its
        output going nowhere. ``timeout``: seconds until :class:`Timeout` (the command keeps
        running; it is not killed). A command that cannot start (missing or not executable)
        gives 126 with the reason on stderr, as dockerd's exec does.
        """
        process = self._service.exec_process(
            self, command, env=env, user=user, workdir=workdir, tty=tty, privileged=privileged
        )
        self._running_state()
        handle: ExecProcess | None = self.task.exec(
            process, tty=tty, stdin=stdin and not detach, detach=detach, launcher=self._service.launcher()
        )
        if handle is None:
            raise NotRunning(f"container {self.name} is not running")
        if stream or detach:
            return handle
        # a front-end that streams an exec records its events with its own exec id
        exec_id = secrets.token_hex(32)
        line = " ".join(command) if not isinstance(command, str) else f"sh -c {command}"
        for action in ("exec_create", "exec_start"):
            self._service.record(self, f"{action}: {line}", execID=exec_id)
        with handle:
            out, err = handle.communicate(timeout=timeout)
            code = handle.wait(timeout=timeout)
        self._service.record(self, "exec_die", execID=exec_id, exitCode=str(code))
        if handle.error is not None and not err:
            err = f"{handle.error.message}\n".encode()
        return ExecResult(code, out, err)

    def put(
        self,
        path: str,
        data: bytes | IO[bytes] | str | os.PathLike[str],
        *,
        owner: tuple[int, int] | None = None,
        copy_uid_gid: bool = False,
        no_overwrite_dir_non_dir: bool = False,
    ) -> None:
        """Copy into the container, also before start: ``data`` is a tar archive (bytes, or a
        binary file object read as a stream) that is extracted at ``path`` (a directory), or a
        host path copied into ``path``. Paths resolve inside the container's root; ``owner``
        sets every entry's uid/gid (else the archive's are kept, as docker does);
        ``copy_uid_gid`` gives them to the container's user (``docker cp -a``)."""
        from containerkit.engine import _archive

        if copy_uid_gid:
            owner = self.copy_owner() or owner
        with self._in_root() as root:
            _archive.put(root, path, data, owner=owner, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir)

    def get(self, path: str) -> bytes:
        """A tar archive of ``path`` in the container (like ``docker cp`` / ``GET archive``), in
        memory: for large paths use :meth:`get_archive`."""
        stream, _ = self.get_archive(path)
        return stream.read_all()

    def get_archive(self, path: str) -> tuple[_archive.TarStream, dict[str, Any]]:
        """A tar of ``path`` streamed in chunks (close it, or read it to the end), and the stat
        of ``path`` it was made from (docker's ``X-Docker-Container-Path-Stat`` fields)."""
        from containerkit.engine import _archive

        stack = contextlib.ExitStack()
        try:
            root = stack.enter_context(self._in_root())
            stream = _archive.tar_stream(root, path, stack)
        except BaseException:
            stack.close()
            raise
        return stream, stream.stat

    def stat_path(self, path: str) -> dict[str, Any]:
        from containerkit.engine import _archive

        with self._in_root() as root:
            return _archive.stat(root, path)

    def copy_owner(self) -> tuple[int, int] | None:
        """The uid/gid of the container's user (``docker cp -a`` / ``copyUIDGID``: copied files
        are given to it), read from the container's own ``/etc/passwd`` and ``/etc/group``;
        None when it sets no user (then, as in docker, the archive's ids are kept)."""
        if not self.spec.user:
            return None
        with self._in_root() as root:

            def read(path: str) -> bytes | None:
                try:
                    fd = root.open_fd(path, os.O_RDONLY)
                except OSError:
                    return None
                with os.fdopen(fd, "rb") as handle:
                    return handle.read(4 << 20)

            user = resolve_user(self.spec.user, read)
        return user.uid, user.gid

    @contextlib.contextmanager
    def _in_root(self) -> Iterator[Root]:
        """The container's root as a directory fd that paths are resolved in. A stopped
        container's rootfs is mounted only while the fd is opened: the lazily detached mount
        lives on through the fd, so a long copy (a streamed GET) holds no engine lock."""
        with self._service.rootfs(self) as path:
            root = Root.open(path)
        try:
            yield root
        finally:
            root.close()

    # -- observation ------------------------------------------------------------------------

    def stats(self) -> Stats:
        self._running_state()
        sample = self.task.stats()
        return Stats(
            read_at=dt.datetime.now(dt.UTC),
            memory_usage=sample.memory_usage,
            memory_limit=sample.memory_limit,
            cpu_usage_ns=sample.cpu_usage_ns,
            pids=sample.pids,
            pids_limit=sample.pids_limit,
        )

    def top(self) -> dict[str, Any]:
        """docker's ``top`` shape: ``{"Titles": [...], "Processes": [[...], ...]}``."""
        from containerkit.linux import ps

        state = self._running_state()
        # Only the container's own processes: an exec helper sits in the cgroup while it waits
        # for its command, but lives in the host's pid namespace (the container never sees it).
        own = ps.pid_namespace(state.pid) if state.pid else None
        pids = [p for p in self.task.pids() if own is None or ps.pid_namespace(p) == own]
        rows = [ps.process_row(pid) for pid in pids]
        return {"Titles": list(ps.PROCESS_TITLES), "Processes": [r for r in rows if r is not None]}

    # -- its filesystem as changes, an image, a tar (engine/changes, commit, export.py) ------

    def diff(self) -> builtins.list[Change]:
        """``docker diff``: the paths it changed (C), added (A) or deleted (D) over its image,
        without the engine's own mount points; running or stopped."""
        from containerkit.engine import changes as _changes

        return _changes.changes(self._service, self)

    def size(self) -> ContainerSize:
        """``SizeRw``/``SizeRootFs`` (``docker ps -s``): the bytes of the files it wrote, and
        those plus its image's; a walk of its writable layer, so only when asked."""
        from containerkit.engine import changes as _changes

        return _changes.container_size(self._service, self)

    def commit(
        self,
        repository: str | None = None,
        tag: str | None = None,
        *,
        changes: Iterable[str] = (),
        message: str | None = None,
        author: str | None = None,
        pause: bool = True,
        config: ImageConfig | None = None,
        created_by: str | None = None,
    ) -> Image:
        """``docker commit``: its writable layer over its image as a new image (tagged when
        ``repository`` is given); ``changes`` are Dockerfile instructions applied to its config
        (``CMD ["sh"]``, ``ENV A=1``...). A running container is frozen meanwhile (``pause``).
        ``config``/``created_by`` replace the config and the history line (a builder's step)."""
        from containerkit.engine import commit as _commit

        return _commit.commit(
            self._service,
            self,
            repository,
            tag,
            changes=changes,
            message=message,
            author=author,
            pause=pause,
            config=config,
            created_by=created_by,
        )

    def export(self) -> _archive.TarStream:
        """``docker export``: its root filesystem as a stream of tar chunks (close it, or read
        it to the end), without what is mounted in it."""
        from containerkit.engine import export as _export

        return _export.export(self._service, self)


@functools.lru_cache(maxsize=1024)
def _parse_spec(spec_json: str) -> ContainerSpec:
    """Specs are frozen: one parse per stored text (a list shows each several times)."""
    return ContainerSpec.from_json(spec_json)


def _has_exit_command(spec: ContainerSpec) -> bool:
    """Whether the container's shim runs the engine's exit command (network teardown, restart
    policy, auto-remove: :mod:`~containerkit.engine.exit_hook`)."""
    return spec.auto_remove or spec.restart_policy.enabled


def _check_terminal_size(rows: int, cols: int) -> None:
    for name, value in (("rows", rows), ("cols", cols)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
            raise InvalidArgument(f"resize: {name} must be a whole number from 0 to 65535, got {value!r}")


class ContainerCollection:
    """``engine.containers``: create, run, get, list and prune containers."""

    def __init__(self, service: ContainerService) -> None:
        self._service = service

    def state_dir(self, container_id: str) -> Path:
        return self._service.state_dir(container_id)

    def task(self, container_id: str) -> Task:
        return self._service.task(container_id)

    def create(self, spec: ContainerSpec | None = None, /, **fields: Any) -> Container:
        """Create (not start) a container from a spec, or from the spec's fields as keywords."""
        if spec is None:
            spec = ContainerSpec.from_kwargs(**fields)
        elif fields:
            spec = attrs.evolve(spec, **fields)
        return self._service.create(spec)

    def run(
        self,
        image: str | Image,
        command: Sequence[str] | str | None = None,
        /,
        **fields: Any,
    ) -> Container:
        """Create and start a container (``docker run -d``); see :class:`ContainerSpec`."""
        if isinstance(command, str):
            command = ["sh", "-c", command]
        container = self.create(ContainerSpec.from_kwargs(image=image, command=command, **fields))
        try:
            container.start()
        except BaseException:
            if container.spec.auto_remove:
                self._service.remove(container, force=True, volumes=False)
            raise
        return container

    def get(self, ref: str) -> Container:
        """By full id, unique id prefix, or name (with or without the leading ``/``)."""
        return self._service.get(ref)

    def list(self, *, all: bool = False, filters: Mapping[str, Any] | None = None) -> list[Container]:
        """Running containers (``all=True``: every one), newest first, filtered like docker's
        ``ps --filter`` (``status``, ``name``, ``id``, ``label``, ``ancestor``)."""
        return self._service.list(all=all, filters=filters)

    def prune(self, *, filters: Mapping[str, Any] | None = None) -> builtins.list[str]:
        """Remove every stopped container; the ids removed."""
        return self._service.prune(filters=filters)

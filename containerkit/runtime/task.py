"""One container's Task: the only owner of its state directory and every file and FIFO in it.

As containerd's shim Task service is the one door to a running container, a :class:`Task`
is the one door to ``<root>/containers/<id>``: it starts the shim, signals the process, asks
the shim to resize the terminal, writes the container's stdin, waits for the exit record,
reads and follows the json-file log, samples, freezes and thaws the cgroup, and deletes the
directory. The file protocol itself stays in :mod:`containerkit.runtime.state`; the layers
above never spell a file name, so the protocol can change in one place.

A Task holds no open resources and no cache: any process on the root can make one from the
container's id and state dir, and every call reads what the shim wrote just now.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from containerkit.errors import NotFound, RuntimeFailure
from containerkit.linux import inotify, proc
from containerkit.linux.cgroups import exists_anywhere, open_cgroup
from containerkit.runtime import logs
from containerkit.runtime.health import read_health
from containerkit.runtime.iopump import request_resize
from containerkit.runtime.launcher import Launcher
from containerkit.runtime.logs import LogEntry
from containerkit.runtime.shim import ShimRequest, StartedContainer, start_container
from containerkit.runtime.spare_cgroup import CGROUP_PARENT as CGROUP_PARENT
from containerkit.runtime.state import (
    EXIT_CLAIM,
    EXIT_FILE,
    LOG_FILE,
    STDIN_FIFO,
    RuntimeState,
    read_exit,
    read_json,
    read_state,
    wait_for_exit,
    write_json_atomic,
)
from containerkit.spec import ContainerStatus, Health, HealthResult, Resources

if TYPE_CHECKING:
    from containerkit.runtime.exec import ExecProcess

__all__ = ["ExitClaim", "StdinWriter", "Task", "cgroup_name"]

_READER_POLL = 0.02
"""How often an exit command looks again whether the readers of the output are done, where
no inotify watch tells it when a reader lets go."""
_READER_RECHECK = 1.0
"""With a watch: how long a wait for readers trusts it before looking again anyway."""
RESTART_FILE = "restart.json"
READERS_LOCK = "readers"

_OPEN_POLL = 0.02
"""How often a stdin writer looks again for the FIFO (made at start) and for its reader."""


def cgroup_name(container_id: str) -> str:
    """The container's cgroup below each hierarchy's root (one spelling for every caller)."""
    return f"{CGROUP_PARENT}/{container_id}"


class Task:
    """The runtime side of one container, addressed by its id and state dir."""

    def __init__(self, container_id: str, state_dir: Path) -> None:
        self.id = container_id
        self.state_dir = Path(state_dir)

    def __repr__(self) -> str:
        return f"<Task {self.id[:12]}>"

    # -- what is on disk --------------------------------------------------------------------

    @property
    def bundle(self) -> Path:
        return self.state_dir / "bundle"

    @property
    def log_path(self) -> Path:
        """The json-file log (the one copy of the container's output); rotated files beside it."""
        return self.state_dir / LOG_FILE

    @property
    def cgroup_name(self) -> str:
        return cgroup_name(self.id)

    def exists(self) -> bool:
        return self.state_dir.exists()

    def etc_path(self, name: str) -> Path:
        """The container's own copy of ``/etc/<name>`` (``hosts``, ``hostname``,
        ``resolv.conf``), which its bundle bind-mounts: rewritten in place, never replaced."""
        return self.state_dir / name

    def state(self) -> RuntimeState:
        return read_state(self.state_dir)

    def may_run(self) -> bool:
        """Created (may start) or running: output may still come. False once exited or deleted."""
        return self.exists() and ContainerStatus(self.state().status).may_start

    def running(self) -> bool:
        return self.exists() and self.state().running

    def cleaned_up(self) -> bool:
        """The shim recorded an exit without errors: it writes the record only after its cleanup
        (cgroup destroyed), and any failed step or failed start is recorded as an error."""
        exited = read_exit(self.state_dir)
        return exited is not None and not exited.get("error")

    def process_args(self) -> list[str] | None:
        """The argv the bundle runs (entrypoint and command resolved), None without a bundle."""
        try:
            with open(self.bundle / "config.json") as f:
                return [str(arg) for arg in json.load(f)["process"]["args"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # -- the process ------------------------------------------------------------------------

    def start(
        self,
        *,
        runtime: str,
        tty: bool,
        stdin_open: bool,
        stdin_once: bool,
        resources: Resources,
        runc_root: Path,
        log_driver: str,
        log_opts: Mapping[str, str],
        launcher: Launcher | None = None,
        running_marker: Path | None = None,
        exit_command: Sequence[str] | None = None,
        health: Mapping[str, Any] | None = None,
        keep_exit_fd: bool = False,
    ) -> StartedContainer:
        """Start the shim on the bundle; returns once the container's process has exec'd.

        ``exit_command`` and ``health``: see :class:`~containerkit.runtime.request.ShimRequest`;
        ``keep_exit_fd``: see :func:`~containerkit.runtime.shim.start_container`."""
        request = ShimRequest(
            container_id=self.id,
            bundle=self.bundle,
            state_dir=self.state_dir,
            runtime=runtime,  # type: ignore[arg-type]
            tty=tty,
            stdin_open=stdin_open,
            stdin_once=stdin_once,
            cgroup_name=self.cgroup_name,
            resources=resources,
            # rootfs_mount: the shim reads it from config.json's annotation
            runc_root=runc_root,
            log_driver=log_driver,
            log_opts=dict(log_opts),
            running_marker=running_marker,
            exit_command=None if exit_command is None else tuple(exit_command),
            health=None if health is None else dict(health),
        )
        return start_container(request, spawner=launcher, keep_exit_fd=keep_exit_fd)

    def kill(self, sig: int) -> bool:
        """Send ``sig`` to the container's init; False when it is not running."""
        state = self.state()
        if not state.running or state.pid is None:
            return False
        return proc.send_signal(state.pid, sig, state.pid_start_time)

    def wait(self, timeout: float | None = None) -> int:
        """The exit code from the shim's exit record, once there is one (nothing else happens)."""
        return wait_for_exit(self.state_dir, timeout)

    # -- health, restarts and readers of the output ----------------------------------------

    def health_record(self) -> dict[str, Any] | None:
        """The health checker's record (status, failing streak, last results, status changes)."""
        with contextlib.suppress(RuntimeFailure):
            return read_health(self.state_dir)
        return None

    def health(self) -> Health | None:
        """The container's health as the checker last wrote it; None without one."""
        record = self.health_record()
        if not record:
            return None
        return Health(
            status=record.get("status", "starting"),
            failing_streak=int(record.get("failing_streak") or 0),
            log=[
                HealthResult(
                    start=str(r.get("start") or ""),
                    end=str(r.get("end") or ""),
                    exit_code=int(r.get("exit_code") or 0),
                    output=str(r.get("output") or ""),
                )
                for r in record.get("log") or []
            ],
        )

    def restart_record(self) -> dict[str, Any]:
        """What the restart policy keeps between runs: ``restart_count``, ``stopped_by_user``,
        ``restarting``, ``delay`` (the next back-off), ``started`` (wall time of the last start)."""
        with contextlib.suppress(RuntimeFailure):
            return read_json(self.state_dir / RESTART_FILE) or {}
        return {}

    def update_restart_record(self, **changes: Any) -> dict[str, Any]:
        """Change some fields of :meth:`restart_record` (atomically replaced); the new record.
        Nothing happens to a container that is gone."""
        record = {**self.restart_record(), **changes}
        with contextlib.suppress(FileNotFoundError):
            write_json_atomic(self.state_dir / RESTART_FILE, record)
        return record

    def claim_exit(self) -> ExitClaim:
        """Take the container's exit upon this process: while the claim is held, the shim
        leaves the exit to it (no exit command, no new interpreter on the exit path); when this
        process dies the kernel drops the claim and the shim's exit command does the work."""
        return ExitClaim(self.state_dir / EXIT_CLAIM)

    @contextlib.contextmanager
    def hold_output(self) -> Iterator[None]:
        """Held by a reader of the output (an attach stream, in any process): an exit command
        that removes the container waits (:meth:`wait_for_readers`) until it is let go."""
        try:
            fd = os.open(self.state_dir / READERS_LOCK, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:  # gone already: nothing to hold
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def wait_for_readers(self, timeout: float) -> bool:
        """Wait until no reader holds the output (or ``timeout`` passed); whether none does.

        A reader lets go by closing its descriptor of the lock (or by dying): inotify's
        close-without-write notice in the state dir wakes this wait at once (an attached
        ``docker run --rm`` waits for the removal after its stream ended)."""
        try:
            fd = os.open(self.state_dir / READERS_LOCK, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return True
        deadline = time.monotonic() + timeout
        watch: inotify.DirectoryWatch | None = None
        watched = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    if not watched:  # watched before the next try: a release between is seen
                        watched = True
                        watch = inotify.watch_directory(self.state_dir, inotify.IN_CLOSE_NOWRITE)
                        continue
                    if watch is None:
                        time.sleep(min(left, _READER_POLL))
                    else:
                        watch.wait(min(left, _READER_RECHECK))
        finally:
            os.close(fd)
            if watch is not None:
                watch.close()

    def resize(self, rows: int, cols: int) -> bool:
        """Ask the shim to size the terminal; False when no shim listens."""
        return request_resize(self.state_dir, rows, cols)

    def exec(
        self,
        process: dict[str, Any],
        *,
        tty: bool,
        stdin: bool,
        detach: bool,
        launcher: Any = None,
    ) -> ExecProcess | None:
        """Start ``process`` in the running container; None when it is not running."""
        from containerkit.runtime.exec import start_exec  # loaded by the first exec

        state = self.state()
        if not state.running or state.pid is None:
            return None
        return start_exec(state.pid, process, tty=tty, stdin=stdin, detach=detach, spawner=launcher)

    def stdin_writer(self) -> StdinWriter:
        return StdinWriter(self)

    # -- the cgroup -------------------------------------------------------------------------

    def _cgroup(self) -> Any:
        return open_cgroup(self.cgroup_name)

    def stats(self) -> Any:
        """A sample of the cgroup (memory, cpu, pids)."""
        return self._cgroup().stats()

    def pids(self) -> list[int]:
        return sorted(self._cgroup().pids())

    def paused(self) -> bool:
        try:
            return bool(self._cgroup().is_frozen())
        except NotFound:  # the container exited and its cgroup went meanwhile
            return False

    def pause(self) -> None:
        self._cgroup().freeze()

    def resume(self) -> None:
        self._cgroup().thaw()

    def resume_if_paused(self) -> None:
        """Thaw a frozen cgroup so a kill can land; nothing when it is gone meanwhile."""
        cgroup = self._cgroup()
        with contextlib.suppress(NotFound):  # the shim may remove the cgroup meanwhile
            if cgroup.exists() and cgroup.is_frozen():
                cgroup.thaw()

    def destroy_cgroup(self) -> None:
        """Remove the cgroup, which the shim has mostly removed already: that is checked first
        without opening a manager (its probe and scan of every hierarchy cost each removal)."""
        if exists_anywhere(self.cgroup_name):
            self._cgroup().destroy()

    def delete(self) -> None:
        """Remove the state dir and everything in it (the process must be gone)."""
        shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- the log ----------------------------------------------------------------------------

    def log_entries(
        self,
        *,
        stdout: bool = True,
        stderr: bool = True,
        tail: int | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> Iterator[LogEntry]:
        """The log's entries now (rotated files included), oldest first."""
        return logs.iter_entries(
            self.log_path, stdout=stdout, stderr=stderr, tail=tail, since=since, until=until
        )

    def log_cursor(self, *, stdout: bool = True, stderr: bool = True) -> logs.LineCursor:
        """New complete lines since the last call, read on from where the last read stopped."""
        return logs.LineCursor(self.log_path, stdout=stdout, stderr=stderr)

    def read_log(
        self,
        *,
        stdout: bool = True,
        stderr: bool = True,
        tail: int | None = None,
        since: float | None = None,
        timestamps: bool = False,
    ) -> bytes:
        if not self.log_path.exists():
            return b""
        return logs.read_logs(
            self.log_path, stdout=stdout, stderr=stderr, tail=tail, since=since, timestamps=timestamps
        )

    def follow_log(
        self,
        *,
        stdout: bool = True,
        stderr: bool = True,
        tail: int | None = None,
        since: float | None = None,
        timestamps: bool = False,
        while_created: bool = False,
        until: Callable[[], bool] | None = None,
        poll_interval: float = 0.05,
        demux: bool = True,
    ) -> Iterator[Any]:
        """Follow the log until the container stops (``while_created``: a created container
        counts as about to run) or ``until()`` says so; ``(stream, chunk)`` pairs with
        ``demux``, else rendered bytes."""
        keep = self.may_run if while_created else self.running

        def is_running() -> bool:
            return keep() and not (until is not None and until())

        follower = logs.follow_logs_demux if demux else logs.follow_logs
        return follower(
            self.log_path,
            stdout=stdout,
            stderr=stderr,
            tail=tail,
            since=since,
            timestamps=timestamps,
            is_running=is_running,
            poll_interval=poll_interval,
            # the exit record ends a run; the shim's other files (state, FIFOs, cgroup and
            # health records) change nothing here
            wake_on=EXIT_FILE.__eq__,
        )


class StdinWriter:
    """The container's stdin FIFO, opened on the first write (it may come before the start, the
    shim makes the FIFO when it starts). Closing it is EOF for a ``stdin_once`` container."""

    def __init__(self, task: Task) -> None:
        self._task = task
        self._fd = -1

    def open(self) -> bool:
        """Open the FIFO once the shim made it and reads it; False when the container is gone."""
        path = self._task.state_dir / STDIN_FIFO
        while self._fd == -1:
            try:
                # O_NONBLOCK: ENXIO instead of blocking while no shim reads it
                self._fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                os.set_blocking(self._fd, True)
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.ENXIO) or not self._task.may_run():
                    return False
                time.sleep(_OPEN_POLL)
        return True

    def write(self, data: bytes) -> bool:
        """Write all of ``data``; False when the container is gone before the FIFO opened.
        Raises :class:`BrokenPipeError` when the container closed its stdin."""
        if not self.open():
            return False
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        return True

    def close(self, *, eof: bool = True) -> None:
        """Let go of the FIFO. ``eof``: even when nothing was written, open and close it, since
        the shim sees EOF only after a writer came and went."""
        if self._fd == -1 and eof:
            self.open()
        if self._fd != -1:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1


class ExitClaim:
    """A held exit claim (see :meth:`Task.claim_exit`): ``release()`` it once the exit is handled."""

    def __init__(self, path: Path) -> None:
        self._fd: int | None = None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:  # the container is gone: nothing to claim
            return
        fcntl.flock(fd, fcntl.LOCK_SH)
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

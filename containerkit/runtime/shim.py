"""The per-container shim: a small detached process that owns one running container.

It is the parent (subreaper) of the container's init, holds its stdio, writes the json-file log,
forwards the ``stdin`` FIFO, serves the ``control`` FIFO (a tty's resize: only the shim holds
the pty master), and records the exit in the state dir (see :mod:`containerkit.runtime.state`).
Because it runs in its own session and is nobody's pipe, the process that started the container
may exit: the container keeps running and the state dir finds it again.

This module wires the parts, as containerd's runc shim does: a
:class:`~containerkit.runtime.launcher.Launcher` starts the shim (the spawner, or a direct fork);
:mod:`~containerkit.runtime.init` starts the container's init (:class:`BuiltinInit` or
:class:`RuncInit`), whose failures come back in :mod:`~containerkit.runtime._sync`'s report;
:mod:`~containerkit.runtime.rootfs` mounts the root where the init needs it;
:class:`~containerkit.runtime.iopump.IOPump` moves the container's IO. The shim itself keeps the
state dir, the cgroup, the exit record and the cleanup.

Lifecycle::

    start_container(request)          shim                          container init
      | launcher: fork (spawner)      | setsid, subreaper
      | or python -c ...shim  ------>  | state.json (shim pid)
      |                                | init.start: unshare(NEWPID), fork -> run_container_init
      |                                | cgroup create+apply+move  ----> (waits, then cgroupns)
      |                                | read error pipe until EOF <---- exec (EOF) or JSON error
      | <---- ready pipe: one JSON ---  | state.json (+ init pid)
      |                                | IOPump: stdout/stderr -> container.log, stdin FIFO -> stdin
      |                                | control FIFO "resize R C" -> TIOCSWINSZ on the pty master
      |                                | reap init, OOM?, cleanup (cgroup, runc delete, unmount)
      |                                | exit.json, exit

A start that fails is cleaned up and recorded (``exit.json`` with 127 for a missing command, 126
for one that cannot run) *before* it is reported, so when :func:`start_container` raises,
nothing of the container is left.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from containerkit.errors import (
    ContainerkitError,
    InvalidArgument,
    RuntimeFailure,
    error_class_for,
)
from containerkit.linux import _libc, proc
from containerkit.runtime import _sync, health, logs, state, trace
from containerkit.runtime.bundle import ROOTFS_MOUNT_ANNOTATION, device_rules
from containerkit.runtime.init import (
    BuiltinInit,
    InitProcess,
    PreparedInit,
    RuncInit,
    StartFailed,
    kill_child,
    prepare_init,
)
from containerkit.runtime.iopump import IOPump, request_resize
from containerkit.runtime.launcher import DirectLauncher, Launcher
from containerkit.runtime.request import ShimRequest, StartedContainer
from containerkit.runtime.rootfs import ContainerRoot

if TYPE_CHECKING:
    from containerkit.linux.cgroups import CgroupManager

__all__ = [
    "ROOTFS_MOUNT_ANNOTATION",
    "PreparedInit",
    "ShimRequest",
    "StartedContainer",
    "prepare_init",
    "request_resize",
    "run_shim",
    "start_container",
]

SHIM_LOG = "shim.log"
EXIT_COMMAND_TIMEOUT = 120.0
"""The longest a shim waits for its exit command (a reader holding the log, a removal)."""
_DAMAGED = (
    " (the bundle is written without a sync, so a power cut after the create can leave it so:"
    " remove the container and create it again)"
)

# -- the starting side ----------------------------------------------------------------------


def start_container(
    request: ShimRequest,
    *,
    spawner: Launcher | None = None,
    timeout: float = 60.0,
    keep_exit_fd: bool = False,
) -> StartedContainer:
    """Start a shim for ``request`` and return once the container's process has exec'd.

    ``spawner``: the :class:`~containerkit.runtime.launcher.Launcher` that starts the shim (the
    Engine's :class:`~containerkit.runtime.spawner.Spawner` forks it from its warm forkserver);
    without one, a :class:`~containerkit.runtime.launcher.DirectLauncher`. ``keep_exit_fd``: the
    result's ``exit_fd`` is the read end of the pipe the shim reported on, which reads EOF once
    the exit is handled (see :func:`~containerkit.runtime.state.wait_for_exit`); the caller
    closes it. Raises
    :class:`CommandNotFound`, :class:`RuntimeFailure`, :class:`InvalidArgument`... with the
    message the container's setup reported; ``exit.json`` then records 127/126 like docker.
    """
    request.state_dir.mkdir(parents=True, exist_ok=True)
    launcher = spawner if spawner is not None else DirectLauncher(run_shim)
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    kept = False
    try:
        launcher.spawn_shim(request, ready_fd=write_fd)
        os.close(write_fd)
        write_fd = -1
        report = _read_report(read_fd, timeout, request)
        kept = keep_exit_fd and bool(report.get("ok"))
    finally:
        if not kept:
            os.close(read_fd)
        if write_fd != -1:
            os.close(write_fd)
    if report.get("ok"):
        return StartedContainer(
            pid=int(report["pid"]),
            pid_start_time=int(report["pid_start_time"]),
            shim_pid=int(report["shim_pid"]),
            shim_start_time=int(report["shim_start_time"]),
            started_at=str(report["started_at"]),
            state_dir=request.state_dir,
            exit_fd=read_fd if kept else None,
        )
    # The shim cleans up before reporting; let it finish exiting so truly nothing is left.
    shim_pid = report.get("shim_pid")
    if shim_pid:
        fd = proc.open_pidfd(int(shim_pid), report.get("shim_start_time"))
        if fd is not None:
            try:
                proc.wait_pidfd(fd, 5.0)
            finally:
                os.close(fd)
    cls = error_class_for(500, str(report.get("kind") or "runtime_failure"))
    raise cls(str(report.get("message") or f"container {request.container_id} failed to start"))


def _read_report(fd: int, timeout: float, request: ShimRequest) -> dict[str, Any]:
    # one line, after which a started container's shim keeps its end open until the exit
    raw = _sync.read_line(fd, timeout, what=f"shim of container {request.container_id}")
    if raw:
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
    message = f"shim of container {request.container_id} exited without reporting (see {SHIM_LOG})"
    with contextlib.suppress(OSError):
        tail = (request.state_dir / SHIM_LOG).read_text(errors="replace").strip().splitlines()[-1:]
        if tail:
            message += f": {tail[0]}"
    if state.read_exit(request.state_dir) is None:
        state.write_json_atomic(
            request.state_dir / state.EXIT_FILE,
            {"exit_code": 125, "oom_killed": False, "finished_at": _now(), "error": message},
        )
    return {"ok": False, "kind": RuntimeFailure.kind, "message": message}


def _now() -> str:
    return logs.format_time(time.time_ns())


# -- the shim itself ------------------------------------------------------------------------


def run_shim(request: ShimRequest, ready_fd: int, prepared: PreparedInit | None = None) -> NoReturn:
    """Become the shim of ``request`` (in a freshly forked, single-threaded process); never returns.

    ``prepared``: a container init this process forked ahead of the request (:func:`prepare_init`).
    """
    code = 0
    trace.mark("shim.begin")
    try:
        os.setsid()
        ready_fd = proc.move_above_stdio(ready_fd)  # a caller with closed stdio may pass 0-2
        _redirect_stdio(request.state_dir)
        os.set_inheritable(ready_fd, False)
        _libc.libc.prctl(_libc.PR_SET_CHILD_SUBREAPER, 1)
        _Shim(request, ready_fd, prepared).run()
    except BaseException:  # the shim must never die silently: its creator waits on ready_fd
        import traceback  # here: ~3 ms of import off every start

        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(OSError):
            sys.stderr.flush()
    os._exit(code)


def _redirect_stdio(state_dir: Path) -> None:
    """The shim holds nobody's terminal or pipes; its own complaints go to ``shim.log``."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)
    sys.stderr = _ShimLog(state_dir / SHIM_LOG)


class _ShimLog(io.TextIOBase):
    """The shim's ``sys.stderr``: ``shim.log`` is created (and put on fd 2) at the first write.

    Most shims never write a line, and on a disk where creating a file costs up to a
    millisecond, an empty log per container is a cost on every start and every remove.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._path = path
        self._file: TextIO | None = None

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self._file is None:
            try:
                fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
            except OSError:
                return len(text)  # the state dir is gone: nobody is left to read it
            os.dup2(fd, 2)  # from now on also what child processes and C code write there
            os.close(fd)
            self._file = open(2, "w", closefd=False)  # noqa: SIM115 - fd 2 lives as long as the process
        written = self._file.write(text)
        self._file.flush()
        return written

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()


class _Shim:
    def __init__(self, request: ShimRequest, ready_fd: int, prepared: PreparedInit | None = None) -> None:
        self.request = request
        self.ready_fd = ready_fd
        self.prepared = prepared
        self.state_dir = request.state_dir
        self.shim_pid = os.getpid()
        self.shim_start_time = proc.start_time(self.shim_pid) or 0
        self.cgroup: CgroupManager | None = None
        self.device_rules: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.io = IOPump(
            request.state_dir, tty=request.tty, stdin_open=request.stdin_open, stdin_once=request.stdin_once
        )
        self.root = ContainerRoot(request.bundle, request.container_id, request.rootfs_mount)
        self.init: InitProcess | None = None
        self.config_bytes: bytes | None = None
        self.log: logs.LogSink | None = None
        self.recorded = False  # the first state.json (shim pid) is written
        self.next_state: state.PendingWrite | None = None  # the one with the container's pid
        self.record: dict[str, Any] = {
            "container_id": request.container_id,
            "runtime": request.runtime,
            "bundle": str(request.bundle),
            "shim_pid": self.shim_pid,
            "shim_start_time": self.shim_start_time,
        }

    # -- top level ---------------------------------------------------------------------

    def run(self) -> None:
        try:
            if self.request.runtime == "builtin":
                # state.json and the log are made after the fork, while the child sets up
                config = self._load_config()
                self.io.open_fifos()
                self.device_rules = _device_rules(config)
                prepared, self.prepared = self.prepared, None
                self.init = BuiltinInit(
                    self.request,
                    self.io,
                    self.root,
                    prepared=prepared,
                    private_fds=lambda: self.io.fds() | {self.ready_fd},
                    on_fork=self._while_child_sets_up,
                    config_bytes=self.config_bytes,
                )
            else:
                self._discard_prepared()
                self._record_shim()
                config = self._load_config()
                self.io.open_fifos()
                self.init = RuncInit(self.request, self.io, self.root)
            self.init.start(config)
        except StartFailed as failed:
            self._finish_failed(failed.error, failed.exit_code)
            return
        except ContainerkitError as exc:
            self._finish_failed(exc, 125)
            return
        except Exception as exc:
            import traceback  # here: ~3 ms of import off every start

            traceback.print_exc()
            self._finish_failed(RuntimeFailure(f"shim of {self.request.container_id}: {exc!r}"), 125)
            return
        started_at = _now()
        pid = self.init.pid
        self.record.update(pid=pid, pid_start_time=proc.start_time(pid) or 0, started_at=started_at)
        if self.next_state is not None:
            self.next_state.commit(self.record)
            self.next_state = None
        else:
            state.write_json_atomic(self.state_dir / state.STATE_FILE, self.record)
        if self.request.health is not None:  # from the start: no record means no health check
            health.write_starting(self.state_dir)
        self._report({"ok": True, **self.record})
        trace.mark("shim.reported")
        checker = self._start_checker(pid, self.record["pid_start_time"])
        exit_record: state.PendingWrite | None = None
        with contextlib.suppress(OSError):  # made while the container runs; written at the end anyway
            exit_record = state.PendingWrite(self.state_dir / state.EXIT_FILE)
        status = self._run_io(self.init)
        trace.mark("shim.exit_seen")
        _stop_checker(checker)
        exit_code = _sync.status_exit_code(status)
        self._drop_running_marker()  # before the record: a lister without the marker re-reads until it shows
        assert self.log is not None
        self.log.close()
        oom = self._oom_killed()
        self._cleanup()
        trace.mark("shim.cleaned_up")
        record = {
            "exit_code": exit_code,
            "oom_killed": oom,
            "finished_at": _now(),
            "error": "; ".join(self.errors) or None,
        }
        if exit_record is not None:
            exit_record.commit(record)
        else:
            state.write_json_atomic(self.state_dir / state.EXIT_FILE, record)
        trace.mark("shim.exit_recorded")
        command = self._due_exit_command()
        if command is None:  # the exit is handled: a waiter on the other end wakes now
            os.close(self.ready_fd)
        else:  # the pipe closes as this process leaves, after the command
            self._run_exit_command(command, exit_code)

    def _record_shim(self) -> None:
        """The first state.json and the log."""
        self._write_first_state()
        self.log = self._open_log()

    def _open_log(self) -> logs.LogSink:
        """The container's log as its driver keeps it (json-file rotation, or none)."""
        request = self.request
        path = self.state_dir / state.LOG_FILE
        return logs.open_log(path, driver=request.log_driver, opts=request.log_opts, raw=request.tty)

    def _write_first_state(self) -> None:
        """state.json with the shim's pid: from now on the container reads as running."""
        state.write_json_atomic(self.state_dir / state.STATE_FILE, self.record)
        self.recorded = True

    def _report(self, message: dict[str, Any]) -> None:
        """One line on the ready pipe. A failed start closes it; a started container's shim
        keeps it open until the exit is handled, so its starter may wait on it (EOF) rather
        than for this process to be gone (a process exit costs milliseconds more)."""
        try:
            os.write(self.ready_fd, json.dumps(message).encode() + b"\n")
        except OSError as exc:  # the starter gave up waiting; the record in state dir stays
            if exc.errno != errno.EPIPE:
                raise
        finally:
            if not message.get("ok"):
                os.close(self.ready_fd)

    def _discard_prepared(self) -> None:
        if self.prepared is not None:
            prepared, self.prepared = self.prepared, None
            prepared.discard()

    def _finish_failed(self, error: ContainerkitError, exit_code: int) -> None:
        self._discard_prepared()
        self.io.close()
        if self.next_state is not None:
            self.next_state.discard()
            self.next_state = None
        with contextlib.suppress(OSError):
            # failed before state.json or the log were made: leave the files any failure leaves
            if not self.recorded:
                self._write_first_state()
            if self.log is None:
                self.log = self._open_log()
            self.log.close()
        self._drop_running_marker()
        self._cleanup()
        state.write_json_atomic(
            self.state_dir / state.EXIT_FILE,
            {"exit_code": exit_code, "oom_killed": False, "finished_at": _now(), "error": error.message},
        )
        self._report(
            {
                "ok": False,
                "kind": error.kind,
                "message": error.message,
                "exit_code": exit_code,
                "shim_pid": self.shim_pid,
                "shim_start_time": self.shim_start_time,
            }
        )

    def _load_config(self) -> dict[str, Any]:
        """The bundle's config.json, parsed (its bytes are kept in ``config_bytes``)."""
        path = self.request.bundle / "config.json"
        try:
            self.config_bytes = path.read_bytes()
            config = json.loads(self.config_bytes)
        except FileNotFoundError:
            raise InvalidArgument(f"bundle {self.request.bundle} has no config.json{_DAMAGED}") from None
        except ValueError as exc:
            raise InvalidArgument(f"cannot parse {path}: {exc}{_DAMAGED}") from None
        if not isinstance(config, dict):
            raise InvalidArgument(f"{path}: expected a JSON object{_DAMAGED}")
        return config

    # -- the shim's part of a start ----------------------------------------------------

    def _while_child_sets_up(self, pid: int, ready_w: int) -> None:
        """The shim's part of a start, done while the child makes its namespaces and root.

        The cgroup first (the child waits for it before its cgroup namespace), then the first
        state.json, the log and the file of the next state.json, which is needed only once the
        command has exec'd (the report waits for that). A failure here kills the child: nothing
        of it may run.
        """
        if ready_w != -1:
            self._place_in_cgroup(pid, ready_w)
        try:
            self._write_first_state()
            self.log = self._open_log()
        except BaseException:
            kill_child(pid)
            raise
        with contextlib.suppress(OSError):  # else written the usual way once the command runs
            self.next_state = state.PendingWrite(self.state_dir / state.STATE_FILE)

    def _place_in_cgroup(self, pid: int, ready_w: int) -> None:
        """Create the container's cgroup, set its limits, move the forked init in, let it go on.

        Done here, after the fork, rather than before it or by the child itself: the mkdirs and
        the move (a v1 migration waits for an RCU grace period, milliseconds) then overlap the
        child's namespace and root setup. The child waits for the byte before it makes its
        cgroup namespace, so it never runs its command (or forks) outside the cgroup or before
        the limits are set. Only the init moves: the shim never joins the cgroup, so it never
        counts against a pids limit and is never frozen with the container.
        """
        spare = self.init.spare_cgroup if isinstance(self.init, BuiltinInit) else None
        try:
            try:
                self._setup_cgroup(spare)
            except BaseException:
                kill_child(pid)
                raise
            assert self.cgroup is not None
            try:
                self.cgroup.add_process(pid)
            except Exception as exc:
                kill_child(pid)
                error = (
                    exc if isinstance(exc, ContainerkitError) else RuntimeFailure(f"container init: {exc!r}")
                )
                raise StartFailed(error, 128) from None
            os.write(ready_w, b"1")
            trace.mark("shim.cgroup_ready")
        finally:
            os.close(ready_w)  # before any byte: EOF, the child gives up
            if spare is not None and not (self.cgroup is not None and self.cgroup.claimed_everywhere()):
                from containerkit.runtime import spare_cgroup

                spare_cgroup.remove(spare)  # what no rename took: empty (the init moved, or was killed)

    def _setup_cgroup(self, spare: str | None = None) -> None:
        """The container's cgroup with its limits and device rules; ``spare``, the cgroup the
        init was handed over in, is renamed to it where the kernel can (those directories hold
        the init already: see :mod:`.spare_cgroup`)."""
        from containerkit.linux.cgroups import open_cgroup
        from containerkit.linux.cgroups.devices import parse_rules

        trace.mark("shim.cgroup_begin")
        assert self.request.cgroup_name is not None
        self.cgroup = open_cgroup(self.request.cgroup_name)
        if spare is not None:
            self.cgroup.claim(spare)
        trace.mark("shim.cgroup_claimed")
        self.cgroup.create()
        if self.request.resources is not None:
            self.cgroup.apply(self.request.resources)
        self.cgroup.apply_devices(parse_rules(self.device_rules))
        trace.mark("shim.cgroup_limits")

    # -- running -----------------------------------------------------------------------

    def _run_io(self, init: InitProcess) -> int:
        """Pump the container's IO until its init exits (see :class:`IOPump`); its wait status."""
        assert self.log is not None
        pidfd = os.pidfd_open(init.pid)
        try:
            status = self.io.run(self.log, pidfd, init.reap)
        finally:
            os.close(pidfd)
        self.io.close()
        _reap_orphans()
        return status

    def _oom_killed(self) -> bool:
        if self.request.cgroup_name is None:
            return False
        try:
            if self.cgroup is None:
                from containerkit.linux.cgroups import open_cgroup

                self.cgroup = open_cgroup(self.request.cgroup_name)
            return self.cgroup.oom_kill_count() > 0
        except ContainerkitError:
            return False

    # -- cleanup -----------------------------------------------------------------------

    def _cleanup(self) -> None:
        """Undo everything the start did; each step runs even when an earlier one failed."""
        if self.init is not None:
            self._attempt("runtime delete", self.init.delete)
        if self.root.target is not None:
            self._attempt("rootfs unmount", self.root.unmount)
        if self.root.staged:
            self._attempt("user namespace staging release", self.root.release_staging)
        if self.request.cgroup_name is not None:
            self._attempt("cgroup destroy", self._destroy_cgroup)
        _reap_orphans()

    # -- beside the container: the health checker, and the exit command after it -------

    def _start_checker(self, pid: int, pid_start_time: int | None) -> tuple[int, int] | None:
        """Fork the health checker (only for a container with a health check); ``(pid, pidfd)``."""
        if self.request.health is None:
            return None
        _children_in_own_pid_namespace()
        child = os.fork()
        if child == 0:  # pragma: no cover - the checker
            os.closerange(3, os.sysconf("SC_OPEN_MAX"))
            health.run_checker(self.state_dir, pid, pid_start_time, self.request.health)
        return child, os.pidfd_open(child)

    def _due_exit_command(self) -> tuple[str, ...] | None:
        """The request's exit command, unless there is none or a live watcher holds the exit
        claim (it handles the exit itself)."""
        argv = self.request.exit_command
        if argv is None or state.exit_claimed(self.state_dir):
            return None
        return tuple(argv)

    def _run_exit_command(self, argv: tuple[str, ...], exit_code: int) -> None:
        """Run the exit command and wait for it (see :class:`ShimRequest`): who waits for this
        shim sees the exit handled (network down, container restarted or removed)."""
        _children_in_own_pid_namespace()
        env = {**os.environ, "CONTAINERKIT_EXIT_CODE": str(exit_code)}
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        try:  # its complaints go where the shim's go
            target = os.open(self.state_dir / SHIM_LOG, flags, 0o640)
        except OSError:
            target = subprocess.DEVNULL
        try:
            child = subprocess.Popen(
                list(argv), env=env, stdin=subprocess.DEVNULL, stdout=target, stderr=target, close_fds=True
            )
            try:
                child.wait(EXIT_COMMAND_TIMEOUT)
            except subprocess.TimeoutExpired:
                print(f"exit command {argv!r} still running after {EXIT_COMMAND_TIMEOUT} s", file=sys.stderr)
                child.kill()
                child.wait()
        except OSError as exc:
            print(f"exit command {argv!r} failed: {exc}", file=sys.stderr)
        finally:
            if target != subprocess.DEVNULL:
                os.close(target)
        _reap_orphans()

    def _drop_running_marker(self) -> None:
        """Once the process is gone, before its exit is recorded: a lister that sees no marker
        reads the Task (again, until the exit record is there)."""
        if self.request.running_marker is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.request.running_marker)

    def _destroy_cgroup(self) -> None:
        from containerkit.linux.cgroups import open_cgroup

        manager = self.cgroup or open_cgroup(self.request.cgroup_name or "")
        manager.destroy()

    def _attempt(self, what: str, step: Callable[[], object]) -> None:
        try:
            step()
        except Exception as exc:
            import traceback  # here: ~3 ms of import off every start

            traceback.print_exc()
            self.errors.append(f"{what}: {exc}")


def _device_rules(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The bundle's ``linux.resources.devices``: the list runc applies, applied the same way.

    A bundle without one gets the engine's default list rather than the host's (allow all).
    """
    rules = ((config.get("linux") or {}).get("resources") or {}).get("devices")
    if rules is None:
        return device_rules(privileged=False)
    if not isinstance(rules, list):
        raise InvalidArgument(f"linux.resources.devices must be a list, got {rules!r}")
    return rules


def _children_in_own_pid_namespace() -> None:
    """Fork into the shim's own pid namespace again, not the container's: the start unshared it
    for the init (a checker must not show in the container's ``ps``, and once the init is gone
    its namespace takes no new process: fork fails with ENOMEM)."""
    fd = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _libc.libc.setns(fd, _libc.CLONE_NEWPID)
    finally:
        os.close(fd)


def _stop_checker(checker: tuple[int, int] | None) -> None:
    """End the health checker (the container has exited) and collect it."""
    if checker is None:
        return
    pid, pidfd = checker
    try:
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    finally:
        os.close(pidfd)


def _reap_orphans() -> None:
    """Collect any other process re-parented to the shim (it is a subreaper)."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main(argv: list[str] | None = None) -> None:
    """``python -m containerkit.runtime.shim --ready-fd N REQUEST_JSON``: fork the shim, exit."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] != "--ready-fd":
        print("usage: python -m containerkit.runtime.shim --ready-fd N REQUEST_JSON", file=sys.stderr)
        sys.exit(2)
    ready_fd = int(args[1])
    request = ShimRequest.from_dict(json.loads(args[2]))
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if os.fork() == 0:
        run_shim(request, ready_fd)
    os._exit(0)


if __name__ == "__main__":
    main()

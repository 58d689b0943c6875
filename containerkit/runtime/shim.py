"""The per-container shim: a small detached process that owns one running container.

It is the parent (subreaper) of the container's init, holds its stdio, writes the json-file log,
forwards the ``stdin`` FIFO, serves the ``control`` FIFO (a tty's resize: only the shim holds
the pty master), and records the exit in the state dir (see :mod:`containerkit.runtime.state`).
Because it runs in its own session and is nobody's pipe, the process that started the container
may exit: the container keeps running and the state dir finds it again.

Lifecycle::

    start_container(request)          shim                          container init
      | fork (spawner) or             | setsid, subreaper
      | python -m ...shim   -------->  | state.json (shim pid)
      |                                | unshare(NEWPID), fork --------> run_container_init
      |                                | cgroup create+apply+move  ----> (waits, then cgroupns)
      |                                | read error pipe until EOF <---- exec (EOF) or JSON error
      | <---- ready pipe: one JSON ---  | state.json (+ init pid)
      |                                | pump stdout/stderr -> container.log, stdin FIFO -> stdin
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
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
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
from containerkit.linux.proc import default_signals
from containerkit.linux.userns import UsernsMapping, make_userns, write_id_maps
from containerkit.runtime import _sync, logs, state, usermap
from containerkit.runtime.bundle import ROOTFS_MOUNT_ANNOTATION, device_rules
from containerkit.runtime.iopump import IOPump, request_resize
from containerkit.runtime.launcher import DirectLauncher, Launcher
from containerkit.runtime.request import ShimRequest, StartedContainer

if TYPE_CHECKING:
    from containerkit.linux.cgroups import CgroupManager
    from containerkit.runtime.runc import RuncBackend

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
CONSOLE_SOCKET = "console.sock"
RUNC_LOG = "runtime.log"
PID_FILE = "init.pid"

# -- the starting side ----------------------------------------------------------------------


def start_container(
    request: ShimRequest, *, spawner: Launcher | None = None, timeout: float = 60.0
) -> StartedContainer:
    """Start a shim for ``request`` and return once the container's process has exec'd.

    ``spawner``: the :class:`~containerkit.runtime.launcher.Launcher` that starts the shim (the
    Engine's :class:`~containerkit.runtime.spawner.Spawner` forks it from its warm forkserver);
    without one, a :class:`~containerkit.runtime.launcher.DirectLauncher`. Raises
    :class:`CommandNotFound`, :class:`RuntimeFailure`, :class:`InvalidArgument`... with the
    message the container's setup reported; ``exit.json`` then records 127/126 like docker.
    """
    request.state_dir.mkdir(parents=True, exist_ok=True)
    launcher = spawner if spawner is not None else DirectLauncher(run_shim)
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        launcher.spawn_shim(request, ready_fd=write_fd)
        os.close(write_fd)
        write_fd = -1
        report = _read_report(read_fd, timeout, request)
    finally:
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
    raw = _sync.read_all(fd, timeout, what=f"shim of container {request.container_id}")
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


class _StartFailed(Exception):
    """A start that failed with a known exit code (127, 126, ...) and error."""

    def __init__(self, error: ContainerkitError, exit_code: int) -> None:
        super().__init__(error.message)
        self.error = error
        self.exit_code = exit_code


def run_shim(request: ShimRequest, ready_fd: int, prepared: PreparedInit | None = None) -> NoReturn:
    """Become the shim of ``request`` (in a freshly forked, single-threaded process); never returns.

    ``prepared``: a container init this process forked ahead of the request (:func:`prepare_init`).
    """
    code = 0
    try:
        os.setsid()
        ready_fd = proc.move_above_stdio(ready_fd)  # a caller with closed stdio may pass 0-2
        _redirect_stdio(request.state_dir)
        os.set_inheritable(ready_fd, False)
        _libc.libc.prctl(_libc.PR_SET_CHILD_SUBREAPER, 1)
        _Shim(request, ready_fd, prepared).run()
    except BaseException:  # the shim must never die silently: its creator waits on ready_fd
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


class PreparedInit:
    """A container init forked before its request, waiting on a socket for its config and fds.

    The fork of an interpreter this size, its copy-on-write warm-up and a new network namespace
    cost about two milliseconds; a spare shim (see the spawner) pays them while idle. The spare
    has unshared its pid namespace, so this process is PID 1 of a fresh one, as a forked init is.
    It gets the shim's priority before its work (a spare waits at a low one).
    """

    def __init__(self, pid: int, sock: socket.socket, pid_namespace: int) -> None:
        self.pid = pid
        self.sock = sock
        self._pid_namespace = pid_namespace  # ours before the unshare, for discard()

    def hand_over(self, message: dict[str, Any], fds: list[int]) -> None:
        """Send the init its work; it then runs like a freshly forked one. Raises OSError when
        it is gone (it is then reaped and the pid namespace restored)."""
        try:
            os.setpriority(os.PRIO_PROCESS, self.pid, os.getpriority(os.PRIO_PROCESS, 0))
            if os.getpriority(os.PRIO_PROCESS, self.pid) != os.getpriority(os.PRIO_PROCESS, 0):
                raise OSError(errno.EPERM, "cannot give the prepared init our priority")
            socket.send_fds(self.sock, [json.dumps(message).encode()], fds)
        except OSError:
            self.discard()
            raise
        self.sock.close()
        os.close(self._pid_namespace)
        self._pid_namespace = -1

    def discard(self) -> None:
        """Let the init go unused (EOF: it exits), reap it, and fork into our own pid namespace
        again (a dead namespace takes no new processes)."""
        self.sock.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        if self._pid_namespace != -1:
            try:
                _libc.libc.setns(self._pid_namespace, _libc.CLONE_NEWPID)
            finally:
                os.close(self._pid_namespace)
                self._pid_namespace = -1


def prepare_init(close: tuple[int, ...] = ()) -> PreparedInit:
    """Fork the init of the next container now (called by a spare shim before its request).

    ``close``: fds of the caller the init must not hold (the spare's request socket).
    """
    previous = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _libc.libc.unshare(_libc.CLONE_NEWPID)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except BaseException:
        os.close(previous)
        raise
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the prepared init
        ours.close()
        os.close(previous)
        for fd in close:
            os.close(fd)
        _await_init_work(theirs)
    theirs.close()
    return PreparedInit(pid, ours, previous)


def _await_init_work(sock: socket.socket) -> NoReturn:  # pragma: no cover - the prepared init
    """Make a network namespace, wait for the shim's message and fds, then run the init."""
    os.setsid()  # out of the spawner's process group: no terminal signal reaches us meanwhile
    from containerkit.runtime import builtin

    try:
        network: int | None = builtin.prepare_network()
    except (OSError, ContainerkitError):
        network = None
    try:
        data, fds, _flags, _addr = socket.recv_fds(sock, _MAX_INIT_MESSAGE, 8)
    except OSError:
        os._exit(0)
    sock.close()
    if not data:
        os._exit(0)
    message = json.loads(data)
    for fd in fds:
        os.set_inheritable(fd, False)  # received fds are inheritable; the exec must close ours
    stdio = tuple(fds[i] for i in message["stdio"])
    ready = fds[message["ready"]] if message["ready"] >= 0 else -1
    _run_init(
        builtin.run_container_init,
        Path(message["bundle"]),
        message["config"],
        (stdio[0], stdio[1], stdio[2]),
        fds[message["error"]],
        ready,
        network,
    )


_MAX_INIT_MESSAGE = 1 << 20


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
        self.runc: RuncBackend | None = None
        self.rootfs_target: str | None = None
        self.userns_staged = False  # /run/containerkit-userns/<id> to release at the end
        self.errors: list[str] = []
        self.io = IOPump(
            request.state_dir, tty=request.tty, stdin_open=request.stdin_open, stdin_once=request.stdin_once
        )
        self.pid = 0
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
                self._start_builtin(config)
            else:
                self._discard_prepared()
                self._record_shim()
                config = self._load_config()
                self.io.open_fifos()
                self._start_runc(config)
        except _StartFailed as failed:
            self._finish_failed(failed.error, failed.exit_code)
            return
        except ContainerkitError as exc:
            self._finish_failed(exc, 125)
            return
        except Exception as exc:
            traceback.print_exc()
            self._finish_failed(RuntimeFailure(f"shim of {self.request.container_id}: {exc!r}"), 125)
            return
        started_at = _now()
        pid_start_time = proc.start_time(self.pid) or 0
        self.record.update(pid=self.pid, pid_start_time=pid_start_time, started_at=started_at)
        if self.next_state is not None:
            self.next_state.commit(self.record)
            self.next_state = None
        else:
            state.write_json_atomic(self.state_dir / state.STATE_FILE, self.record)
        self._report({"ok": True, **self.record})
        exit_record: state.PendingWrite | None = None
        with contextlib.suppress(OSError):  # made while the container runs; written at the end anyway
            exit_record = state.PendingWrite(self.state_dir / state.EXIT_FILE)
        status = self._run_io()
        exit_code = _exit_code(status)
        assert self.log is not None
        self.log.close()
        oom = self._oom_killed()
        self._cleanup()
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
        try:
            os.write(self.ready_fd, json.dumps(message).encode())
        except OSError as exc:  # the starter gave up waiting; the record in state dir stays
            if exc.errno != errno.EPIPE:
                raise
        finally:
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
        path = self.request.bundle / "config.json"
        try:
            config = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise InvalidArgument(f"bundle {self.request.bundle} has no config.json") from None
        except ValueError as exc:
            raise InvalidArgument(f"cannot parse {path}: {exc}") from None
        if not isinstance(config, dict):
            raise InvalidArgument(f"{path}: expected a JSON object")
        return config

    # -- builtin runtime ---------------------------------------------------------------

    def _start_builtin(self, config: dict[str, Any]) -> None:
        from containerkit.runtime import builtin

        self.device_rules = _device_rules(config)
        stdio = self.io.make_pty() if self.request.tty else self.io.make_pipes()
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        with_cgroup = bool(self.request.cgroup_name)
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC) if with_cgroup else (-1, -1)
        mapping = usermap.mapping_of(config)
        pid: int | None = None
        if mapping is not None:  # a spare init is in the host's user namespace: of no use here
            self._discard_prepared()
            self._stage_userns(config)
            pid = self._fork_userns_init(config, stdio, (err_r, err_w), (ready_r, ready_w), mapping)
        else:
            pid = self._hand_over(config, stdio, err_w, ready_r)
        if pid is None:
            _libc.libc.unshare(_libc.CLONE_NEWPID)
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the container's init
                _container_child(
                    self, builtin.run_container_init, config, stdio, (err_r, err_w), (ready_r, ready_w)
                )
        self.pid = pid
        os.close(err_w)
        self.io.close_child_fds()
        if ready_r != -1:
            os.close(ready_r)
        try:
            self._while_child_sets_up(pid, ready_w)
            report = _sync.read_all(err_r)
        finally:
            os.close(err_r)
        if report:
            _pid, status = os.waitpid(pid, 0)
            raise _start_error(report, _exit_code(status))

    def _stage_userns(self, config: dict[str, Any]) -> None:
        """The paths the mapped root must reach, mounted below its staging dir (see usermap)."""
        self.userns_staged = True
        usermap.prepare_staging(self.request.container_id)
        usermap.mount_staged_binds(config)
        self._mount_rootfs(config)

    def _fork_userns_init(
        self,
        config: dict[str, Any],
        stdio: tuple[int, int, int],
        error_pipe: tuple[int, int],
        ready_pipe: tuple[int, int],
        mapping: UsernsMapping,
    ) -> int:
        """runc's nsexec order: a helper child joins the namespaces given by path, unshares the
        user namespace and waits while we write its id maps; then, root inside it, it unshares
        the pid namespace (so the container's namespaces belong to its user namespace) and forks
        the init, whose pid it sends us before it exits. The init is then our child (subreaper).
        """
        from containerkit.runtime import builtin

        sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
        helper = os.fork()
        if helper == 0:  # pragma: no cover - the helper child
            _userns_helper(
                self,
                builtin.run_container_init,
                config,
                stdio,
                error_pipe,
                ready_pipe,
                (sync_r, sync_w),
                (go_r, go_w),
            )
        os.close(sync_w)
        os.close(go_r)
        data = b""
        try:
            if os.read(sync_r, 1) == b"1":
                try:
                    write_id_maps(helper, mapping)
                except ContainerkitError:
                    _kill_child(helper)
                    raise
                os.write(go_w, b"1")
            os.close(go_w)
            go_w = -1
            data = _sync.read_all(sync_r)
        finally:
            if go_w != -1:
                os.close(go_w)
            os.close(sync_r)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(helper, 0)
        if not data.isdigit():
            os.close(error_pipe[1])
            self.io.close_child_fds()
            for fd in ready_pipe:
                if fd != -1:
                    os.close(fd)
            try:
                report = _sync.read_all(error_pipe[0])
            finally:
                os.close(error_pipe[0])
            raise _start_error(report or b'{"message": "user namespace setup failed"}', 128)
        return int(data)

    def _hand_over(
        self, config: dict[str, Any], stdio: tuple[int, int, int], err_w: int, ready_r: int
    ) -> int | None:
        """Give the prepared init its work: its pid, or None (fork one) without a live one."""
        prepared, self.prepared = self.prepared, None
        if prepared is None:
            return None
        fds = list(dict.fromkeys(stdio))  # a pty is one fd three times
        message = {
            "bundle": str(self.request.bundle),
            "config": config,
            "stdio": [fds.index(fd) for fd in stdio],
            "error": len(fds),
            "ready": len(fds) + 1 if ready_r != -1 else -1,
        }
        fds.append(err_w)
        if ready_r != -1:
            fds.append(ready_r)
        try:
            prepared.hand_over(message, fds)
        except OSError:
            return None
        return prepared.pid

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
            _kill_child(pid)
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
        try:
            try:
                self._setup_cgroup()
            except BaseException:
                _kill_child(pid)
                raise
            assert self.cgroup is not None
            try:
                self.cgroup.add_process(pid)
            except Exception as exc:
                _kill_child(pid)
                error = (
                    exc if isinstance(exc, ContainerkitError) else RuntimeFailure(f"container init: {exc!r}")
                )
                raise _StartFailed(error, 128) from None
            os.write(ready_w, b"1")
        finally:
            os.close(ready_w)  # before any byte: EOF, the child gives up

    def _setup_cgroup(self) -> None:
        from containerkit.linux.cgroups import open_cgroup
        from containerkit.linux.cgroups.devices import parse_rules

        assert self.request.cgroup_name is not None
        self.cgroup = open_cgroup(self.request.cgroup_name)
        self.cgroup.create()
        if self.request.resources is not None:
            self.cgroup.apply(self.request.resources)
        self.cgroup.apply_devices(parse_rules(self.device_rules))

    # -- runc / crun -------------------------------------------------------------------

    def _start_runc(self, config: dict[str, Any]) -> None:
        from containerkit.runtime.runc import RuncBackend

        request = self.request
        runc_root = request.runc_root or Path("/run/containerkit") / request.runtime
        self.runc = RuncBackend(request.runtime, root=runc_root, log_file=self.state_dir / RUNC_LOG)
        if request.cgroup_name:
            from containerkit.linux.cgroups import open_cgroup

            open_cgroup(request.cgroup_name).create_everywhere()
        if usermap.mapping_of(config) is not None:
            self._stage_userns(config)
        else:
            self._mount_rootfs(config)
        console: socket.socket | None = None
        # A unix socket path must fit in 108 bytes; state dirs can be deeper than that.
        console_path = Path(tempfile.mkdtemp(prefix="ck-console-")) / CONSOLE_SOCKET
        if request.tty:
            console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            console.bind(str(console_path))
            console.listen(1)
            stdio = self.io.make_null()
        else:
            stdio = self.io.make_pipes()
        pid_file = self.state_dir / PID_FILE
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
        try:
            try:
                self.runc.create(
                    request.container_id,
                    request.bundle,
                    pid_file=pid_file,
                    stdio=stdio,
                    console_socket=console_path if console else None,
                )
            finally:
                self.io.close_child_fds()
            if console is not None:
                self.io.adopt_terminal(_receive_console(console))
            self.pid = int(pid_file.read_text().strip())
            self.runc.start(request.container_id)
        except ContainerkitError as exc:
            from containerkit.runtime.runc import classify_error

            _cls, code = classify_error(exc.message)
            raise _StartFailed(exc, code) from None
        finally:
            if console is not None:
                console.close()
            shutil.rmtree(console_path.parent, ignore_errors=True)

    def _mount_rootfs(self, config: dict[str, Any]) -> None:
        spec = self.request.rootfs_mount
        if spec is None:
            raw = (config.get("annotations") or {}).get(ROOTFS_MOUNT_ANNOTATION)
            spec = json.loads(raw) if raw else None
        if not spec:
            return
        from containerkit.linux.mounts import parse_mount_options

        root = (config.get("root") or {}).get("path") or "rootfs"
        target = Path(root) if os.path.isabs(root) else self.request.bundle / root
        target.mkdir(parents=True, exist_ok=True)
        mapping = usermap.mapping_of(config)
        if mapping is not None and spec["type"] == "overlay" and spec.get("idmapLowers"):
            # The image layers, owned by host root, read as owned by the mapped root.
            from containerkit.linux.overlay import mount_idmapped_overlay

            userns_fd = make_userns(mapping)
            try:
                staging = usermap.STAGING_ROOT / f"l-{os.urandom(4).hex()}"
                mount_idmapped_overlay(list(spec.get("options") or ()), target, userns_fd, staging)
            finally:
                os.close(userns_fd)
            self.rootfs_target = str(target)
            return
        options = parse_mount_options(list(spec.get("options") or ()))
        # a user-namespaced root is nodev, whatever the device cgroup allows (see the idmapped case)
        flags = options.flags | (_libc.MS_NODEV if mapping is not None and spec["type"] == "overlay" else 0)
        _libc.libc.mount(
            spec.get("source") or spec["type"], str(target), spec["type"], flags, options.data or None
        )
        self.rootfs_target = str(target)

    # -- running -----------------------------------------------------------------------

    def _run_io(self) -> int:
        """Pump the container's IO until its init exits (see :class:`IOPump`); its wait status."""
        assert self.log is not None
        pidfd = os.pidfd_open(self.pid)
        try:
            status = self.io.run(self.log, pidfd, self._reap_init)
        finally:
            os.close(pidfd)
        self.io.close()
        _reap_orphans()
        return status

    def _reap_init(self) -> int | None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return 255 << 8  # not our child (should not happen): unknown status
        return status if pid else None

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
        runc, container_id = self.runc, self.request.container_id
        if runc is not None:
            self._attempt("runtime delete", lambda: runc.delete(container_id))
        if self.rootfs_target is not None:
            target = self.rootfs_target
            self._attempt("rootfs unmount", lambda: _unmount(target))
        if self.userns_staged:
            container_id = self.request.container_id
            self._attempt("user namespace staging release", lambda: usermap.release_staging(container_id))
        if self.request.cgroup_name is not None:
            self._attempt("cgroup destroy", self._destroy_cgroup)
        _reap_orphans()

    def _destroy_cgroup(self) -> None:
        from containerkit.linux.cgroups import open_cgroup

        manager = self.cgroup or open_cgroup(self.request.cgroup_name or "")
        manager.destroy()

    def _attempt(self, what: str, step: Callable[[], object]) -> None:
        try:
            step()
        except Exception as exc:
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


def _container_child(
    shim: _Shim,
    init: Any,
    config: dict[str, Any],
    stdio: tuple[int, int, int],
    error_pipe: tuple[int, int],
    ready_pipe: tuple[int, int],
) -> NoReturn:  # pragma: no cover - runs in the forked child
    """PID 1 of the new pid namespace: stdio, then the builtin runtime's init.

    The shim moves this process into its cgroup meanwhile; ``ready_pipe`` says when it has.
    """
    err_r, err_w = error_pipe
    ready_r, ready_w = ready_pipe
    try:
        os.close(err_r)
        if ready_w != -1:
            os.close(ready_w)
        for fd in shim.io.fds() | {shim.ready_fd}:
            with contextlib.suppress(OSError):
                os.close(fd)
    except BaseException:
        os._exit(128)
    _run_init(init, shim.request.bundle, config, stdio, err_w, ready_r, None)


def _userns_helper(
    shim: _Shim,
    init: Any,
    config: dict[str, Any],
    stdio: tuple[int, int, int],
    error_pipe: tuple[int, int],
    ready_pipe: tuple[int, int],
    sync_pipe: tuple[int, int],
    go_pipe: tuple[int, int],
) -> NoReturn:  # pragma: no cover - runs in the forked helper
    """The helper of :meth:`_Shim._fork_userns_init`; errors go to the error pipe."""
    from containerkit.linux import namespaces

    err_r, err_w = error_pipe
    sync_r, sync_w = sync_pipe
    go_r, go_w = go_pipe
    try:
        for fd in (err_r, sync_r, go_w, ready_pipe[1]):
            if fd != -1:
                os.close(fd)
        for fd in shim.io.fds() | {shim.ready_fd}:
            with contextlib.suppress(OSError):
                os.close(fd)
        # Namespaces given by path belong to the host's user namespace: joined while we are
        # still its root (the init skips what it is already in).
        for entry in (config.get("linux") or {}).get("namespaces", []):
            kind = str(entry.get("type", ""))
            if entry.get("path") and kind not in ("user", "pid", "cgroup"):
                namespaces.setns_path(str(entry["path"]), kind)
        _libc.libc.unshare(_libc.CLONE_NEWUSER)
        os.write(sync_w, b"1")
        if os.read(go_r, 1) != b"1":
            raise RuntimeFailure("the shim could not write the user namespace's id maps")
        os.close(go_r)
        os.setresgid(0, 0, 0)  # root of the namespace: files we make belong to the mapped root
        os.setresuid(0, 0, 0)
        os.setgroups([])
        _libc.libc.unshare(_libc.CLONE_NEWPID)
        pid = os.fork()
        if pid == 0:
            os.close(sync_w)
            _run_init(init, shim.request.bundle, config, stdio, err_w, ready_pipe[0], None)
        os.write(sync_w, str(pid).encode())
    except BaseException as exc:
        _sync.report(err_w, exc, context="user namespace setup")
        os._exit(_sync.exit_code_for(exc))
    os._exit(0)


def _run_init(
    init: Any,
    bundle: Path,
    config: dict[str, Any],
    stdio: tuple[int, int, int],
    err_w: int,
    ready_r: int,
    network: int | None,
) -> NoReturn:  # pragma: no cover - runs in the container's init
    """Stdio on 0/1/2, default signals, then the builtin runtime's init; errors go to ``err_w``."""
    try:
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        for fd in set(stdio):
            if fd > 2:
                os.close(fd)
        default_signals()
        init(
            bundle,
            config,
            error_fd=err_w,
            cgroup_ready=None if ready_r == -1 else ready_r,
            prepared_network=network,
        )
        raise RuntimeFailure("run_container_init returned")
    except BaseException as exc:
        _sync.report(err_w, exc, context="container init")
        os._exit(_sync.exit_code_for(exc))


def _kill_child(pid: int) -> None:
    """SIGKILL and reap a child that must not go on (its setup failed on our side)."""
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _start_error(report: bytes, status_code: int) -> _StartFailed:
    """The start failure a child reported, with the exit code its report or status stands for."""
    error = _sync.decode(report, default=f"container init failed with exit code {status_code}")
    if error is None:
        error = RuntimeFailure(f"container init failed with exit code {status_code}")
    return _StartFailed(error, _sync.exit_code_for(error, otherwise=status_code))


def _receive_console(listener: socket.socket) -> int:
    """The pty master runc sends over ``--console-socket`` once the container is created."""
    listener.settimeout(10)
    conn, _addr = listener.accept()
    with conn:
        _msg, fds, _flags, _addr2 = socket.recv_fds(conn, 4096, 1)
    if not fds:
        raise RuntimeFailure("runtime sent no terminal over the console socket")
    os.set_inheritable(fds[0], False)
    return fds[0]


def _unmount(target: str) -> None:
    try:
        _libc.libc.umount2(target, 0)
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # not mounted (any more)
            return
        if exc.errno != errno.EBUSY:
            raise
        _libc.libc.umount2(target, _libc.MNT_DETACH)


def _reap_orphans() -> None:
    """Collect any other process re-parented to the shim (it is a subreaper)."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


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

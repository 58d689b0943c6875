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
import fcntl
import io
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TextIO

import attrs

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
from containerkit.spec import Resources

if TYPE_CHECKING:
    from containerkit.linux.cgroups import CgroupManager
    from containerkit.runtime.runc import RuncBackend
    from containerkit.runtime.spawner import Spawner

_ENTRY = "from containerkit.runtime.{} import main; main()"
"""Not ``python -m``: the package may import this module first, and runpy would run it twice."""

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

DRAIN_SECONDS = 2.0
"""After the init exits, how long output from processes it left behind is still collected."""

RuntimeName = Literal["builtin", "runc", "crun"]


def _path(value: str | Path) -> Path:
    return Path(value)


def _optional_path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)


def _resources(value: Resources | dict[str, Any] | None) -> Resources | None:
    if value is None or isinstance(value, Resources):
        return value
    return Resources(**value)


@attrs.frozen(kw_only=True)
class ShimRequest:
    """Everything a shim needs to run one container; crosses process boundaries as JSON.

    ``rootfs_mount`` ({"type", "source", "options"}) is mounted by the shim at the bundle's
    ``root.path`` for runc/crun (when None, the bundle's ``org.containerkit.rootfs-mount``
    annotation is used); the builtin runtime mounts it inside the container itself.
    ``stdin_once`` closes the container's stdin after the first writer of the FIFO leaves.
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
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShimRequest:
        return cls(**data)


@attrs.frozen(kw_only=True)
class StartedContainer:
    """A container whose process has exec'd: host pids plus start times (for pid-reuse checks)."""

    pid: int
    pid_start_time: int
    shim_pid: int
    shim_start_time: int
    started_at: str
    state_dir: Path


# -- the starting side ----------------------------------------------------------------------


def start_container(
    request: ShimRequest, *, spawner: Spawner | None = None, timeout: float = 60.0
) -> StartedContainer:
    """Start a shim for ``request`` and return once the container's process has exec'd.

    With a :class:`~containerkit.runtime.spawner.Spawner` the shim is forked from the warm
    forkserver; without one a fresh ``python -m containerkit.runtime.shim`` is started. Raises
    :class:`CommandNotFound`, :class:`RuntimeFailure`, :class:`InvalidArgument`... with the
    message the container's setup reported; ``exit.json`` then records 127/126 like docker.
    """
    request.state_dir.mkdir(parents=True, exist_ok=True)
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        if spawner is not None:
            spawner.spawn_shim(request, ready_fd=write_fd)
        else:
            _launch(request, write_fd)
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


def _launch(request: ShimRequest, ready_fd: int) -> None:
    """Start a shim without a fork server: forked straight from this process when it is
    single-threaded (a CLI command: no new interpreter, ~100 ms saved), else a fresh one."""
    if threading.active_count() == 1:
        _launch_forked(request, ready_fd)
    else:
        _launch_fresh(request, ready_fd)


def _launch_forked(request: ShimRequest, ready_fd: int) -> None:
    """Double fork, so the shim is nobody's child here; it keeps only the ready pipe of our fds
    (a held database or lock file would outlive this process in it)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the intermediate and the shim
        try:
            os.closerange(3, ready_fd)
            os.closerange(ready_fd + 1, os.sysconf("SC_OPEN_MAX"))
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            if os.fork() == 0:
                run_shim(request, ready_fd)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise RuntimeFailure(f"shim launcher for {request.container_id} failed (status {status:#x})")


def _launch_fresh(request: ShimRequest, ready_fd: int) -> None:
    """``python -m containerkit.runtime.shim``: it forks the shim and exits at once."""
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _ENTRY.format("shim"),
            "--ready-fd",
            str(ready_fd),
            json.dumps(request.to_dict()),
        ],
        pass_fds=(ready_fd,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        close_fds=True,
    )
    _out, err = launcher.communicate()
    if launcher.returncode != 0:
        raise RuntimeFailure(
            f"shim launcher for {request.container_id} exited with {launcher.returncode}: "
            f"{err.decode(errors='replace').strip()[-2000:]}"
        )


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


_MAX_CONTROL_LINE = 256


def request_resize(state_dir: Path, rows: int, cols: int) -> bool:
    """Ask the shim of a tty container to set its terminal to ``rows`` x ``cols``.

    Any process may ask (the pty master lives in the shim). False when no shim is listening
    (the container is not running, or has no tty). The line is shorter than ``PIPE_BUF``, so
    requests of concurrent callers never mix; the shim applies it within its next poll.
    """
    try:
        fd = os.open(state_dir / state.CONTROL_FIFO, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENXIO):  # no FIFO, or no shim reading it
            return False
        raise
    try:
        os.write(fd, f"resize {rows} {cols}\n".encode())
    except OSError as exc:
        if exc.errno in (errno.EPIPE, errno.EAGAIN):  # the shim left, or stopped reading
            return False
        raise
    finally:
        os.close(fd)
    return True


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
        # container side of stdio, and the shim's side
        self.child_fds: list[int] = []
        self.out_fd = -1
        self.err_fd = -1
        self.in_fd = -1
        self.fifo_fd = -1
        self.control_fd = -1
        self.control_pending = b""
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
                self._open_stdin_fifo()
                self._open_control_fifo()
                self._start_builtin(config)
            else:
                self._discard_prepared()
                self._record_shim()
                config = self._load_config()
                self._open_stdin_fifo()
                self._open_control_fifo()
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
        status = self._pump()
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
        self._close_shim_fds()
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

    # -- stdio -------------------------------------------------------------------------

    def _open_stdin_fifo(self) -> None:
        if not self.request.stdin_open:
            return
        path = self.state_dir / state.STDIN_FIFO
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.mkfifo(path, 0o600)
        # O_RDWR: opening never blocks and, without stdin_once, the last writer leaving is no EOF.
        flags = os.O_RDONLY if self.request.stdin_once else os.O_RDWR
        self.fifo_fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC)

    def _open_control_fifo(self) -> None:
        """Only a tty container has something to control: its window size."""
        if not self.request.tty:
            return
        path = self.state_dir / state.CONTROL_FIFO
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.mkfifo(path, 0o600)
        # O_RDWR: opening never blocks, and a writer that leaves is no EOF.
        self.control_fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)

    def _read_control(self) -> None:
        data = _read_some(self.control_fd)
        if not data:
            return
        lines = (self.control_pending + data).split(b"\n")
        self.control_pending = lines.pop()
        if len(self.control_pending) > _MAX_CONTROL_LINE:
            self.control_pending = b""  # not a request of ours: skip to the next line
        for line in lines:
            self._control(line)

    def _control(self, line: bytes) -> None:
        words = line.split()
        if len(words) == 3 and words[0] == b"resize" and words[1].isdigit() and words[2].isdigit():
            rows, cols = int(words[1]), int(words[2])
            if rows <= 0xFFFF and cols <= 0xFFFF and self.out_fd != -1:
                with contextlib.suppress(OSError):  # the terminal is gone: the container is exiting
                    fcntl.ioctl(self.out_fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
                return
        print(f"control: ignored request {line[:80]!r}", file=sys.stderr)

    def _close_control(self) -> None:
        if self.control_fd != -1:
            os.close(self.control_fd)
            self.control_fd = -1

    def _make_pipes(self) -> tuple[int, int, int]:
        """The container's stdin, stdout, stderr; the shim keeps the other ends."""
        if self.request.stdin_open:
            stdin_r, self.in_fd = os.pipe2(os.O_CLOEXEC)
            os.set_blocking(self.in_fd, False)
        else:
            stdin_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self.out_fd, stdout_w = os.pipe2(os.O_CLOEXEC)
        self.err_fd, stderr_w = os.pipe2(os.O_CLOEXEC)
        self.child_fds = [stdin_r, stdout_w, stderr_w]
        return stdin_r, stdout_w, stderr_w

    def _make_pty(self) -> tuple[int, int, int]:
        master, slave = os.openpty()
        os.set_inheritable(master, False)
        os.set_inheritable(slave, False)
        self.out_fd = master
        if self.request.stdin_open:
            self.in_fd = master
        self.child_fds = [slave]
        return slave, slave, slave

    def _close_child_fds(self) -> None:
        for fd in self.child_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.child_fds = []

    def _close_shim_fds(self) -> None:
        self._close_child_fds()
        for fd in {self.out_fd, self.err_fd, self.in_fd, self.fifo_fd, self.control_fd} - {-1}:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.out_fd = self.err_fd = self.in_fd = self.fifo_fd = self.control_fd = -1

    # -- builtin runtime ---------------------------------------------------------------

    def _start_builtin(self, config: dict[str, Any]) -> None:
        from containerkit.runtime import builtin

        self.device_rules = _device_rules(config)
        stdio = self._make_pty() if self.request.tty else self._make_pipes()
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
        self._close_child_fds()
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
            self._close_child_fds()
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
            stdio = (os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC),) * 3
            self.child_fds = [stdio[0]]
        else:
            stdio = self._make_pipes()
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
                self._close_child_fds()
            if console is not None:
                self.out_fd = _receive_console(console)
                if request.stdin_open:
                    self.in_fd = self.out_fd
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

    def _pump(self) -> int:
        """Move output to the log and stdin to the container until the init exits; its status.

        After the exit, output still buffered in the pipes (or written by processes the init
        left behind) is collected until EOF or for at most :data:`DRAIN_SECONDS`.
        """
        log = self.log
        assert log is not None
        pidfd = os.pidfd_open(self.pid)
        readers: dict[int, logs.Stream] = {self.out_fd: "stdout"}
        if self.err_fd != -1:
            readers[self.err_fd] = "stderr"
        pending = b""
        status: int | None = None
        deadline = 0.0
        try:
            while True:
                if status is not None and (not readers or time.monotonic() >= deadline):
                    break
                wanted = dict.fromkeys(readers, select.POLLIN)
                if status is None:
                    wanted[pidfd] = select.POLLIN
                if self.fifo_fd != -1 and len(pending) < (1 << 20):
                    wanted[self.fifo_fd] = select.POLLIN
                if self.control_fd != -1:
                    wanted[self.control_fd] = select.POLLIN
                if pending and self.in_fd != -1:
                    wanted[self.in_fd] = wanted.get(self.in_fd, 0) | select.POLLOUT
                poller = select.poll()
                for fd, mask in wanted.items():
                    poller.register(fd, mask)
                timeout = None if status is None else max(1, int((deadline - time.monotonic()) * 1000))
                for fd, events in poller.poll(timeout):
                    # With a tty the pty master is both output and stdin: only read it when
                    # poll says it is readable, not when it was polled for writing only.
                    if fd in readers and events & (select.POLLIN | select.POLLHUP | select.POLLERR):
                        data = _read_some(fd)
                        if data:
                            log.write(readers[fd], data)
                        elif data is not None:
                            del readers[fd]
                    if fd == pidfd:
                        status = self._reap_init()
                        if status is not None:
                            deadline = time.monotonic() + DRAIN_SECONDS
                            pending = b""
                            self._close_fifo()
                            self._close_stdin()
                            self._close_control()
                    if fd == self.fifo_fd and fd != -1:
                        data = _read_some(fd)
                        if data:
                            pending += data
                        elif data is not None:  # every writer left a stdin_once FIFO
                            self._close_fifo()
                            if not pending:
                                self._close_stdin()
                    if fd == self.control_fd and fd != -1:
                        self._read_control()
                    if fd == self.in_fd and fd != -1 and events & ~select.POLLIN and pending:
                        pending = self._write_stdin(pending)
                        if not pending and self.fifo_fd == -1:
                            self._close_stdin()
        finally:
            os.close(pidfd)
        if status is None:
            status = self._wait_init()
        self._close_shim_fds()
        _reap_orphans()
        return status

    def _write_stdin(self, pending: bytes) -> bytes:
        try:
            written = os.write(self.in_fd, pending)
        except BlockingIOError:
            return pending
        except OSError as exc:
            if exc.errno in (errno.EPIPE, errno.EIO):
                return b""  # the container closed its stdin: drop what it will never read
            raise
        return pending[written:]

    def _close_fifo(self) -> None:
        if self.fifo_fd != -1:
            os.close(self.fifo_fd)
            self.fifo_fd = -1

    def _close_stdin(self) -> None:
        if self.in_fd == -1 or self.in_fd == self.out_fd:
            return  # a pty has no separate stdin to close
        os.close(self.in_fd)
        self.in_fd = -1

    def _reap_init(self) -> int | None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return 255 << 8  # not our child (should not happen): unknown status
        return status if pid else None

    def _wait_init(self) -> int:
        try:
            return os.waitpid(self.pid, 0)[1]
        except ChildProcessError:
            return 255 << 8

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
        for fd in {shim.out_fd, shim.err_fd, shim.in_fd, shim.fifo_fd, shim.control_fd, shim.ready_fd} - {-1}:
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
        for fd in {shim.out_fd, shim.err_fd, shim.in_fd, shim.fifo_fd, shim.control_fd, shim.ready_fd} - {-1}:
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


def _read_some(fd: int) -> bytes | None:
    """Up to 64 KiB; b"" at EOF (or a pty whose slaves all closed), None when nothing is there."""
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return None
    except OSError as exc:
        if exc.errno == errno.EIO:
            return b""
        raise


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

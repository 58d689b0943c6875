"""The spawner: a single-threaded forkserver that forks shims and exec helpers on request.

The Engine may be multi-threaded, and a threaded process must not fork to do namespace work
(decision 3). So the Engine starts ``python -m containerkit.runtime.spawner`` once, lazily, and
asks it over a ``SOCK_SEQPACKET`` socketpair: one JSON message per request, fds riding along
with ``SCM_RIGHTS``. Everything a shim needs is imported when the spawner starts, so a fork
costs a millisecond, not an interpreter start.

Requests (``op``) and what they carry:

``shim``  {"request": ShimRequest}; fds: [ready pipe write end]  -> {"pid": shim pid}
``exec``  {"target_pid", "process"}; fds: [stdin, stdout, stderr, error pipe, status pipe]
          -> {"pid": helper pid}; when the helper exits the spawner writes
          {"exit_code": n} to the status pipe and closes it.
``ping``  -> {"pid": spawner pid}

Between requests the spawner keeps one *spare*: a shim forked ahead of its request (at a low
priority while it waits), which has forked the next container's init ahead too (see
:class:`~containerkit.runtime.init.PreparedInit`); a ``shim`` request hands the spare its
message and ready pipe instead of forking. The spawner exits when the Engine closes its end
(EOF), so it never outlives the Engine's process; the spare and its init leave with it. When
started from the main thread it also sets ``PR_SET_PDEATHSIG``; from another thread it does
not, because the kernel ties that signal to the *thread* that forked it.
Shims are forked into their own session and do not die with the spawner.

``Spawner(fork=True)`` in a single-threaded process forks the forkserver from that process
instead of starting an interpreter: everything is imported already, so it answers within
milliseconds, where a fresh interpreter and its imports take 100-300 ms of CPU that the
Engine's first containers would wait for or compete with on a small machine. That fork shares
all of the caller's pages, which makes each of its forks dearer in a heavy process, so a fresh
interpreter's forkserver is started once the forked one has served and takes over when it answers.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any, NoReturn

from containerkit._forkready import single_threaded
from containerkit.errors import ContainerkitError, RuntimeFailure, Unavailable, error_class_for
from containerkit.linux.cgroups.prime import MigrationPrimer
from containerkit.linux.proc import default_signals, install_stdio
from containerkit.runtime import _sync, trace

if TYPE_CHECKING:
    from containerkit.runtime.init import PreparedInit
    from containerkit.runtime.request import ShimRequest

_ENTRY = "from containerkit.runtime.{} import main; main()"
"""Not ``python -m``: the package may import this module first, and runpy would run it twice."""

__all__ = ["Spawner", "main", "serve"]

_MAX_MESSAGE = 1 << 20
_SPARE_NICE = 19
_CAN_RENICE = os.geteuid() == 0
"""Only root may raise a priority again, so only root lowers a spare's while it waits."""


class Spawner:
    """The Engine's handle on the forkserver; thread-safe, started on first use. It is the
    :class:`~containerkit.runtime.launcher.Launcher` of the Engine's shims.

    >>> with Spawner() as spawner:          # doctest: +SKIP
    ...     started = start_container(request, spawner=spawner)
    """

    def __init__(
        self,
        *,
        python: str | None = None,
        direct_until_ready: bool = False,
        fork: bool = False,
        primer: MigrationPrimer | None = None,
    ) -> None:
        """``direct_until_ready``: while the forkserver is still starting (its interpreter and
        imports: the first container of an Engine would wait for them), a single-threaded
        caller forks the shim itself (:class:`~containerkit.runtime.launcher.DirectLauncher`).
        ``fork``: when this process is single-threaded as the forkserver starts, it is a fork
        of this process (ready in milliseconds) rather than a fresh ``python`` interpreter.
        ``primer``: the caller's (an Engine primes at each create too); else one of its own,
        closed with it."""
        self._python = python or sys.executable
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | _Forked | None = None
        self._fork = fork
        self._ready = False  # the forkserver answered its first ping
        self._direct_until_ready = direct_until_ready
        # a fresh interpreter's forkserver that takes over from a forked one (see _succeed_locked)
        self._successor: tuple[socket.socket, subprocess.Popen[bytes]] | None = None
        self._retired: list[_Forked | subprocess.Popen[bytes]] = []
        self._own_primer = primer is None
        self._primer = primer or MigrationPrimer()

    def __enter__(self) -> Spawner:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The forkserver's pid, or None before it was started."""
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Start the forkserver now rather than on the first request."""
        with self._lock:
            self._ensure_started()

    def prestart(self) -> bool:
        """Fork the forkserver now, without waiting for it, when it can be forked (``fork`` and
        a single-threaded process): it readies its spare shim while the caller goes on. A fresh
        interpreter is not started ahead (its CPU would compete with the caller's work); it
        waits for first use. Whether the forkserver is started."""
        with self._lock:
            if self._sock is None and not (self._fork and single_threaded()):
                return False
            self._begin_locked()
            return True

    def _ensure_started(self) -> socket.socket:
        sock = self._begin_locked()
        self._await_ready_locked(block=True)
        return sock

    def _begin_locked(self) -> socket.socket:
        """Start the forkserver and send it a ping, without waiting for the answer."""
        if self._sock is not None:
            self._succeed_locked()
            assert self._sock is not None
            return self._sock
        if self._fork and single_threaded():
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                process: _Forked | subprocess.Popen[bytes] = _fork_server(theirs.fileno(), _parent())
            finally:
                theirs.close()
        else:
            ours, process = self._start_fresh()
        self._sock, self._process = ours, process
        self._ready = False
        # the first cgroup migration after a quiet spell waits a grace period (see
        # linux.cgroups.prime): let that be while the forkserver readies its spare, not in the
        # first container's start
        self._primer.prime()
        try:
            ours.send(json.dumps({"op": "ping"}).encode())
        except OSError as exc:
            self._shutdown_locked()
            raise Unavailable(f"spawner process is gone: {exc}") from None
        return ours

    def _start_fresh(self) -> tuple[socket.socket, subprocess.Popen[bytes]]:
        """A forkserver in a fresh interpreter (it imports what shims need, then serves)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [self._python, "-c", _ENTRY.format("spawner"), str(theirs.fileno())]
        parent = _parent()
        if parent is not None:
            argv += ["--pdeathsig", str(parent)]
        try:
            process = subprocess.Popen(
                argv, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, close_fds=True
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return ours, process

    def _succeed_locked(self) -> None:
        """Hand over from a forked forkserver to a fresh interpreter's once that one answers.

        A fork of the Engine's process shares all of that process's pages: each shim it forks
        copies their page tables and faults on them, so a heavier caller starts containers
        slower (a process that imported docker-py and testcontainers: 38 against 29 ms per
        start-to-exit). The forked one serves the first container at once; meanwhile a lean
        one starts (pinged, so it is ready when it answers) and takes over; the forked one
        exits at EOF, its spare with it."""
        if not isinstance(self._process, _Forked):
            return
        if self._successor is None:
            if self._ready:  # it served: start the lean one beside it
                self._successor = self._start_fresh()
                self._successor[0].send(json.dumps({"op": "ping"}).encode())
            return
        sock, process = self._successor
        if not select.select([sock], [], [], 0)[0]:
            return
        self._successor = None
        try:
            data, _fds, _flags, _addr = socket.recv_fds(sock, _MAX_MESSAGE, 0)
            answered = bool(data) and bool(json.loads(data).get("ok"))
        except (OSError, ValueError):
            answered = False
        if not answered:  # it failed to start: the forked one goes on serving
            sock.close()
            self._retired.append(process)
            return
        assert self._sock is not None and self._process is not None
        self._sock.close()
        self._retired.append(self._process)
        self._sock, self._process, self._ready = sock, process, True

    def _await_ready_locked(self, *, block: bool) -> bool:
        """Whether the forkserver has answered the ping :meth:`_begin_locked` sent; ``block``:
        wait for the answer (raising when it never comes)."""
        if self._ready:
            return True
        assert self._sock is not None
        if not block and not select.select([self._sock], [], [], 0)[0]:
            return False
        try:
            self._receive_locked({"op": "ping"})
        except BaseException:
            self._shutdown_locked()
            raise
        self._ready = True
        return True

    def _call_locked(self, message: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        sock = self._sock
        assert sock is not None
        try:
            socket.send_fds(sock, [json.dumps(message).encode()], fds)
        except OSError as exc:
            self._shutdown_locked()
            raise Unavailable(f"spawner process is gone: {exc}") from None
        return self._receive_locked(message)

    def _receive_locked(self, message: dict[str, Any]) -> dict[str, Any]:
        sock = self._sock
        assert sock is not None
        try:
            data, _fds, _flags, _addr = socket.recv_fds(sock, _MAX_MESSAGE, 0)
        except OSError as exc:
            self._shutdown_locked()
            raise Unavailable(f"spawner process is gone: {exc}") from None
        if not data:
            code = self._shutdown_locked()
            raise Unavailable(f"spawner process exited (status {code})")
        reply: dict[str, Any] = json.loads(data)
        if not reply.get("ok"):
            cls = error_class_for(500, str(reply.get("kind") or RuntimeFailure.kind))
            raise cls(str(reply.get("message") or f"spawner could not {message.get('op')}"))
        return reply

    def call(self, message: dict[str, Any], fds: list[int] | None = None) -> dict[str, Any]:
        """One request/reply; the fds are duplicated into the spawner (close yours after)."""
        with self._lock:
            self._ensure_started()
            return self._call_locked(message, fds or [])

    def spawn_shim(self, request: ShimRequest, *, ready_fd: int) -> int | None:
        """Fork a shim for ``request``; it reports on ``ready_fd``. Returns the shim's pid
        (None when this process forked it, see ``direct_until_ready``)."""
        trace.mark("engine.shim_request")
        with self._lock:
            self._begin_locked()
            direct = (
                self._direct_until_ready
                and not isinstance(self._process, _Forked)  # ready within milliseconds
                and not self._await_ready_locked(block=False)
                and single_threaded()
            )
            if not direct:
                self._await_ready_locked(block=True)
                self._primer.prime()  # the shim's move of the init then waits less
                return int(self._call_locked({"op": "shim", "request": request.to_dict()}, [ready_fd])["pid"])
        from containerkit.runtime.launcher import DirectLauncher
        from containerkit.runtime.shim import run_shim

        DirectLauncher(run_shim).spawn_shim(request, ready_fd=ready_fd)
        return None

    def spawn_exec(
        self,
        target_pid: int,
        process: dict[str, Any],
        *,
        stdio: tuple[int, int, int],
        error_fd: int,
        status_fd: int,
    ) -> int:
        """Fork a helper that runs ``process`` inside ``target_pid``'s namespaces; its pid."""
        message = {"op": "exec", "target_pid": target_pid, "process": process}
        return int(self.call(message, [*stdio, error_fd, status_fd])["pid"])

    def close(self) -> None:
        """Stop the forkserver (shims and exec helpers it forked keep running)."""
        with self._lock:
            self._shutdown_locked()
        if self._own_primer:
            self._primer.close()

    def _shutdown_locked(self) -> int | None:
        self._ready = False
        if self._successor is not None:
            self._successor[0].close()
            self._retired.append(self._successor[1])
            self._successor = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        while self._retired:
            _end(self._retired.pop())
        code = None
        if self._process is not None:
            code = _end(self._process)
            self._process = None
        return code


def _parent() -> int | None:
    """The pid a forkserver's PR_SET_PDEATHSIG ties it to: only from the main thread (the
    kernel ties that signal to the thread that forked it)."""
    return os.getpid() if threading.current_thread() is threading.main_thread() else None


def _end(process: _Forked | subprocess.Popen[bytes]) -> int:
    """Wait for a forkserver whose socket was closed (it exits at EOF); killed after 10 s."""
    try:
        return process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


class _Forked:
    """A forkserver forked from this process: the part of ``Popen`` the Spawner uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            try:
                if timeout is not None:
                    pidfd = os.pidfd_open(self.pid)
                    try:
                        if not select.select([pidfd], [], [], timeout)[0]:
                            raise subprocess.TimeoutExpired(f"forkserver {self.pid}", timeout)
                    finally:
                        os.close(pidfd)
                _pid, status = os.waitpid(self.pid, 0)
            except (ChildProcessError, ProcessLookupError):  # reaped already (SIGCHLD ignored)
                status = 0  # as Popen has it
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


def _fork_server(sock_fd: int, parent: int | None) -> _Forked:
    """Fork this (single-threaded) process into a forkserver answering on ``sock_fd``."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the forked forkserver
        code = 0
        try:
            _serve_forked(sock_fd, parent)
        except BaseException:  # on stderr, as a started one's would be; the Engine sees EOF
            code = 1
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    return _Forked(pid)


def _serve_forked(sock_fd: int, parent: int | None) -> None:  # pragma: no cover - forked
    """What ``main`` does in a fresh interpreter, in a copy of the Engine's process: keep only
    stdio and the socket, drop the Engine's signal handlers, serve."""
    # The Engine's objects stay uncollected here: their finalizers would act on fds closed
    # below, and the collector's walk would copy every page this process shares with it.
    gc.freeze()
    if parent is not None:
        from containerkit.linux import _libc

        _libc.libc.prctl(_libc.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the Engine's process died before the prctl
            return
    signal.set_wakeup_fd(-1)
    for signum in signal.valid_signals():
        with contextlib.suppress(OSError, ValueError):
            if callable(signal.getsignal(signum)):  # a handler of the Engine's program
                signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the Engine, which closes us
    from containerkit.linux.proc import ensure_stdio, move_above_stdio

    sock_fd = move_above_stdio(sock_fd)
    os.closerange(3, sock_fd)
    os.closerange(sock_fd + 1, os.sysconf("SC_OPEN_MAX"))
    ensure_stdio()
    null = os.open(os.devnull, os.O_RDONLY)  # stdin as a started one has it
    os.dup2(null, 0)
    os.close(null)
    sock = socket.socket(fileno=sock_fd)
    os.set_inheritable(sock.fileno(), False)
    _preload()
    gc.freeze()  # and what the preload added
    serve(sock)


# -- the server -----------------------------------------------------------------------------


def _preload() -> None:
    """Import what forked children need, once, so no fork pays for an import."""
    import containerkit.linux.cgroups
    import containerkit.linux.mounts
    import containerkit.runtime.runc
    import containerkit.runtime.shim

    with contextlib.suppress(ImportError):
        import containerkit.runtime.builtin  # noqa: F401


class _Server:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.wake_r, self.wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.execs: dict[int, int] = {}  # helper pid -> status fd
        self.spare: tuple[int, socket.socket] | None = None  # a forked child waiting to become a shim

    def serve(self) -> None:
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        try:
            while True:
                if self.spare is None:
                    self._fork_spare()
                for fd, _events in poller.poll():
                    if fd == self.wake_r:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self.wake_r, 4096)
                        self._reap()
                    elif not self._handle():
                        return
                self._reap()
        finally:
            signal.set_wakeup_fd(-1)
            self._drop_spare()
            for fd in self.execs.values():
                os.close(fd)

    def _fork_spare(self) -> None:
        """Fork the next shim ahead of its request, between requests.

        The fork and the copy-on-write faults right after it (a few milliseconds for an
        interpreter this size) are then off the start path: a request only hands the spare its
        message and ready pipe. The spare leaves when the spawner does (EOF on its socket).
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # The fork itself (a millisecond of page-table copying) comes right after a request was
        # handed on, beside that start's shim and init: made at the spare's low priority too.
        own = os.getpriority(os.PRIO_PROCESS, 0) if _CAN_RENICE else None
        if own is not None:
            os.setpriority(os.PRIO_PROCESS, 0, _SPARE_NICE)
        pid = -1
        try:
            pid = os.fork()
        finally:
            if own is not None and pid != 0:
                os.setpriority(os.PRIO_PROCESS, 0, own)
        if pid == 0:  # pragma: no cover - the spare (at the low priority already)
            ours.close()
            self._in_child(keep=[])
            _await_shim_request(theirs, _prepare_init(theirs))
        theirs.close()
        self.spare = (pid, ours)

    def _drop_spare(self) -> None:
        """Let the spare go (it exits on EOF) and reap it, so none outlives the spawner."""
        if self.spare is None:
            return
        pid, sock = self.spare
        self.spare = None
        if _CAN_RENICE:  # its exit (and its init's) then waits for no idle CPU time
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, pid, os.getpriority(os.PRIO_PROCESS, 0))
        sock.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)

    def _hand_to_spare(self, request: dict[str, Any], ready_fd: int) -> int | None:
        """Give the request to the spare; its pid, or None when there is no (live) spare."""
        if self.spare is None:
            return None
        pid, sock = self.spare
        self.spare = None
        try:
            if _CAN_RENICE:  # a shim runs at the priority a freshly forked one would have
                os.setpriority(os.PRIO_PROCESS, pid, os.getpriority(os.PRIO_PROCESS, 0))
            socket.send_fds(sock, [json.dumps(request).encode()], [ready_fd])
        except OSError:  # it died: reaped by _reap; fork one the usual way
            return None
        finally:
            sock.close()
        return pid

    def _handle(self) -> bool:
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, _MAX_MESSAGE, 16)
        except ConnectionResetError:
            return False
        if not data:
            for fd in fds:
                os.close(fd)
            return False
        try:
            message = json.loads(data)
            reply = self._dispatch(message, fds)
        except Exception as exc:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            kind = getattr(exc, "kind", RuntimeFailure.kind)
            reply = {"ok": False, "kind": kind, "message": f"spawner: {exc}"}
        try:
            self.sock.send(json.dumps(reply).encode())
        except OSError:  # the Engine left without waiting for the answer (a ping it never read)
            return False
        return True

    def _dispatch(self, message: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        op = message.get("op")
        if op == "ping":
            return {"ok": True, "pid": os.getpid()}
        if op == "shim":
            trace.mark("spawner.request")
            from containerkit.runtime.request import ShimRequest
            from containerkit.runtime.shim import run_shim

            request = ShimRequest.from_dict(message["request"])  # a bad one is refused here
            (ready_fd,) = fds
            pid = self._hand_to_spare(message["request"], ready_fd)
            if pid is None:
                pid = os.fork()
                if pid == 0:  # pragma: no cover - the shim
                    self._in_child(keep=fds)
                    run_shim(request, ready_fd)
            os.close(ready_fd)
            return {"ok": True, "pid": pid}
        if op == "exec":
            stdin, stdout, stderr, error_fd, status_fd = fds
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the exec helper
                # Not the status pipe: only the spawner writes it, and a copy in the exec'd
                # process (or a background child of it) would hold its EOF back.
                os.close(status_fd)
                self._in_child(keep=[stdin, stdout, stderr, error_fd])
                _exec_child(int(message["target_pid"]), message["process"], (stdin, stdout, stderr), error_fd)
            for fd in (stdin, stdout, stderr, error_fd):
                os.close(fd)
            self.execs[pid] = status_fd
            return {"ok": True, "pid": pid}
        raise ValueError(f"unknown request {op!r}")

    def _in_child(self, keep: list[int]) -> None:
        """A forked child drops the spawner's signal plumbing, socket and others' status pipes."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.sock.close()
        if self.spare is not None:
            self.spare[1].close()
        for fd in (self.wake_r, self.wake_w, *self.execs.values()):
            if fd not in keep:
                os.close(fd)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.spare is not None and self.spare[0] == pid:
                self.spare[1].close()
                self.spare = None
            status_fd = self.execs.pop(pid, None)
            if status_fd is not None:
                code = _sync.status_exit_code(status)
                with contextlib.suppress(OSError):
                    os.write(status_fd, json.dumps({"exit_code": code}).encode())
                os.close(status_fd)


def _prepare_init(sock: socket.socket) -> PreparedInit | None:  # pragma: no cover - the spare
    """The spare's container init, forked ahead too; without one the shim forks it as usual."""
    from containerkit.runtime.init import prepare_init

    try:
        return prepare_init(close=(sock.fileno(),), cgroup=True)
    except (OSError, ContainerkitError):
        return None


def _await_shim_request(
    sock: socket.socket, prepared: PreparedInit | None
) -> NoReturn:  # pragma: no cover - the spare
    """Wait for one shim request (message + ready pipe) and become that shim; on EOF, leave
    (with the prepared init reaped: nothing outlives the spawner)."""
    try:
        data, fds, _flags, _addr = socket.recv_fds(sock, _MAX_MESSAGE, 1)
    except OSError:
        data, fds = b"", []
    sock.close()
    if not data or len(fds) != 1:
        if prepared is not None:
            prepared.discard()
        os._exit(0)
    from containerkit.runtime.request import ShimRequest
    from containerkit.runtime.shim import run_shim

    try:
        request = ShimRequest.from_dict(json.loads(data))
    except BaseException:  # validated by the spawner already; the starter sees EOF, not a hang
        if prepared is not None:
            prepared.discard()
        os._exit(1)
    run_shim(request, fds[0], prepared)


def _exec_child(
    target_pid: int, process: dict[str, Any], stdio: tuple[int, int, int], error_fd: int
) -> NoReturn:  # pragma: no cover - runs in the forked helper
    """Put the exec's stdio on 0/1/2 and hand over to the builtin runtime's exec."""
    try:
        install_stdio(stdio)
        os.set_inheritable(error_fd, False)
        default_signals()
        from containerkit.runtime.builtin import exec_in_container

        exec_in_container(target_pid, process, error_fd=error_fd)
    except BaseException as exc:
        _sync.report(error_fd, exc, context="exec helper")
    os._exit(_sync.NOT_EXECUTABLE)


def serve(sock: socket.socket) -> None:
    """Answer requests on ``sock`` until the other end closes it."""
    _Server(sock).serve()


def main(argv: list[str] | None = None) -> None:
    """``python -m containerkit.runtime.spawner FD [--pdeathsig PARENT_PID]``."""
    args = sys.argv[1:] if argv is None else argv
    if args[1:2] == ["--pdeathsig"]:
        from containerkit.linux import _libc

        _libc.libc.prctl(_libc.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != int(args[2]):  # the parent died before the prctl
            os._exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the Engine, which closes us
    from containerkit.linux.proc import ensure_stdio, move_above_stdio

    sock_fd = move_above_stdio(int(args[0]))  # started by a process with closed stdio
    ensure_stdio()
    sock = socket.socket(fileno=sock_fd)
    os.set_inheritable(sock.fileno(), False)
    _preload()
    # Everything loaded so far lives as long as the spawner: out of the collector's reach, a
    # forked child's collections never touch (and so never copy) the pages it shares with us.
    gc.collect()
    gc.freeze()
    serve(sock)


if __name__ == "__main__":
    main()

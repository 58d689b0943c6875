"""The container's init process as the shim drives it: start, pid, reap, kill, delete.

:class:`InitProcess` is the shim's view of one container's first process, as containerd's runc
shim has its ``Init`` process; the two runtimes implement it:

* :class:`BuiltinInit` forks the init itself (``unshare(CLONE_NEWPID)`` + fork), or hands the
  work to an init a spare shim forked ahead (:class:`PreparedInit`), or, with a user namespace,
  goes through a helper in runc's nsexec order. The child runs
  :func:`~containerkit.runtime.builtin.run_container_init` and says why it failed on an error
  pipe (:mod:`~containerkit.runtime._sync`); EOF means the command has exec'd. While it sets up,
  the shim's ``on_fork`` places it in its cgroup and writes the first state.
* :class:`RuncInit` runs ``runc create`` + ``runc start`` (or crun) on the bundle; a tty comes back
  over ``--console-socket``.

Either way the init ends up the shim's child (the shim is a subreaper), so :meth:`reap` is a
``waitpid``. A start that fails raises :class:`StartFailed` with docker's exit code for it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from containerkit.errors import ContainerkitError, RuntimeFailure
from containerkit.linux import _libc, mounts
from containerkit.linux.proc import default_signals, install_stdio
from containerkit.linux.userns import UsernsMapping, write_id_maps
from containerkit.runtime import _sync, spare_cgroup, trace, usermap
from containerkit.runtime.iopump import IOPump
from containerkit.runtime.request import ShimRequest
from containerkit.runtime.rootfs import ContainerRoot

if TYPE_CHECKING:
    from containerkit.runtime.runc import RuncBackend

__all__ = [
    "BuiltinInit",
    "InitProcess",
    "PreparedInit",
    "RuncInit",
    "StartFailed",
    "kill_child",
    "prepare_init",
]

CONSOLE_SOCKET = "console.sock"
RUNC_LOG = "runtime.log"
PID_FILE = "init.pid"

OnFork = Callable[[int, int], None]
"""The shim's part of a builtin start, given the init's pid and the cgroup-ready pipe (or -1)."""


class StartFailed(Exception):
    """A start that failed with a known exit code (127, 126, ...) and error."""

    def __init__(self, error: ContainerkitError, exit_code: int) -> None:
        super().__init__(error.message)
        self.error = error
        self.exit_code = exit_code


class InitProcess(Protocol):
    """One container's init, as the shim sees it. ``pid`` is 0 until :meth:`start` has forked."""

    pid: int

    def start(self, config: dict[str, Any]) -> None:
        """Create the init from the bundle's ``config`` and let its command exec; raises
        :class:`StartFailed` (or another error) when it did not."""
        ...

    def reap(self) -> int | None:
        """The init's wait status once it has exited, else None (never blocks)."""
        ...

    def kill(self, sig: int) -> None:
        """Send ``sig`` to the init."""
        ...

    def delete(self) -> None:
        """Remove what the runtime keeps of the container (the shim removes cgroup and root)."""
        ...


class _ChildInit:
    """An init that is the shim's child (forked, or re-parented to the subreaper)."""

    def __init__(self) -> None:
        self.pid = 0

    def reap(self) -> int | None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return 255 << 8  # not our child (should not happen): unknown status
        return status if pid else None

    def kill(self, sig: int) -> None:
        if self.pid:
            os.kill(self.pid, sig)


class BuiltinInit(_ChildInit):
    """The built-in runtime's init (see the module docstring).

    ``prepared``: an init a spare shim forked ahead (used when it can be, else discarded);
    ``private_fds``: the shim's fds no child may keep; ``on_fork``: the shim's part of the start.
    ``config_bytes``: the bundle's config.json as read (the ``config`` given to :meth:`start`
    parsed from it), sent to a prepared init as it is rather than serialized again.
    """

    def __init__(
        self,
        request: ShimRequest,
        io: IOPump,
        root: ContainerRoot,
        *,
        prepared: PreparedInit | None,
        private_fds: Callable[[], set[int]],
        on_fork: OnFork,
        config_bytes: bytes | None = None,
    ) -> None:
        super().__init__()
        self.request = request
        self.io = io
        self.root = root
        self.prepared = prepared
        self.private_fds = private_fds
        self.on_fork = on_fork
        self.config_bytes = config_bytes
        self.spare_cgroup: str | None = None
        """The cgroup the prepared init was handed over in (see :mod:`.spare_cgroup`); the
        shim claims it in ``on_fork`` and removes what it leaves."""

    def start(self, config: dict[str, Any]) -> None:
        try:
            self._start(config)
        finally:
            self.discard_prepared()  # unused when the start failed before the hand-over

    def discard_prepared(self) -> None:
        if self.prepared is not None:
            prepared, self.prepared = self.prepared, None
            prepared.discard()

    def delete(self) -> None:
        """Nothing: the built-in runtime keeps no state of its own."""

    def _start(self, config: dict[str, Any]) -> None:
        from containerkit.runtime import builtin

        stdio = self.io.make_pty() if self.request.tty else self.io.make_pipes()
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        with_cgroup = bool(self.request.cgroup_name)
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC) if with_cgroup else (-1, -1)
        mapping = usermap.mapping_of(config)
        pid: int | None = None
        if mapping is not None:  # a spare init is in the host's user namespace: of no use here
            self.discard_prepared()
            self.root.stage_userns(config)
            pid = self._fork_userns_init(config, stdio, (err_r, err_w), (ready_r, ready_w), mapping)
        else:
            pid = self._hand_over(config, stdio, err_w, ready_r)
        if pid is None:
            _libc.libc.unshare(_libc.CLONE_NEWPID)
            private = self.private_fds()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the container's init
                _container_child(
                    private,
                    builtin.run_container_init,
                    self.request.bundle,
                    config,
                    stdio,
                    (err_r, err_w),
                    (ready_r, ready_w),
                )
        self.pid = pid
        trace.mark("shim.init_forked")
        os.close(err_w)
        self.io.close_child_fds()
        if ready_r != -1:
            os.close(ready_r)
        try:
            self.on_fork(pid, ready_w)
            trace.mark("shim.cgroup_state_log")
            report = _sync.read_all(err_r)
        finally:
            os.close(err_r)
        trace.mark("shim.exec_seen")
        if report:
            _pid, status = os.waitpid(pid, 0)
            raise _start_error(report, _sync.status_exit_code(status))

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
        private = self.private_fds()
        helper = os.fork()
        if helper == 0:  # pragma: no cover - the helper child
            _userns_helper(
                private,
                builtin.run_container_init,
                self.request.bundle,
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
                    kill_child(helper)
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
        if prepared.cgroup is not None and not self.request.cgroup_name:
            prepared.discard()  # it sits in a spare cgroup, and nothing would move it out
            return None
        fds = list(dict.fromkeys(stdio))  # a pty is one fd three times
        message = {
            "bundle": str(self.request.bundle),
            "stdio": [fds.index(fd) for fd in stdio],
            "error": len(fds),
            "ready": len(fds) + 1 if ready_r != -1 else -1,
        }
        fds.append(err_w)
        if ready_r != -1:
            fds.append(ready_r)
        raw = self.config_bytes if self.config_bytes is not None else json.dumps(config).encode()
        try:
            prepared.hand_over(message, raw, fds)
        except OSError:
            return None
        self.spare_cgroup = prepared.cgroup
        return prepared.pid


class RuncInit(_ChildInit):
    """``runc``/``crun`` ``create`` + ``start`` on the bundle; the shim mounted its root."""

    def __init__(self, request: ShimRequest, io: IOPump, root: ContainerRoot) -> None:
        super().__init__()
        self.request = request
        self.io = io
        self.root = root
        self.runc: RuncBackend | None = None

    def start(self, config: dict[str, Any]) -> None:
        from containerkit.runtime.runc import RuncBackend

        request = self.request
        runc_root = request.runc_root or Path("/run/containerkit") / request.runtime
        self.runc = RuncBackend(request.runtime, root=runc_root, log_file=request.state_dir / RUNC_LOG)
        if request.cgroup_name:
            from containerkit.linux.cgroups import open_cgroup

            open_cgroup(request.cgroup_name).create_everywhere()
        if usermap.mapping_of(config) is not None:
            self.root.stage_userns(config)
        else:
            self.root.mount(config)
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
        pid_file = request.state_dir / PID_FILE
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
            raise StartFailed(exc, code) from None
        finally:
            if console is not None:
                console.close()
            shutil.rmtree(console_path.parent, ignore_errors=True)

    def kill(self, sig: int) -> None:
        if self.runc is None:
            super().kill(sig)
        else:
            self.runc.kill(self.request.container_id, sig)

    def delete(self) -> None:
        """``runc delete --force``: its state and cgroup (a container it never made is fine)."""
        if self.runc is not None:
            self.runc.delete(self.request.container_id)


# -- an init forked ahead of its request ----------------------------------------------------


class PreparedInit:
    """A container init forked before its request, waiting on a socket for its config and fds.

    The fork of an interpreter this size, its copy-on-write warm-up and a new network namespace
    cost about two milliseconds; a spare shim (see the spawner) pays them while idle. The spare
    has unshared its pid namespace, so this process is PID 1 of a fresh one, as a forked init is.
    It gets the shim's priority before its work (a spare waits at a low one). ``cgroup``: the
    spare cgroup it waits in (:mod:`.spare_cgroup`), removed by :meth:`discard`; after the
    hand-over the shim claims it.
    """

    def __init__(self, pid: int, sock: socket.socket, pid_namespace: int, cgroup: str | None = None) -> None:
        self.pid = pid
        self.sock = sock
        self._pid_namespace = pid_namespace  # ours before the unshare, for discard()
        self.cgroup = cgroup

    def hand_over(self, message: dict[str, Any], config: bytes, fds: list[int]) -> None:
        """Send the init its work (``message``, then the bundle's config as JSON bytes); it then
        runs like a freshly forked one. Raises OSError when it is gone (it is then reaped and
        the pid namespace restored)."""
        try:
            os.setpriority(os.PRIO_PROCESS, self.pid, os.getpriority(os.PRIO_PROCESS, 0))
            if os.getpriority(os.PRIO_PROCESS, self.pid) != os.getpriority(os.PRIO_PROCESS, 0):
                raise OSError(errno.EPERM, "cannot give the prepared init our priority")
            # one datagram: the header line (json.dumps writes no raw newline), then the config
            socket.send_fds(self.sock, [json.dumps(message).encode(), b"\n", config], fds)
        except OSError:
            self.discard()
            raise
        self.sock.close()
        os.close(self._pid_namespace)
        self._pid_namespace = -1

    def discard(self) -> None:
        """Let the init go unused (EOF: it exits), reap it, and fork into our own pid namespace
        again (a dead namespace takes no new processes)."""
        with contextlib.suppress(OSError):  # our priority: a low one left it waiting to exit
            os.setpriority(os.PRIO_PROCESS, self.pid, os.getpriority(os.PRIO_PROCESS, 0))
        self.sock.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        if self.cgroup is not None:  # empty now: its one process is gone
            spare_cgroup.remove(self.cgroup)
            self.cgroup = None
        if self._pid_namespace != -1:
            try:
                _libc.libc.setns(self._pid_namespace, _libc.CLONE_NEWPID)
            finally:
                os.close(self._pid_namespace)
                self._pid_namespace = -1


def prepare_init(close: tuple[int, ...] = (), *, cgroup: bool = False) -> PreparedInit:
    """Fork the init of the next container now (called by a spare shim before its request).

    ``close``: fds of the caller the init must not hold (the spare's request socket).
    ``cgroup``: also make a spare cgroup, which the init moves itself into before this returns
    (:mod:`.spare_cgroup`).
    """
    spare = spare_cgroup.make() if cgroup else None
    previous = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _libc.libc.unshare(_libc.CLONE_NEWPID)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except BaseException:
        os.close(previous)
        if spare is not None:
            spare_cgroup.remove(spare)
        raise
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the prepared init
        ours.close()
        os.close(previous)
        for fd in close:
            os.close(fd)
        _await_init_work(theirs, spare)
    theirs.close()
    prepared = PreparedInit(pid, ours, previous, spare)
    if spare is not None:
        try:
            joined = ours.recv(1) == _JOINED
        except OSError:
            joined = False
        if not joined:  # it runs outside the spare cgroup: the shim makes and joins the cgroup
            spare_cgroup.remove(spare)
            prepared.cgroup = None
    return prepared


_JOINED = b"j"
"""The prepared init's byte: it is in its spare cgroup (any other byte, or EOF: it is not)."""


def _await_init_work(
    sock: socket.socket, spare: str | None
) -> NoReturn:  # pragma: no cover - the prepared init
    """Join the spare cgroup, make a network namespace, wait for the shim's message and fds,
    then run the init."""
    os.setsid()  # out of the spawner's process group: no terminal signal reaches us meanwhile
    if spare is not None:
        try:
            sock.send(_JOINED if spare_cgroup.join(spare) else b"n")
        except OSError:
            os._exit(0)
    from containerkit.runtime import builtin

    try:
        network: int | None = builtin.prepare_network()
    except (OSError, ContainerkitError):
        network = None
    with contextlib.suppress(OSError, ValueError):
        mounts.read_cgroup_hierarchies_ahead()
    try:
        data, fds, _flags, _addr = socket.recv_fds(sock, _MAX_INIT_MESSAGE, 8)
    except OSError:
        os._exit(0)
    sock.close()
    if not data:
        os._exit(0)
    header, _newline, config = data.partition(b"\n")
    message = json.loads(header)
    for fd in fds:
        os.set_inheritable(fd, False)  # received fds are inheritable; the exec must close ours
    stdio = tuple(fds[i] for i in message["stdio"])
    ready = fds[message["ready"]] if message["ready"] >= 0 else -1
    _run_init(
        builtin.run_container_init,
        Path(message["bundle"]),
        json.loads(config),
        (stdio[0], stdio[1], stdio[2]),
        fds[message["error"]],
        ready,
        network,
    )


_MAX_INIT_MESSAGE = 1 << 20


# -- the forked children -------------------------------------------------------------------


def _container_child(
    private_fds: set[int],
    init: Any,
    bundle: Path,
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
        for fd in private_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
    except BaseException:
        os._exit(128)
    _run_init(init, bundle, config, stdio, err_w, ready_r, None)


def _userns_helper(
    private_fds: set[int],
    init: Any,
    bundle: Path,
    config: dict[str, Any],
    stdio: tuple[int, int, int],
    error_pipe: tuple[int, int],
    ready_pipe: tuple[int, int],
    sync_pipe: tuple[int, int],
    go_pipe: tuple[int, int],
) -> NoReturn:  # pragma: no cover - runs in the forked helper
    """The helper of :meth:`BuiltinInit._fork_userns_init`; errors go to the error pipe."""
    from containerkit.linux import namespaces

    err_r, err_w = error_pipe
    sync_r, sync_w = sync_pipe
    go_r, go_w = go_pipe
    try:
        for fd in (err_r, sync_r, go_w, ready_pipe[1]):
            if fd != -1:
                os.close(fd)
        for fd in private_fds:
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
            _run_init(init, bundle, config, stdio, err_w, ready_pipe[0], None)
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
        install_stdio(stdio)
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


def kill_child(pid: int) -> None:
    """SIGKILL and reap a child that must not go on (its setup failed on our side)."""
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _start_error(report: bytes, status_code: int) -> StartFailed:
    """The start failure a child reported, with the exit code its report or status stands for."""
    error = _sync.decode(report, default=f"container init failed with exit code {status_code}")
    if error is None:
        error = RuntimeFailure(f"container init failed with exit code {status_code}")
    return StartFailed(error, _sync.exit_code_for(error, otherwise=status_code))


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

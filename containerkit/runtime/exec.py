"""Run another process in a running container, with its stdio and its exit code.

Built-in runtime: the spawner forks a helper that calls ``builtin.exec_in_container`` (setns,
fork, exec); the helper exits with the process's exit code and the spawner, its parent, writes
that code to a status pipe, because the Engine is not the helper's parent. Without a spawner a
fresh ``python -m containerkit.runtime.exec`` is the helper. runc/crun: ``runc exec --process``.

A command that cannot be started is not an exception: :attr:`ExecProcess.error` holds the
:class:`~containerkit.errors.CommandNotFound` (or other) error and :meth:`ExecProcess.wait`
returns 126, as ``docker exec`` does for any exec the runtime could not start (missing or not
executable; only ``docker run`` of a missing command gives a shell's 127), so callers that only
look at exit codes keep working and callers that care can raise ``proc.error``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from containerkit._model import model
from containerkit.errors import ContainerkitError, RuntimeFailure, Timeout
from containerkit.linux.proc import default_signals
from containerkit.runtime import _sync
from containerkit.runtime.runc import RuncBackend, classify_error

if TYPE_CHECKING:
    from containerkit.runtime.spawner import Spawner

_EXIT_CHECK_MS = 100
"""How often a stream whose pipes stay open checks whether the exec'd process has exited."""
_DRAIN_MS = 20
"""After the exit, a stream ends once its pipes are quiet this long (or at EOF, usually at once)."""

_ENTRY = "from containerkit.runtime.{} import main; main()"
"""Not ``python -m``: the package may import this module first, and runpy would run it twice."""

__all__ = ["ExecProcess", "RuncTarget", "start_exec"]

Stream = Literal["stdout", "stderr"]


@model(kw_only=True)
class RuncTarget:
    """A container run by runc/crun: exec goes through ``<runtime> exec`` instead of setns."""

    runtime: str
    root: Path
    container_id: str


class _Waiter:
    """How the exit code arrives: a status pipe from the spawner, or a child we can wait on."""

    def __init__(self, *, status_fd: int = -1, child: subprocess.Popen[bytes] | None = None) -> None:
        self.status_fd = status_fd
        self.child = child
        self.code: int | None = None
        self.error: ContainerkitError | None = None

    def wait(self, timeout: float | None) -> int | None:
        if self.code is not None:
            return self.code
        if self.child is not None:
            try:
                code = self.child.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
            self.code = 128 - code if code < 0 else code
            return self.code
        if not _wait_readable(self.status_fd, timeout):
            return None
        raw = _sync.read_all(self.status_fd)
        os.close(self.status_fd)
        self.status_fd = -1
        try:
            self.code = int(json.loads(raw)["exit_code"])
        except (ValueError, KeyError, TypeError):
            raise RuntimeFailure("exec status lost: the spawner exited before the exec finished") from None
        return self.code

    def exited(self) -> bool:
        """Whether the process has exited, without consuming the exit status."""
        if self.code is not None:
            return True
        if self.child is not None:
            return self.child.poll() is not None
        return self.status_fd != -1 and _wait_readable(self.status_fd, 0)

    def close(self) -> None:
        if self.status_fd != -1:
            os.close(self.status_fd)
            self.status_fd = -1


class ExecProcess:
    """A started exec. Read ``stdout``/``stderr`` (or :meth:`stream`), then :meth:`wait`.

    With a tty both streams arrive on ``stdout`` and ``stderr`` is None.
    """

    def __init__(
        self,
        *,
        pid: int,
        stdout_fd: int,
        stderr_fd: int,
        stdin_fd: int,
        waiter: _Waiter,
        error: ContainerkitError | None,
        error_exit_code: int | None,
        tty: bool,
        cleanup: list[Path] | None = None,
    ) -> None:
        self.pid = pid
        self.tty = tty
        self.error = error
        self._error_exit_code = error_exit_code
        self._waiter = waiter
        self._stdin_fd = stdin_fd
        self._cleanup = cleanup or []
        self.stdout = open(stdout_fd, "rb", buffering=0)  # noqa: SIM115 - owned by this object
        self.stderr = None if stderr_fd == -1 else open(stderr_fd, "rb", buffering=0)  # noqa: SIM115

    def __enter__(self) -> ExecProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def write_stdin(self, data: bytes) -> None:
        """Write all of ``data`` to the process's stdin (it must have been started with stdin)."""
        if self._stdin_fd == -1:
            raise RuntimeFailure(f"exec {self.pid} has no open stdin")
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._stdin_fd, view) :]
            except BrokenPipeError:
                return  # the process closed its stdin
            except OSError as exc:
                if exc.errno == errno.EIO:
                    return
                raise

    def close_stdin(self) -> None:
        """EOF for the process (with a tty: the terminal's EOF character, ^D)."""
        if self._stdin_fd == -1:
            return
        if self.tty:
            self.write_stdin(b"\x04")
            return
        os.close(self._stdin_fd)
        self._stdin_fd = -1

    def resize(self, rows: int, cols: int) -> None:
        """Set the size of the exec's terminal (its process gets SIGWINCH); nothing without a tty
        or once the process has closed it, as docker's ``/exec/{id}/resize``."""
        if not self.tty:
            return
        import fcntl
        import struct
        import termios

        with contextlib.suppress(OSError, ValueError):
            fcntl.ioctl(self.stdout.fileno(), termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def stream(self, *, deadline: float | None = None) -> Iterator[tuple[Stream, bytes]]:
        """``(stream, chunk)`` pairs as the process writes them, until both streams reach EOF
        or the process has exited and what it wrote is read: a background child that keeps
        the streams open (``sh -c 'daemon &'``) does not hold the exec, as with docker.
        ``deadline`` (``time.monotonic()``): :class:`Timeout` once passed."""
        files: dict[int, tuple[Stream, Any]] = {self.stdout.fileno(): ("stdout", self.stdout)}
        if self.stderr is not None:
            files[self.stderr.fileno()] = ("stderr", self.stderr)
        poller = select.poll()
        for fd in files:
            poller.register(fd, select.POLLIN)
        exited = False
        while files:
            if not exited and self._waiter.exited():
                exited = True
            # Until the exit, wake up now and then to notice it; after it, only drain what
            # is already written (a short quiet period ends the stream).
            events = poller.poll(_DRAIN_MS if exited else _EXIT_CHECK_MS)
            if not events and exited:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise Timeout(f"exec {self.pid} still running after its timeout")
            for fd, _events in events:
                name, f = files[fd]
                try:
                    chunk = f.read(65536)
                except OSError as exc:  # a pty reports EIO once the process side is closed
                    if exc.errno != errno.EIO:
                        raise
                    chunk = b""
                if chunk:
                    yield name, chunk
                else:
                    poller.unregister(fd)
                    del files[fd]

    def __iter__(self) -> Iterator[bytes]:
        """Output chunks (stdout and stderr interleaved as written); then call :meth:`wait`."""
        for _stream, chunk in self.stream():
            yield chunk

    def communicate(self, input: bytes | None = None, timeout: float | None = None) -> tuple[bytes, bytes]:
        """Feed ``input``, close stdin, collect all output; ``(stdout, stderr)``."""
        if input:
            self.write_stdin(input)
        if self._stdin_fd != -1:
            self.close_stdin()
        deadline = None if timeout is None else time.monotonic() + timeout
        out: dict[Stream, list[bytes]] = {"stdout": [], "stderr": []}
        for name, chunk in self.stream(deadline=deadline):
            out[name].append(chunk)
        return b"".join(out["stdout"]), b"".join(out["stderr"])

    def wait(self, timeout: float | None = None) -> int:
        """The exit code (128+n after signal n; 126 when the command could not start)."""
        code = self._waiter.wait(timeout)
        if code is None:
            raise Timeout(f"exec {self.pid} still running after {timeout} s")
        if self.error is None and self._waiter.error is not None:
            self.error = self._waiter.error
        if self.error is not None:
            return _sync.NOT_EXECUTABLE  # dockerd's exit code for an exec that could not start
        return code

    def close(self) -> None:
        """Release the pipes (does not stop the process)."""
        self.stdout.close()
        if self.stderr is not None:
            self.stderr.close()
        if self._stdin_fd != -1 and not self.tty:
            os.close(self._stdin_fd)
        self._stdin_fd = -1
        self._waiter.close()
        for path in self._cleanup:
            with contextlib.suppress(OSError):
                path.rmdir() if path.is_dir() else path.unlink()


def start_exec(
    target_pid: int,
    process: dict[str, Any],
    *,
    tty: bool = False,
    stdin: bool = False,
    detach: bool = False,
    spawner: Spawner | None = None,
    runc: RuncTarget | None = None,
) -> ExecProcess:
    """Start ``process`` (an OCI ``process`` object) in the container whose init is ``target_pid``.

    Returns once the command has exec'd or failed to; see the module docstring for failures.
    ``detach``: the process's stdio is ``/dev/null`` (``docker exec -d``), so it never blocks
    on a reader that went away; the returned streams are at EOF at once.
    """
    process = {**process, "terminal": tty and not detach}
    if detach:
        null_in = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        null_out = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        ours_out, out_w = os.pipe2(os.O_CLOEXEC)
        ours_err, err_w = os.pipe2(os.O_CLOEXEC)
        ours_in, tty = -1, False
        child = (null_in, null_out, null_out)
        to_close = [null_in, null_out, out_w, err_w]
    elif tty:
        master, slave = os.openpty()
        os.set_inheritable(master, False)
        os.set_inheritable(slave, False)
        child = (slave, slave, slave)
        ours_out, ours_err, ours_in = master, -1, master if stdin else -1
        to_close = [slave]  # like docker -t without -i: stdin is the terminal, nobody types
    else:
        if stdin:
            in_r, ours_in = os.pipe2(os.O_CLOEXEC)
        else:
            in_r, ours_in = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), -1
        ours_out, out_w = os.pipe2(os.O_CLOEXEC)
        ours_err, err_w = os.pipe2(os.O_CLOEXEC)
        child = (in_r, out_w, err_w)
        to_close = [in_r, out_w, err_w]
    try:
        if runc is not None:
            return _start_runc_exec(runc, process, child, ours_out, ours_err, ours_in, tty)
        return _start_builtin_exec(target_pid, process, spawner, child, ours_out, ours_err, ours_in, tty)
    finally:
        for fd in to_close:
            os.close(fd)


def _start_builtin_exec(
    target_pid: int,
    process: dict[str, Any],
    spawner: Spawner | None,
    child: tuple[int, int, int],
    ours_out: int,
    ours_err: int,
    ours_in: int,
    tty: bool,
) -> ExecProcess:
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        if spawner is not None:
            status_r, status_w = os.pipe2(os.O_CLOEXEC)
            try:
                pid = spawner.spawn_exec(target_pid, process, stdio=child, error_fd=err_w, status_fd=status_w)
            except BaseException:
                os.close(status_r)
                raise
            finally:
                os.close(status_w)
            waiter = _Waiter(status_fd=status_r)
        else:
            helper = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _ENTRY.format("exec"),
                    str(target_pid),
                    str(err_w),
                    json.dumps(process),
                ],
                stdin=child[0],
                stdout=child[1],
                stderr=child[2],
                pass_fds=(err_w,),
            )
            pid = helper.pid
            waiter = _Waiter(child=helper)
        os.close(err_w)
        err_w = -1
        report = _sync.read_all(err_r)
    finally:
        os.close(err_r)
        if err_w != -1:
            os.close(err_w)
    error, code = _parse_error(report)
    return ExecProcess(
        pid=pid,
        stdout_fd=ours_out,
        stderr_fd=ours_err,
        stdin_fd=ours_in,
        waiter=waiter,
        error=error,
        error_exit_code=code,
        tty=tty,
    )


def _parse_error(report: bytes) -> tuple[ContainerkitError | None, int | None]:
    """The helper's error and its exit code: 126 whatever the reason, as ``docker exec``."""
    error = _sync.decode(report, default="exec failed")
    if error is None:
        return None, None
    return error, _sync.NOT_EXECUTABLE


def _start_runc_exec(
    target: RuncTarget,
    process: dict[str, Any],
    child: tuple[int, int, int],
    ours_out: int,
    ours_err: int,
    ours_in: int,
    tty: bool,
) -> ExecProcess:
    tmp = Path(tempfile.mkdtemp(prefix="containerkit-exec-"))
    process_file = tmp / "process.json"
    # runc confines an exec itself, from its state: our keys for the built-in runtime stay out
    ours = {k: v for k, v in process.items() if not k.startswith("org.containerkit.")}
    process_file.write_text(json.dumps(ours))
    log_file = tmp / "runtime.log"
    backend = RuncBackend(target.runtime, root=target.root, log_file=log_file)
    cleanup = [process_file, log_file, tmp]
    # With --tty in the foreground runc wants a terminal on its own stdio: the pty made above.
    argv = backend.exec_argv(target.container_id, process_file, tty=tty)
    helper = subprocess.Popen(argv, stdin=child[0], stdout=child[1], stderr=child[2])
    return ExecProcess(
        pid=helper.pid,
        stdout_fd=ours_out,
        stderr_fd=ours_err,
        stdin_fd=ours_in,
        waiter=_RuncWaiter(helper, backend),
        error=None,
        error_exit_code=None,
        tty=tty,
        cleanup=cleanup,
    )


class _RuncWaiter(_Waiter):
    """runc exec exits with the process's code, or 255 plus a logged error when it never ran."""

    def __init__(self, child: subprocess.Popen[bytes], backend: RuncBackend) -> None:
        super().__init__(child=child)
        self.backend = backend

    def wait(self, timeout: float | None) -> int | None:
        code = super().wait(timeout)
        if code == 255:
            message = self.backend.last_error("")
            if message:
                cls, code = classify_error(message)
                self.code = code
                self.error = cls(f"{self.backend.name} exec: {message}")
        return code


def _wait_readable(fd: int, timeout: float | None) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000))))


def main(argv: list[str] | None = None) -> None:
    """``python -m containerkit.runtime.exec TARGET_PID ERROR_FD PROCESS_JSON``: the helper."""
    args = sys.argv[1:] if argv is None else argv
    target_pid, error_fd, process = int(args[0]), int(args[1]), json.loads(args[2])
    os.set_inheritable(error_fd, False)
    default_signals()
    try:
        from containerkit.runtime.builtin import exec_in_container

        exec_in_container(target_pid, process, error_fd=error_fd)
    except BaseException as exc:
        _sync.report(error_fd, exc, context="exec helper")
    os._exit(_sync.NOT_EXECUTABLE)


if __name__ == "__main__":
    main()

"""containerkitd as a service: its pidfile, its log file, going to the background, and refusing
to start twice on the same pidfile or socket.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import logging.handlers
import os
import socket
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from containerkit.errors import Conflict, InvalidArgument

__all__ = [
    "LOG_BACKUPS",
    "LOG_MAX_BYTES",
    "Detached",
    "PidFile",
    "check_socket_free",
    "detach",
    "setup_logging",
]

LOG_MAX_BYTES = 10 << 20
"""The log file is rotated at 10 MiB, keeping ``LOG_BACKUPS`` old ones (``.1`` newest)."""
LOG_BACKUPS = 5
_FORMAT = "%(asctime)s containerkitd %(levelname)s %(message)s"

log = logging.getLogger("containerkit.daemon")


class PidFile:
    """A pidfile held under an exclusive ``flock`` for the daemon's life.

    The lock, not the pid written in it, says whether a daemon runs: a pidfile left by a daemon
    that was killed is unlocked (the kernel drops the lock with the process) and is taken over;
    one that is locked means another daemon runs, and :meth:`acquire` refuses.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1
        self.stale_pid: int | None = None

    def acquire(self) -> None:
        """Lock the pidfile (created if needed); :class:`Conflict` when another daemon holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise InvalidArgument(f"pidfile {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise Conflict(
                f"containerkitd is already running (pid {pid if pid is not None else '?'}, "
                f"pidfile {self.path})"
            ) from None
        self.stale_pid = _read_pid(fd)
        self.fd = fd

    def write(self, pid: int) -> None:
        """Write ``pid`` (after going to the background: the pid changes there)."""
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{pid}\n".encode(), 0)

    def release(self) -> None:
        """Remove the pidfile and drop the lock (only the holder ever removes it)."""
        if self.fd == -1:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self.fd)
        self.fd = -1


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def check_socket_free(path: str) -> None:
    """Refuse to take over ``path`` while a server answers on it (the server would unlink it and
    bind its own, leaving the running daemon unreachable); a socket nobody listens on is stale."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise InvalidArgument(f"--host unix://{path}: the path exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(2)
        probe.connect(path)
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return
        raise InvalidArgument(f"--host unix://{path}: cannot check whether it is in use: {exc}") from None
    finally:
        probe.close()
    raise Conflict(f"another daemon is listening on unix://{path}: stop it first, or choose another --host")


def _own_chatter_only(record: logging.LogRecord) -> bool:
    """Below warnings, only containerkit's own lines: ``--log-level debug`` must not turn
    into pyroute2's netlink dumps or urllib3's connection chatter."""
    return record.levelno >= logging.WARNING or record.name.split(".", 1)[0] == "containerkit"


def setup_logging(level: str, log_file: Path | None) -> None:
    """Log to ``log_file`` (rotated at :data:`LOG_MAX_BYTES`, mode 0640) or, without one, stderr."""
    handler: logging.Handler
    if log_file is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        try:
            log_file.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            os.close(os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640))
        except OSError as exc:
            raise InvalidArgument(f"--log-file {log_file}: {exc.strerror}") from None
        handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
        )
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(_own_chatter_only)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))


class Detached:
    """The background daemon's end of the start-up report: :meth:`ready` or :meth:`failed`,
    once; the foreground process exits with 0 or prints the error and exits with 1."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def ready(self) -> None:
        self._send("ready\n")

    def failed(self, message: str) -> None:
        self._send(f"error: {message}\n")

    def _send(self, text: str) -> None:
        if self.fd == -1:
            return
        with contextlib.suppress(OSError):  # the foreground process was killed: nobody to tell
            os.write(self.fd, text.encode())
        os.close(self.fd)
        self.fd = -1


@contextlib.contextmanager
def detach(keep_fds: list[int], log_file: Path | None) -> Iterator[Detached]:
    """Continue in the background (python-daemon's double fork and ``setsid``); the process that
    called this waits for the daemon's start-up report and exits with its outcome.

    Must be called while the process has one thread (it forks). ``keep_fds`` survive (the
    pidfile lock, activated sockets). Every fd outside them is closed, and fds 0-2 become
    ``/dev/null`` for good: python-daemon reuses the lowest fd it opens, so without the
    ``dup2`` below 0-2 stay close-on-exec and every child (the spawner, shims, containers)
    starts without stdio, hands those numbers out to its own files, and clobbers them when a
    shim redirects its stdio (``unshare(CLONE_NEWPID): EINVAL``, ``write error: Bad file
    descriptor``).
    """
    import daemon

    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid != 0:
        os.close(write_end)
        _wait_for_report(read_end, pid, log_file)
    os.close(read_end)
    context = daemon.DaemonContext(
        detach_process=True,
        umask=0o022,
        working_directory="/",
        files_preserve=[write_end, *keep_fds],
    )
    with context:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)  # inheritable, unlike what python-daemon leaves there
        if null > 2:
            os.close(null)
        report = Detached(write_end)
        try:
            yield report
        finally:
            report.failed(f"containerkitd stopped during start-up (see {log_file or 'its log'})")


def _wait_for_report(fd: int, child: int, log_file: Path | None) -> NoReturn:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(child, 0)  # the intermediate process: it exits as soon as it forked the daemon
    text = b"".join(chunks).decode(errors="replace").strip()
    if text == "ready":
        os._exit(0)
    if not text:
        text = f"error: containerkitd exited during start-up (see {log_file or 'its log'})"
    print(f"containerkitd: {text.removeprefix('error: ')}", file=sys.stderr, flush=True)
    os._exit(1)

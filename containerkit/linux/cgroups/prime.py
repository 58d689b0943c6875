"""Start the kernel's wait before a cgroup migration ahead of the migration itself.

Writing a pid to ``cgroup.procs`` takes the kernel's global threadgroup lock for writing, and
the first writer after a quiet spell waits an RCU grace period for it (``rcu_sync``; 7-25 ms
on a 2-core VM, against 0.02 ms for a write right after another), holding ``cgroup_mutex``
meanwhile. A container's shim moves the new init into its cgroup while the init sets up, and
the init waits for that move, so the grace period sat on every start's critical path.

A :class:`MigrationPrimer` is a resident ``/bin/sh`` that, for each line it reads, moves itself
into the cgroup it already is in (moving nothing): asked as a create begins, the grace period
runs while the engine and the shim do their part, and the shim's write finds the lock's fast
path ready. Asking is one ``write(2)`` of a newline that never blocks; the shell, not the
caller, waits for the kernel. (A thread per request cost the caller ~1 ms to start it.)
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from pathlib import Path

__all__ = ["MigrationPrimer"]

_ROOT = Path("/sys/fs/cgroup")
_SHELL = "/bin/sh"
# "$1": the cgroup.procs of the cgroup the shell is in; "0" is the writer itself
_LOOP = 'while read -r _; do echo 0 > "$1"; done'


def procs_file(pid: int) -> Path | None:
    """``cgroup.procs`` of a cgroup ``pid`` is in (any hierarchy will do: the lock is global)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _id, controllers, path = line.split(":", 2)
        if controllers:  # a v1 hierarchy, mounted at its first controller's (or name=) directory
            mount = _ROOT / controllers.split(",")[0].removeprefix("name=")
        else:  # the v2 tree: the whole mount on a v2 host, "unified" on a hybrid one
            mount = _ROOT / "unified" if (_ROOT / "unified" / "cgroup.procs").exists() else _ROOT
        candidate = mount / path.lstrip("/") / "cgroup.procs"
        if candidate.exists():
            return candidate
    return None


class MigrationPrimer:
    """The resident shell of :mod:`this module <containerkit.linux.cgroups.prime>`, started at
    the first :meth:`prime`; it leaves at :meth:`close` or when this process dies (EOF).

    An optimisation only: where the shell cannot start or write, priming does nothing.
    ``procs``: the file the shell writes (default: :func:`procs_file` of this process, whose
    cgroups the shell is born in).
    """

    def __init__(self, procs: Path | None = None) -> None:
        self._procs = procs
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._pipe = -1
        self._disabled = False

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def prime(self) -> None:
        """Begin the grace period for the next cgroup migration now, without waiting."""
        if self._disabled:
            return
        with self._lock:
            if self._pipe == -1 and not self._start_locked():
                return
            try:
                os.write(self._pipe, b"\n")
            except BlockingIOError:
                pass  # plenty of requests queued already
            except OSError:  # the shell is gone
                self._close_locked()
                self._disabled = True

    def _start_locked(self) -> bool:
        procs = self._procs or procs_file(os.getpid())  # the shell is born in our cgroups
        if procs is None or not os.access(_SHELL, os.X_OK):
            self._disabled = True
            return False
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            self._process = subprocess.Popen(
                [_SHELL, "-c", _LOOP, "sh", str(procs)],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                close_fds=True,
                start_new_session=True,  # no terminal signal reaches it
            )
        except OSError:
            os.close(write_end)
            self._disabled = True
            return False
        finally:
            os.close(read_end)
        os.set_blocking(write_end, False)
        self._pipe = write_end
        return True

    def close(self, *, wait: bool = True) -> None:
        """End the shell (EOF on its input) and reap it; ``wait=False``: do not wait for it to
        leave (it finishes a pending write first, at most a grace period: a process that is
        about to exit leaves it to be reaped by whoever inherits it)."""
        with self._lock:
            self._close_locked(wait=wait)

    def _close_locked(self, *, wait: bool = True) -> None:
        if self._pipe != -1:
            os.close(self._pipe)
            self._pipe = -1
        if self._process is not None and not wait:
            self._process = None
        if self._process is not None:
            process, self._process = self._process, None
            try:
                process.wait(timeout=30)  # after at most the grace period of a pending write
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    process.kill()
                process.wait()

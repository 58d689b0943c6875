"""Start the kernel's wait before a cgroup migration ahead of the migration itself.

Writing a pid to ``cgroup.procs`` takes the kernel's global threadgroup lock for writing, and
the first writer after a quiet spell waits an RCU grace period for it (``rcu_sync``; 10-15 ms
on a loaded 2-core VM, against 0.05 ms for a write right after another). A container's shim
moves the new init into its cgroup while the init sets up, and the init waits for that move,
so the grace period sat on every start's critical path. :func:`prime_migration` writes the pid
of a single-threaded helper (the fork server) into the cgroup it already is in (moving nothing)
from a background thread as a start begins: the grace period runs while the engine and the shim
do their part, and the shim's write finds the lock's fast path ready.
"""

from __future__ import annotations

import threading
from pathlib import Path

__all__ = ["prime_migration"]

_ROOT = Path("/sys/fs/cgroup")
_procs: dict[int, Path | None] = {}


def _procs_file(pid: int) -> Path | None:
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


def _write(path: Path, pid: int) -> None:
    try:
        with open(path, "w") as f:
            f.write(str(pid))
    except OSError:
        pass  # only an optimisation: a cgroup we may not write to costs the start nothing


def prime_migration(pid: int) -> None:
    """Begin the kernel's grace period for the next cgroup migration now, without waiting.

    ``pid``: a single-threaded process that stays where it is (it is "moved" into its own
    cgroup); looked up once per pid."""
    if pid not in _procs:
        _procs[pid] = _procs_file(pid)
    path = _procs[pid]
    if path is not None:
        threading.Thread(target=_write, args=(path, pid), name="cgroup-prime", daemon=True).start()

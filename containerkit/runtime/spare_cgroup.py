"""The cgroup a spare shim makes ahead for the init it forks ahead (cgroup v1 hierarchies).

A start's shim made the container's cgroup in every v1 hierarchy (a dozen mkdirs) and moved
the init into each while the init waited for it before its cgroup namespace. A spare shim (see
:mod:`~containerkit.runtime.spawner`) now makes ``containerkit/spare-<its pid>.<its start
time>`` in every v1 hierarchy while it is idle (:func:`make`), and the init it forks ahead
moves itself in (:func:`join`: a thread moving itself takes no global lock, see
:meth:`~containerkit.linux.cgroups.CgroupManager.join_this_thread`); the shim renames it to the
container's cgroup (:meth:`~containerkit.linux.cgroups.CgroupManager.claim`), then makes the
rest (the v2 tree, which refuses renames), writes the container's limits and device rules and
moves the init where it is not yet, all before the init goes on, as before. On a v2-only host
there is no spare cgroup.

A spare shim removes its spare cgroup when it discards its init; one left by a killed spare
(nothing runs in it: its init leaves at EOF) is removed by :func:`sweep`, from the Engine's
recovery. The start time in the name tells a shim that is gone from a later process that got
its pid: without it, such a cgroup stayed until that process ended too.
"""

from __future__ import annotations

import contextlib
import os

from containerkit.errors import ContainerkitError
from containerkit.linux import proc
from containerkit.linux.cgroups import list_cgroups, open_cgroup, probe

__all__ = ["CGROUP_PARENT", "join", "make", "name_for", "remove", "shim_of", "sweep"]

CGROUP_PARENT = "containerkit"
"""The cgroup every container's own cgroup sits in, below each hierarchy's root."""
_PREFIX = "spare-"


def name_for(shim_pid: int, start_time: int) -> str:
    """The spare cgroup of the spare shim ``shim_pid`` that started at ``start_time`` (clock
    ticks since boot, as :func:`~containerkit.linux.proc.start_time`)."""
    return f"{CGROUP_PARENT}/{_PREFIX}{shim_pid}.{start_time}"


def shim_of(name: str) -> tuple[int, int | None] | None:
    """(pid, start time) of the spare shim whose spare cgroup is ``name`` (its last component
    is enough); the start time is None in a name without one (made before names had it); None
    when ``name`` is not a spare cgroup's."""
    suffix = name.rpartition("/")[2]
    if not suffix.startswith(_PREFIX):
        return None
    pid, dot, start = suffix[len(_PREFIX) :].partition(".")
    if not pid.isdigit() or (dot and not start.isdigit()):
        return None
    return int(pid), int(start) if dot else None


def make() -> str | None:
    """Make this spare shim's cgroup in every v1 hierarchy, for the init it forks next to
    :func:`join`; its name, or None on a v2-only host or when that fails (the shim then makes
    the cgroup)."""
    try:
        if probe() == "unified":
            return None
        pid = os.getpid()
        started = proc.start_time(pid)
        if started is None:
            return None
        name = name_for(pid, started)
        try:
            open_cgroup(name, mode="legacy").create()  # the v1 hierarchies, without the v2 tree
        except BaseException:
            remove(name)
            raise
    except (OSError, ContainerkitError):
        return None
    return name


def join(name: str) -> bool:
    """Move the calling (single-threaded) process into the spare cgroup ``name``; whether it
    is in it everywhere."""
    try:
        open_cgroup(name, mode="legacy").join_this_thread()
    except (OSError, ContainerkitError):
        return False
    return True


def remove(name: str) -> None:
    """Remove the spare cgroup ``name`` wherever it is left (best effort: :func:`sweep` retries)."""
    with contextlib.suppress(OSError, ContainerkitError):
        open_cgroup(name, mode="legacy").destroy()


def sweep() -> list[str]:
    """Remove the spare cgroups whose spare shim is gone; their names."""
    removed = []
    for name in list_cgroups(CGROUP_PARENT):
        shim = shim_of(name)
        if shim is None:
            continue
        pid, started = shim
        if started is not None:
            if proc.is_alive(pid, started):
                continue
        elif proc.start_time(pid) is not None:
            continue  # an old name: its shim runs, or its pid was reused (a later sweep takes it)
        remove(name)
        removed.append(name)
    return removed

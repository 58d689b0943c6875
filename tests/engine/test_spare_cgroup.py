"""The spare cgroup a spare shim makes ahead (runtime.spare_cgroup), on this host's v1 hierarchies.

The spare shim moves its prepared init into ``containerkit/spare-<its pid>``; the shim that takes
a start renames it to the container's cgroup. Nothing of it may outlive an Engine's close, and
what a killed Engine leaves is removed by the next Engine's recovery.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import containerkit as ck
from containerkit.linux import proc
from containerkit.linux.cgroups import probe
from containerkit.runtime import spare_cgroup

IMAGE = "example/busybox:latest"
ROOT = Path("/sys/fs/cgroup")


@pytest.fixture(autouse=True)
def _v1_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: containers use namespaces, mounts and cgroups")
    if probe() == "unified":
        pytest.skip("no cgroup v1 hierarchy here: a v2-only host makes no spare cgroup")


def _v1_hierarchies() -> list[Path]:
    return [h for h in ROOT.iterdir() if h.name != "unified" and (h / "cgroup.procs").exists()]


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError):
        return None


def _spares_below(ancestor: int) -> dict[str, set[str]]:
    """The spare cgroups (name -> hierarchies) whose spare shim descends from ``ancestor``
    (other engines of the test session have spares of their own)."""
    found: dict[str, set[str]] = {}
    for hierarchy in _v1_hierarchies():
        for entry in (hierarchy / "containerkit").glob("spare-*"):
            shim = spare_cgroup.shim_of(entry.name)
            pid: int | None = None if shim is None else shim[0]
            for _ in range(4):
                pid = None if pid is None else _parent(pid)
                if pid == ancestor:
                    found.setdefault(f"containerkit/{entry.name}", set()).add(hierarchy.name)
                    break
    return found


def _ready_spares(ancestor: int) -> set[str]:
    """Those of :func:`_spares_below` made in every v1 hierarchy, with their init moved in."""
    every = {h.name for h in _v1_hierarchies()}
    return {name for name, where in _spares_below(ancestor).items() if where == every and _procs(name)}


def _shim_pid(name: str) -> int:
    shim = spare_cgroup.shim_of(name)
    assert shim is not None, name
    return shim[0]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _left(names: set[str]) -> list[str]:
    return [str(h / name) for name in names for h in _v1_hierarchies() if (h / name).exists()]


def _eventually(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_the_init_runs_in_its_own_cgroup_and_no_spare_outlives_close(
    tmp_path: Path, busybox_rootfs_tar: Path
) -> None:
    seen: set[str] = set()
    spawners: set[int] = set()
    with ck.Engine(root=tmp_path / "root") as engine:
        engine.images.import_rootfs(busybox_rootfs_tar, IMAGE, config={"Cmd": ["sh"]})
        for _ in range(3):  # the first start may come before the fork server has a spare
            container = engine.containers.run(IMAGE, ["sleep", "30"], network="none")
            try:
                assert container.pid
                for line in Path(f"/proc/{container.pid}/cgroup").read_text().splitlines():
                    assert line.split(":", 2)[2] == f"/containerkit/{container.id}", line  # v2 too
            finally:
                container.remove(force=True)
            # the next spare's cgroup, in every v1 hierarchy, with the prepared init in it (a
            # spare is the fork server's child; the session's engine has spares of its own)
            assert engine.spawner is not None and engine.spawner.pid is not None
            spawner = engine.spawner.pid
            spawners.add(spawner)
            _eventually(lambda: _ready_spares(spawner) != set(), "the next spare's cgroup")  # noqa: B023
            seen |= _ready_spares(spawner)
        taken = seen - {name for pid in spawners for name in _spares_below(pid)}
        assert taken, "no start took a spare cgroup"
        assert not _left(taken)  # renamed to the container's, removed with it
    assert not _left(seen)


_CRASHING = textwrap.dedent(
    """
    import os, sys, time
    import containerkit as ck
    engine = ck.Engine(root=sys.argv[1])
    engine.images.import_rootfs(sys.argv[2], "example/busybox:latest", config={"Cmd": ["sh"]})
    container = engine.containers.run("example/busybox:latest", ["true"], network="none")
    container.wait(timeout=30)
    container.remove()
    print("ready", flush=True)
    time.sleep(60)
    """
)


def test_recovery_removes_what_a_killed_engine_and_spare_left(
    tmp_path: Path, busybox_rootfs_tar: Path
) -> None:
    root = tmp_path / "root"
    process = subprocess.Popen(
        [sys.executable, "-c", _CRASHING, str(root), str(busybox_rootfs_tar)],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    left: set[str] = set()
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"ready"
        _eventually(lambda: bool(_spares_below(process.pid)), "the crashing engine's spare cgroup")
        left = set(_spares_below(process.pid))
        os.killpg(process.pid, signal.SIGKILL)  # the engine, its fork servers, their spares
        process.wait()
        _eventually(lambda: all(not _alive(_shim_pid(name)) for name in left), "the spares to be gone")
        _eventually(lambda: all(not _procs(name) for name in left), "the orphaned inits to leave")
        # Left for recovery to find, unless an Engine another test opened meanwhile swept them
        # first (every Engine sweeps at open); test_sweep_keeps_the_spare_cgroup_of_a_live_shim
        # sweeps dead shims' cgroups made by hand, so that sweep is checked either way
        with ck.Engine(root=root):
            assert not _left(left)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for name in left:  # the test failed: leave nothing behind anyway
            spare_cgroup.remove(name)


def _procs(name: str) -> list[str]:
    found = []
    for hierarchy in _v1_hierarchies():
        with contextlib.suppress(FileNotFoundError):
            found += (hierarchy / name / "cgroup.procs").read_text().split()
    return found


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_sweep_keeps_the_spare_cgroup_of_a_live_shim() -> None:
    me = os.getpid()
    started = proc.start_time(me)
    assert started is not None
    live = spare_cgroup.name_for(me, started)
    dead = spare_cgroup.name_for(_dead_pid(), started)
    # a shim that is gone whose pid a later process (this one) got: its start time tells them apart
    reused = spare_cgroup.name_for(me, started - 1)
    # names from before they held a start time: the pid alone decides
    old_live, old_dead = f"containerkit/spare-{me}", f"containerkit/spare-{_dead_pid()}"
    names = (live, dead, reused, old_live, old_dead)
    try:
        for name in names:
            for hierarchy in _v1_hierarchies():
                (hierarchy / name).mkdir(parents=True)
        swept = spare_cgroup.sweep()
        assert {dead, reused, old_dead} <= set(swept)
        assert not {live, old_live} & set(swept)
        assert not _left({dead, reused, old_dead})
        assert len(_left({live})) == len(_v1_hierarchies())
        assert len(_left({old_live})) == len(_v1_hierarchies())
    finally:
        for name in names:
            spare_cgroup.remove(name)
    assert not _left(set(names))


def test_spare_cgroup_names_carry_the_shim_and_its_start_time() -> None:
    assert spare_cgroup.shim_of(spare_cgroup.name_for(42, 1234)) == (42, 1234)
    assert spare_cgroup.shim_of("containerkit/spare-42") == (42, None)
    for other in ("containerkit/abc123", "spare-x.1", "spare-42.", "spare-42.x", "spare-"):
        assert spare_cgroup.shim_of(other) is None, other

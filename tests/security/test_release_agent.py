"""Issue 9, finding 7: with ``cap_add=["SYS_ADMIN"]`` the classic cgroup v1 ``release_agent``
escape must not reach the host, and no process of a container is in a host root cgroup.

The escape: mount a v1 hierarchy inside the container; if the container sits in that
hierarchy's root cgroup, the mount shows the root's ``release_agent``, which the kernel runs
as host root when a cgroup with ``notify_on_release`` empties. In its own cgroup (the root of
its cgroup namespace) the container sees no ``release_agent``, and cannot make a new hierarchy.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import containerkit as ck
from containerkit.linux.mounts import cgroup_hierarchies

from .conftest import IMAGE, run_to_exit

WATCH_SECONDS = 3.0

# each hierarchy the kernel may have; one the host has not mounted cannot be made from inside
_HIERARCHIES = (
    "memory cpu cpuacct cpuset devices freezer blkio pids net_cls net_prio perf_event hugetlb rdma misc"
)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Path]:
    """The attacker's payload, at a host path it is told; should the attack succeed, the host's
    ``release_agent`` files that name it are reset afterwards."""
    path = tmp_path / "agent.sh"
    path.write_text(f"#!/bin/sh\necho escaped > {tmp_path / 'escaped'}\n")
    path.chmod(0o755)
    yield path
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        release_agent = hierarchy / "release_agent"
        with contextlib.suppress(OSError):
            if release_agent.read_text().strip() == str(path):
                release_agent.write_text("\n")


def test_release_agent_escape_with_sys_admin_does_not_reach_the_host(
    engine: ck.Engine, runtime: str, agent: Path
) -> None:
    escaped = agent.parent / "escaped"
    script = f"""
mkdir /tmp/cg
for h in {_HIERARCHIES} none,name=systemd; do
  if mount -t cgroup -o $h cgroup /tmp/cg 2>/dev/null; then
    echo MOUNTED $h
    if [ -e /tmp/cg/release_agent ]; then
      echo AGENT-VISIBLE $h
      mkdir -p /tmp/cg/x && echo 1 > /tmp/cg/x/notify_on_release
      echo {agent} > /tmp/cg/release_agent && echo AGENT-SET $h
      sh -c 'echo $$ > /tmp/cg/x/cgroup.procs'
      rmdir /tmp/cg/x 2>/dev/null
    fi
    umount /tmp/cg
  fi
done
echo DONE
"""
    _code, out = run_to_exit(engine, runtime, ["sh", "-c", script], network="none", cap_add=["SYS_ADMIN"])
    deadline = time.monotonic() + WATCH_SECONDS
    while time.monotonic() < deadline:
        assert not escaped.exists(), f"the release agent ran on the host: {out}"
        time.sleep(0.1)
    assert "DONE" in out, out
    assert "MOUNTED" in out, out  # SYS_ADMIN does let it mount a hierarchy: the attack is real
    assert "AGENT-VISIBLE" not in out, out


def test_no_process_is_left_in_a_host_root_cgroup(engine: ck.Engine, runtime: str) -> None:
    """Inside, every line is ``/`` (the cgroup namespace root); from the host, every hierarchy
    (the v2 one too) places the init under ``containerkit/<id>``."""
    container = engine.containers.run(IMAGE, ["sleep", "60"], runtime=runtime, network="none")
    try:
        inside = container.exec(["cat", "/proc/self/cgroup"])
        assert inside.exit_code == 0, inside
        lines = inside.stdout.decode().split()
        assert lines and all(line.split(":", 2)[2] == "/" for line in lines), lines
        expected = f"/containerkit/{container.id}"
        mounted = cgroup_hierarchies()
        assert container.pid is not None
        host_view = _cgroups_of(container.pid)
        assert set(host_view) >= set(mounted), (host_view, mounted)
        wrong = {key: path for key, path in host_view.items() if key in mounted and path != expected}
        assert wrong == {}, f"init {container.pid} outside {expected}: {wrong}"
    finally:
        container.remove(force=True)


def _cgroups_of(pid: int) -> dict[str, str]:
    """``/proc/<pid>/cgroup`` read from the host: hierarchy key (as ``cgroup_hierarchies``) -> path."""
    found = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _hid, controllers, path = line.split(":", 2)
        found[",".join(sorted(c for c in controllers.split(",") if c))] = path
    return found


def test_exec_joins_every_hierarchy(engine: ck.Engine, runtime: str) -> None:
    """An exec'd process sits with the init in every hierarchy, never in a host root cgroup."""
    container = engine.containers.run(IMAGE, ["sleep", "60"], runtime=runtime, network="none")
    try:
        expected = f"/containerkit/{container.id}"
        mounted = cgroup_hierarchies()
        handle = container.exec(["sleep", "30"], stream=True)
        try:
            children = _exec_children(container)
            assert children, "the exec'd process did not show up"
            for pid in children:
                view = _cgroups_of(pid)
                wrong = {key: path for key, path in view.items() if key in mounted and path != expected}
                assert wrong == {}, f"exec'd pid {pid} outside {expected}: {wrong}"
        finally:
            container.kill()
            handle.wait()
            container.wait(timeout=30)  # exited first: a forced remove racing the shim's cleanup can fail
    finally:
        container.remove(force=True)


def _exec_children(container: ck.Container) -> list[int]:
    """Host pids of the processes in the container's pid namespace other than its init (found
    through /proc, not through the cgroup, which is what is under test)."""
    init = container.pid
    assert init is not None
    namespace = os.readlink(f"/proc/{init}/ns/pid")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != init:
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{entry}/ns/pid") == namespace:
                        found.append(int(entry))
        if found:
            return found
        time.sleep(0.05)
    return []

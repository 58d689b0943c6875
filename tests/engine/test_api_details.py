"""Engine behaviour behind docker API details (issue 12): kill, volume drivers, update."""

from __future__ import annotations

from pathlib import Path

import pytest

import containerkit as ck

from .conftest import IMAGE


def test_sigkill_returns_with_the_exit_recorded(engine: ck.Engine) -> None:
    for paused in (False, True):
        c = engine.containers.run(IMAGE, ["sleep", "300"])
        try:
            if paused:
                c.pause()
            c.kill()
            # no wait in between: the exit is recorded when kill returns
            assert (c.status, c.exit_code) == ("exited", 137)
        finally:
            c.remove(force=True)
    script = "trap 'exit 3' TERM; echo ready; while true; do sleep 0.1; done"
    c = engine.containers.run(IMAGE, ["sh", "-c", script])
    try:
        for _stream, _chunk in c.follow_output():
            break  # "ready": the trap is set
        c.kill("SIGTERM")  # other signals do not wait (the process may handle them)
        assert c.wait(timeout=30) == 3
    finally:
        c.remove(force=True)


def _cgroup_file(container_id: str, controller: str, name: str) -> str:
    # cgroup v1 here (one hierarchy per controller); the fake v2 tree is tests/linux's
    path = Path("/sys/fs/cgroup") / controller / "containerkit" / container_id / name
    if not path.parent.exists():
        pytest.skip(f"no cgroup v1 {controller} hierarchy at {path.parent}")
    return path.read_text().strip()


def test_update_applies_limits_live_and_keeps_them(engine: ck.Engine) -> None:
    c = engine.containers.run(IMAGE, ["sleep", "300"], resources=ck.Resources(memory="64m"))
    try:
        c.update(memory="32m", memory_swap="48m", cpus=0.5, cpu_shares=512, pids=50)
        assert _cgroup_file(c.id, "memory", "memory.limit_in_bytes") == str(32 << 20)
        assert _cgroup_file(c.id, "memory", "memory.memsw.limit_in_bytes") == str(48 << 20)
        assert _cgroup_file(c.id, "cpu", "cpu.cfs_quota_us") == "50000"
        assert _cgroup_file(c.id, "cpu", "cpu.shares") == "512"
        assert _cgroup_file(c.id, "pids", "pids.max") == "50"
        expected = ck.Resources(memory="32m", memory_swap="48m", cpus=0.5, cpu_shares=512, pids=50)
        assert engine.containers.get(c.id).spec.resources == expected
        c.update(restart_policy=ck.RestartPolicy(name="on-failure", maximum_retry_count=2))
        assert engine.containers.get(c.id).spec.restart_policy.name == "on-failure"
        assert engine.containers.get(c.id).spec.resources == expected  # the rest as it was
        c.restart(timeout=0)
        assert _cgroup_file(c.id, "memory", "memory.limit_in_bytes") == str(32 << 20)
        assert _cgroup_file(c.id, "pids", "pids.max") == "50"
        with pytest.raises(ck.errors.InvalidArgument, match="cpu_shares"):
            c.update(cpu_shares=1)
        with pytest.raises(ck.errors.InvalidArgument, match="memory_swap"):
            c.update(memory="64m")  # above the memory+swap already set, as docker refuses
        assert _cgroup_file(c.id, "memory", "memory.limit_in_bytes") == str(32 << 20)
    finally:
        c.remove(force=True)


def test_update_below_the_memory_in_use_is_refused(engine: ck.Engine) -> None:
    script = "dd if=/dev/zero of=/dev/shm/fill bs=1M count=40 2>/dev/null; echo filled; sleep 300"
    c = engine.containers.run(IMAGE, ["sh", "-c", script], resources=ck.Resources(memory="128m"))
    try:
        for _stream, _chunk in c.follow_output():
            break  # "filled": 40 MiB of tmpfs pages charged to the container, no swap to go to
        with pytest.raises(ck.errors.Conflict, match="below what the container uses now"):
            c.update(memory="16m", memory_swap="16m")
        # nothing changed: the cgroup and the spec keep the old limit
        assert _cgroup_file(c.id, "memory", "memory.limit_in_bytes") == str(128 << 20)
        assert engine.containers.get(c.id).spec.resources.memory == 128 << 20
        assert c.status == "running"
    finally:
        c.remove(force=True)


def test_update_of_a_stopped_container_applies_at_start(engine: ck.Engine) -> None:
    c = engine.containers.create(image=IMAGE, command=["sleep", "300"])
    try:
        c.update(pids=20)
        c.start()
        assert _cgroup_file(c.id, "pids", "pids.max") == "20"
    finally:
        c.remove(force=True)

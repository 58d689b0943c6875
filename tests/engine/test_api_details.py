"""Engine behaviour behind docker API details (issue 12): kill, volume drivers, update."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

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
        c.update(cpuset_cpus="0", cpuset_mems="0")
        assert _cgroup_file(c.id, "cpuset", "cpuset.cpus") == "0"
        assert _cgroup_file(c.id, "cpuset", "cpuset.mems") == "0"
        c.restart(timeout=0)
        assert _cgroup_file(c.id, "memory", "memory.limit_in_bytes") == str(32 << 20)
        assert _cgroup_file(c.id, "pids", "pids.max") == "50"
        assert _cgroup_file(c.id, "cpuset", "cpuset.cpus") == "0"
        with pytest.raises(ck.errors.InvalidArgument, match=r"cpuset\.cpus"):
            c.update(cpuset_cpus="4096")  # a CPU the host does not have: the kernel's EINVAL
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


def _mounted(path: str) -> list[str]:
    return [line for line in Path("/proc/mounts").read_text().splitlines() if line.split()[1] == path]


def test_volume_driver_opts_tmpfs_mounted_while_used(engine: ck.Engine) -> None:
    opts = {"type": "tmpfs", "device": "tmpfs", "o": "size=10m,mode=0770"}
    volume = engine.volumes.create("dapi-tmpfs", driver_opts=opts)
    assert dict(volume.options) == opts
    mount = ck.Mount(type="volume", source=volume.name, target="/data")
    try:
        first = engine.containers.run(IMAGE, ["sh", "-c", "echo kept > /data/f; sleep 300"], mounts=[mount])
        second = engine.containers.run(IMAGE, ["sleep", "300"], mounts=[mount])
        try:
            (line,) = _mounted(volume.mountpoint)
            assert (
                line.split()[2] == "tmpfs" and "size=10240k" in line and "nosuid" in line and "nodev" in line
            )
            assert (
                second.exec(["sh", "-c", "sleep 0.2; cat /data/f; stat -c %a /data"]).stdout == b"kept\n770\n"
            )
            assert second.exec(["df", "-k", "/data"]).stdout.split()[-5] == b"10240"
            first.stop(timeout=0)
            assert len(_mounted(volume.mountpoint)) == 1  # the second still uses it
            second.stop(timeout=0)
            assert _mounted(volume.mountpoint) == []  # the last user stopped: gone, with its data
            second.start()
            assert _mounted(volume.mountpoint) != []
            assert second.exec(["ls", "/data"]).stdout == b""
        finally:
            first.remove(force=True)
            second.remove(force=True)
        assert _mounted(volume.mountpoint) == []
    finally:
        engine.volumes.remove(volume.name)
    assert not Path(volume.mountpoint).parent.exists()


def test_volume_driver_opts_bind_of_a_host_path(engine: ck.Engine, tmp_path: Path) -> None:
    host = tmp_path / "shared"
    host.mkdir()
    (host / "from-host").write_text("hello\n")
    volume = engine.volumes.create(
        "dapi-bind", driver_opts={"type": "none", "o": "bind", "device": str(host)}
    )
    try:
        c = engine.containers.run(
            IMAGE,
            ["sh", "-c", "cat /data/from-host; echo back > /data/from-container"],
            mounts=[ck.Mount(type="volume", source=volume.name, target="/data")],
        )
        try:
            assert c.wait(timeout=30) == 0
            assert c.logs() == b"hello\n"
        finally:
            c.remove(force=True)
        assert (host / "from-container").read_text() == "back\n"
        assert _mounted(volume.mountpoint) == []
    finally:
        engine.volumes.remove(volume.name)
    assert sorted(p.name for p in host.iterdir()) == ["from-container", "from-host"]  # host files stay


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"type": "tmpfs", "device": "tmpfs", "o": "size=1m,suid"}, "'suid' is not allowed"),
        ({"type": "tmpfs", "device": "tmpfs", "o": "size=1m,exec"}, "'exec' is not allowed"),
        ({"type": "tmpfs", "device": "tmpfs", "o": "size=1m,uid=0,dev"}, "'dev' is not allowed"),
        ({"type": "tmpfs", "device": "tmpfs", "o": "size=1m;mode=4777"}, "not allowed"),
        ({"type": "tmpfs", "device": "/dev/sda1", "o": "size=1m"}, "device"),
        ({"type": "ext4", "device": "/dev/sda1"}, "type: local volumes are tmpfs or none"),
        ({"type": "none", "o": "bind,suid", "device": "/tmp"}, "bind or rbind, and ro"),
        ({"type": "none", "o": "ro", "device": "/tmp"}, "bind or rbind"),
        ({"type": "none", "o": "bind", "device": "relative/path"}, "absolute host path"),
        ({"type": "none", "o": "bind", "device": "/no/such/dir"}, "does not exist: /no/such/dir"),
        ({"type": "none", "o": "bind"}, 'missing required option: "device"'),
        ({"type": "tmpfs", "device": "tmpfs", "propagation": "shared"}, "invalid option: 'propagation'"),
    ],
)
def test_volume_driver_opts_are_an_allow_list(engine: ck.Engine, opts: dict[str, str], message: str) -> None:
    with pytest.raises(ck.errors.InvalidArgument, match=re.escape(message)):
        engine.volumes.create("dapi-refused", driver_opts=opts)
    with pytest.raises(ck.errors.NotFound):
        engine.volumes.get("dapi-refused")  # nothing half-made


def test_unknown_volume_driver_is_not_found(engine: ck.Engine) -> None:
    with pytest.raises(
        ck.errors.NotFound, match='error looking up volume plugin nfsplugin: plugin "nfsplugin" not found'
    ):
        engine.volumes.create("dapi-plugin", driver="nfsplugin")


def _read_until(stream: Any, marker: bytes) -> bytes:
    seen = b""
    for _name, chunk in stream:
        seen += chunk
        if marker in seen:
            return seen
    raise AssertionError(f"the output ended before {marker!r}: {seen!r}")


def test_detach_keys_end_an_attachment_and_leave_the_container_running(engine: ck.Engine) -> None:
    c = engine.containers.run(IMAGE, ["sh"], tty=True, stdin_open=True)
    try:
        with c.attach(stdin=True) as stream:
            stream.write_stdin(b"echo one\n")
            _read_until(stream, b"one\r\n")
            stream.write_stdin(b"\x10")  # the start of the sequence is held, not sent
            stream.write_stdin(b"\x11")
            assert stream.detached
            assert list(stream) == []  # the output ended
        assert c.status == "running"
        with c.attach(stdin=True, detach_keys="ctrl-x") as stream:
            stream.write_stdin(b"echo two\n")
            _read_until(stream, b"two\r\n")
            stream.write_stdin(b"\x18")
            assert stream.detached
        assert c.status == "running"
        with pytest.raises(ck.errors.InvalidArgument, match=r"Invalid detach keys \(ctrl-\) provided"):
            c.attach(stdin=True, detach_keys="ctrl-")
    finally:
        c.remove(force=True)
    plain = engine.containers.run(IMAGE, ["od", "-An", "-c"], stdin_open=True, stdin_once=True)
    try:
        with plain.attach(stdin=True) as stream:
            stream.write_stdin(b"\x10\x11")  # no tty: the keys are data, as in moby
            assert not stream.detached
            stream.close_stdin()
            assert plain.wait(timeout=30) == 0
        assert plain.logs().split() == [b"020", b"021"]
    finally:
        plain.remove(force=True)


def test_update_of_a_runc_container_holds_across_a_restart(engine: ck.Engine) -> None:
    from containerkit.runtime import runc

    if not runc.available("runc"):
        pytest.skip(f"runc: {runc.unavailable_reason('runc')}")
    c = engine.containers.run(IMAGE, ["sleep", "300"], runtime="runc")
    try:
        c.update(pids=33, memory="48m")
        assert _cgroup_file(c.id, "pids", "pids.max") == "33"
        c.restart(timeout=0)  # runc applies the bundle's limits at the start
        assert _cgroup_file(c.id, "pids", "pids.max") == "33"
        assert _cgroup_file(c.id, "memory", "memory.limit_in_bytes") == str(48 << 20)
    finally:
        c.remove(force=True)

"""cgroup v1 manager: limits for real on this host's v1 hierarchies, exact files on a fake tree."""

from __future__ import annotations

import errno
import functools
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from containerkit.errors import InvalidArgument, Unavailable
from containerkit.linux.cgroups import CgroupManager, CgroupStats, Mode, open_cgroup, probe, remove_if_empty
from containerkit.linux.cgroups import base as cgroup_base
from containerkit.spec import Resources
from tests.linux._cgroup_procs import BUSY, Spawner, eventually, go, proc_state
from tests.linux._fake_cgroupfs import FakeCgroupfs

ROOT = Path("/sys/fs/cgroup")
UNLIMITED_V1 = "9223372036854771712"

# -- fake tree: exact file contents -----------------------------------------------------------


@pytest.fixture
def fake(tmp_path: Path) -> FakeCgroupfs:
    fs = FakeCgroupfs.v1(tmp_path, unified=True)
    fs.cgroup("containerkit/c1")
    return fs


def _open(fake: FakeCgroupfs, mode: Mode = "hybrid") -> CgroupManager:
    return open_cgroup("containerkit/c1", root=fake.root, mode=mode)


def test_create_makes_the_dir_in_every_hierarchy(tmp_path: Path) -> None:
    FakeCgroupfs.v1(tmp_path, unified=True)
    open_cgroup("containerkit/c1", root=tmp_path, mode="hybrid").create()
    for hierarchy in ("memory", "cpu", "cpuacct", "pids", "freezer", "unified"):
        assert (tmp_path / hierarchy / "containerkit/c1").is_dir(), hierarchy
    open_cgroup("containerkit/c2", root=tmp_path, mode="legacy").create()
    assert not (tmp_path / "unified/containerkit/c2").exists()


def test_apply_writes_exact_values(fake: FakeCgroupfs) -> None:
    _open(fake).apply(Resources(memory="64m", cpus=0.5, cpu_shares=512, pids=7))
    assert fake.read("memory/containerkit/c1/memory.limit_in_bytes") == str(64 << 20)
    assert fake.read("memory/containerkit/c1/memory.memsw.limit_in_bytes") == str(128 << 20)
    assert fake.read("cpu/containerkit/c1/cpu.cfs_period_us") == "100000"
    assert fake.read("cpu/containerkit/c1/cpu.cfs_quota_us") == "50000"
    assert fake.read("cpu/containerkit/c1/cpu.shares") == "512"
    assert fake.read("pids/containerkit/c1/pids.max") == "7"


def test_apply_memory_swap_total(fake: FakeCgroupfs) -> None:
    _open(fake).apply(Resources(memory="64m", memory_swap="96m"))
    assert fake.read("memory/containerkit/c1/memory.memsw.limit_in_bytes") == str(96 << 20)
    with pytest.raises(InvalidArgument, match="memory_swap"):
        _open(fake).apply(Resources(memory="64m", memory_swap="32m"))


def test_apply_none_means_unlimited(fake: FakeCgroupfs) -> None:
    _open(fake).apply(Resources(memory="64m", cpus=2, pids=3, cpu_shares=100))
    _open(fake).apply(Resources())
    assert fake.read("memory/containerkit/c1/memory.limit_in_bytes") == "-1"
    assert fake.read("memory/containerkit/c1/memory.memsw.limit_in_bytes") == "-1"
    assert fake.read("cpu/containerkit/c1/cpu.cfs_quota_us") == "-1"
    assert fake.read("pids/containerkit/c1/pids.max") == "max"
    assert fake.read("cpu/containerkit/c1/cpu.shares") == "100"


def _record_writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    names: list[str] = []
    original = cgroup_base.write

    def recording(path: Path, value: str | int) -> None:
        names.append(path.name)
        original(path, value)

    monkeypatch.setattr("containerkit.linux.cgroups.v1.write", recording)
    return names


def test_memory_write_order_keeps_memsw_above_limit(
    fake: FakeCgroupfs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel rejects memsw < limit at any moment, so lowering and raising go in opposite orders."""
    fake.write("memory/containerkit/c1/memory.limit_in_bytes", str(1 << 30))
    fake.write("memory/containerkit/c1/memory.memsw.limit_in_bytes", str(2 << 30))
    names = _record_writes(monkeypatch)
    _open(fake).apply(Resources(memory="64m"))  # lowering: limit first
    assert names[:2] == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    names.clear()
    _open(fake).apply(Resources(memory="1g"))  # raising: memsw first
    assert names[:2] == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
    names.clear()
    _open(fake).apply(Resources())  # to unlimited: memsw first
    assert names[:2] == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]


def test_apply_missing_hierarchy_names_it_and_writes_nothing(tmp_path: Path) -> None:
    fs = FakeCgroupfs.v1(tmp_path, controllers=("memory", "cpu", "cpuacct", "freezer"))
    fs.cgroup("c1")
    cgroup = open_cgroup("c1", root=tmp_path, mode="legacy")
    with pytest.raises(Unavailable, match=f"'pids'.*{tmp_path}/pids"):
        cgroup.apply(Resources(memory="64m", pids=5))
    assert fs.read("memory/c1/memory.limit_in_bytes") == UNLIMITED_V1
    cgroup.apply(Resources(memory="64m"))
    assert fs.read("memory/c1/memory.limit_in_bytes") == str(64 << 20)


def test_apply_swap_without_swap_accounting(tmp_path: Path) -> None:
    fs = FakeCgroupfs.v1(tmp_path)
    fs.cgroup("c1", memsw=False)
    cgroup = open_cgroup("c1", root=tmp_path, mode="legacy")
    with pytest.raises(Unavailable, match="memsw"):
        cgroup.apply(Resources(memory="64m", memory_swap="128m"))
    cgroup.apply(Resources(memory="64m"))  # docker's default swap is skipped, not an error
    assert fs.read("memory/c1/memory.limit_in_bytes") == str(64 << 20)


def test_stats_and_oom_count_parsing(fake: FakeCgroupfs) -> None:
    fake.write("memory/containerkit/c1/memory.usage_in_bytes", "1234\n")
    fake.write("cpuacct/containerkit/c1/cpuacct.usage", "5000\n")
    fake.write("pids/containerkit/c1/pids.current", "3\n")
    fake.write("memory/containerkit/c1/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert _open(fake).stats() == CgroupStats(
        memory_usage=1234, memory_limit=None, cpu_usage_ns=5000, pids=3, pids_limit=None
    )
    assert _open(fake).oom_kill_count() == 2
    fake.write("memory/containerkit/c1/memory.limit_in_bytes", "33554432\n")
    fake.write("pids/containerkit/c1/pids.max", "5\n")
    stats = _open(fake).stats()
    assert (stats.memory_limit, stats.pids_limit) == (32 << 20, 5)


def test_no_memory_hierarchy_means_zero_ooms(tmp_path: Path) -> None:
    fs = FakeCgroupfs.v1(tmp_path, controllers=("cpu", "cpuacct"))
    fs.cgroup("c1")
    assert open_cgroup("c1", root=tmp_path, mode="legacy").oom_kill_count() == 0


def test_join_this_thread_writes_tasks_in_v1_and_procs_in_the_v2_tree(fake: FakeCgroupfs) -> None:
    (fake.root / "unified/containerkit/c1").mkdir(parents=True)
    fake.write("unified/containerkit/c1/cgroup.procs", "")
    _open(fake).join_this_thread()
    for controller in fake.controllers:
        assert fake.read(f"{controller}/containerkit/c1/tasks") == "0"
        assert fake.read(f"{controller}/containerkit/c1/cgroup.procs") == ""
    assert fake.read("unified/containerkit/c1/cgroup.procs") == "0"


# -- real v1 hierarchies ----------------------------------------------------------------------


@pytest.fixture
def spawn() -> Iterator[Spawner]:
    with Spawner() as spawner:
        yield spawner


@pytest.fixture
def real() -> Iterator[CgroupManager]:
    if os.geteuid() != 0:
        pytest.skip("needs root to create cgroups")
    if probe() == "unified":
        pytest.skip("no cgroup v1 hierarchies on this host")
    parent = f"cktest-{uuid.uuid4().hex[:12]}"
    cgroup = open_cgroup(f"{parent}/c")
    cgroup.create()
    try:
        yield cgroup
    finally:
        cgroup.destroy()
        assert remove_if_empty(parent)
        leaks = [h.name for h in ROOT.iterdir() if (h / parent).exists()]
        assert leaks == []


def _gone(pid: int) -> bool:
    try:
        return proc_state(pid) == "Z"
    except FileNotFoundError:
        return True


def _cpu_ns(cgroup: CgroupManager) -> int:
    return cgroup.stats().cpu_usage_ns


def test_real_join_this_thread_moves_a_single_threaded_process_everywhere(real: CgroupManager) -> None:
    """What a spare shim's prepared init does: it moves itself in, through v1's ``tasks``
    (no global lock, no RCU grace period) and the v2 tree's ``cgroup.procs``."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the forked child
        code = 0
        try:
            os.close(read_end)
            real.join_this_thread()
            os.write(write_end, Path("/proc/self/cgroup").read_bytes())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        lines = reader.read().decode().splitlines()
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    where = {line.split(":", 2)[1]: line.split(":", 2)[2] for line in lines}
    hierarchies = {h.name for h in ROOT.iterdir() if h.name != "unified" and (h / "cgroup.procs").exists()}
    assert len(where) >= len(hierarchies)
    assert all(path == f"/{real.name}" for path in where.values()), where


def test_real_memory_limit_oom_kills(real: CgroupManager, spawn: Spawner) -> None:
    real.apply(Resources(memory="32m"))
    assert real.stats().memory_limit == 32 << 20
    proc = spawn(python="import sys; sys.stdin.readline(); b = b'x' * (100 << 20)", stdin=True)
    real.add_process(proc.pid)
    go(proc)
    assert proc.wait(timeout=20) == -signal.SIGKILL
    assert real.oom_kill_count() >= 1


def test_real_pids_limit_stops_fork(real: CgroupManager, spawn: Spawner) -> None:
    real.apply(Resources(pids=5))
    forker = (
        "import os, sys, time\n"
        "sys.stdin.readline()\n"
        "ok, err = 0, 0\n"
        "for _ in range(10):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError as e:\n"
        "        err = e.errno\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "    ok += 1\n"
        "print(ok, err, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = spawn(python=forker, stdin=True)
    real.add_process(proc.pid)
    go(proc)
    assert proc.stdout is not None
    assert proc.stdout.readline().split() == ["4", str(errno.EAGAIN)]
    stats = real.stats()
    assert (stats.pids, stats.pids_limit) == (5, 5)
    assert len(real.pids()) == 5
    real.kill_all()
    assert real.pids() == []


def test_real_cpus_half(real: CgroupManager, spawn: Spawner) -> None:
    real.apply(Resources(cpus=0.5))
    cpu = real.paths["cpu"]
    assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
    assert (cpu / "cpu.cfs_period_us").read_text().strip() == "100000"
    proc = spawn(python=BUSY)
    real.add_process(proc.pid)
    time.sleep(0.1)
    start, t0 = _cpu_ns(real), time.monotonic()
    time.sleep(1.0)
    used = (_cpu_ns(real) - start) / ((time.monotonic() - t0) * 1e9)
    assert 0.05 < used <= 0.6


def test_real_freeze_thaw(real: CgroupManager, spawn: Spawner) -> None:
    proc = spawn(python=BUSY)
    real.add_process(proc.pid)
    start = _cpu_ns(real)
    assert eventually(lambda: _cpu_ns(real) > start + 20_000_000)
    real.freeze()
    assert real.is_frozen()
    assert (real.paths["freezer"] / "freezer.state").read_text().strip() == "FROZEN"
    assert proc_state(proc.pid) != "R"
    frozen_at = _cpu_ns(real)
    time.sleep(0.2)
    assert _cpu_ns(real) - frozen_at < 5_000_000
    real.thaw()
    assert not real.is_frozen()
    assert eventually(lambda: _cpu_ns(real) > frozen_at + 20_000_000)


def test_real_memory_usage(real: CgroupManager, spawn: Spawner) -> None:
    hold = (
        "import sys, time; sys.stdin.readline(); b = b'x' * (16 << 20)\n"
        "print('ok', flush=True); time.sleep(60)"
    )
    proc = spawn(python=hold, stdin=True)
    real.add_process(proc.pid)
    go(proc)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ok"
    stats = real.stats()
    assert stats.memory_usage >= 16 << 20
    assert stats.pids == 1
    assert stats.cpu_usage_ns > 0


def test_real_hybrid_kill_all_and_unified_dir(real: CgroupManager, spawn: Spawner) -> None:
    if "unified" not in real.paths:
        pytest.skip("legacy host: no unified hierarchy")
    proc = spawn("sh", "-c", "read x; sleep 60 & sleep 60 & wait", stdin=True)
    real.add_process(proc.pid)
    go(proc)
    assert eventually(lambda: len(real.pids()) == 3)
    assert (real.paths["unified"] / "cgroup.procs").read_text().split() == [str(p) for p in real.pids()]
    real.freeze()
    real.kill_all()  # cgroup.kill, then a thaw so the v1 freezer lets the tasks die
    assert real.pids() == []
    assert proc.wait(timeout=5) == -signal.SIGKILL


def test_real_destroy_cleans_leftovers(real: CgroupManager, spawn: Spawner) -> None:
    """Orphans of a process that was killed stay in the cgroup; destroy() kills and removes them."""
    proc = spawn("sh", "-c", "read x; sleep 60 & sleep 60 & echo started; wait", stdin=True)
    real.add_process(proc.pid)
    go(proc)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    proc.kill()
    proc.wait(timeout=5)
    orphans = real.pids()
    assert len(orphans) == 2
    real.destroy()
    for path in real.paths.values():
        assert not path.exists(), path
    for pid in orphans:
        assert eventually(functools.partial(_gone, pid))


def test_real_legacy_mode_kills_by_freezing_and_signalling(spawn: Spawner) -> None:
    """Without the unified tree there is no cgroup.kill: freeze, signal every pid, thaw."""
    if os.geteuid() != 0 or probe() == "unified":
        pytest.skip("needs root and cgroup v1 hierarchies")
    parent = f"cktest-{uuid.uuid4().hex[:12]}"
    cgroup = open_cgroup(f"{parent}/c", mode="legacy")
    assert "unified" not in cgroup.paths
    try:
        cgroup.create()
        proc = spawn("sh", "-c", "read x; sleep 60 & sleep 60 & wait", stdin=True)
        cgroup.add_process(proc.pid)
        go(proc)
        assert eventually(lambda: len(cgroup.pids()) == 3)
        cgroup.kill_all()
        assert cgroup.pids() == []
        assert not cgroup.is_frozen()
        assert proc.wait(timeout=5) == -signal.SIGKILL
    finally:
        cgroup.destroy()
        assert remove_if_empty(parent, mode="legacy")
    assert [h.name for h in ROOT.iterdir() if (h / parent).exists()] == []


def test_real_create_and_destroy_cover_every_hierarchy() -> None:
    """Every mounted v1 hierarchy gets the cgroup (devices, blkio, cpuset, name=systemd...), and
    the one-rmdir-per-hierarchy destroy clears each, also where it appeared after the manager."""
    if os.geteuid() != 0 or probe() == "unified":
        pytest.skip("needs root and cgroup v1 hierarchies")
    parent = f"cktest-{uuid.uuid4().hex[:12]}"
    cgroup = open_cgroup(f"{parent}/c")
    hierarchies = [h for h in ROOT.iterdir() if (h / "cgroup.procs").exists()]
    try:
        cgroup.create()
        missing = [h.name for h in hierarchies if not (h / parent / "c").is_dir()]
        assert missing == []
        late = open_cgroup(f"{parent}/c")
        cgroup.destroy()
        assert not cgroup.exists()
        late.create()
        cgroup.destroy()  # made again by another manager: still cleared in one pass
        assert not cgroup.exists()
    finally:
        cgroup.destroy()
        assert remove_if_empty(parent)
    assert [h.name for h in ROOT.iterdir() if (h / parent).exists()] == []


def test_real_cpuset_is_inherited_so_a_process_can_join() -> None:
    """A new v1 cpuset is empty and refuses processes; create copies cpus and mems down."""
    if os.geteuid() != 0 or not (ROOT / "cpuset" / "cgroup.procs").exists():
        pytest.skip("needs root and a v1 cpuset hierarchy")
    parent = f"cktest-{uuid.uuid4().hex[:12]}"
    cgroup = open_cgroup(f"{parent}/c")
    proc = subprocess.Popen(["sleep", "30"])
    try:
        cgroup.create()
        for name in ("cpuset.cpus", "cpuset.mems"):
            expected = (ROOT / "cpuset" / name).read_text()
            assert (ROOT / "cpuset" / parent / name).read_text() == expected
            assert (ROOT / "cpuset" / parent / "c" / name).read_text() == expected
        cgroup.add_process(proc.pid)
        assert f"cpuset:/{parent}/c" in Path(f"/proc/{proc.pid}/cgroup").read_text()
    finally:
        proc.kill()
        proc.wait()
        cgroup.destroy()
        assert remove_if_empty(parent)


def test_create_survives_its_parent_vanishing_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process may rmdir the shared parent between our mkdirs of parent and child."""
    FakeCgroupfs.v1(tmp_path, unified=True)
    real_mkdir = Path.mkdir
    failures = iter([True, False])

    def flaky(self: Path, *args: object, **kwargs: object) -> None:
        if self.name == "c1" and next(failures, False):
            raise FileNotFoundError(2, "No such file or directory", str(self))
        real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", flaky)
    open_cgroup("containerkit/c1", root=tmp_path, mode="hybrid").create()
    assert (tmp_path / "memory/containerkit/c1").is_dir()


def test_create_covers_every_hierarchy_on_a_fake_tree(tmp_path: Path) -> None:
    """Not only the controllers limits use: devices, blkio, cpuset, name=systemd too."""
    FakeCgroupfs.v1(tmp_path, unified=True)
    for other in ("devices", "blkio", "systemd", "cpuset"):
        (tmp_path / other).mkdir()
        (tmp_path / other / "cgroup.procs").write_text("")
    (tmp_path / "cpuset/cpuset.cpus").write_text("0-1\n")
    (tmp_path / "cpuset/cpuset.mems").write_text("0\n")
    for level in ("containerkit", "containerkit/c1"):  # as the kernel's mkdir makes them: empty
        (tmp_path / "cpuset" / level).mkdir()
        (tmp_path / "cpuset" / level / "cpuset.cpus").write_text("\n")
        (tmp_path / "cpuset" / level / "cpuset.mems").write_text("\n")
    (tmp_path / "not-a-hierarchy").mkdir()
    manager = open_cgroup("containerkit/c1", root=tmp_path, mode="hybrid")
    manager.create()
    for hierarchy in ("memory", "devices", "blkio", "systemd", "cpuset", "unified"):
        assert (tmp_path / hierarchy / "containerkit/c1").is_dir(), hierarchy
    assert not (tmp_path / "not-a-hierarchy/containerkit").exists()
    assert (tmp_path / "cpuset/containerkit/c1/cpuset.cpus").read_text() == "0-1"
    assert (tmp_path / "cpuset/containerkit/cpuset.mems").read_text() == "0"


def test_co_mounted_controllers_share_one_directory(tmp_path: Path) -> None:
    """``cpu`` and ``cpuacct`` as symlinks to one ``cpu,cpuacct`` mount (systemd's layout): the
    process moves go to that directory once, the paths keep every name."""
    FakeCgroupfs.v1(tmp_path, ("memory", "pids", "freezer"), unified=True)
    joined = tmp_path / "cpu,cpuacct"
    joined.mkdir()
    (joined / "cgroup.procs").write_text("")
    for name in ("cpu", "cpuacct"):
        os.symlink("cpu,cpuacct", tmp_path / name)
    manager = open_cgroup("containerkit/c1", root=tmp_path, mode="hybrid")
    manager.create()
    assert manager.paths["cpu"] == tmp_path / "cpu/containerkit/c1"
    assert manager.paths["cpuacct"] == tmp_path / "cpuacct/containerkit/c1"
    ours = sorted(os.path.realpath(path) for path in manager._dirs())
    assert ours == sorted(set(ours))  # no directory twice
    assert ours == sorted(
        os.path.realpath(tmp_path / h / "containerkit/c1")
        for h in ("memory", "pids", "freezer", "cpu,cpuacct", "unified")
    )
    for path in manager._dirs():
        (path / "cgroup.procs").write_text("")
    manager.add_process(4242)
    assert (joined / "containerkit/c1/cgroup.procs").read_text() == "4242"


def test_claim_renames_a_sibling_in_the_v1_hierarchies_only(tmp_path: Path) -> None:
    FakeCgroupfs.v1(tmp_path, unified=True)
    open_cgroup("containerkit/spare-1", root=tmp_path, mode="legacy").create()  # v1 only, as made ahead
    manager = open_cgroup("containerkit/c1", root=tmp_path, mode="hybrid")
    claimed = manager.claim("containerkit/spare-1")
    assert sorted(path.parts[-3] for path in claimed) == sorted(
        ("memory", "cpu", "cpuacct", "pids", "freezer")
    )
    assert not list(tmp_path.glob("*/containerkit/spare-1"))
    assert not (tmp_path / "unified/containerkit/c1").exists()  # made by create(), as usual
    with pytest.raises(InvalidArgument, match="no sibling"):
        manager.claim("elsewhere/spare-1")

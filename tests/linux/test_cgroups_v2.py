"""cgroup v2 manager.

The real tests run on this host's controller-less cgroup2 mount (/sys/fs/cgroup/unified):
its core files (cgroup.procs, cgroup.freeze, cgroup.kill, cgroup.events, cpu.stat) are real.
The kernel here has no v2 controllers, so limits are checked against a fake cgroupfs.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from containerkit.errors import InvalidArgument, NotFound, Unavailable
from containerkit.linux.cgroups import (
    CgroupManager,
    CgroupStats,
    open_cgroup,
    remove_if_empty,
    shares_to_weight,
)
from containerkit.linux.cgroups.devices import parse_rules
from containerkit.spec import Resources
from tests.linux._cgroup_procs import BUSY, Spawner, eventually, go
from tests.linux._fake_cgroupfs import FakeCgroupfs

UNIFIED = Path("/sys/fs/cgroup/unified")

# -- fake cgroupfs: controllers -------------------------------------------------------------


@pytest.fixture
def fake(tmp_path: Path) -> FakeCgroupfs:
    fs = FakeCgroupfs.v2(tmp_path)
    fs.cgroup("containerkit")
    fs.cgroup("containerkit/c1")
    return fs


def _open(fake: FakeCgroupfs, name: str = "containerkit/c1") -> CgroupManager:
    return open_cgroup(name, root=fake.root, mode="unified")


def test_create_enables_controllers_top_down(tmp_path: Path) -> None:
    fs = FakeCgroupfs.v2(tmp_path, controllers=("cpu", "io", "memory", "pids"))
    fs.cgroup("containerkit", controllers=("cpu", "pids"))
    _open(fs).create()
    assert fs.read("cgroup.subtree_control") == "+cpu +memory +pids"
    assert fs.read("containerkit/cgroup.subtree_control") == "+cpu +pids"  # only what it has
    assert (tmp_path / "containerkit/c1").is_dir()


def test_create_leaves_enabled_controllers_alone(fake: FakeCgroupfs) -> None:
    fake.write("cgroup.subtree_control", "cpu memory pids")
    fake.write("containerkit/cgroup.subtree_control", "memory pids")
    _open(fake).create()
    assert fake.read("cgroup.subtree_control") == "cpu memory pids"
    assert fake.read("containerkit/cgroup.subtree_control") == "+cpu"


def test_create_rejects_domain_invalid(fake: FakeCgroupfs) -> None:
    fake.write("containerkit/c1/cgroup.type", "domain invalid")
    with pytest.raises(Unavailable, match="containerkit/c1"):
        _open(fake).create()


def test_apply_writes_exact_values(fake: FakeCgroupfs) -> None:
    _open(fake).apply(Resources(memory="64m", cpus=0.5, cpu_shares=512, pids=7))
    assert fake.read("containerkit/c1/memory.max") == str(64 << 20)
    assert fake.read("containerkit/c1/memory.swap.max") == str(64 << 20)  # docker: swap = memory
    assert fake.read("containerkit/c1/cpu.max") == "50000 100000"
    assert fake.read("containerkit/c1/cpu.weight") == "20"
    assert fake.read("containerkit/c1/pids.max") == "7"


def test_apply_swap_is_total_minus_memory(fake: FakeCgroupfs) -> None:
    _open(fake).apply(Resources(memory="64m", memory_swap="96m"))
    assert fake.read("containerkit/c1/memory.swap.max") == str(32 << 20)
    _open(fake).apply(Resources(memory="64m", memory_swap="64m"))
    assert fake.read("containerkit/c1/memory.swap.max") == "0"


def test_apply_none_means_unlimited(fake: FakeCgroupfs) -> None:
    _open(fake).apply(Resources(memory="64m", cpus=1.5, pids=3, cpu_shares=2048))
    _open(fake).apply(Resources())
    assert fake.read("containerkit/c1/memory.max") == "max"
    assert fake.read("containerkit/c1/memory.swap.max") == "max"
    assert fake.read("containerkit/c1/cpu.max") == "max"
    assert fake.read("containerkit/c1/pids.max") == "max"
    assert fake.read("containerkit/c1/cpu.weight") == str(shares_to_weight(2048))  # no "unlimited" weight


def test_apply_bad_swap(fake: FakeCgroupfs) -> None:
    with pytest.raises(InvalidArgument, match="memory_swap"):
        _open(fake).apply(Resources(memory_swap="64m"))
    with pytest.raises(InvalidArgument, match="memory_swap"):
        _open(fake).apply(Resources(memory="64m", memory_swap="32m"))


def test_apply_missing_controller_names_it_and_writes_nothing(tmp_path: Path) -> None:
    fs = FakeCgroupfs.v2(tmp_path, controllers=("cpu", "memory"))
    fs.cgroup("c1")
    cgroup = open_cgroup("c1", root=tmp_path, mode="unified")
    with pytest.raises(Unavailable, match=r"'pids'.*c1"):
        cgroup.apply(Resources(memory="64m", cpus=1, pids=5))
    assert fs.read("c1/memory.max") == "max"
    assert fs.read("c1/cpu.max") == "max 100000"
    cgroup.apply(Resources(memory="64m"))  # pids=None on a cgroup without pids is fine
    assert fs.read("c1/memory.max") == str(64 << 20)


@pytest.mark.parametrize(("shares", "weight"), [(2, 1), (1024, 39), (262144, 10000)])
def test_shares_to_weight_matches_runc(shares: int, weight: int) -> None:
    assert shares_to_weight(shares) == weight


def test_stats_and_oom_count_parsing(fake: FakeCgroupfs) -> None:
    fake.write("containerkit/c1/memory.current", "4096\n")
    fake.write("containerkit/c1/memory.max", "1048576\n")
    fake.write("containerkit/c1/cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    fake.write("containerkit/c1/pids.current", "2\n")
    fake.write("containerkit/c1/pids.max", "10\n")
    fake.write("containerkit/c1/memory.events", "low 0\nhigh 0\nmax 4\noom 2\noom_kill 3\n")
    assert _open(fake).stats() == CgroupStats(
        memory_usage=4096, memory_limit=1048576, cpu_usage_ns=1_500_000, pids=2, pids_limit=10
    )
    assert _open(fake).oom_kill_count() == 3
    fake.write("containerkit/c1/memory.max", "max\n")
    fake.write("containerkit/c1/pids.max", "max\n")
    stats = _open(fake).stats()
    assert (stats.memory_limit, stats.pids_limit) == (None, None)


def test_stats_of_missing_cgroup_is_not_found(fake: FakeCgroupfs) -> None:
    with pytest.raises(NotFound, match="containerkit/gone"):
        _open(fake, "containerkit/gone").stats()
    assert _open(fake, "containerkit/gone").oom_kill_count() == 0
    _open(fake, "containerkit/gone").destroy()  # idempotent on nothing


def test_apply_devices_needs_a_real_cgroup2_directory(fake: FakeCgroupfs) -> None:
    """A BPF program attaches only to a cgroup2 directory: a plain one is a clear error, not a
    container started without its device filter."""
    rules = parse_rules([{"allow": False}])
    with pytest.raises(Unavailable, match=r"containerkit/c1.*not a directory of a cgroup2 mount"):
        _open(fake).apply_devices(rules)
    with pytest.raises(NotFound, match="containerkit/absent"):
        _open(fake, "containerkit/absent").apply_devices(rules)


# -- real cgroup2 core files ------------------------------------------------------------------


def _require_unified() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create cgroups")
    if not (UNIFIED / "cgroup.procs").exists():
        pytest.skip(f"no cgroup2 mount at {UNIFIED}")


@pytest.fixture
def spawn() -> Iterator[Spawner]:
    with Spawner() as spawner:
        yield spawner


@pytest.fixture
def real() -> Iterator[CgroupManager]:
    _require_unified()
    parent = f"cktest-{uuid.uuid4().hex[:12]}"
    cgroup = open_cgroup(f"{parent}/c", root=UNIFIED, mode="unified")
    cgroup.create()
    try:
        yield cgroup
    finally:
        cgroup.destroy()
        assert remove_if_empty(parent, root=UNIFIED, mode="unified")
        assert not (UNIFIED / parent).exists()


def _cpu_ns(cgroup: CgroupManager) -> int:
    return cgroup.stats().cpu_usage_ns


def test_real_add_process_pids_destroy(real: CgroupManager, spawn: Spawner) -> None:
    proc = spawn("sleep", "60")
    real.add_process(proc.pid)
    assert real.exists()
    assert real.pids() == [proc.pid]
    assert real.stats().pids == 1
    real.destroy()
    assert proc.wait(timeout=5) == -signal.SIGKILL
    assert not real.exists()
    assert not real.paths["unified"].exists()
    real.destroy()  # idempotent


def test_real_add_missing_process(real: CgroupManager) -> None:
    with pytest.raises(NotFound, match=r"cgroup\.procs"):
        real.add_process(2**22 + 1)


def test_real_freeze_thaw_and_cpu_usage(real: CgroupManager, spawn: Spawner) -> None:
    proc = spawn(python=BUSY)
    real.add_process(proc.pid)
    start = _cpu_ns(real)
    assert eventually(lambda: _cpu_ns(real) > start + 20_000_000)
    real.freeze()
    assert real.is_frozen()
    assert "frozen 1" in (real.paths["unified"] / "cgroup.events").read_text()
    frozen_at = _cpu_ns(real)
    time.sleep(0.2)
    assert _cpu_ns(real) - frozen_at < 5_000_000  # a busy loop that is frozen does not run
    real.thaw()
    assert not real.is_frozen()
    assert eventually(lambda: _cpu_ns(real) > frozen_at + 20_000_000)
    assert proc.poll() is None


def test_real_kill_all_uses_cgroup_kill(
    real: CgroupManager, spawn: Spawner, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = spawn("sh", "-c", "read x; sleep 60 & sleep 60 & wait", stdin=True)
    real.add_process(proc.pid)
    go(proc)
    assert eventually(lambda: len(real.pids()) == 3)
    signalled: list[int] = []
    real_kill = os.kill

    def recording_kill(pid: int, sig: int) -> None:
        signalled.append(pid)
        real_kill(pid, sig)

    monkeypatch.setattr(os, "kill", recording_kill)
    real.kill_all()
    monkeypatch.undo()
    assert real.pids() == []
    assert signalled == []  # the kernel did it through cgroup.kill
    assert proc.wait(timeout=5) == -signal.SIGKILL


def test_real_kill_all_frozen(real: CgroupManager, spawn: Spawner) -> None:
    proc = spawn("sleep", "60")
    real.add_process(proc.pid)
    real.freeze()
    real.kill_all()
    assert proc.wait(timeout=5) == -signal.SIGKILL


def test_real_kill_all_other_signal_once(real: CgroupManager, spawn: Spawner) -> None:
    proc = spawn("sleep", "60")
    real.add_process(proc.pid)
    real.kill_all(signal.SIGTERM)
    assert proc.wait(timeout=5) == -signal.SIGTERM
    assert not real.is_frozen()


def test_real_apply_without_controllers(real: CgroupManager) -> None:
    with pytest.raises(Unavailable, match=r"'memory'.*cktest-.*/c"):
        real.apply(Resources(memory="32m"))
    with pytest.raises(Unavailable, match="'cpu'"):
        real.apply(Resources(cpus=0.5))
    real.apply(Resources())  # nothing asked, nothing missing
    assert real.oom_kill_count() == 0
    stats = real.stats()
    assert (stats.memory_usage, stats.memory_limit, stats.pids_limit) == (0, None, None)


def test_real_destroy_removes_nested_cgroups(real: CgroupManager, spawn: Spawner) -> None:
    inner = real.paths["unified"] / "inner"
    inner.mkdir()
    proc = spawn("sleep", "60")
    (inner / "cgroup.procs").write_text(str(proc.pid))
    assert real.pids() == [proc.pid]
    real.destroy()
    assert proc.wait(timeout=5) == -signal.SIGKILL
    assert not real.paths["unified"].exists()

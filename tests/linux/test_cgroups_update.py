"""``docker update`` at the cgroup level: applying new Resources to a cgroup that has limits
already (both versions, against the fake cgroupfs; the real v1 path is tests/engine's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from containerkit.errors import InvalidArgument, Unavailable
from containerkit.linux.cgroups import open_cgroup
from containerkit.spec import Resources
from tests.linux._fake_cgroupfs import V1_CONTROLLERS, FakeCgroupfs


def test_v2_update_rewrites_every_limit_and_cpuset(tmp_path: Path) -> None:
    fs = FakeCgroupfs.v2(tmp_path, controllers=("cpu", "cpuset", "memory", "pids"))
    fs.cgroup("containerkit/c1")
    cgroup = open_cgroup("containerkit/c1", root=tmp_path, mode="unified")
    cgroup.apply(Resources(memory="64m", cpus=1, pids=10, cpuset_cpus="0-1", cpuset_mems="0"))
    cgroup.apply(
        Resources(memory="32m", memory_swap="48m", cpus=0.25, cpu_shares=512, pids=5, cpuset_cpus="1")
    )
    assert fs.read("containerkit/c1/memory.max") == str(32 << 20)
    assert fs.read("containerkit/c1/memory.swap.max") == str(16 << 20)
    assert fs.read("containerkit/c1/cpu.max") == "25000 100000"
    assert fs.read("containerkit/c1/pids.max") == "5"
    assert fs.read("containerkit/c1/cpuset.cpus") == "1"
    assert fs.read("containerkit/c1/cpuset.mems") == "0"  # not given: left as it was


def test_v2_cpuset_without_the_controller_names_it_and_writes_nothing(tmp_path: Path) -> None:
    fs = FakeCgroupfs.v2(tmp_path)
    fs.cgroup("c1")
    cgroup = open_cgroup("c1", root=tmp_path, mode="unified")
    with pytest.raises(Unavailable, match=r"'cpuset'.*c1"):
        cgroup.apply(Resources(pids=5, cpuset_cpus="0"))
    assert fs.read("c1/pids.max") == "max"


def test_v1_update_writes_the_cpuset_hierarchy(tmp_path: Path) -> None:
    fs = FakeCgroupfs.v1(tmp_path, controllers=(*V1_CONTROLLERS, "cpuset"))
    fs.cgroup("containerkit/c1")
    cgroup = open_cgroup("containerkit/c1", root=tmp_path, mode="legacy")
    cgroup.apply(Resources(memory="64m", pids=9))
    cgroup.apply(Resources(memory="48m", pids=4, cpuset_cpus="1", cpuset_mems="0"))
    assert fs.read("memory/containerkit/c1/memory.limit_in_bytes") == str(48 << 20)
    assert fs.read("pids/containerkit/c1/pids.max") == "4"
    assert fs.read("cpuset/containerkit/c1/cpuset.cpus") == "1"
    assert fs.read("cpuset/containerkit/c1/cpuset.mems") == "0"


def test_v1_cpuset_without_its_hierarchy_writes_nothing(tmp_path: Path) -> None:
    fs = FakeCgroupfs.v1(tmp_path)
    fs.cgroup("c1")
    cgroup = open_cgroup("c1", root=tmp_path, mode="legacy")
    with pytest.raises(Unavailable, match="cpuset"):
        cgroup.apply(Resources(pids=3, cpuset_cpus="0"))
    assert fs.read("pids/c1/pids.max") == "max"


def test_cpuset_lists_are_checked() -> None:
    assert Resources(cpuset_cpus="0-3,5,7-8").cpuset_cpus == "0-3,5,7-8"
    for bad in ("", "0-", "a", "0;1", "0,,1", " 0"):
        with pytest.raises(InvalidArgument, match="cpuset_cpus"):
            Resources(cpuset_cpus=bad)

"""probe() answers from statfs magic; fake roots go through the ``fs_type`` seam."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from containerkit.errors import InvalidArgument, Unavailable
from containerkit.linux.cgroups import (
    CgroupV1Manager,
    CgroupV2Manager,
    exists_anywhere,
    list_cgroups,
    open_cgroup,
    probe,
    remove_if_empty,
)
from containerkit.linux.cgroups.probe import CGROUP2_SUPER_MAGIC, TMPFS_MAGIC
from tests.linux._fake_cgroupfs import FakeCgroupfs

ROOT = Path("/fake/cgroup")


def _fs(types: dict[Path, int]) -> Callable[[Path], int | None]:
    return types.get


def test_probe_unified() -> None:
    assert probe(ROOT, fs_type=_fs({ROOT: CGROUP2_SUPER_MAGIC})) == "unified"


def test_probe_hybrid() -> None:
    types = {ROOT: TMPFS_MAGIC, ROOT / "unified": CGROUP2_SUPER_MAGIC}
    assert probe(ROOT, fs_type=_fs(types)) == "hybrid"


def test_probe_legacy() -> None:
    assert probe(ROOT, fs_type=_fs({ROOT: TMPFS_MAGIC, ROOT / "unified": TMPFS_MAGIC})) == "legacy"
    assert probe(ROOT, fs_type=_fs({ROOT: TMPFS_MAGIC})) == "legacy"


def test_probe_no_cgroupfs_names_the_root() -> None:
    with pytest.raises(Unavailable, match="/fake/cgroup"):
        probe(ROOT, fs_type=_fs({ROOT: 0xEF53}))
    with pytest.raises(Unavailable, match="nothing"):
        probe(ROOT, fs_type=_fs({}))


def _mount_types() -> dict[str, str]:
    types = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        types[left.split()[4]] = right.split()[0]
    return types


def test_probe_real_machine_matches_mountinfo() -> None:
    """statfs on the real /sys/fs/cgroup agrees with what mountinfo says is mounted."""
    mounts = _mount_types()
    if "/sys/fs/cgroup" not in mounts:
        pytest.skip("no cgroup filesystem mounted at /sys/fs/cgroup")
    if mounts["/sys/fs/cgroup"] == "cgroup2":
        expected = "unified"
    else:
        expected = "hybrid" if mounts.get("/sys/fs/cgroup/unified") == "cgroup2" else "legacy"
    assert probe() == expected


def test_open_cgroup_picks_the_manager(tmp_path: Path) -> None:
    FakeCgroupfs.v1(tmp_path, unified=True)
    hybrid = open_cgroup("containerkit/a", root=tmp_path, mode="hybrid")
    assert isinstance(hybrid, CgroupV1Manager)
    assert hybrid.paths["unified"] == tmp_path / "unified/containerkit/a"
    legacy = open_cgroup("containerkit/a", root=tmp_path, mode="legacy")
    assert isinstance(legacy, CgroupV1Manager)
    assert "unified" not in legacy.paths
    unified = open_cgroup("containerkit/a", root=tmp_path / "unified", mode="unified")
    assert isinstance(unified, CgroupV2Manager)
    assert unified.paths == {"unified": tmp_path / "unified/containerkit/a"}


@pytest.mark.parametrize("name", ["", "/abs", "a/../b", "a//b", "..", "a/."])
def test_bad_names_are_rejected(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidArgument, match="cgroup name"):
        open_cgroup(name, root=tmp_path, mode="unified")


def test_list_and_remove_if_empty(tmp_path: Path) -> None:
    fake = FakeCgroupfs.v1(tmp_path, unified=True)
    (tmp_path / "memory/containerkit/one").mkdir(parents=True)
    (tmp_path / "unified/containerkit/two").mkdir(parents=True)
    (tmp_path / "pids/containerkit/one").mkdir(parents=True)
    assert list_cgroups(root=tmp_path, mode="hybrid") == ["containerkit/one", "containerkit/two"]
    assert list_cgroups(root=tmp_path, mode="legacy") == ["containerkit/one"]
    assert list_cgroups("other", root=tmp_path, mode="hybrid") == []
    assert remove_if_empty(root=tmp_path, mode="hybrid") is False
    for name in ("memory/containerkit/one", "unified/containerkit/two", "pids/containerkit/one"):
        (tmp_path / name).rmdir()
    assert remove_if_empty(root=tmp_path, mode="hybrid") is True
    assert not any((tmp_path / h / "containerkit").exists() for h in (*fake.controllers, "unified"))


def test_exists_anywhere_in_a_v1_hierarchy_the_v2_tree_or_a_v2_root(tmp_path: Path) -> None:
    FakeCgroupfs.v1(tmp_path / "v1", unified=True)
    assert not exists_anywhere("containerkit/c1", root=tmp_path / "v1")
    for where in ("pids", "unified"):
        (tmp_path / "v1" / where / "containerkit/c1").mkdir(parents=True)
        assert exists_anywhere("containerkit/c1", root=tmp_path / "v1"), where
        (tmp_path / "v1" / where / "containerkit/c1").rmdir()
    FakeCgroupfs.v2(tmp_path / "v2")
    (tmp_path / "v2/containerkit/c1").mkdir(parents=True)
    assert exists_anywhere("containerkit/c1", root=tmp_path / "v2")
    assert not exists_anywhere("containerkit/c1", root=tmp_path / "missing")
    with pytest.raises(InvalidArgument, match="cgroup name"):
        exists_anywhere("../c1", root=tmp_path / "v1")

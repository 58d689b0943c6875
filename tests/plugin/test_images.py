"""Test images from a rootfs directory or tar: imported once, found again by digest."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import pytest

import containerkit as ck
from containerkit.testing.images import image_from_rootfs


@pytest.fixture
def rootfs_dir(tmp_path: Path, busybox_rootfs_tar: Path) -> Path:
    target = tmp_path / "my-rootfs"
    with tarfile.open(busybox_rootfs_tar) as tar:
        # our own archive; extraction filters exist only from 3.11.4 (Debian 12 has 3.11.2)
        tar.extractall(target, **({"filter": "fully_trusted"} if hasattr(tarfile, "data_filter") else {}))
    (target / "motd").write_text("from a directory\n")
    return target


def test_directory_is_imported_once_and_runs(
    containerkit_engine: Any, containerkit_run: Any, rootfs_dir: Path
) -> None:
    first = image_from_rootfs(containerkit_engine, rootfs_dir, config={"Cmd": ["cat", "/motd"]})
    again = image_from_rootfs(containerkit_engine, rootfs_dir, config={"Cmd": ["cat", "/motd"]})
    assert again.id == first.id
    assert first.tags[0].startswith("containerkit-test/my-rootfs:")
    container = containerkit_run(first.tags[0])
    assert container.wait(timeout=10) == 0
    assert container.logs() == b"from a directory\n"
    container = containerkit_run(first.tags[0], ["sleep", "30"])
    assert container.exec(["stat", "-c", "%u:%g", "/motd"]).stdout.strip() == b"0:0"


def test_changed_input_gets_a_new_image(containerkit_engine: Any, rootfs_dir: Path) -> None:
    first = image_from_rootfs(containerkit_engine, rootfs_dir)
    (rootfs_dir / "motd").write_text("changed\n")
    assert image_from_rootfs(containerkit_engine, rootfs_dir).id != first.id
    assert image_from_rootfs(containerkit_engine, rootfs_dir, config={"Cmd": ["sh"]}).id != first.id


def test_tar_and_extra_tag(containerkit_engine: Any, busybox_rootfs_tar: Path) -> None:
    image = image_from_rootfs(containerkit_engine, busybox_rootfs_tar, tag="example/mine:1")
    assert "example/mine:1" in image.tags
    assert any(t.startswith("containerkit-test/rootfs:") for t in image.tags)


def test_bad_sources(containerkit_engine: Any, tmp_path: Path) -> None:
    with pytest.raises(ck.NotFound, match="no such rootfs"):
        image_from_rootfs(containerkit_engine, tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ck.InvalidArgument, match="expected a rootfs directory or a tar"):
        image_from_rootfs(containerkit_engine, tmp_path / "notes.txt")

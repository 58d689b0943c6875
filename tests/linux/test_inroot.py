"""In-root resolution with openat2: symlinks, ``..`` and magic links never lead out of the root,
and the fd-relative primitives never follow what sits at the name they create."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from containerkit.errors import InvalidArgument, NotFound
from containerkit.linux import inroot
from containerkit.linux.inroot import Root


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Root]:
    (tmp_path / "root" / "etc").mkdir(parents=True)
    (tmp_path / "root" / "etc" / "hostname").write_text("inside\n")
    with Root.open(tmp_path / "root") as opened:
        yield opened


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A host directory beside the root, holding a canary that must never change."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "canary").write_text("untouched\n")
    return path


def _read(root: Root, path: str) -> str:
    fd = root.open_fd(path, os.O_RDONLY)
    with os.fdopen(fd) as handle:
        return handle.read()


def test_absolute_symlink_and_dotdot_resolve_inside(root: Root, tmp_path: Path) -> None:
    os.symlink("/etc", tmp_path / "root" / "abs")
    os.symlink("../../../../etc", tmp_path / "root" / "rel")
    assert _read(root, "/abs/hostname") == "inside\n"
    assert _read(root, "rel/hostname") == "inside\n"
    assert _read(root, "/../../../etc/hostname") == "inside\n"


def test_symlink_to_a_host_path_does_not_reach_it(root: Root, tmp_path: Path, outside: Path) -> None:
    os.symlink(str(outside), tmp_path / "root" / "link")
    with pytest.raises(FileNotFoundError):
        root.open_fd("/link/canary", os.O_RDONLY)


def test_magic_links_are_refused() -> None:
    with Root.open("/") as host, pytest.raises(OSError) as info:
        host.open_fd("/proc/self/root/etc", os.O_PATH)
    assert info.value.errno == errno.ELOOP


def test_final_symlink_kept_without_follow(root: Root, tmp_path: Path) -> None:
    os.symlink("/etc/hostname", tmp_path / "root" / "h")
    assert root.lstat("/h").st_mode & 0o170000 == 0o120000
    assert root.readlink("/h") == "/etc/hostname"
    assert root.stat("/h").st_size == len("inside\n")


def test_make_dirs_follows_links_in_root_only(root: Root, tmp_path: Path, outside: Path) -> None:
    os.symlink(str(outside), tmp_path / "root" / "d")  # dangling inside the root: mkdir -p fails
    with pytest.raises(NotFound, match="/d"):
        root.make_dirs("/d/new/deeper")
    assert sorted(p.name for p in outside.iterdir()) == ["canary"]
    os.symlink("/etc/../../etc", tmp_path / "root" / "e")
    os.close(root.make_dirs("/e/new/deeper"))
    assert (tmp_path / "root" / "etc" / "new" / "deeper").is_dir()


def test_make_dirs_through_a_file_fails(root: Root) -> None:
    with pytest.raises(NotADirectoryError):
        root.make_dirs("/etc/hostname/x")


def test_create_file_replaces_a_symlink_without_following(root: Root, tmp_path: Path, outside: Path) -> None:
    os.symlink(str(outside / "canary"), tmp_path / "root" / "f")
    dirfd = root.open_dir("/")
    try:
        fd = inroot.create_file(dirfd, "f")
        os.write(fd, b"new\n")
        os.close(fd)
        os.symlink(str(outside), tmp_path / "root" / "d")
        os.close(inroot.make_dir(dirfd, "d"))
        inroot.make_symlink(str(outside / "canary"), dirfd, "s")
        inroot.set_mode(dirfd, "s", 0o777)
        inroot.chown_at(dirfd, "s", 1234, 1234)
        inroot.set_times_at(dirfd, "s", (0, 0))
    finally:
        os.close(dirfd)
    assert (tmp_path / "root" / "f").read_text() == "new\n"
    assert not (tmp_path / "root" / "f").is_symlink()
    assert (tmp_path / "root" / "d").is_dir() and not (tmp_path / "root" / "d").is_symlink()
    assert (outside / "canary").read_text() == "untouched\n"
    st = (outside / "canary").stat()
    assert (st.st_mode & 0o777, st.st_uid) == (0o644, os.getuid())
    assert st.st_mtime > 0


def test_link_at_links_the_entry_itself(root: Root, tmp_path: Path, outside: Path) -> None:
    os.symlink(str(outside / "canary"), tmp_path / "root" / "s")
    dirfd = root.open_dir("/")
    try:
        inroot.link_at(dirfd, "s", dirfd, "hard")
    finally:
        os.close(dirfd)
    assert (tmp_path / "root" / "hard").is_symlink()  # a second name for the link, not the file
    assert (outside / "canary").stat().st_nlink == 1


def test_device_nodes_only_when_allowed(root: Root, tmp_path: Path) -> None:
    dirfd = root.open_dir("/")
    try:
        with pytest.raises(InvalidArgument, match="device nodes"):
            inroot.make_node(dirfd, "null", 0o020666, os.makedev(1, 3), devices=False)
        inroot.make_node(dirfd, "fifo", 0o010600, devices=False)
    finally:
        os.close(dirfd)
    assert not (tmp_path / "root" / "null").exists()
    assert (tmp_path / "root" / "fifo").exists()


def test_remove_at_removes_trees_not_link_targets(root: Root, tmp_path: Path, outside: Path) -> None:
    (tmp_path / "root" / "tree" / "sub").mkdir(parents=True)
    os.symlink(str(outside), tmp_path / "root" / "tree" / "sub" / "out")
    dirfd = root.open_dir("/")
    try:
        inroot.remove_at(dirfd, "tree")
        inroot.remove_at(dirfd, "missing")
    finally:
        os.close(dirfd)
    assert not (tmp_path / "root" / "tree").exists()
    assert (outside / "canary").read_text() == "untouched\n"


def test_missing_root_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        Root.open(tmp_path / "nope")


def test_a_mount_target_in_the_root_never_resolves_out_of_it(tmp_path: Path, outside: Path) -> None:
    """What every mount of a container's setup is aimed through (linux.mounts.opened_in_root):
    an absolute symlink, a climbing one and ``..`` all stay in the rootfs."""
    from containerkit.linux.mounts import opened_in_root

    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "canary").write_text("inside\n")
    (rootfs / "abs").symlink_to(outside)  # /<outside> inside the root: absent there
    (rootfs / "climb").symlink_to("../../../../etc")
    (rootfs / "abs_etc").symlink_to("/etc")
    with opened_in_root(str(rootfs), "/climb/canary") as target:
        assert os.readlink(target) == str(rootfs / "etc" / "canary")
    with opened_in_root(str(rootfs), "/abs_etc/../etc/canary") as target:
        assert os.readlink(target) == str(rootfs / "etc" / "canary")
    with pytest.raises(FileNotFoundError), opened_in_root(str(rootfs), "/abs/canary"):
        pass
    assert (outside / "canary").read_text() == "untouched\n"

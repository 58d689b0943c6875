"""The diff maker with both drivers (real overlayfs, and the copy driver's double walk): change a
container snapshot through its mount, make the layer, unpack it over the same parents in a fresh
snapshot, and compare the two trees."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from containerkit.errors import InvalidArgument, NotSupported
from containerkit.linux import overlay
from containerkit.storage.apply import apply_layer
from containerkit.storage.diff import make_diff
from containerkit.storage.snapshots import SnapshotStore
from tests.conftest import require_root
from tests.images import _layers as lf

BASE = [
    lf.directory("etc"),
    lf.file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
    lf.file("etc/hosts", b"127.0.0.1 localhost\n"),
    lf.file("etc/group", b"root:x:0:\n"),
    lf.file("etc/shells", b"/bin/sh\n"),
    lf.device("dev/tty0", tarfile.CHRTYPE, 4, 0, 0o620),
    lf.directory("var/lib/app", mode=0o750, uid=10, gid=20),
    lf.file("var/lib/app/a", b"a", uid=10, gid=20),
    lf.file("var/lib/app/b", b"b"),
    lf.directory("var/lib/app/sub"),
    lf.file("var/lib/app/sub/c", b"c"),
    lf.directory("gone"),
    lf.file("gone/one", b"1"),
    lf.symlink("bin", "usr/bin"),
    lf.directory("usr/bin"),
    lf.file("usr/bin/tool", b"#!/bin/sh\n", mode=0o755),
    lf.file("usr/bin/keep", b"keep"),
]
TOP = [lf.file("etc/motd", b"hello\n"), lf.whiteout("usr/bin/keep")]


def _mounts_under(root: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p.startswith(str(root) + "/")]


@pytest.fixture(params=["overlay", "copy"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SnapshotStore]:
    require_root()
    if request.param == "overlay" and not overlay.overlay_supported(tmp_path):
        pytest.skip("overlayfs cannot be mounted here")
    s = SnapshotStore(tmp_path / "store", driver=request.param)
    yield s
    for point in reversed(_mounts_under(tmp_path)):
        overlay.unmount(point)
    assert not _mounts_under(tmp_path)


def _add(store: SnapshotStore, *layers: list[lf.Entry]) -> list[str]:
    tars = [lf.build_tar(entries) for entries in layers]
    chains = lf.chain_ids([lf.diff_id(t) for t in tars])
    for chain, tar in zip(chains, tars, strict=True):
        apply_layer(store, chain, io.BytesIO(tar), expected_diff_id=lf.diff_id(tar))
    return chains[::-1]


def _change(root: Path) -> None:
    """Every kind of change a container makes, through the overlay mount."""
    (root / "etc/hosts").write_bytes(b"127.0.0.1 localhost\n10.0.0.2 db\n")  # changed
    os.chmod(root / "etc/passwd", 0o600)  # metadata only
    os.chown(root / "var/lib/app/a", 1000, 1001)
    (root / "var/lib/app/b").unlink()  # deleted file
    (root / "etc/motd").unlink()  # deleted from the top layer
    for name in ("one",):  # deleted directory
        (root / "gone" / name).unlink()
    (root / "gone").rmdir()
    for p in sorted((root / "var/lib/app/sub").iterdir()):  # a directory made anew: opaque
        p.unlink()
    (root / "var/lib/app/sub").rmdir()
    (root / "var/lib/app/sub").mkdir(mode=0o700)
    (root / "var/lib/app/sub/fresh").write_bytes(b"fresh")
    new = root / "srv/data"
    new.mkdir(parents=True)
    (new / "big").write_bytes(os.urandom(3 << 20))
    (new / "setuid").write_bytes(b"s")
    os.chmod(new / "setuid", 0o4755)
    os.link(new / "big", new / "big.link")  # hardlinks, one in another directory
    os.link(new / "big", root / "etc/big.link")
    os.link(root / "usr/bin/tool", root / "usr/bin/tool2")  # a hardlink to a lower file
    os.symlink("../etc/hosts", new / "hosts")  # symlinks, relative and absolute
    os.symlink("/etc/passwd", new / "passwd")
    (root / "bin").unlink()  # a symlink replaced by a directory
    (root / "bin").mkdir()
    (root / "bin/sh").write_bytes(b"sh")
    os.mknod(new / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))  # devices and a fifo
    os.mknod(new / "loop9", stat.S_IFBLK | 0o660, os.makedev(7, 9))
    os.mkfifo(new / "fifo", 0o600)
    os.setxattr(new / "big", "user.note", b"\x00\xffbinary")  # xattrs: user and security
    os.setxattr(root / "etc/hosts", "user.kind", b"text")
    os.setxattr(new / "setuid", "security.capability", _CAP_NET_BIND)
    os.chown(root / "usr/bin", 0, 50)  # a directory's metadata changed in place
    os.utime(root / "etc/passwd", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    os.utime(root / "etc/group", ns=(1_650_000_000_000_000_001, 1_650_000_000_000_000_001))  # mtime only
    lower_times = (lf.MTIME * 10**9, lf.MTIME * 10**9)
    (root / "etc/shells").write_bytes(b"/bin/ash")  # content only: same size, the old whole-second mtime
    os.utime(root / "etc/shells", ns=lower_times)
    (root / "dev/tty0").unlink()  # the device number only
    os.mknod(root / "dev/tty0", stat.S_IFCHR | 0o620, os.makedev(4, 1))
    os.chmod(root / "dev/tty0", 0o620)  # past the umask
    os.utime(root / "dev/tty0", ns=lower_times)


# VFS_CAP_REVISION_2 with CAP_NET_BIND_SERVICE permitted and effective
_CAP_NET_BIND = bytes.fromhex("0100000200040000000000000000000000000000")


def _hardlink_groups(root: Path) -> list[list[str]]:
    groups: dict[tuple[int, int], list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode):
                groups.setdefault((st.st_dev, st.st_ino), []).append(os.path.relpath(path, root))
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


def _mtimes(root: Path) -> dict[str, int]:
    return {
        os.path.relpath(os.path.join(d, n), root): os.lstat(os.path.join(d, n)).st_mtime_ns
        for d, dirs, files in os.walk(root)
        for n in dirs + files
    }


def _assert_same_tree(a: Path, b: Path) -> None:
    assert lf.describe(a, times=False) == lf.describe(b, times=False)
    assert _hardlink_groups(a) == _hardlink_groups(b)
    ta, tb = _mtimes(a), _mtimes(b)
    for rel, ns in ta.items():  # a PAX mtime passes through a float in tarfile: 1 us
        assert abs(ns - tb[rel]) < 1000, rel


def _names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


def _round_trip(store: SnapshotStore, parents: list[str]) -> tuple[bytes, str]:
    """Diff snapshot c1, add the diff as a layer over ``parents``, prepare c2 from it."""
    buf = io.BytesIO()
    result = make_diff(store, "c1", buf)
    data = buf.getvalue()
    assert result.diff_id == lf.diff_id(data) and result.size == len(data)
    chain = lf.chain_ids([parents[0], result.diff_id])[1] if parents else result.diff_id
    apply_layer(store, chain, io.BytesIO(data), expected_diff_id=result.diff_id)
    store.prepare("c2", [chain, *parents])
    return data, chain


def test_a_diff_applied_over_the_parents_shows_the_same_tree(store: SnapshotStore) -> None:
    parents = _add(store, BASE, TOP)
    store.prepare("c1", parents)
    merged = store.mount("c1")
    try:
        _change(merged)
    finally:
        store.unmount(merged)
    data, _chain = _round_trip(store, parents)

    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = {m.name: m for m in tar}
    assert {"var/lib/app/.wh.b", "etc/.wh.motd", ".wh.gone"} <= set(names)
    # a directory emptied and made again: opaque in the upper dir; its old entries for the copy driver
    remade = "var/lib/app/sub/.wh..wh..opq" if store.driver == "overlay" else "var/lib/app/sub/.wh.c"
    assert remade in names
    assert not any(n.startswith("usr/bin/keep") or n == "etc/passwd.wh" for n in names)
    assert "etc/motd" not in names and "gone/one" not in names  # nothing a whiteout hides
    assert names["srv/data/big.link"].islnk() or names["srv/data/big"].islnk()
    assert not any(
        k.startswith("SCHILY.xattr.trusted.overlay") for m in names.values() for k in m.pax_headers
    )

    a, b = store.mount("c1"), store.mount("c2")
    try:
        _assert_same_tree(a, b)
        assert not (b / "gone").exists() and not (b / "var/lib/app/sub/c").exists()
        assert os.getxattr(b / "srv/data/setuid", "security.capability") == _CAP_NET_BIND
        assert stat.S_IMODE(os.lstat(b / "srv/data/setuid").st_mode) == 0o4755
    finally:
        store.unmount(a)
        store.unmount(b)


def test_an_unchanged_snapshot_gives_an_empty_layer(store: SnapshotStore) -> None:
    parents = _add(store, BASE)
    store.prepare("c1", parents)
    buf = io.BytesIO()
    make_diff(store, "c1", buf)
    assert _names(buf.getvalue()) == []


def test_a_changed_root_is_carried_and_a_snapshot_without_parents_diffs_whole(store: SnapshotStore) -> None:
    parents = _add(store, BASE)
    store.prepare("c1", parents)
    merged = store.mount("c1")
    try:
        os.chmod(merged, 0o711)
    finally:
        store.unmount(merged)
    _data, chain = _round_trip(store, parents)
    b = store.mount("c2")
    try:
        assert stat.S_IMODE(os.lstat(b).st_mode) == 0o711
    finally:
        store.unmount(b)

    store.prepare("scratch", [])
    root = store.mount("scratch")
    try:
        (root / "only").write_bytes(b"x")
    finally:
        store.unmount(root)
    buf = io.BytesIO()
    make_diff(store, "scratch", buf)
    assert _names(buf.getvalue()) == ["only"]
    assert chain in store.list_layers()


def test_a_redirected_directory_is_refused_not_half_written(store: SnapshotStore) -> None:
    if store.driver != "overlay":
        pytest.skip("an overlay upper dir's own case")
    parents = _add(store, BASE)
    store.prepare("c1", parents)
    upper = store.root / "snapshots/c1/upper"
    (upper / "etc").mkdir()
    os.setxattr(upper / "etc", "trusted.overlay.redirect", b"/var")
    with pytest.raises(NotSupported, match="etc: redirect"):
        make_diff(store, "c1", io.BytesIO())


def test_a_user_namespaced_snapshot_is_written_with_the_container_ids(store: SnapshotStore) -> None:
    parents = _add(store, BASE)
    store.prepare("c1", parents, id_offset=(100000, 200000))
    upper = store.root / "snapshots/c1" / ("upper" if store.driver == "overlay" else "rootfs")
    (upper / "mine").write_bytes(b"x")
    os.chown(upper / "mine", 100005, 200007)
    buf = io.BytesIO()
    make_diff(store, "c1", buf)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        assert [(m.name, m.uid, m.gid) for m in tar] == [("mine", 5, 7)]
    os.chown(upper / "mine", 0, 0)  # a host id the container cannot have written
    with pytest.raises(InvalidArgument, match="mine: owner 0:0 is outside the snapshot's id range"):
        make_diff(store, "c1", io.BytesIO())

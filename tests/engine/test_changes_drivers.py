"""docker's changes of a snapshot for each driver: the overlay driver's upper dir looked up in
the parent layers (docker's overlay2), the copy driver's whole tree against its parents' (docker's
naive differ); the same walk order, the engine's mount points left out by both."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable
from pathlib import Path

from containerkit.engine.changes import snapshot_changes
from containerkit.storage.diff import make_diff
from containerkit.storage.snapshots import SnapshotStore
from tests.storage.test_diff import BASE, TOP, _add, _change, store  # noqa: F401 (the store fixture)


def test_changes_of_each_driver_as_dockers_differ_reports_them(store: SnapshotStore, tmp_path: Path) -> None:  # noqa: F811
    parents = _add(store, BASE, TOP)
    store.prepare("ctr", parents)
    root = store.mount("ctr", tmp_path / "merged")
    try:
        _change(root)
        (root / "etc/resolv.conf").write_bytes(b"")  # an engine-made mount point: left out
        (root / "mnt").mkdir()
    finally:
        store.unmount(root)
    found = [str(c) for c in snapshot_changes(store, "ctr", {"etc/resolv.conf", "mnt"})]
    assert found == (OVERLAY if store.driver == "overlay" else COPY)


# docker's overlay2 differ: a directory made anew over a lower one (an opaque dir) is deleted
# and its entries added; a lower file hard linked again was copied up, so it is changed
OVERLAY = [
    "D /bin",
    "A /bin/sh",
    "C /dev",
    "C /dev/tty0",
    "C /etc",
    "A /etc/big.link",
    "C /etc/group",
    "C /etc/hosts",
    "D /etc/motd",
    "C /etc/passwd",
    "C /etc/shells",
    "D /gone",
    "A /srv",
    "A /srv/data",
    "A /srv/data/big",
    "A /srv/data/big.link",
    "A /srv/data/fifo",
    "A /srv/data/hosts",
    "A /srv/data/loop9",
    "A /srv/data/null",
    "A /srv/data/passwd",
    "A /srv/data/setuid",
    "C /usr",
    "C /usr/bin",
    "C /usr/bin/tool",
    "A /usr/bin/tool2",
    "C /var",
    "C /var/lib",
    "C /var/lib/app",
    "C /var/lib/app/a",
    "D /var/lib/app/b",
    "D /var/lib/app/sub",
    "A /var/lib/app/sub/fresh",
]
# docker's naive differ (vfs): a directory that replaced a symlink is changed; a directory
# emptied and filled again is changed, with its old entries deleted
COPY = [
    "C /bin",
    "A /bin/sh",
    "C /dev",
    "C /dev/tty0",
    "C /etc",
    "A /etc/big.link",
    "C /etc/group",
    "C /etc/hosts",
    "D /etc/motd",
    "C /etc/passwd",
    "C /etc/shells",
    "D /gone",
    "A /srv",
    "A /srv/data",
    "A /srv/data/big",
    "A /srv/data/big.link",
    "A /srv/data/fifo",
    "A /srv/data/hosts",
    "A /srv/data/loop9",
    "A /srv/data/null",
    "A /srv/data/passwd",
    "A /srv/data/setuid",
    "C /usr",
    "C /usr/bin",
    "A /usr/bin/tool2",
    "C /var",
    "C /var/lib",
    "C /var/lib/app",
    "C /var/lib/app/a",
    "D /var/lib/app/b",
    "C /var/lib/app/sub",
    "D /var/lib/app/sub/c",
    "A /var/lib/app/sub/fresh",
]


def test_a_layer_leaves_the_engines_mount_points_and_their_directories_out(
    store: SnapshotStore,  # noqa: F811
    tmp_path: Path,
) -> None:
    parents = _add(store, BASE, TOP)
    store.prepare("ctr", parents)
    root = store.mount("ctr", tmp_path / "merged")
    try:
        (root / "etc/resolv.conf").write_bytes(b"")  # made by the engine in an image directory
        (root / "mnt").mkdir()
    finally:
        store.unmount(root)
    skip = {"etc/resolv.conf", "mnt"}
    with tarfile.open(fileobj=_diff(store, skip)) as tar:
        assert tar.getnames() == []  # an unchanged container: an empty layer
    with tarfile.open(fileobj=_diff(store, ())) as tar:
        assert {"etc/resolv.conf", "mnt"} <= set(tar.getnames())  # without exclude: as they are
    root = store.mount("ctr", tmp_path / "merged")
    try:
        (root / "etc/added").write_bytes(b"x")
    finally:
        store.unmount(root)
    with tarfile.open(fileobj=_diff(store, skip)) as tar:
        assert tar.getnames() == ["etc", "etc/added"]


def _diff(snapshots: SnapshotStore, exclude: Iterable[str]) -> io.BytesIO:
    out = io.BytesIO()
    make_diff(snapshots, "ctr", out, exclude=exclude)
    out.seek(0)
    return out

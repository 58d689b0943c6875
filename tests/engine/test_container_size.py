"""``SizeRw`` of a snapshot for each driver, as dockerd adds it (moby's ``directory.Size`` over
overlay2's upper dir, ``archive.ChangesSize`` over the naive differ's changes): file sizes, not
disk blocks; a directory, a deletion and a device count nothing, a hardlinked inode once, a
symlink the length of its target."""

from __future__ import annotations

import os
from pathlib import Path

from containerkit.engine.changes import snapshot_size
from containerkit.storage.snapshots import SnapshotStore
from tests.storage.test_diff import BASE, TOP, _add, store  # noqa: F401 (the store fixture)


def test_size_of_what_a_container_wrote_for_each_driver(store: SnapshotStore, tmp_path: Path) -> None:  # noqa: F811
    store.prepare("ctr", _add(store, BASE, TOP))
    assert snapshot_size(store, "ctr") == 0
    root = store.mount("ctr", tmp_path / "merged")
    try:
        (root / "srv").mkdir()
        (root / "srv/big").write_bytes(b"x" * 5000)  # 5000, on 2 blocks of disk
        os.link(root / "srv/big", root / "srv/big.link")  # the same inode: counted once
        (root / "srv/one").write_bytes(b"1")  # 1 byte, a whole block of disk
        os.symlink("/srv/big", root / "srv/ln")  # 8: the target's length
        (root / "etc/hosts").write_bytes(b"127.0.0.1 db\n")  # a lower file rewritten: 13
        (root / "usr/bin/tool").unlink()  # deleted: nothing
        os.mkfifo(root / "srv/fifo")
        (root / "etc/resolv.conf").write_bytes(b"")  # an engine mount point, empty
    finally:
        store.unmount(root)
    assert snapshot_size(store, "ctr", {"etc/resolv.conf"}) == 5000 + 1 + 8 + 13

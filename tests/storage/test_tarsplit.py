"""Tar-split: a layer unpacked by the snapshot store is written again byte for byte from its dir.

Both drivers, the three tar formats (PAX, GNU, ustar), every entry type, long names and PAX
xattrs, whiteouts, gzip / zstd / plain blobs; a layer that names a path twice keeps no split
(the caller keeps its blob); a file changed in the layer dir is refused by digest.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from containerkit.errors import IntegrityError
from containerkit.linux import overlay
from containerkit.storage import _assemble
from containerkit.storage.apply import apply_layer
from containerkit.storage.snapshots import SnapshotStore
from containerkit.storage.tarsplit import assemble
from tests.conftest import require_root
from tests.images import _layers as lf

LONG = "deep/" + "d" * 120 + "/" + "f" * 140


def _entries() -> list[lf.Entry]:
    return [
        lf.directory("etc"),
        lf.file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
        lf.file("etc/empty"),
        lf.file("etc/big", os.urandom(70_001), mode=0o4755),  # not a multiple of 512, setuid
        lf.file("etc/attr", b"v", xattrs={"user.k": b"value"}),
        lf.hardlink("etc/link", "etc/passwd"),
        lf.symlink("etc/sym", "/etc/passwd"),
        lf.device("dev/null", tarfile.CHRTYPE, 1, 3),
        lf.device("run/fifo", tarfile.FIFOTYPE),
        lf.directory("deep"),
        lf.file(LONG, b"long name\n"),
        lf.whiteout("gone"),
        lf.opaque("etc"),
    ]


@pytest.fixture(params=["overlay", "copy"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SnapshotStore]:
    require_root()
    if request.param == "overlay" and not overlay.overlay_supported(tmp_path):
        pytest.skip("overlayfs cannot be mounted here")
    yield SnapshotStore(tmp_path / "store", driver=request.param)


def _rebuilt(store: SnapshotStore, chain_id: str, diff_id: str) -> bytes:
    out = io.BytesIO()
    size = assemble(store.layer_dir(chain_id), store.tarsplit_path(chain_id), out, diff_id=diff_id)
    assert size == len(out.getvalue())
    return out.getvalue()


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_the_tar_is_written_again_byte_for_byte(store: SnapshotStore, fmt: int, compression: str) -> None:
    tar = lf.build_tar(_entries(), fmt)
    diff_id = lf.diff_id(tar)
    (chain,) = lf.chain_ids([diff_id])
    blob = lf.compress(tar, compression) if compression != "none" else tar
    apply_layer(store, chain, io.BytesIO(blob), expected_diff_id=diff_id)
    assert store.has_tarsplit(chain)
    assert _rebuilt(store, chain, diff_id) == tar
    # the split holds headers, not file data: far smaller than the layer
    assert store.tarsplit_path(chain).stat().st_size < len(tar) // 10


def test_busybox_layer_and_its_removal(store: SnapshotStore, busybox_rootfs_tar: Path) -> None:
    tar = busybox_rootfs_tar.read_bytes()
    diff_id = lf.diff_id(tar)
    (chain,) = lf.chain_ids([diff_id])
    apply_layer(store, chain, busybox_rootfs_tar, expected_diff_id=diff_id)
    assert _rebuilt(store, chain, diff_id) == tar
    store.remove_layer(chain)
    assert not store.tarsplit_path(chain).exists() and not store.has_tarsplit(chain)


@pytest.mark.parametrize(
    "entries",
    [
        [lf.file("a", b"one"), lf.file("a", b"two")],  # the dir keeps only the second
        [lf.file("d/a", b"one"), lf.whiteout("d/a")],
    ],
    ids=["path-twice", "own-whiteout"],
)
def test_a_layer_that_names_a_path_twice_keeps_no_split(
    store: SnapshotStore, entries: list[lf.Entry]
) -> None:
    tar = lf.build_tar(entries)
    diff_id = lf.diff_id(tar)
    (chain,) = lf.chain_ids([diff_id])
    apply_layer(store, chain, io.BytesIO(tar), expected_diff_id=diff_id)
    assert store.has_layer(chain)
    assert not store.has_tarsplit(chain)


def test_a_changed_layer_is_refused_naming_it(store: SnapshotStore) -> None:
    tar = lf.build_tar([lf.file("a", b"same size"), lf.file("b", b"bbb")])
    diff_id = lf.diff_id(tar)
    (chain,) = lf.chain_ids([diff_id])
    apply_layer(store, chain, io.BytesIO(tar), expected_diff_id=diff_id)
    (store.layer_dir(chain) / "a").write_bytes(b"SAME SIZE")
    with pytest.raises(IntegrityError, match=f"layer {diff_id}: the tar rebuilt from"):
        _rebuilt(store, chain, diff_id)
    (store.layer_dir(chain) / "b").write_bytes(b"longer now")
    with pytest.raises(IntegrityError, match="b changed in the layer"):
        _rebuilt(store, chain, diff_id)


@pytest.mark.parametrize("replace", ["shorter", "directory", "fifo", "symlink"])
def test_a_file_replaced_in_the_layer_is_refused_without_blocking(store: SnapshotStore, replace: str) -> None:
    """A small file is read in one read of a byte more than its size (no fstat): whatever
    took its place is refused naming the layer, a FIFO without blocking, a symlink unfollowed."""
    tar = lf.build_tar([lf.file("a", b"aaaa"), lf.file("sub/b", b"bbbb")])
    diff_id = lf.diff_id(tar)
    (chain,) = lf.chain_ids([diff_id])
    apply_layer(store, chain, io.BytesIO(tar), expected_diff_id=diff_id)
    path = store.layer_dir(chain) / "sub" / "b"
    path.unlink()
    if replace == "shorter":
        path.write_bytes(b"bbb")
    elif replace == "directory":
        path.mkdir()
    elif replace == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("../a")  # a file of the same size, through a link
    with pytest.raises(IntegrityError, match=f"layer {diff_id}: "):
        _rebuilt(store, chain, diff_id)


@pytest.mark.parametrize("resolver", ["openat2", "walk"])
def test_a_directory_replaced_by_a_link_out_of_the_layer_is_not_read_through(
    store: SnapshotStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resolver: str
) -> None:
    """An attack on the rebuild: the layer's ``sub`` becomes a symlink to a directory outside
    the layer holding a canary with the very bytes the split expects, so the digest would
    match; the rebuild must refuse the link instead of reading (and a push uploading) it,
    with ``openat2`` and with the walk used where the kernel has none."""
    monkeypatch.setattr(_assemble, "_openat2_works", resolver == "openat2")
    tar = lf.build_tar([lf.directory("sub"), lf.file("sub/deep/b", b"secret-canary")])
    diff_id = lf.diff_id(tar)
    (chain,) = lf.chain_ids([diff_id])
    apply_layer(store, chain, io.BytesIO(tar), expected_diff_id=diff_id)
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "b").write_bytes(b"secret-canary")
    sub = store.layer_dir(chain) / "sub"
    (sub / "deep" / "b").unlink()
    (sub / "deep").rmdir()
    sub.rmdir()
    sub.symlink_to(outside)
    with pytest.raises(IntegrityError, match=f"layer {diff_id}: cannot rebuild its tar"):
        _rebuilt(store, chain, diff_id)


def test_a_cut_split_is_refused_at_every_length(store: SnapshotStore) -> None:
    """The split is read in large steps: a record cut anywhere (its kind, a length, a name, raw
    bytes) is "ends early", and a split cut between records is a tar whose digest is wrong."""
    tar = lf.build_tar(_entries())
    diff_id = lf.diff_id(tar)
    (chain,) = lf.chain_ids([diff_id])
    apply_layer(store, chain, io.BytesIO(tar), expected_diff_id=diff_id)
    split = store.tarsplit_path(chain)
    records = gzip.decompress(split.read_bytes())
    assert _rebuilt(store, chain, diff_id) == tar
    for cut in sorted({1, 3, 5, 12, len(records) // 2, len(records) - 1}):
        split.write_bytes(gzip.compress(records[:cut]))
        early = "the tar-split ends early" if cut < 12 else "(the tar-split ends early|the tar rebuilt)"
        with pytest.raises(IntegrityError, match=f"layer {diff_id}: {early}"):
            _rebuilt(store, chain, diff_id)


def test_a_bad_blob_leaves_no_split(store: SnapshotStore) -> None:
    tar = lf.build_tar([lf.file("a", os.urandom(4096))])
    diff_id = lf.diff_id(tar)
    (chain,) = lf.chain_ids([diff_id])
    with pytest.raises(IntegrityError, match="truncated layer"):
        apply_layer(store, chain, io.BytesIO(lf.compress(tar, "gzip")[:-100]), expected_diff_id=diff_id)
    assert not store.has_layer(chain)
    assert not store.tarsplit_path(chain).exists()
    assert not list((store.root / "meta").iterdir())

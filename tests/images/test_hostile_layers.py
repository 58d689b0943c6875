"""Hostile layers: each is refused with an error naming the entry, and nothing lands outside."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from containerkit.errors import IntegrityError, InvalidArgument, UnsafeArchive
from containerkit.images.unpack import unpack_layer
from containerkit.storage.apply import apply_layer
from containerkit.storage.snapshots import SnapshotStore
from tests.conftest import require_root
from tests.images import _layers as lf

CHAIN = "sha256:" + "ab" * 32


@pytest.fixture(autouse=True)
def _root() -> None:
    require_root()


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[Path]:
    """A directory next to dest with a sentinel; it must look the same after every case."""
    out = tmp_path / "outside"
    out.mkdir()
    (out / "sentinel").write_text("untouched")
    (out / "target").write_text("a file an archive would love to link to")
    before = _snapshot(out)
    yield out
    assert _snapshot(out) == before, "the archive wrote outside dest"


def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    return {
        str(p.relative_to(root)): (p.lstat().st_ino, p.lstat().st_nlink, p.lstat().st_mtime_ns)
        for p in [root, *root.rglob("*")]
    }


def _cases(outside: Path) -> dict[str, tuple[list[lf.Entry], type[Exception], str]]:
    """name -> (entries, expected error, entry name the message must contain)."""
    return {
        "dotdot": ([lf.file("../evil", b"x")], UnsafeArchive, "../evil"),
        "dotdot-inner": ([lf.file("a/../../evil", b"x")], UnsafeArchive, "a/../../evil"),
        "dotdot-abs": ([lf.file("/../evil", b"x")], UnsafeArchive, "/../evil"),
        "symlink-abs-parent": (
            [lf.symlink("lnk", str(outside)), lf.file("lnk/file", b"x")],
            UnsafeArchive,
            "lnk/file",
        ),
        "symlink-relative-parent": (
            [lf.symlink("lnk", "../../.."), lf.file("lnk/x", b"x")],
            UnsafeArchive,
            "lnk/x",
        ),
        "symlink-parent-dir": (
            [lf.symlink("lnk", str(outside)), lf.directory("lnk/newdir")],
            UnsafeArchive,
            "lnk/newdir",
        ),
        "symlink-nested-parent": (
            [lf.directory("d"), lf.symlink("d/sub", str(outside)), lf.file("d/sub/deeper/f", b"x")],
            UnsafeArchive,
            "d/sub/deeper/f",
        ),
        "symlink-parent-of-node": (
            [lf.symlink("lnk", str(outside)), lf.device("lnk/null", tarfile.CHRTYPE, 1, 3)],
            UnsafeArchive,
            "lnk/null",
        ),
        "symlink-parent-of-whiteout": (
            [lf.symlink("lnk", str(outside)), lf.whiteout("lnk/sentinel")],
            UnsafeArchive,
            "lnk/.wh.sentinel",
        ),
        "symlink-parent-of-opaque": (
            [lf.symlink("lnk", str(outside)), lf.opaque("lnk")],
            UnsafeArchive,
            "lnk/.wh..wh..opq",
        ),
        "hardlink-host-passwd": ([lf.hardlink("pw", "/etc/passwd")], InvalidArgument, "pw"),
        "hardlink-dotdot": ([lf.hardlink("x", "../../x")], UnsafeArchive, "x"),
        "hardlink-outside-abs": ([lf.hardlink("x", str(outside / "target"))], InvalidArgument, "x"),
        "hardlink-through-symlink": (
            [lf.symlink("lnk", str(outside)), lf.hardlink("h", "lnk/target")],
            UnsafeArchive,
            "h",
        ),
        "hardlink-to-symlink-out": (
            [lf.symlink("s", str(outside / "target")), lf.hardlink("h", "s")],
            UnsafeArchive,
            "h",
        ),
        "hardlink-to-symlink-climbing": (
            [lf.symlink("d/s", "../../outside/target"), lf.hardlink("h", "d/s")],
            UnsafeArchive,
            "h",
        ),
        "hardlink-to-dir": ([lf.directory("d"), lf.hardlink("h", "d")], UnsafeArchive, "h"),
        "root-as-file": ([lf.file("./", b"x")], InvalidArgument, "./"),
    }


CASE_NAMES = list(_cases(Path("/x")))


@pytest.mark.parametrize("case", CASE_NAMES)
def test_refused(case: str, outside: Path, tmp_path: Path) -> None:
    entries, error, entry = _cases(outside)[case]
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(error) as info:
        unpack_layer(io.BytesIO(lf.build_tar(entries)), dest)
    assert repr(entry) in str(info.value)
    assert not Path("/evil").exists()


@pytest.mark.parametrize("case", CASE_NAMES)
def test_refused_by_the_store_leaves_nothing(case: str, outside: Path, tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "store", driver="copy")
    entries, error, _ = _cases(outside)[case]
    with pytest.raises(error):
        apply_layer(store, CHAIN, io.BytesIO(lf.build_tar(entries)))
    _assert_store_empty(store)


def _assert_store_empty(store: SnapshotStore) -> None:
    assert store.list_layers() == []
    for sub in ("layers", "meta", "l", "tmp", "snapshots"):
        assert os.listdir(store.root / sub) == [], sub


def test_absolute_paths_land_inside(outside: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    tar = lf.build_tar([lf.file("/etc/evil-abs", b"inside"), lf.symlink("/abs-link", "/etc/passwd")])
    unpack_layer(io.BytesIO(tar), dest)
    assert (dest / "etc/evil-abs").read_bytes() == b"inside"
    assert os.readlink(dest / "abs-link") == "/etc/passwd"
    assert not Path("/etc/evil-abs").exists()


def test_directory_over_symlink_replaces_it(outside: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    tar = lf.build_tar([lf.symlink("x", str(outside)), lf.directory("x"), lf.file("x/sentinel", b"mine")])
    unpack_layer(io.BytesIO(tar), dest)
    assert (dest / "x").is_dir() and not (dest / "x").is_symlink()
    assert (dest / "x/sentinel").read_bytes() == b"mine"


def test_overlay_xattrs_from_the_archive_are_dropped(tmp_path: Path) -> None:
    tar = lf.build_tar([lf.directory("d", xattrs={"trusted.overlay.opaque": b"y", "user.ok": b"1"})])
    unpack_layer(io.BytesIO(tar), tmp_path)
    assert os.listxattr(tmp_path / "d") == ["user.ok"]


class _Zeros:
    """``size`` zero bytes, produced as read (the bomb is never in memory)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


@pytest.fixture(scope="module")
def gzip_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 MB of zeros in one entry: about 200 KB of gzip."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.tar.gz"
    info = tarfile.TarInfo("zeros")
    info.size = 200 << 20
    with gzip.open(path, "wb", compresslevel=9) as gz, tarfile.open(fileobj=gz, mode="w|") as tar:
        tar.addfile(info, _Zeros(info.size))
    return path


def test_gzip_bomb_stops_at_max_bytes(gzip_bomb: Path, tmp_path: Path) -> None:
    assert gzip_bomb.stat().st_size < 1 << 20
    with pytest.raises(UnsafeArchive, match=f"limit of {50 << 20} uncompressed bytes"):
        unpack_layer(gzip_bomb, tmp_path, max_bytes=50 << 20)
    assert (tmp_path / "zeros").stat().st_size <= 50 << 20


def test_gzip_bomb_in_the_store(gzip_bomb: Path, tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "store", driver="copy", max_layer_bytes=50 << 20)
    with pytest.raises(UnsafeArchive, match="max_bytes"):
        apply_layer(store, CHAIN, gzip_bomb)
    _assert_store_empty(store)


def _payload_tar() -> bytes:
    return lf.build_tar([lf.file("a", os.urandom(300_000)), lf.file("b", os.urandom(300_000))])


def _members_end(tar: bytes) -> int:
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        last = t.getmembers()[-1]
    return last.offset_data + -(-last.size // 512) * 512


@pytest.mark.parametrize(
    ("kind", "cut"),
    [("gzip", 0.5), ("gzip", -8), ("zstd", 0.5), ("plain", 0.5), ("plain", 1.0), ("plain", 0.0)],
)
def test_truncated_stream(kind: str, cut: float, tmp_path: Path) -> None:
    """Cut mid-data, just before the gzip trailer, and (plain) exactly before the end marker."""
    tar = _payload_tar()
    blob = lf.compress(tar, kind)
    if cut == 0.0:
        end = 512  # a lone header, which tarfile alone would take for a clean end
    elif cut == 1.0:
        end = _members_end(tar)  # everything but the end-of-archive marker
    else:
        end = int(len(blob) * cut) if cut > 0 else int(cut)
    blob = blob[:end]
    with pytest.raises(IntegrityError, match="truncated"):
        unpack_layer(io.BytesIO(blob), tmp_path)


def test_corrupt_gzip(tmp_path: Path) -> None:
    blob = bytearray(lf.compress(_payload_tar(), "gzip"))
    blob[len(blob) // 2] ^= 0xFF
    with pytest.raises(IntegrityError):
        unpack_layer(io.BytesIO(bytes(blob)), tmp_path)


def test_wrong_diff_id(tmp_path: Path) -> None:
    tar = _payload_tar()
    wrong = "sha256:" + "0" * 64
    with pytest.raises(IntegrityError) as info:
        unpack_layer(io.BytesIO(lf.compress(tar, "gzip")), tmp_path, expected_diff_id=wrong)
    assert wrong in str(info.value) and lf.diff_id(tar) in str(info.value)


def test_wrong_diff_id_in_the_store(tmp_path: Path) -> None:
    for driver in ("overlay", "copy"):
        store = SnapshotStore(tmp_path / driver, driver=driver)
        with pytest.raises(IntegrityError, match="mismatch"):
            apply_layer(store, CHAIN, io.BytesIO(_payload_tar()), expected_diff_id="sha256:" + "1" * 64)
        _assert_store_empty(store)


def test_truncated_in_the_store(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "store", driver="copy")
    blob = lf.compress(_payload_tar(), "gzip")
    with pytest.raises(IntegrityError, match="truncated"):
        apply_layer(store, CHAIN, io.BytesIO(blob[: len(blob) // 2]))
    _assert_store_empty(store)


def test_zlib_is_the_gzip_backend() -> None:
    """The bomb guard relies on zlib's max_length; make sure it bounds output as documented."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert len(d.decompress(gzip.compress(bytes(10 << 20)), 1 << 20)) == 1 << 20

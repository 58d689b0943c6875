"""unpack_layer on well-formed layers: formats, metadata, whiteouts, long names, streaming."""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from pathlib import Path

import pytest

from containerkit.errors import InvalidArgument
from containerkit.images.unpack import UnpackResult, unpack_layer
from tests.conftest import BUSYBOX, require_root
from tests.images import _layers as lf


@pytest.fixture(autouse=True)
def _root() -> None:
    require_root()


class _Pipe:
    """A stream with only ``read``: proves nothing seeks or loads the whole layer."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos, self.max_read = data, 0, 0

    def read(self, size: int = -1) -> bytes:
        size = len(self._data) - self._pos if size < 0 else size
        self.max_read = max(self.max_read, size)
        out = self._data[self._pos : self._pos + size]
        self._pos += len(out)
        return out


@pytest.mark.parametrize("kind", ["plain", "gzip", "zstd"])
def test_busybox_rootfs(kind: str, busybox_rootfs_tar: Path, tmp_path: Path) -> None:
    plain = busybox_rootfs_tar.read_bytes()
    blob = tmp_path / f"layer.{kind}"
    blob.write_bytes(lf.compress(plain, kind))
    dest = tmp_path / "rootfs"
    dest.mkdir()

    result = unpack_layer(blob, dest, expected_diff_id=lf.diff_id(plain))

    assert result == UnpackResult(diff_id=lf.diff_id(plain), size=len(plain))
    assert (dest / "bin/busybox").read_bytes() == BUSYBOX.read_bytes()
    assert os.readlink(dest / "bin/sh") == "busybox"
    assert stat.S_IMODE(os.stat(dest / "tmp").st_mode) == 0o1777
    assert stat.S_IMODE(os.stat(dest / "bin/busybox").st_mode) == 0o755
    assert "app:x:1000" in (dest / "etc/passwd").read_text()
    for path in ("bin", "etc", "etc/passwd", "bin/busybox"):  # dirs keep their mtime too
        assert os.stat(dest / path).st_mtime == lf.MTIME
    assert os.lstat(dest / "bin/sh").st_mtime == lf.MTIME


def test_streams_from_a_pipe_in_bounded_reads(busybox_rootfs_tar: Path, tmp_path: Path) -> None:
    data = lf.compress(busybox_rootfs_tar.read_bytes(), "gzip")
    pipe = _Pipe(data)
    result = unpack_layer(pipe, tmp_path)  # type: ignore[arg-type]
    assert result.diff_id == lf.diff_id(busybox_rootfs_tar.read_bytes())
    assert pipe.max_read <= 1 << 20
    assert (tmp_path / "bin/busybox").stat().st_size == BUSYBOX.stat().st_size


def test_concatenated_gzip_members(tmp_path: Path) -> None:
    tar = lf.build_tar([lf.file("a", b"1" * 5000), lf.file("b", b"2" * 7000)])
    blob = lf.compress(tar[:3000], "gzip") + lf.compress(tar[3000:], "gzip")
    result = unpack_layer(_Pipe(blob), tmp_path)  # type: ignore[arg-type]
    assert result.diff_id == lf.diff_id(tar)
    assert (tmp_path / "b").read_bytes() == b"2" * 7000


def test_metadata_is_preserved(tmp_path: Path) -> None:
    payload = os.urandom(3 << 20)
    tar = lf.build_tar(
        [
            lf.directory("d", 0o2750, uid=1000, gid=2000, xattrs={"user.dir": b"yes"}),
            lf.file("d/suid", payload, 0o4755, uid=0, gid=0, mtime=1_600_000_000),
            lf.file("d/sgid", b"x", 0o2711, uid=1000, gid=2000),
            lf.file("d/attr", b"x", 0o600, xattrs={"user.text": b"hello", "user.bin": b"\x00\xff\x01"}),
            lf.directory("sticky", 0o1777),
            lf.hardlink("d/suid-again", "d/suid"),
            lf.hardlink("/abs-link", "/d/sgid"),  # leading '/' means the layer root, as in docker
            lf.symlink("d/abs", "/etc/shadow"),
            lf.symlink("d/dangling", "../nowhere/at/all"),
            lf.device("dev/null", tarfile.CHRTYPE, 1, 3, 0o666),
            lf.device("dev/loop9", tarfile.BLKTYPE, 7, 9, 0o660),
            lf.device("dev/fifo", tarfile.FIFOTYPE, mode=0o620),
            lf.file("nested/deep/implicit/parents", b"p"),
        ]
    )
    unpack_layer(_Pipe(tar), tmp_path)  # type: ignore[arg-type]
    d = tmp_path / "d"

    st = os.stat(d)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o2750, 1000, 2000)
    assert os.getxattr(d, "user.dir") == b"yes"
    st = os.stat(d / "suid")
    assert (stat.S_IMODE(st.st_mode), st.st_mtime, st.st_nlink) == (0o4755, 1_600_000_000, 2)
    assert (d / "suid").read_bytes() == payload
    assert os.stat(d / "suid-again").st_ino == st.st_ino
    assert os.stat(tmp_path / "abs-link").st_ino == os.stat(d / "sgid").st_ino
    st = os.stat(d / "sgid")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o2711, 1000, 2000)
    assert os.getxattr(d / "attr", "user.text") == b"hello"
    assert os.getxattr(d / "attr", "user.bin") == b"\x00\xff\x01"
    assert stat.S_IMODE(os.stat(tmp_path / "sticky").st_mode) == 0o1777
    assert os.readlink(d / "abs") == "/etc/shadow"
    assert os.readlink(d / "dangling") == "../nowhere/at/all"
    null = os.lstat(tmp_path / "dev/null")
    assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
    assert stat.S_IMODE(null.st_mode) == 0o666
    loop = os.lstat(tmp_path / "dev/loop9")
    assert stat.S_ISBLK(loop.st_mode) and (os.major(loop.st_rdev), os.minor(loop.st_rdev)) == (7, 9)
    assert stat.S_ISFIFO(os.lstat(tmp_path / "dev/fifo").st_mode)
    assert (tmp_path / "nested/deep/implicit/parents").read_bytes() == b"p"
    assert os.stat(d).st_mtime == lf.MTIME  # set after its entries were created


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_long_names_and_link_targets(fmt: int, tmp_path: Path) -> None:
    long_dir = "/".join(["a-fairly-long-directory-name-" + str(i) for i in range(8)])
    name = f"{long_dir}/{'f' * 200}"
    unicode = "données/ünïcödé-名前.txt"
    tar = lf.build_tar(
        [
            lf.file(name, b"long"),
            lf.symlink("s" * 150, name),
            lf.hardlink("h" * 150, name),
            lf.file(unicode, b"u"),
        ],
        fmt,
    )
    unpack_layer(_Pipe(tar), tmp_path)  # type: ignore[arg-type]
    assert (tmp_path / name).read_bytes() == b"long"
    assert os.readlink(tmp_path / ("s" * 150)) == name
    assert os.stat(tmp_path / ("h" * 150)).st_ino == os.stat(tmp_path / name).st_ino
    assert (tmp_path / unicode).read_bytes() == b"u"


def test_later_entries_replace_earlier_ones(tmp_path: Path) -> None:
    tar = lf.build_tar(
        [
            lf.file("x", b"first"),
            lf.file("x", b"second"),
            lf.directory("y"),
            lf.file("y/inner", b"i"),
            lf.file("y", b"now a file"),
            lf.symlink("z", "/somewhere"),
            lf.directory("z", 0o700),
        ]
    )
    unpack_layer(_Pipe(tar), tmp_path)  # type: ignore[arg-type]
    assert (tmp_path / "x").read_bytes() == b"second"
    assert (tmp_path / "y").read_bytes() == b"now a file"
    assert (tmp_path / "z").is_dir() and not (tmp_path / "z").is_symlink()


def test_overlay_whiteouts(tmp_path: Path) -> None:
    tar = lf.build_tar(
        [lf.directory("a"), lf.whiteout("a/x"), lf.opaque("b"), lf.file("b/new", b"n"), lf.whiteout("gone")]
    )
    result = unpack_layer(_Pipe(tar), tmp_path)  # type: ignore[arg-type]
    for path in ("a/x", "gone"):
        st = os.lstat(tmp_path / path)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(tmp_path / "b", "trusted.overlay.opaque") == b"y"
    assert not any(p.name.startswith(".wh.") for p in tmp_path.rglob("*"))
    assert result.whiteouts == ("a/x", "gone") and result.opaque_dirs == ("b",)


def test_apply_whiteouts_on_lower_content(tmp_path: Path) -> None:
    lower = lf.build_tar(
        [
            lf.file("a/x", b"x"),
            lf.file("a/y", b"y"),
            lf.file("b/z", b"z"),
            lf.file("b/sub/old", b"o"),
            lf.directory("lib2"),
            lf.symlink("lib", "lib2"),
            lf.file("lib2/keep", b"k"),
        ]
    )
    upper = lf.build_tar(
        [
            lf.file("b/sub/mine", b"m"),  # before the opaque marker: same layer, kept
            lf.opaque("b"),
            lf.file("b/new", b"n"),
            lf.whiteout("a/x"),
            lf.file("a/w", b"w"),
            lf.whiteout("a/w"),  # a whiteout never hides its own layer's file
            lf.file("lib/own", b"own"),  # lower symlink parent: replaced by a directory, as overlay shows
        ]
    )
    unpack_layer(_Pipe(lower), tmp_path, whiteouts="apply")  # type: ignore[arg-type]
    unpack_layer(_Pipe(upper), tmp_path, whiteouts="apply")  # type: ignore[arg-type]
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if not p.is_dir())
    assert files == ["a/w", "a/y", "b/new", "b/sub/mine", "lib/own", "lib2/keep"]
    assert not (tmp_path / "lib").is_symlink()


def test_unsupported_compression_and_garbage(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="bzip2"):
        unpack_layer(_Pipe(b"BZh91AY&SY" + b"\0" * 100), tmp_path)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="not a tar"):
        unpack_layer(_Pipe(b"hello, this is not a tar archive" * 40), tmp_path)  # type: ignore[arg-type]


def test_empty_layer(tmp_path: Path) -> None:
    tar = lf.build_tar([])
    result = unpack_layer(_Pipe(lf.compress(tar, "gzip")), tmp_path)  # type: ignore[arg-type]
    assert result.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert os.listdir(tmp_path) == []


def test_directories_visited_in_turn_beyond_the_fd_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries that go round many directories (more than the parent-fd cache holds) land where
    they belong, with their directories' modes and times, whatever the cache's size."""
    entries = [lf.directory(f"d{n}", 0o750 if n % 2 else 0o755) for n in range(12)]
    entries += [lf.file(f"d{n % 12}/f{n}", f"{n}".encode(), 0o600 + n % 8) for n in range(60)]
    entries += [lf.directory(f"d{n}/sub", 0o700) for n in range(12)]
    entries += [lf.file(f"d{n % 12}/sub/g{n}", b"x" * n) for n in range(36)]
    tar = lf.build_tar(entries)
    roomy, tight = tmp_path / "roomy", tmp_path / "tight"
    roomy.mkdir()
    tight.mkdir()
    unpack_layer(_Pipe(tar), roomy)  # type: ignore[arg-type]
    monkeypatch.setattr("containerkit.images.unpack._fd_cache_size", lambda: 3)
    result = unpack_layer(_Pipe(tar), tight)  # type: ignore[arg-type]
    assert result.diff_id == lf.diff_id(tar)
    assert lf.describe(tight) == lf.describe(roomy)
    assert (tight / "d5/f17").read_bytes() == b"17"
    assert stat.S_IMODE((tight / "d3").stat().st_mode) == 0o750

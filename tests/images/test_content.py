"""The content store verifies, never shows half a blob, and never turns a digest into a path escape."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

import pytest

from containerkit.errors import IntegrityError, InvalidArgument, NotFound
from containerkit.images.content import ContentStore


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "content")


def _ingest_dir_empty(store: ContentStore) -> bool:
    return not os.listdir(store.root / "ingest")


def test_ingest_round_trip(store: ContentStore) -> None:
    data = os.urandom(3 * (1 << 20) + 17)
    desc = store.ingest(io.BytesIO(data), _digest(data), len(data))
    assert (desc.digest, desc.size) == (_digest(data), len(data))
    assert store.path(desc.digest) == store.root / "blobs" / "sha256" / desc.digest[7:]
    assert store.has(desc.digest)
    assert store.read_bytes(desc.digest) == data
    assert list(store.list()) == [desc.digest]
    assert _ingest_dir_empty(store)
    # a second ingest of the same content is idempotent
    assert store.ingest(io.BytesIO(data)) == desc
    assert store.delete(desc.digest)
    assert not store.has(desc.digest)
    assert not store.delete(desc.digest)


def test_digest_mismatch_names_both_and_leaves_nothing(store: ContentStore) -> None:
    wrong = _digest(b"other")
    with pytest.raises(IntegrityError) as info:
        store.ingest(io.BytesIO(b"payload"), wrong)
    assert wrong in str(info.value) and _digest(b"payload") in str(info.value)
    assert list(store.list()) == [] and _ingest_dir_empty(store)


def test_truncated_and_oversized(store: ContentStore) -> None:
    data = b"x" * 1000
    with pytest.raises(IntegrityError, match="truncated blob"):
        store.ingest(io.BytesIO(data[:999]), _digest(data), len(data))
    with pytest.raises(IntegrityError, match="larger"):
        store.ingest(io.BytesIO(data + b"y"), _digest(data), len(data))
    assert list(store.list()) == [] and _ingest_dir_empty(store)


class _Exploding(io.RawIOBase):
    def __init__(self) -> None:
        self.calls = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        self.calls += 1
        if self.calls > 2:
            raise OSError("connection reset")
        b[:4] = b"data"
        return 4


def test_failed_stream_leaves_nothing(store: ContentStore) -> None:
    with pytest.raises(OSError, match="connection reset"):
        store.ingest(_Exploding())  # type: ignore[arg-type]
    assert list(store.list()) == [] and _ingest_dir_empty(store)


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:../../etc/passwd",
        "sha256:" + "A" * 64,
        "sha512:" + "a" * 64,
        "a" * 64,
        "sha256:" + "a" * 63,
        "",
    ],
)
def test_bad_digests_are_rejected(store: ContentStore, digest: str) -> None:
    for op in (store.path, store.has, store.open, store.delete):
        with pytest.raises(InvalidArgument):
            op(digest)
    with pytest.raises(InvalidArgument):
        store.ingest(io.BytesIO(b""), digest)


def test_missing_blob(store: ContentStore) -> None:
    with pytest.raises(NotFound, match=r"sha256:0+"):
        store.open("sha256:" + "0" * 64)


def test_concurrent_ingest_of_the_same_blob(store: ContentStore) -> None:
    data = os.urandom(1 << 20)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            store.ingest(io.BytesIO(data), _digest(data), len(data))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.read_bytes(_digest(data)) == data
    assert _ingest_dir_empty(store)


def test_clean_ingest_removes_stale_temp_files(store: ContentStore) -> None:
    stale = store.root / "ingest" / "ingest-crashed"
    stale.write_bytes(b"half")
    os.utime(stale, (0, 0))
    assert store.clean_ingest() == 1
    assert not stale.exists()


def test_adopt_publishes_a_file_written_in_the_ingest_dir_without_a_copy(
    store: ContentStore, tmp_path: Path
) -> None:
    data = b"layer bytes" * 1000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    written = store.ingest_dir() / "commit-made-here"
    written.write_bytes(data)
    inode = written.stat().st_ino
    desc = store.adopt(written, digest)
    assert (desc.digest, desc.size) == (digest, len(data))
    assert not written.exists()
    assert store.path(digest).stat().st_ino == inode  # renamed, not copied
    assert store.read_bytes(digest) == data
    assert store.path(digest).stat().st_mode & 0o777 == 0o444
    outside = tmp_path / "elsewhere"
    outside.write_bytes(data)
    with pytest.raises(InvalidArgument, match="only a file in"):
        store.adopt(outside, digest)

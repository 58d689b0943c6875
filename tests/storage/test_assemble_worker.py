"""A layer rebuilt and gzipped in a child process: the bytes of the in-process path, its checks
carried back to the parent, and no process left behind however the stream ends.

Real child interpreters, real layers unpacked by the snapshot store (copy driver: what is
tested here is the rebuild, not the mount). The child is killed with a real SIGKILL.
"""

from __future__ import annotations

import gzip
import io
import os
import signal
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from containerkit.errors import IntegrityError, NotFound, RuntimeFailure
from containerkit.images.deflate import gzip_chunks
from containerkit.storage._assemble_worker import gzip_rebuilt
from containerkit.storage.apply import apply_layer
from containerkit.storage.snapshots import SnapshotStore
from containerkit.storage.tarsplit import assemble
from tests.conftest import child_pids, require_root
from tests.images import _layers as lf


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SnapshotStore]:
    require_root()
    yield SnapshotStore(tmp_path / "store", driver="copy")


def _layer(store: SnapshotStore, entries: list[lf.Entry]) -> tuple[str, str, bytes]:
    tar = lf.build_tar(entries)
    diff_id = lf.diff_id(tar)
    (chain,) = lf.chain_ids([diff_id])
    apply_layer(store, chain, io.BytesIO(tar), expected_diff_id=diff_id)
    assert store.has_tarsplit(chain)
    return chain, diff_id, tar


def _big(store: SnapshotStore) -> tuple[str, str, bytes]:
    """Incompressible files well beyond the data pipe's buffer: the child is still writing when
    the parent has read its first chunk."""
    return _layer(store, [lf.file(f"d/f{n}", os.urandom(1 << 20)) for n in range(12)])


def test_the_child_sends_the_bytes_of_the_in_process_gzip(store: SnapshotStore) -> None:
    chain, diff_id, tar = _layer(
        store,
        [
            lf.directory("etc"),
            lf.file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
            lf.file("etc/big", os.urandom(3 << 20)),
            lf.file("etc/text", b"text\n" * 300_000),
            lf.symlink("etc/sym", "/etc/passwd"),
        ],
    )
    before = child_pids()
    sent = b"".join(gzip_rebuilt(store.layer_dir(chain), store.tarsplit_path(chain), diff_id=diff_id))
    here = b"".join(
        gzip_chunks(
            lambda out: assemble(store.layer_dir(chain), store.tarsplit_path(chain), out, diff_id=diff_id)
        )
    )
    assert sent == here
    assert gzip.decompress(sent) == tar
    assert child_pids() <= before


def test_a_layer_changed_on_disk_is_refused_naming_it_after_the_last_chunk(store: SnapshotStore) -> None:
    chain, diff_id, _ = _big(store)
    changed = store.layer_dir(chain) / "d" / "f11"
    data = bytearray(changed.read_bytes())
    data[-1] ^= 1  # same size: only the digest of the whole tar tells
    changed.write_bytes(bytes(data))
    before = child_pids()
    chunks = gzip_rebuilt(store.layer_dir(chain), store.tarsplit_path(chain), diff_id=diff_id)
    got = []
    with pytest.raises(IntegrityError, match=f"layer {diff_id}: the tar rebuilt from .* has digest"):
        for chunk in chunks:
            got.append(chunk)
    assert len(b"".join(got)) > 11 << 20  # the bytes went out first: only the end tells
    assert child_pids() <= before


def test_a_file_of_another_size_is_refused_naming_it(store: SnapshotStore) -> None:
    chain, diff_id, _ = _layer(store, [lf.file("a", b"aaa"), lf.file("sub/b", b"bbb")])
    (store.layer_dir(chain) / "sub" / "b").write_bytes(b"longer now")
    with pytest.raises(IntegrityError, match=f"layer {diff_id}: sub/b changed in the layer"):
        b"".join(gzip_rebuilt(store.layer_dir(chain), store.tarsplit_path(chain), diff_id=diff_id))


def _begun(store: SnapshotStore) -> tuple[str, Generator[bytes, None, None], int, set[int]]:
    """A big layer's rebuild after its first chunk: (diff id, the rest of the stream, the
    child's pid, the child processes before it)."""
    chain, diff_id, _ = _big(store)
    before = child_pids()
    chunks = gzip_rebuilt(store.layer_dir(chain), store.tarsplit_path(chain), diff_id=diff_id)
    next(chunks)
    (child,) = child_pids() - before
    return diff_id, chunks, child, before


def test_a_killed_child_is_an_error_naming_the_layer(store: SnapshotStore) -> None:
    diff_id, chunks, child, before = _begun(store)
    os.kill(child, signal.SIGKILL)
    with pytest.raises(
        RuntimeFailure, match=f"layer {diff_id}: the process rebuilding its tar was killed by signal 9"
    ):
        for _ in chunks:
            pass
    assert child_pids() <= before


def test_leaving_the_stream_early_kills_and_reaps_the_child(store: SnapshotStore) -> None:
    _, chunks, child, before = _begun(store)
    chunks.close()
    assert child_pids() <= before
    assert not os.path.exists(f"/proc/{child}")  # reaped, not a zombie


def test_a_split_that_is_gone_is_reported_from_the_child(store: SnapshotStore, tmp_path: Path) -> None:
    chain, diff_id, _ = _layer(store, [lf.file("a", b"aaa")])
    missing = tmp_path / "no-such-split.gz"
    with pytest.raises(NotFound, match=f"layer {diff_id}: cannot rebuild its tar: .*no-such-split"):
        b"".join(gzip_rebuilt(store.layer_dir(chain), missing, diff_id=diff_id))

"""Layer gzip through ISA-L: standard gzip, the same bytes whatever the writer's pieces, errors and
early ends handed across the helper thread."""

from __future__ import annotations

import gzip
import os
import random
import threading
from collections.abc import Callable

import pytest

from containerkit.errors import IntegrityError
from containerkit.images.deflate import BLOCK, GzipError, gunzip_object, gzip_chunks

DATA = (b"layer text " * 50_000) + os.urandom(3 * BLOCK // 2) + b"tail"


def _writer(pieces: list[int]) -> Callable[[object], None]:
    def write(out: object) -> None:
        pos = 0
        for size in pieces:
            out.write(DATA[pos : pos + size])  # type: ignore[attr-defined]
            pos += size
        out.write(DATA[pos:])  # type: ignore[attr-defined]

    return write


def test_the_same_gzip_whatever_the_pieces_written() -> None:
    whole = b"".join(gzip_chunks(_writer([])))
    assert gzip.decompress(whole) == DATA
    assert whole[4:8] == b"\0\0\0\0"  # mtime 0: nothing of the moment in the bytes
    rng = random.Random(7)
    pieces = [rng.choice((1, 511, 4096, BLOCK - 1, BLOCK + 3)) for _ in range(40)]
    assert b"".join(gzip_chunks(_writer(pieces))) == whole


def test_an_error_of_the_writer_comes_after_what_it_wrote() -> None:
    def write(out: object) -> None:
        out.write(DATA)  # type: ignore[attr-defined]
        raise IntegrityError("layer changed")

    got = []
    with pytest.raises(IntegrityError, match="layer changed"):
        for chunk in gzip_chunks(write):
            got.append(chunk)
    assert got  # whole blocks were compressed and handed over before the error


def test_leaving_early_stops_the_writer() -> None:
    finished = threading.Event()

    def write(out: object) -> None:
        try:
            for _ in range(10_000):  # far more than the queue holds
                out.write(os.urandom(BLOCK))  # type: ignore[attr-defined]
        finally:
            finished.set()

    chunks = gzip_chunks(write)
    next(chunks)
    chunks.close()
    assert finished.is_set()  # close() joined the writer, which stopped at its next block
    assert not [t for t in threading.enumerate() if t.name == "layer-gzip"]


def test_the_gunzip_object_inflates_and_refuses_corruption() -> None:
    blob = gzip.compress(DATA)
    d = gunzip_object()
    out = d.decompress(blob)
    assert out + d.flush() == DATA and d.eof
    bad = bytearray(blob)
    bad[len(bad) // 2] ^= 0xFF
    with pytest.raises(GzipError):
        d = gunzip_object()
        d.decompress(bytes(bad))
        d.flush()

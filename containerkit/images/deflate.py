"""Layer gzip through ISA-L (python-isal): zlib's format, several times zlib's speed.

Decompressing a pulled or loaded layer and compressing a pushed one are the CPU of those
commands that is not Python. ISA-L's deflate writes standard gzip at levels 0-3 (its level 1
compresses about 8x faster than zlib's level 1, for output a few percent larger) and inflates
about 1.3-2x faster than zlib; both release the GIL, so several layers use several cores.

A pushed layer is compressed in fixed input blocks (:data:`BLOCK`) whatever sizes its writer
hands over, each block on its own (a fresh raw deflate ended by a sync flush, as pigz does), so
the blocks of one layer are compressed on several threads while its tar is still being written,
and the stream is one standard gzip member whose bytes (and digest) depend only on the input and
the ISA-L version, never on the thread count or the writer's pieces.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import gzip
import os
import queue
import struct
import threading
from collections import deque
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Literal, cast

from isal import igzip, isal_zlib

__all__ = ["BLOCK", "GZIP_LEVEL", "GzipError", "gunzip_object", "gzip_chunks", "open_gzip"]

GZIP_LEVEL = 1
"""ISA-L's level 1: a push waits for its layers' compression (level 3 is ~4x slower for ~7% less)."""
BLOCK = 1 << 20
_DEPTH = 8
_GZIP_WBITS = 16 + isal_zlib.MAX_WBITS
_WORKERS = max(1, min(4, os.cpu_count() or 1))
"""Threads compressing one layer's blocks (ISA-L releases the GIL)."""
_AHEAD = 2 * _WORKERS
"""Blocks of one layer being compressed at once (bounds its memory to a few MiB)."""
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
"""gzip's member header: deflate, no flags, mtime 0, OS unknown (what ISA-L's gzip writes)."""

GzipError = cast("type[Exception]", isal_zlib.error)  # its stub calls it an instance
"""What a corrupt gzip stream raises from :func:`gunzip_object`'s ``decompress``."""


def open_gzip(path: Path, mode: Literal["rb", "wb"], level: int = GZIP_LEVEL) -> gzip.GzipFile:
    """A gzip file at ``path`` (no name, mtime 0 when written): ISA-L's :class:`gzip.GzipFile`."""
    return cast(gzip.GzipFile, igzip.IGzipFile(path, mode, compresslevel=level, mtime=0))  # type: ignore[no-untyped-call]


def gunzip_object() -> isal_zlib.Decompress:
    """A decompressor of one gzip member with zlib's ``decompressobj`` interface (``decompress(data,
    max_length)``, ``unconsumed_tail``, ``unused_data``, ``eof``)."""
    return isal_zlib.decompressobj(_GZIP_WBITS)


class _Stopped(Exception):
    """The consumer of :func:`gzip_chunks` went away: the writer stops."""


def _deflate_block(block: bytes | memoryview, last: bool) -> bytes:
    """``block`` as raw deflate on its own: byte-aligned by a sync flush, or final when ``last``."""
    c = isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, -isal_zlib.MAX_WBITS)
    return c.compress(block) + c.flush(isal_zlib.Z_FINISH if last else isal_zlib.Z_SYNC_FLUSH)


class _Deflater:
    """A file-like sink that compresses what it is given in :data:`BLOCK` input blocks on
    ``pool``'s threads, handing the gzip stream to ``put`` in order."""

    def __init__(self, put: Callable[[bytes], bool], pool: cf.Executor) -> None:
        self._put = put
        self._pool = pool
        self._pending: deque[cf.Future[bytes]] = deque()
        self._buf = bytearray()
        self._crc = 0
        self._size = 0
        self._emit(_HEADER)

    def _emit(self, data: bytes) -> None:
        if data and not self._put(data):
            raise _Stopped

    def _submit(self, block: bytes | memoryview, last: bool = False) -> None:
        self._crc = isal_zlib.crc32(block, self._crc)
        self._size += len(block)
        self._pending.append(self._pool.submit(_deflate_block, block, last))
        while len(self._pending) > _AHEAD:
            self._emit(self._pending.popleft().result())

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        size = len(view)
        pos = 0
        if self._buf:
            pos = min(BLOCK - len(self._buf), size)
            self._buf += view[:pos]
            if len(self._buf) < BLOCK:
                return size
            self._submit(bytes(self._buf))
            self._buf.clear()
        # whole blocks straight from ``data`` when it is immutable (no copy), else copied
        keep = isinstance(data, bytes)
        while size - pos >= BLOCK:
            piece = view[pos : pos + BLOCK]
            self._submit(piece if keep else bytes(piece))
            pos += BLOCK
        self._buf += view[pos:]
        return size

    def finish(self) -> None:
        self._submit(bytes(self._buf), last=True)
        self._buf.clear()
        while self._pending:
            self._emit(self._pending.popleft().result())
        self._emit(struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF))

    def cancel(self) -> None:
        for future in self._pending:
            future.cancel()


def gzip_chunks(write: Callable[[_Deflater], object]) -> Generator[bytes, None, None]:
    """The gzip stream of what ``write(out)`` writes to ``out`` (``out.write(bytes)``), made on a
    helper thread (its blocks compressed on a few more) a few chunks ahead of the consumer. An
    error raised by ``write`` is raised here, after the chunks made before it; closing the
    generator early stops the writer."""
    q: queue.Queue[bytes | BaseException | None] = queue.Queue(_DEPTH)
    stop = threading.Event()

    def put(item: bytes | BaseException | None) -> bool:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                q.put(item, timeout=0.05)
                return True
        return False

    def run() -> None:
        with cf.ThreadPoolExecutor(_WORKERS, thread_name_prefix="layer-deflate") as pool:
            out: _Deflater | None = None
            try:
                out = _Deflater(put, pool)
                write(out)
                out.finish()
            except _Stopped:
                return
            except BaseException as err:  # handed to the consumer, which raises it
                put(err)
                return
            finally:
                if out is not None:
                    out.cancel()
        put(None)

    thread = threading.Thread(target=run, name="layer-gzip", daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()

"""Layer gzip through ISA-L (python-isal): zlib's format, several times zlib's speed.

Decompressing a pulled or loaded layer and compressing a pushed one are the CPU of those
commands that is not Python. ISA-L's deflate writes standard gzip at levels 0-3 (its level 1
compresses about 8x faster than zlib's level 1, for output a few percent larger) and inflates
about 1.3-2x faster than zlib; both release the GIL, so several layers use several cores.

A pushed layer is compressed in fixed input blocks (:data:`BLOCK`) whatever sizes its writer
hands over, so the same layer always gives the same bytes (and digest) with one ISA-L version.
"""

from __future__ import annotations

import contextlib
import gzip
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Literal, cast

from isal import igzip, isal_zlib

from containerkit.images._ahead import made_ahead

__all__ = ["BLOCK", "GZIP_LEVEL", "Deflater", "GzipError", "gunzip_object", "gzip_chunks", "open_gzip"]

GZIP_LEVEL = 1
"""ISA-L's level 1: a push waits for its layers' compression (level 3 is ~4x slower for ~7% less)."""
BLOCK = 1 << 20
_DEPTH = 8
_GZIP_WBITS = 16 + isal_zlib.MAX_WBITS

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


class Deflater:
    """A file-like sink that compresses what it is given in :data:`BLOCK` input blocks and hands
    each compressed piece to ``put`` (which answers False once its reader went away); call
    :meth:`finish` after the last write. The bytes depend only on the input."""

    def __init__(self, put: Callable[[bytes], bool]) -> None:
        self._put = put
        self._c = isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, _GZIP_WBITS)
        self._buf = bytearray()

    def _emit(self, data: bytes) -> None:
        if data and not self._put(data):
            raise _Stopped

    def write(self, data: bytes) -> int:
        self._buf += data
        if len(self._buf) >= BLOCK:
            view = memoryview(self._buf)
            whole = len(self._buf) - len(self._buf) % BLOCK
            out = [self._c.compress(view[n : n + BLOCK]) for n in range(0, whole, BLOCK)]
            view.release()
            del self._buf[:whole]
            self._emit(b"".join(out))
        return len(data)

    def finish(self) -> None:
        self._emit(self._c.compress(bytes(self._buf)) + self._c.flush())
        self._buf.clear()


def gzip_chunks(write: Callable[[Deflater], object]) -> Generator[bytes, None, None]:
    """The gzip stream of what ``write(out)`` writes to ``out`` (``out.write(bytes)``), made on a
    helper thread a few chunks ahead of the consumer. An error raised by ``write`` is raised
    here, after the chunks made before it; closing the generator early stops the writer."""

    def produce(put: Callable[[bytes], bool]) -> None:
        out = Deflater(put)
        with contextlib.suppress(_Stopped):  # the consumer went away
            write(out)
            out.finish()

    return made_ahead(produce, depth=_DEPTH, name="layer-gzip")

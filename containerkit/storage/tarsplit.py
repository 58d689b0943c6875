"""Tar-split: enough of a layer tar to write it again, byte for byte, from its unpacked directory.

Docker's overlay2 keeps no layer blob: per layer it keeps ``tar-split.json.gz``, the tar's
headers and padding with a reference (name, size) in place of each regular file's data, and
rebuilds the exact uncompressed tar (so its digest is still the diff id) when a push or a save
needs it. This module is the same idea:

* :class:`Recorder` is fed the uncompressed stream while the unpacker reads it (a tee, no second
  pass) and writes the split to a gzip file: ``R`` records (raw bytes: headers, PAX and GNU
  long-name payloads, padding, the end blocks and anything after them) and ``F`` records (a
  regular file's size and its path in the layer directory).
* :func:`assemble` writes the tar again from the split and the layer directory and checks its
  sha256 against the diff id; anything that changed (or a layer whose split was wrong) is an
  :class:`~containerkit.errors.IntegrityError` naming the layer, never a silently different tar.

A layer whose tar names a path twice (or whites out a path it created) cannot be rebuilt from
its directory: the recorder reports it as incomplete and the caller keeps the blob.
"""

from __future__ import annotations

import struct
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO, cast

import zstandard

from containerkit.errors import IntegrityError
from containerkit.images.deflate import GzipError, gunzip_object, open_gzip
from containerkit.storage._assemble import Writable, assemble

__all__ = ["Recorder", "TeeReader", "Writable", "assemble"]

_BLOCK = 512
_CHUNK = 1 << 20
_RAW_FLUSH = 1 << 20
_MAX_META = 1 << 20
"""A PAX or GNU long-name payload larger than this is not parsed (the split is then incomplete)."""
_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_META_TYPES = (tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME)
_WH = b".wh."
_OPAQUE = b".wh..wh..opq"
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _clean(name: bytes) -> bytes | None:
    """The entry's path as the unpacker places it ("" for the root); None if it has ``..``."""
    parts = []
    for part in name.split(b"/"):
        if part == b"..":
            return None
        if part and part != b".":
            parts.append(part)
    return b"/".join(parts)


def _number(field: bytes) -> int | None:
    """A tar header number: octal text, or base-256 (first byte 0x80); None if neither."""
    if field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        return None


def _pax(data: bytes) -> dict[bytes, bytes]:
    """PAX records (``<len> key=value\\n``); a malformed one ends the parse."""
    out: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            break
        if length <= 0:
            break
        record = data[space + 1 : pos + length - 1]
        key, sep, value = record.partition(b"=")
        if sep:
            out[key] = value
        pos += length
    return out


class Recorder:
    """Writes the split of the tar stream it is fed to ``path`` (gzip)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._out = open_gzip(path, "wb")
        self._buf = bytearray()  # bytes fed but not yet consumed by the state machine
        self._raw = bytearray()  # raw bytes not yet written as an R record
        self._skip = 0  # file data still to skip (an F record was written for it)
        self._keep = 0  # payload bytes still to keep raw
        self._meta_need = 0  # PAX / long-name payload to collect before parsing
        self._meta_type = b""
        self._meta_size = 0
        self._pad = 0
        self._ended = False
        self._next_name: bytes | None = None
        self._next_size: int | None = None
        self._next_raw = False
        self._names: set[bytes] = set()
        self.complete = True
        """False once the tar names a path twice: rebuilding from the directory would differ."""

    # feeding

    def feed(self, data: bytes) -> None:
        if self._ended:
            self._raw += data
            self._flush_raw(False)
            return
        view = memoryview(data)
        while view:
            if self._skip:
                take = min(self._skip, len(view))
                self._skip -= take
                view = view[take:]
                continue
            if self._keep:
                take = min(self._keep, len(view))
                self._raw += view[:take]
                self._keep -= take
                view = view[take:]
                continue
            if self._pad:
                take = min(self._pad, len(view))
                self._raw += view[:take]
                self._pad -= take
                view = view[take:]
                continue
            need = self._meta_need or _BLOCK
            take = min(need - len(self._buf), len(view))
            self._buf += view[:take]
            view = view[take:]
            if len(self._buf) < need:
                break
            block = bytes(self._buf)
            self._buf.clear()
            self._raw += block
            if self._meta_need:
                self._meta_need = 0
                self._meta(block)
            else:
                self._header(block)
            if self._ended:
                self._raw += view
                view = view[len(view) :]
        self._flush_raw(False)

    def _meta(self, payload: bytes) -> None:
        body = payload[: self._meta_size]
        if self._meta_type == tarfile.XHDTYPE:
            records = _pax(body)
            if b"path" in records:
                self._next_name = records[b"path"]
            if b"size" in records:
                try:
                    self._next_size = int(records[b"size"])
                except ValueError:
                    self.complete = False
            if any(key.startswith(b"GNU.sparse.") for key in records):
                self._next_raw = True
        else:
            self._next_name = body.split(b"\0", 1)[0]

    def _header(self, block: bytes) -> None:
        if block == bytes(_BLOCK):
            self._ended = True
            return
        kind = block[156:157]
        size = _number(block[124:136])
        if size is None:
            self.complete = False
            self._ended = True  # unpack will refuse it; keep the rest raw
            return
        if self._next_size is not None and kind not in _META_TYPES:
            size = self._next_size
        pad = (-size) % _BLOCK
        if kind in _META_TYPES:
            if size > _MAX_META:
                self.complete = False
                self._keep, self._pad = size, pad
                return
            self._meta_type = kind
            self._meta_size = size
            self._meta_need = size + pad
            return
        if kind in (tarfile.XGLTYPE, tarfile.GNUTYPE_LONGLINK, tarfile.GNUTYPE_SPARSE) or kind not in (
            *_FILE_TYPES,
            tarfile.LNKTYPE,
            tarfile.SYMTYPE,
            tarfile.CHRTYPE,
            tarfile.BLKTYPE,
            tarfile.DIRTYPE,
            tarfile.FIFOTYPE,
        ):
            if kind == tarfile.GNUTYPE_SPARSE:
                self.complete = False
            self._keep, self._pad = size, pad
            if kind == tarfile.XGLTYPE or kind == tarfile.GNUTYPE_LONGLINK:
                return
            self._entry_done()
            return
        name = self._next_name
        if name is None:
            name = block[0:100].split(b"\0", 1)[0]
            if block[257:263] == b"ustar\x00":
                prefix = block[345:500].split(b"\0", 1)[0]
                if prefix:
                    name = prefix + b"/" + name
        path = _clean(name)
        raw_data = self._next_raw
        self._entry_done()
        if path is None:
            self.complete = False
            self._keep, self._pad = size, pad
            return
        if path:
            parent, _, base = path.rpartition(b"/")
            if base.startswith(_WH) and base != _OPAQUE:
                hidden = (parent + b"/" if parent else b"") + base[len(_WH) :]
                if hidden in self._names:
                    self.complete = False
            if path in self._names:
                self.complete = False
            self._names.add(path)
        if kind in _FILE_TYPES and size and not raw_data and not path.rpartition(b"/")[2].startswith(_WH):
            self._flush_raw(True)
            self._out.write(b"F" + struct.pack(">QH", size, len(path)) + path)
            self._skip, self._pad = size, pad
        else:
            self._keep, self._pad = size, pad

    def _entry_done(self) -> None:
        self._next_name = None
        self._next_size = None
        self._next_raw = False

    def _flush_raw(self, force: bool) -> None:
        if self._raw and (force or len(self._raw) >= _RAW_FLUSH):
            self._out.write(b"R" + struct.pack(">I", len(self._raw)))
            self._out.write(self._raw)
            self._raw.clear()

    def close(self) -> None:
        """Write what is left and close the file (call once the stream has ended)."""
        if self._buf or self._skip or self._keep or self._meta_need:
            self.complete = False  # the stream ended mid-entry: the unpacker refuses it anyway
        self._raw += self._buf
        self._buf.clear()
        self._flush_raw(True)
        self._out.close()


class TeeReader:
    """The uncompressed tar of a layer blob (gzip, zstd or plain), fed to a :class:`Recorder`
    as it is read. Errors are the unpacker's (a truncated or corrupt stream is an
    :class:`IntegrityError`), and a bzip2 or xz blob passes through for the unpacker to refuse."""

    def __init__(self, raw: BinaryIO, recorder: Recorder) -> None:
        self._recorder = recorder
        self._chunks = self._decompress(raw)
        self._pending = b""

    def _decompress(self, raw: BinaryIO) -> Iterator[bytes]:
        head = raw.read(_CHUNK)
        if head.startswith(_GZIP_MAGIC):
            yield from _gunzip(head, raw)
        elif head.startswith(_ZSTD_MAGIC):
            yield from _unzstd(head, raw)
        else:
            if head:
                yield head
            while chunk := raw.read(_CHUNK):
                yield chunk

    def read(self, size: int = -1) -> bytes:
        if not self._pending:
            chunk = next(self._chunks, b"")
            if chunk:
                self._recorder.feed(chunk)
            self._pending = chunk
        if size < 0 or size >= len(self._pending):
            out, self._pending = self._pending, b""
            return out
        out, self._pending = self._pending[:size], self._pending[size:]
        return out


def _gunzip(head: bytes, raw: BinaryIO) -> Iterator[bytes]:
    d = gunzip_object()
    data = head
    try:
        while True:
            while data:
                if d.eof:
                    if not data.strip(b"\0"):
                        break  # zero padding after the last member
                    d = gunzip_object()
                out = d.decompress(data, _CHUNK)
                if out:
                    yield out
                data = d.unused_data if d.eof else d.unconsumed_tail
            data = raw.read(_CHUNK)
            if not data:
                break
        while not d.eof and (out := d.decompress(b"", _CHUNK)):
            yield out
    except GzipError as err:
        raise IntegrityError(f"corrupt gzip stream in layer: {err}") from None
    if not d.eof:
        raise IntegrityError("truncated layer: the gzip stream ends before its end marker")


class _Prefixed:
    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        self._head, self._raw = head, raw

    def read(self, size: int = -1) -> bytes:
        if self._head:
            out = self._head if size < 0 else self._head[:size]
            self._head = self._head[len(out) :]
            return out
        return self._raw.read(size)


def _unzstd(head: bytes, raw: BinaryIO) -> Iterator[bytes]:
    reader = zstandard.ZstdDecompressor().stream_reader(
        cast(IO[bytes], _Prefixed(head, raw)), read_size=_CHUNK, read_across_frames=True, closefd=False
    )
    try:
        while chunk := reader.read(_CHUNK):
            yield chunk
    except zstandard.ZstdError as err:
        raise IntegrityError(f"corrupt zstd stream in layer: {err}") from None

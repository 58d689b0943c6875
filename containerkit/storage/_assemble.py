"""A layer's tar written again, byte for byte, from its unpacked directory and its tar-split.

The split (see :mod:`containerkit.storage.tarsplit`, which records it at unpack time) holds ``R``
records (raw bytes: headers, padding, the end blocks) and ``F`` records (a regular file's size
and its path in the layer directory). :func:`assemble` writes the tar again from them and checks
its sha256 against the diff id. It is apart from the recorder so that the child process a push
rebuilds each layer in (:mod:`containerkit.storage._assemble_worker`) imports only this.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import struct
from pathlib import Path
from typing import Protocol

from containerkit.errors import IntegrityError, InvalidArgument, Unavailable
from containerkit.images.deflate import GzipError, open_gzip
from containerkit.linux import inroot

__all__ = ["Writable", "assemble"]

_CHUNK = 1 << 20
_F_HEAD = struct.Struct(">QH")  # an F record after its kind: file size, name length
_R_HEAD = struct.Struct(">I")  # an R record after its kind: raw length
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
"""A layer file to copy: never through a symlink, never blocking on a FIFO or taking a tty."""
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_BENEATH = inroot.RESOLVE_BENEATH | inroot.RESOLVE_NO_SYMLINKS | inroot.RESOLVE_NO_MAGICLINKS
_openat2_works = True
"""False once the kernel said it has no ``openat2``: the walk one directory at a time then."""


class Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


class _Records:
    """The split's records, read from its gzip in 1 MiB steps (not one small read per field)."""

    def __init__(self, stream: gzip.GzipFile, label: str) -> None:
        self._stream = stream
        self._label = label
        self._buf = b""
        self._pos = 0

    def take(self, count: int) -> bytes:
        """The next ``count`` bytes; b"" at the end of the split (only where a record starts)."""
        end = self._pos + count
        if end > len(self._buf):
            parts = [self._buf[self._pos :]]
            have = len(parts[0])
            while have < count and (more := self._stream.read(max(_CHUNK, count - have))):
                parts.append(more)
                have += len(more)
            self._buf, self._pos, end = b"".join(parts), 0, count
            if have < count:
                if have == 0:
                    return b""
                raise IntegrityError(f"{self._label}: the tar-split ends early")
        data = self._buf[self._pos : end]
        self._pos = end
        return data

    def exact(self, count: int) -> bytes:
        data = self.take(count)
        if len(data) != count:
            raise IntegrityError(f"{self._label}: the tar-split ends early")
        return data

    def record(self) -> tuple[bytes, int, bytes] | None:
        """The next record: ``(b"R", 0, raw bytes)``, ``(b"F", file size, name)`` or, for an
        unknown kind, ``(kind, 0, b"")``; None at the end of the split. One call per record:
        a record inside the buffer is sliced out without :meth:`take`'s calls per field."""
        buf, pos = self._buf, self._pos
        kind = buf[pos : pos + 1]
        if kind == b"F" and pos + 11 <= len(buf):
            size, length = _F_HEAD.unpack_from(buf, pos + 1)
            end = pos + 11 + length
            if end <= len(buf):
                self._pos = end
                return kind, size, buf[pos + 11 : end]
        elif kind == b"R" and pos + 5 <= len(buf):
            (length,) = _R_HEAD.unpack_from(buf, pos + 1)
            end = pos + 5 + length
            if end <= len(buf):
                self._pos = end
                return kind, 0, buf[pos + 5 : end]
        kind = self.take(1)  # the record crosses the buffer's end (or the split ends)
        if not kind:
            return None
        if kind == b"R":
            (length,) = _R_HEAD.unpack(self.exact(4))
            return kind, 0, self.exact(length)
        if kind == b"F":
            size, length = _F_HEAD.unpack(self.exact(10))
            return kind, size, self.exact(length)
        return kind, 0, b""


class _Sink:
    """Hashes the rebuilt tar and hands it to ``out`` in pieces of at least 1 MiB: one sha256
    update and one write per piece (both release the GIL on large data) instead of one per file."""

    def __init__(self, out: Writable) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0
        self._buf = bytearray()

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if len(data) >= _CHUNK:
            self.flush()
            self.sha.update(data)
            self.out.write(data)
            return
        self._buf += data
        if len(self._buf) >= _CHUNK:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            piece = bytes(self._buf)
            self._buf.clear()
            self.sha.update(piece)
            self.out.write(piece)


def assemble(layer_dir: Path, split: Path, out: Writable, *, diff_id: str) -> int:
    """Write layer ``layer_dir``'s tar to ``out`` again from ``split``; its size. The bytes must
    hash to ``diff_id`` (checked at the end: the caller discards ``out`` on an error)."""
    label = f"layer {diff_id}"
    sink = _Sink(out)
    root = os.open(layer_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with open_gzip(split, "rb") as stream:
            records = _Records(stream, label)
            while (record := records.record()) is not None:
                kind, file_size, data = record
                if kind == b"R":
                    sink.write(data)
                elif kind == b"F":
                    _copy_file(root, data, file_size, sink, label)
                else:
                    raise IntegrityError(f"{label}: unknown tar-split record {kind!r} in {split}")
        sink.flush()
    except (OSError, EOFError, GzipError) as exc:
        if isinstance(exc, FileNotFoundError) and exc.filename == str(split):
            raise
        raise IntegrityError(f"{label}: cannot rebuild its tar from {layer_dir}: {exc}") from None
    finally:
        os.close(root)
    actual = "sha256:" + sink.sha.hexdigest()
    if actual != diff_id:
        raise IntegrityError(f"{label}: the tar rebuilt from {layer_dir} has digest {actual}")
    return sink.size


def _copy_file(root: int, name: bytes, size: int, sink: _Sink, label: str) -> None:
    wrapped = b"/" + name + b"/"
    if b"//" in wrapped or b"/./" in wrapped or b"/../" in wrapped:  # as _clean(name) != name
        raise InvalidArgument(f"{label}: tar-split names {name!r}, not a path inside the layer")
    fd = _open_beneath(root, name)
    try:
        if size < _CHUNK:
            # one read of a byte more than it should hold: a file of another size shows (most
            # layer files are small: no fstat, one read); a directory fails the read
            data = os.read(fd, size + 1)
            if len(data) != size:
                raise IntegrityError(
                    f"{label}: {os.fsdecode(name)} changed in the layer (expected {size} bytes)"
                )
            sink.write(data)
            return
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            raise IntegrityError(f"{label}: {os.fsdecode(name)} changed in the layer (expected {size} bytes)")
        left = size
        while left:
            data = os.read(fd, min(_CHUNK, left))
            if not data:
                raise IntegrityError(f"{label}: {os.fsdecode(name)} ends early")
            sink.write(data)
            left -= len(data)
    finally:
        os.close(fd)


def _open_beneath(root: int, name: bytes) -> int:
    """Layer file ``name``'s fd, reached with no symlink anywhere on the way: ``O_NOFOLLOW``
    guards only the last component, and a directory on the way replaced by a link would
    otherwise have the rebuild read (and a push upload) a file outside the layer."""
    global _openat2_works
    if b"/" not in name:
        return os.open(name, _OPEN_FILE, dir_fd=root)
    if _openat2_works:
        try:
            return inroot.openat2(root, os.fsdecode(name), _OPEN_FILE, 0, _BENEATH)
        except Unavailable:
            _openat2_works = False
    *dirs, last = name.split(b"/")
    fd = root
    try:
        for part in dirs:
            step = os.open(part, _OPEN_DIR, dir_fd=fd)
            if fd != root:
                os.close(fd)
            fd = step
        return os.open(last, _OPEN_FILE, dir_fd=fd)
    finally:
        if fd != root:
            os.close(fd)

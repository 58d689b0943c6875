"""The content store: blobs addressed and verified by their sha256 digest.

Layout (as containerd's local store)::

    root/blobs/sha256/<hex>   committed blobs, read-only, only ever created by rename
    root/ingest/<random>      blobs being written; never visible under blobs/

An ingest hashes while it writes, checks size and digest, fsyncs the file, renames it into place
and fsyncs the directory, so a crash leaves either the whole blob or nothing (plus a stray temp
file that :meth:`ContentStore.clean_ingest` removes). Digests are validated before they become
paths, so a hostile manifest cannot name ``../../etc/passwd``.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import attrs

from containerkit._model import model
from containerkit.errors import IntegrityError, InvalidArgument, NotFound
from containerkit.images.reference import is_digest
from containerkit.linux import staging

__all__ = ["ContentStore", "Descriptor", "check_digest", "sha256_digest"]

_CHUNK = 1 << 20


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is ``sha256:<64 lowercase hex>``; raise InvalidArgument otherwise."""
    if not isinstance(digest, str) or not is_digest(digest):
        raise InvalidArgument(f"invalid digest {digest!r} (expected sha256:<64 lowercase hex>)")
    return digest


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@model
class Descriptor:
    """What an OCI descriptor says about a blob: its digest, size and media type."""

    digest: str = attrs.field()
    size: int
    media_type: str = "application/octet-stream"
    annotations: tuple[tuple[str, str], ...] = ()

    @digest.validator
    def _check(self, _a: attrs.Attribute[str], value: str) -> None:
        check_digest(value)


class ContentStore:
    """Blobs by digest under ``root``; safe to share between threads and processes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._blobs = self.root / "blobs" / "sha256"
        self._ingest = self.root / "ingest"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._ingest.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        """Where the blob lives (whether or not it exists yet)."""
        return self._blobs / check_digest(digest).split(":", 1)[1]

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob not found: {digest}") from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return self.path(digest).open("rb")
        except FileNotFoundError:
            raise NotFound(f"blob not found: {digest}") from None

    def read_bytes(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def delete(self, digest: str) -> bool:
        """Remove a blob; ``False`` if it was not there. Callers decide what is unreferenced."""
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            return False
        return True

    def list(self) -> Iterator[str]:
        for entry in os.scandir(self._blobs):
            name = "sha256:" + entry.name
            if is_digest(name) and entry.is_file(follow_symlinks=False):
                yield name

    def ingest_bytes(self, data: bytes, expected_digest: str | None = None) -> Descriptor:
        return self.ingest(io.BytesIO(data), expected_digest, len(data))

    def ingest(
        self, stream: BinaryIO, expected_digest: str | None = None, expected_size: int | None = None
    ) -> Descriptor:
        """Copy ``stream`` in, verified. Reads at most ``expected_size + 1`` bytes when a size is given."""
        if expected_digest is not None:
            check_digest(expected_digest)
        label = expected_digest or "blob"
        hasher = hashlib.sha256()
        written = 0
        fd, tmp_name = tempfile.mkstemp(dir=self._ingest, prefix=f"ingest{staging.owner_tag()}")
        staging.hold(fd)  # a crash leaves it unheld: recovery removes it
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                limit = None if expected_size is None else expected_size + 1
                while limit is None or written < limit:
                    want = _CHUNK if limit is None else min(_CHUNK, limit - written)
                    chunk = stream.read(want)
                    if not chunk:
                        break
                    hasher.update(chunk)
                    out.write(chunk)
                    written += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            if expected_size is not None and written < expected_size:
                raise IntegrityError(f"truncated blob {label}: got {written} of {expected_size} bytes")
            if expected_size is not None and written > expected_size:
                raise IntegrityError(f"blob {label} is larger than its descriptor's size {expected_size}")
            digest = "sha256:" + hasher.hexdigest()
            if expected_digest is not None and digest != expected_digest:
                raise IntegrityError(f"digest mismatch: expected {expected_digest}, content has {digest}")
            os.chmod(tmp, 0o444)
            os.replace(tmp, self.path(digest))
            _fsync_dir(self._blobs)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return Descriptor(digest, written)

    def ingest_dir(self) -> Path:
        """Where a writer that hashes as it writes keeps its held temp file (named with
        :func:`~containerkit.linux.staging.owner_tag`) before :meth:`adopt`."""
        return self._ingest

    def adopt(self, path: Path, digest: str) -> Descriptor:
        """Publish ``path``, a temp file in :meth:`ingest_dir` that this process wrote and hashed
        as ``digest`` while writing (a layer made from a snapshot), without copying it again:
        fsynced, made read-only and renamed into place, as :meth:`ingest` does."""
        check_digest(digest)
        if Path(path).parent != self._ingest:
            raise InvalidArgument(f"{path}: only a file in {self._ingest} can become a blob")
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        os.chmod(path, 0o444)
        os.replace(path, self.path(digest))
        _fsync_dir(self._blobs)
        return Descriptor(digest, size)

    def reap_ingest(self) -> tuple[str, ...]:
        """Remove the temp files of ingests whose process is gone (live ones stay)."""
        return tuple(staging.reap(self._ingest))

    def clean_ingest(self, older_than: float = 3600.0) -> int:
        """Remove temp files a crashed ingest left behind; returns how many."""
        removed = 0
        cutoff = time.time() - older_than
        for entry in os.scandir(self._ingest):
            try:
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

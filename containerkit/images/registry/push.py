"""Pushing to a registry: blobs first, then the manifest, an index last.

* A blob the repository already has (``HEAD`` answers 200) is skipped: "Layer already exists".
* A blob pulled earlier from another repository of the same registry is mounted
  (``POST .../uploads/?mount=<digest>&from=<repo>``): 201 is done ("Mounted from <repo>"), a 202
  opened an upload session that the upload continues.
* Otherwise it is uploaded: ``POST`` for a session, then either one monolithic ``PUT
  <location>?digest=`` with the body, or ``PATCH`` chunks with ``Content-Range`` and a closing
  ``PUT ?digest=`` (when ``chunk_size`` is set). Each ``Location`` may be relative and carries a
  query (distribution's ``_state``) that is kept. A failed upload is cancelled with ``DELETE``.
* The manifest ``PUT`` carries its media type; the registry's ``Docker-Content-Digest`` must be
  the digest of the bytes sent.

Blobs are pushed as the content store holds them, never recompressed: an image loaded from a
docker-archive pushes its uncompressed (or gzip) layers as they are, under their own media types,
so what a registry serves has the same digests as the local store.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, BinaryIO

from containerkit.errors import ContainerkitError, IntegrityError, InvalidArgument, NotFound
from containerkit.images.content import ContentStore, Descriptor
from containerkit.images.reference import ImageRef
from containerkit.images.registry.pull import Progress, Transport
from containerkit.images.registry.sources import BlobSources

__all__ = ["Pusher"]

_READ = 1 << 20
_STREAM_STEP = 256 << 10
"""Bytes between two "Pushing" events of a streamed upload (its total is not known before)."""


class _CountingReader:
    """A blob file as a request body that reports how much was sent (requests reads it in blocks)."""

    def __init__(self, stream: BinaryIO, length: int, report: Any) -> None:
        self._stream = stream
        self._length = length
        self._report = report
        self.sent = 0

    def __len__(self) -> int:
        return self._length - self.sent

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(_READ if size is None or size < 0 else max(size, _READ))
        if chunk:
            self.sent += len(chunk)
            self._report(self.sent)
        return chunk


def _chunks(stream: BinaryIO, size: int) -> Iterator[bytes]:
    while chunk := stream.read(size):
        yield chunk


def _pieces(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """``chunks`` regrouped into pieces of ``size`` bytes (the last one shorter)."""
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    if buf:
        yield bytes(buf)


class Pusher:
    """Pushes blobs and manifests of local content to one repository of one registry."""

    def __init__(
        self,
        transport: Transport,
        ref: ImageRef,
        content: ContentStore,
        *,
        progress: Progress,
        max_concurrent_uploads: int = 5,
        sources: BlobSources | None = None,
        chunk_size: int | None = None,
    ) -> None:
        if max_concurrent_uploads < 1:
            raise InvalidArgument(f"max_concurrent_uploads must be at least 1, got {max_concurrent_uploads}")
        if chunk_size is not None and chunk_size < 1:
            raise InvalidArgument(f"chunk_size must be positive, got {chunk_size}")
        self.transport = transport
        self.ref = ref
        self.content = content
        self.progress = progress
        self.max_concurrent_uploads = max_concurrent_uploads
        self.sources = sources
        self.chunk_size = chunk_size

    @property
    def _scope(self) -> str:
        return f"repository:{self.ref.path}:pull,push"

    def _uploads(self) -> str:
        return f"/v2/{self.ref.path}/blobs/uploads/"

    # ------------------------------------------------------------------ blobs

    def exists(self, digest: str) -> bool:
        try:
            response = self.transport.request(
                "HEAD", f"/v2/{self.ref.path}/blobs/{digest}", scope=self._scope
            )
        except NotFound:
            return False
        response.close()
        return response.status_code == 200

    def _mount_sources(self, digest: str) -> list[str]:
        """Repositories of this registry the blob was pulled from (never this one)."""
        if self.sources is None:
            return []
        found = []
        for name in self.sources.get(digest):
            domain, _, path = name.partition("/")
            if domain == self.ref.domain and path and path != self.ref.path:
                found.append(path)
        return found

    def push_blobs(self, blobs: Sequence[tuple[Descriptor, str]]) -> None:
        """Push ``(descriptor, layer id)`` pairs, ``max_concurrent_uploads`` at once; an id of ""
        pushes without progress lines (the config)."""
        for _, layer_id in blobs:
            if layer_id:
                self.progress(layer_id, "Preparing")
        for _, layer_id in blobs[self.max_concurrent_uploads :]:
            if layer_id:
                self.progress(layer_id, "Waiting")
        with cf.ThreadPoolExecutor(self.max_concurrent_uploads, thread_name_prefix="push") as pool:
            futures = [pool.submit(self.push_blob, desc, layer_id) for desc, layer_id in blobs]
            try:
                for future in futures:
                    future.result()
            finally:
                for future in futures:
                    future.cancel()

    def push_blob(self, desc: Descriptor, layer_id: str = "") -> str:
        """Make sure the repository has ``desc``; returns how: "exists", "mounted" or "pushed".

        A blob the local store does not keep can still be found or mounted; only an upload
        needs it (NotFound otherwise, before any upload starts)."""
        if self.exists(desc.digest):
            if layer_id:
                self.progress(layer_id, "Layer already exists")
            return "exists"
        location = None
        for source in self._mount_sources(desc.digest):
            response = self.transport.request(
                "POST",
                self._uploads(),
                scope=[self._scope, f"repository:{source}:pull"],
                params={"mount": desc.digest, "from": source},
            )
            response.close()
            if response.status_code == 201:
                if layer_id:
                    self.progress(layer_id, f"Mounted from {source}")
                return "mounted"
            location = response.headers.get("Location")
            if location:
                break
        if not self.content.has(desc.digest):
            if location is not None:  # the mount opened an upload session: nothing to send
                with contextlib.suppress(Exception):
                    self.transport.request("DELETE", location, scope=self._scope).close()
            raise NotFound(
                f"blob {desc.digest} of {self.ref.familiar_name} is not in the local content store"
            )
        if location is None:
            location = self._start_upload(desc.digest)
        try:
            self._upload(location, desc, layer_id)
        except BaseException:
            self._cancel(location)
            raise
        if layer_id:
            self.progress(layer_id, "Pushed")
        return "pushed"

    def push_stream(self, chunks: Iterable[bytes], media_type: str, layer_id: str = "") -> Descriptor:
        """Upload a blob whose digest is known only after its last byte (a layer compressed while
        it is sent), as docker pushes one: ``POST``, the bytes in one streamed ``PATCH`` (or in
        ``chunk_size`` pieces with ``Content-Range``), then ``PUT ?digest=`` with the digest they
        hashed to. No HEAD or mount first: nothing names the blob before it is made. If the
        chunks fail (an error raised while making them), the upload session is cancelled, so
        the registry never stores part of a blob. Its descriptor."""
        location = self._start_upload("a layer")
        sha = hashlib.sha256()
        sent = [0, 0]  # bytes hashed, bytes at the last progress event

        def report(done: int) -> None:
            if layer_id and done - sent[1] >= _STREAM_STEP:
                sent[1] = done
                self.progress(layer_id, "Pushing", done, None)

        def hashed(reporting: bool) -> Iterator[bytes]:
            for chunk in chunks:
                sha.update(chunk)
                sent[0] += len(chunk)
                if reporting:
                    report(sent[0])
                yield chunk

        try:
            if self.chunk_size is None:
                response = self.transport.request(
                    "PATCH",
                    location,
                    scope=self._scope,
                    headers={"Content-Type": "application/octet-stream"},
                    data=hashed(True),
                )
                response.close()
                location = self._patched(response, location, "a layer")
            else:
                offset = 0
                for piece in _pieces(hashed(False), self.chunk_size):
                    location = self._patch(location, piece, offset, "a layer")
                    offset += len(piece)
                    report(offset)
            digest = "sha256:" + sha.hexdigest()
            self._commit(location, digest)
        except BaseException:
            self._cancel(location)
            raise
        if layer_id:
            self.progress(layer_id, "Pushed")
        return Descriptor(digest, sent[0], media_type)

    def _start_upload(self, what: str) -> str:
        """``POST`` a new upload session; its location (an error naming ``what`` without one)."""
        response = self.transport.request("POST", self._uploads(), scope=self._scope)
        response.close()
        location = response.headers.get("Location")
        if not location:
            raise ContainerkitError(f"{self.ref.name}: the registry gave no upload location for {what}")
        return str(location)

    def _cancel(self, location: str) -> None:
        """Cancel an upload session (best effort: the registry never stores part of a blob)."""
        with contextlib.suppress(Exception):
            self.transport.request("DELETE", location, scope=self._scope).close()

    def _patched(self, response: Any, location: str, what: str) -> str:
        """The next upload location after a PATCH (202 or an error naming ``what``)."""
        if response.status_code != 202:
            raise ContainerkitError(f"{self.ref.name}: {what}: a chunk got status {response.status_code}")
        return str(response.headers.get("Location") or location)

    def _patch(self, location: str, chunk: bytes, offset: int, what: str) -> str:
        """One ``Content-Range`` chunk of an upload; the location to send the next one to."""
        response = self.transport.request(
            "PATCH",
            location,
            scope=self._scope,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                "Content-Length": str(len(chunk)),
            },
            data=chunk,
        )
        response.close()
        return self._patched(response, location, what)

    def _commit(self, location: str, digest: str) -> None:
        """Close an upload whose bytes were all PATCHed: ``PUT ?digest=``, checked."""
        response = self.transport.request(
            "PUT",
            location,
            scope=self._scope,
            params={"digest": digest},
            headers={"Content-Length": "0"},
            data=b"",
        )
        self._check_stored(response, digest)

    def _check_stored(self, response: Any, digest: str) -> None:
        response.close()
        if response.status_code != 201:
            raise ContainerkitError(f"{self.ref.name}: upload of {digest} answered {response.status_code}")
        answered = response.headers.get("Docker-Content-Digest")
        if answered and answered != digest:
            raise IntegrityError(f"{self.ref.name}: the registry stored blob {digest} as {answered}")

    def _upload(self, location: str, desc: Descriptor, layer_id: str) -> None:
        total = desc.size
        step = max(total // 100, 512 << 10)
        last = [0]

        def report(sent: int) -> None:
            if layer_id and (sent - last[0] >= step or sent >= total):
                last[0] = sent
                self.progress(layer_id, "Pushing", sent, total)

        with self.content.open(desc.digest) as blob:
            if self.chunk_size is None:
                response = self.transport.request(
                    "PUT",
                    location,
                    scope=self._scope,
                    params={"digest": desc.digest},
                    headers={"Content-Type": "application/octet-stream", "Content-Length": str(total)},
                    data=_CountingReader(blob, total, report),
                )
            else:
                offset = 0
                for chunk in _chunks(blob, self.chunk_size):
                    location = self._patch(location, chunk, offset, desc.digest)
                    offset += len(chunk)
                    report(offset)
                self._commit(location, desc.digest)
                return
        self._check_stored(response, desc.digest)

    # ------------------------------------------------------------------ manifests

    def push_manifest(self, data: bytes, media_type: str, reference: str) -> str:
        """PUT a manifest or index under ``reference`` (a tag or its digest); its digest, as the
        registry confirmed it."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        response = self.transport.request(
            "PUT",
            f"/v2/{self.ref.path}/manifests/{reference}",
            scope=self._scope,
            headers={"Content-Type": media_type},
            data=data,
        )
        response.close()
        answered = response.headers.get("Docker-Content-Digest")
        if answered and answered != digest:
            raise IntegrityError(
                f"{self.ref.name}:{reference}: the registry answered digest {answered} "
                f"for a manifest whose digest is {digest}"
            )
        return digest

"""Pulling from a registry: a reference to a verified manifest, and blobs into the content store.

* The manifest is fetched with every type we read in ``Accept``; its digest is sha256 of the exact
  bytes, checked against the digest of a by-digest reference and against ``Docker-Content-Digest``.
* Blobs are streamed into :meth:`ContentStore.ingest`, which hashes while writing and commits
  only a blob whose digest and size match its descriptor (a mismatch names the digest and the
  repository). A body that breaks off is asked again with ``Range: bytes=<n>-``; only a ``206``
  whose ``Content-Range`` starts at ``n`` continues, a ``200`` starts again from zero.
* :meth:`Puller.download_layers` runs ``max_concurrent_downloads`` downloads at once and yields
  the layers bottom first as each is stored, so the caller unpacks layer N while the next ones
  download. Blobs already in the store are not fetched.

Unpacking and the image record belong to the engine (the layer below may not see snapshots).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import socket
import threading
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from typing import Any, BinaryIO, Protocol

import attrs
import requests

from containerkit.errors import ContainerkitError, IntegrityError, InvalidArgument, NotFound
from containerkit.images.content import ContentStore, Descriptor
from containerkit.images.manifest import Manifest, parse_config
from containerkit.images.reference import ImageRef
from containerkit.images.registry.manifests import ACCEPT, FetchedIndex, parse_fetched, select_platform
from containerkit.images.registry.platform import Platform, normalize
from containerkit.images.registry.sources import BlobSources
from containerkit.images.registry.transport import RegistryNotFound
from containerkit.spec import ProgressEvent, RegistryData

__all__ = ["Cancelled", "Progress", "Puller", "Resolved", "Transport", "short_id"]

MAX_MANIFEST_BYTES = 4 << 20
"""containerd's limit: a manifest is small; a registry answering more is refused, not buffered."""
_CHUNK = 64 << 10
"""Read size of a blob body: what a broken connection loses at most (urllib3 drops a partial read)."""
_RESUME_ATTEMPTS = 5


class Transport(Protocol):
    """What pull and push need of :class:`~containerkit.images.registry.transport.RegistryTransport`."""

    def request(
        self,
        method: str,
        path: str,
        *,
        scope: Any,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: Any = None,
        stream: bool = False,
    ) -> requests.Response: ...


def short_id(digest: str) -> str:
    """docker's layer id in progress lines: the first 12 hex digits."""
    return digest.split(":", 1)[-1][:12]


class Progress:
    """A thread-safe front of the caller's callback (downloads report from worker threads)."""

    def __init__(self, callback: Callable[[ProgressEvent], None] | None) -> None:
        self._callback = callback
        self._lock = threading.Lock()

    def __call__(self, id: str, action: str, current: int | None = None, total: int | None = None) -> None:
        if self._callback is None:
            return
        with self._lock:
            self._callback(ProgressEvent(id=id, action=action, current=current, total=total))


@attrs.frozen
class Resolved:
    """A reference resolved to one image manifest (through an index when there is one)."""

    ref: ImageRef
    digest: str  # what the reference points at (the index for a multi-platform image): RepoDigests
    media_type: str
    size: int
    manifest: Manifest
    manifest_bytes: bytes
    manifest_digest: str
    manifest_media_type: str
    index: FetchedIndex | None = None


def _scope(ref: ImageRef, actions: str = "pull") -> str:
    return f"repository:{ref.path}:{actions}"


class _Stopped(Exception):
    """Another download failed (or the pull was cancelled): this one gives up quietly."""


class Cancelled(ContainerkitError):
    """The pull was cancelled (its client left): what was verified stays in the store."""


def not_found(ref: ImageRef, exc: RegistryNotFound) -> NotFound:
    """dockerd's words for a reference the registry does not have (moby's ``notFoundError``):
    ``manifest for <ref> not found: manifest unknown: manifest unknown``, ``repository <name> not
    found: name unknown: ...``; other 404s as the registry said them."""
    codes = set(exc.codes)
    if "MANIFEST_UNKNOWN" in codes or (not codes and exc.words):
        return NotFound(f"manifest for {ref.familiar} not found: {exc.words}")
    if "NAME_UNKNOWN" in codes:
        return NotFound(f"repository {ref.familiar_name} not found: {exc.words}")
    return exc


class _Restart(Exception):
    """The server ignored ``Range`` (200): start the blob again with this response."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__("restart")
        self.response = response


class _ResumingReader:
    """A blob body as a stream that reconnects with ``Range`` where the connection broke."""

    def __init__(
        self,
        open_at: Callable[[int], requests.Response],
        response: requests.Response,
        total: int,
        on_bytes: Callable[[int], None],
        stop: threading.Event,
        cancel: threading.Event,
    ) -> None:
        self._open_at = open_at
        self._response = response
        self._chunks = response.iter_content(_CHUNK)
        self._buffer = b""
        self.offset = 0
        self._total = total
        self._on_bytes = on_bytes
        self._stop = stop
        self._cancel = cancel
        self._failures = 0

    def _reconnect(self, cause: BaseException | None) -> None:
        if self._stop.is_set() or self._cancel.is_set():
            raise _Stopped()  # the connection was cut on purpose (cancelled), not broken
        self._failures += 1
        self._response.close()
        if self._failures > _RESUME_ATTEMPTS:
            raise IntegrityError(f"blob download broke off at byte {self.offset} of {self._total}: {cause}")
        response = self._open_at(self.offset)
        if response.status_code == 200:
            raise _Restart(response)
        start = _range_start(response.headers.get("Content-Range"))
        if response.status_code != 206 or start != self.offset:
            response.close()
            raise _Restart(self._open_at(0))
        self._response = response
        self._chunks = response.iter_content(_CHUNK)

    def read(self, size: int = -1) -> bytes:
        while not self._buffer:
            if self._stop.is_set() or self._cancel.is_set():
                raise _Stopped()
            if self.offset >= self._total:
                return b""  # the ingest reads one byte more to see the end: do not ask again
            try:
                chunk = next(self._chunks, b"")
            except (requests.RequestException, OSError) as exc:
                self._reconnect(exc)
                continue
            if not chunk:
                self._reconnect(None)  # ended before its size: the connection closed early
                continue
            self._buffer = chunk
        want = len(self._buffer) if size is None or size < 0 else size
        out, self._buffer = self._buffer[:want], self._buffer[want:]
        self.offset += len(out)
        self._on_bytes(self.offset)
        return out

    def close(self) -> None:
        self._response.close()


def _range_start(header: str | None) -> int | None:
    """The start of ``bytes <start>-<end>/<size>``, or None."""
    if not header or not header.startswith("bytes "):
        return None
    first = header[6:].split("-", 1)[0].strip()
    return int(first) if first.isdigit() else None


class Puller:
    """Pulls from one repository of one registry through ``transport``."""

    def __init__(
        self,
        transport: Transport,
        ref: ImageRef,
        content: ContentStore,
        *,
        progress: Progress,
        max_concurrent_downloads: int = 3,
        sources: BlobSources | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        if max_concurrent_downloads < 1:
            raise InvalidArgument(
                f"max_concurrent_downloads must be at least 1, got {max_concurrent_downloads}"
            )
        self.transport = transport
        self.ref = ref
        self.content = content
        self.progress = progress
        self.max_concurrent_downloads = max_concurrent_downloads
        self.sources = sources
        self.cancel = cancel or threading.Event()
        """Set by the caller to stop the pull: downloads stop within a chunk, :class:`Cancelled`."""
        self._watched = cancel is not None
        self._live: dict[int, requests.Response] = {}
        self._live_lock = threading.Lock()

    @contextlib.contextmanager
    def cancellable(self) -> Iterator[None]:
        """While inside, a set :attr:`cancel` also cuts the blob bodies being read (a download
        blocked on a stalled registry stops at once instead of at its read timeout)."""
        if not self._watched:
            yield
            return
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                if self.cancel.wait(0.2):
                    with self._live_lock:
                        live = [] if done.is_set() else list(self._live.values())
                    for response in live:
                        _cut(response)
                    return

        # not joined: it ends at its next look (0.2 s) and must not hold up the pull's answer
        threading.Thread(target=watch, name="pull-cancel", daemon=True).start()
        try:
            yield
        finally:
            done.set()

    def check_cancelled(self) -> None:
        if self.cancel.is_set():
            raise Cancelled(f"pull of {self.ref.familiar} cancelled")

    def _fetch_named(self, reference: str) -> tuple[bytes, str, str]:
        """:meth:`fetch_manifest` of what the reference names; a 404 in dockerd's words."""
        self.check_cancelled()
        try:
            return self.fetch_manifest(reference)
        except RegistryNotFound as exc:
            raise not_found(self.ref, exc) from None

    # ------------------------------------------------------------------ manifests

    def fetch_manifest(self, reference: str) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of ``reference`` (a tag or a digest), verified."""
        response = self.transport.request(
            "GET",
            f"/v2/{self.ref.path}/manifests/{reference}",
            scope=_scope(self.ref),
            headers={"Accept": ACCEPT},
            stream=True,
        )
        try:
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > MAX_MANIFEST_BYTES:
                raise InvalidArgument(f"manifest of {self.ref.canonical} is too large ({declared} bytes)")
            body = response.raw.read(MAX_MANIFEST_BYTES + 1, decode_content=True)
            if len(body) > MAX_MANIFEST_BYTES:
                raise InvalidArgument(
                    f"manifest of {self.ref.canonical} is larger than {MAX_MANIFEST_BYTES} bytes"
                )
        finally:
            response.close()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise IntegrityError(
                f"manifest {reference} of {self.ref.name}: the registry sent content with digest {digest}"
            )
        header = response.headers.get("Docker-Content-Digest")
        if header and header.startswith("sha256:") and header != digest:
            raise IntegrityError(
                f"manifest {reference} of {self.ref.name}: Docker-Content-Digest {header} "
                f"does not match the content's digest {digest}"
            )
        media_type = (response.headers.get("Content-Type") or "").split(";", 1)[0].strip()
        return body, media_type, digest

    def resolve(self, platform: Platform) -> Resolved:
        """The image manifest ``self.ref`` names for ``platform`` (through an index if it is one)."""
        reference = self.ref.digest or self.ref.tag or "latest"
        body, content_type, digest = self._fetch_named(reference)
        parsed = parse_fetched(body, content_type, self.ref)
        top_type = content_type
        if isinstance(parsed, FetchedIndex):
            top_type = parsed.media_type
            entry = select_platform(parsed, platform)
            inner, inner_type, inner_digest = self.fetch_manifest(entry.descriptor.digest)
            manifest = parse_fetched(inner, inner_type, self.ref)
            if not isinstance(manifest, Manifest):
                raise InvalidArgument(
                    f"manifest {entry.descriptor.digest} of {self.ref.canonical}: an index inside an index"
                )
            return Resolved(
                self.ref,
                digest,
                top_type,
                len(body),
                manifest,
                inner,
                inner_digest,
                manifest.media_type,
                parsed,
            )
        return Resolved(
            self.ref, digest, parsed.media_type, len(body), parsed, body, digest, parsed.media_type
        )

    def registry_data(self) -> RegistryData:
        """Digest, type, size and platforms without pulling layers (one config blob for a plain manifest)."""
        reference = self.ref.digest or self.ref.tag or "latest"
        body, content_type, digest = self._fetch_named(reference)
        parsed = parse_fetched(body, content_type, self.ref)
        if isinstance(parsed, FetchedIndex):
            platforms = parsed.platforms()
            media_type = parsed.media_type
        else:
            media_type = parsed.media_type
            config = parse_config(self.fetch_blob_bytes(parsed.config), f"config {parsed.config.digest}")
            variant = config.raw.get("variant")
            plat = normalize(config.os, config.architecture, variant if isinstance(variant, str) else "")
            platforms = [plat.as_dict()]
        return RegistryData(digest=digest, media_type=media_type, size=len(body), platforms=platforms)

    # ------------------------------------------------------------------ blobs

    def _open_blob(self, digest: str, offset: int) -> requests.Response:
        headers = {"Range": f"bytes={offset}-"} if offset else None
        self.check_cancelled()
        response = self.transport.request(
            "GET", f"/v2/{self.ref.path}/blobs/{digest}", scope=_scope(self.ref), headers=headers, stream=True
        )
        with self._live_lock:  # this thread's body being read, for cancellable()
            self._live[threading.get_ident()] = response
        if self.cancel.is_set():
            _cut(response)  # cancelled while it was being opened: the watcher may have passed
        return response

    def fetch_blob_bytes(self, desc: Descriptor) -> bytes:
        """A small blob (a config), stored verified and returned."""
        if not self.content.has(desc.digest):
            self.fetch_blob(desc, None, threading.Event())
        return self.content.read_bytes(desc.digest)

    def fetch_blob(self, desc: Descriptor, layer_id: str | None, stop: threading.Event) -> Descriptor:
        """Download ``desc`` into the content store (verified); ``layer_id`` reports progress."""
        if self.content.has(desc.digest):
            return desc
        self.check_cancelled()
        total = desc.size
        last = [0]
        step = max(total // 100, 256 << 10)

        def on_bytes(current: int) -> None:
            if layer_id is not None and (current - last[0] >= step or current >= total):
                last[0] = current
                self.progress(layer_id, "Downloading", current, total)

        response = self._open_blob(desc.digest, 0)
        for _ in range(_RESUME_ATTEMPTS):
            reader = _ResumingReader(
                lambda offset: self._open_blob(desc.digest, offset),
                response,
                total,
                on_bytes,
                stop,
                self.cancel,
            )
            try:
                stored = self.content.ingest(_as_binary(reader), desc.digest, total)
            except _Stopped:
                self.check_cancelled()
                raise
            except _Restart as again:
                response = again.response
                last[0] = 0
                continue
            except IntegrityError as exc:
                raise IntegrityError(f"{self.ref.name}: blob {desc.digest} refused: {exc}") from None
            finally:
                with self._live_lock:
                    self._live.pop(threading.get_ident(), None)
                reader.close()
            if self.sources is not None:
                self.sources.add(desc.digest, self.ref.name)
            return Descriptor(stored.digest, stored.size, desc.media_type, desc.annotations)
        raise IntegrityError(
            f"{self.ref.name}: blob {desc.digest}: the registry kept ignoring Range requests"
        )

    def download_layers(
        self, layers: Sequence[Descriptor], present: Sequence[bool]
    ) -> Generator[int, None, None]:
        """Download the layers not ``present`` (``max_concurrent_downloads`` at a time) and yield
        every index bottom first once its blob is stored, so the caller unpacks while the rest
        download. Leaving the loop early (an error) stops the other downloads."""
        stop = threading.Event()
        pending = [n for n, ok in enumerate(present) if not ok]
        for n in pending:
            self.progress(short_id(layers[n].digest), "Pulling fs layer")
        for n in pending[self.max_concurrent_downloads :]:
            self.progress(short_id(layers[n].digest), "Waiting")
        pool = cf.ThreadPoolExecutor(max_workers=self.max_concurrent_downloads, thread_name_prefix="pull")
        futures: dict[int, cf.Future[Descriptor]] = {}
        try:
            for n in pending:
                futures[n] = pool.submit(self._download_layer, layers[n], stop)
            for n in range(len(layers)):
                if n in futures:
                    try:
                        futures[n].result()
                    except _Stopped:
                        self.check_cancelled()
                        raise _first_error(futures) from None
                yield n
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)

    def _download_layer(self, desc: Descriptor, stop: threading.Event) -> Descriptor:
        if stop.is_set() or self.cancel.is_set():
            raise _Stopped()
        layer_id = short_id(desc.digest)
        try:
            stored = self.fetch_blob(desc, layer_id, stop)
        except _Stopped:
            raise
        except ContainerkitError:
            stop.set()
            raise
        self.progress(layer_id, "Verifying Checksum")
        self.progress(layer_id, "Download complete")
        return stored


def _cut(response: requests.Response) -> None:
    """Shut the socket a streamed body is read from, so a read blocked on it returns at once
    (closing the response from another thread does not wake it)."""
    raw: Any = response.raw
    connection = getattr(raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        fp = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _first_error(futures: Mapping[int, cf.Future[Descriptor]]) -> BaseException:
    """The download error that stopped the others (they report only that they were stopped)."""
    cf.wait(list(futures.values()))
    for future in futures.values():
        error = None if future.cancelled() else future.exception()
        if error is not None and not isinstance(error, _Stopped):
            return error
    return ContainerkitError("pull stopped")


def _as_binary(reader: _ResumingReader) -> BinaryIO:
    """The ingest reads with ``read(n)`` only; this reader has exactly that."""
    return reader  # type: ignore[return-value]

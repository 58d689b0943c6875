"""Test images for pull and push, and a small fake registry for what distribution 2.8 cannot do.

The fake registry (``FakeRegistry``) is a stand-in, not a registry: it serves blobs and manifests
from a dict and can break a body after N bytes, ignore ``Range``, send a wrong ``Content-Range``,
answer 416, throttle, or lie in ``Docker-Content-Digest``. distribution 2.8 does none of these
(its ``http.ServeContent`` always honours Range, and it ignores ``Content-Range`` on PATCH), so
the resume and verification paths can only be driven this way.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.server
import io
import json
import os
import select
import socket
import tarfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from containerkit.images.content import ContentStore, Descriptor
from containerkit.images.manifest import (
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_LAYER_GZIP,
    MEDIA_OCI_MANIFEST,
    build_config,
    build_manifest,
    canonical_json,
)
from containerkit.spec import ImageConfig
from tests.images._layers import compress


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_layer(files: dict[str, bytes]) -> bytes:
    """An uncompressed layer tar holding ``files`` (paths relative to /)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@dataclass
class BuiltImage:
    """An image as blobs: what a registry would hold for it."""

    config: bytes
    layers: list[bytes]
    manifest: bytes
    media_types: list[str] = field(default_factory=list)

    @property
    def config_digest(self) -> str:
        return sha(self.config)

    @property
    def manifest_digest(self) -> str:
        return sha(self.manifest)

    def blobs(self) -> dict[str, bytes]:
        return {sha(b): b for b in [self.config, *self.layers]}


def build_image(
    tars: Sequence[bytes],
    *,
    architecture: str = "amd64",
    variant: str | None = None,
    cmd: Sequence[str] = ("sh",),
) -> BuiltImage:
    """gzip layers, an OCI config and manifest (a variant is added to the config when given)."""
    layers = [compress(t, "gzip") for t in tars]
    config = build_config(
        [sha(t) for t in tars],
        ImageConfig(cmd=list(cmd)),
        created=dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        architecture=architecture,
    )
    if variant is not None:
        doc = json.loads(config)
        doc["variant"] = variant
        config = canonical_json(doc)
    manifest = build_manifest(
        Descriptor(sha(config), len(config), MEDIA_OCI_CONFIG),
        [Descriptor(sha(b), len(b), MEDIA_OCI_LAYER_GZIP) for b in layers],
    )
    return BuiltImage(config, layers, manifest, [MEDIA_OCI_LAYER_GZIP] * len(layers))


def store_into(content: ContentStore, image: BuiltImage) -> None:
    for blob in image.blobs().values():
        content.ingest_bytes(blob)
    content.ingest_bytes(image.manifest)


# ------------------------------------------------------------------------------------ fake registry


@dataclass
class Behaviour:
    """How the fake registry misbehaves; ``break_after`` cuts the first body of a blob after N bytes."""

    break_after: dict[str, int] = field(default_factory=dict)
    ignore_range: bool = False
    wrong_range_start: bool = False
    range_416: bool = False
    throttle: float = 0.0  # seconds per 64 KiB sent
    manifest_digest_header: str | None = None
    stored_digest_header: str | None = None
    stall_after: dict[str, int] = field(default_factory=dict)
    """Blob bodies that stop after N bytes until :attr:`FakeRegistry.release` is set, or until the
    client closes the connection (recorded in :attr:`FakeRegistry.cut_off`)."""


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the connections the tests cut on purpose


class FakeRegistry:
    """An in-test OCI registry on 127.0.0.1 (see the module docstring): anonymous, one repository."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.uploads: dict[str, bytearray] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._broken: set[str] = set()
        self.release = threading.Event()
        self.cut_off: list[str] = []
        self.cut = threading.Event()  # set when a client closed a stalled body
        self._lock = threading.Lock()
        handler = type("Handler", (_FakeHandler,), {"owner": self})
        self.server = _QuietServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def add_image(self, tag: str, image: BuiltImage) -> None:
        self.blobs.update(image.blobs())
        self.manifests[tag] = (image.manifest, MEDIA_OCI_MANIFEST)
        self.manifests[image.manifest_digest] = (image.manifest, MEDIA_OCI_MANIFEST)

    def blob_gets(self, digest: str) -> list[dict[str, str]]:
        return [h for m, p, h in self.requests if m == "GET" and p.endswith(f"/blobs/{digest}")]

    def __enter__(self) -> FakeRegistry:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()  # a stalled body goes on, so its handler thread ends
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def _peek(conn: socket.socket) -> bytes:
    """A byte the client sent, without taking it; b"" once it hung up."""
    try:
        return conn.recv(1, socket.MSG_PEEK)
    except OSError:
        return b""


class _FakeHandler(http.server.BaseHTTPRequestHandler):
    owner: FakeRegistry
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _record(self) -> None:
        with self.owner._lock:
            self.owner.requests.append((self.command, self.path, dict(self.headers.items())))

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str) -> None:
        body = json.dumps({"errors": [{"code": code, "message": code.lower()}]}).encode()
        self._send(status, body, {"Content-Type": "application/json"})

    def do_GET(self) -> None:
        self._record()
        path = self.path.split("?", 1)[0]
        if path == "/v2/":
            self._send(200, b"{}", {"Content-Type": "application/json"})
        elif "/manifests/" in path:
            self._manifest(path.rsplit("/", 1)[1])
        elif "/blobs/" in path:
            self._blob(path.rsplit("/", 1)[1])
        else:
            self._error(404, "NAME_UNKNOWN")

    def do_HEAD(self) -> None:
        self.do_GET()

    def _manifest(self, reference: str) -> None:
        found = self.owner.manifests.get(reference)
        if found is None:
            self._error(404, "MANIFEST_UNKNOWN")
            return
        body, media_type = found
        digest = self.owner.behaviour.manifest_digest_header or sha(body)
        self._send(200, body, {"Content-Type": media_type, "Docker-Content-Digest": digest})

    def _blob(self, digest: str) -> None:
        data = self.owner.blobs.get(digest)
        if data is None:
            self._error(404, "BLOB_UNKNOWN")
            return
        behaviour = self.owner.behaviour
        start = 0
        wanted = self.headers.get("Range")
        status = 200
        headers = {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest}
        if wanted and not behaviour.ignore_range:
            if behaviour.range_416:
                self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                return
            start = int(wanted.removeprefix("bytes=").split("-", 1)[0])
            status = 206
            shown = start + 1 if behaviour.wrong_range_start else start
            headers["Content-Range"] = f"bytes {shown}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        if self.command == "HEAD":
            self._send(status, b"", {**headers, "Content-Length": str(len(body))})
            return
        cut = behaviour.break_after.get(digest)
        first = digest not in self.owner._broken
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if cut is not None and first:
            with self.owner._lock:
                self.owner._broken.add(digest)
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        step = 64 << 10
        stall = behaviour.stall_after.get(digest)
        for offset in range(0, len(body), step):
            if stall is not None and offset >= stall and not self._stalled(digest):
                return
            self.wfile.write(body[offset : offset + step])
            if behaviour.throttle:
                time.sleep(behaviour.throttle)

    def _stalled(self, digest: str) -> bool:
        """Wait for the registry's release (True) or for the client to hang up (False)."""
        self.wfile.flush()
        while not self.owner.release.wait(0.05):
            readable, _, _ = select.select([self.connection], [], [], 0)
            if readable and not _peek(self.connection):
                with self.owner._lock:
                    self.owner.cut_off.append(digest)
                self.owner.cut.set()
                self.close_connection = True
                return False
        return True

    # ---- push

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_POST(self) -> None:
        self._record()
        self._body()
        session = uuid.uuid4().hex
        self.owner.uploads[session] = bytearray()
        repo = self.path.split("/blobs/", 1)[0]
        # relative, with a query the client must keep (as distribution's _state)
        self._send(
            202, b"", {"Location": f"{repo}/blobs/uploads/{session}?_state=s{session}", "Range": "0-0"}
        )

    def _session(self) -> str | None:
        path, _, query = self.path.partition("?")
        session = path.rsplit("/", 1)[1]
        if f"_state=s{session}" not in query or session not in self.owner.uploads:
            self._error(400, "BLOB_UPLOAD_INVALID")
            return None
        return session

    def do_PATCH(self) -> None:
        self._record()
        session = self._session()
        body = self._body()
        if session is None:
            return
        buffer = self.owner.uploads[session]
        declared = self.headers.get("Content-Range")
        if declared is not None and int(declared.split("-", 1)[0]) != len(buffer):
            self._send(416, b"", {"Range": f"0-{len(buffer) - 1}"})
            return
        buffer.extend(body)
        repo = self.path.split("/blobs/", 1)[0]
        self._send(
            202,
            b"",
            {
                "Location": f"{repo}/blobs/uploads/{session}?_state=s{session}",
                "Range": f"0-{len(buffer) - 1}",
            },
        )

    def do_PUT(self) -> None:
        self._record()
        path, _, query = self.path.partition("?")
        body = self._body()
        if "/manifests/" in path:
            reference = path.rsplit("/", 1)[1]
            media_type = self.headers.get("Content-Type", "")
            self.owner.manifests[reference] = (body, media_type)
            self.owner.manifests[sha(body)] = (body, media_type)
            digest = self.owner.behaviour.manifest_digest_header or sha(body)
            self._send(201, b"", {"Docker-Content-Digest": digest})
            return
        session = self._session()
        if session is None:
            return
        data = bytes(self.owner.uploads.pop(session)) + body
        digest = urllib.parse.parse_qs(query).get("digest", [""])[0]
        if sha(data) != digest:
            self._error(400, "DIGEST_INVALID")
            return
        self.owner.blobs[digest] = data
        self._send(201, b"", {"Docker-Content-Digest": self.owner.behaviour.stored_digest_header or digest})


@contextmanager
def fake_registry(behaviour: Behaviour | None = None) -> Iterator[FakeRegistry]:
    with FakeRegistry(behaviour) as running:
        yield running


def ingest_files(path: Path) -> list[str]:
    """The ingest temp files a content store root holds (a killed pull must leave none after recovery)."""
    ingest = path / "content" / "ingest"
    return sorted(os.listdir(ingest)) if ingest.exists() else []

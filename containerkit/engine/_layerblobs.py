"""Layer blobs only where they are needed, as Docker's overlay2 keeps them.

Once a layer is unpacked, its diff id verified and its tar-split recorded
(:mod:`containerkit.storage.tarsplit`), the layer blob is redundant: the uncompressed tar can be
written again, byte for byte, from the unpacked directory. :func:`release` deletes it; manifests
and configs (small) stay. What a push needs to reuse a blob a registry already has is kept in
:class:`LayerOrigins` (docker's "v2metadata"): per diff id, the blob digests, sizes and media
types it was pulled or pushed as, and :class:`~containerkit.images.registry.sources.BlobSources`
keeps which repositories each came from.

An Engine opened with ``keep_layer_blobs=True`` (as containerd's content store, which keeps every
blob) releases nothing: a push or save then sends the blob as it was pulled or loaded, for the
disk of both.

When a blob is gone: a save writes the rebuilt uncompressed tar (its digest is the diff id, as
``docker save`` writes layers); a push first asks the registry for a blob it already holds
(HEAD, or a cross-repository mount), and otherwise uploads the rebuilt tar gzipped
deterministically (:func:`gzip_stream`: ISA-L level 1, no name, mtime 0) as it is written
again, so its digest differs from the pulled one, as docker's pushes do.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from containerkit.errors import NotFound
from containerkit.images.content import Descriptor, check_digest
from containerkit.images.deflate import gzip_chunks
from containerkit.images.manifest import MEDIA_OCI_LAYER
from containerkit.storage._assemble_worker import gzip_rebuilt
from containerkit.storage.records import ImageLayer
from containerkit.storage.tarsplit import Writable, assemble

if TYPE_CHECKING:
    from containerkit.engine.images import ImageCollection

__all__ = [
    "MEDIA_OCI_LAYER_GZIP",
    "LayerOrigins",
    "gzip_stream",
    "known_pair",
    "rebuild_plain",
    "release",
    "write_plain",
]

MEDIA_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
_MAX_ORIGINS = 8
REBUILD_IN_CHILD = True
"""Push rebuilds and gzips each layer in a child process (both cores, no GIL shared with the
upload); False (or no interpreter to start) does it on a thread of this process."""


class LayerOrigins:
    """Per diff id, the blobs that hold it (most recent first): one small JSON file each,
    replaced atomically. A hint: a lost entry costs a rebuild, never a wrong blob (every entry
    was verified when it was written)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, diff_id: str) -> Path:
        return self.root / check_digest(diff_id).split(":", 1)[1]

    def get(self, diff_id: str) -> list[Descriptor]:
        try:
            value = json.loads(self._path(diff_id).read_text())
        except (OSError, ValueError):
            return []
        found = []
        for item in value if isinstance(value, list) else []:
            with contextlib.suppress(Exception):
                found.append(Descriptor(str(item["digest"]), int(item["size"]), str(item["mediaType"])))
        return found

    def add(self, diff_id: str, blob: Descriptor) -> None:
        current = self.get(diff_id)
        if current and current[0].digest == blob.digest:
            return
        entries = [blob] + [d for d in current if d.digest != blob.digest]
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(
                    [{"digest": d.digest, "size": d.size, "mediaType": d.media_type} for d in entries][
                        :_MAX_ORIGINS
                    ],
                    out,
                )
            os.replace(tmp, self._path(diff_id))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def forget(self, diff_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(diff_id).unlink()


def origins(images: ImageCollection) -> LayerOrigins:
    return LayerOrigins(images.content.root / "origins")


def known_pair(images: ImageCollection, chain_id: str, blob_digest: str, diff_id: str) -> bool:
    """Whether ``blob_digest`` is known to hold ``diff_id`` (verified when it was recorded)."""
    if blob_digest == diff_id:
        return True
    known = images.metadata.layers.get(chain_id)
    if known is not None and known.blob_digest == blob_digest and known.diff_id == diff_id:
        return True
    return any(d.digest == blob_digest for d in origins(images).get(diff_id))


def release(images: ImageCollection, layers: Iterable[ImageLayer]) -> None:
    """Delete the blobs of ``layers`` whose unpacked layer can write their tar again; record
    each pair (diff id, blob) first, for a push that reuses the blob a registry holds. Nothing
    when the collection keeps layer blobs (``images.keep_layer_blobs``)."""
    if images.keep_layer_blobs:
        return
    store = origins(images)
    for layer in layers:
        if not images.snapshots.has_tarsplit(layer.chain_id):
            continue
        if layer.blob_digest != layer.diff_id:
            store.add(layer.diff_id, Descriptor(layer.blob_digest, layer.blob_size, layer.media_type))
        images.content.delete(layer.blob_digest)


def write_plain(images: ImageCollection, layer: ImageLayer, out: Writable) -> int:
    if not images.snapshots.has_tarsplit(layer.chain_id):
        raise NotFound(
            f"layer {layer.diff_id}: its blob {layer.blob_digest} is gone and the layer has no tar-split"
        )
    return assemble(
        images.snapshots.layer_dir(layer.chain_id),
        images.snapshots.tarsplit_path(layer.chain_id),
        out,
        diff_id=layer.diff_id,
    )


def rebuild_plain(images: ImageCollection, layer: ImageLayer, workdir: Path) -> Path:
    """The layer's uncompressed tar, written again into a temp file in ``workdir`` (the
    caller removes it); its digest is the diff id (checked)."""
    fd, name = tempfile.mkstemp(dir=workdir, prefix="layer-")
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as out:
            write_plain(images, layer, out)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def gzip_stream(images: ImageCollection, layer: ImageLayer) -> Generator[bytes, None, None]:
    """The layer's tar written again and gzipped deterministically (ISA-L level 1, no name,
    mtime 0), as it is made, in a child process (:data:`REBUILD_IN_CHILD`): nothing is stored.
    The tar is checked against the diff id at its end: a layer that changed raises
    :class:`~containerkit.errors.IntegrityError` after the last chunk, so an upload fed from
    here is cancelled rather than committed. Whether the layer has a tar-split at all is
    checked before anything starts (:class:`~containerkit.errors.NotFound`)."""
    if not images.snapshots.has_tarsplit(layer.chain_id):
        raise NotFound(
            f"layer {layer.diff_id}: its blob {layer.blob_digest} is gone and the layer has no tar-split"
        )
    if REBUILD_IN_CHILD and sys.executable:
        return gzip_rebuilt(
            images.snapshots.layer_dir(layer.chain_id),
            images.snapshots.tarsplit_path(layer.chain_id),
            diff_id=layer.diff_id,
        )
    return gzip_chunks(lambda out: write_plain(images, layer, out))


def plain_descriptor(layer: ImageLayer, size: int) -> Descriptor:
    """How a rebuilt uncompressed layer is described in a saved OCI manifest."""
    return Descriptor(layer.diff_id, size, MEDIA_OCI_LAYER)

"""Which blob a push sends for each layer, when the store keeps no layer blob.

A layer whose blob is in the store is pushed as it is. For one whose blob is gone (see
:mod:`containerkit.engine._layerblobs`), the blobs it was pulled or pushed as before are asked
for first: the repository may have one (HEAD: "Layer already exists") or another repository of
the registry it came from (a mount: "Mounted from ..."); such a blob is reused without an
upload. Otherwise the layer's tar is written again from its unpacked directory and gzipped
deterministically (ISA-L level 1) in a child process, and uploaded as it is made, in one
streamed upload whose digest is known at its end (as docker pushes), several layers at once;
nothing of it is stored, and the blob it became is remembered for the next push.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
from typing import TYPE_CHECKING

import attrs

from containerkit.engine import _layerblobs
from containerkit.errors import NotFound
from containerkit.images.content import Descriptor
from containerkit.images.manifest import MEDIA_OCI_LAYER
from containerkit.images.registry.pull import short_id
from containerkit.images.registry.push import Pusher
from containerkit.storage.records import ImageLayer, ImageRecord

if TYPE_CHECKING:
    from containerkit.engine.images import ImageCollection

__all__ = ["PushLayers", "finish", "prepare"]

_OCI_TYPES = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": _layerblobs.MEDIA_OCI_LAYER_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar": MEDIA_OCI_LAYER,
}
_REBUILD_WORKERS = max(1, min(4, os.cpu_count() or 1))
"""Layers rebuilt, gzipped and uploaded at once: each rebuilt and gzipped in a child process
(:func:`~containerkit.engine._layerblobs.gzip_stream`), uploaded from a thread here."""


@attrs.frozen
class PushLayers:
    layers: tuple[Descriptor, ...]
    """The blob each layer is pushed as, bottom first."""
    reused: frozenset[str]
    """Digests the registry already has (found or mounted here): no upload."""
    rebuilt: tuple[tuple[ImageLayer, Descriptor], ...]
    """Layers written again for this push, and the blobs they were uploaded as."""
    uploaded: frozenset[str] = frozenset()
    """Rebuilt blobs already uploaded by :func:`prepare` (all of them: each as it was made)."""

    def pending(self, desc: Descriptor) -> bool:
        """Whether ``desc`` still has to be pushed (neither reused nor uploaded yet)."""
        return desc.digest not in self.reused and desc.digest not in self.uploaded

    def oci_layers(self) -> list[Descriptor]:
        """The layers with docker's media types said the OCI way (a new manifest is OCI)."""
        return [attrs.evolve(d, media_type=_OCI_TYPES.get(d.media_type, d.media_type)) for d in self.layers]


def _candidates(images: ImageCollection, layer: ImageLayer) -> list[Descriptor]:
    found = [Descriptor(layer.blob_digest, layer.blob_size, layer.media_type)]
    for desc in _layerblobs.origins(images).get(layer.diff_id):
        if all(desc.digest != d.digest for d in found):
            found.append(desc)
    return found


def _rebuild_and_upload(pusher: Pusher, images: ImageCollection, layer: ImageLayer) -> Descriptor:
    """Layer ``layer`` rebuilt, gzipped and uploaded as it is made (its digest known at the end).
    The stream is closed here whatever happens: a failed upload stops its rebuild at once (the
    child process killed) instead of when the error's traceback is dropped."""
    chunks = _layerblobs.gzip_stream(images, layer)
    with contextlib.closing(chunks):
        return pusher.push_stream(chunks, _layerblobs.MEDIA_OCI_LAYER_GZIP, short_id(layer.diff_id))


def prepare(images: ImageCollection, pusher: Pusher, record: ImageRecord) -> PushLayers:
    """Pick each layer's blob: stored, reused from the registry, or rebuilt and uploaded as it
    is made (several layers at once)."""
    layers: list[Descriptor | None] = []
    reused: set[str] = set()
    missing: list[int] = []
    for n, layer in enumerate(record.layers):
        if images.content.has(layer.blob_digest):
            layers.append(Descriptor(layer.blob_digest, layer.blob_size, layer.media_type))
            continue
        chosen = None
        for desc in _candidates(images, layer):
            try:
                pusher.push_blob(desc, short_id(layer.diff_id))
            except NotFound:
                continue  # the registry has it nowhere we may take it from
            chosen = desc
            reused.add(desc.digest)
            break
        layers.append(chosen)
        if chosen is None:
            missing.append(n)
    rebuilt: list[tuple[ImageLayer, Descriptor]] = []
    for n in missing:
        pusher.progress(short_id(record.layers[n].diff_id), "Preparing")
    if missing:
        with cf.ThreadPoolExecutor(min(_REBUILD_WORKERS, len(missing)), thread_name_prefix="rebuild") as pool:
            futures = {n: pool.submit(_rebuild_and_upload, pusher, images, record.layers[n]) for n in missing}
            try:
                for n, future in futures.items():
                    desc = future.result()
                    layers[n] = desc
                    rebuilt.append((record.layers[n], desc))
            finally:
                for future in futures.values():
                    future.cancel()
    return PushLayers(
        tuple(d for d in layers if d is not None),
        frozenset(reused),
        tuple(rebuilt),
        frozenset(d.digest for _, d in rebuilt),
    )


def finish(images: ImageCollection, plan: PushLayers, repository: str, *, pushed: bool) -> None:
    """After the push: remember the blobs the registry now has for each layer (when ``pushed``)."""
    if pushed:
        origins = _layerblobs.origins(images)
        for layer, desc in plan.rebuilt:
            origins.add(layer.diff_id, desc)
        for desc in plan.layers:
            if desc.digest in plan.reused or any(desc == d for _, d in plan.rebuilt):
                images.sources.add(desc.digest, repository)  # a mount source for the next push

"""``engine.images.pull/push/get_registry_data``: the registry client wired to the image store.

Pull: resolve the reference (index -> the manifest for the platform), fetch the config, then
download the layers concurrently while this thread unpacks them bottom first as each arrives
(layer N unpacks while N+1.. download), and record the image, its tag and its RepoDigest in one
metadata transaction. The whole pull holds the store's shared GC lock, so a prune never removes
what it is about to reference. Verified blobs and unpacked layers are kept when a pull fails or
is killed: they are whole, the next pull uses them instead of fetching them again, and prune
reclaims them if no pull ever does; temp files of a killed pull are removed by recovery.

Push: the image's blobs as the store holds them (see :mod:`containerkit.images.registry.push`),
then its manifest, recorded as a RepoDigest once the registry confirmed its digest.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from containerkit.engine import _layerblobs, _layerpush
from containerkit.errors import IntegrityError, InvalidArgument, InvalidReference, NotFound
from containerkit.images.archive import open_uncompressed
from containerkit.images.content import Descriptor
from containerkit.images.manifest import (
    MEDIA_DOCKER_CONFIG,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_MANIFEST,
    build_manifest,
    chain_ids,
    parse_config,
    parse_manifest,
)
from containerkit.images.reference import ImageRef, parse_reference
from containerkit.images.registry.auth import RegistryAuth, RegistryOptions
from containerkit.images.registry.credentials import CredentialStore
from containerkit.images.registry.platform import Platform, host_platform, normalize, parse_platform
from containerkit.images.registry.pull import Progress, Puller, Transport, short_id
from containerkit.images.registry.push import Pusher
from containerkit.images.registry.transport import RegistryTransport
from containerkit.spec import Image, ProgressEvent, RegistryData
from containerkit.storage.apply import apply_layer
from containerkit.storage.records import ImageLayer, ImageRecord, LayerRecord

if TYPE_CHECKING:
    from containerkit.engine.images import ImageCollection

__all__ = ["TransportFactory", "default_transport", "pull", "push", "registry_data"]

_UNPACK_WORKERS = max(1, min(4, os.cpu_count() or 1))
"""Layers unpacked at once: the work is file creation and decompression, which release the GIL."""

TransportFactory = Callable[[str, "RegistryAuth | None", RegistryOptions], Transport]


def default_transport(domain: str, auth: RegistryAuth | None, options: RegistryOptions) -> Transport:
    """The registry's transport; without ``auth``, docker's stored credentials when the options
    allow reading them (the daemon's do not: it uses only what its client sends)."""
    if auth is None and options.config_credentials:
        auth = CredentialStore().get(domain)
    return RegistryTransport(domain, auth=auth, options=options)


def _docker_name(ref: ImageRef) -> str:
    """How docker names the image in "Status:" lines: ``busybox:latest``, ``host:5000/x@sha256:..``."""
    return ref.familiar


def pull(
    images: ImageCollection,
    ref: str,
    *,
    platform: str | None,
    auth: RegistryAuth | None,
    progress: Callable[[ProgressEvent], None] | None,
    options: RegistryOptions,
    transport: TransportFactory = default_transport,
    cancel: threading.Event | None = None,
) -> Image:
    image_ref = parse_reference(ref)
    wanted = parse_platform(platform) if platform else host_platform()
    emit = Progress(progress)
    puller = Puller(
        transport(image_ref.domain, auth, options),
        image_ref,
        images.content,
        progress=emit,
        max_concurrent_downloads=options.max_concurrent_downloads,
        sources=images.sources,
        cancel=cancel,
    )
    with puller.cancellable():
        return _pull(images, image_ref, puller, emit, wanted, platform)


def _pull(
    images: ImageCollection,
    image_ref: ImageRef,
    puller: Puller,
    emit: Progress,
    wanted: Platform,
    platform: str | None,
) -> Image:
    resolved = puller.resolve(wanted)
    manifest = resolved.manifest
    before = images.metadata.images.resolve_tag(image_ref.canonical) if image_ref.digest is None else None
    with images._adding():
        config_json = puller.fetch_blob_bytes(manifest.config)
        parsed = parse_config(config_json, f"config {manifest.config.digest} of {image_ref.name}")
        if platform and resolved.index is None:
            _check_platform(image_ref, wanted, parsed.os, parsed.architecture, parsed.raw.get("variant"))
        # dockerd says this once the manifest is found: a missing one is an error before any line
        emit(image_ref.tag or image_ref.digest or "", f"Pulling from {image_ref.path}")
        if len(parsed.diff_ids) != len(manifest.layers):
            raise InvalidArgument(
                f"manifest {resolved.manifest_digest} of {image_ref.name} has {len(manifest.layers)} layers "
                f"but its config lists {len(parsed.diff_ids)} diff ids"
            )
        chains = chain_ids(parsed.diff_ids)
        # a layer unpacked before from this very blob needs no download (its blob is not kept)
        present = [
            images.content.has(layer.digest)
            or (
                images.snapshots.has_layer(chains[n])
                and _layerblobs.known_pair(images, chains[n], layer.digest, parsed.diff_ids[n])
            )
            for n, layer in enumerate(manifest.layers)
        ]
        for n, layer in enumerate(manifest.layers):
            if present[n] and images.snapshots.has_layer(chains[n]):
                emit(short_id(layer.digest), "Already exists")

        def unpack(n: int) -> int:
            """Layer ``n`` into the snapshot store (once per chain id); its unpacked size."""
            layer, diff_id, chain_id = manifest.layers[n], parsed.diff_ids[n], chains[n]
            layer_id = short_id(layer.digest)
            if images.snapshots.has_layer(chain_id):
                _check_pairing(images, chain_id, layer, diff_id)
                size = images.snapshots.check_layer(chain_id, diff_id).size
                if not present[n]:
                    emit(layer_id, "Pull complete")
                return size
            emit(layer_id, "Extracting", 0, layer.size)
            path = images.content.path(layer.digest)
            size = apply_layer(images.snapshots, chain_id, path, expected_diff_id=diff_id).size
            emit(layer_id, "Extracting", layer.size, layer.size)
            emit(layer_id, "Pull complete")
            return size

        # Layers unpack into a dir each (no layer needs the one below it), so each starts as soon
        # as its blob is stored, beside the downloads still running and the other unpacks.
        # closing: leaving early (an error) stops and joins the other downloads.
        unpacks: list[cf.Future[int]] = []
        pool = cf.ThreadPoolExecutor(max_workers=_UNPACK_WORKERS, thread_name_prefix="unpack")
        try:
            with contextlib.closing(puller.download_layers(manifest.layers, present)) as ready:
                for n in ready:
                    puller.check_cancelled()
                    unpacks.append(pool.submit(unpack, n))
                    for failed in (f for f in unpacks if f.done() and f.exception() is not None):
                        failed.result()
            sizes = [future.result() for future in unpacks]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        puller.check_cancelled()  # nothing recorded: the next pull finds the verified layers
        layer_records = [
            LayerRecord(
                chain_id=chains[n],
                diff_id=parsed.diff_ids[n],
                blob_digest=layer.digest,
                size=sizes[n],
                media_type=layer.media_type,
                parent=chains[n - 1] if n else None,
            )
            for n, layer in enumerate(manifest.layers)
        ]
        image_layers = [
            ImageLayer(
                diff_id=parsed.diff_ids[n],
                chain_id=chains[n],
                blob_digest=layer.digest,
                blob_size=layer.size,
                media_type=layer.media_type,
            )
            for n, layer in enumerate(manifest.layers)
        ]
        total = sum(sizes)
        images.content.ingest_bytes(resolved.manifest_bytes, resolved.manifest_digest)
        record = ImageRecord(
            id=manifest.config.digest,
            manifest_digest=resolved.manifest_digest,
            config_json=config_json.decode(),
            layers=tuple(image_layers),
            size=total,
            created=parsed.created.isoformat() if parsed.created else None,
            architecture=parsed.architecture,
            os=parsed.os,
            added=time.time(),
        )
        tags = [image_ref.canonical] if image_ref.digest is None else []
        with images.metadata.transaction():
            for item in layer_records:
                images.metadata.layers.add(item)
            images.metadata.images.add(record, tags=tags, digests=[f"{image_ref.name}@{resolved.digest}"])
        _layerblobs.release(images, image_layers)  # unpacked and verified: the blobs are not kept
    emit("", f"Digest: {resolved.digest}")
    if before == record.id:
        emit("", f"Status: Image is up to date for {_docker_name(image_ref)}")
    else:
        emit("", f"Status: Downloaded newer image for {_docker_name(image_ref)}")
    images.events.record("image", "pull", _docker_name(image_ref), {"name": _docker_name(image_ref)})
    return images.get(record.id)


def _format(platform: Platform) -> str:
    """containerd's ``platforms.Format``: ``linux/arm64``, ``linux/arm/v7`` (no default variant)."""
    return "/".join(x for x in (platform.os, platform.architecture, platform.variant) if x)


def _check_platform(ref: ImageRef, wanted: Platform, os_name: str, arch: str, variant: object) -> None:
    """A single-platform image asked for with ``platform=`` must run there (its config says what it
    is): NotFound in dockerd's words otherwise, which docker-py turns into ``ImageNotFound``. A
    config that names no architecture is taken as it is, as dockerd takes it."""
    if not arch:
        return
    actual = normalize(os_name or "linux", arch, variant if isinstance(variant, str) else "")
    if wanted.rank(actual) is None:
        raise NotFound(
            f"image with reference {ref.familiar} was found but does not match the specified "
            f"platform: wanted {_format(wanted)}, actual: {_format(actual)}"
        )


def _check_pairing(images: ImageCollection, chain_id: str, blob: Descriptor, diff_id: str) -> None:
    """A layer unpacked before is reused for this blob only once the blob is known to hold it:
    an earlier pull or load recorded the pair, or the blob's uncompressed digest is ``diff_id``."""
    if _layerblobs.known_pair(images, chain_id, blob.digest, diff_id):
        return
    hasher = hashlib.sha256()
    with images.content.open(blob.digest) as raw:
        stream = open_uncompressed(raw)
        while chunk := stream.read(1 << 20):
            hasher.update(chunk)
    if "sha256:" + hasher.hexdigest() != diff_id:
        raise IntegrityError(f"layer {blob.digest}: its content is not diff id {diff_id}")


def registry_data(
    images: ImageCollection,
    ref: str,
    *,
    auth: RegistryAuth | None,
    options: RegistryOptions,
    transport: TransportFactory = default_transport,
) -> RegistryData:
    image_ref = parse_reference(ref)
    puller = Puller(
        transport(image_ref.domain, auth, options), image_ref, images.content, progress=Progress(None)
    )
    with images._adding():
        return puller.registry_data()


def _manifest_for(
    images: ImageCollection, record: ImageRecord, plan: _layerpush.PushLayers | None = None
) -> tuple[bytes, str]:
    """The stored manifest when it still describes this image's blobs (or the blobs ``plan``
    pushes), else one built from them."""
    blobs = [x.blob_digest for x in record.layers]
    if plan is not None and [x.digest for x in plan.layers] != blobs:
        config = Descriptor(record.id, images.content.size(record.id), MEDIA_OCI_CONFIG)
        return build_manifest(config, plan.oci_layers()), MEDIA_OCI_MANIFEST
    if record.manifest_digest and images.content.has(record.manifest_digest):
        data = images.content.read_bytes(record.manifest_digest)
        try:
            stored = parse_manifest(data, f"manifest {record.manifest_digest}")
        except InvalidArgument:
            stored = None
        if (
            stored is not None
            and stored.config.digest == record.id
            and [x.digest for x in stored.layers] == blobs
        ):
            return data, stored.media_type
    config = Descriptor(record.id, images.content.size(record.id), MEDIA_OCI_CONFIG)
    layers = [Descriptor(x.blob_digest, x.blob_size, x.media_type) for x in record.layers]
    return build_manifest(config, layers), MEDIA_OCI_MANIFEST


def push(
    images: ImageCollection,
    ref: str,
    *,
    auth: RegistryAuth | None,
    progress: Callable[[ProgressEvent], None] | None,
    options: RegistryOptions,
    transport: TransportFactory = default_transport,
    chunk_size: int | None = None,
) -> str:
    image_ref = parse_reference(ref)
    if image_ref.digest is not None:
        raise InvalidReference(f"cannot push a digest reference: {ref}")
    image_id = images.metadata.images.resolve_tag(image_ref.canonical)
    if image_id is None:
        raise NotFound(f"An image does not exist locally with the tag: {image_ref.familiar_name}")
    record = images._record(image_id)
    emit = Progress(progress)
    emit("", f"The push refers to repository [{image_ref.name}]")
    pusher = Pusher(
        transport(image_ref.domain, auth, options),
        image_ref,
        images.content,
        progress=emit,
        max_concurrent_uploads=options.max_concurrent_uploads,
        sources=images.sources,
        chunk_size=chunk_size,
    )
    with images._adding():
        # layer blobs the store does not keep: reused where the registry has them, else rebuilt
        plan = _layerpush.prepare(images, pusher, record)
        pushed = False
        try:
            data, media_type = _manifest_for(images, record, plan)
            doc = json.loads(data)
            config_type = doc.get("config", {}).get("mediaType") or (
                MEDIA_DOCKER_CONFIG if media_type == MEDIA_DOCKER_MANIFEST else MEDIA_OCI_CONFIG
            )
            config = Descriptor(record.id, images.content.size(record.id), config_type)
            blobs = [
                (desc, short_id(x.diff_id))
                for desc, x in zip(plan.layers, record.layers, strict=True)
                if plan.pending(desc)
            ]
            pusher.push_blobs([*blobs, (config, "")])
            digest = pusher.push_manifest(data, media_type, image_ref.tag or "latest")
            pushed = True
        finally:
            _layerpush.finish(images, plan, image_ref.name, pushed=pushed)
        images.content.ingest_bytes(data, digest)
    with images.metadata.transaction():
        if record.manifest_digest is None:
            images.metadata.images.add(attrs.evolve(record, manifest_digest=digest))
        images.metadata.images.add(record, digests=[f"{image_ref.name}@{digest}"])
    emit("", f"{image_ref.tag}: digest: {digest} size: {len(data)}")
    images.events.record("image", "push", image_ref.familiar, {"name": image_ref.familiar})
    return digest

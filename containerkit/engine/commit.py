"""``docker commit``: a container's writable layer over its image as a new image, and the
config-only images a builder's ENV, LABEL or CMD step makes (:func:`derive`).

A commit is dockerd's ``CommitImage``: the snapshot diff becomes one uncompressed layer (its
digest is its diff id, as ``import_rootfs`` stores layers; compression is for transport), the
config is the container's config with the ``--change`` instructions applied
(:mod:`containerkit.engine.commit_config`), and the history gains one entry whose ``created_by``
is the container's command. A diff with no entries adds no layer and an ``empty_layer`` entry,
as dockerd does for an unchanged container. The engine's own mount points are left out of the
layer as they are of ``docker diff`` (:mod:`containerkit.engine.changes`).

Crash safety: the layer blob and the unpacked layer appear before the image's metadata
transaction. A journal (``<content>/commits/<pid:start>-<thread>.json``) names them first; a
commit whose process died leaves its journal, and :func:`recover_commits` then deletes whichever
of them no image references.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from containerkit.engine._recovery import owner_alive, owner_token
from containerkit.engine.changes import mount_points
from containerkit.engine.commit_config import _env_list as _env_list  # the builder's ENV uses it
from containerkit.engine.commit_config import apply_changes, container_config
from containerkit.errors import InvalidArgument, InvalidReference, NotFound, NotRunning
from containerkit.images.archive import ArchiveImage
from containerkit.images.content import Descriptor
from containerkit.images.manifest import (
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_LAYER,
    MEDIA_OCI_MANIFEST,
    build_manifest,
    canonical_json,
    chain_ids,
    host_platform,
)
from containerkit.images.reference import ImageRef, parse_reference
from containerkit.linux import staging
from containerkit.spec import ContainerStatus, Image, ImageConfig
from containerkit.storage.diff import make_diff

if TYPE_CHECKING:
    from containerkit.engine.container_service import ContainerService
    from containerkit.engine.containers import Container
    from containerkit.engine.images import ImageCollection

__all__ = ["commit", "derive", "recover_commits"]

_EMPTY_TAR_SHA = hashlib.sha256(bytes(10240)).hexdigest()
"""The diff id of a tar with no entries, as Python's tarfile writes it (one zero record)."""

# -- images: one layer or none, recorded -----------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _tag_ref(repository: str | None, tag: str | None) -> ImageRef | None:
    if not repository:
        if tag:
            raise InvalidArgument("a tag needs a repository to commit to")
        return None
    ref = parse_reference(repository)
    if ref.digest is not None:
        raise InvalidReference(f"refusing to create a tag with a digest reference: {repository}")
    return ref.with_tag(tag) if tag else ref


class _Journal:
    """What a commit is about to add (blob digests, layer chain ids), on disk before each appears
    and removed once the image is recorded (or the commit failed and cleaned up)."""

    def __init__(self, images: ImageCollection) -> None:
        directory = images.content.root / "commits"
        directory.mkdir(mode=0o700, exist_ok=True)
        self.path = directory / f"{owner_token()}-{threading.get_ident()}.json"
        self.blobs: list[str] = []
        self.layers: list[str] = []

    def note(self, *, blobs: Iterable[str] = (), layers: Iterable[str] = ()) -> None:
        self.blobs += [b for b in blobs if b not in self.blobs]
        self.layers += [x for x in layers if x not in self.layers]
        # not fsynced: a killed process leaves it in the page cache for recovery; after a power
        # loss the few unreferenced blobs it named are what ``images.prune`` reclaims
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"blobs": self.blobs, "layers": self.layers}))
        os.replace(tmp, self.path)

    def close(self) -> None:
        self.path.unlink(missing_ok=True)


def recover_commits(images: ImageCollection) -> list[str]:
    """Delete the blobs and layers that commits killed midway added and no image references
    (the journals of live processes stay); the digests and chain ids removed."""
    removed: list[str] = []
    directory = images.content.root / "commits"
    if not directory.is_dir():
        return removed
    for entry in sorted(directory.glob("*.json")):
        if owner_alive(entry.name.rsplit("-", 1)[0]):
            continue
        try:
            noted = json.loads(entry.read_text())
        except (OSError, ValueError):
            noted = {}
        layers, blobs = set(noted.get("layers") or ()), set(noted.get("blobs") or ())
        had_layers, had_blobs = set(images.snapshots.list_layers()), set(images.content.list())
        images._collect(layers, blobs, blocking=True)
        removed += sorted((had_layers - set(images.snapshots.list_layers())) & layers)
        removed += sorted((had_blobs - set(images.content.list())) & blobs)
        entry.unlink(missing_ok=True)
    for stale in directory.glob("*.tmp"):
        if not owner_alive(stale.name.rsplit("-", 1)[0]):
            stale.unlink(missing_ok=True)
    return removed


def _ingest_diff(images: ImageCollection, key: str, exclude: Iterable[str], journal: _Journal) -> Descriptor:
    """The snapshot's diff as a blob: written (and hashed as it is written) to a held file in the
    ingest dir, which recovery removes after a crash; its digest journaled, then the file itself
    published (no second copy)."""
    fd, name = tempfile.mkstemp(dir=images.content.ingest_dir(), prefix=f"commit{staging.owner_tag()}")
    try:
        staging.hold(fd)  # held (so recovery leaves it) until it is a blob or gone
        with os.fdopen(fd, "wb", buffering=1 << 20, closefd=False) as out:
            result = make_diff(images.snapshots, key, out, exclude=frozenset(exclude))
        if images.content.has(result.diff_id):
            return Descriptor(result.diff_id, result.size, MEDIA_OCI_LAYER)
        journal.note(blobs=[result.diff_id])
        desc = images.content.adopt(Path(name), result.diff_id)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        os.close(fd)
    return Descriptor(desc.digest, desc.size, MEDIA_OCI_LAYER)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _record(
    images: ImageCollection,
    doc: dict[str, Any],
    layers: Sequence[Descriptor],
    ref: ImageRef | None,
    journal: _Journal,
) -> Image:
    """Store the config and manifest, unpack a new layer, record the image (and its tag) in one
    transaction."""
    config_bytes = canonical_json(doc)
    config = Descriptor(_digest(config_bytes), len(config_bytes), MEDIA_OCI_CONFIG)
    manifest_bytes = build_manifest(config, layers)
    manifest = Descriptor(_digest(manifest_bytes), len(manifest_bytes), MEDIA_OCI_MANIFEST)
    chains = chain_ids(doc["rootfs"]["diff_ids"])
    journal.note(
        blobs=[d.digest for d in (config, manifest) if not images.content.has(d.digest)],
        layers=[c for c in chains if not images.snapshots.has_layer(c)],
    )
    images.content.ingest_bytes(config_bytes, config.digest)
    images.content.ingest_bytes(manifest_bytes, manifest.digest)
    created: list[str] = []
    record, layer_records, tags, _ = images._prepare(
        ArchiveImage(config, tuple(layers), (ref,) if ref is not None else (), manifest),
        created,
        with_digests=False,
    )
    with images.metadata.transaction():
        for item in layer_records:
            images.metadata.layers.add(item)
        images.metadata.images.add(record, tags=tags)
    if ref is not None:
        images.events.record("image", "tag", record.id, {"name": ref.familiar})
    return images.get(record.id)


@contextlib.contextmanager
def _adding(images: ImageCollection) -> Iterator[_Journal]:
    """GC waits while this runs; a failure removes what this commit alone added."""
    with images._adding():
        journal = _Journal(images)
        try:
            yield journal
        except BaseException:
            images._discard(journal.layers, journal.blobs)
            raise
        finally:
            journal.close()


def commit(
    service: ContainerService,
    container: Container,
    repository: str | None = None,
    tag: str | None = None,
    *,
    changes: Iterable[str] = (),
    message: str | None = None,
    author: str | None = None,
    pause: bool = True,
    config: ImageConfig | None = None,
    created_by: str | None = None,
) -> Image:
    """``docker commit``: the container's writable layer over its image as a new image."""
    images = service.images
    ref = _tag_ref(repository, tag)
    parent_id = container.image_id
    parent = json.loads(images._record(parent_id).config_json)
    own = container_config(container, parent.get("config") or {})
    new_config = config.to_oci() if config is not None else apply_changes(own, list(changes))
    line = created_by if created_by is not None else " ".join(own.get("Cmd") or ())
    frozen = False
    if pause and container.current_status() is ContainerStatus.RUNNING:
        container.pause()  # with its pause and unpause events, as dockerd's commit
        frozen = True
    try:
        with _adding(images) as journal:
            layer = _ingest_diff(images, container.id, mount_points(container), journal)
            empty = layer.digest == "sha256:" + _EMPTY_TAR_SHA
            now = _now()
            entry: dict[str, Any] = {"created": _rfc3339(now), "created_by": line}
            if author:
                entry["author"] = author
            if message:
                entry["comment"] = message
            if empty:
                entry["empty_layer"] = True
            doc = {
                **{k: v for k, v in parent.items() if k in ("architecture", "os", "variant", "os.version")},
                "config": new_config,
                "container": container.id,
                "container_config": own,
                "created": _rfc3339(now),
                "docker_version": "containerkit",
                "history": [*(parent.get("history") or ()), entry],
                "rootfs": {
                    "type": "layers",
                    "diff_ids": [*parent["rootfs"]["diff_ids"], *([] if empty else [layer.digest])],
                },
            }
            if author:
                doc["author"] = author
            record = images._record(parent_id)
            layers = [Descriptor(x.blob_digest, x.blob_size, x.media_type) for x in record.layers]
            if not empty:
                layers.append(layer)
            image = _record(images, doc, layers, ref, journal)
            if empty and layer.digest in journal.blobs:
                images.content.delete(layer.digest)  # no image has it
    finally:
        if frozen:
            with contextlib.suppress(NotFound, NotRunning):
                container.unpause()
    service.record(
        container,
        "commit",
        comment=message or "",
        imageID=image.id,
        imageRef=ref.familiar if ref is not None else "",
    )
    return image


def derive(
    images: ImageCollection,
    parent_id: str | None,
    config: ImageConfig,
    *,
    created_by: str,
    comment: str = "",
) -> Image:
    """A new image with ``parent_id``'s layers (none: scratch), ``config``, and one more history
    entry marked ``empty_layer`` (a builder's ENV, LABEL or CMD step adds no layer)."""
    now = _now()
    if parent_id is not None:
        parent_id = images.get(parent_id).id
        record = images._record(parent_id)
        parent = json.loads(record.config_json)
        layers = [Descriptor(x.blob_digest, x.blob_size, x.media_type) for x in record.layers]
    else:
        os_name, arch = host_platform()
        parent = {"architecture": arch, "os": os_name, "rootfs": {"type": "layers", "diff_ids": []}}
        layers = []
    entry: dict[str, Any] = {"created": _rfc3339(now), "created_by": created_by, "empty_layer": True}
    if comment:
        entry["comment"] = comment
    doc = {
        **{k: v for k, v in parent.items() if k in ("architecture", "os", "variant", "os.version")},
        "config": config.to_oci(),
        "created": _rfc3339(now),
        "history": [*(parent.get("history") or ()), entry],
        "rootfs": {"type": "layers", "diff_ids": list(parent["rootfs"]["diff_ids"])},
    }
    with _adding(images) as journal:
        return _record(images, doc, layers, None, journal)

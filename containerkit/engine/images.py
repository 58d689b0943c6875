"""``engine.images``: the image collection, composed from content store, snapshots and metadata.

Load is "copy into the content store (verified), unpack into snapshots (once per chain id),
then record in one metadata transaction"; a load that fails anywhere leaves no new tag and no
new image, and the blobs and layers it alone created are removed again when no other load runs
(otherwise :meth:`ImageCollection.prune` reclaims them).

Garbage collection must never delete what an in-flight load is about to reference, so every
operation that adds content holds a shared ``flock`` on ``gc.lock`` in the content root, and
collection takes it exclusively: across threads and processes, GC and loads never overlap.

Tags are stored canonically (``docker.io/library/busybox:latest``) and shown in docker's
familiar form (``busybox:latest``); lookups accept either, ids (full, ``sha256:``, or a
unique prefix) and ``repo@sha256:...`` digests.
"""

from __future__ import annotations

import builtins
import datetime as dt
import fcntl
import fnmatch
import hashlib
import json
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from containerkit.engine.events import EventLog
from containerkit.errors import Conflict, IntegrityError, InvalidArgument, InvalidReference, NotFound
from containerkit.images.content import ContentStore, Descriptor
from containerkit.images.manifest import (
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_LAYER,
    MEDIA_OCI_MANIFEST,
    build_config,
    build_manifest,
    chain_ids,
    host_platform,
    parse_config,
)
from containerkit.images.reference import ImageRef, parse_reference
from containerkit.spec import (
    BuildEvent,
    HistoryEntry,
    Image,
    ImageConfig,
    ProgressEvent,
    RegistryData,
    label_matches,
    normalise_filters,
)
from containerkit.storage.build_cache import BuildCacheStore
from containerkit.storage.metadata import Database, ImageLayer, ImageRecord, LayerRecord

# Archives, layer views, registries, history and commits are imported by the methods that use
# them: an Engine that only starts containers (the command line's run) loads none of them.
if TYPE_CHECKING:
    from containerkit.engine.builder import Builder
    from containerkit.images.archive import ArchiveFormat, ArchiveImage
    from containerkit.images.layerview import MergedView
    from containerkit.images.registry.auth import RegistryAuth, RegistryOptions
    from containerkit.images.registry.sources import BlobSources
    from containerkit.storage.snapshots import SnapshotStore

__all__ = ["ImageCollection"]

_HEX_RE = re.compile(r"^[0-9a-f]{1,64}$")
_VIEW_CACHE = 8
_FILTERS = ("dangling", "label", "reference")


class ImageCollection:
    """Local images: load, import, look up, tag, remove, save, prune."""

    def __init__(self, content: ContentStore, snapshots: SnapshotStore, metadata: Database) -> None:
        self.content = content
        self.snapshots = snapshots
        self.metadata = metadata
        self._gc_lock = content.root / "gc.lock"
        self._views: OrderedDict[str, MergedView] = OrderedDict()
        self._views_lock = threading.Lock()
        self._registry_options: RegistryOptions | None = None
        self._sources: BlobSources | None = None
        self.events = EventLog(metadata)
        """docker's image events (load, import, tag, untag, delete, pull, push) go here."""
        self.build_cache = BuildCacheStore(metadata)
        """The classic builder's cache: which image each build step made, on which parent."""
        self.builder: Builder | None = None
        """Set by the Engine (a build runs containers): :meth:`build`."""
        self.keep_layer_blobs = False
        """Set by the Engine: keep each layer's blob after unpacking it (a push or save sends it
        as it is) instead of writing its tar again from the unpacked layer."""

    @property
    def registry_options(self) -> RegistryOptions:
        """Set by the Engine: insecure registries, mirrors, concurrency, whether config.json is read."""
        if self._registry_options is None:
            from containerkit.images.registry.auth import RegistryOptions

            self._registry_options = RegistryOptions()
        return self._registry_options

    @registry_options.setter
    def registry_options(self, value: RegistryOptions) -> None:
        self._registry_options = value

    @property
    def sources(self) -> BlobSources:
        """The repositories blobs were pulled from, for cross-repository mounts on push."""
        if self._sources is None:
            from containerkit.images.registry.sources import BlobSources

            self._sources = BlobSources(self.content.root / "sources")
        return self._sources

    # -------------------------------------------------------------------------- locking

    @contextmanager
    def _flock(self, mode: int) -> Iterator[bool]:
        fd = os.open(self._gc_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, mode)
                held = True
            except BlockingIOError:
                held = False
            yield held
        finally:
            os.close(fd)

    def _adding(self) -> AbstractContextManager[bool]:
        """Held while content is added or read for export: GC waits."""
        return self._flock(fcntl.LOCK_SH)

    # -------------------------------------------------------------------------- load / import

    def load(self, path: str | os.PathLike[str], *, name: str | None = None) -> list[Image]:
        """Load every image of a docker-archive tar or OCI layout (dir or tar).

        ``name`` is the repository for OCI entries tagged only ``org.opencontainers.image.ref.name:
        <tag>``; without it such images load untagged.
        """
        from containerkit.images.archive import read_archive

        blobs_before = set(self.content.list())
        created: list[str] = []
        try:
            with self._adding():
                loaded = read_archive(Path(path), self.content, name=name)
                pending = [self._prepare(image, created) for image in loaded]
                with self.metadata.transaction():
                    for record, layers, tags, digests in pending:
                        for layer in layers:
                            self.metadata.layers.add(layer)
                        self.metadata.images.add(record, tags=tags, digests=digests)
        except BaseException:
            self._discard(created, set(self.content.list()) - blobs_before)
            raise
        images = [self._image(record.id) for record, *_ in pending]
        for image in images:
            self.events.record("image", "load", image.id, {"name": image.tags[0] if image.tags else image.id})
        return images

    def import_rootfs(
        self,
        tar_path: str | os.PathLike[str],
        ref: str | None = None,
        *,
        config: ImageConfig | Mapping[str, Any] | None = None,
    ) -> Image:
        """A one-layer image from a rootfs tar (plain, gzip or zstd), like ``docker import``.

        The layer is stored uncompressed (its digest is its diff id; compression is for
        transport). The runtime config is empty unless ``config`` is given, either as an
        :class:`ImageConfig` or as an OCI config mapping (``{"Cmd": ["sh"]}``).
        """
        from containerkit.images.archive import ArchiveImage, open_uncompressed

        image_ref = parse_reference(ref) if ref is not None else None
        if image_ref is not None and image_ref.digest is not None:
            raise InvalidReference(f"cannot tag an imported image with a digest reference: {ref}")
        image_config = ImageConfig.coerce(config)
        blobs_before = set(self.content.list())
        created: list[str] = []
        try:
            with self._adding():
                try:
                    with Path(tar_path).open("rb") as raw:
                        layer = self.content.ingest(open_uncompressed(raw))
                except FileNotFoundError:
                    raise NotFound(f"no such file: {tar_path}") from None
                except (OSError, EOFError) as exc:
                    raise InvalidArgument(f"cannot read rootfs tar {tar_path}: {exc}") from None
                layer = Descriptor(layer.digest, layer.size, MEDIA_OCI_LAYER)
                os_name, arch = host_platform()
                now = dt.datetime.now(dt.UTC)
                config_blob = build_config(
                    [layer.digest],
                    image_config,
                    created=now,
                    architecture=arch,
                    os=os_name,
                    history=[
                        {
                            "created": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                            "created_by": "containerkit import",
                            "comment": f"Imported from {Path(tar_path).name}",
                        }
                    ],
                )
                config_desc = self.content.ingest_bytes(config_blob)
                manifest_blob = build_manifest(
                    Descriptor(config_desc.digest, config_desc.size, MEDIA_OCI_CONFIG), [layer]
                )
                manifest_desc = self.content.ingest_bytes(manifest_blob)
                archive_image = ArchiveImage(
                    Descriptor(config_desc.digest, config_desc.size, MEDIA_OCI_CONFIG),
                    (layer,),
                    (image_ref,) if image_ref is not None else (),
                    Descriptor(manifest_desc.digest, manifest_desc.size, MEDIA_OCI_MANIFEST),
                )
                record, layers, tags, _ = self._prepare(archive_image, created, with_digests=False)
                with self.metadata.transaction():
                    for item in layers:
                        self.metadata.layers.add(item)
                    self.metadata.images.add(record, tags=tags)
        except BaseException:
            self._discard(created, set(self.content.list()) - blobs_before)
            raise
        self.events.record(
            "image", "import", record.id, {"name": image_ref.familiar if image_ref else record.id}
        )
        return self._image(record.id)

    def _prepare(
        self, image: ArchiveImage, created: list[str], *, with_digests: bool = True
    ) -> tuple[ImageRecord, list[LayerRecord], list[str], list[str]]:
        """Unpack the layers an image needs (each chain id once) and build its records."""
        from containerkit.engine import _layerblobs
        from containerkit.storage.apply import apply_layer

        config_json = self.content.read_bytes(image.config.digest)
        parsed = parse_config(config_json, f"config {image.config.digest}")
        chains = chain_ids(parsed.diff_ids)
        layer_records: list[LayerRecord] = []
        image_layers: list[ImageLayer] = []
        total = 0
        for n, (blob, diff_id, chain_id) in enumerate(
            zip(image.layers, parsed.diff_ids, chains, strict=True)
        ):
            if self.snapshots.has_layer(chain_id):
                self._verify_diff_id(blob, diff_id, chain_id)
                size = self.snapshots.layer_info(chain_id).size
            else:
                result = apply_layer(
                    self.snapshots, chain_id, self.content.path(blob.digest), expected_diff_id=diff_id
                )
                created.append(chain_id)
                size = result.size
            total += size
            layer_records.append(
                LayerRecord(
                    chain_id=chain_id,
                    diff_id=diff_id,
                    blob_digest=blob.digest,
                    size=size,
                    media_type=blob.media_type,
                    parent=chains[n - 1] if n else None,
                )
            )
            image_layers.append(ImageLayer(diff_id, chain_id, blob.digest, blob.size, blob.media_type))
        # unpacked and verified: the layer tar can be written again, the blob is not kept
        _layerblobs.release(self, image_layers)
        record = ImageRecord(
            id=image.config.digest,
            manifest_digest=image.manifest.digest if image.manifest is not None else None,
            config_json=config_json.decode(),
            layers=tuple(image_layers),
            size=total,
            created=parsed.created.isoformat() if parsed.created else None,
            architecture=parsed.architecture,
            os=parsed.os,
            added=time.time(),
        )
        tags = [ref.canonical for ref in image.names if ref.tag is not None and ref.digest is None]
        digests = []
        if with_digests and image.manifest is not None:
            digests = sorted({f"{ref.name}@{image.manifest.digest}" for ref in image.names})
        return record, layer_records, tags, digests

    def _verify_diff_id(self, blob: Descriptor, diff_id: str, chain_id: str) -> None:
        """A layer already unpacked under this chain id is reused only if this blob really is it:
        a pair recorded when it was verified before, or the blob's content hashed now."""
        from containerkit.engine import _layerblobs

        if _layerblobs.known_pair(self, chain_id, blob.digest, diff_id):
            return
        from containerkit.images.archive import open_uncompressed

        hasher = hashlib.sha256()
        with self.content.open(blob.digest) as raw:
            stream = open_uncompressed(raw)
            while chunk := stream.read(1 << 20):
                hasher.update(chunk)
        actual = "sha256:" + hasher.hexdigest()
        if actual != diff_id:
            raise IntegrityError(
                f"layer {blob.digest}: diff id mismatch: expected {diff_id}, content has {actual}"
            )

    def _discard(self, chain_ids_created: Iterable[str], blobs_created: Iterable[str]) -> None:
        """Undo a failed load's leftovers, if no other load runs now (else prune will)."""
        self._collect(set(chain_ids_created), set(blobs_created), blocking=False)

    # -------------------------------------------------------------------------- look-up

    def _resolve(self, ref: str) -> tuple[str, ImageRef | None]:
        """(image id, the reference it was found by, or None when found by id)."""
        if not isinstance(ref, str) or not ref:
            raise NotFound(f"No such image: {ref}")
        text = ref[len("sha256:") :] if ref.startswith("sha256:") else ref
        if len(text) == 64 and _HEX_RE.match(text):
            if self.metadata.images.get("sha256:" + text) is not None:
                return "sha256:" + text, None
            raise NotFound(f"No such image: {ref}")
        parsed: ImageRef | None = None
        if not ref.startswith("sha256:"):
            try:
                parsed = parse_reference(ref)
            except InvalidReference:
                if not _HEX_RE.match(text):
                    raise
        if parsed is not None:
            if parsed.digest is not None:
                found = self.metadata.images.resolve_digest(f"{parsed.name}@{parsed.digest}")
            else:
                found = self.metadata.images.resolve_tag(parsed.canonical)
            if found is not None:
                return found, parsed
        if _HEX_RE.match(text):
            matches = self.metadata.images.ids_with_prefix(text)
            if len(matches) == 1:
                return matches[0], None
            if len(matches) > 1:
                raise InvalidArgument(
                    f"image id prefix {ref!r} is ambiguous: it matches {len(matches)} images"
                )
        raise NotFound(f"No such image: {ref}")

    def _record(self, image_id: str) -> ImageRecord:
        record = self.metadata.images.get(image_id)
        if record is None:
            raise NotFound(f"No such image: {image_id}")
        return record

    def _image(self, image_id: str) -> Image:
        record = self._record(image_id)
        parsed = parse_config(record.config_json.encode(), f"config {image_id}")
        return Image(
            id=record.id,
            tags=tuple(parse_reference(ref).familiar for ref, _ in self.metadata.images.tags(image_id)),
            digests=tuple(parse_reference(ref).familiar for ref in self.metadata.images.digests(image_id)),
            created=parsed.created,
            size=record.size,
            architecture=record.architecture,
            os=record.os,
            config=parsed.config,
            layers=record.diff_ids,
            author=str(parsed.raw.get("author") or ""),
        )

    def get(self, ref_or_id: str) -> Image:
        """By tag (``busybox``, ``docker.io/library/busybox:latest``), id or prefix, or ``repo@digest``."""
        image_id, _ = self._resolve(ref_or_id)
        return self._image(image_id)

    def list(self, all: bool = False, filters: Mapping[str, Any] | None = None) -> list[Image]:
        """Newest first. ``all`` is accepted for docker compatibility: there are no intermediate images.

        ``filters``: ``dangling`` (true/false), ``label`` (``key`` or ``key=value``, all must
        match), ``reference`` (glob on ``name`` or ``name:tag``, any may match). Values may be
        a string or a list of strings.
        """
        wanted = _normalise_filters(filters)
        images = [self._image(image_id) for image_id in self.metadata.images.ids()]
        # docker's intermediate images: untagged build steps another step was built on
        hidden = set() if all else self.build_cache.parents()
        return [i for i in images if _matches(i, wanted) and (i.tags or i.id not in hidden)]

    def chain_ids(self, image_id: str) -> builtins.list[str]:
        """The snapshot keys of an image's layers, bottom first."""
        return list(self._record(image_id).chain_ids)

    def config(self, image_id: str) -> ImageConfig:
        return parse_config(self._record(image_id).config_json.encode(), f"config {image_id}").config

    def read_file(self, image_id: str, path: str) -> bytes | None:
        """A file as the image's merged rootfs shows it (whiteouts honoured, symlinks followed)."""
        with self._views_lock:
            view = self._views.get(image_id)
            if view is not None:
                self._views.move_to_end(image_id)
        if view is None:
            view = self.view(image_id)
            with self._views_lock:
                self._views[image_id] = view
                while len(self._views) > _VIEW_CACHE:
                    self._views.popitem(last=False)
        return view.read_file(path)

    def view(self, image_id: str) -> MergedView:
        """The image's merged filesystem, read from its unpacked layers (no blob needed)."""
        from containerkit.images.layerview import LayerDirView, UnpackedLayer

        layers = []
        for chain_id in self._record(image_id).chain_ids:
            info = self.snapshots.layer_info(chain_id)
            layers.append(
                UnpackedLayer(
                    self.snapshots.layer_dir(chain_id), frozenset(info.whiteouts), frozenset(info.opaque_dirs)
                )
            )
        return LayerDirView(layers)

    def write_layer(self, ref: str, index: int, out: IO[bytes]) -> int:
        """Write layer ``index`` (0: the bottom one) of the image ``ref`` names to ``out`` as
        its uncompressed tar (the digest is its diff id): the blob decompressed where the store
        keeps one, else written again from the unpacked layer. Its size."""
        layers = self._record(self._resolve(ref)[0]).layers
        if not -len(layers) <= index < len(layers):
            raise InvalidArgument(f"image {ref} has {len(layers)} layers, not a layer {index}")
        layer = layers[index]
        with self._adding():
            if self.content.has(layer.blob_digest):
                from containerkit.images.archive import open_uncompressed

                with self.content.open(layer.blob_digest) as raw:
                    stream = open_uncompressed(raw)
                    size = 0
                    while chunk := stream.read(1 << 20):
                        out.write(chunk)
                        size += len(chunk)
                    return size
            from containerkit.engine import _layerblobs

            return _layerblobs.write_plain(self, layer, out)

    # -------------------------------------------------------------------------- tags and removal

    def tag(self, src: str, dst: str) -> None:
        """Point ``dst`` (a name with optional tag, never a digest) at the image ``src`` names."""
        image_id, _ = self._resolve(src)
        ref = parse_reference(dst)
        if ref.digest is not None:
            raise InvalidReference(f"refusing to create a tag with a digest reference: {dst}")
        self.metadata.images.set_tag(ref.canonical, image_id)
        self.events.record("image", "tag", image_id, {"name": ref.familiar})

    def remove(self, ref: str, force: bool = False) -> builtins.list[str]:
        """:meth:`_remove`, recording docker's ``untag`` and ``delete`` events for its lines."""
        image_id, _ = self._resolve(ref)
        out = self._remove(ref, force)
        for line in out:
            action, _, name = line.partition(": ")
            self.events.record(
                "image", "untag" if action == "Untagged" else "delete", image_id, {"name": name}
            )
        return out

    def _remove(self, ref: str, force: bool) -> builtins.list[str]:
        """Untag ``ref``, and delete the image when no tag is left; docker's ``rmi`` semantics.

        Returns docker's lines: ``"Untagged: busybox:latest"``, ``"Deleted: sha256:..."``. An image a
        container uses is not deleted: without ``force`` that is a Conflict naming the container;
        with ``force`` its tags go and the image stays (dangling) until the container is removed.
        """
        out: builtins.list[str] = []
        freed_layers: set[str] = set()
        freed_blobs: set[str] = set()
        with self.metadata.transaction():
            image_id, by_ref = self._resolve(ref)
            record = self._record(image_id)
            short = image_id.split(":", 1)[1][:12]
            users = self.metadata.containers.using_image(image_id)
            tags = [t for t, _ in self.metadata.images.tags(image_id)]
            digests = self.metadata.images.digests(image_id)
            if by_ref is not None:
                own = by_ref.canonical if by_ref.digest is None else f"{by_ref.name}@{by_ref.digest}"
                others = [t for t in tags if t != own]
                if not others and users and not force:
                    raise Conflict(
                        f'conflict: unable to remove repository reference "{ref}" (must force) - '
                        f"container {users[0][:12]} is using its referenced image {short}"
                    )
                self.metadata.images.remove_tag(own)
                out.append(f"Untagged: {_familiar(own)}")
                if others or users:
                    return out
                untag = [d for d in digests if d != own]
            else:
                if users and not force:
                    raise Conflict(
                        f"conflict: unable to delete {short} (must be forced) - "
                        f"image is being used by container {users[0][:12]}"
                    )
                if len(tags) > 1 and not force:
                    raise Conflict(
                        f"conflict: unable to delete {short} (must be forced) - "
                        "image is referenced in multiple repositories"
                    )
                untag = tags + digests
            for item in untag:
                self.metadata.images.remove_tag(item)
                out.append(f"Untagged: {_familiar(item)}")
            if users:
                return out
            self.metadata.images.remove(image_id)
            out.append(f"Deleted: {image_id}")
            freed_layers = set(record.chain_ids)
            freed_blobs = {image_id, *(x.blob_digest for x in record.layers)}
            if record.manifest_digest:
                freed_blobs.add(record.manifest_digest)
        self._forget_view(image_id)
        self._collect(freed_layers, freed_blobs, blocking=False)
        return out

    def prune(self) -> builtins.list[str]:
        """Delete dangling images no container uses, then unreferenced layers and blobs; returns image ids."""
        from containerkit.engine import _layerblobs

        deleted = []
        with self.metadata.transaction():
            tagged = {image_id for _, image_id in self.metadata.images.tags()}
            tagged |= self.build_cache.parents()  # intermediate build images are not dangling
            for image_id in self.metadata.images.ids():
                if image_id not in tagged and not self.metadata.containers.using_image(image_id):
                    for item in self.metadata.images.digests(image_id):
                        self.metadata.images.remove_tag(item)
                    self.metadata.images.remove(image_id)
                    deleted.append(image_id)
        for image_id in deleted:
            self._forget_view(image_id)
            self.events.record("image", "delete", image_id, {"name": image_id})
        self._collect(None, None, blocking=True)
        with self._adding():
            for image_id in self.metadata.images.ids():
                record = self.metadata.images.get(image_id)
                if record is not None:
                    _layerblobs.release(self, [x for x in record.layers if self.content.has(x.blob_digest)])
        self.content.clean_ingest()
        return deleted

    def _forget_view(self, image_id: str) -> None:
        with self._views_lock:
            self._views.pop(image_id, None)

    def _collect(self, layers: set[str] | None, blobs: set[str] | None, *, blocking: bool) -> None:
        """Delete unreferenced layers and blobs (only ``layers``/``blobs`` if given; everything if None)."""
        mode = fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB
        with self._flock(mode) as held:
            if not held:
                return
            with self.metadata.transaction():
                used_layers = self.metadata.images.referenced_chain_ids()
                candidates = set(self.snapshots.list_layers()) if layers is None else layers
                candidates |= {x.chain_id for x in self.metadata.layers.all()} if layers is None else set()
                # topmost first: a layer is removed before the one it sits on
                for chain_id in sorted(candidates - used_layers, key=self._depth, reverse=True):
                    try:
                        self.snapshots.remove_layer(chain_id)
                    except NotFound:
                        pass
                    except Conflict:
                        continue  # a container snapshot still sits on it
                    self.metadata.layers.remove(chain_id)
                used_blobs = self.metadata.images.referenced_blobs()
                for digest in (set(self.content.list()) if blobs is None else blobs) - used_blobs:
                    self.content.delete(digest)
                    self.sources.forget(digest)

    def _depth(self, chain_id: str) -> int:
        depth = 0
        layer = self.metadata.layers.get(chain_id)
        while layer is not None and layer.parent is not None and depth < 1000:
            depth += 1
            layer = self.metadata.layers.get(layer.parent)
        return depth

    # -------------------------------------------------------------------------- registries

    def pull(
        self,
        ref: str,
        *,
        platform: str | None = None,
        auth: RegistryAuth | None = None,
        progress: Callable[[ProgressEvent], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Image:
        """Pull ``ref`` (``127.0.0.1:5000/team/app:1.2``, ``name@sha256:...``, ``busybox``) for
        ``platform`` (``os[/arch[/variant]]``, this host's by default); progress as docker's steps.
        Without ``auth``, credentials come from docker's config files when the options allow it.
        Setting ``cancel`` stops the pull (the daemon's client left); verified blobs are kept."""
        from containerkit.engine import _distribution  # the HTTP stack: loaded by a registry verb

        return _distribution.pull(
            self,
            ref,
            platform=platform,
            auth=auth,
            progress=progress,
            options=self.registry_options,
            cancel=cancel,
        )

    def push(
        self,
        ref: str,
        *,
        auth: RegistryAuth | None = None,
        progress: Callable[[ProgressEvent], None] | None = None,
    ) -> str:
        """Push the image tagged ``ref`` to its registry; the manifest digest the registry confirmed."""
        from containerkit.engine import _distribution

        return _distribution.push(self, ref, auth=auth, progress=progress, options=self.registry_options)

    def get_registry_data(self, ref: str, *, auth: RegistryAuth | None = None) -> RegistryData:
        """Digest, media type, size and platforms of ``ref`` as its registry has it, without pulling."""
        from containerkit.engine import _distribution

        return _distribution.registry_data(self, ref, auth=auth, options=self.registry_options)

    # -------------------------------------------------------------------------- history, derive

    def history(self, ref: str) -> builtins.list[HistoryEntry]:
        """``docker history``: the image's steps, newest first (engine/history.py)."""
        from containerkit.engine import history as _history

        return _history.history(self, ref)

    def derive(
        self, parent_id: str | None, config: ImageConfig, *, created_by: str, comment: str = ""
    ) -> Image:
        """A new image of ``parent_id``'s layers (None: scratch) with ``config`` and one more
        ``empty_layer`` history entry: a builder's ENV, LABEL or CMD step."""
        from containerkit.engine import commit as _commit

        return _commit.derive(self, parent_id, config, created_by=created_by, comment=comment)

    # -------------------------------------------------------------------------- build

    def build(
        self,
        context: str | os.PathLike[str] | IO[bytes] = ".",
        dockerfile: str = "Dockerfile",
        tag: str | Sequence[str] | None = None,
        buildargs: Mapping[str, str | None] | None = None,
        target: str | None = None,
        labels: Mapping[str, str] | None = None,
        nocache: bool = False,
        cache_from: Sequence[str] = (),
        pull: bool = False,
        network: str = "bridge",
        extra_hosts: Mapping[str, str] | None = None,
        platform: str | None = None,
        rm: bool = True,
        forcerm: bool = False,
        progress: Callable[[BuildEvent], None] | None = None,
    ) -> Image:
        """Build the Dockerfile ``dockerfile`` (relative to ``context``, or absolute) of the
        directory ``context`` (or of a tar of it, a binary file object, as the daemon gets
        it) as docker's classic builder does, with its cache; tag it
        ``tag`` (one or several). ``progress`` gets each step, cache hit and output line."""
        if self.builder is None:
            raise InvalidArgument("this image collection has no engine to build with")
        return self.builder.build(
            context,
            dockerfile,
            tag,
            buildargs,
            target,
            labels,
            nocache,
            cache_from,
            pull,
            network,
            extra_hosts,
            platform,
            rm,
            forcerm,
            progress,
        )

    def prune_build_cache(self) -> builtins.list[str]:
        """Forget the build cache: the ids of the images only build steps had made."""
        if self.builder is None:
            return []
        return self.builder.prune()

    # -------------------------------------------------------------------------- save

    def save(
        self,
        refs: str | Sequence[str],
        out_path: str | os.PathLike[str],
        format: ArchiveFormat = "docker-archive",
    ) -> None:
        """Write images to a docker-archive tar or an OCI layout (dir, or tar if the path ends in ``.tar``).

        An image named by tag is saved with that tag; one named by id is saved untagged.
        A layer whose blob the store does not keep is written again from its unpacked layer,
        uncompressed (its digest is its diff id, as ``docker save`` writes layers), and the
        image then gets a new manifest.
        """
        from containerkit.images.archive import ArchiveImage, write_archive

        items: dict[str, ArchiveImage] = {}
        rebuilt: dict[str, ImageLayer] = {}
        for ref in [refs] if isinstance(refs, str) else refs:
            image_id, by_ref = self._resolve(ref)
            names = (by_ref,) if by_ref is not None and by_ref.digest is None else ()
            if image_id in items:
                items[image_id] = ArchiveImage(
                    items[image_id].config,
                    items[image_id].layers,
                    items[image_id].names + names,
                    items[image_id].manifest,
                )
                continue
            record = self._record(image_id)
            manifest = None
            if record.manifest_digest and self.content.has(record.manifest_digest):
                doc = json.loads(self.content.read_bytes(record.manifest_digest))
                manifest = Descriptor(
                    record.manifest_digest,
                    self.content.size(record.manifest_digest),
                    doc.get("mediaType") or MEDIA_OCI_MANIFEST,
                )
            layers = []
            for x in record.layers:
                if self.content.has(x.blob_digest):
                    layers.append(Descriptor(x.blob_digest, x.blob_size, x.media_type))
                    continue
                rebuilt[x.diff_id] = x
                size = self.snapshots.layer_info(x.chain_id).size
                layers.append(Descriptor(x.diff_id, size, MEDIA_OCI_LAYER))
                manifest = None
            items[image_id] = ArchiveImage(
                Descriptor(image_id, self.content.size(image_id), MEDIA_OCI_CONFIG),
                tuple(layers),
                names,
                manifest,
            )

        def rebuild(layer: Descriptor, workdir: Path) -> Path:
            if layer.digest not in rebuilt:
                raise NotFound(f"blob {layer.digest} is missing from the store")
            from containerkit.engine import _layerblobs

            return _layerblobs.rebuild_plain(self, rebuilt[layer.digest], workdir)

        with self._adding():
            write_archive(list(items.values()), self.content, Path(out_path), format, rebuild=rebuild)


def _familiar(ref: str) -> str:
    return parse_reference(ref).familiar


def _normalise_filters(filters: Mapping[str, Any] | None) -> dict[str, list[str]]:
    result = normalise_filters(filters, _FILTERS)
    values = result.get("dangling", [])
    if any(v.lower() not in ("true", "false", "1", "0") for v in values):
        raise InvalidArgument(f"invalid filter 'dangling={values}' (expected true or false)")
    return result


def _matches(image: Image, filters: Mapping[str, list[str]]) -> bool:
    for value in filters.get("dangling", []):
        if (value.lower() in ("true", "1")) == bool(image.tags):
            return False
    labels = dict(image.config.labels)
    if not all(label_matches(labels, item) for item in filters.get("label", [])):
        return False
    patterns = filters.get("reference", [])
    if patterns:
        names = [t.rpartition(":")[0] for t in image.tags] + list(image.tags)
        if not any(fnmatch.fnmatchcase(name, p) for p in patterns for name in names):
            return False
    return True

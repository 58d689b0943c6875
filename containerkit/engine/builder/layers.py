"""A COPY, ADD or WORKDIR step's layer, written straight from the context, and its image.

The classic builder copies into a container and commits it; the layer is the same tar of
the new entries, so it is written here without a container: entries go into a tar on a
writer thread, the tar streams through a pipe into the content store (hashed and verified on
the way, never in memory), and the image is recorded as a commit records one (its journal
makes a crash leave nothing half-made: ``engine.commit``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import tarfile
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from containerkit.engine import commit as _commit
from containerkit.images.content import Descriptor
from containerkit.images.manifest import MEDIA_OCI_LAYER, host_platform
from containerkit.spec import Image, ImageConfig
from containerkit.storage.metadata import ImageLayer

if TYPE_CHECKING:
    from containerkit.engine.images import ImageCollection

__all__ = ["LayerTar", "add_layer", "history_entry"]


class LayerTar:
    """The entries of one layer, written as they are added (names relative, no leading ``/``)."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.names: set[str] = set()

    def _info(self, name: str, kind: bytes, mode: int, uid: int, gid: int, mtime: float) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.uid, info.gid = uid, gid
        info.uname = info.gname = ""
        info.mtime = int(mtime)
        return info

    def directory(self, name: str, mode: int, uid: int, gid: int, mtime: float) -> None:
        if name in self.names:
            return
        self.names.add(name)
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode, uid, gid, mtime))

    def file(self, name: str, path: str, size: int, mode: int, uid: int, gid: int, mtime: float) -> None:
        self.names.add(name)
        info = self._info(name, tarfile.REGTYPE, mode, uid, gid, mtime)
        info.size = size
        with open(path, "rb") as handle:
            self.tar.addfile(info, handle)

    def data(self, name: str, content: bytes, mode: int, uid: int, gid: int, mtime: float) -> None:
        self.names.add(name)
        info = self._info(name, tarfile.REGTYPE, mode, uid, gid, mtime)
        info.size = len(content)
        self.tar.addfile(info, io.BytesIO(content))

    def symlink(self, name: str, target: str, uid: int, gid: int, mtime: float) -> None:
        self.names.add(name)
        info = self._info(name, tarfile.SYMTYPE, 0o777, uid, gid, mtime)
        info.linkname = target
        self.tar.addfile(info)

    def member(self, info: tarfile.TarInfo, content: Any) -> None:
        """An entry of another archive (ADD of a local tar), already renamed and checked."""
        self.names.add(info.name)
        self.tar.addfile(info, content)


def history_entry(created_by: str, *, empty: bool, comment: str = "") -> dict[str, Any]:
    entry: dict[str, Any] = {
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "created_by": created_by,
    }
    if comment:
        entry["comment"] = comment
    if empty:
        entry["empty_layer"] = True
    return entry


def _write_pipe(write: Callable[[LayerTar], None], fd: int, errors: list[BaseException]) -> None:
    try:
        with (
            os.fdopen(fd, "wb", buffering=1 << 20) as out,
            tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
        ):
            write(LayerTar(tar))
    except BaseException as exc:  # handed to the reader, which raises it
        errors.append(exc)
        with contextlib.suppress(OSError):
            os.close(fd)


def add_layer(
    images: ImageCollection,
    parent_id: str | None,
    write: Callable[[LayerTar], None] | ImageLayer,
    config: ImageConfig,
    *,
    created_by: str,
) -> Image:
    """A new image: ``parent_id``'s layers (None: scratch) and one more, whose entries
    ``write`` adds (or an existing image's layer, as it is: a cache-from step restored); its
    config ``config`` and one more history entry (``created_by``)."""
    if parent_id is not None:
        record = images._record(parent_id)
        parent = json.loads(record.config_json)
        layers = [Descriptor(x.blob_digest, x.blob_size, x.media_type) for x in record.layers]
    else:
        os_name, arch = host_platform()
        parent = {"architecture": arch, "os": os_name, "rootfs": {"type": "layers", "diff_ids": []}}
        layers = []
    with _commit._adding(images) as journal:
        if isinstance(write, ImageLayer):
            layer = Descriptor(write.blob_digest, write.blob_size, write.media_type)
            diff_id = write.diff_id
        else:
            layer = _ingest_layer(images, write, journal)
            diff_id = layer.digest
        now = history_entry(created_by, empty=False)
        doc = {
            **{k: v for k, v in parent.items() if k in ("architecture", "os", "variant", "os.version")},
            "config": config.to_oci(),
            "created": now["created"],
            "history": [*(parent.get("history") or ()), now],
            "rootfs": {"type": "layers", "diff_ids": [*parent["rootfs"]["diff_ids"], diff_id]},
        }
        return _commit._record(images, doc, [*layers, layer], None, journal)


def _ingest_layer(images: ImageCollection, write: Callable[[LayerTar], None], journal: Any) -> Descriptor:
    """The entries ``write`` adds, as a tar streamed through a pipe into the content store."""
    read_fd, write_fd = os.pipe()
    errors: list[BaseException] = []
    writer = threading.Thread(target=_write_pipe, args=(write, write_fd, errors), daemon=True)
    writer.start()
    try:
        with os.fdopen(read_fd, "rb", buffering=0) as source:
            blob = images.content.ingest(source)
    finally:
        writer.join()
    journal.note(blobs=[blob.digest])
    if errors:
        raise errors[0]
    return Descriptor(blob.digest, blob.size, MEDIA_OCI_LAYER)

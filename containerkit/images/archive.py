"""Image archives in and out: docker-archive tars (``docker save``) and OCI image layouts.

Reading copies every blob into the :class:`ContentStore`, verified against the digest and size
the archive claims, and returns plain descriptions of the images found; nothing here touches
metadata or snapshots, so a bad archive leaves at most verified, unreferenced blobs behind.

Names. docker-archive tars carry full names in ``RepoTags``. OCI layouts carry
``io.containerd.image.name`` (a full name, preferred) and/or ``org.opencontainers.image.ref.name``:
when the latter is a full reference it is used as is; when it is a bare tag (``latest``, as
``skopeo copy ... oci:DIR:latest`` writes), it names the image only if the caller supplies a
repository (``name=``); otherwise the image is loaded untagged and is found by its id.

Writing produces a classic docker-archive (``<config hex>.json``, ``<diff id hex>/layer.tar``
uncompressed, ``manifest.json``, ``repositories``) or an OCI layout (a directory, or a tar when
the path ends in ``.tar``) whose index names each image with both annotations, as containerd
and docker do.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

import attrs
import zstandard

from containerkit.errors import ContainerkitError, IntegrityError, InvalidArgument, InvalidReference, NotFound
from containerkit.images.content import ContentStore, Descriptor, sha256_digest
from containerkit.images.manifest import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_LAYER,
    MEDIA_OCI_MANIFEST,
    build_index,
    build_manifest,
    layer_media_type,
    parse_config,
    parse_index,
    parse_manifest,
    select_manifest,
)
from containerkit.images.reference import ImageRef, is_digest, parse_reference, parse_repository

__all__ = [
    "ArchiveFormat",
    "ArchiveImage",
    "Rebuild",
    "open_uncompressed",
    "read_archive",
    "write_archive",
]

ArchiveFormat = Literal["docker-archive", "oci"]
Rebuild = Callable[[Descriptor, Path], Path]
"""Writes a layer the content store does not keep (its digest: the diff id) into a temp file in
the given dir, which the caller removes; the engine rebuilds it from the unpacked layer."""
_OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
_MTIME = 0


@attrs.frozen
class ArchiveImage:
    """One image of an archive. Its blobs are in the content store (reading) or must be (writing)."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    names: tuple[ImageRef, ...] = ()
    manifest: Descriptor | None = None


def open_uncompressed(stream: BinaryIO) -> BinaryIO:
    """A reader of the tar inside a layer blob, whether gzip, zstd or plain (sniffed, not trusted)."""
    head = stream.read(4)
    stream.seek(0)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)
    return stream


# ---------------------------------------------------------------------------------------- reading


class _Source(Protocol):
    def has(self, name: str) -> bool: ...

    def open(self, name: str) -> BinaryIO: ...


class _DirSource:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, name: str) -> Path:
        path = (self.root / name).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidArgument(f"archive entry {name!r} points outside {self.root}")
        return path

    def has(self, name: str) -> bool:
        return self._path(name).is_file()

    def open(self, name: str) -> BinaryIO:
        try:
            return self._path(name).open("rb")
        except (FileNotFoundError, IsADirectoryError):
            raise InvalidArgument(f"archive {self.root}: missing entry {name!r}") from None


class _TarSource:
    def __init__(self, tar: tarfile.TarFile, label: str) -> None:
        self.tar = tar
        self.label = label
        self.members = {os.path.normpath(m.name.lstrip("/")): m for m in tar.getmembers()}

    def has(self, name: str) -> bool:
        member = self.members.get(os.path.normpath(name))
        return member is not None and (member.isfile() or member.issym() or member.islnk())

    def open(self, name: str) -> BinaryIO:
        member = self.members.get(os.path.normpath(name))
        if member is None:
            raise InvalidArgument(f"archive {self.label}: missing entry {name!r}")
        try:
            stream = self.tar.extractfile(member)
        except (KeyError, tarfile.TarError):
            stream = None
        if stream is None:
            raise InvalidArgument(f"archive {self.label}: entry {name!r} is not a regular file")
        return stream  # type: ignore[return-value]


def _read_json(source: _Source, name: str, label: str) -> object:
    with source.open(name) as f:
        data = f.read(16 << 20)
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"archive {label}: {name} is not valid JSON ({exc})") from None


class _Reader:
    def __init__(self, source: _Source, content: ContentStore, label: str) -> None:
        self.source = source
        self.content = content
        self.label = label
        self._by_entry: dict[str, Descriptor] = {}

    def blob(self, desc: Descriptor) -> Descriptor:
        """Copy a content-addressed blob in (skipped if the store already has it)."""
        if not self.content.has(desc.digest):
            name = "blobs/sha256/" + desc.digest.split(":", 1)[1]
            if not self.source.has(name):
                raise InvalidArgument(f"archive {self.label}: blob {desc.digest} is missing")
            with self.source.open(name) as f:
                self.content.ingest(f, desc.digest, desc.size)
        elif self.content.size(desc.digest) != desc.size:
            raise IntegrityError(
                f"blob {desc.digest}: size {desc.size} in {self.label} does not match the stored blob"
            )
        return desc

    def entry(self, name: str, media_type: str | None = None) -> Descriptor:
        """Copy an archive entry in, its digest computed (and checked when its name is a digest)."""
        key = os.path.normpath(name)
        if key not in self._by_entry:
            expected = None
            parts = key.split("/")
            if len(parts) == 3 and parts[:2] == ["blobs", "sha256"] and is_digest("sha256:" + parts[2]):
                expected = "sha256:" + parts[2]
            with self.source.open(key) as f:
                desc = self.content.ingest(f, expected)
            if media_type is None:
                with self.content.open(desc.digest) as blob:
                    media_type = layer_media_type(blob.read(4))
            self._by_entry[key] = attrs.evolve(desc, media_type=media_type)
        return self._by_entry[key]


def _docker_archive(reader: _Reader) -> list[ArchiveImage]:
    manifest = _read_json(reader.source, "manifest.json", reader.label)
    if not isinstance(manifest, list):
        raise InvalidArgument(f"archive {reader.label}: manifest.json must be a list")
    images = []
    for n, item in enumerate(manifest):
        what = f"archive {reader.label}: manifest.json entry {n}"
        if not isinstance(item, dict):
            raise InvalidArgument(f"{what} must be an object")
        config_name, layer_names = item.get("Config"), item.get("Layers")
        tags = item.get("RepoTags") or []
        if not isinstance(config_name, str) or not isinstance(layer_names, list):
            raise InvalidArgument(f"{what} needs Config and Layers")
        if not all(isinstance(x, str) for x in [*layer_names, *tags]):
            raise InvalidArgument(f"{what}: Layers and RepoTags must be strings")
        config = reader.entry(config_name, MEDIA_OCI_CONFIG)
        parsed = parse_config(reader.content.read_bytes(config.digest), f"config {config.digest}")
        if len(parsed.diff_ids) != len(layer_names):
            raise InvalidArgument(
                f"{what}: config {config.digest} lists {len(parsed.diff_ids)} diff ids "
                f"but the entry has {len(layer_names)} layers"
            )
        layers = tuple(reader.entry(name) for name in layer_names)
        images.append(ArchiveImage(config, layers, tuple(parse_reference(t) for t in tags), None))
    return images


def _oci_names(annotations: dict[str, str], name: ImageRef | None) -> tuple[ImageRef, ...]:
    full = annotations.get(ANNOTATION_IMAGE_NAME)
    if full:
        return (parse_reference(full),)
    ref_name = annotations.get(ANNOTATION_REF_NAME)
    if not ref_name:
        return ()
    if any(c in ref_name for c in "/:@"):
        return (parse_reference(ref_name),)
    if name is None:
        return ()
    return (name.with_tag(ref_name),)


def _oci_layout(reader: _Reader, name: ImageRef | None) -> list[ArchiveImage]:
    layout = _read_json(reader.source, "oci-layout", reader.label)
    if not isinstance(layout, dict) or layout.get("imageLayoutVersion") != "1.0.0":
        raise InvalidArgument(f"archive {reader.label}: unsupported oci-layout {layout!r}")
    with reader.source.open("index.json") as f:
        index = parse_index(f.read(16 << 20), f"{reader.label} index.json")
    found: dict[str, ArchiveImage] = {}
    for entry in index.manifests:
        desc = entry.descriptor
        if desc.media_type not in (MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST):
            nested = reader.blob(desc)
            desc = select_manifest(
                parse_index(reader.content.read_bytes(nested.digest), f"index {nested.digest}"),
                f"index {nested.digest}",
            )
        names = _oci_names(dict(entry.descriptor.annotations), name)
        if desc.digest in found:
            image = found[desc.digest]
            found[desc.digest] = attrs.evolve(image, names=image.names + names)
            continue
        reader.blob(desc)
        manifest = parse_manifest(reader.content.read_bytes(desc.digest), f"manifest {desc.digest}")
        config = reader.blob(manifest.config)
        parsed = parse_config(reader.content.read_bytes(config.digest), f"config {config.digest}")
        if len(parsed.diff_ids) != len(manifest.layers):
            raise InvalidArgument(
                f"manifest {desc.digest}: {len(manifest.layers)} layers but its config lists "
                f"{len(parsed.diff_ids)} diff ids"
            )
        layers = tuple(reader.blob(layer) for layer in manifest.layers)
        found[desc.digest] = ArchiveImage(config, layers, names, attrs.evolve(desc, annotations=()))
    return list(found.values())


def read_archive(path: Path, content: ContentStore, *, name: str | None = None) -> list[ArchiveImage]:
    """Copy the images of a docker-archive tar, OCI layout dir or OCI layout tar into ``content``.

    ``name`` is a repository for OCI entries whose ref.name annotation is a bare tag.
    """
    path = Path(path)
    repo = parse_repository(name) if name is not None else None
    label = str(path)
    try:
        with ExitStack() as stack:
            source: _Source
            if path.is_dir():
                source = _DirSource(path)
            elif path.is_file():
                try:
                    tar = stack.enter_context(tarfile.open(path, "r:*"))
                except tarfile.TarError as exc:
                    raise InvalidArgument(f"{path} is not a tar archive ({exc})") from None
                source = _TarSource(tar, label)
            else:
                raise NotFound(f"no such archive: {path}")
            reader = _Reader(source, content, label)
            if source.has("manifest.json"):
                return _docker_archive(reader)
            if source.has("index.json") and source.has("oci-layout"):
                return _oci_layout(reader, repo)
            raise InvalidArgument(
                f"{path} is neither a docker-archive (no manifest.json) nor an OCI layout (no index.json)"
            )
    except (tarfile.TarError, EOFError, OSError, zstandard.ZstdError) as exc:
        if isinstance(exc, ContainerkitError):
            raise
        raise InvalidArgument(f"cannot read archive {path}: {exc}") from None
    except InvalidReference as exc:
        raise InvalidArgument(f"archive {path}: {exc}") from None


# ---------------------------------------------------------------------------------------- writing


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = _MTIME
    tar.addfile(info, io.BytesIO(data))


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> None:
    info = tarfile.TarInfo(name)
    info.size = path.stat().st_size
    info.mode = 0o644
    info.mtime = _MTIME
    with path.open("rb") as f:
        tar.addfile(info, f)


@contextmanager
def _rebuilt(layer: Descriptor, workdir: Path, rebuild: Rebuild | None) -> Iterator[Path]:
    if rebuild is None:
        raise NotFound(f"blob {layer.digest} is missing from the store")
    path = rebuild(layer, workdir)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


@contextmanager
def _uncompressed_layer(
    content: ContentStore, layer: Descriptor, workdir: Path, rebuild: Rebuild | None = None
) -> Iterator[Path]:
    """The layer as a plain tar file: the blob itself, a temp file decompressed from it, or the
    layer written again from its unpacked dir (``rebuild``) when the store keeps no blob."""
    if not content.has(layer.digest):
        with _rebuilt(layer, workdir, rebuild) as path:
            yield path
        return
    path = content.path(layer.digest)
    with path.open("rb") as f:
        if layer_media_type(f.read(4)) == MEDIA_OCI_LAYER:
            yield path
            return
    fd, tmp = tempfile.mkstemp(dir=workdir, prefix="layer-")
    try:
        with content.open(layer.digest) as blob, os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(open_uncompressed(blob), out, 1 << 20)
        yield Path(tmp)
    finally:
        os.unlink(tmp)


def _write_docker_archive(
    images: Sequence[ArchiveImage], content: ContentStore, out: Path, rebuild: Rebuild | None = None
) -> None:
    manifest: list[dict[str, object]] = []
    repositories: dict[str, dict[str, str]] = {}
    written: set[str] = set()
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for image in images:
            config = parse_config(content.read_bytes(image.config.digest), f"config {image.config.digest}")
            config_name = image.config.digest.split(":", 1)[1] + ".json"
            if config_name not in written:
                _add_file(tar, config_name, content.path(image.config.digest))
                written.add(config_name)
            layer_names = []
            for layer, diff_id in zip(image.layers, config.diff_ids, strict=True):
                name = diff_id.split(":", 1)[1] + "/layer.tar"
                if name not in written:
                    with _uncompressed_layer(content, layer, out.parent, rebuild) as plain:
                        _add_file(tar, name, plain)
                    written.add(name)
                layer_names.append(name)
            tags = [ref.familiar for ref in image.names if ref.tag is not None and ref.digest is None]
            for ref in image.names:
                if ref.tag is not None and ref.digest is None and config.diff_ids:
                    top = config.diff_ids[-1].split(":", 1)[1]
                    repositories.setdefault(ref.familiar_name, {})[ref.tag] = top
            manifest.append({"Config": config_name, "RepoTags": tags or None, "Layers": layer_names})
        _add_bytes(tar, "manifest.json", json.dumps(manifest).encode())
        _add_bytes(tar, "repositories", json.dumps(repositories).encode())


def _oci_entries(
    images: Sequence[ArchiveImage], content: ContentStore
) -> tuple[list[Descriptor], dict[str, bytes]]:
    """Index entries (one per name) and the manifests that must be written as new blobs."""
    entries: list[Descriptor] = []
    new_blobs: dict[str, bytes] = {}
    for image in images:
        manifest = image.manifest
        if manifest is None or manifest.media_type != MEDIA_OCI_MANIFEST or not content.has(manifest.digest):
            layers = []
            for layer in image.layers:
                if not content.has(layer.digest):  # rebuilt: its type is the one it was given
                    layers.append(attrs.evolve(layer, annotations=()))
                    continue
                with content.open(layer.digest) as f:
                    layers.append(attrs.evolve(layer, media_type=layer_media_type(f.read(4)), annotations=()))
            data = build_manifest(image.config, layers)
            manifest = Descriptor(sha256_digest(data), len(data), MEDIA_OCI_MANIFEST)
            new_blobs[manifest.digest] = data
        base = Descriptor(manifest.digest, manifest.size, MEDIA_OCI_MANIFEST)
        tagged = [ref for ref in image.names if ref.tag is not None]
        if not tagged:
            entries.append(base)
        for ref in tagged:
            annotations = {ANNOTATION_IMAGE_NAME: ref.canonical, ANNOTATION_REF_NAME: ref.tag or ""}
            entries.append(attrs.evolve(base, annotations=tuple(sorted(annotations.items()))))
    return entries, new_blobs


def _oci_blobs(images: Sequence[ArchiveImage], content: ContentStore) -> list[str]:
    digests: list[str] = []
    for image in images:
        man = image.manifest
        if man is not None and man.media_type == MEDIA_OCI_MANIFEST and content.has(man.digest):
            digests.append(man.digest)
        digests.append(image.config.digest)
        digests.extend(layer.digest for layer in image.layers)
    return list(dict.fromkeys(digests))


def _write_oci(
    images: Sequence[ArchiveImage],
    content: ContentStore,
    out: Path,
    as_tar: bool,
    rebuild: Rebuild | None = None,
) -> None:
    entries, new_blobs = _oci_entries(images, content)
    index = build_index(entries)
    stored = _oci_blobs(images, content)
    layers = {layer.digest: layer for image in images for layer in image.layers}
    if as_tar:
        with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, "oci-layout", _OCI_LAYOUT)
            for digest in stored:
                name = "blobs/sha256/" + digest.split(":", 1)[1]
                if digest in layers and not content.has(digest):
                    with _rebuilt(layers[digest], out.parent, rebuild) as path:
                        _add_file(tar, name, path)
                    continue
                _add_file(tar, name, content.path(digest))
            for digest, data in new_blobs.items():
                if digest not in stored:
                    _add_bytes(tar, "blobs/sha256/" + digest.split(":", 1)[1], data)
            _add_bytes(tar, "index.json", index)
        return
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (out / "oci-layout").write_bytes(_OCI_LAYOUT)
    for digest in stored:
        if digest in layers and not content.has(digest):
            with _rebuilt(layers[digest], out.parent, rebuild) as path:
                os.replace(path, blobs / digest.split(":", 1)[1])
            continue
        shutil.copyfile(content.path(digest), blobs / digest.split(":", 1)[1])
    for digest, data in new_blobs.items():
        (blobs / digest.split(":", 1)[1]).write_bytes(data)
    (out / "index.json").write_bytes(index)


def write_archive(
    images: Sequence[ArchiveImage],
    content: ContentStore,
    out_path: Path,
    format: ArchiveFormat = "docker-archive",
    *,
    rebuild: Rebuild | None = None,
) -> None:
    """Write ``images`` to ``out_path``, atomically: a crash or error leaves no partial archive.

    ``format="oci"`` writes a directory unless ``out_path`` ends in ``.tar``; an existing
    directory must be empty. A docker-archive is always a tar. A layer the store does not keep
    is written by ``rebuild`` (uncompressed: describe it by its diff id and give no manifest).
    """
    out_path = Path(out_path)
    if format not in ("docker-archive", "oci"):
        raise InvalidArgument(f"unknown archive format {format!r} (expected docker-archive or oci)")
    as_tar = format == "docker-archive" or out_path.name.endswith(".tar")
    if not as_tar and out_path.exists() and (not out_path.is_dir() or any(out_path.iterdir())):
        raise InvalidArgument(f"cannot write an OCI layout to {out_path}: it exists and is not empty")
    for image in images:
        for desc in (image.config, *(() if rebuild is not None else image.layers)):
            if not content.has(desc.digest):
                raise NotFound(f"blob {desc.digest} of image {image.config.digest} is missing from the store")
    parent = out_path.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out_path.name}.tmp-"))
    try:
        target = tmp / "out"
        if format == "docker-archive":
            _write_docker_archive(images, content, target, rebuild)
        else:
            _write_oci(images, content, target, as_tar, rebuild)
        if not as_tar and out_path.is_dir():
            out_path.rmdir()
        os.replace(target, out_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

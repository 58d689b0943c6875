"""Test helpers: build layer tars and put images straight into a content store."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import zstandard
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from containerkit.images.archive import ArchiveImage
from containerkit.images.content import ContentStore, Descriptor
from containerkit.images.manifest import (
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_MANIFEST,
    build_config,
    build_manifest,
    layer_media_type,
)
from containerkit.images.reference import parse_reference
from containerkit.spec import ImageConfig

SCHEMAS = Path("/work/shared/specs/oci-image-spec")

# (name, content): bytes = file, None = directory, "->target" = symlink
Entry = tuple[str, "bytes | str | None"]


def layer_tar(entries: Iterable[Entry], compression: str = "none") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, content.removeprefix("->"), 0o777
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o644
                tar.addfile(info, io.BytesIO(content))
    return compress(buf.getvalue(), compression)


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    return data


def decompress(blob: bytes) -> bytes:
    if blob[:2] == b"\x1f\x8b":
        return gzip.decompress(blob)
    if blob[:4] == b"\x28\xb5\x2f\xfd":
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob)).read()
    return blob


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def store_image(
    content: ContentStore,
    layers: Sequence[bytes],
    names: Sequence[str] = (),
    config: ImageConfig | None = None,
    architecture: str = "amd64",
) -> ArchiveImage:
    """Ingest layer blobs, a config and an OCI manifest; the image as write_archive takes it."""
    descs = []
    for blob in layers:
        d = content.ingest_bytes(blob)
        descs.append(Descriptor(d.digest, d.size, layer_media_type(blob[:4])))
    cfg = build_config(
        [sha(decompress(b)) for b in layers],
        config or ImageConfig(cmd=["sh"]),
        created=dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        architecture=architecture,
    )
    c = content.ingest_bytes(cfg)
    config_desc = Descriptor(c.digest, c.size, MEDIA_OCI_CONFIG)
    m = content.ingest_bytes(build_manifest(config_desc, descs))
    return ArchiveImage(
        config_desc,
        tuple(descs),
        tuple(parse_reference(n) for n in names),
        Descriptor(m.digest, m.size, MEDIA_OCI_MANIFEST),
    )


def _registry() -> Registry:
    registry: Registry = Registry()
    for path in SCHEMAS.glob("*.json"):
        doc = json.loads(path.read_text())
        resource = Resource(doc, DRAFT4)
        for base in ("https://opencontainers.org/schema/", "https://opencontainers.org/schema/image/"):
            registry = registry.with_resource(base + path.name, resource)
        if "id" in doc:
            registry = registry.with_resource(doc["id"], resource)
    return registry


def validate(document: Any, schema_file: str) -> None:
    """Raise jsonschema.ValidationError unless ``document`` matches the OCI schema in ``schema_file``."""
    schema = json.loads((SCHEMAS / schema_file).read_text())
    jsonschema.Draft4Validator(schema, registry=_registry()).validate(document)

"""OCI and docker v2 manifests, indexes and image configs: parsing, building, chain ids.

Everything that reads JSON from an archive goes through here, so a malformed or hostile document
becomes one InvalidArgument that names the blob, and every layer knows its diff id and chain id.
Documents are built with sorted keys and no whitespace so the same image always hashes the same.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from containerkit._model import model
from containerkit.errors import InvalidArgument
from containerkit.images.content import Descriptor
from containerkit.images.reference import is_digest
from containerkit.spec import ImageConfig

__all__ = [
    "ANNOTATION_IMAGE_NAME",
    "ANNOTATION_REF_NAME",
    "MEDIA_DOCKER_CONFIG",
    "MEDIA_DOCKER_LAYER_GZIP",
    "MEDIA_DOCKER_MANIFEST",
    "MEDIA_DOCKER_MANIFEST_LIST",
    "MEDIA_OCI_CONFIG",
    "MEDIA_OCI_INDEX",
    "MEDIA_OCI_LAYER",
    "MEDIA_OCI_LAYER_GZIP",
    "MEDIA_OCI_LAYER_ZSTD",
    "MEDIA_OCI_MANIFEST",
    "Index",
    "Manifest",
    "ParsedConfig",
    "build_config",
    "build_index",
    "build_manifest",
    "canonical_json",
    "chain_ids",
    "host_platform",
    "layer_media_type",
    "parse_config",
    "parse_index",
    "parse_manifest",
    "select_manifest",
]

MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
MEDIA_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"

_MANIFEST_TYPES = (MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST)
_INDEX_TYPES = (MEDIA_OCI_INDEX, MEDIA_DOCKER_MANIFEST_LIST)
_LAYER_TYPES = (
    MEDIA_OCI_LAYER,
    MEDIA_OCI_LAYER_GZIP,
    MEDIA_OCI_LAYER_ZSTD,
    MEDIA_DOCKER_LAYER,
    MEDIA_DOCKER_LAYER_GZIP,
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
)
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le"}


def host_platform() -> tuple[str, str]:
    """``("linux", "amd64")`` on this machine, in GOOS/GOARCH words as OCI uses them."""
    machine = platform.machine()
    return "linux", _GOARCH.get(machine, machine)


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """OCI chain ids, bottom first: ``C0 = D0``, ``Cn = sha256(Cn-1 + " " + Dn)``."""
    result: list[str] = []
    for diff_id in diff_ids:
        if not result:
            result.append(diff_id)
        else:
            result.append("sha256:" + hashlib.sha256(f"{result[-1]} {diff_id}".encode()).hexdigest())
    return result


def layer_media_type(head: bytes) -> str:
    """The OCI layer media type for a blob that starts with ``head`` (gzip, zstd or plain tar)."""
    if head.startswith(b"\x1f\x8b"):
        return MEDIA_OCI_LAYER_GZIP
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return MEDIA_OCI_LAYER_ZSTD
    return MEDIA_OCI_LAYER


def _load(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"{what}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what}: expected a JSON object")
    return value


def _annotations(value: Any, what: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidArgument(f"{what}: annotations must map strings to strings")
    return tuple(sorted((str(k), v) for k, v in value.items()))


def _descriptor(value: Any, what: str) -> Descriptor:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what}: expected a descriptor object")
    digest, size, media_type = value.get("digest"), value.get("size"), value.get("mediaType")
    if not isinstance(digest, str) or not is_digest(digest):
        raise InvalidArgument(f"{what}: unsupported or invalid digest {digest!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidArgument(f"{what}: invalid size {size!r} for {digest}")
    if not isinstance(media_type, str):
        raise InvalidArgument(f"{what}: missing mediaType for {digest}")
    return Descriptor(digest, size, media_type, _annotations(value.get("annotations"), what))


@model
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: tuple[tuple[str, str], ...] = ()


@model
class IndexEntry:
    descriptor: Descriptor
    platform: tuple[str, str] | None  # (os, architecture)


@model
class Index:
    manifests: tuple[IndexEntry, ...]


def parse_manifest(data: bytes, what: str = "manifest") -> Manifest:
    doc = _load(data, what)
    if doc.get("schemaVersion") != 2:
        raise InvalidArgument(f"{what}: unsupported schemaVersion {doc.get('schemaVersion')!r}")
    media_type = doc.get("mediaType") or MEDIA_OCI_MANIFEST
    if media_type not in _MANIFEST_TYPES:
        raise InvalidArgument(f"{what}: unsupported manifest media type {media_type!r}")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise InvalidArgument(f"{what}: layers must be a list")
    parsed = tuple(_descriptor(item, f"{what} layer {n}") for n, item in enumerate(layers))
    for layer in parsed:
        if layer.media_type not in _LAYER_TYPES:
            raise InvalidArgument(f"{what}: unsupported layer type {layer.media_type!r} of {layer.digest}")
    return Manifest(
        media_type,
        _descriptor(doc.get("config"), f"{what} config"),
        parsed,
        _annotations(doc.get("annotations"), what),
    )


def parse_index(data: bytes, what: str = "index") -> Index:
    doc = _load(data, what)
    if doc.get("schemaVersion") != 2:
        raise InvalidArgument(f"{what}: unsupported schemaVersion {doc.get('schemaVersion')!r}")
    entries = doc.get("manifests")
    if not isinstance(entries, list):
        raise InvalidArgument(f"{what}: manifests must be a list")
    result = []
    for n, item in enumerate(entries):
        desc = _descriptor(item, f"{what} manifest {n}")
        plat = item.get("platform")
        pair = None
        if isinstance(plat, dict) and all(isinstance(plat.get(k), str) for k in ("os", "architecture")):
            pair = (plat["os"], plat["architecture"])
        result.append(IndexEntry(desc, pair))
    return Index(tuple(result))


def select_manifest(index: Index, what: str = "index") -> Descriptor:
    """The entry of a multi-platform index that runs here: this host's platform, else the only one."""
    wanted = host_platform()
    manifests = [e for e in index.manifests if e.descriptor.media_type in _MANIFEST_TYPES]
    for entry in manifests:
        if entry.platform == wanted:
            return entry.descriptor
    if len(manifests) == 1:
        return manifests[0].descriptor
    raise InvalidArgument(f"{what}: no manifest for platform {'/'.join(wanted)}")


@model
class ParsedConfig:
    diff_ids: tuple[str, ...]
    architecture: str
    os: str
    created: dt.datetime | None
    config: ImageConfig
    raw: Mapping[str, Any]


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    if "." in text:  # Go writes nanoseconds; Python takes microseconds
        head, _, tail = text.partition(".")
        digits = "".join(c for c in tail if c.isdigit())
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def parse_config(data: bytes, what: str = "config") -> ParsedConfig:
    doc = _load(data, what)
    rootfs = doc.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise InvalidArgument(f"{what}: rootfs.type must be 'layers'")
    diff_ids = rootfs.get("diff_ids")
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) and is_digest(d) for d in diff_ids):
        raise InvalidArgument(f"{what}: rootfs.diff_ids must be a list of sha256 digests")
    runtime = doc.get("config")
    if runtime is not None and not isinstance(runtime, dict):
        raise InvalidArgument(f"{what}: config must be an object")
    try:
        image_config = ImageConfig.from_oci(runtime)
    except (TypeError, AttributeError) as exc:
        raise InvalidArgument(f"{what}: invalid runtime config ({exc})") from None
    return ParsedConfig(
        diff_ids=tuple(diff_ids),
        architecture=str(doc.get("architecture") or ""),
        os=str(doc.get("os") or ""),
        created=_parse_time(doc.get("created")),
        config=image_config,
        raw=doc,
    )


def _rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_config(
    diff_ids: Sequence[str],
    config: ImageConfig,
    *,
    created: dt.datetime,
    architecture: str,
    os: str = "linux",
    history: Iterable[Mapping[str, Any]] = (),
) -> bytes:
    doc: dict[str, Any] = {
        "architecture": architecture,
        "os": os,
        "created": _rfc3339(created),
        "config": config.to_oci(),
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
    }
    entries = [dict(h) for h in history]
    if entries:
        doc["history"] = entries
    return canonical_json(doc)


def _descriptor_json(desc: Descriptor) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": desc.media_type, "digest": desc.digest, "size": desc.size}
    if desc.annotations:
        out["annotations"] = dict(desc.annotations)
    return out


def build_manifest(config: Descriptor, layers: Sequence[Descriptor]) -> bytes:
    """An OCI image manifest (``config``'s media type is forced to the OCI config type)."""
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_MANIFEST,
            "config": _descriptor_json(attrs.evolve(config, media_type=MEDIA_OCI_CONFIG)),
            "layers": [_descriptor_json(layer) for layer in layers],
        }
    )


def build_index(manifests: Sequence[Descriptor]) -> bytes:
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_INDEX,
            "manifests": [_descriptor_json(m) for m in manifests],
        }
    )

"""Manifests as a registry serves them: the four media types we accept, schema1 refused, and the
choice of one image from a multi-platform index.

The registry's ``Content-Type`` is trusted (its parameters ignored) and must agree with the
document's own ``mediaType`` when it has one; the image manifests themselves are parsed by
:mod:`containerkit.images.manifest`, the one reader of manifests in the code base.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from containerkit.errors import InvalidArgument, NotFound
from containerkit.images.content import Descriptor
from containerkit.images.manifest import (
    MEDIA_DOCKER_MANIFEST,
    MEDIA_DOCKER_MANIFEST_LIST,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    Manifest,
    parse_manifest,
)
from containerkit.images.reference import ImageRef, is_digest
from containerkit.images.registry.platform import Platform, normalize

__all__ = [
    "ACCEPT",
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "FetchedIndex",
    "IndexEntry",
    "parse_fetched",
    "schema1_error",
    "select_platform",
]

MANIFEST_TYPES = (MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST)
INDEX_TYPES = (MEDIA_OCI_INDEX, MEDIA_DOCKER_MANIFEST_LIST)
ACCEPT = ", ".join((MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST_LIST, MEDIA_DOCKER_MANIFEST))
"""Every type we read, so a registry never rewrites a manifest to schema1 for us."""

_SCHEMA1_TYPES = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
ATTESTATION_ANNOTATION = "vnd.docker.reference.type"


def schema1_error(ref: ImageRef) -> InvalidArgument:
    """dockerd's words (moby DeprecatedSchema1ImageError), which users search for."""
    return InvalidArgument(
        "Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been removed. "
        f"Suggest the author of {ref.canonical} to upgrade the image to the OCI Format or Docker Image "
        "manifest v2, schema 2. More information at https://docs.docker.com/go/deprecated-image-specs/"
    )


@attrs.frozen
class IndexEntry:
    descriptor: Descriptor
    platform: Platform | None

    @property
    def is_attestation(self) -> bool:
        """BuildKit's provenance/SBOM entries: platform unknown/unknown, typed by an annotation."""
        kinds = dict(self.descriptor.annotations)
        if kinds.get(ATTESTATION_ANNOTATION) == "attestation-manifest":
            return True
        return (
            self.platform is not None
            and self.platform.os == "unknown"
            and self.platform.architecture == "unknown"
        )


@attrs.frozen
class FetchedIndex:
    """An OCI index or docker manifest list with full platforms (variants kept)."""

    media_type: str
    manifests: tuple[IndexEntry, ...]

    def platforms(self) -> list[dict[str, str]]:
        """The runnable platforms it holds (no attestations), as docker's distribution inspect lists them."""
        return [
            e.platform.as_dict() for e in self.manifests if e.platform is not None and not e.is_attestation
        ]


def _media_type_of(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _load(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"{what}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{what}: expected a JSON object")
    return doc


def _parse_index(doc: dict[str, Any], media_type: str, what: str) -> FetchedIndex:
    entries = doc.get("manifests")
    if not isinstance(entries, list):
        raise InvalidArgument(f"{what}: manifests must be a list")
    result = []
    for n, item in enumerate(entries):
        if not isinstance(item, dict):
            raise InvalidArgument(f"{what}: manifest {n} is not an object")
        digest, size, kind = item.get("digest"), item.get("size"), item.get("mediaType")
        if not isinstance(digest, str) or not is_digest(digest):
            raise InvalidArgument(f"{what}: manifest {n}: unsupported or invalid digest {digest!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidArgument(f"{what}: manifest {n}: invalid size {size!r} for {digest}")
        notes = item.get("annotations") or {}
        if not isinstance(notes, dict):
            raise InvalidArgument(f"{what}: manifest {n}: annotations must be an object")
        plat = item.get("platform")
        platform = None
        if (
            isinstance(plat, dict)
            and isinstance(plat.get("os"), str)
            and isinstance(plat.get("architecture"), str)
        ):
            variant = plat.get("variant")
            platform = normalize(
                plat["os"], plat["architecture"], variant if isinstance(variant, str) else ""
            )
        desc = Descriptor(
            digest,
            size,
            kind if isinstance(kind, str) else "",
            tuple(sorted((str(k), str(v)) for k, v in notes.items())),
        )
        result.append(IndexEntry(desc, platform))
    return FetchedIndex(media_type, tuple(result))


def parse_fetched(data: bytes, content_type: str | None, ref: ImageRef) -> Manifest | FetchedIndex:
    """A manifest or index from a registry response; schema1 and unknown types are InvalidArgument."""
    what = f"manifest of {ref.canonical}"
    header = _media_type_of(content_type)
    if header in _SCHEMA1_TYPES:
        raise schema1_error(ref)
    doc = _load(data, what)
    body_type = doc.get("mediaType")
    if doc.get("schemaVersion") == 1 or body_type in _SCHEMA1_TYPES:
        raise schema1_error(ref)
    if isinstance(body_type, str) and header in MANIFEST_TYPES + INDEX_TYPES and body_type != header:
        raise InvalidArgument(
            f"{what}: Content-Type {header!r} disagrees with the document's mediaType {body_type!r}"
        )
    media_type = body_type if isinstance(body_type, str) and body_type else header
    if not media_type:  # an OCI document may leave mediaType out: its shape says what it is
        media_type = MEDIA_OCI_INDEX if "manifests" in doc else MEDIA_OCI_MANIFEST
    if media_type in INDEX_TYPES:
        if doc.get("schemaVersion") != 2:
            raise InvalidArgument(f"{what}: unsupported schemaVersion {doc.get('schemaVersion')!r}")
        return _parse_index(doc, media_type, what)
    if media_type in MANIFEST_TYPES:
        return parse_manifest(data, what)
    raise InvalidArgument(f"{what}: unsupported manifest media type {media_type!r}")


def select_platform(index: FetchedIndex, wanted: Platform) -> IndexEntry:
    """The entry that runs best on ``wanted`` (exact first, then containerd's fallbacks); entries
    without a platform match last; attestations and unknown media types never. NotFound in
    docker's words when nothing fits."""
    best: tuple[int, int, IndexEntry] | None = None
    for position, entry in enumerate(index.manifests):
        if entry.is_attestation or entry.descriptor.media_type not in MANIFEST_TYPES:
            continue
        if entry.platform is None:
            rank: int | None = 1_000_000
        else:
            rank = wanted.rank(entry.platform)
        if rank is not None and (best is None or (rank, position) < best[:2]):
            best = (rank, position, entry)
    if best is None:
        raise NotFound(f"no matching manifest for {wanted} in the manifest list entries")
    return best[2]

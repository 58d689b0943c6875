"""Manifest parsing and platform selection as registries serve them (pure functions: no server needed)."""

from __future__ import annotations

import json

import pytest

from containerkit.errors import InvalidArgument, NotFound
from containerkit.images.manifest import Manifest
from containerkit.images.reference import parse_reference
from containerkit.images.registry.manifests import FetchedIndex, parse_fetched, select_platform
from containerkit.images.registry.platform import Platform, normalize, parse_platform

REF = parse_reference("127.0.0.1:5000/team/app:1.2")
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def _digest(n: int) -> str:
    return "sha256:" + f"{n:x}" * 64 if n < 16 else "sha256:" + f"{n:02x}" * 32


def _entry(
    n: int, platform: dict[str, str] | None, annotations: dict[str, str] | None = None
) -> dict[str, object]:
    item: dict[str, object] = {"mediaType": DOCKER_MANIFEST, "digest": _digest(n), "size": 100 + n}
    if platform is not None:
        item["platform"] = platform
    if annotations:
        item["annotations"] = annotations
    return item


def _index(*entries: dict[str, object], media_type: str = DOCKER_LIST) -> FetchedIndex:
    doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": list(entries)}
    parsed = parse_fetched(json.dumps(doc).encode(), media_type, REF)
    assert isinstance(parsed, FetchedIndex)
    return parsed


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (("linux", "x86_64", ""), Platform("linux", "amd64")),
        (("linux", "amd64", "v1"), Platform("linux", "amd64")),
        (("linux", "aarch64", "v8"), Platform("linux", "arm64")),
        (("linux", "arm64", "8"), Platform("linux", "arm64")),
        (("linux", "arm64", "v8.0"), Platform("linux", "arm64")),
        (("linux", "arm64", "v9"), Platform("linux", "arm64", "v9")),
        (("linux", "armhf", ""), Platform("linux", "arm", "v7")),
        (("linux", "armel", ""), Platform("linux", "arm", "v6")),
        (("linux", "arm", ""), Platform("linux", "arm", "v7")),
        (("linux", "i386", ""), Platform("linux", "386")),
        (("Linux", "AMD64", ""), Platform("linux", "amd64")),
    ],
)
def test_normalize_as_containerd(given: tuple[str, str, str], expected: Platform) -> None:
    assert normalize(*given) == expected


def test_parse_platform_forms_and_errors() -> None:
    assert parse_platform("linux/arm64/v8") == Platform("linux", "arm64")
    assert parse_platform("linux/arm/v6") == Platform("linux", "arm", "v6")
    assert parse_platform("linux").os == "linux"
    assert parse_platform("arm64") == Platform("linux", "arm64")
    for bad in ("", "linux/amd64/v2/x", "linux//amd64", "plan10/amd64", "linux/am d64"):
        with pytest.raises(InvalidArgument, match="invalid platform"):
            parse_platform(bad)


def test_docker_spelling_of_arm64_has_v8() -> None:
    assert str(Platform("linux", "arm64")) == "linux/arm64/v8"
    assert str(Platform("linux", "amd64")) == "linux/amd64"
    assert str(Platform("linux", "arm", "v7")) == "linux/arm/v7"


def test_fallback_order() -> None:
    assert Platform("linux", "arm", "v7").fallbacks() == (
        Platform("linux", "arm", "v7"),
        Platform("linux", "arm", "v6"),
        Platform("linux", "arm", "v5"),
    )
    arm64 = Platform("linux", "arm64").fallbacks()
    assert arm64[:3] == (
        Platform("linux", "arm64"),
        Platform("linux", "arm", "v8"),
        Platform("linux", "arm", "v7"),
    )
    assert Platform("linux", "amd64", "v3").fallbacks() == (
        Platform("linux", "amd64", "v3"),
        Platform("linux", "amd64", "v2"),
        Platform("linux", "amd64"),
        Platform("linux", "386"),
    )
    assert Platform("linux", "amd64").rank(Platform("linux", "arm64")) is None


def test_select_exact_before_fallback_and_attestations_skipped() -> None:
    index = _index(
        _entry(1, {"os": "unknown", "architecture": "unknown"}),
        _entry(2, {"os": "linux", "architecture": "arm", "variant": "v6"}),
        _entry(3, {"os": "linux", "architecture": "arm", "variant": "v7"}),
        _entry(
            4, {"os": "linux", "architecture": "amd64"}, {"vnd.docker.reference.type": "attestation-manifest"}
        ),
        _entry(5, {"os": "linux", "architecture": "amd64"}),
        _entry(6, {"os": "linux", "architecture": "aarch64", "variant": "v8"}),
    )
    assert select_platform(index, Platform("linux", "amd64")).descriptor.digest == _digest(5)
    assert select_platform(index, Platform("linux", "arm", "v7")).descriptor.digest == _digest(3)
    assert select_platform(index, Platform("linux", "arm", "v8")).descriptor.digest == _digest(3)
    assert select_platform(index, Platform("linux", "arm64")).descriptor.digest == _digest(6)
    assert index.platforms() == [
        {"architecture": "arm", "os": "linux", "variant": "v6"},
        {"architecture": "arm", "os": "linux", "variant": "v7"},
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux"},
    ]


def test_amd64_falls_back_to_386_and_arm64_to_arm() -> None:
    index = _index(
        _entry(1, {"os": "linux", "architecture": "386"}),
        _entry(2, {"os": "linux", "architecture": "arm", "variant": "v7"}),
    )
    assert select_platform(index, Platform("linux", "amd64")).descriptor.digest == _digest(1)
    assert select_platform(index, Platform("linux", "arm64")).descriptor.digest == _digest(2)


def test_no_match_is_dockers_message() -> None:
    index = _index(
        _entry(1, {"os": "linux", "architecture": "amd64"}),
        _entry(2, {"os": "unknown", "architecture": "unknown"}),
        media_type=OCI_INDEX,
    )
    with pytest.raises(NotFound) as info:
        select_platform(index, parse_platform("linux/arm64"))
    assert str(info.value) == "no matching manifest for linux/arm64/v8 in the manifest list entries"


def test_schema1_refused_with_dockers_message() -> None:
    body = json.dumps({"schemaVersion": 1, "name": "team/app", "tag": "1.2", "fsLayers": []}).encode()
    for content_type in ("application/vnd.docker.distribution.manifest.v1+prettyjws", "application/json"):
        with pytest.raises(InvalidArgument) as info:
            parse_fetched(body, content_type, REF)
        assert "schema 1 support has been removed" in str(info.value)
        assert "Suggest the author of 127.0.0.1:5000/team/app:1.2 to upgrade" in str(info.value)


def test_content_type_must_agree_with_media_type() -> None:
    doc = {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": []}
    with pytest.raises(InvalidArgument, match="disagrees"):
        parse_fetched(json.dumps(doc).encode(), OCI_INDEX + "; charset=utf-8", REF)


def test_manifest_parsed_and_unknown_type_refused() -> None:
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": _digest(1),
            "size": 3,
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "digest": _digest(2),
                "size": 9,
            }
        ],
    }
    parsed = parse_fetched(json.dumps(doc).encode(), DOCKER_MANIFEST, REF)
    assert isinstance(parsed, Manifest)
    assert [x.digest for x in parsed.layers] == [_digest(2)]
    doc["mediaType"] = "application/vnd.example+json"
    with pytest.raises(InvalidArgument, match="unsupported manifest media type"):
        parse_fetched(json.dumps(doc).encode(), "application/vnd.example+json", REF)

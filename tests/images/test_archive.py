"""docker-archive and OCI layout, written and read back; hostile archives rejected cleanly."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from containerkit.errors import IntegrityError, InvalidArgument, NotFound
from containerkit.images.archive import read_archive, write_archive
from containerkit.images.content import ContentStore
from containerkit.images.manifest import build_index, canonical_json, parse_config
from tests.images._oci import compress, layer_tar, sha, store_image, validate

BASE = [("etc", None), ("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"), ("bin", None), ("bin/sh", b"#!fake\n")]
TOP = [("etc/motd", b"hello\n"), ("etc/.wh.passwd", b"")]


@pytest.fixture
def content(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "src")


@pytest.fixture
def dest(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "dst")


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_docker_archive_round_trip(content: ContentStore, dest: ContentStore, tmp_path: Path) -> None:
    base, top = layer_tar(BASE), layer_tar(TOP, "gzip")
    image = store_image(content, [base, top], ["example/app:v1", "localhost:5000/app:latest"])
    out = tmp_path / "app.tar"
    write_archive([image], content, out)
    members = _members(out)
    manifest = json.loads(members["manifest.json"])
    diff_ids = parse_config(content.read_bytes(image.config.digest)).diff_ids
    assert manifest == [
        {
            "Config": image.config.digest[7:] + ".json",
            "RepoTags": ["example/app:v1", "localhost:5000/app:latest"],
            "Layers": [d[7:] + "/layer.tar" for d in diff_ids],
        }
    ]
    # layers are written uncompressed, so each file hashes to its diff id
    assert [sha(members[name]) for name in manifest[0]["Layers"]] == list(diff_ids)
    assert json.loads(members["repositories"]) == {
        "example/app": {"v1": diff_ids[-1][7:]},
        "localhost:5000/app": {"latest": diff_ids[-1][7:]},
    }
    loaded = read_archive(out, dest)
    assert len(loaded) == 1
    assert loaded[0].config.digest == image.config.digest
    assert [r.familiar for r in loaded[0].names] == ["example/app:v1", "localhost:5000/app:latest"]
    assert [layer.digest for layer in loaded[0].layers] == list(diff_ids)
    assert loaded[0].manifest is None


@pytest.mark.parametrize("as_tar", [False, True])
def test_oci_layout_round_trip(
    content: ContentStore, dest: ContentStore, tmp_path: Path, as_tar: bool
) -> None:
    image = store_image(content, [layer_tar(BASE, "gzip"), layer_tar(TOP, "zstd")], ["busybox:latest"])
    out = tmp_path / ("layout.tar" if as_tar else "layout")
    write_archive([image], content, out, "oci")
    if as_tar:
        files = _members(out)
    else:
        files = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    index = json.loads(files["index.json"])
    validate(index, "image-index-schema.json")
    validate(json.loads(files["oci-layout"]), "image-layout-schema.json")
    (entry,) = index["manifests"]
    assert entry["digest"] == image.manifest.digest  # type: ignore[union-attr]
    assert entry["annotations"] == {
        "org.opencontainers.image.ref.name": "latest",
        "io.containerd.image.name": "docker.io/library/busybox:latest",
    }
    manifest = json.loads(files["blobs/sha256/" + entry["digest"][7:]])
    validate(manifest, "image-manifest-schema.json")
    validate(json.loads(files["blobs/sha256/" + image.config.digest[7:]]), "config-schema.json")
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
    ]
    for name, data in files.items():
        if name.startswith("blobs/"):
            assert sha(data) == "sha256:" + name.rsplit("/", 1)[1]
    (loaded,) = read_archive(out, dest)
    assert loaded.manifest == image.manifest
    assert loaded.config.digest == image.config.digest
    assert [r.canonical for r in loaded.names] == ["docker.io/library/busybox:latest"]
    assert [d.digest for d in loaded.layers] == [d.digest for d in image.layers]
    for digest in [image.config.digest, *(d.digest for d in image.layers)]:
        assert dest.read_bytes(digest) == content.read_bytes(digest)


def _oci_dir(
    content: ContentStore, tmp_path: Path, image_names: list[str], annotations: dict[str, str]
) -> Path:
    image = store_image(content, [layer_tar(BASE)], image_names)
    out = tmp_path / "layout"
    write_archive([image], content, out, "oci")
    index = json.loads((out / "index.json").read_text())
    for entry in index["manifests"]:
        entry["annotations"] = annotations
    (out / "index.json").write_text(json.dumps(index))
    return out


def test_bare_tag_needs_a_name(content: ContentStore, dest: ContentStore, tmp_path: Path) -> None:
    out = _oci_dir(content, tmp_path, [], {"org.opencontainers.image.ref.name": "v2"})
    assert read_archive(out, dest)[0].names == ()
    (named,) = read_archive(out, dest, name="example/app")
    assert [r.canonical for r in named.names] == ["docker.io/example/app:v2"]
    with pytest.raises(InvalidArgument):
        read_archive(out, dest, name="example/app:v1")


def test_full_ref_name_annotation(content: ContentStore, dest: ContentStore, tmp_path: Path) -> None:
    out = _oci_dir(content, tmp_path, [], {"org.opencontainers.image.ref.name": "localhost/x:v3"})
    assert [r.canonical for r in read_archive(out, dest)[0].names] == ["localhost/x:v3"]


def test_multi_image_archives(content: ContentStore, dest: ContentStore, tmp_path: Path) -> None:
    one = store_image(content, [layer_tar(BASE)], ["one:latest"])
    two = store_image(content, [layer_tar(BASE), layer_tar(TOP)], ["two:latest", "two:v2"])
    write_archive([one, two], content, tmp_path / "d.tar")
    write_archive([one, two], content, tmp_path / "o.tar", "oci")
    for path in (tmp_path / "d.tar", tmp_path / "o.tar"):
        loaded = read_archive(path, dest)
        assert {i.config.digest: sorted(r.familiar for r in i.names) for i in loaded} == {
            one.config.digest: ["one:latest"],
            two.config.digest: ["two:latest", "two:v2"],
        }
    # the shared base layer is stored once in the docker-archive
    assert sum(1 for n in _members(tmp_path / "d.tar") if n.endswith("layer.tar")) == 2


def test_nested_index_picks_this_platform(content: ContentStore, dest: ContentStore, tmp_path: Path) -> None:
    from containerkit.images.content import Descriptor
    from containerkit.images.manifest import host_platform

    os_name, arch = host_platform()
    native = store_image(content, [layer_tar(BASE)], architecture=arch)
    other = store_image(content, [layer_tar(TOP)], architecture="s390x")
    entries = []
    for img, a in ((other, "s390x"), (native, arch)):
        doc = {"mediaType": img.manifest.media_type, "digest": img.manifest.digest, "size": img.manifest.size}  # type: ignore[union-attr]
        doc["platform"] = {"os": os_name, "architecture": a}
        entries.append(doc)
    nested = canonical_json(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}
    )
    nd = content.ingest_bytes(nested)
    out = tmp_path / "multi"
    write_archive([native, other], content, out, "oci")
    top = Descriptor(
        nd.digest,
        nd.size,
        "application/vnd.oci.image.index.v1+json",
        (("io.containerd.image.name", "docker.io/library/multi:latest"),),
    )
    (out / "index.json").write_bytes(build_index([top]))
    (out / "blobs/sha256" / nd.digest[7:]).write_bytes(nested)
    (loaded,) = read_archive(out, dest)
    assert loaded.config.digest == native.config.digest
    assert [r.familiar for r in loaded.names] == ["multi:latest"]


def _docker_archive(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_newer_docker_layout_with_blob_paths(
    content: ContentStore, dest: ContentStore, tmp_path: Path
) -> None:
    layer = layer_tar(BASE)
    image = store_image(content, [layer])
    config = content.read_bytes(image.config.digest)
    files = {
        f"blobs/sha256/{sha(layer)[7:]}": layer,
        f"blobs/sha256/{image.config.digest[7:]}": config,
        "manifest.json": json.dumps(
            [
                {
                    "Config": f"blobs/sha256/{image.config.digest[7:]}",
                    "RepoTags": ["new:1"],
                    "Layers": [f"blobs/sha256/{sha(layer)[7:]}"],
                }
            ]
        ).encode(),
    }
    (loaded,) = read_archive(_docker_archive(tmp_path / "new.tar", files), dest)
    assert loaded.config.digest == image.config.digest and loaded.layers[0].digest == sha(layer)
    # a blob whose content does not match its path is refused and not kept
    files[f"blobs/sha256/{sha(layer)[7:]}"] = layer_tar(TOP)
    fresh = ContentStore(tmp_path / "fresh")
    with pytest.raises(IntegrityError, match=sha(layer)):
        read_archive(_docker_archive(tmp_path / "bad.tar", files), fresh)
    assert sha(layer_tar(TOP)) not in set(fresh.list())


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda f, i: f.update({"manifest.json": b"not json"}), InvalidArgument),
        (lambda f, i: f.update({"manifest.json": b'{"Config": 1}'}), InvalidArgument),
        (
            lambda f, i: f.update(
                {"manifest.json": json.dumps([{"Config": "../../etc/passwd", "Layers": []}]).encode()}
            ),
            InvalidArgument,
        ),
        (
            lambda f, i: f.update({"manifest.json": json.dumps([{"Config": i, "Layers": []}]).encode()}),
            InvalidArgument,
        ),
        (
            lambda f, i: f.update({i: b'{"rootfs": {"type": "layers", "diff_ids": ["../x"]}}'}),
            InvalidArgument,
        ),
    ],
)
def test_bad_docker_archives(
    content: ContentStore, dest: ContentStore, tmp_path: Path, mutate, error
) -> None:  # type: ignore[no-untyped-def]
    image = store_image(content, [layer_tar(BASE)], ["x:1"])
    write_archive([image], content, tmp_path / "ok.tar")
    files = _members(tmp_path / "ok.tar")
    mutate(files, image.config.digest[7:] + ".json")
    with pytest.raises(error):
        read_archive(_docker_archive(tmp_path / "bad.tar", files), dest)


def test_oci_blob_tampering(content: ContentStore, dest: ContentStore, tmp_path: Path) -> None:
    image = store_image(content, [layer_tar(BASE, "gzip")], ["x:1"])
    out = tmp_path / "layout"
    write_archive([image], content, out, "oci")
    blob = out / "blobs/sha256" / image.layers[0].digest[7:]
    good = blob.read_bytes()
    blob.write_bytes(good[:-10])
    with pytest.raises(IntegrityError, match="truncated blob"):
        read_archive(out, dest)
    blob.write_bytes(compress(b"evil" * 100, "gzip")[: len(good)].ljust(len(good), b"\0"))
    with pytest.raises(IntegrityError, match=image.layers[0].digest):
        read_archive(out, dest)
    blob.unlink()
    with pytest.raises(InvalidArgument, match="missing"):
        read_archive(out, dest)
    assert image.layers[0].digest not in set(dest.list())
    assert list((dest.root / "ingest").iterdir()) == []


def test_not_an_archive(dest: ContentStore, tmp_path: Path) -> None:
    (tmp_path / "junk").write_bytes(b"junk")
    with pytest.raises(InvalidArgument):
        read_archive(tmp_path / "junk", dest)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidArgument, match="neither"):
        read_archive(tmp_path / "empty", dest)


def test_write_is_atomic_and_refuses_non_empty_dir(content: ContentStore, tmp_path: Path) -> None:
    image = store_image(content, [layer_tar(BASE)], ["x:1"])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep").write_text("x")
    with pytest.raises(InvalidArgument, match="not empty"):
        write_archive([image], content, tmp_path / "full", "oci")
    content.delete(image.layers[0].digest)
    with pytest.raises(NotFound):
        write_archive([image], content, tmp_path / "out.tar")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "src"]

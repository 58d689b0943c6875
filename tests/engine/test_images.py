"""engine.images: load, import, look-up, tag, remove, prune, save, read_file, across processes."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import multiprocessing
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from containerkit.engine.images import ImageCollection
from containerkit.errors import Conflict, IntegrityError, InvalidArgument, NotFound, UnsafeArchive
from containerkit.images.archive import write_archive
from containerkit.images.content import ContentStore
from containerkit.images.manifest import canonical_json
from containerkit.spec import ImageConfig
from containerkit.storage.metadata import ContainerRecord, Database
from containerkit.storage.snapshots import SnapshotStore
from tests.images._oci import layer_tar, store_image


@pytest.fixture(scope="module")
def passwd(busybox_rootfs_tar: Path) -> bytes:
    """/etc/passwd as the busybox rootfs tar holds it."""
    with tarfile.open(busybox_rootfs_tar) as tar:
        return tar.extractfile("etc/passwd").read()  # type: ignore[union-attr]


def _collection(root: Path) -> ImageCollection:
    return ImageCollection(
        ContentStore(root / "content"), SnapshotStore(root / "snapshots"), Database(root / "metadata.db")
    )


@pytest.fixture
def images(tmp_path: Path) -> Iterator[ImageCollection]:
    collection = _collection(tmp_path / "root")
    yield collection
    collection.metadata.close()


@pytest.fixture
def busybox(images: ImageCollection, busybox_rootfs_tar: Path) -> str:
    return images.import_rootfs(busybox_rootfs_tar, "busybox").id


def _use(images: ImageCollection, image_id: str, cid: str = "c" * 64) -> str:
    images.metadata.containers.add(
        ContainerRecord(
            id=cid,
            name=f"n{cid[:6]}",
            image_id=image_id,
            image_ref="busybox",
            created=time.time(),
            spec_json="{}",
        )
    )
    return cid


def _is_empty(images: ImageCollection) -> bool:
    return (
        not list(images.content.list())
        and not images.snapshots.list_layers()
        and not images.metadata.layers.all()
        and not images.metadata.images.ids()
    )


def test_import_and_lookups(
    images: ImageCollection, busybox: str, busybox_rootfs_tar: Path, passwd: bytes, tmp_path: Path
) -> None:
    image = images.get("busybox")
    assert image.id == busybox and image.tags == ("busybox:latest",)
    assert image.config == ImageConfig()  # docker import: empty config unless given
    assert image.layers == (images.content.ingest(busybox_rootfs_tar.open("rb")).digest,)
    assert image.size > 100_000 and image.os == "linux"
    for ref in (
        "docker.io/library/busybox:latest",
        "busybox:latest",
        busybox,
        busybox[7:],
        busybox[7:19],
        "sha256:" + busybox[7:12],
    ):
        assert images.get(ref).id == busybox
    with pytest.raises(NotFound, match="No such image: nope:1"):
        images.get("nope:1")
    with pytest.raises(NotFound, match="No such image: sha256:" + "0" * 64):
        images.get("sha256:" + "0" * 64)
    assert images.chain_ids(busybox) == list(image.layers)
    assert images.snapshots.has_layer(image.layers[0])
    assert images.read_file(busybox, "/etc/passwd") == passwd
    assert images.read_file(busybox, "bin/sh")[:4] == b"\x7fELF"  # type: ignore[index]  # symlink to busybox
    assert images.read_file(busybox, "/etc/nope") is None
    assert images.read_file(busybox, "/etc") is None
    # a gzip rootfs is stored uncompressed (same layer); config given as an OCI mapping
    gz = tmp_path / "rootfs.tar.gz"
    gz.write_bytes(gzip.compress(busybox_rootfs_tar.read_bytes()))
    other = images.import_rootfs(gz, "example/sh:v1", config={"Cmd": ["sh"], "Labels": {"a": "b"}})
    assert other.config.cmd == ("sh",) and other.tags == ("example/sh:v1",)
    assert images.config(other.id).labels == (("a", "b"),)
    assert images.chain_ids(other.id) == images.chain_ids(busybox)  # same layer, unpacked once


def test_multi_layer_oci_with_whiteouts(images: ImageCollection, tmp_path: Path) -> None:
    src = ContentStore(tmp_path / "src")
    base = layer_tar(
        [
            ("etc", None),
            ("etc/passwd", b"old\n"),
            ("etc/gone", b"x"),
            ("opt", None),
            ("opt/old", b"1"),
            ("opt/sub", None),
            ("opt/sub/deep", b"2"),
            ("data", None),
            ("data/f", b"f"),
            ("lib", None),
            ("lib/l", b"lib"),
        ]
    )
    middle = layer_tar(
        [("etc/passwd", b"new\n"), ("etc/.wh.gone", b""), ("usr", None), ("usr/lib", "->/lib")], "gzip"
    )
    top = layer_tar(
        [("opt", None), ("opt/.wh..wh..opq", b""), ("opt/new", b"3"), ("data", b"now a file")], "zstd"
    )
    img = store_image(src, [base, middle, top], ["example/wh:latest"])
    write_archive([img], src, tmp_path / "layout", "oci")
    (image,) = images.load(tmp_path / "layout")
    assert image.tags == ("example/wh:latest",)
    assert image.digests == (f"example/wh@{img.manifest.digest}",)  # type: ignore[union-attr]
    assert images.get(f"example/wh@{img.manifest.digest}").id == image.id  # type: ignore[union-attr]
    read = images.read_file
    assert read(image.id, "/etc/passwd") == b"new\n"
    assert read(image.id, "/etc/gone") is None
    assert read(image.id, "/opt/old") is None and read(image.id, "/opt/sub/deep") is None
    assert read(image.id, "/opt/new") == b"3"
    assert read(image.id, "/data") == b"now a file" and read(image.id, "/data/f") is None
    assert read(image.id, "/usr/lib/l") == b"lib"
    assert len(images.chain_ids(image.id)) == 3
    assert all(images.snapshots.has_layer(c) for c in images.chain_ids(image.id))


def test_save_and_load_round_trip(
    images: ImageCollection, busybox: str, tmp_path: Path, passwd: bytes
) -> None:
    images.tag("busybox", "example/app:v1")
    images.save(["example/app:v1", "busybox"], tmp_path / "d.tar")
    images.save("example/app:v1", tmp_path / "oci", format="oci")
    images.save([busybox], tmp_path / "untagged.tar")
    other = _collection(tmp_path / "other")
    loaded = other.load(tmp_path / "d.tar")
    assert [(i.id, sorted(i.tags)) for i in loaded] == [(busybox, ["busybox:latest", "example/app:v1"])]
    (oci,) = other.load(tmp_path / "oci")
    assert oci.id == busybox
    (untagged,) = _collection(tmp_path / "third").load(tmp_path / "untagged.tar")
    assert untagged.id == busybox and untagged.tags == ()
    assert other.read_file(busybox, "/etc/passwd") == passwd
    other.metadata.close()


def test_tags_and_remove(images: ImageCollection, busybox: str, passwd: bytes) -> None:
    images.tag("busybox", "example/app:v1")
    images.tag(busybox[7:19], "localhost:5000/app")
    assert sorted(images.get(busybox).tags) == [
        "busybox:latest",
        "example/app:v1",
        "localhost:5000/app:latest",
    ]
    with pytest.raises(InvalidArgument):
        images.tag("busybox", "x@sha256:" + "a" * 64)
    with pytest.raises(NotFound):
        images.tag("nope", "x")
    assert images.remove("example/app:v1") == ["Untagged: example/app:v1"]
    with pytest.raises(Conflict, match="referenced in multiple repositories"):
        images.remove(busybox)
    cid = _use(images, busybox)
    images.remove("localhost:5000/app")
    with pytest.raises(Conflict, match=cid[:12]):
        images.remove("busybox")
    with pytest.raises(Conflict, match=cid[:12]):
        images.remove(busybox)
    # forced: untagged, kept (dangling) for the container, not pruned
    assert images.remove("busybox", force=True) == ["Untagged: busybox:latest"]
    assert images.get(busybox).tags == ()
    assert images.prune() == []
    assert images.read_file(busybox, "/etc/passwd") == passwd
    images.metadata.containers.remove(cid)
    assert images.prune() == [busybox]
    assert _is_empty(images)
    with pytest.raises(NotFound):
        images.get(busybox)


def test_remove_deletes_only_unshared_content(
    images: ImageCollection, busybox: str, tmp_path: Path, passwd: bytes
) -> None:
    src = ContentStore(tmp_path / "src")
    out = io.BytesIO()
    images.write_layer(busybox, 0, out)  # the store keeps no blob: written again from the layer
    base = out.getvalue()
    assert hashlib.sha256(base).hexdigest() == images.get(busybox).layers[0].split(":")[1]
    img = store_image(src, [base, layer_tar([("etc/motd", b"hi")])], ["two:latest"])
    write_archive([img], src, tmp_path / "two.tar")
    (two,) = images.load(tmp_path / "two.tar")
    assert images.remove("two") == ["Untagged: two:latest", f"Deleted: {two.id}"]
    assert images.read_file(busybox, "/etc/passwd") == passwd
    assert images.snapshots.has_layer(images.chain_ids(busybox)[0])
    assert images.remove(busybox) == ["Untagged: busybox:latest", f"Deleted: {busybox}"]
    assert _is_empty(images)


def test_list_filters(images: ImageCollection, busybox_rootfs_tar: Path) -> None:
    a = images.import_rootfs(busybox_rootfs_tar, "alpha:1", config={"Labels": {"team": "x"}})
    b = images.import_rootfs(busybox_rootfs_tar, "beta:2", config=ImageConfig(labels={"team": "y", "k": "v"}))
    c = images.import_rootfs(busybox_rootfs_tar, None, config={"Cmd": ["true"]})
    assert [i.id for i in images.list()] == [c.id, b.id, a.id]
    assert [i.id for i in images.list(filters={"dangling": True})] == [c.id]
    assert [i.id for i in images.list(filters={"dangling": "false"})] == [b.id, a.id]
    assert [i.id for i in images.list(filters={"label": "team=x"})] == [a.id]
    assert [i.id for i in images.list(filters={"label": ["team", "k=v"]})] == [b.id]
    assert [i.id for i in images.list(filters={"reference": "al*"})] == [a.id]
    assert [i.id for i in images.list(filters={"reference": ["beta:2", "nope"]})] == [b.id]
    with pytest.raises(InvalidArgument, match="since"):
        images.list(filters={"since": "x"})


def _hostile_layout(tmp_path: Path, second: bytes, wrong_diff_id: bool = False) -> Path:
    """A two-layer OCI layout whose second layer is hostile, or whose config lies about its diff id."""
    src = ContentStore(tmp_path / "hostile-src")
    img = store_image(src, [layer_tar([("ok", b"1")]), second], ["bad:latest"])
    if wrong_diff_id:
        config = json.loads(src.read_bytes(img.config.digest))
        config["rootfs"]["diff_ids"][1] = "sha256:" + "e" * 64
        desc = src.ingest_bytes(canonical_json(config))
        new_config = attrs.evolve(img.config, digest=desc.digest, size=desc.size)
        img = attrs.evolve(img, config=new_config, manifest=None)  # the manifest is rebuilt on write
    out = tmp_path / "hostile.tar"
    write_archive([img], src, out, "oci")
    return out


def _slip_layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../../escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    return buf.getvalue()


@pytest.mark.parametrize(("wrong_diff_id", "error"), [(False, UnsafeArchive), (True, IntegrityError)])
def test_failed_load_leaves_the_store_as_it_was(
    images: ImageCollection, busybox: str, tmp_path: Path, wrong_diff_id: bool, error: type[Exception]
) -> None:
    second = _slip_layer() if not wrong_diff_id else layer_tar([("x", b"y")])
    path = _hostile_layout(tmp_path, second, wrong_diff_id)
    before = (set(images.content.list()), images.snapshots.list_layers(), images.metadata.images.tags())
    with pytest.raises(error):
        images.load(path)
    after = (set(images.content.list()), images.snapshots.list_layers(), images.metadata.images.tags())
    assert after == before
    assert [i.id for i in images.list()] == [busybox]
    assert not (tmp_path / "escaped").exists()


def test_prune_reclaims_garbage(images: ImageCollection, busybox: str) -> None:
    junk = images.content.ingest_bytes(b"left by a crash").digest
    assert images.prune() == []
    assert not images.content.has(junk)
    assert images.get("busybox").id == busybox


def _tag_many(root: Path, image_id: str, prefix: str) -> None:
    collection = _collection(root)
    for i in range(50):
        collection.tag(image_id, f"{prefix}/img:{i}")
    collection.metadata.close()


def test_two_processes_tag_concurrently(images: ImageCollection, busybox: str, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_tag_many, args=(tmp_path / "root", busybox, p)) for p in ("one", "two")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    tags = images.get(busybox).tags
    assert len(tags) == 101
    assert {f"one/img:{i}" for i in range(50)} | {f"two/img:{i}" for i in range(50)} <= set(tags)

"""Interop with the real tools: what containerkit writes, skopeo and umoci read, and back."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from containerkit.images.archive import ArchiveImage, read_archive, write_archive
from containerkit.images.content import ContentStore
from containerkit.spec import ImageConfig
from tests.conftest import require_binary
from tests.images._oci import layer_tar, store_image

pytestmark = pytest.mark.slow


def _run(*args: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{args}: {proc.stderr}"
    return proc.stdout


def _skopeo(*args: str) -> str:
    return _run(require_binary("skopeo"), "--insecure-policy", *args)


@pytest.fixture(scope="module")
def image(
    tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path
) -> tuple[ContentStore, ArchiveImage]:
    content = ContentStore(tmp_path_factory.mktemp("interop") / "content")
    top = layer_tar([("etc/motd", b"from containerkit\n"), ("etc/.wh.os-release", b"")], "gzip")
    return content, store_image(
        content,
        [busybox_rootfs_tar.read_bytes(), top],
        ["example/busybox:v1"],
        ImageConfig(cmd=["sh"], env=["A=1"]),
    )


def _diff_ids(content: ContentStore, image: ArchiveImage) -> list[str]:
    return list(json.loads(content.read_bytes(image.config.digest))["rootfs"]["diff_ids"])


def _check_umoci_rootfs(layout: Path, tag: str, bundle: Path) -> None:
    _run(require_binary("umoci"), "unpack", "--image", f"{layout}:{tag}", str(bundle))
    rootfs = bundle / "rootfs"
    assert (rootfs / "bin/busybox").stat().st_size > 100_000
    assert (rootfs / "bin/sh").is_symlink()
    assert (rootfs / "etc/motd").read_text() == "from containerkit\n"
    assert not (rootfs / "etc/os-release").exists()  # the whiteout was applied
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["args"] == ["sh"]
    assert "A=1" in config["process"]["env"]


def test_docker_archive_to_skopeo_and_umoci(image: tuple[ContentStore, ArchiveImage], tmp_path: Path) -> None:
    content, img = image
    archive = tmp_path / "ck.tar"
    write_archive([img], content, archive)
    info = json.loads(_skopeo("inspect", f"docker-archive:{archive}"))
    assert info["Digest"].startswith("sha256:")
    assert len(info["Layers"]) == 2
    assert "A=1" in info["Env"]
    layout = tmp_path / "oci"
    _skopeo("copy", f"docker-archive:{archive}", f"oci:{layout}:v1")
    _check_umoci_rootfs(layout, "v1", tmp_path / "bundle")
    # and containerkit loads what skopeo wrote, naming the bare tag with the repository given
    back = ContentStore(tmp_path / "back")
    (loaded,) = read_archive(layout, back, name="example/busybox")
    # skopeo rewrites the config when converting to OCI; the layers are the same content
    assert _diff_ids(back, loaded) == _diff_ids(content, img)
    assert [r.familiar for r in loaded.names] == ["example/busybox:v1"]


@pytest.mark.parametrize("as_tar", [False, True])
def test_oci_layout_to_skopeo_and_umoci(
    image: tuple[ContentStore, ArchiveImage], tmp_path: Path, as_tar: bool
) -> None:
    content, img = image
    out = tmp_path / ("ck-oci.tar" if as_tar else "ck-oci")
    write_archive([img], content, out, "oci")
    transport = f"oci-archive:{out}:v1" if as_tar else f"oci:{out}:v1"
    info = json.loads(_skopeo("inspect", transport))
    assert info["Digest"] == img.manifest.digest  # type: ignore[union-attr]
    assert info["Architecture"] == "amd64"
    if not as_tar:
        _check_umoci_rootfs(out, "v1", tmp_path / "bundle")
    copied = tmp_path / "copied.tar"
    _skopeo("copy", transport, f"docker-archive:{copied}:example/copied:v9")
    (loaded,) = read_archive(copied, ContentStore(tmp_path / "back"))
    assert loaded.config.digest == img.config.digest
    assert [r.canonical for r in loaded.names] == ["docker.io/example/copied:v9"]


def test_skopeo_docker_archive_round_trip(image: tuple[ContentStore, ArchiveImage], tmp_path: Path) -> None:
    content, img = image
    write_archive([img], content, tmp_path / "ck.tar")
    _skopeo(
        "copy",
        f"docker-archive:{tmp_path / 'ck.tar'}",
        f"docker-archive:{tmp_path / 'out.tar'}:localhost:5000/x:v2",
    )
    store = ContentStore(tmp_path / "back")
    (loaded,) = read_archive(tmp_path / "out.tar", store)
    assert loaded.config.digest == img.config.digest
    assert [r.familiar for r in loaded.names] == ["localhost:5000/x:v2"]
    assert [layer.digest for layer in loaded.layers] == _diff_ids(content, img)

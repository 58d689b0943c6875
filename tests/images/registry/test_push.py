"""engine.images.push against Debian's docker-registry, read back by skopeo and unpacked by umoci, plus
the fake registry (tests/images/registry/_images.py) for a registry that lies about digests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import containerkit as ck
from containerkit.engine import _distribution
from containerkit.errors import IntegrityError, InvalidReference, NotFound, Unauthorized
from containerkit.images.registry.auth import RegistryAuth, RegistryOptions
from containerkit.spec import ProgressEvent
from tests.images.registry._images import Behaviour, fake_registry, file_layer
from tests.images.registry.servers import Registry

SKOPEO = shutil.which("skopeo")
UMOCI = shutil.which("umoci")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[ck.Engine]:
    with ck.Engine(root=tmp_path / "engine", forkserver=False) as eng:
        eng.images.registry_options = RegistryOptions(config_credentials=False)
        yield eng


def _busybox(engine: ck.Engine, tar: Path, ref: str) -> ck.Image:
    return engine.images.import_rootfs(tar, ref, config={"Cmd": ["sh"]})


def _skopeo_inspect(ref: str, *extra: str) -> dict[str, object]:
    assert SKOPEO is not None
    out = subprocess.run(
        [SKOPEO, "inspect", "--tls-verify=false", *extra, f"docker://{ref}"],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    value = json.loads(out)
    assert isinstance(value, dict)
    return value


def _actions(events: list[ProgressEvent]) -> list[str]:
    return [e.action for e in events]


@pytest.mark.skipif(SKOPEO is None or UMOCI is None, reason="needs skopeo and umoci")
def test_push_is_read_by_skopeo_and_unpacked_by_umoci(
    registry: Registry, engine: ck.Engine, tmp_path: Path, busybox_rootfs_tar: Path
) -> None:
    assert SKOPEO is not None and UMOCI is not None
    image = _busybox(engine, busybox_rootfs_tar, f"{registry.host}/team/app:1.2")
    events: list[ProgressEvent] = []
    digest = engine.images.push(f"{registry.host}/team/app:1.2", progress=events.append)
    assert events[0] == ProgressEvent(
        id="", action=f"The push refers to repository [{registry.host}/team/app]"
    )
    assert "Pushed" in _actions(events)
    size = len(engine.content.read_bytes(digest))
    assert events[-1].action == f"1.2: digest: {digest} size: {size}"
    assert engine.images.get(image.id).digests == (f"{registry.host}/team/app@{digest}",)

    raw = _skopeo_inspect(f"{registry.host}/team/app:1.2", "--raw")
    assert raw["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    info = _skopeo_inspect(f"{registry.host}/team/app:1.2")
    assert info["Digest"] == digest
    layout = tmp_path / "oci"
    subprocess.run(
        [
            SKOPEO,
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            f"docker://{registry.host}/team/app:1.2",
            f"oci:{layout}:app",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    bundle = tmp_path / "bundle"
    subprocess.run(
        [UMOCI, "unpack", "--image", f"{layout}:app", str(bundle)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (bundle / "rootfs" / "bin" / "busybox").is_file()
    again: list[ProgressEvent] = []
    assert engine.images.push(f"{registry.host}/team/app:1.2", progress=again.append) == digest
    assert "Layer already exists" in _actions(again)
    assert "Pushed" not in _actions(again)
    pushes = [e for e in engine.events(until=time.time() + 1) if e.type == "image" and e.action == "push"]
    assert [e.actor_id for e in pushes] == [f"{registry.host}/team/app:1.2"] * 2


def test_chunked_upload_and_pull_back(
    registry: Registry, engine: ck.Engine, tmp_path: Path, busybox_rootfs_tar: Path
) -> None:
    _busybox(engine, busybox_rootfs_tar, f"{registry.host}/team/chunked:1")
    events: list[ProgressEvent] = []
    digest = _distribution.push(
        engine.images,
        f"{registry.host}/team/chunked:1",
        auth=None,
        progress=events.append,
        options=engine.images.registry_options,
        chunk_size=300_000,
    )
    pushing = [e.current or 0 for e in events if e.action == "Pushing"]
    # the layer goes gzipped (about 1 MB: the store keeps no blob), reported every 512 KiB
    assert len(pushing) >= 2 and pushing == sorted(pushing)
    with ck.Engine(root=tmp_path / "other", forkserver=False) as other:
        pulled = other.images.pull(f"{registry.host}/team/chunked@{digest}")
        assert other.images.read_file(pulled.id, "/bin/busybox") == engine.images.read_file(
            pulled.id, "/bin/busybox"
        )


def test_cross_repository_mount_from_the_pulled_source(
    registry: Registry, tmp_path: Path, busybox_rootfs_tar: Path
) -> None:
    with ck.Engine(root=tmp_path / "a", forkserver=False) as a:
        _busybox(a, busybox_rootfs_tar, f"{registry.host}/team/base:1")
        a.images.push(f"{registry.host}/team/base:1")
    with ck.Engine(root=tmp_path / "b", forkserver=False) as b:
        image = b.images.pull(f"{registry.host}/team/base:1")
        b.images.tag(image.id, f"{registry.host}/other/copy:1")
        events: list[ProgressEvent] = []
        b.images.push(f"{registry.host}/other/copy:1", progress=events.append)
    assert "Mounted from team/base" in _actions(events)
    assert "Pushing" not in _actions(events)


@pytest.mark.skipif(SKOPEO is None, reason="needs skopeo")
def test_docker_archive_image_pushes_its_layers_rebuilt_and_gzipped(
    registry: Registry, engine: ck.Engine, tmp_path: Path, busybox_rootfs_tar: Path
) -> None:
    """The store keeps no layer blob: the uncompressed layer is written again from the unpacked
    layer and gzipped (a new digest, as docker's pushes); pulled back, it is the same image."""
    source = tmp_path / "src"
    archive = tmp_path / "image.tar"
    with ck.Engine(root=source, forkserver=False) as other:
        _busybox(other, busybox_rootfs_tar, "example/app:archived")
        other.images.save("example/app:archived", archive)
    (loaded,) = engine.images.load(archive)
    engine.images.tag(loaded.id, f"{registry.host}/team/archived:1")
    engine.images.push(f"{registry.host}/team/archived:1")
    info = _skopeo_inspect(f"{registry.host}/team/archived:1")
    record = engine.metadata.images.get(loaded.id)
    assert record is not None
    assert not any(engine.content.has(x.blob_digest) for x in record.layers)
    layers = info["Layers"]
    assert isinstance(layers, list) and len(layers) == 1
    assert layers[0] != record.layers[0].blob_digest  # the uncompressed blob's digest is the diff id
    again: list[ProgressEvent] = []
    engine.images.push(f"{registry.host}/team/archived:1", progress=again.append)
    assert "Layer already exists" in _actions(again) and "Pushed" not in _actions(again)
    with ck.Engine(root=tmp_path / "back", forkserver=False) as back:
        assert back.images.pull(f"{registry.host}/team/archived:1").id == loaded.id


def test_push_errors(registry_basic: Registry, engine: ck.Engine, busybox_rootfs_tar: Path) -> None:
    with pytest.raises(NotFound, match="An image does not exist locally with the tag"):
        engine.images.push(f"{registry_basic.host}/team/none:1")
    with pytest.raises(InvalidReference):
        engine.images.push(f"{registry_basic.host}/team/none@sha256:" + "a" * 64)
    _busybox(engine, busybox_rootfs_tar, f"{registry_basic.host}/team/private:1")
    with pytest.raises(Unauthorized):
        engine.images.push(f"{registry_basic.host}/team/private:1")
    assert registry_basic.credentials is not None
    auth = RegistryAuth(*registry_basic.credentials)
    digest = engine.images.push(f"{registry_basic.host}/team/private:1", auth=auth)
    assert (
        engine.images.get_registry_data(f"{registry_basic.host}/team/private:1", auth=auth).digest == digest
    )


def test_uploads_keep_the_location_query_and_a_lying_digest_is_refused(
    engine: ck.Engine, tmp_path: Path
) -> None:
    tar = tmp_path / "layer.tar"
    tar.write_bytes(file_layer({"lie": os.urandom(700_000)}))  # pushed gzipped: must not shrink
    engine.images.import_rootfs(tar, "127.0.0.1:1/placeholder:1")
    with fake_registry(Behaviour(manifest_digest_header="sha256:" + "1" * 64)) as fake:
        engine.images.tag("127.0.0.1:1/placeholder:1", f"{fake.host}/team/app:1")
        with pytest.raises(IntegrityError, match="answered digest sha256:1111"):
            _distribution.push(
                engine.images,
                f"{fake.host}/team/app:1",
                auth=None,
                progress=None,
                options=engine.images.registry_options,
                chunk_size=256 << 10,
            )
        uploads = [(m, p, h) for m, p, h in fake.requests if m in ("PATCH", "PUT") and "/blobs/" in p]
        # every PATCH and PUT went to the relative Location with its _state query, chunks in order
        assert uploads and all("_state=" in p for _, p, _ in uploads)
        sessions: dict[str, list[str]] = {}
        for method, path, headers in uploads:
            if method == "PATCH":
                sessions.setdefault(path.split("?")[0], []).append(headers["Content-Range"])
        layer_ranges = max(sessions.values(), key=len)
        size = (tmp_path / "layer.tar").stat().st_size
        assert layer_ranges[:2] == ["0-262143", "262144-524287"] and len(layer_ranges) == 3
        end = int(layer_ranges[2].split("-")[1])
        assert layer_ranges[2].startswith("524288-") and 700_000 < end < size
        assert len(fake.blobs) == 2  # the layer and the config arrived whole before the manifest


def test_login_checks_and_stores_like_docker(
    registry_basic: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    assert registry_basic.credentials is not None
    user, password = registry_basic.credentials
    with ck.Engine(root=tmp_path / "engine", forkserver=False) as engine:
        with pytest.raises(Unauthorized):
            engine.registries.login(registry_basic.host, user, "wrong")
        assert not (tmp_path / "docker-config" / "config.json").exists()
        assert engine.registries.login(registry_basic.host, user, password) == "Login Succeeded"
        config = json.loads((tmp_path / "docker-config" / "config.json").read_text())
        assert registry_basic.host in config["auths"]
        # a push with no auth= finds the stored credentials, as docker's CLI does
        tar = tmp_path / "layer.tar"
        tar.write_bytes(file_layer({"hello": b"world"}))
        engine.images.import_rootfs(tar, f"{registry_basic.host}/team/login:1")
        engine.images.push(f"{registry_basic.host}/team/login:1")
        assert engine.registries.logout(registry_basic.host) is True
        with pytest.raises(Unauthorized):
            engine.images.push(f"{registry_basic.host}/team/login:1")


@pytest.mark.skipif(SKOPEO is None, reason="needs skopeo")
def test_a_store_that_keeps_layer_blobs_pushes_them_as_they_are(
    registry: Registry, tmp_path: Path, busybox_rootfs_tar: Path
) -> None:
    """keep_layer_blobs: imported and pulled layers keep their blobs, and a push uploads the
    stored blob itself (its digest in the registry's manifest), not a rebuilt gzip."""
    with ck.Engine(root=tmp_path / "keep", forkserver=False, keep_layer_blobs=True) as keep:
        keep.images.registry_options = RegistryOptions(config_credentials=False)
        image = _busybox(keep, busybox_rootfs_tar, f"{registry.host}/team/kept:1")
        record = keep.metadata.images.get(image.id)
        assert record is not None and all(keep.content.has(x.blob_digest) for x in record.layers)
        events: list[ProgressEvent] = []
        keep.images.push(f"{registry.host}/team/kept:1", progress=events.append)
        assert "Pushed" in _actions(events)
        info = _skopeo_inspect(f"{registry.host}/team/kept:1")
        assert info["Layers"] == [x.blob_digest for x in record.layers]
    with ck.Engine(root=tmp_path / "pulled", forkserver=False, keep_layer_blobs=True) as pulled:
        pulled.images.registry_options = RegistryOptions(config_credentials=False)
        again = pulled.images.pull(f"{registry.host}/team/kept:1")
        assert again.id == image.id
        kept = pulled.metadata.images.get(again.id)
        assert kept is not None and all(pulled.content.has(x.blob_digest) for x in kept.layers)
        pulled.images.prune()  # nothing dangling: the kept blobs stay
        assert all(pulled.content.has(x.blob_digest) for x in kept.layers)

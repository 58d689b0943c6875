"""engine.images.pull against Debian's docker-registry (anonymous, Basic, token, redirect), skopeo as
the peer that pushed, and a small fake registry (tests/images/registry/_images.py) for breaks,
Range and lies that distribution 2.8 never produces."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import containerkit as ck
from containerkit.errors import IntegrityError, InvalidArgument, NotFound, Unauthorized
from containerkit.images.content import ContentStore, Descriptor
from containerkit.images.manifest import MEDIA_OCI_INDEX, canonical_json
from containerkit.images.reference import parse_reference
from containerkit.images.registry.auth import RegistryAuth, RegistryOptions
from containerkit.images.registry.pull import Progress
from containerkit.images.registry.push import Pusher
from containerkit.images.registry.transport import RegistryTransport
from containerkit.spec import ProgressEvent
from tests.images.registry._images import (
    Behaviour,
    BuiltImage,
    build_image,
    fake_registry,
    file_layer,
    ingest_files,
    sha,
    store_into,
)
from tests.images.registry.servers import Registry

SKOPEO = shutil.which("skopeo")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[ck.Engine]:
    with ck.Engine(root=tmp_path / "engine", forkserver=False) as eng:
        yield eng


def _publish(registry: Registry, name: str, image: BuiltImage, tmp_path: Path, reference: str = "") -> str:
    """Push a built image's blobs and manifest with the registry client's own Pusher (tag or digest)."""
    ref = parse_reference(f"{registry.host}/{name}")
    store = ContentStore(tmp_path / f"publish-{image.manifest_digest[7:19]}")
    store_into(store, image)
    auth = RegistryAuth(*registry.credentials) if registry.credentials else None
    with RegistryTransport(registry.host, auth=auth, options=RegistryOptions()) as transport:
        pusher = Pusher(transport, ref, store, progress=Progress(None))
        for digest, blob in image.blobs().items():
            pusher.push_blob(Descriptor(digest, len(blob)))
        return pusher.push_manifest(
            image.manifest, "application/vnd.oci.image.manifest.v1+json", reference or ref.tag or "latest"
        )


def _actions(events: list[ProgressEvent]) -> list[tuple[str, str]]:
    return [(e.id, e.action) for e in events]


def test_pull_progress_tags_repodigests_and_up_to_date(
    registry: Registry, engine: ck.Engine, tmp_path: Path
) -> None:
    image = build_image([file_layer({"a.txt": b"a" * 3000}), file_layer({"b.txt": b"b" * 5000})])
    _publish(registry, "team/app:1.2", image, tmp_path)
    events: list[ProgressEvent] = []
    pulled = engine.images.pull(f"{registry.host}/team/app:1.2", progress=events.append)
    assert pulled.id == image.config_digest
    assert pulled.tags == (f"{registry.host}/team/app:1.2",)
    assert pulled.digests == (f"{registry.host}/team/app@{image.manifest_digest}",)
    layer_ids = [d[7:19] for d in (x for x in image.blobs() if x != image.config_digest)]
    actions = _actions(events)
    assert actions[0] == ("1.2", "Pulling from team/app")
    for layer_id in layer_ids:
        steps = [a for i, a in actions if i == layer_id]
        assert steps[0] == "Pulling fs layer"
        assert (
            steps.index("Verifying Checksum") < steps.index("Download complete") < steps.index("Extracting")
        )
        assert steps[-1] == "Pull complete"
    assert actions[-2:] == [
        ("", f"Digest: {image.manifest_digest}"),
        ("", f"Status: Downloaded newer image for {registry.host}/team/app:1.2"),
    ]
    downloading = [e for e in events if e.action == "Downloading"]
    assert downloading and all(e.total is not None and e.current is not None for e in downloading)
    assert engine.images.read_file(pulled.id, "/b.txt") == b"b" * 5000
    pulls = [e for e in engine.events(until=time.time() + 1) if e.type == "image" and e.action == "pull"]
    name = f"{registry.host}/team/app:1.2"
    assert [(e.actor_id, e.attributes["name"]) for e in pulls] == [(name, name)]

    again: list[ProgressEvent] = []
    engine.images.pull(f"{registry.host}/team/app:1.2", progress=again.append)
    assert {a for _, a in _actions(again)} >= {"Already exists"}
    assert "Downloading" not in {a for _, a in _actions(again)}
    assert _actions(again)[-1] == ("", f"Status: Image is up to date for {registry.host}/team/app:1.2")


def test_pull_by_digest_and_by_tag_agree(registry: Registry, engine: ck.Engine, tmp_path: Path) -> None:
    image = build_image([file_layer({"x": b"1"})])
    digest = _publish(registry, "team/app:v1", image, tmp_path)
    assert digest == image.manifest_digest
    by_digest = engine.images.pull(f"{registry.host}/team/app@{digest}")
    assert by_digest.tags == ()
    assert by_digest.digests == (f"{registry.host}/team/app@{digest}",)
    assert engine.images.get(f"{registry.host}/team/app@{digest}").id == image.config_digest
    layer = sha(image.layers[0])
    assert engine.images.sources.get(layer) == [f"{registry.host}/team/app"]  # for mounts on push
    engine.images.remove(f"{registry.host}/team/app@{digest}")
    assert not engine.content.has(layer)
    assert engine.images.sources.get(layer) == []


def test_pulled_busybox_runs(registry: Registry, tmp_path: Path, busybox_rootfs_tar: Path) -> None:
    with ck.Engine(root=tmp_path / "a", forkserver=False) as a:
        a.images.import_rootfs(
            busybox_rootfs_tar, f"{registry.host}/library/busybox:1", config={"Cmd": ["sh"]}
        )
        a.images.push(f"{registry.host}/library/busybox:1")
    with ck.Engine(root=tmp_path / "b") as b:
        b.images.pull(f"{registry.host}/library/busybox:1")
        container = b.containers.run(f"{registry.host}/library/busybox:1", ["echo", "pulled"], network="none")
        try:
            assert container.wait(timeout=30) == 0
            assert container.logs() == b"pulled\n"
        finally:
            container.remove(force=True)


@pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed")
def test_pull_what_skopeo_pushed_from_a_docker_archive(
    registry: Registry, tmp_path: Path, busybox_rootfs_tar: Path
) -> None:
    archive = tmp_path / "busybox.tar"
    with ck.Engine(root=tmp_path / "a", forkserver=False) as a:
        a.images.import_rootfs(busybox_rootfs_tar, "example/busybox:peer", config={"Cmd": ["sh"]})
        a.images.save("example/busybox:peer", archive)
    subprocess.run(
        [
            str(SKOPEO),
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            f"docker-archive:{archive}",
            f"docker://{registry.host}/peer/busybox:skopeo",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with ck.Engine(root=tmp_path / "b") as b:
        image = b.images.pull(f"{registry.host}/peer/busybox:skopeo")
        assert image.config.cmd == ("sh",) or list(image.config.cmd or []) == ["sh"]
        container = b.containers.run(image.id, ["sh", "-c", "echo from-skopeo"], network="none")
        try:
            assert container.wait(timeout=30) == 0
            assert container.logs() == b"from-skopeo\n"
        finally:
            container.remove(force=True)


def test_corrupted_blob_is_refused_with_its_digest(
    registry: Registry, engine: ck.Engine, tmp_path: Path
) -> None:
    image = build_image([file_layer({"good": b"g" * 100}), file_layer({"bad": b"x" * 4000})])
    _publish(registry, "team/corrupt:1", image, tmp_path)
    bad = image.layers[1]
    bad_digest = "sha256:" + hashlib.sha256(bad).hexdigest()
    data = registry.blob_path(bad_digest)
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    os.chmod(data, 0o644)
    data.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError) as info:
        engine.images.pull(f"{registry.host}/team/corrupt:1")
    assert bad_digest in str(info.value)
    assert not engine.content.has(bad_digest)
    assert ingest_files(engine.root) == []
    with pytest.raises(NotFound):
        engine.images.get(f"{registry.host}/team/corrupt:1")


def test_basic_auth_required_and_used(registry_basic: Registry, engine: ck.Engine, tmp_path: Path) -> None:
    image = build_image([file_layer({"basic": b"1"})])
    _publish(registry_basic, "private/app:1", image, tmp_path)
    engine.images.registry_options = RegistryOptions(config_credentials=False)
    with pytest.raises(Unauthorized):
        engine.images.pull(f"{registry_basic.host}/private/app:1")
    assert registry_basic.credentials is not None
    pulled = engine.images.pull(
        f"{registry_basic.host}/private/app:1", auth=RegistryAuth(*registry_basic.credentials)
    )
    assert pulled.id == image.config_digest


def test_token_auth_push_with_credentials_pull_anonymously(
    registry_token: Registry, engine: ck.Engine, tmp_path: Path
) -> None:
    image = build_image([file_layer({"token": b"t"})])
    _publish(registry_token, "team/tok:1", image, tmp_path)
    engine.images.registry_options = RegistryOptions(config_credentials=False)
    pulled = engine.images.pull(f"{registry_token.host}/team/tok:1")
    assert pulled.id == image.config_digest


def test_blob_redirect_to_another_host_without_authorization(
    registry_redirect: Registry, engine: ck.Engine, tmp_path: Path
) -> None:
    image = build_image([file_layer({"redirected": b"r" * 2000})])
    _publish(registry_redirect, "team/redir:1", image, tmp_path)
    pulled = engine.images.pull(f"{registry_redirect.host}/team/redir:1")
    assert pulled.id == image.config_digest
    blob_host = registry_redirect.blob_host
    assert blob_host is not None and blob_host.requests
    assert all(not any(k.lower() == "authorization" for k in h) for h in blob_host.requests)


def test_multi_platform_index(registry: Registry, engine: ck.Engine, tmp_path: Path) -> None:
    amd = build_image([file_layer({"arch": b"amd64"})], architecture="amd64")
    arm = build_image([file_layer({"arch": b"arm64"})], architecture="arm64", variant="v8")
    armv7 = build_image([file_layer({"arch": b"armv7"})], architecture="arm", variant="v7")
    for built in (amd, arm, armv7):
        _publish(registry, "multi/app", built, tmp_path, reference=built.manifest_digest)

    def entry(built: BuiltImage, platform: dict[str, str]) -> dict[str, object]:
        return {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": built.manifest_digest,
            "size": len(built.manifest),
            "platform": platform,
        }

    attestation = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": amd.manifest_digest,
        "size": len(amd.manifest),
        "platform": {"os": "unknown", "architecture": "unknown"},
        "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
    }
    index = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_INDEX,
            "manifests": [
                attestation,
                entry(armv7, {"os": "linux", "architecture": "arm", "variant": "v7"}),
                entry(arm, {"os": "linux", "architecture": "arm64", "variant": "v8"}),
                entry(amd, {"os": "linux", "architecture": "amd64"}),
            ],
        }
    )
    ref = parse_reference(f"{registry.host}/multi/app:1")
    with RegistryTransport(registry.host, options=RegistryOptions()) as transport:
        index_digest = Pusher(transport, ref, engine.content, progress=Progress(None)).push_manifest(
            index, MEDIA_OCI_INDEX, "1"
        )
    data = engine.images.get_registry_data(f"{registry.host}/multi/app:1")
    assert data.digest == index_digest and data.media_type == MEDIA_OCI_INDEX and data.size == len(index)
    assert list(data.platforms) == [
        {"architecture": "arm", "os": "linux", "variant": "v7"},
        {"architecture": "arm64", "os": "linux"},
        {"architecture": "amd64", "os": "linux"},
    ]
    assert engine.images.pull(f"{registry.host}/multi/app:1", platform="linux/arm64").id == arm.config_digest
    arm_image = engine.images.get(arm.config_digest)
    assert arm_image.digests == (f"{registry.host}/multi/app@{index_digest}",)
    assert (
        engine.images.pull(f"{registry.host}/multi/app:1", platform="linux/arm/v8").id == armv7.config_digest
    )
    assert engine.images.pull(f"{registry.host}/multi/app:1", platform="linux/amd64").id == amd.config_digest
    with pytest.raises(
        NotFound, match=r"^no matching manifest for linux/s390x in the manifest list entries$"
    ):
        engine.images.pull(f"{registry.host}/multi/app:1", platform="linux/s390x")
    with pytest.raises(InvalidArgument, match="invalid platform"):
        engine.images.pull(f"{registry.host}/multi/app:1", platform="linux/amd64/v2/extra")


def test_schema1_refused(engine: ck.Engine) -> None:
    # distribution 2.8 serves schema1 only to clients that do not accept schema2 (we always do),
    # so the fake registry plays an old registry that has nothing else
    body = json.dumps(
        {"schemaVersion": 1, "name": "old/app", "tag": "1", "fsLayers": [], "history": []}
    ).encode()
    with fake_registry() as fake:
        fake.manifests["1"] = (body, "application/vnd.docker.distribution.manifest.v1+prettyjws")
        with pytest.raises(InvalidArgument, match="schema 1 support has been removed"):
            engine.images.pull(f"{fake.host}/old/app:1")


# ---------------------------------------------------------------------------------- fake registry


def test_broken_body_resumes_with_range(engine: ck.Engine) -> None:
    image = build_image([file_layer({"big": os.urandom(600_000)})])
    layer = image.layers[0]
    digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    with fake_registry(Behaviour(break_after={digest: 200_000})) as fake:
        fake.add_image("1", image)
        pulled = engine.images.pull(f"{fake.host}/team/app:1")
        gets = fake.blob_gets(digest)
    assert pulled.id == image.config_digest
    assert len(gets) == 2
    assert "Range" not in gets[0]
    start = int(gets[1]["Range"].removeprefix("bytes=").removesuffix("-"))
    assert 0 < start <= 200_000  # from what arrived whole (the last partial read may be dropped)


def test_range_ignored_restarts_from_zero(engine: ck.Engine) -> None:
    image = build_image([file_layer({"big": os.urandom(300_000)})])
    digest = "sha256:" + hashlib.sha256(image.layers[0]).hexdigest()
    with fake_registry(Behaviour(break_after={digest: 100_000}, ignore_range=True)) as fake:
        fake.add_image("1", image)
        assert engine.images.pull(f"{fake.host}/team/app:1").id == image.config_digest
        assert len(fake.blob_gets(digest)) == 2


def test_mismatched_content_range_is_not_trusted(engine: ck.Engine) -> None:
    image = build_image([file_layer({"big": os.urandom(300_000)})])
    digest = "sha256:" + hashlib.sha256(image.layers[0]).hexdigest()
    with fake_registry(Behaviour(break_after={digest: 100_000}, wrong_range_start=True)) as fake:
        fake.add_image("1", image)
        assert engine.images.pull(f"{fake.host}/team/app:1").id == image.config_digest
        gets = fake.blob_gets(digest)
    # the 206 that starts elsewhere is dropped and the blob fetched again from byte 0
    assert [g.get("Range", "")[:6] for g in gets] == ["", "bytes=", ""]


def test_416_on_resume_is_an_error_naming_the_blob(engine: ck.Engine) -> None:
    image = build_image([file_layer({"big": os.urandom(300_000)})])
    digest = "sha256:" + hashlib.sha256(image.layers[0]).hexdigest()
    with fake_registry(Behaviour(break_after={digest: 100_000}, range_416=True)) as fake:
        fake.add_image("1", image)
        with pytest.raises(ck.ContainerkitError) as info:
            engine.images.pull(f"{fake.host}/team/app:1")
    assert "416" in str(info.value)
    assert ingest_files(engine.root) == []


def test_docker_content_digest_lie_is_refused(engine: ck.Engine) -> None:
    image = build_image([file_layer({"a": b"1"})])
    with fake_registry(Behaviour(manifest_digest_header="sha256:" + "0" * 64)) as fake:
        fake.add_image("1", image)
        with pytest.raises(IntegrityError, match="Docker-Content-Digest"):
            engine.images.pull(f"{fake.host}/team/app:1")


def test_layers_in_the_store_are_not_fetched(engine: ck.Engine) -> None:
    shared = file_layer({"shared": b"s" * 1000})
    first = build_image([shared, file_layer({"one": b"1"})])
    second = build_image([shared, file_layer({"two": b"2"})])
    shared_digest = "sha256:" + hashlib.sha256(first.layers[0]).hexdigest()
    with fake_registry() as fake:
        fake.add_image("1", first)
        fake.add_image("2", second)
        engine.images.pull(f"{fake.host}/team/app:1")
        events: list[ProgressEvent] = []
        engine.images.pull(f"{fake.host}/team/app:2", progress=events.append)
        assert len(fake.blob_gets(shared_digest)) == 1
    assert (shared_digest[7:19], "Already exists") in _actions(events)


def test_concurrent_downloads_are_limited(engine: ck.Engine) -> None:
    image = build_image([file_layer({f"f{n}": os.urandom(200_000)}) for n in range(5)])
    engine.images.registry_options = RegistryOptions(max_concurrent_downloads=2)
    events: list[ProgressEvent] = []
    with fake_registry(Behaviour(throttle=0.002)) as fake:
        fake.add_image("1", image)
        engine.images.pull(f"{fake.host}/team/app:1", progress=events.append)
    waiting = [e.id for e in events if e.action == "Waiting"]
    assert len(waiting) == 3


_KILLED_PULL = textwrap.dedent(
    """
    import sys
    import containerkit as ck
    from containerkit.images.registry.auth import RegistryOptions
    with ck.Engine(root=sys.argv[1], forkserver=False) as engine:
        engine.images.registry_options = RegistryOptions(max_concurrent_downloads=1)
        def progress(event):
            print(event.id, event.action, flush=True)
        engine.images.pull(sys.argv[2], progress=progress)
    """
)


def test_sigkill_mid_pull_leaves_no_half_image_and_the_next_pull_reuses_layers(tmp_path: Path) -> None:
    small = file_layer({"first": b"f" * 2000})
    big = file_layer({"second": os.urandom(3_000_000)})
    image = build_image([small, big])
    small_digest = "sha256:" + hashlib.sha256(image.layers[0]).hexdigest()
    big_digest = "sha256:" + hashlib.sha256(image.layers[1]).hexdigest()
    root = tmp_path / "killed"
    with fake_registry(Behaviour(throttle=0.2)) as fake:
        fake.add_image("1", image)
        ref = f"{fake.host}/team/app:1"
        child = subprocess.Popen(
            [sys.executable, "-c", _KILLED_PULL, str(root), ref], stdout=subprocess.PIPE, text=True
        )
        try:
            assert child.stdout is not None
            for line in child.stdout:
                if line.startswith(big_digest[7:19]) and "Downloading" in line:
                    break
            else:
                pytest.fail("the child never started downloading the big layer")
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            child.wait(timeout=30)
        assert ingest_files(root) != []  # the half blob was there at the kill
        with ck.Engine(root=root, forkserver=False) as engine:
            assert ingest_files(root) == []
            assert engine.content.has(small_digest)
            assert not engine.content.has(big_digest)
            with pytest.raises(NotFound):
                engine.images.get(ref)
            assert engine.images.list() == []
            fake.behaviour.throttle = 0.0
            gets_before = len(fake.blob_gets(small_digest))
            assert engine.images.pull(ref).id == image.config_digest
            assert len(fake.blob_gets(small_digest)) == gets_before


def test_short_names_pull_through_a_docker_io_mirror(registry: Registry, tmp_path: Path) -> None:
    image = build_image([file_layer({"mirrored": b"m"})])
    _publish(registry, "library/busybox:1", image, tmp_path)
    options = RegistryOptions(registry_mirrors=[registry.url], config_credentials=False)
    with ck.Engine(root=tmp_path / "engine", forkserver=False, registry_options=options) as engine:
        events: list[ProgressEvent] = []
        pulled = engine.images.pull("busybox:1", progress=events.append)
        assert pulled.tags == ("busybox:1",)
        assert pulled.digests == (f"busybox@{image.manifest_digest}",)
        assert engine.images.get("docker.io/library/busybox:1").id == image.config_digest
    assert events[0] == ProgressEvent(id="1", action="Pulling from library/busybox")
    assert events[-1].action == "Status: Downloaded newer image for busybox:1"

"""A pulled image keeps no layer blob (as docker's overlay2), and still pulls, pushes and saves.

Against Debian's docker-registry on 127.0.0.1: after a pull the content store holds the
manifest and config only; pulling again downloads nothing; pushing to the same registry finds
(HEAD) or mounts the pulled blobs by the digests recorded at pull time, so the pushed manifest
is the pulled one; a registry that lacks them gets the layers rebuilt and gzipped
deterministically (a second push of them is "Layer already exists"); a save writes the layers
rebuilt, uncompressed, and loads back as the same image.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import containerkit as ck
from containerkit.errors import IntegrityError
from containerkit.images.content import ContentStore, Descriptor
from containerkit.images.reference import parse_reference
from containerkit.images.registry.auth import RegistryAuth, RegistryOptions
from containerkit.images.registry.pull import Progress
from containerkit.images.registry.push import Pusher
from containerkit.images.registry.transport import RegistryTransport
from containerkit.spec import ProgressEvent
from tests.conftest import child_pids
from tests.images.registry._images import BuiltImage, build_image, file_layer, sha, store_into
from tests.images.registry.servers import Registry


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[ck.Engine]:
    with ck.Engine(root=tmp_path / "engine", forkserver=False) as eng:
        eng.images.registry_options = RegistryOptions(config_credentials=False)
        yield eng


def _publish(registry: Registry, name: str, image: BuiltImage, tmp_path: Path) -> str:
    ref = parse_reference(f"{registry.host}/{name}")
    store = ContentStore(tmp_path / f"publish-{image.manifest_digest[7:19]}")
    store_into(store, image)
    auth = RegistryAuth(*registry.credentials) if registry.credentials else None
    with RegistryTransport(registry.host, auth=auth, options=RegistryOptions()) as transport:
        pusher = Pusher(transport, ref, store, progress=Progress(None))
        for digest, blob in image.blobs().items():
            pusher.push_blob(Descriptor(digest, len(blob)))
        return pusher.push_manifest(
            image.manifest, "application/vnd.oci.image.manifest.v1+json", ref.tag or ""
        )


def _image() -> BuiltImage:
    return build_image(
        [
            file_layer({"bin/one": os.urandom(40_000)}),
            file_layer({"etc/two": b"two\n" * 1000}),
            file_layer({"srv/three": os.urandom(9_000)}),
        ]
    )


def _layer_blobs(engine: ck.Engine, image: BuiltImage) -> list[str]:
    return [sha(b) for b in image.layers if engine.content.has(sha(b))]


def _actions(events: list[ProgressEvent]) -> set[str]:
    return {e.action for e in events}


def test_a_pulled_image_keeps_no_layer_blob_and_pulls_again_without_downloading(
    registry: Registry, engine: ck.Engine, tmp_path: Path
) -> None:
    image = _image()
    _publish(registry, "team/app:1", image, tmp_path)
    pulled = engine.images.pull(f"{registry.host}/team/app:1")
    assert _layer_blobs(engine, image) == []
    assert engine.content.has(image.config_digest) and engine.content.has(image.manifest_digest)
    assert engine.images.read_file(pulled.id, "/etc/two") == b"two\n" * 1000
    engine.images.tag(pulled.id, f"{registry.host}/team/app:again")
    again: list[ProgressEvent] = []
    assert engine.images.pull(f"{registry.host}/team/app:1", progress=again.append).id == pulled.id
    assert "Already exists" in _actions(again)
    assert not _actions(again) & {"Pulling fs layer", "Downloading"}


def test_push_to_the_same_registry_reuses_the_pulled_blobs(
    registry: Registry, engine: ck.Engine, tmp_path: Path
) -> None:
    image = _image()
    _publish(registry, "team/app:1", image, tmp_path)
    pulled = engine.images.pull(f"{registry.host}/team/app:1")
    engine.images.tag(pulled.id, f"{registry.host}/other/copy:1")
    events: list[ProgressEvent] = []
    digest = engine.images.push(f"{registry.host}/other/copy:1", progress=events.append)
    assert digest == image.manifest_digest  # the pulled blobs, the pulled manifest
    assert "Mounted from team/app" in _actions(events)
    assert not _actions(events) & {"Pushing", "Pushed"}
    assert _layer_blobs(engine, image) == []


def test_a_registry_without_the_blobs_gets_them_rebuilt_and_the_save_loads_back(
    registry: Registry, registry_factory: Callable[..., Registry], engine: ck.Engine, tmp_path: Path
) -> None:
    image = _image()
    _publish(registry, "team/app:1", image, tmp_path)
    pulled = engine.images.pull(f"{registry.host}/team/app:1")
    second = registry_factory()
    engine.images.tag(pulled.id, f"{second.host}/team/app:1")
    events: list[ProgressEvent] = []
    digest = engine.images.push(f"{second.host}/team/app:1", progress=events.append)
    assert "Pushed" in _actions(events)
    assert digest != image.manifest_digest  # rebuilt gzip blobs: new digests, as docker's pushes
    assert _layer_blobs(engine, image) == [] and not list((engine.content.root / "ingest").iterdir())
    again: list[ProgressEvent] = []
    assert engine.images.push(f"{second.host}/team/app:1", progress=again.append) == digest  # deterministic
    assert "Layer already exists" in _actions(again) and "Pushed" not in _actions(again)
    with ck.Engine(root=tmp_path / "back", forkserver=False) as back:
        assert back.images.pull(f"{second.host}/team/app:1").id == pulled.id
    for fmt, name in (("docker-archive", "image.tar"), ("oci", "layout")):
        engine.images.save(f"{registry.host}/team/app:1", tmp_path / name, format=fmt)  # type: ignore[arg-type]
        with ck.Engine(root=tmp_path / f"load-{fmt}", forkserver=False) as other:
            (loaded,) = other.images.load(tmp_path / name)
            assert loaded.id == pulled.id
            assert other.images.read_file(loaded.id, "/etc/two") == b"two\n" * 1000


def _stored_blobs(registry: Registry) -> list[Path]:
    return list((registry.storage / "docker" / "registry" / "v2" / "blobs").glob("sha256/*/*/data"))


def test_rebuilt_layers_stream_the_same_bytes_from_another_store(
    registry: Registry, registry_factory: Callable[..., Registry], tmp_path: Path
) -> None:
    """Each push gzips the rebuilt tar as it uploads it (one streamed PATCH per layer, its digest
    known at the end), deterministically: another store pushing the same image to another
    registry sends the same blobs, so the same manifest."""
    image = _image()
    _publish(registry, "team/app:1", image, tmp_path)
    digests = []
    for n in range(2):
        target = registry_factory()
        with ck.Engine(root=tmp_path / f"store{n}", forkserver=False) as eng:
            eng.images.registry_options = RegistryOptions(config_credentials=False)
            pulled = eng.images.pull(f"{registry.host}/team/app:1")
            eng.images.tag(pulled.id, f"{target.host}/team/app:1")
            digests.append(eng.images.push(f"{target.host}/team/app:1"))
        assert len(_stored_blobs(target)) == 5  # three layers, the config, the manifest
        log = target.log.read_text()
        assert log.count('"PATCH /v2/team/app/blobs/uploads/') == 3
    assert digests[0] == digests[1] != image.manifest_digest


def test_a_layer_changed_on_disk_is_refused_and_no_part_of_it_is_stored(
    registry: Registry, registry_factory: Callable[..., Registry], engine: ck.Engine, tmp_path: Path
) -> None:
    """The rebuilt tar is checked against the diff id only at its end, after its bytes went out:
    the upload is then cancelled, never committed, and the registry holds no blob of it."""
    image = _image()
    _publish(registry, "team/app:1", image, tmp_path)
    pulled = engine.images.pull(f"{registry.host}/team/app:1")
    record = engine.metadata.images.get(pulled.id)
    assert record is not None
    changed = engine.images.snapshots.layer_dir(record.layers[0].chain_id) / "bin" / "one"
    data = bytearray(changed.read_bytes())
    data[-1] ^= 1  # same size: only the digest of the whole tar tells
    changed.write_bytes(bytes(data))
    second = registry_factory()
    engine.images.tag(pulled.id, f"{second.host}/team/app:1")
    before = child_pids()
    with pytest.raises(IntegrityError, match=f"layer {record.layers[0].diff_id}: the tar rebuilt from"):
        engine.images.push(f"{second.host}/team/app:1")
    assert child_pids() <= before  # every layer's rebuild process was reaped
    diff_ids = {x.diff_id for x in record.layers}
    for blob in _stored_blobs(second):  # the other layers may have gone: each whole and right
        assert "sha256:" + hashlib.sha256(gzip.decompress(blob.read_bytes())).hexdigest() in diff_ids
    assert len(_stored_blobs(second)) < 3
    assert '"DELETE /v2/team/app/blobs/uploads/' in second.log.read_text()  # the session was cancelled


def test_an_upload_that_fails_mid_layer_stops_its_rebuild_at_once(
    registry: Registry, registry_factory: Callable[..., Registry], engine: ck.Engine, tmp_path: Path
) -> None:
    """The registry dies while a layer far larger than the pipe is being sent: the push fails
    and the layer's rebuild process is gone when it returns, not when the error is dropped."""
    image = build_image([file_layer({f"big/{n}": os.urandom(1 << 20) for n in range(16)})])
    _publish(registry, "team/big:1", image, tmp_path)
    pulled = engine.images.pull(f"{registry.host}/team/big:1")
    second = registry_factory()
    assert second.proc is not None
    engine.images.tag(pulled.id, f"{second.host}/team/big:1")
    before = child_pids()

    def kill_registry(event: ProgressEvent) -> None:
        if event.action == "Pushing" and second.proc is not None and second.proc.poll() is None:
            second.proc.kill()
            second.proc.wait()

    with pytest.raises(Exception) as failed:  # whatever the transport makes of a dead registry
        engine.images.push(f"{second.host}/team/big:1", progress=kill_registry)
    assert second.proc.returncode is not None  # it did die mid-upload
    assert child_pids() <= before - {second.proc.pid}
    assert failed.value.__traceback__ is not None  # still held, as a caller holds it

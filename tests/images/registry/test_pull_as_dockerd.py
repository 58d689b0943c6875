"""engine.images.pull where its first users found it differed from dockerd: the words for a missing
tag, ``Pulling from`` only once the manifest is found, a single-platform image refused for another
platform, an unparsable platform named, a login that only checks, a cancelled pull keeping what it
verified, and recovery removing the temp files a killed writer of the blob-source hints left.

Against Debian's docker-registry, and the fake registry (tests/images/registry/_images.py) where a
blob body has to stall until the client hangs up, which a real registry never does on purpose."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import containerkit as ck
from containerkit.errors import InvalidArgument, NotFound, RegistryError, Unauthorized
from containerkit.images.registry.auth import RegistryOptions
from containerkit.images.registry.pull import Cancelled
from containerkit.spec import ProgressEvent
from tests.images.registry._images import (
    Behaviour,
    build_image,
    fake_registry,
    file_layer,
    ingest_files,
    sha,
)
from tests.images.registry.servers import Registry
from tests.images.registry.test_pull import _publish


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[ck.Engine]:
    with ck.Engine(root=tmp_path / "engine", forkserver=False) as eng:
        yield eng


def test_a_missing_tag_is_dockerds_not_found_before_any_progress(
    registry: Registry, engine: ck.Engine, tmp_path: Path
) -> None:
    _publish(registry, "team/app:1", build_image([file_layer({"a": b"a"})]), tmp_path)
    for ref in (f"{registry.host}/team/app:nope", f"{registry.host}/team/none:latest"):
        events: list[ProgressEvent] = []
        with pytest.raises(NotFound) as missing:
            engine.images.pull(ref, progress=events.append)
        assert missing.value.message == f"manifest for {ref} not found: manifest unknown: manifest unknown"
        assert events == []  # not even "Pulling from": dockerd says it once the manifest is found
    events = []
    engine.images.pull(f"{registry.host}/team/app:1", progress=events.append)
    assert (events[0].id, events[0].action) == ("1", "Pulling from team/app")


def test_a_single_platform_image_is_refused_for_another_platform(
    registry: Registry, engine: ck.Engine, tmp_path: Path
) -> None:
    _publish(registry, "team/amd:1", build_image([file_layer({"a": b"amd"})], architecture="amd64"), tmp_path)
    _publish(registry, "team/arm:1", build_image([file_layer({"a": b"arm"})], architecture="arm64"), tmp_path)
    ref = f"{registry.host}/team/amd:1"
    events: list[ProgressEvent] = []
    with pytest.raises(NotFound) as wrong:
        engine.images.pull(ref, platform="linux/arm64", progress=events.append)
    assert wrong.value.message == (
        f"image with reference {ref} was found but does not match the specified platform: "
        "wanted linux/arm64, actual: linux/amd64"
    )
    assert events == [] and engine.images.list() == []
    assert engine.images.pull(ref, platform="linux/amd64").tags == (ref,)
    arm = f"{registry.host}/team/arm:1"
    assert engine.images.pull(arm, platform="linux/arm64/v8").tags == (arm,)  # v8 is arm64's default
    with pytest.raises(NotFound, match="wanted linux/amd64, actual: linux/arm64"):
        engine.images.pull(arm, platform="linux/amd64")
    assert engine.images.pull(arm).tags == (arm,)  # no platform asked: taken as it is, as dockerd


def test_an_unparsable_platform_is_refused_naming_it(engine: ck.Engine) -> None:
    with pytest.raises(
        InvalidArgument, match="invalid platform 'foo': unknown operating system or architecture"
    ):
        engine.images.pull("127.0.0.1:1/team/app:1", platform="foo")
    with pytest.raises(InvalidArgument, match="invalid platform 'linux/amd64/v3/x'"):
        engine.images.pull("127.0.0.1:1/team/app:1", platform="linux/amd64/v3/x")


def test_a_refused_connection_fails_at_once(engine: ck.Engine) -> None:
    """Nothing listens: https and http are each tried once (the back-off is for registries that
    answer badly, not for ones that are not there)."""
    from tests.images.registry.servers import free_port

    port = free_port()
    with pytest.raises(RegistryError) as refused:
        engine.images.pull(f"127.0.0.1:{port}/team/app:1")
    text = refused.value.message
    assert text.count("Connection refused") == 2 and "retrying" not in text, text


def test_a_daemon_like_engine_login_checks_and_stores_nothing(
    registry_basic: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    assert registry_basic.credentials is not None
    user, password = registry_basic.credentials
    options = RegistryOptions(config_credentials=False)
    with ck.Engine(root=tmp_path / "engine", forkserver=False, registry_options=options) as engine:
        with pytest.raises(Unauthorized):
            engine.registries.login(registry_basic.host, user, "wrong")
        assert engine.registries.login(registry_basic.host, user, password) == "Login Succeeded"
        assert engine.registries.check(registry_basic.host, user, password).password == password
    assert not config.exists()  # checked, never written
    with ck.Engine(root=tmp_path / "engine2", forkserver=False) as engine:
        assert engine.registries.login(registry_basic.host, user, password) == "Login Succeeded"
    assert registry_basic.host in json.loads((config / "config.json").read_text())["auths"]


def test_a_cancelled_pull_stops_and_keeps_what_it_verified(engine: ck.Engine) -> None:
    small = file_layer({"small": b"s" * 1000})
    big = file_layer({"big": os.urandom(4 << 20)})
    image = build_image([small, big])
    big_blob = image.layers[1]
    big_digest = sha(big_blob)
    behaviour = Behaviour(stall_after={big_digest: 1 << 20})
    with fake_registry(behaviour) as fake:
        fake.add_image("1", image)
        ref = f"{fake.host}/team/app:1"
        cancel = threading.Event()
        failure: list[BaseException] = []
        seen: set[tuple[str, str]] = set()
        wanted = {(big_digest[7:19], "Downloading"), (sha(image.layers[0])[7:19], "Download complete")}

        def watch(event: ProgressEvent) -> None:
            seen.add((event.id, event.action))
            if wanted <= seen:  # the small layer stored, the big one stalled midway
                cancel.set()  # what the daemon does when its client leaves

        def run() -> None:
            try:
                engine.images.pull(ref, progress=watch, cancel=cancel)
            except BaseException as exc:
                failure.append(exc)

        puller = threading.Thread(target=run)
        puller.start()
        # the stalled body is cut by the pull, not by the read timeout (60 s) nor by the registry
        assert fake.cut.wait(30), "the cancelled pull kept the stalled blob download open"
        puller.join(30)
        assert not puller.is_alive()
        assert len(failure) == 1 and isinstance(failure[0], Cancelled), failure
        assert fake.cut_off == [big_digest]
        assert engine.images.list() == []
        assert engine.content.has(sha(image.layers[0])) or engine.snapshots.has_layer(sha(small))
        assert not engine.content.has(big_digest)
        assert ingest_files(engine.content.root.parent) == []  # the cut download's temp file went with it
        fake.release.set()
        pulled = engine.images.pull(ref)
        assert pulled.id == image.config_digest
        assert len(fake.blob_gets(sha(image.layers[0]))) == 1  # verified before: not fetched again
        assert len(fake.blob_gets(big_digest)) == 2


def test_recovery_removes_the_source_hint_temp_file_a_killed_writer_left(
    engine: ck.Engine, tmp_path: Path
) -> None:
    """A process killed while it writes a blob's source hint (content/sources/.tmp-*) leaves its
    temp file; recovery removes it and keeps the hints themselves."""
    sources = engine.images.sources
    kept = "sha256:" + "1" * 64
    sources.add(kept, "127.0.0.1:5000/team/kept")
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from containerkit.images.registry.sources import BlobSources

        def die(*args):
            os.kill(os.getpid(), signal.SIGKILL)  # after the temp file is written, before its rename

        os.replace = die
        BlobSources(Path({str(sources.root)!r})).add("sha256:{"2" * 64}", "127.0.0.1:5000/team/app")
        """
    )
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert child.returncode == -9, child.stderr
    left = [p.name for p in sources.root.iterdir() if p.name.startswith(".tmp-")]
    assert len(left) == 1, left
    engine.recover()
    assert [p.name for p in sources.root.iterdir()] == [kept.split(":")[1]]
    assert sources.get(kept) == ["127.0.0.1:5000/team/kept"]

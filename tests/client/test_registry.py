"""Client pull, push, get_registry_data, login and logout through a real containerkitd, against
Debian's docker-registry on 127.0.0.1: the same calls and results as the Engine's."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from containerkit import RegistryAuth
from containerkit.client import Client
from containerkit.daemon.config import load_config
from containerkit.daemon.registry import registry_options
from containerkit.errors import InvalidArgument, NotFound, Unauthorized
from containerkit.spec import ProgressEvent
from tests.images.registry.conftest import registry as local_registry  # noqa: F401 - fixture
from tests.images.registry.conftest import registry_basic as basic_registry  # noqa: F401 - fixture
from tests.images.registry.conftest import registry_token as token_registry  # noqa: F401 - fixture
from tests.images.registry.servers import Registry

from .conftest import IMAGE, Daemon, start_daemon, stop_daemon


@pytest.fixture
def fresh(daemon: Daemon, client: Client) -> Iterator[Client]:
    """A Client of its own on the shared daemon: no logins from other tests (``client`` has
    imported the test image)."""
    with Client(daemon.url) as own:
        yield own


def test_push_registry_data_pull_with_progress(
    client: Client,
    local_registry: Registry,  # noqa: F811 - the fixture imported above
) -> None:
    ref = f"{local_registry.host}/client/app:1"
    client.images.tag(IMAGE, ref)
    pushed: list[ProgressEvent] = []
    digest = client.images.push(ref, progress=pushed.append)
    assert digest.startswith("sha256:")
    assert pushed[0] == ProgressEvent(id="", action=f"The push refers to repository [{ref[:-2]}]")
    assert {e.action for e in pushed if e.id} & {"Pushed", "Layer already exists"}
    assert pushed[-1].action.startswith("1: digest: " + digest)

    data = client.images.get_registry_data(ref)
    assert data.digest == digest and data.size > 0 and data.media_type.endswith("json")
    assert {"architecture", "os"} <= set(data.platforms[0])

    client.images.remove(ref)
    pulled: list[ProgressEvent] = []
    image = client.images.pull(ref, progress=pulled.append)
    assert ref in image.tags and f"{ref[:-2]}@{digest}" in image.digests
    assert pulled[0] == ProgressEvent(id="1", action="Pulling from client/app")
    assert ProgressEvent(id="", action=f"Digest: {digest}") in pulled
    assert pulled[-1].action.startswith("Status: ")
    assert client.images.pull(f"{ref[:-2]}@{digest}").id == image.id
    client.images.remove(ref)


def test_missing_tag_and_bad_reference(
    client: Client,
    local_registry: Registry,  # noqa: F811 - the fixture imported above
) -> None:
    with pytest.raises(NotFound, match="manifest unknown"):
        client.images.pull(f"{local_registry.host}/client/none:1")
    with pytest.raises(InvalidArgument):
        client.images.pull(f"{local_registry.host}/Not_Valid:1")
    with pytest.raises(NotFound):
        client.images.push(f"{local_registry.host}/client/not-local:1")


def test_login_is_checked_by_the_daemon_and_sent_with_pushes(
    fresh: Client,
    basic_registry: Registry,  # noqa: F811 - the fixture imported above
) -> None:
    assert basic_registry.credentials is not None
    user, password = basic_registry.credentials
    host = basic_registry.host
    ref = f"{host}/client/private:1"
    fresh.images.tag(IMAGE, ref)
    try:
        with pytest.raises(Unauthorized):  # in-band, after the stream started: still its class
            fresh.images.push(ref)
        with pytest.raises(Unauthorized):
            fresh.registries.login(host, user, "wrong")
        assert fresh.registries.login(host, user, password) == "Login Succeeded"
        digest = fresh.images.push(ref)
        assert fresh.images.get_registry_data(ref).digest == digest
        assert fresh.registries.logout(host) is True and fresh.registries.logout(host) is False
        with pytest.raises(Unauthorized):
            fresh.images.get_registry_data(ref)
        # credentials given to the call, without a login
        auth = RegistryAuth(username=user, password=password)
        assert fresh.images.get_registry_data(ref, auth=auth).digest == digest
        fresh.images.remove(ref)
        assert ref in fresh.images.pull(ref, auth=auth).tags
    finally:
        fresh.images.remove(ref, force=True)


def test_daemon_pulls_docker_io_names_through_its_configured_mirror(
    client: Client,
    local_registry: Registry,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """registry-mirrors from the daemon's TOML reach its engine: a docker.io short name is
    served by the mirror (docker.io itself cannot be reached from here)."""
    client.images.tag(IMAGE, f"{local_registry.host}/library/mirrored:1")
    digest = client.images.push(f"{local_registry.host}/library/mirrored:1")
    client.images.remove(f"{local_registry.host}/library/mirrored:1")
    config = tmp_path / "daemon.toml"
    config.write_text(f'registry-mirrors = ["{local_registry.url}"]\nmax-concurrent-downloads = 1\n')
    (tmp_path / "mirror").mkdir()
    other = start_daemon(tmp_path / "mirror", "--config", str(config))
    try:
        with Client(other.url) as mirrored:
            image = mirrored.images.pull("mirrored:1")
            assert "mirrored:1" in image.tags and f"mirrored@{digest}" in image.digests
    finally:
        stop_daemon(other)


def test_daemon_config_registry_keys(tmp_path: Path) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text(
        'insecure-registries = ["registry.lan:5000", "10.0.0.0/8"]\n'
        'registry-mirrors = ["https://mirror.lan/"]\nmax-concurrent-uploads = 2\n'
    )
    loaded = load_config(["--config", str(config), "--registry-mirror", "http://other:5000"])
    assert loaded.insecure_registries == ("registry.lan:5000", "10.0.0.0/8")
    assert loaded.registry_mirrors == ("http://other:5000",)  # the flag wins over the file
    options = registry_options(loaded)
    assert options.config_credentials is False and options.max_concurrent_uploads == 2
    assert options.max_concurrent_downloads == 3
    for bad, named in (
        ('insecure-registries = ["http://x:5000"]', "http://x:5000"),
        ('insecure-registries = ["10.0.0.0/99"]', "10.0.0.0/99"),
        ('registry-mirrors = ["mirror.lan"]', "mirror.lan"),
        ("registry-mirrors = 5", "registry-mirrors"),
        ("max-concurrent-downloads = 0", "max-concurrent-downloads"),
        ('keep-layer-blobs = "yes"', "keep-layer-blobs: expected true or false, got 'yes'"),
    ):
        config.write_text(bad + "\n")
        with pytest.raises(InvalidArgument, match=re.escape(named)):
            load_config(["--config", str(config)])
    assert loaded.keep_layer_blobs is False  # docker's overlay2: only the unpacked layers
    config.write_text("keep-layer-blobs = true\n")
    assert load_config(["--config", str(config)]).keep_layer_blobs is True
    config.write_text("")
    assert load_config(["--config", str(config), "--keep-layer-blobs"]).keep_layer_blobs is True


def test_bearer_token_registry_login_push_pull(
    fresh: Client,
    token_registry: Registry,  # noqa: F811 - the fixture imported above
) -> None:
    """A registry behind a token server: the daemon gets tokens with what the Client sends."""
    assert token_registry.credentials is not None
    user, password = token_registry.credentials
    ref = f"{token_registry.host}/client/tokens:1"
    fresh.images.tag(IMAGE, ref)
    try:
        with pytest.raises(Unauthorized):
            fresh.registries.login(token_registry.host, user, "wrong")
        assert fresh.registries.login(token_registry.host, user, password) == "Login Succeeded"
        digest = fresh.images.push(ref)
        fresh.images.remove(ref)
        assert f"{ref[:-2]}@{digest}" in fresh.images.pull(ref).digests
    finally:
        fresh.images.remove(ref, force=True)

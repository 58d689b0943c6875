"""Client pull, push, get_registry_data, login and logout through a real containerkitd, against
Debian's docker-registry on 127.0.0.1: the same calls and results as the Engine's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from containerkit import RegistryAuth
from containerkit.client import Client
from containerkit.errors import InvalidArgument, NotFound, Unauthorized
from containerkit.spec import ProgressEvent
from tests.images.registry.conftest import registry as local_registry  # noqa: F401 - fixture
from tests.images.registry.conftest import registry_basic as basic_registry  # noqa: F401 - fixture
from tests.images.registry.servers import Registry

from .conftest import IMAGE, Daemon


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

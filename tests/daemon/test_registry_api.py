"""Pull, push, distribution inspect and login through containerkitd, against Debian's
docker-registry on 127.0.0.1, driven by the docker CLI, docker-py, testcontainers and raw HTTP."""

from __future__ import annotations

import base64
import json
import os
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest

import containerkit as ck
from tests.images.registry.servers import Registry

from .conftest import IMAGE, Daemon


def _lines(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.split(b"\r\n") if line.strip()]


def _tag(daemon: Daemon, target: str) -> None:
    repo, _, tag = target.rpartition(":")
    status, _, body = daemon.request("POST", f"/images/{IMAGE}/tag?repo={repo}&tag={tag}")
    assert status == 201, body


def _untag(daemon: Daemon, ref: str) -> None:
    status, _, body = daemon.request("DELETE", f"/images/{ref}")
    assert status == 200, body


def _unique_image(tmp_path: Path, registry: Registry, repo: str) -> tuple[str, str]:
    """An image the daemon has never seen, pushed to ``registry`` by an in-process engine: one
    layer with a file of random bytes. Returns (reference, the layer's digest in the registry)."""
    rootfs = tmp_path / "rootfs.tar"
    payload = tmp_path / "payload"
    payload.write_bytes(os.urandom(300_000))
    with tarfile.open(rootfs, "w") as tar:
        tar.add(payload, arcname="payload")
    ref = f"{registry.host}/{repo}:1"
    with ck.Engine(root=tmp_path / "pusher") as engine:
        image = engine.images.import_rootfs(rootfs, ref)
        engine.images.push(ref)
        layers = _manifest_layers(registry, repo)
    assert image.id
    return ref, layers[0]


def _manifest_layers(registry: Registry, repo: str) -> list[str]:
    import urllib.request

    request = urllib.request.Request(
        f"{registry.url}/v2/{repo}/manifests/1",
        headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, "
            "application/vnd.docker.distribution.manifest.v2+json"
        },
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        manifest = json.loads(answer.read())
    return [layer["digest"] for layer in manifest["layers"]]


# -- raw HTTP: docker's stream shapes ----------------------------------------------------------


def test_push_then_pull_stream_dockers_messages(daemon: Daemon, registry: Registry) -> None:
    repo = f"{registry.host}/raw/app"
    _tag(daemon, f"{repo}:1")
    status, headers, body = daemon.request(
        "POST", f"/v1.50/images/{repo}/push?tag=1", body=b"{}", headers={"X-Registry-Auth": "e30="}
    )
    assert status == 200 and headers.get("Transfer-Encoding") == "chunked", body
    pushed = _lines(body)
    assert pushed[0] == {"status": f"The push refers to repository [{repo}]"}
    assert not [m for m in pushed if "error" in m], pushed
    layer_steps = {m["status"] for m in pushed if m.get("id")}
    assert layer_steps & {"Pushed", "Layer already exists", "Preparing"}, pushed
    aux = [m["aux"] for m in pushed if "aux" in m]
    assert len(aux) == 1 and aux[0]["Tag"] == "1" and aux[0]["Digest"].startswith("sha256:")
    assert aux[0]["Size"] > 0
    assert pushed[-2]["status"] == f"1: digest: {aux[0]['Digest']} size: {aux[0]['Size']}"

    status, _, body = daemon.request("GET", f"/distribution/{repo}:1/json")
    assert status == 200, body
    document = json.loads(body)
    assert document["Descriptor"]["digest"] == aux[0]["Digest"]
    assert document["Descriptor"]["size"] == aux[0]["Size"]
    assert {"architecture", "os"} <= set(document["Platforms"][0])

    _untag(daemon, f"{repo}:1")
    status, _, body = daemon.request("POST", f"/images/create?fromImage={repo}&tag=1")
    assert status == 200, body
    pulled = _lines(body)
    assert pulled[0] == {"status": "Pulling from raw/app", "id": "1"}, pulled
    assert not [m for m in pulled if "error" in m], pulled
    assert {"status": f"Digest: {aux[0]['Digest']}"} in pulled
    assert pulled[-1]["status"].startswith("Status: "), pulled
    status, _, body = daemon.request("GET", f"/images/{repo}:1/json")
    assert status == 200 and f"{repo}@{aux[0]['Digest']}" in json.loads(body)["RepoDigests"]
    _untag(daemon, f"{repo}:1")


def test_missing_repository_is_a_status_before_the_stream(daemon: Daemon, registry: Registry) -> None:
    status, headers, body = daemon.request("POST", f"/images/create?fromImage={registry.host}/no/such&tag=1")
    assert status == 404, body
    assert "Transfer-Encoding" not in headers
    assert json.loads(body)["message"]


def test_push_of_missing_local_image_is_404(daemon: Daemon, registry: Registry) -> None:
    status, _, body = daemon.request("POST", f"/images/{registry.host}/nothing/here/push?tag=1")
    assert status == 404
    assert "An image does not exist locally with the tag" in json.loads(body)["message"]


def test_corrupted_blob_fails_in_band_naming_the_digest(
    daemon: Daemon, registry: Registry, tmp_path: Path
) -> None:
    ref, layer = _unique_image(tmp_path, registry, "corrupt/app")
    blob = registry.blob_path(layer)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    blob.write_bytes(bytes(data))
    name, _, tag = ref.rpartition(":")
    status, _, body = daemon.request("POST", f"/images/create?fromImage={name}&tag={tag}")
    assert status == 200, body  # the stream had started: the error is in it, as dockerd sends it
    messages = _lines(body)
    errors = [m for m in messages if "error" in m]
    assert len(errors) == 1 and errors[0] is messages[-1], messages
    assert layer in errors[0]["error"] and errors[0]["errorDetail"]["message"] == errors[0]["error"]
    assert daemon.request("GET", f"/images/{ref}/json")[0] == 404


def test_pull_of_an_undecodable_auth_header_is_anonymous(daemon: Daemon, registry: Registry) -> None:
    repo = f"{registry.host}/anon/app"
    _tag(daemon, f"{repo}:1")
    status, _, body = daemon.request(
        "POST", f"/images/{repo}/push?tag=1", headers={"X-Registry-Auth": "%%% not base64"}
    )
    assert status == 200 and not [m for m in _lines(body) if "error" in m], body
    _untag(daemon, f"{repo}:1")


# -- the docker CLI ------------------------------------------------------------------------------


def test_docker_cli_push_pull_run(cli: Any, daemon: Daemon, registry: Registry) -> None:
    ref = f"{registry.host}/team/app:1.2"
    cli("tag", IMAGE, ref)
    pushed = cli("push", ref).stdout
    assert f"The push refers to repository [{registry.host}/team/app]" in pushed
    assert "1.2: digest: sha256:" in pushed
    cli("rmi", ref)
    pulled = cli("pull", ref).stdout
    assert "1.2: Pulling from team/app" in pulled and "Digest: sha256:" in pulled, pulled
    assert "Status: " in pulled and pulled.strip().endswith(ref), pulled
    assert cli("run", "--rm", ref, "echo", "pulled").stdout == "pulled\n"
    cli("rmi", ref)
    auto = cli("run", "--rm", ref, "echo", "auto-pulled")  # create 404s, the CLI pulls, creates again
    assert auto.stdout == "auto-pulled\n" and f"Unable to find image '{ref}' locally" in auto.stderr
    missing = cli("pull", f"{registry.host}/team/app:nope", check=False)
    assert missing.returncode != 0 and "manifest unknown" in missing.stderr, missing.stderr
    assert "Pulling from" not in missing.stdout  # a 404 before any progress, as dockerd
    cli("rmi", ref)


def test_docker_cli_login_push_logout(cli: Any, registry_basic: Registry) -> None:
    assert registry_basic.credentials is not None
    user, password = registry_basic.credentials
    host = registry_basic.host
    wrong = cli("login", host, "-u", user, "--password-stdin", input="not-the-password\n", check=False)
    assert wrong.returncode != 0 and host in wrong.stderr and user in wrong.stderr, wrong.stderr
    config = Path(cli.env["DOCKER_CONFIG"]) / "config.json"
    daemon_home = Path.home() / ".docker" / "config.json"
    before = daemon_home.read_bytes() if daemon_home.exists() else None
    done = cli("login", host, "-u", user, "--password-stdin", input=f"{password}\n")
    assert "Login Succeeded" in done.stdout
    stored = json.loads(config.read_text())["auths"][host]["auth"]
    assert base64.b64decode(stored).decode() == f"{user}:{password}"
    ref = f"{host}/private/app:1"
    cli("tag", IMAGE, ref)
    try:
        assert "1: digest: sha256:" in cli("push", ref).stdout  # the CLI sends X-Registry-Auth
        cli("logout", host)
        assert host not in json.loads(config.read_text()).get("auths", {})
        refused = cli("push", ref, check=False)
        assert refused.returncode != 0
    finally:
        cli("rmi", ref, check=False)
    # containerkitd checked the password but kept it nowhere, as dockerd
    assert (daemon_home.read_bytes() if daemon_home.exists() else None) == before


# -- docker-py -----------------------------------------------------------------------------------


def test_docker_py_login_push_registry_data_pull(client: Any, registry_basic: Registry) -> None:
    docker = pytest.importorskip("docker")
    assert registry_basic.credentials is not None
    user, password = registry_basic.credentials
    host = registry_basic.host
    with pytest.raises(docker.errors.APIError) as refused:
        client.login(user, "wrong", registry=host, reauth=True)
    assert refused.value.status_code == 401
    assert client.login(user, password, registry=host, reauth=True)["Status"] == "Login Succeeded"
    repo = f"{host}/py/app"
    client.images.get(IMAGE).tag(repo, "2")
    try:
        lines = list(client.images.push(repo, tag="2", stream=True, decode=True))
        assert not [m for m in lines if "error" in m], lines
        digest = next(m["aux"]["Digest"] for m in lines if "aux" in m)
        auth = {"username": user, "password": password}
        data = client.images.get_registry_data(f"{repo}:2", auth_config=auth)
        assert data.id == digest and data.attrs["Platforms"]
        client.images.remove(f"{repo}:2")
        image = client.images.pull(repo, tag="2", auth_config=auth)
        assert f"{repo}:2" in image.tags and f"{repo}@{digest}" in image.attrs["RepoDigests"]
    finally:
        client.images.remove(f"{repo}:2", force=True)


def test_docker_py_pull_of_missing_image_is_image_not_found(client: Any, registry: Registry) -> None:
    docker = pytest.importorskip("docker")
    with pytest.raises(docker.errors.NotFound):
        client.images.pull(f"{registry.host}/nosuch/image", tag="1")


# -- testcontainers ------------------------------------------------------------------------------


def test_testcontainers_pulls_an_image_by_name(
    daemon: Daemon, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("testcontainers")
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    repo = f"{registry.host}/tc/app"
    _tag(daemon, f"{repo}:1")
    status, _, body = daemon.request("POST", f"/images/{repo}/push?tag=1")
    assert status == 200 and b'"error"' not in body, body
    _untag(daemon, f"{repo}:1")
    monkeypatch.setenv("DOCKER_HOST", daemon.url)
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    marker = uuid.uuid4().hex
    try:
        container = DockerContainer(f"{repo}:1").with_command(f"sh -c 'echo {marker}; sleep 30'")
        with container.waiting_for(LogMessageWaitStrategy(marker).with_startup_timeout(20)):
            assert daemon.request("GET", f"/images/{repo}:1/json")[0] == 200  # pulled by name
    finally:
        daemon.request("DELETE", f"/images/{repo}:1?force=1")


def test_push_without_a_tag_pushes_every_local_tag(client: Any, registry: Registry) -> None:
    """docker-py's ``images.push(repo)`` sends no tag: dockerd pushes each tag of the repository."""
    repo = f"{registry.host}/all/tags"
    image = client.images.get(IMAGE)
    image.tag(repo, "a")
    image.tag(repo, "b")
    try:
        lines = list(client.images.push(repo, stream=True, decode=True))
        assert not [m for m in lines if "error" in m], lines
        assert sorted(m["aux"]["Tag"] for m in lines if "aux" in m) == ["a", "b"]
        assert [m["status"].split(":")[0] for m in lines if ": digest: " in m.get("status", "")] == ["a", "b"]
        for tag in ("a", "b"):
            assert client.images.get_registry_data(f"{repo}:{tag}").id.startswith("sha256:")
    finally:
        client.images.remove(f"{repo}:a")
        client.images.remove(f"{repo}:b")
    docker = pytest.importorskip("docker")
    with pytest.raises(docker.errors.NotFound):
        client.api.push(repo)  # no local tag left: 404 before any stream

"""containerkitd's pull and login where their first users found them unlike dockerd's: a missing tag
and a platform mismatch are 404s in dockerd's words before the stream starts, a bad platform is a
400 naming it, the stream starts with ``Pulling from``, ``POST /auth`` answers the identity token a
token server gave, and a client that hangs up mid-pull stops the pull (the daemon stops
downloading) while what was verified is kept for the next pull.

Against Debian's docker-registry, and the fake registry of tests/images/registry/_images.py where
a blob body must stall until the daemon hangs up (no real registry does that on purpose)."""

from __future__ import annotations

import json
import os
import socket
import urllib.parse
from typing import Any

from tests.images.registry._images import Behaviour, build_image, fake_registry, file_layer, sha
from tests.images.registry.conftest import registry_token  # noqa: F401 - the token registry fixture
from tests.images.registry.servers import Registry

from .conftest import IMAGE, Daemon


def _lines(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.split(b"\r\n") if line.strip()]


def _steps(raw: bytes) -> set[tuple[str, str]]:
    """(id, status) of the progress lines in a raw chunked response read so far."""
    steps = set()
    for piece in raw.split(b"\r\n"):
        if piece.startswith(b"{"):
            try:
                line = json.loads(piece)
            except ValueError:
                continue  # cut by the read
            steps.add((line.get("id", ""), line.get("status", "")))
    return steps


def _pull(daemon: Daemon, image: str, tag: str, platform: str = "") -> tuple[int, bytes]:
    query = {"fromImage": image, "tag": tag}
    if platform:
        query["platform"] = platform
    status, _, body = daemon.request("POST", "/v1.50/images/create?" + urllib.parse.urlencode(query))
    return status, body


def test_missing_tag_bad_platform_and_platform_mismatch_are_statuses(
    daemon: Daemon, registry: Registry
) -> None:
    repo = f"{registry.host}/asd/app"
    status, _, body = daemon.request("POST", f"/images/{IMAGE}/tag?repo={repo}&tag=1")
    assert status == 201, body
    try:
        status, _, body = daemon.request("POST", f"/v1.50/images/{repo}/push?tag=1", body=b"{}")
        assert status == 200 and b'"aux"' in body, body
        status, body = _pull(daemon, repo, "nope")
        assert status == 404, body
        assert json.loads(body)["message"] == (
            f"manifest for {repo}:nope not found: manifest unknown: manifest unknown"
        )
        status, body = _pull(daemon, repo, "1", platform="foo")
        assert status == 400 and "'foo'" in json.loads(body)["message"], body
        status, body = _pull(daemon, repo, "1", platform="linux/arm64")
        assert status == 404, body
        assert json.loads(body)["message"] == (
            f"image with reference {repo}:1 was found but does not match the specified platform: "
            "wanted linux/arm64, actual: linux/amd64"
        )
        status, body = _pull(daemon, repo, "1", platform="linux/amd64")
        assert status == 200, body
        lines = _lines(body)
        assert lines[0] == {"status": "Pulling from asd/app", "id": "1"}, lines
        assert lines[-1] == {"status": f"Status: Image is up to date for {repo}:1"}, lines
    finally:
        daemon.request("DELETE", f"/images/{repo}:1")


def test_auth_answers_the_identity_token_and_keeps_nothing(daemon: Daemon, registry_token: Registry) -> None:  # noqa: F811
    assert registry_token.credentials is not None and registry_token.token_server is not None
    user, password = registry_token.credentials
    body = json.dumps({"username": user, "password": "wrong", "serveraddress": registry_token.host})
    status, _, answer = daemon.request("POST", "/v1.50/auth", body=body.encode())
    assert status == 401, answer
    body = json.dumps({"username": user, "password": password, "serveraddress": registry_token.host})
    status, _, answer = daemon.request("POST", "/v1.50/auth", body=body.encode())
    assert status == 200, answer
    doc = json.loads(answer)
    assert doc["Status"] == "Login Succeeded"
    assert doc["IdentityToken"] in registry_token.token_server.refresh_tokens
    scratch = daemon.root / "tmp"
    assert not scratch.exists() or not [p for p in scratch.iterdir() if p.name.startswith("login-")]


def test_a_client_that_hangs_up_mid_pull_stops_the_pull(daemon: Daemon) -> None:
    small = file_layer({"small": b"s" * 1000})
    big = file_layer({"big": os.urandom(4 << 20)})
    image = build_image([small, big])
    small_digest, big_digest = sha(image.layers[0]), sha(image.layers[1])
    with fake_registry(Behaviour(stall_after={big_digest: 1 << 20})) as fake:
        fake.add_image("1", image)
        repo = f"{fake.host}/team/big"
        query = urllib.parse.urlencode({"fromImage": repo, "tag": "1"})
        request = f"POST /v1.50/images/create?{query} HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n"
        received = b""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(str(daemon.socket))
            sock.sendall(request.encode())
            # both the small layer stored and the big one under way, then the client leaves
            wanted = {(big_digest[7:19], "Downloading"), (small_digest[7:19], "Download complete")}
            while not wanted <= _steps(received):
                chunk = sock.recv(65536)
                assert chunk, received
                received += chunk
        assert received.startswith(b"HTTP/1.1 200"), received
        # the daemon cuts the stalled download when its client is gone (not at a read timeout)
        assert fake.cut.wait(30), "the daemon kept pulling after its client left"
        assert fake.cut_off == [big_digest]
        status, _, _ = daemon.request("GET", f"/v1.50/images/{repo}:1/json")
        assert status == 404  # nothing recorded
        fake.release.set()
        try:
            status, body = _pull(daemon, repo, "1")
            assert status == 200 and b"Status: Downloaded newer image" in body, body
            assert len(fake.blob_gets(small_digest)) == 1  # kept from the cancelled pull
            assert len(fake.blob_gets(big_digest)) == 2
        finally:
            daemon.request("DELETE", f"/images/{repo}:1")

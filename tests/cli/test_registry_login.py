"""``containerkit -H ... login`` as the docker CLI does it: the daemon checks the credentials against
the registry (POST /auth), and the CLI stores what the daemon accepted (the token server's identity
token in place of the password) without asking the registry a second time. Against Debian's
docker-registry with Bearer tokens from the test token server, which counts what it is asked."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from click.testing import Result

from tests.cli.conftest import IMAGE
from tests.cli.test_remote import Remote, remote_daemon  # noqa: F401 - the daemon fixture
from tests.cli.test_remote import remote as remote_cli  # noqa: F401 - the -H fixture
from tests.images.registry.conftest import registry_token  # noqa: F401 - the token registry
from tests.images.registry.servers import Registry


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result.stdout


def _password_uses(registry: Registry, user: str, password: str) -> int:
    """Token requests that carried the password (Basic on GET, or the OAuth2 password grant)."""
    assert registry.token_server is not None
    basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return sum(
        1
        for entry in registry.token_server.requests
        if entry["authorization"] == basic or entry["params"].get("password") == [password]
    )


def test_login_through_a_daemon_stores_what_it_accepted_without_asking_again(
    request: pytest.FixtureRequest,
    registry_token: Registry,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    remote: Remote = request.getfixturevalue("remote_cli")
    assert registry_token.credentials is not None and registry_token.token_server is not None
    user, password = registry_token.credentials
    host = registry_token.host
    refused = remote("login", host, "-u", user, "--password-stdin", input="wrong\n")
    assert refused.exit_code == 1 and not config.exists(), refused.output
    before = _password_uses(registry_token, user, password)
    assert ok(remote("login", host, "-u", user, "--password-stdin", input=f"{password}\n")) == (
        "Login Succeeded\n"
    )
    assert _password_uses(registry_token, user, password) == before + 1  # the daemon's check only
    stored = json.loads((config / "config.json").read_text())["auths"][host]
    assert stored["identitytoken"] in registry_token.token_server.refresh_tokens
    assert password not in json.dumps(stored)  # docker keeps the identity token, not the password
    ref = f"{host}/cli/token:1"
    ok(remote("tag", IMAGE, ref))
    try:
        assert "1: digest: sha256:" in ok(remote("push", ref))  # the stored identity token works
    finally:
        remote("rmi", "-f", ref)

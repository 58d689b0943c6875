"""Credentials as docker and podman keep them: config.json, DOCKER_AUTH_CONFIG, auth.json, and a
real credential helper (an executable ``docker-credential-fake`` on PATH, speaking the protocol over
stdin/stdout and keeping its secrets in a JSON file of its own)."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import sys
from pathlib import Path

import pytest

from containerkit.errors import InvalidArgument
from containerkit.images.registry.auth import RegistryAuth
from containerkit.images.registry.credentials import (
    DOCKER_HUB_KEY,
    CredentialHelper,
    CredentialStore,
    auth_key,
    config_dir,
)
from containerkit.images.registry.transport import RegistryTransport
from tests.images.registry.servers import Registry

HELPER = """#!{python}
import json, os, sys
db = os.environ["FAKE_HELPER_DB"]
secrets = json.load(open(db)) if os.path.exists(db) else {{}}
action = sys.argv[1]
data = sys.stdin.read()
with open(db + ".log", "a") as log:
    log.write(action + " " + data.strip().replace("\\n", " ") + "\\n")
if action == "get":
    if data.strip() not in secrets:
        print("credentials not found in native keychain")
        sys.exit(1)
    user, secret = secrets[data.strip()]
    print(json.dumps({{"ServerURL": data.strip(), "Username": user, "Secret": secret}}))
elif action == "store":
    entry = json.loads(data)
    secrets[entry["ServerURL"]] = [entry["Username"], entry["Secret"]]
elif action == "erase":
    if secrets.pop(data.strip(), None) is None:
        print("credentials not found in native keychain")
        sys.exit(1)
elif action == "list":
    print(json.dumps({{k: v[0] for k, v in secrets.items()}}))
json.dump(secrets, open(db, "w"))
"""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A private HOME, DOCKER_CONFIG and PATH holding docker-credential-fake."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-fake"
    helper.write_text(HELPER.format(python=sys.executable))
    helper.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    return {
        "HOME": str(home),
        "DOCKER_CONFIG": str(tmp_path / "docker"),
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "FAKE_HELPER_DB": str(tmp_path / "helper.json"),
    }


def write_config(env: dict[str, str], config: dict[str, object]) -> Path:
    path = Path(env["DOCKER_CONFIG"]) / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config))
    return path


def helper_secrets(env: dict[str, str]) -> dict[str, list[str]]:
    path = Path(env["FAKE_HELPER_DB"])
    return json.loads(path.read_text()) if path.exists() else {}


def test_keys_as_docker_spells_them() -> None:
    for hub in ("docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/"):
        assert auth_key(hub) == DOCKER_HUB_KEY
    assert auth_key("127.0.0.1:5000") == "127.0.0.1:5000"
    assert auth_key("https://Registry.Example.com/v1/") == "registry.example.com"
    assert config_dir({"DOCKER_CONFIG": "/x"}) == Path("/x")
    assert config_dir({"HOME": "/home/u"}) == Path("/home/u/.docker")
    with pytest.raises(InvalidArgument, match="no host"):
        auth_key("https://")


def test_config_json_auths_and_legacy_keys(env: dict[str, str]) -> None:
    write_config(
        env,
        {
            "auths": {
                DOCKER_HUB_KEY: {"auth": b64("hubuser:hubpass")},
                "https://127.0.0.1:5000/v1/": {"auth": b64("legacy:pw")},
                "reg.example:443": {"auth": b64("u:"), "identitytoken": "refresh-me"},
                "empty.example": {},
            }
        },
    )
    store = CredentialStore(env)
    hub = store.get("docker.io")
    assert hub is not None and (hub.username, hub.password) == ("hubuser", "hubpass")
    legacy = store.get("127.0.0.1:5000")
    assert legacy is not None and (legacy.username, legacy.password) == ("legacy", "pw")
    token = store.get("reg.example:443")
    assert token is not None and token.identity_token == "refresh-me"
    assert store.get("empty.example") is None
    assert store.get("unknown.example") is None


def test_docker_auth_config_env_wins_over_the_file(env: dict[str, str]) -> None:
    write_config(env, {"auths": {"127.0.0.1:5000": {"auth": b64("file:pw")}}})
    env["DOCKER_AUTH_CONFIG"] = json.dumps({"auths": {"127.0.0.1:5000": {"auth": b64("env:pw")}}})
    found = CredentialStore(env).get("127.0.0.1:5000")
    assert found is not None and found.username == "env"
    env["DOCKER_AUTH_CONFIG"] = "{not json"
    with pytest.raises(InvalidArgument, match="DOCKER_AUTH_CONFIG"):
        CredentialStore(env).get("127.0.0.1:5000")


def test_podman_auth_json_when_docker_has_none(env: dict[str, str], tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    (runtime / "containers").mkdir(parents=True)
    (runtime / "containers" / "auth.json").write_text(
        json.dumps({"auths": {"quay.example": {"auth": b64("podman:pw")}}})
    )
    user_file = Path(env["HOME"]) / ".config" / "containers" / "auth.json"
    user_file.parent.mkdir(parents=True)
    user_file.write_text(json.dumps({"auths": {"other.example": {"auth": b64("home:pw")}}}))
    env["XDG_RUNTIME_DIR"] = str(runtime)
    store = CredentialStore(env)
    quay = store.get("quay.example")
    assert quay is not None and quay.username == "podman"
    other = store.get("other.example")
    assert other is not None and other.username == "home"
    write_config(env, {"auths": {"quay.example": {"auth": b64("docker:pw")}}})
    docker = store.get("quay.example")
    assert docker is not None and docker.username == "docker"


def test_a_broken_config_names_its_path(env: dict[str, str]) -> None:
    path = write_config(env, {})
    path.write_text("{broken")
    with pytest.raises(InvalidArgument, match=str(path)):
        CredentialStore(env).get("127.0.0.1:5000")


def test_store_and_erase_in_config_json_keep_unknown_keys_mode_0600(env: dict[str, str]) -> None:
    path = write_config(
        env, {"psFormat": "table {{.ID}}", "proxies": {"default": {}}, "auths": {"https://h.example/v1/": {}}}
    )
    store = CredentialStore(env)
    store.store("h.example", RegistryAuth("bob", "pw:1"))
    config = json.loads(path.read_text())
    assert config["psFormat"] == "table {{.ID}}" and config["proxies"] == {"default": {}}
    assert config["auths"]["h.example"] == {"auth": b64("bob:pw:1")}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.json"]  # no temp file left
    found = store.get("h.example")
    assert found is not None and (found.username, found.password) == ("bob", "pw:1")
    store.store("docker.io", RegistryAuth("hub", identity_token="it"))
    assert json.loads(path.read_text())["auths"][DOCKER_HUB_KEY] == {
        "auth": b64("hub:"),
        "identitytoken": "it",
    }
    assert store.erase("h.example")
    auths = json.loads(path.read_text())["auths"]
    assert "h.example" not in auths and "https://h.example/v1/" not in auths  # the legacy key went too
    assert not store.erase("h.example")


def test_store_follows_a_symlinked_config(env: dict[str, str], tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "docker-config.json"
    real.parent.mkdir()
    real.write_text('{"auths": {}, "detachKeys": "ctrl-x"}')
    link = Path(env["DOCKER_CONFIG"]) / "config.json"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    CredentialStore(env).store("h.example", RegistryAuth("bob", "pw"))
    assert link.is_symlink()
    assert json.loads(real.read_text())["detachKeys"] == "ctrl-x"
    assert "h.example" in json.loads(real.read_text())["auths"]


def test_credential_helper_protocol(env: dict[str, str]) -> None:
    path = write_config(env, {"credHelpers": {"127.0.0.1:5000": "fake"}, "auths": {}})
    store = CredentialStore(env)
    assert store.get("127.0.0.1:5000") is None  # a miss: "credentials not found", not an error
    store.store("127.0.0.1:5000", RegistryAuth("carol", "secret"))
    assert helper_secrets(env) == {"127.0.0.1:5000": ["carol", "secret"]}
    assert json.loads(path.read_text())["auths"] == {"127.0.0.1:5000": {}}  # docker keeps an empty entry
    found = store.get("127.0.0.1:5000")
    assert found is not None and (found.username, found.password) == ("carol", "secret")
    assert CredentialHelper("fake", env).list() == {"127.0.0.1:5000": "carol"}
    assert store.erase("127.0.0.1:5000")
    assert helper_secrets(env) == {}
    assert store.get("127.0.0.1:5000") is None
    log = Path(env["FAKE_HELPER_DB"] + ".log").read_text().splitlines()
    assert log[0] == "get 127.0.0.1:5000"
    assert log[1].startswith("store {") and '"Username": "carol"' in log[1]


def test_creds_store_for_every_host_and_identity_tokens(env: dict[str, str]) -> None:
    write_config(env, {"credsStore": "fake", "auths": {"reg.example": {"auth": b64("ignored:pw")}}})
    store = CredentialStore(env)
    assert store.get("reg.example") is None  # with a credsStore, the file's secrets are not used (docker)
    store.store("docker.io", RegistryAuth("dave", identity_token="refresh"))
    assert helper_secrets(env) == {DOCKER_HUB_KEY: ["<token>", "refresh"]}
    found = store.get("index.docker.io")
    assert found is not None and found.identity_token == "refresh" and not found.password


def test_cred_helpers_for_docker_hub_under_any_of_its_names(env: dict[str, str]) -> None:
    write_config(env, {"credHelpers": {"docker.io": "fake"}})
    CredentialHelper("fake", env).store(DOCKER_HUB_KEY, RegistryAuth("erin", "pw"))
    found = CredentialStore(env).get("registry-1.docker.io")
    assert found is not None and found.username == "erin"


def test_a_missing_helper_is_warned_about_and_skipped(
    env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    write_config(env, {"credHelpers": {"reg.example": "absent"}})
    with caplog.at_level(logging.WARNING, "containerkit.registry"):
        assert CredentialStore(env).get("reg.example") is None
    assert "docker-credential-absent not found on PATH" in caplog.text


def test_stored_credentials_log_in_to_a_basic_auth_registry(
    env: dict[str, str], registry_basic: Registry
) -> None:
    assert registry_basic.credentials is not None
    write_config(env, {"credHelpers": {registry_basic.host: "fake"}})
    store = CredentialStore(env)
    store.store(registry_basic.host, RegistryAuth(*registry_basic.credentials))
    auth = store.get(registry_basic.host)
    with RegistryTransport(registry_basic.host, auth=auth) as transport:
        assert transport.login() is None
        response = transport.request("GET", "/v2/_catalog", scope="registry:catalog:*")
        assert response.json() == {"repositories": []}

"""pull, push, login, logout and ``run --pull`` on the local engine and through a daemon (-H),
against Debian's docker-registry on 127.0.0.1."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result

from tests.cli.conftest import IMAGE, Ck
from tests.cli.test_remote import Remote, remote_daemon  # noqa: F401 - the daemon fixture
from tests.cli.test_remote import remote as remote_cli  # noqa: F401 - the -H fixture
from tests.images.registry.servers import Registry


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result.stdout


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config dir of our own: logins are stored here, not in root's ~/.docker."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    return tmp_path / "docker-config"


@pytest.fixture
def pushed(ck: Ck, registry: Registry) -> Iterator[str]:
    """The busybox image pushed as ``<registry>/cli/app:1`` and removed locally."""
    ref = f"{registry.host}/cli/app:1"
    ok(ck("tag", IMAGE, ref))
    out = ok(ck("push", ref))
    assert f"The push refers to repository [{registry.host}/cli/app]" in out
    assert "1: digest: sha256:" in out and " size: " in out
    ok(ck("rmi", ref))
    yield ref
    ck("rmi", "-f", ref)


def test_pull_prints_dockers_steps_and_the_reference(ck: Ck, pushed: str) -> None:
    out = ok(ck("pull", pushed))
    lines = out.splitlines()
    assert lines[0] == "1: Pulling from cli/app" and lines[-1] == pushed, out
    assert any(line.startswith("Digest: sha256:") for line in lines)
    assert any(line.startswith("Status: ") for line in lines)
    # plain lines off a terminal: one per step, no byte counts
    assert not [line for line in lines if "Downloading" in line or "Extracting" in line]
    assert ok(ck("run", "--rm", pushed, "echo", "from-registry")) == "from-registry\n"
    assert "Status: Image is up to date" in ok(ck("image", "pull", pushed))  # docker image pull
    untagged = ck("pull", pushed.rsplit(":", 1)[0])  # only :1 was pushed
    assert untagged.exit_code == 1 and untagged.stdout.startswith("Using default tag: latest\n")


def test_pull_of_a_missing_tag_fails_naming_it(ck: Ck, registry: Registry) -> None:
    result = ck("pull", f"{registry.host}/cli/none:nope")
    assert result.exit_code == 1 and "manifest unknown" in result.stderr, result.output


def test_run_pull_policies(ck: Ck, pushed: str) -> None:
    never = ck("run", "--rm", "--pull", "never", pushed, "true")
    assert never.exit_code == 125 and "No such image" in never.stderr, never.output
    missing = ck("run", "--rm", pushed, "echo", "pulled-first")
    assert missing.exit_code == 0, missing.output
    assert f"Unable to find image '{pushed}' locally" in missing.stderr
    assert missing.stdout == "pulled-first\n"
    present = ck("run", "--rm", pushed, "true")
    assert present.exit_code == 0 and "Unable to find image" not in present.stderr
    always = ck("run", "--rm", "--pull", "always", pushed, "true")
    assert always.exit_code == 0 and "Status: Image is up to date" in always.stderr, always.output
    bad = ck("run", "--pull", "sometimes", pushed, "true")
    assert bad.exit_code == 125


def test_login_stores_as_docker_then_push_uses_it(
    ck: Ck, registry_basic: Registry, docker_config: Path
) -> None:
    assert registry_basic.credentials is not None
    user, password = registry_basic.credentials
    host = registry_basic.host
    refused = ck("login", host, "-u", user, "--password-stdin", input="wrong\n")
    assert refused.exit_code == 1 and host in refused.stderr, refused.output
    assert not (docker_config / "config.json").exists()
    assert ck("login", host, "-u", user, "--password-stdin").exit_code == 125  # stdin empty: no password
    assert ck("login", host, "-p", "x", "--password-stdin", input="y\n").exit_code == 125
    assert ok(ck("login", host, "-u", user, "--password-stdin", input=f"{password}\n")) == "Login Succeeded\n"
    stored = json.loads((docker_config / "config.json").read_text())["auths"][host]["auth"]
    assert base64.b64decode(stored).decode() == f"{user}:{password}"
    ref = f"{host}/private/app:1"
    ok(ck("tag", IMAGE, ref))
    try:
        assert "1: digest: sha256:" in ok(ck("push", ref))
        assert ok(ck("logout", host)) == f"Removing login credentials for {host}\n"
        assert host not in json.loads((docker_config / "config.json").read_text()).get("auths", {})
        assert ck("push", ref).exit_code == 1
    finally:
        ck("rmi", "-f", ref)


def test_through_a_daemon(
    request: pytest.FixtureRequest, registry_basic: Registry, docker_config: Path
) -> None:
    """-H: the daemon checks the login, the CLI stores it and sends it with the push and pull."""
    remote: Remote = request.getfixturevalue("remote_cli")
    assert registry_basic.credentials is not None
    user, password = registry_basic.credentials
    host = registry_basic.host
    assert remote("login", host, "-u", user, "--password-stdin", input="wrong\n").exit_code == 1
    ok(remote("login", host, "-u", user, "--password-stdin", input=f"{password}\n"))
    assert host in json.loads((docker_config / "config.json").read_text())["auths"]
    ref = f"{host}/remote/app:1"
    ok(remote("tag", IMAGE, ref))
    try:
        out = ok(remote("push", ref))
        assert f"The push refers to repository [{host}/remote/app]" in out and "1: digest: sha256:" in out
        ok(remote("rmi", ref))
        pulled = ok(remote("pull", ref))
        assert pulled.splitlines()[-1] == ref and "1: Pulling from remote/app" in pulled
        assert ok(remote("run", "--rm", ref, "echo", "remote")) == "remote\n"
        ok(remote("logout", host))
        assert remote("pull", ref).exit_code == 1  # no credentials sent: the registry refuses
    finally:
        remote("rmi", "-f", ref)


def test_layer_progress_bars_on_a_terminal_lines_elsewhere() -> None:
    import io

    from containerkit.cli._progress import LayerProgress
    from containerkit.spec import ProgressEvent

    steps = [
        ProgressEvent(id="1", action="Pulling from team/app"),
        ProgressEvent(id="abcdef012345", action="Pulling fs layer"),
        ProgressEvent(id="abcdef012345", action="Downloading", current=500, total=1000),
        ProgressEvent(id="abcdef012345", action="Pull complete"),
        ProgressEvent(id="", action="Status: Downloaded newer image for team/app:1"),
    ]
    plain = io.StringIO()
    with LayerProgress(plain, tty=False) as progress:
        for event in steps:
            progress(event)
    assert plain.getvalue().splitlines() == [
        "1: Pulling from team/app",
        "abcdef012345: Pulling fs layer",
        "abcdef012345: Pull complete",
        "Status: Downloaded newer image for team/app:1",
    ]
    terminal = io.StringIO()
    with LayerProgress(terminal, tty=True) as progress:
        for event in steps:
            progress(event)
    drawn = terminal.getvalue()
    assert "1: Pulling from team/app" in drawn and "Status: Downloaded newer image" in drawn
    assert "abcdef012345: Pull complete" in drawn and "1.0/1.0 kB" in drawn  # the bar, full


def test_run_pull_passes_the_platform_on(ck: Ck, pushed: str) -> None:
    wrong = ck("run", "--rm", "--pull", "always", "--platform", "linux/arm64", pushed, "true")
    assert wrong.exit_code == 125 and "linux/arm64" in wrong.stderr, wrong.output
    right = ck("run", "--rm", "--pull", "always", "--platform", "linux/amd64", pushed, "echo", "ok")
    assert right.exit_code == 0 and right.stdout == "ok\n", right.output

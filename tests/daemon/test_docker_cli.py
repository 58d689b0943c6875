"""The docker CLI 28.2.2 against containerkitd (skipped where the CLI is not installed)."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from .conftest import IMAGE


def test_run_rm_echo_and_exit_codes(cli: Any) -> None:
    assert cli("run", "--rm", IMAGE, "echo", "hi").stdout == "hi\n"
    assert cli("run", "--rm", IMAGE, "sh", "-c", "exit 7", check=False).returncode == 7
    missing = cli("run", "--rm", IMAGE, "nosuchcommand", check=False)
    assert missing.returncode == 127 and "executable file not found" in missing.stderr
    assert "nosuch" not in cli("ps", "-a").stdout


def test_run_interactive_stdin_reaches_eof(cli: Any) -> None:
    # `docker run -i` sets OpenStdin and StdinOnce: the container's stdin closes with the CLI's.
    result = cli(
        "run", "-i", "--rm", IMAGE, "sh", "-c", "tr a-z A-Z; echo done", input="piped in\n", timeout=30
    )
    assert result.stdout == "PIPED IN\ndone\n"


def test_load_images_and_rmi(cli: Any, client: Any, tmp_path: Path) -> None:
    archive = tmp_path / "busybox.tar"
    archive.write_bytes(b"".join(client.images.get(IMAGE).save(named=True)))
    cli("tag", IMAGE, "example/cli:1")
    assert "example/cli" in cli("images").stdout
    assert "Untagged: example/cli:1" in cli("rmi", "example/cli:1").stdout
    assert f"Loaded image: {IMAGE}" in cli("load", "-i", str(archive)).stdout
    with archive.open("rb") as f:  # from stdin: a chunked request body
        result = subprocess.run(
            [cli.binary, "load"], stdin=f, capture_output=True, text=True, env=cli.env, timeout=60
        )
    assert f"Loaded image: {IMAGE}" in result.stdout, result.stderr


def test_detached_ps_logs_exec_cp_stop_rm(cli: Any, tmp_path: Path) -> None:
    cid = cli(
        "run", "-d", "--name", "clitest", IMAGE, "sh", "-c", "echo one; sleep 0.5; echo two; sleep 60"
    ).stdout.strip()
    try:
        assert "clitest" in cli("ps").stdout
        follow = subprocess.Popen(
            [cli.binary, "logs", "-f", "clitest"], stdout=subprocess.PIPE, text=True, env=cli.env
        )
        assert follow.stdout is not None
        assert follow.stdout.readline() == "one\n"
        assert follow.stdout.readline() == "two\n"
        assert cli("exec", "clitest", "echo", "fromexec").stdout == "fromexec\n"
        assert (
            cli("exec", "-i", "clitest", "sh", "-c", "tr a-z A-Z", input="stdin data\n").stdout
            == "STDIN DATA\n"
        )
        assert cli("exec", "clitest", "sh", "-c", "exit 4", check=False).returncode == 4
        source = tmp_path / "in.txt"
        source.write_text("copied")
        cli("cp", str(source), "clitest:/tmp/")
        assert cli("exec", "clitest", "cat", "/tmp/in.txt").stdout == "copied"
        cli("cp", "clitest:/tmp/in.txt", str(tmp_path / "out.txt"))
        assert (tmp_path / "out.txt").read_text() == "copied"
        started = time.monotonic()
        cli("stop", "-t", "1", "clitest")
        assert time.monotonic() - started < 10
        follow.wait(10)  # logs -f ends when the container exits
        assert "Exited (137)" in cli("ps", "-a", "--filter", "name=clitest").stdout
    finally:
        cli("rm", "-f", cid)
    assert cid[:12] not in cli("ps", "-a").stdout


def test_volume_and_network_commands(cli: Any) -> None:
    cli("volume", "create", "clivol")
    assert "clivol" in cli("volume", "ls").stdout
    cli("run", "--rm", "-v", "clivol:/v", IMAGE, "sh", "-c", "echo x > /v/f")
    assert cli("run", "--rm", "-v", "clivol:/v", IMAGE, "cat", "/v/f").stdout == "x\n"
    cli("volume", "rm", "clivol")
    cli("network", "create", "clinet")
    try:
        assert "clinet" in cli("network", "ls").stdout
        cli("run", "-d", "--name", "clinet-a", "--network", "clinet", IMAGE, "sleep", "60")
        cli("run", "-d", "--name", "clinet-b", IMAGE, "sleep", "60")
        cli("network", "connect", "clinet", "clinet-b")
        assert cli("exec", "clinet-b", "ping", "-c", "1", "-W", "2", "clinet-a", check=False).returncode == 0
    finally:
        cli("rm", "-f", "clinet-a", "clinet-b", check=False)
        cli("network", "rm", "clinet")


def test_run_publishes_a_port(cli: Any) -> None:
    cid = cli(
        "run",
        "-d",
        "-p",
        "18080:80",
        IMAGE,
        "sh",
        "-c",
        "mkdir /www; echo served > /www/index.html; httpd -f -p 80 -h /www",
    ).stdout.strip()
    try:
        deadline = time.monotonic() + 10
        body = b""
        while time.monotonic() < deadline:
            try:
                body = urllib.request.urlopen("http://127.0.0.1:18080/", timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)
        assert body == b"served\n"
        assert "0.0.0.0:18080->80/tcp" in cli("ps").stdout
    finally:
        cli("rm", "-f", cid)


def test_run_with_the_runc_runtime(cli: Any) -> None:
    assert cli("run", "--rm", "--runtime", "runc", IMAGE, "echo", "via runc").stdout == "via runc\n"
    refused = cli("run", "--rm", "--runtime", "nosuch", IMAGE, "true", check=False)
    assert refused.returncode == 125 and "runtime" in refused.stderr


def test_login_is_not_claimed_without_a_check(cli: Any) -> None:
    # Nothing answers on that port: the daemon checks the password against the registry and
    # must not say it did when it could not.
    result = cli("login", "127.0.0.1:5999", "-u", "someone", "--password-stdin", input="wrong\n", check=False)
    assert result.returncode != 0
    assert "Login Succeeded" not in result.stdout
    assert "127.0.0.1:5999 unreachable" in result.stderr

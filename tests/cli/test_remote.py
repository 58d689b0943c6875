"""The command line with ``-H``: the same verbs, through a Client on a real containerkitd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.cli.test_interactive import _drive
from tests.daemon.conftest import Daemon, serve

IMAGE = "example/busybox"

Remote = Callable[..., Result]


@pytest.fixture(scope="module")
def remote_daemon(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path) -> Iterator[Daemon]:
    if os.geteuid() != 0:
        pytest.skip("needs root: containers use namespaces, mounts and cgroups")
    with serve(tmp_path_factory.mktemp("cli-remote"), busybox_rootfs_tar, IMAGE) as running:
        yield running


@pytest.fixture
def remote(remote_daemon: Daemon) -> Iterator[Remote]:
    """``remote("ps", "-a")``: the CLI with ``-H unix://SOCK``; every container is gone afterwards."""

    def run(*args: str, input: bytes | str | None = None) -> Result:
        from containerkit.cli.main import cli

        return CliRunner().invoke(cli, ["-H", remote_daemon.url, *args], input=input)

    yield run
    ids = run("ps", "-aq").stdout.split()
    if ids:
        run("rm", "-f", *ids)
    assert run("ps", "-aq").stdout.split() == [], "a container survived rm -f"


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result.stdout


def test_images(remote: Remote) -> None:
    listing = ok(remote("images"))
    assert listing.splitlines()[0].split()[:2] == ["REPOSITORY", "TAG"]
    assert any(line.split()[:2] == [IMAGE, "latest"] for line in listing.splitlines()[1:])
    assert ok(remote("images", "-q")).strip()


def test_run_rm_output_and_exit_code(remote: Remote) -> None:
    result = remote("run", "--rm", "--network", "none", IMAGE, "echo", "hi")
    assert ok(result) == "hi\n"
    failed = remote("run", "--rm", "--network", "none", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert failed.exit_code == 3
    assert failed.stdout == "out\n" and failed.stderr == "err\n"
    missing = remote("run", "--rm", "--network", "none", IMAGE, "no-such-command")
    assert missing.exit_code == 127
    assert ok(remote("ps", "-aq")) == ""


def test_run_i_forwards_stdin_and_its_end(remote: Remote, remote_daemon: Daemon) -> None:
    """The piped input reaches the container and its EOF ends ``tr``; then the rest runs."""
    command = [sys.executable, "-m", "containerkit.cli", "-H", remote_daemon.url, "run", "-i", "--rm"]
    command += ["--network", "none", IMAGE, "sh", "-c", "tr a-z A-Z; echo done"]
    piped = subprocess.run(command, input="hello\nremote world\n", capture_output=True, text=True, timeout=60)
    assert (piped.returncode, piped.stdout, piped.stderr) == (0, "HELLO\nREMOTE WORLD\ndone\n", "")
    command[-1] = "cat; echo done"  # no input at all: the EOF alone
    empty = subprocess.run(command, input="", capture_output=True, text=True, timeout=60)
    assert (empty.returncode, empty.stdout) == (0, "done\n"), empty.stderr
    assert ok(remote("ps", "-aq")) == ""


def test_run_it_through_a_terminal(remote: Remote, remote_daemon: Daemon) -> None:
    code, output = _drive(
        None,
        ["run", "-it", "--rm", "--network", "none", IMAGE, "sh"],
        b"echo hi; stty size; exit 3\r",
        timeout=8,
        host=remote_daemon.url,
    )
    assert code == 3, output
    assert b"\r\nhi\r\n" in output  # the command's output, after the echoed input line
    assert b"40 100" in output  # the terminal's size reached the container
    assert ok(remote("ps", "-aq")) == ""


def test_detached_ps_logs_exec_stop_rm(remote: Remote) -> None:
    container_id = ok(remote("run", "-d", "--name", "web", IMAGE, "sh", "-c", "echo up; sleep 60")).strip()
    assert len(container_id) == 64
    listing = ok(remote("ps"))
    assert container_id[:12] in listing and "web" in listing and "Up" in listing
    assert ok(remote("ps", "-q")).split() == [container_id[:12]]
    assert ok(remote("ps", "--format", "{{.Names}}")).strip() == "web"
    deadline = time.monotonic() + 10
    while "up" not in remote("logs", "web").stdout and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ok(remote("logs", "web")) == "up\n"
    assert ok(remote("exec", "web", "sh", "-c", "echo in-$HOSTNAME")) == f"in-{container_id[:12]}\n"
    assert remote("exec", "web", "sh", "-c", "exit 5").exit_code == 5
    assert ok(remote("stop", "-t", "1", "web")) == "web\n"
    assert ok(remote("ps", "-q")) == ""
    assert "Exited" in ok(remote("ps", "-a"))
    assert ok(remote("rm", "-f", "web")) == "web\n"
    assert ok(remote("ps", "-aq")) == ""
    assert remote("logs", "web").exit_code != 0


def test_rm_f_of_a_running_container(remote: Remote) -> None:
    ok(remote("run", "-d", "--name", "busy", "--network", "none", IMAGE, "sleep", "60"))
    assert remote("rm", "busy").exit_code != 0  # running: needs -f
    assert ok(remote("rm", "-f", "busy")) == "busy\n"
    assert ok(remote("ps", "-aq")) == ""


def test_volume_create_ls_rm(remote: Remote) -> None:
    assert ok(remote("volume", "create", "remote-vol")).strip() == "remote-vol"
    assert "remote-vol" in ok(remote("volume", "ls"))
    assert "remote-vol" in ok(remote("volume", "ls", "-q")).split()
    assert ok(remote("volume", "rm", "remote-vol")).strip() == "remote-vol"
    assert "remote-vol" not in ok(remote("volume", "ls", "-q")).split()


def test_network_create_ls_rm(remote: Remote) -> None:
    network_id = ok(remote("network", "create", "remote-net")).strip()
    assert network_id
    listing = ok(remote("network", "ls"))
    assert "remote-net" in listing and "bridge" in listing
    assert ok(remote("network", "rm", "remote-net")).strip() == "remote-net"
    assert "remote-net" not in ok(remote("network", "ls"))


def test_cp_both_ways(remote: Remote, tmp_path: Path) -> None:
    ok(remote("run", "-d", "--name", "files", "--network", "none", IMAGE, "sleep", "60"))
    source = tmp_path / "hello.txt"
    source.write_text("from the host\n")
    ok(remote("cp", str(source), "files:/tmp/"))
    ok(remote("cp", str(source), "files:/tmp/renamed.txt"))
    assert ok(remote("exec", "files", "cat", "/tmp/hello.txt")) == "from the host\n"
    assert ok(remote("exec", "files", "cat", "/tmp/renamed.txt")) == "from the host\n"
    ok(remote("exec", "files", "sh", "-c", "mkdir /out && echo from the container > /out/f.txt"))
    ok(remote("cp", "files:/out/f.txt", str(tmp_path / "back.txt")))
    assert (tmp_path / "back.txt").read_text() == "from the container\n"
    ok(remote("cp", "files:/out", str(tmp_path)))
    assert (tmp_path / "out" / "f.txt").read_text() == "from the container\n"
    assert remote("cp", "files:/no/such", str(tmp_path)).exit_code != 0


def test_inspect(remote: Remote) -> None:
    ok(remote("run", "-d", "--name", "seen", "--label", "a=b", "--network", "none", IMAGE, "sleep", "60"))
    [data] = json.loads(ok(remote("inspect", "seen")))
    assert data["Name"] == "/seen"
    assert data["State"]["Running"] is True
    assert data["Config"]["Labels"] == {"a": "b"}
    assert ok(remote("inspect", "--format", "{{.State.Status}}", "seen")).strip() == "running"
    [image] = json.loads(ok(remote("inspect", IMAGE)))
    assert image["Id"].startswith("sha256:")
    assert remote("inspect", "no-such-thing").exit_code != 0


def test_new_verbs_through_the_daemon(remote: Remote) -> None:
    """port, exec -d, update, --health-*, --restart, ps health and events, with -H."""
    started = remote(
        "run",
        "-d",
        "--name",
        "verbs",
        "-p",
        "127.0.0.1::80",
        "--health-cmd",
        "test -e /tmp/ready",
        "--health-interval",
        "200ms",
        "--restart",
        "on-failure:2",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
    )
    ok(started)
    assert ok(remote("port", "verbs", "80")).startswith("127.0.0.1:")
    assert ok(remote("exec", "-d", "verbs", "touch", "/tmp/ready")) == ""
    deadline = time.monotonic() + 30
    while "(healthy)" not in ok(remote("ps", "--filter", "name=verbs")):
        assert time.monotonic() < deadline, ok(remote("inspect", "verbs"))
        time.sleep(0.2)
    assert ok(remote("update", "--memory", "32m", "verbs")) == "verbs\n"
    shown = ok(remote("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.RestartPolicy.Name}}", "verbs"))
    assert shown == f"{32 * 1024 * 1024} on-failure\n"
    ok(remote("rm", "-f", "verbs"))
    actions = ok(
        remote("events", "--since", "5m", "--until", "0s", "-f", "container=verbs", "--format", "{{.Action}}")
    )
    assert {"create", "start", "destroy"} <= set(actions.split("\n")), actions

"""testcontainers-python against containerkitd, with Ryuk disabled (its image cannot be had offline)."""

from __future__ import annotations

import os
import urllib.request
from typing import Any

import pytest

from .conftest import DOCKER, IMAGE, Daemon


@pytest.fixture
def tc_env(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("testcontainers")
    monkeypatch.setenv("DOCKER_HOST", daemon.url)
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    monkeypatch.setenv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")


def test_httpd_with_wait_for_logs_and_exposed_port(tc_env: None) -> None:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    script = "mkdir -p /www && echo tc-ok > /www/index.html && echo ready && exec httpd -f -v -p 80 -h /www"
    command = f'sh -c "{script}"'
    with DockerContainer(IMAGE).with_command(command).with_exposed_ports(80) as container:
        wait_for_logs(container, "ready", timeout=20)
        port = container.get_exposed_port(80)
        host = container.get_container_host_ip()
        assert urllib.request.urlopen(f"http://{host}:{port}/", timeout=5).read() == b"tc-ok\n"
        code, output = container.exec("echo inside")
        assert (code, output) == (0, b"inside\n")


def test_daemon_socket_bind_mounted_into_a_container(tc_env: None, daemon: Daemon) -> None:
    """What Ryuk does: a Go docker client in a container drives the daemon through its socket.

    busybox has no unix-socket client, so the (static) docker CLI is mounted in beside the socket.
    """
    from testcontainers.core.container import DockerContainer

    if not os.path.exists(DOCKER):
        pytest.skip("the docker CLI (a static Go client) is not installed at /usr/local/bin/docker")
    command = ["docker", "-H", "unix:///var/run/docker.sock", "ps", "--format", "{{.Names}} {{.State}}"]
    container = (
        DockerContainer(IMAGE)
        .with_command(command)
        .with_env("DOCKER_CONFIG", "/tmp")
        .with_name("socket-user")
        .with_volume_mapping(str(daemon.socket), "/var/run/docker.sock", "rw")
        .with_volume_mapping(DOCKER, "/usr/bin/docker", "ro")
    )
    with container:
        wrapped: Any = container.get_wrapped_container()
        assert wrapped.wait(timeout=30)["StatusCode"] == 0, wrapped.logs()
        assert b"socket-user running" in wrapped.logs()

"""testcontainers-python against containerkitd, with Ryuk disabled (its image cannot be had offline)."""

from __future__ import annotations

import os
import urllib.request
from typing import Any

import pytest

from .conftest import IMAGE, Daemon


@pytest.fixture
def tc_env(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("testcontainers")
    monkeypatch.setenv("DOCKER_HOST", daemon.url)
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    monkeypatch.setenv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")


def test_httpd_with_wait_for_logs_and_exposed_port(tc_env: None) -> None:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    command = 'sh -c "mkdir -p /www && echo tc-ok > /www/index.html && echo ready && exec httpd -f -v -p 80 -h /www"'
    with DockerContainer(IMAGE).with_command(command).with_exposed_ports(80) as container:
        wait_for_logs(container, "ready", timeout=20)
        port = container.get_exposed_port(80)
        host = container.get_container_host_ip()
        assert urllib.request.urlopen(f"http://{host}:{port}/", timeout=5).read() == b"tc-ok\n"
        code, output = container.exec("echo inside")
        assert (code, output) == (0, b"inside\n")


def test_daemon_socket_bind_mounted_into_a_container(tc_env: None, daemon: Daemon) -> None:
    """What Ryuk does: talk to the daemon through its socket from inside a container."""
    from testcontainers.core.container import DockerContainer

    request = "printf 'GET /_ping HTTP/1.0\\r\\n\\r\\n' | nc local:/var/run/docker.sock"
    container = DockerContainer(IMAGE).with_command(["sh", "-c", request]).with_volume_mapping(
        str(daemon.socket), "/var/run/docker.sock", "rw"
    )
    with container:
        wrapped: Any = container.get_wrapped_container()
        assert wrapped.wait(timeout=30)["StatusCode"] == 0
        logs = wrapped.logs().decode()
        assert "200 OK" in logs and "Api-Version: 1.50" in logs and logs.endswith("OK")
    assert os.path.exists(daemon.socket)

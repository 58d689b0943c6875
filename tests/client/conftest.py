"""A real containerkitd on a temp socket and root, and a Client on it.

The ``engine`` fixture is that Client, so Engine tests imported here run through the daemon.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from containerkit.client import Client
from containerkit.errors import ContainerkitError, DaemonUnavailable

IMAGE = "example/busybox:latest"


@attrs.frozen
class Daemon:
    process: subprocess.Popen[bytes]
    root: Path
    socket: Path
    log: Path

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"


def start_daemon(base: Path, *extra: str) -> Daemon:
    """``python -m containerkit.daemon.main`` on ``base``/ck.sock, answering ``/_ping`` before return."""
    root, sock, log = base / "root", base / "ck.sock", base / "containerkitd.log"
    command = [
        sys.executable,
        "-m",
        "containerkit.daemon.main",
        "--root",
        str(root),
        "--host",
        f"unix://{sock}",
    ]
    with log.open("ab") as out:
        process = subprocess.Popen([*command, *extra], stdout=out, stderr=subprocess.STDOUT)
    daemon = Daemon(process, root, sock, log)
    client = Client(daemon.url, timeout=5)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"containerkitd exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if client.ping():
                return daemon
        except DaemonUnavailable:
            pass
        if time.monotonic() > deadline:
            stop_daemon(daemon)
            raise RuntimeError(
                f"containerkitd did not answer on {sock} within 60 s:\n{log.read_text()[-3000:]}"
            )
        time.sleep(0.05)


def stop_daemon(daemon: Daemon) -> None:
    if daemon.process.poll() is None:
        daemon.process.send_signal(signal.SIGTERM)
        try:
            daemon.process.wait(30)
        except subprocess.TimeoutExpired:
            daemon.process.kill()
            daemon.process.wait()


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    if os.geteuid() != 0:
        pytest.skip("needs root: containerkitd runs containers with namespaces, mounts and cgroups")
    base = tmp_path_factory.mktemp("ckd")
    daemon = start_daemon(base)
    yield daemon
    stop_daemon(daemon)


@pytest.fixture(scope="session")
def client(daemon: Daemon, busybox_rootfs_tar: Path) -> Iterator[Client]:
    with Client(daemon.url) as client:
        client.images.import_rootfs(busybox_rootfs_tar, IMAGE, config={"Cmd": ["sh"]})
        yield client
        for container in client.containers.list(all=True):
            with contextlib.suppress(ContainerkitError):
                container.remove(force=True)


@pytest.fixture(scope="session")
def engine(client: Client) -> Client:
    """The shared Engine suite's fixture name, bound to the Client."""
    return client

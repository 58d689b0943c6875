"""containerkitd on a temp unix socket and a temp root, shared by the daemon tests of a worker.

The daemon runs as a real subprocess (``python -m containerkit.daemon.main``), so the tests
see exactly what docker's clients see, and the restart tests can SIGTERM/SIGKILL it. At the
end every container is removed and nothing may be left in mounts, cgroups or processes.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import containerkit as ck

IMAGE = "busybox:latest"
DOCKER = "/usr/local/bin/docker"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


class Daemon:
    """One containerkitd process on ``socket``/``root``; can be stopped and started again."""

    def __init__(self, root: Path, socket_path: Path, log: Path) -> None:
        self.root = root
        self.socket = socket_path
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "containerkit.daemon.main",
                    "--root",
                    str(self.root),
                    "--host",
                    self.url,
                ],
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"containerkitd exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}"
                )
            try:
                conn = UnixHTTPConnection(str(self.socket), timeout=2)
                conn.request("GET", "/_ping")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("containerkitd did not answer within 30 s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = UnixHTTPConnection(str(self.socket))
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()


@contextlib.contextmanager
def serve(base: Path, busybox_rootfs_tar: Path, image: str = IMAGE) -> Iterator[Daemon]:
    """A containerkitd on ``base`` with the busybox image as ``image``; afterwards every container and network
    it made is removed, and nothing of them may be left on the host."""
    root = base / "root"
    with ck.Engine(root=root) as engine:
        engine.images.import_rootfs(busybox_rootfs_tar, image, config={"Cmd": ["sh"]})
    daemon = Daemon(root, base / "d.sock", base / "daemon.log")
    daemon.start()
    yield daemon
    daemon.stop()
    with ck.Engine(root=root) as engine:
        ids = [c.id for c in engine.containers.list(all=True)]
        for container in engine.containers.list(all=True):
            container.remove(force=True)
        for net in engine.networks.list():
            if net.name != "bridge":
                net.remove()
    leaks = [line for line in Path("/proc/mounts").read_text().splitlines() if str(root) in line]
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    leaks += [line for line in ps.splitlines() if any(i in line for i in ids)]
    # each hierarchy looked at by name: a recursive glob fails when another test's cgroup goes meanwhile
    cgroups = Path("/sys/fs/cgroup")
    hierarchies = [cgroups, *(h for h in cgroups.iterdir() if h.is_dir())]
    leaks += [
        str(h / "containerkit" / i) for h in hierarchies for i in ids if (h / "containerkit" / i).exists()
    ]
    assert leaks == [], leaks


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path) -> Iterator[Daemon]:
    if os.geteuid() != 0:
        pytest.skip("needs root: containers use namespaces, mounts and cgroups")
    with serve(tmp_path_factory.mktemp("ckd"), busybox_rootfs_tar) as running:
        yield running


@pytest.fixture(scope="session")
def client(daemon: Daemon) -> Iterator[Any]:
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=daemon.url, timeout=60)
    yield client
    client.close()


@pytest.fixture
def cli(daemon: Daemon) -> Any:
    """``cli("run", "--rm", IMAGE, "echo", "hi")`` -> CompletedProcess (text)."""
    binary = shutil.which("docker") or (DOCKER if os.path.exists(DOCKER) else None)
    if binary is None:
        pytest.skip("the docker CLI is not installed (/usr/local/bin/docker)")
    env = {
        **os.environ,
        "DOCKER_HOST": daemon.url,
        "DOCKER_CONFIG": str(daemon.root.parent / "docker-config"),
    }

    def run(*args: str, input: str | None = None, check: bool = True, timeout: float = 60) -> Any:
        result = subprocess.run(
            [binary, *args], capture_output=True, text=True, env=env, input=input, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} -> {result.returncode}: {result.stderr}")
        return result

    run.env = env  # type: ignore[attr-defined]
    run.binary = binary  # type: ignore[attr-defined]
    return run


# Debian's docker-registry on 127.0.0.1 (anonymous, htpasswd Basic) for the pull/push/login tests
from tests.images.registry.conftest import registry, registry_basic  # noqa: E402, F401

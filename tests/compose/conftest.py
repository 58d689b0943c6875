"""Debian's docker-compose (1.29.2, built on docker-py) against a containerkitd of this module's own.

The project in ``project/`` runs the busybox image the daemon fixture loads locally (nothing is pulled).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

from tests.daemon.conftest import Daemon, serve

PROJECT = Path(__file__).resolve().parent / "project"


@attrs.frozen
class Compose:
    """``docker-compose -p NAME`` on ``project/`` through ``daemon``'s socket."""

    binary: str
    name: str
    daemon: Daemon
    env: dict[str, str]

    def argv(self, *args: str) -> list[str]:
        return [
            self.binary,
            "-p",
            self.name,
            "--project-directory",
            str(PROJECT),
            "-f",
            str(PROJECT / "docker-compose.yml"),
            *args,
        ]

    def __call__(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 180,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            input=input,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker-compose {' '.join(args)} -> {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env
        )


@pytest.fixture(scope="module")
def compose_daemon(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path) -> Iterator[Daemon]:
    if os.geteuid() != 0:
        pytest.skip("needs root: containers use namespaces, mounts and cgroups")
    with serve(tmp_path_factory.mktemp("compose"), busybox_rootfs_tar) as running:
        yield running


@pytest.fixture(scope="module")
def make_compose(compose_daemon: Daemon) -> Iterator[Callable[[], Compose]]:
    """A factory of projects with fresh names; each one is brought down (``down -v``) at the end."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (Debian: apt-get install docker-compose)")
    env = {
        **os.environ,
        "DOCKER_HOST": compose_daemon.url,
        "DOCKER_CONFIG": str(compose_daemon.root.parent / "docker-config"),
    }
    made: list[Compose] = []

    def make() -> Compose:
        project = Compose(binary, f"ckc{uuid.uuid4().hex[:8]}", compose_daemon, env)
        made.append(project)
        return project

    yield make
    for project in made:
        project("down", "-v", "--remove-orphans", "-t", "1", check=False)

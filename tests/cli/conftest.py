"""The command line run through its entry point against an Engine on a temp root with busybox."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

IMAGE = "example/busybox"

Ck = Callable[..., Result]


@pytest.fixture(scope="session")
def cli_root(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root: containers use namespaces, mounts and cgroups")
    root = tmp_path_factory.mktemp("cli-root")
    result = invoke(root, "import", "--change", 'CMD ["sh"]', str(busybox_rootfs_tar), IMAGE)
    assert result.exit_code == 0, result.output
    yield root
    invoke(root, "system", "prune", "-f", "--volumes")
    assert leftovers(root) == []


def invoke(root: Path, *args: str, input: bytes | str | None = None) -> Result:
    from containerkit.cli.main import cli

    return CliRunner().invoke(cli, ["--root", str(root), *args], input=input)


@pytest.fixture
def ck(cli_root: Path) -> Iterator[Ck]:
    """``ck("ps", "-a")``: run the CLI on the test root; every container is gone afterwards."""

    def run(*args: str, input: bytes | str | None = None) -> Result:
        return invoke(cli_root, *args, input=input)

    yield run
    ids = run("ps", "-aq").stdout.split()
    if ids:
        run("rm", "-f", *ids)
    assert run("ps", "-aq").stdout.split() == [], "a container survived rm -f"


def leftovers(root: Path) -> list[str]:
    """Mounts and processes of the root still on the host."""
    with open("/proc/mounts") as mounts:
        found = [line.strip() for line in mounts if str(root) in line]
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return found + [line for line in ps.splitlines() if str(root) in line and "pytest" not in line]


def subprocess_ck(root: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m containerkit.cli --root ROOT ARGS`` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "containerkit.cli", "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=60,
        input=input,
    )


# Debian's docker-registry on 127.0.0.1 (anonymous, htpasswd Basic) for the registry verbs
from tests.images.registry.conftest import registry, registry_basic  # noqa: E402, F401

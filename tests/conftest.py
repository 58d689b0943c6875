"""Shared fixtures: test images are built here, from Debian's static busybox, never pulled."""

from __future__ import annotations

import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# pytester drives inner pytest sessions for the plugin tests (tests/plugin).
pytest_plugins = ["pytester"]

BUSYBOX = Path("/bin/busybox")


def write_busybox_rootfs_tar(path: Path) -> Path:
    """A minimal rootfs: static busybox, every applet as a symlink, /etc/passwd and /etc/group."""
    if not BUSYBOX.exists():
        pytest.skip("Debian's busybox-static is not installed (/bin/busybox missing)")
    from containerkit.images.busybox import write_busybox_rootfs

    return write_busybox_rootfs(path)


@pytest.fixture(scope="session", autouse=True)
def _sweep_engine_roots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the session, whatever the tests' engine roots still hold on the host goes.

    pytest keeps the temp dirs of recent runs, so a root a test (or a daemon it killed) left
    with containers or bridges would keep them on the host; this is the backstop, the tests
    themselves check that removal leaves nothing. Set up first, so it runs after every other
    session fixture (daemons included) has finished.
    """
    yield
    if os.geteuid() != 0:
        return
    import containerkit as ck
    from containerkit.errors import ContainerkitError
    from containerkit.linux.cgroups import remove_if_empty

    base = tmp_path_factory.getbasetemp()
    roots = [Path(d) for d, _dirs, files in os.walk(base) if "metadata.db" in files]  # no symlinks followed
    for root in sorted(roots):
        try:
            with ck.Engine(root=root, forkserver=False) as engine:
                for container in engine.containers.list(all=True):
                    container.remove(force=True)
                for network in engine.networks.list():
                    if network.name != "bridge":
                        network.remove()
        except ContainerkitError:
            continue
    remove_if_empty("containerkit")


@pytest.fixture(scope="session")
def busybox_rootfs_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of an uncompressed tar of a busybox rootfs (built once per session)."""
    return write_busybox_rootfs_tar(tmp_path_factory.mktemp("busybox") / "rootfs.tar")


@pytest.fixture(scope="session")
def busybox_rootfs_dir(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path) -> Path:
    """The same rootfs extracted to a directory (for runtime tests that need no image store)."""
    target = tmp_path_factory.mktemp("busybox-dir")
    with tarfile.open(busybox_rootfs_tar) as tar:
        # our own archive; extraction filters exist only from 3.11.4 (Debian 12 has 3.11.2)
        tar.extractall(target, **({"filter": "fully_trusted"} if hasattr(tarfile, "data_filter") else {}))
    return target


def child_pids() -> set[int]:
    """Live child processes of this one, any thread's (a test's servers, and any helper process
    a call it made left running)."""
    found: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as f:
            found.update(int(pid) for pid in f.read().split())
    return found


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: containers use namespaces, mounts and cgroups")


def require_binary(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed")
    return found

"""An Engine on a temp root with the busybox test image, shared by the engine tests of a worker."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import containerkit as ck

IMAGE = "example/busybox:latest"


@pytest.fixture(scope="session")
def engine_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("needs root: containers use namespaces, mounts and cgroups")
    return tmp_path_factory.mktemp("engine-root")


@pytest.fixture(scope="session")
def engine(engine_root: Path, busybox_rootfs_tar: Path) -> Iterator[ck.Engine]:
    with ck.Engine(root=engine_root) as eng:
        eng.images.import_rootfs(busybox_rootfs_tar, IMAGE, config={"Cmd": ["sh"]})
        yield eng
        for container in eng.containers.list(all=True):
            container.remove(force=True)


def leftovers(container_id: str) -> list[str]:
    """Everything of a container the host may still hold: mounts, cgroups, processes."""
    found = []
    with open("/proc/mounts") as mounts:
        found += [line.strip() for line in mounts if container_id in line]
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        path = hierarchy / "containerkit" / container_id
        if path.exists():
            found.append(str(path))
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    found += [line for line in ps.splitlines() if container_id in line]
    return found

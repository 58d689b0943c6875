"""An Engine on a temp root with the busybox test image, for the builder's tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import containerkit as ck
from containerkit.engine.builder import BUILD_OWNER_LABEL

BASE = "example/busybox:latest"


@pytest.fixture(scope="session")
def build_engine(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs_tar: Path) -> Iterator[ck.Engine]:
    if os.geteuid() != 0:
        pytest.skip("needs root: RUN steps are containers")
    root = tmp_path_factory.mktemp("build-root")
    with ck.Engine(root=root) as eng:
        eng.images.import_rootfs(busybox_rootfs_tar, BASE, config={"Cmd": ["sh"]})
        yield eng
        for container in eng.containers.list(all=True):
            container.remove(force=True)


@pytest.fixture
def no_build_containers(build_engine: ck.Engine) -> Iterator[None]:
    """Each test leaves no intermediate container behind (checked, then cleaned)."""
    yield
    left = build_engine.containers.list(all=True, filters={"label": [BUILD_OWNER_LABEL]})
    for container in left:
        container.remove(force=True)
    assert [c.id for c in left] == []


# containerkitd with the busybox image as busybox:latest, docker-py and the docker CLI on it
from tests.daemon.conftest import cli, client, daemon  # noqa: E402, F401
from tests.images.registry.conftest import registry, registry_basic  # noqa: E402, F401

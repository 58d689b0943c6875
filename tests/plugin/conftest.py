"""The plugin's own fixtures run these tests, on an engine root of this session (never the
default /var/lib/containerkit), with the busybox test image imported once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

IMAGE = "example/busybox:latest"


@pytest.fixture(scope="session", autouse=True)
def plugin_root(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Points the plugin at a temp root before any of its fixtures opens the engine."""
    root = tmp_path_factory.mktemp("containerkit-root")
    previous = request.config.option.containerkit_root
    request.config.option.containerkit_root = str(root)
    yield root
    request.config.option.containerkit_root = previous


@pytest.fixture(scope="session")
def busybox(containerkit_engine: Any, busybox_rootfs_tar: Path) -> str:
    containerkit_engine.images.import_rootfs(busybox_rootfs_tar, IMAGE, config={"Cmd": ["sh"]})
    return IMAGE


@pytest.fixture
def inner(pytester: pytest.Pytester, plugin_root: Path, busybox: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Runs an inner pytest session in a subprocess on the same engine root."""
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_TESTRUNUID", "PYTEST_ADDOPTS", "CONTAINERKIT_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CONTAINERKIT_ROOT", str(plugin_root))

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)

    return run


def session_containers(engine: Any) -> list[Any]:
    """Every container on the root that some test session labelled."""
    return engine.containers.list(all=True, filters={"label": "containerkit.session"})


def is_root() -> bool:
    return os.geteuid() == 0

"""Opening a root whose default bridge is up: what every command-line verb pays after a bridge run.

A ``docker0``-like bridge stays up between commands, so each later ``containerkit run
--network none`` opens (and recovers) a root with a network: that recovery must not load
pyroute2 (about 150-250 ms of import and event loop), and still removes a stray veth of the root.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import containerkit as ck
from containerkit.engine.network_service import link_prefix

IMAGE = "example/busybox:latest"


@pytest.fixture
def bridged_root(tmp_path: Path, busybox_rootfs_tar: Path) -> Iterator[Path]:
    """A root whose default bridge is up and no container runs (as after ``run --rm`` on it)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: containers use namespaces, mounts, cgroups and veths")
    root = tmp_path / "root"
    engine = ck.Engine(root=root, forkserver=False)
    try:
        engine.images.import_rootfs(busybox_rootfs_tar, IMAGE, config={"Cmd": ["sh"]})
        container = engine.containers.run(IMAGE, ["true"], network="bridge")
        assert container.wait(timeout=30) == 0
        container.remove()
    finally:
        engine.close(release_network=False)
    assert _links(link_prefix(root) + "b"), "the default bridge is not up"
    yield root
    with ck.Engine(root=root, forkserver=False):  # closing takes the default bridge down
        pass
    assert _links(link_prefix(root)) == []


def _links(prefix: str) -> list[str]:
    return sorted(n for n in os.listdir("/sys/class/net") if n.startswith(prefix))


def _open_and_list_modules(root: Path) -> set[str]:
    code = (
        "import json, sys\nfrom containerkit.engine.engine import Engine\n"
        f"Engine(root={str(root)!r}, forkserver=False).close(release_network=False)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout))


def test_opening_a_root_with_its_bridge_up_loads_no_pyroute2(bridged_root: Path) -> None:
    loaded = _open_and_list_modules(bridged_root)
    assert "containerkit.engine.network_service" in loaded  # the recovery did run
    assert "pyroute2" not in loaded


def test_opening_a_root_removes_a_stray_veth_of_it(bridged_root: Path) -> None:
    # a crash between creating a pair and recording its endpoint leaves such a pair
    stray = link_prefix(bridged_root) + "v0000000"
    subprocess.run(["ip", "link", "add", stray, "type", "veth", "peer", "name", "ckstraypeer"], check=True)
    try:
        assert stray in _links(stray)
        loaded = _open_and_list_modules(bridged_root)
        assert _links(stray) == []
        assert "pyroute2" not in loaded
    finally:
        if _links(stray):
            subprocess.run(["ip", "link", "del", stray], check=False)

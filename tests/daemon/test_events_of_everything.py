"""What an in-process Engine does on the daemon's root, of every kind issue 12 names, reaches
docker-py through ``GET /events`` with docker's types, actions, attributes and filters: a
network's create/connect/disconnect/destroy, a volume's create/mount/unmount/destroy, a
container's oom before its die, an image's load/import/tag/untag/delete/push/pull."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import containerkit as ck
from containerkit.engine.frontend import nftables_missing
from tests.images.registry.servers import Registry

from .conftest import IMAGE, Daemon


@pytest.fixture
def local(daemon: Daemon) -> Iterator[ck.Engine]:
    with ck.Engine(root=daemon.root, forkserver=False) as engine:
        yield engine


def _seen(client: Any, since: float, until: float, **filters: str) -> list[tuple[str, str, str]]:
    """(type, action, actor id) docker-py decodes for ``filters``."""
    events = client.events(since=since, until=until, decode=True, filters=filters or None)
    return [(e["Type"], e["Action"], e["Actor"]["ID"]) for e in events]


def test_network_volume_oom_and_image_events_reach_docker_py(
    client: Any, local: ck.Engine, registry: Registry, busybox_rootfs_tar: Path, tmp_path: Path
) -> None:
    if nftables_missing():
        pytest.skip(nftables_missing() or "")
    since = time.time()
    net = local.networks.create("ev-all-net")
    local.volumes.create("ev-all-vol")
    on = local.containers.run(IMAGE, ["true"], network="ev-all-net", mounts=["ev-all-vol:/data"])
    assert on.wait(timeout=30) == 0
    on.remove()
    net.remove()
    local.volumes.remove("ev-all-vol")
    oom = local.containers.run(
        IMAGE, 'x="$(head -c 100000000 /dev/zero | tr "\\0" a)"', resources={"memory": "24m"}, network="none"
    )
    assert oom.wait(timeout=60) == 137
    oom.remove()

    archive = tmp_path / "busybox.tar"
    local.images.save(IMAGE, archive)
    loaded = local.images.load(archive)[0]
    own = local.images.import_rootfs(busybox_rootfs_tar, "example/ev-all:own", config={"Cmd": ["true"]})
    local.images.remove("example/ev-all:own")  # its only name: untagged and deleted
    ref = f"{registry.host}/ev/all:1"
    local.images.tag(IMAGE, ref)
    local.images.push(ref)
    local.images.remove(ref)
    pulled = local.images.pull(ref)
    local.images.remove(ref)
    until = time.time()

    assert _seen(client, since, until, type="network", network=net.id) == [
        ("network", "create", net.id),
        ("network", "connect", net.id),
        ("network", "disconnect", net.id),
        ("network", "destroy", net.id),
    ]
    connect = next(
        e for e in client.events(since=since, until=until, decode=True, filters={"event": "connect"})
    )
    assert connect["Actor"]["Attributes"]["container"] == on.id
    assert [a for _, a, _ in _seen(client, since, until, volume="ev-all-vol")] == [
        "create",
        "mount",
        "unmount",
        "destroy",
    ]
    assert [a for _, a, _ in _seen(client, since, until, container=oom.id)] == [
        "create",
        "start",
        "oom",
        "die",
        "destroy",
    ]
    images = _seen(client, since, until, type="image")
    assert ("image", "load", loaded.id) in images
    assert [a for _, a, i in images if i == own.id] == ["import", "untag", "delete"]
    assert [a for _, a, _ in _seen(client, since, until, type="image", image=ref)] == [
        "tag",
        "push",
        "untag",
        "pull",
        "untag",
    ]
    assert pulled.id == loaded.id

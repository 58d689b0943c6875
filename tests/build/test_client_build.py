"""client.images.build against containerkitd: the same events and image as the in-process engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import containerkit as ck
from containerkit.errors import BuildError
from containerkit.spec import BuildEvent


def test_client_build_streams_events_and_returns_the_image(daemon: Any, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "a.txt").write_text("a\n")
    outside = tmp_path / "Containerfile"
    outside.write_text(
        'FROM busybox:latest\nCOPY a.txt /a.txt\nRUN echo out; echo err >&2\nCMD ["cat", "/a.txt"]\n'
    )
    events: list[BuildEvent] = []
    with ck.Client(daemon.url) as client:
        image = client.images.build(
            context, dockerfile=str(outside), tag="ckbuild/client:1", progress=events.append
        )
        assert "ckbuild/client:1" in image.tags
        assert [e.step for e in events if e.kind == "step"] == [1, 2, 3, 4]
        assert BuildEvent(kind="output", text="out\n") in events
        assert BuildEvent(kind="output", text="err\n", stream="stderr") in events
        assert [e.kind for e in events][-3:] == ["stage", "built", "tagged"]
        container = client.containers.run(image.id, network="none")
        try:
            assert container.wait() == 0
            assert container.logs() == b"a\n"
        finally:
            container.remove(force=True)

        (context / "Dockerfile").write_text("FROM busybox:latest\nRUN exit 7\n")
        with pytest.raises(BuildError, match="returned a non-zero code: 7") as caught:
            client.images.build(context)
        assert caught.value.exit_code == 7


def test_client_login_authorises_a_build_from_a_private_base(
    daemon: Any, registry_basic: Any, busybox_rootfs_tar: Path, tmp_path: Path
) -> None:
    user, password = registry_basic.credentials
    remote = f"{registry_basic.host}/private/base:1"
    with ck.Engine(root=tmp_path / "pusher") as pusher:
        pusher.images.import_rootfs(busybox_rootfs_tar, remote, config={"Cmd": ["sh"]})
        pusher.images.push(remote, auth=ck.RegistryAuth(username=user, password=password))
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {remote}\nRUN echo from-private > /p\n")
    with ck.Client(daemon.url) as client:
        with pytest.raises(ck.ContainerkitError, match="unauthorized"):
            client.images.build(context)
        client.registries.login(registry_basic.host, user, password)
        image = client.images.build(context, tag="ckbuild/private-base:1")
        assert "ckbuild/private-base:1" in image.tags

"""Container.diff / commit / export and images.history through a Client on a real containerkitd:
the same shapes the Engine returns."""

from __future__ import annotations

import contextlib
import io
import tarfile

import containerkit as ck
from containerkit.client import Client

from .conftest import IMAGE


def test_client_diff_commit_history_export(client: Client) -> None:
    container = client.containers.run(IMAGE, ["sh", "-c", "echo hi > /tmp/x; rm /bin/ls"])
    image = None
    try:
        assert container.wait(timeout=30) == 0
        assert container.diff() == [
            ck.Change("/bin", "C"),
            ck.Change("/bin/ls", "D"),
            ck.Change("/tmp", "C"),
            ck.Change("/tmp/x", "A"),
        ]
        image = container.commit("example/client-commit", "v1", changes=["ENV A=1"], message="note")
        assert image.tags == ("example/client-commit:v1",)
        assert "A=1" in image.config.env
        steps = client.images.history("example/client-commit:v1")
        assert [s.id for s in steps[:2]] == [image.id, client.images.get(IMAGE).id]
        assert steps[0].comment == "note" and steps[0].tags == ("example/client-commit:v1",)
        assert steps[0].created is not None and steps[0].size > 0 and not steps[0].empty_layer
        with tarfile.open(fileobj=io.BytesIO(b"".join(container.export()))) as tar:
            member = tar.extractfile("tmp/x")
            assert member is not None and member.read() == b"hi\n"
            assert "bin/ls" not in tar.getnames()
    finally:
        container.remove(force=True)
        if image is not None:
            with contextlib.suppress(ck.NotFound):
                client.images.remove(image.id, force=True)


def test_client_diff_of_an_unchanged_container_is_empty(client: Client) -> None:
    container = client.containers.create(image=IMAGE, command=["true"])
    try:
        assert container.diff() == []
    finally:
        container.remove(force=True)

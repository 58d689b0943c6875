"""The ``containerkit_image`` fixture given an image name: the engine's image, pulled from its
registry (Debian's docker-registry on 127.0.0.1) when the engine does not have it."""

from __future__ import annotations

from typing import Any

import pytest

from containerkit.errors import NotFound
from containerkit.testing.images import looks_like_path
from tests.images.registry.conftest import registry as local_registry  # noqa: F401 - fixture
from tests.images.registry.servers import Registry


def test_a_name_that_is_not_local_is_pulled(
    containerkit_engine: Any,
    containerkit_busybox: Any,
    containerkit_image: Any,
    containerkit_run: Any,
    local_registry: Registry,  # noqa: F811 - the fixture imported above
) -> None:
    ref = f"{local_registry.host}/fixture/app:1"
    containerkit_engine.images.tag(containerkit_busybox.id, ref)
    digest = containerkit_engine.images.push(ref)
    containerkit_engine.images.remove(ref)
    with pytest.raises(NotFound):
        containerkit_engine.images.get(ref)
    image = containerkit_image(ref)
    assert ref in image.tags and f"{ref.rsplit(':', 1)[0]}@{digest}" in image.digests
    assert containerkit_image(ref).id == image.id  # found locally the second time
    retagged = containerkit_image(ref, tag="fixture/renamed:2")
    assert "fixture/renamed:2" in retagged.tags
    container = containerkit_run(ref, ["echo", "pulled-by-the-fixture"])
    assert container.wait(timeout=10) == 0 and container.logs() == b"pulled-by-the-fixture\n"
    containerkit_engine.images.remove("fixture/renamed:2")


def test_a_missing_file_is_still_a_missing_file(containerkit_image: Any) -> None:
    with pytest.raises(NotFound, match="no-such-rootfs"):
        containerkit_image("no-such-rootfs/")
    with pytest.raises(NotFound, match=r"missing\.tar"):
        containerkit_image("images/missing.tar")


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("./rootfs", True),
        ("/abs/rootfs", True),
        ("rootfs/", True),
        ("images/base.tar.gz", True),
        ("busybox", False),
        ("127.0.0.1:5000/team/app:1.2", False),
        ("busybox@sha256:" + "0" * 64, False),
    ],
)
def test_what_counts_as_a_path(text: str, path: bool) -> None:
    assert looks_like_path(text) is path

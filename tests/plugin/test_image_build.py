"""containerkit_image(dockerfile=...): a test builds its image from a Dockerfile beside it."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import IMAGE, is_root

pytestmark = pytest.mark.skipif(not is_root(), reason="needs root: the build runs containers")


def test_image_fixture_builds_a_dockerfile(pytester: pytest.Pytester, inner: Any) -> None:
    app = pytester.path / "app"
    app.mkdir()
    (app / "Dockerfile").write_text(
        f'FROM {IMAGE}\nARG WORD=default\nCOPY greeting.txt /\nRUN echo "$WORD" >> /greeting.txt\n'
        'CMD ["cat", "/greeting.txt"]\n'
    )
    (app / "greeting.txt").write_text("hello\n")
    pytester.makepyfile(
        """
def test_built(containerkit_image, containerkit_run):
    image = containerkit_image(dockerfile="app/Dockerfile", buildargs={"WORD": "built"}, tag="fixture/app:1")
    assert "fixture/app:1" in image.tags
    again = containerkit_image(dockerfile="app/Dockerfile", buildargs={"WORD": "built"})
    assert again.id == image.id
    c = containerkit_run(image.id)
    assert c.wait(timeout=10) == 0
    assert c.logs() == b"hello\\nbuilt\\n"
"""
    )
    inner().assert_outcomes(passed=1)

"""The user a container runs as is resolved in its image once per image and user string (the
image's files never change): each container still gets its own user, and a user the image
lacks is refused every time."""

from __future__ import annotations

import json

import pytest

import containerkit as ck

from .conftest import IMAGE


def _user(container: ck.Container) -> dict[str, object]:
    config = json.loads((container.state_dir / "bundle" / "config.json").read_text())
    return dict(config["process"]["user"])


def test_each_create_gets_its_own_user(engine: ck.Engine) -> None:
    made = []
    try:
        for user, uid, gid, extra in [
            (None, 0, 0, []),
            ("app", 1000, 1000, [2000]),
            (None, 0, 0, []),
            ("app:root", 1000, 0, []),
            ("app", 1000, 1000, [2000]),
        ]:
            container = engine.containers.create(image=IMAGE, command=["true"], network="none", user=user)
            made.append(container)
            found = _user(container)
            assert (found["uid"], found["gid"], found.get("additionalGids", [])) == (uid, gid, extra), user
        for _ in range(2):
            with pytest.raises(ck.NotFound, match="unable to find user ghost"):
                engine.containers.create(image=IMAGE, command=["true"], network="none", user="ghost")
    finally:
        for container in made:
            container.remove(force=True)

"""One reading of docker's filters for every collection, and the volume list's filters."""

from __future__ import annotations

import pytest

import containerkit as ck
from containerkit.spec import normalise_filters
from tests.engine.conftest import IMAGE


def test_every_shape_callers_and_the_wire_use() -> None:
    given = {"status": "running", "label": ["a=1", "b"], "dangling": True, "id": {"ab": True, "cd": False}}
    assert normalise_filters(given, ("status", "label", "dangling", "id")) == {
        "status": ["running"],
        "label": ["a=1", "b"],
        "dangling": ["true"],
        "id": ["ab"],
    }
    with pytest.raises(ck.InvalidArgument, match="invalid filter 'colour'"):
        normalise_filters({"colour": "red"}, ("status",))


@pytest.mark.parametrize("collection", ["containers", "images", "networks", "volumes"])
def test_each_collection_refuses_an_unknown_filter_by_name(engine: ck.Engine, collection: str) -> None:
    with pytest.raises(ck.InvalidArgument, match="invalid filter 'colour'"):
        getattr(engine, collection).list(filters={"colour": "red"})


def test_volume_list_filters(engine: ck.Engine) -> None:
    used = engine.volumes.create("filt-used", labels={"team": "a"})
    unused = engine.volumes.create("filt-unused", labels={"team": "b"})
    container = engine.containers.create(
        image=IMAGE,
        command=["true"],
        network="none",
        mounts=[ck.Mount(type="volume", source=used.name, target="/v")],
    )
    try:
        names = lambda **f: {v.name for v in engine.volumes.list(filters=f)} & {used.name, unused.name}  # noqa: E731
        assert names(label="team=a") == {used.name}
        assert names(label=["team"]) == {used.name, unused.name}
        assert names(name="filt-un") == {unused.name}
        assert names(dangling=True) == {unused.name}
        assert names(dangling="false") == {used.name}
        assert names(driver="local") == {used.name, unused.name}
    finally:
        container.remove(force=True)
        engine.volumes.remove(used.name)
        engine.volumes.remove(unused.name)

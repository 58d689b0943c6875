"""A removal commits its "removing" without a sync: a power cut can lose it, and the record's
deletion, after the removal moved the container's state dir and snapshot away. Recovery takes
such a record apart. A power cut cannot be made here: the test leaves what one can leave, the
record still created and the container's dirs moved into the trash as a removal moves them."""

from __future__ import annotations

import contextlib

import pytest

import containerkit as ck

from .conftest import IMAGE, leftovers


@pytest.mark.parametrize("lost", [("state", "snapshot"), ("snapshot",), ("state",)], ids="+".join)
def test_recovery_finishes_a_removal_a_power_cut_undid(engine: ck.Engine, lost: tuple[str, ...]) -> None:
    whole = engine.containers.create(image=IMAGE, command=["true"], network="none")
    undone = engine.containers.run(IMAGE, ["true"], network="none")
    try:
        assert undone.wait(timeout=30) == 0
        service = engine.container_service
        if "snapshot" in lost:
            service.snapshots.remove(undone.id, wait=False)
        if "state" in lost:
            service.snapshots.discard_dir(undone.state_dir)
        assert engine.containers.get(undone.id).id == undone.id  # still recorded, as created
        assert undone.id in engine.recover()
        with pytest.raises(ck.NotFound):
            engine.containers.get(undone.id)
        assert not undone.state_dir.exists()
        assert not service.snapshots.exists(undone.id)
        assert leftovers(undone.id) == []
        # a container with both of its dirs is kept, and still runs
        assert whole.id not in engine.recover()
        assert engine.containers.get(whole.id).status == "created"
        whole.start()
        assert whole.wait(timeout=30) == 0
    finally:
        whole.remove(force=True)
        with contextlib.suppress(ck.NotFound):
            undone.remove(force=True)

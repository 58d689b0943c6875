"""Listing containers reads the metadata and one directory, not every container's state dir,
and still shows what happened behind the lister's back (exits, starts, pauses by others)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import containerkit as ck
from containerkit.runtime.task import Task
from tests.engine.conftest import IMAGE


@pytest.fixture
def sleepers(engine: ck.Engine) -> Iterator[list[ck.Container]]:
    made = [engine.containers.run(IMAGE, ["sleep", "60"], network="none") for _ in range(3)]
    yield made
    for container in made:
        container.remove(force=True)


def _listed(engine: ck.Engine, container: ck.Container) -> ck.Container:
    return next(c for c in engine.containers.list(all=True) if c.id == container.id)


def test_a_list_of_unchanged_containers_reads_no_state_dir(
    engine: ck.Engine, sleepers: list[ck.Container], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.containers.list(all=True)  # whatever changed before is recorded now
    live = {c.id: (c.pid, c.started_at) for c in sleepers}
    reads: list[str] = []
    original = Task.state

    def counting(task: Task) -> object:
        reads.append(task.id)
        return original(task)

    monkeypatch.setattr(Task, "state", counting)
    listed = {c.id: c for c in engine.containers.list()}
    assert {c.id for c in sleepers} <= set(listed)
    for container in sleepers:
        seen = listed[container.id]
        assert (seen.status, seen.exit_code) == ("running", None)
        assert (seen.pid, seen.started_at) == live[container.id]
    assert reads == []


def test_an_exit_behind_the_listers_back_shows_in_the_next_list(engine: ck.Engine) -> None:
    container = engine.containers.run(IMAGE, ["sh", "-c", "sleep 0.3; exit 7"], network="none")
    try:
        assert _listed(engine, container).status == "running"
        deadline = time.monotonic() + 10
        while Path(engine.root / "running" / container.id).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        # The shim drops its marker before it records the exit: a list in between re-reads the
        # state (running still), and every list after the record shows the exit.
        seen = _listed(engine, container)
        while seen.status == "running" and time.monotonic() < deadline:
            time.sleep(0.01)
            seen = _listed(engine, container)
        assert (seen.status, seen.exit_code, seen.pid) == ("exited", 7, None)
        assert seen.finished_at and seen.finished_at >= (seen.started_at or "")
        assert container.id not in {c.id for c in engine.containers.list()}
    finally:
        container.remove(force=True)


def test_another_engine_on_the_root_sees_starts_pauses_and_stops(
    engine: ck.Engine, engine_root: Path
) -> None:
    container = engine.containers.create(image=IMAGE, command=["sleep", "60"], network="none")
    try:
        with ck.Engine(engine_root) as other:
            assert _listed(other, container).status == "created"
            container.start()
            assert _listed(other, container).status == "running"
            container.pause()
            assert _listed(other, container).status == "paused"
            container.unpause()
            container.kill()
            container.wait_exit(10)
            seen = _listed(other, container)
            assert (seen.status, seen.exit_code) == ("exited", 137)
            assert not (engine_root / "running" / container.id).exists()
            container.start()  # started again: the list follows
            assert _listed(other, container).status == "running"
    finally:
        container.remove(force=True)
    assert not (engine_root / "running" / container.id).exists()


def test_a_listed_handle_turns_live_when_used(engine: ck.Engine, sleepers: list[ck.Container]) -> None:
    seen = _listed(engine, sleepers[0])
    assert seen.status == "running"
    sleepers[0].kill()
    sleepers[0].wait_exit(10)
    assert seen.status == "running"  # as of the list, like docker's attrs
    assert seen.reload().status == "exited"


def test_a_killed_shims_marker_is_reaped(engine: ck.Engine, engine_root: Path) -> None:
    container = engine.containers.run(IMAGE, ["sleep", "60"], network="none")
    try:
        marker = engine_root / "running" / container.id
        assert marker.exists()
        marker_of_gone = engine_root / "running" / ("f" * 64)
        marker_of_gone.touch()
        with ck.Engine(engine_root):  # an engine opening the root recovers
            pass
        assert marker.exists() and not marker_of_gone.exists()
    finally:
        container.remove(force=True)


def test_a_handle_found_before_a_removal_looks_gone_not_created(engine: ck.Engine) -> None:
    """An inspect that found the record just before a removal took the state dir answers
    NotFound (a client waiting on a --rm container then reads the kept exit code)."""
    container = engine.containers.run(IMAGE, ["true"], network="none")
    found_before = engine.containers.get(container.id)
    container.wait_exit(10)
    container.remove()
    with pytest.raises(ck.NotFound, match=container.id):
        found_before.look()

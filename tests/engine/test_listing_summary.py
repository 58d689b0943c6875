"""``GET /containers/json``'s rows (the daemon's summary of each listed handle, with health for
``docker ps``'s ``(healthy)``) keep the list's view: no container's state file is read and no
cgroup asked whether it is paused, so a list through the daemon stays as cheap as the engine's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import containerkit as ck
from containerkit.daemon.shapes import container_summary
from containerkit.runtime.task import Task
from tests.engine.conftest import IMAGE


@pytest.fixture
def sleepers(engine: ck.Engine) -> Iterator[list[ck.Container]]:
    made = [engine.containers.run(IMAGE, ["sleep", "60"], network="none") for _ in range(3)]
    yield made
    for container in made:
        container.remove(force=True)


def test_the_daemons_rows_read_no_state_and_no_cgroup(
    engine: ck.Engine, sleepers: list[ck.Container], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.containers.list(all=True)  # whatever changed before is recorded now
    reads: list[str] = []
    state, paused = Task.state, Task.paused

    def counting_state(task: Task) -> object:
        reads.append(f"state {task.id}")
        return state(task)

    def counting_paused(task: Task) -> bool:
        reads.append(f"paused {task.id}")
        return paused(task)

    monkeypatch.setattr(Task, "state", counting_state)
    monkeypatch.setattr(Task, "paused", counting_paused)
    rows = {row["Id"]: row for row in map(container_summary, engine.containers.list())}
    for container in sleepers:
        assert rows[container.id]["State"] == "running"
        assert rows[container.id]["Status"].startswith("Up ")
    assert reads == []

"""The daemon's exec records on disk (pure: no daemon, no container)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from containerkit.daemon.execs import ExecRegistry
from containerkit.errors import NotFound


def test_records_outlive_the_registry(tmp_path: Path) -> None:
    first = ExecRegistry(tmp_path)
    done = first.create("c1", ["sh", "-c", "exit 3"], tty=True)
    first.started(done, 42)
    first.finish(done, 3)
    running = first.create("c1", ["sleep", "60"])
    running.started = True
    first.started(running, 43)
    never = first.create("c2", ["true"])
    second = ExecRegistry(tmp_path)  # a daemon restart
    again = second.get(done.id)
    assert (again.exit_code, again.running, again.pid, again.tty, again.argv) == (
        3,
        False,
        42,
        True,
        done.argv,
    )
    assert again.done.is_set()
    lost = second.get(running.id)  # its status went with the daemon
    assert (lost.running, lost.exit_code) == (False, None)
    assert second.get(never.id).started is False
    assert sorted(second.for_container("c1")) == sorted([done.id, running.id])
    assert json.loads((tmp_path / f"{running.id}.json").read_text())["running"] is False
    with pytest.raises(NotFound, match="No such exec instance"):
        second.get("f" * 64)


def test_old_records_are_dropped(tmp_path: Path) -> None:
    registry = ExecRegistry(tmp_path)
    finished = registry.create("c1", ["true"])
    registry.finish(finished, 0)
    unstarted = registry.create("c1", ["true"])
    kept = registry.create("c1", ["true"])
    long_ago = time.time() - 3600
    for record, field in ((finished, "finished_at"), (unstarted, "created_at")):
        path = tmp_path / f"{record.id}.json"
        data = json.loads(path.read_text())
        data[field] = long_ago
        path.write_text(json.dumps(data))
    (tmp_path / "broken.json").write_text("{not json")
    reloaded = ExecRegistry(tmp_path)
    assert reloaded.for_container("c1") == [kept.id]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{kept.id}.json"]

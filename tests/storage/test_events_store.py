"""Schema v5: the event log, its keys (one recording per key) and its retention."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from containerkit.spec import Event
from containerkit.storage.metadata import _MIGRATIONS, SCHEMA_VERSION, Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    store = Database(tmp_path / "metadata.db")
    yield store
    store.close()


def _event(n: int, action: str = "create") -> Event:
    return Event(type="container", action=action, actor_id=f"c{n}", attributes={"n": n}, time_nano=1000 + n)


def test_append_read_in_seq_order_and_windows(db: Database) -> None:
    seqs = [db.events.append(_event(n)) for n in (3, 1, 2)]
    assert seqs == [1, 2, 3] and db.events.last_seq() == 3
    assert [e.actor_id for _s, e in db.events.read()] == ["c3", "c1", "c2"]
    assert [e.attributes for _s, e in db.events.read(after_seq=1, upto_seq=2)] == [{"n": "1"}]
    assert [e.actor_id for _s, e in db.events.read(since_ns=1002, until_ns=1003)] == ["c3", "c2"]
    assert [s for s, _e in db.events.read(limit=2)] == [1, 2]


def test_a_key_is_recorded_once(db: Database) -> None:
    assert db.events.append(_event(1, "die"), key="die:c1:t") == 1
    assert db.events.append(_event(1, "die"), key="die:c1:t") is None
    assert db.events.has_key("die:c1:t") and not db.events.has_key("die:c1:u")
    assert len(db.events.read()) == 1


def test_prune_by_count_and_age_never_reuses_a_seq(db: Database) -> None:
    for n in range(10):
        db.events.append(_event(n), key=f"k{n}")
    assert db.events.prune(keep=5, before_ns=0) == 5
    assert [s for s, _e in db.events.read()] == [6, 7, 8, 9, 10]
    assert db.events.prune(keep=100, before_ns=1008) == 3  # times 1005..1007 go
    assert not db.events.has_key("k7") and db.events.has_key("k8")
    assert db.events.append(_event(99)) == 11


def test_a_v4_database_gains_the_log(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    conn = sqlite3.connect(path)
    for version in range(4):
        for statement in _MIGRATIONS[version].split(";"):
            if statement.strip():
                conn.execute(statement)
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()
    store = Database(path)
    try:
        assert store.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION >= 5
        assert store.events.last_seq() == 0
        assert store.events.append(_event(1)) == 1
    finally:
        store.close()

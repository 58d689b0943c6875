"""Schema v4: the containers' extra_json column, added to a v3 database in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from containerkit.storage.metadata import _MIGRATIONS, SCHEMA_VERSION, ContainerRecord, Database


def test_a_v3_database_gains_the_column_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    db = sqlite3.connect(path)
    for version in range(3):
        for statement in _MIGRATIONS[version].split(";"):
            if statement.strip():
                db.execute(statement)
    db.execute("PRAGMA user_version = 3")
    db.execute(
        "INSERT INTO containers (id, name, image_id, image_ref, created, spec_json, labels_json, runtime)"
        " VALUES ('c1', 'old', 'i', 'busybox', 1.0, '{}', '{}', 'builtin')"
    )
    db.commit()
    db.close()
    store = Database(path)
    try:
        assert SCHEMA_VERSION >= 4
        assert store.containers.get("c1").extra_json == "{}"
        store.containers.update("c1", extra_json='{"Cmd": ["true"]}')
        assert store.containers.get("c1").extra_json == '{"Cmd": ["true"]}'
        store.containers.add(
            ContainerRecord(
                id="c2",
                name="new",
                image_id="i",
                image_ref="b",
                created=2.0,
                spec_json="{}",
                extra_json='{"a": 1}',
            )
        )
        assert store.containers.find("new").extra_json == '{"a": 1}'
    finally:
        store.close()

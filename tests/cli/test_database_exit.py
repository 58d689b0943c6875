"""The console script leaves the database's write-ahead log to the next command, losing nothing.

Closing the last connection would copy the log into the database with two ``fsync`` calls on
every command; the process exits right after, so it leaves the log as it is (commits in it are
as durable as they were) and the next opener reads it back.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from containerkit.storage import metadata
from tests.cli.conftest import IMAGE, Ck, subprocess_ck


def _wal(root: Path) -> Path:
    return root / "metadata.db-wal"


def test_a_command_leaves_the_log_and_the_next_one_reads_it(cli_root: Path, ck: Ck) -> None:
    created = subprocess_ck(cli_root, "create", "--name", "wal-kept", IMAGE, "true")
    assert created.returncode == 0, created.stderr
    # not checkpointed at the exit: the log is still there, holding the create's commits
    assert _wal(cli_root).exists() and _wal(cli_root).stat().st_size > 0
    listed = subprocess_ck(cli_root, "ps", "-a", "--format", "{{.Names}}")
    assert listed.returncode == 0, listed.stderr
    assert "wal-kept" in listed.stdout.split()
    removed = subprocess_ck(cli_root, "rm", "wal-kept")
    assert removed.returncode == 0, removed.stderr
    assert "wal-kept" not in ck("ps", "-a", "--format", "{{.Names}}").stdout.split()


def test_in_process_callers_still_close_every_connection(cli_root: Path, ck: Ck) -> None:
    # the click command called directly (an embedding program, CliRunner) is not followed by
    # an exit: it must not leave connections behind
    left = len(metadata._LEFT_FOR_EXIT)
    assert ck("ps", "-a").exit_code == 0
    assert len(metadata._LEFT_FOR_EXIT) == left


def test_database_close_without_checkpoint_keeps_every_commit(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    script = (
        "import os, sys\n"
        "from containerkit.storage.metadata import Database\n"
        "db = Database(sys.argv[1])\n"
        "with db.transaction():\n"
        "    db.query('CREATE TABLE kept (name TEXT)')\n"
        "    db.query(\"INSERT INTO kept VALUES ('kept')\")\n"
        "db.close(checkpoint=False)\n"
        "os._exit(0)  # as the console script exits: no teardown that would close them\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    wal = tmp_path / "metadata.db-wal"
    assert wal.exists() and wal.stat().st_size > 0  # the commit is in the log, not the database
    db = metadata.Database(path)
    try:
        assert [r["name"] for r in db.query("SELECT name FROM kept")] == ["kept"]
    finally:
        db.close()
    assert not wal.exists()  # the usual close copies the log in and deletes it

"""Exec instances: created by ``POST /containers/{id}/exec``, run by ``POST /exec/{id}/start``.

The engine runs an exec in one call; docker splits create, start and inspect, so the daemon
keeps the record in between. Records are written through to one small JSON file per exec in the
daemon's own directory (not in the engine's state dirs), so ``GET /exec/{id}/json`` still
answers after a daemon restart: what the CLI or Compose asks about an exec it started before.
An exec that was running when the daemon went away is reported stopped with no exit code (its
status went with the daemon). Finished records, and created ones never started, are dropped
after a while so a busy daemon does not grow.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import attrs

from containerkit.errors import NotFound

__all__ = ["ExecRecord", "ExecRegistry"]

log = logging.getLogger("containerkit.daemon")

_KEEP_SECONDS = 600.0
_UNSAVED = frozenset({"process", "done"})


@attrs.define(kw_only=True)
class ExecRecord:
    id: str
    container_id: str
    argv: list[str]
    env: list[str] | None = None
    user: str | None = None
    workdir: str | None = None
    tty: bool = False
    privileged: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = True
    attach_stderr: bool = True
    detach_keys: str = ""
    started: bool = False
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    finished_at: float | None = None
    """Wall-clock time of the exit (kept across restarts, for expiry)."""
    created_at: float = attrs.field(factory=time.time)
    """Wall-clock time of the create: one never started expires from then."""
    process: Any = None
    done: threading.Event = attrs.field(factory=threading.Event)

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self, filter=lambda a, _v: a.name not in _UNSAVED)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExecRecord:
        known = {a.name for a in attrs.fields(cls)} - _UNSAVED
        record = cls(**{k: v for k, v in data.items() if k in known})
        if record.running or (record.started and record.exit_code is None):
            # Its status went with the daemon that ran it: stopped, exit code unknown.
            record.running = False
            record.finished_at = record.finished_at or time.time()
        if not record.running and record.finished_at is not None:
            record.done.set()
        return record


class ExecRegistry:
    """The exec records in memory, written through to ``directory`` (if given) as JSON."""

    def __init__(self, directory: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, ExecRecord] = {}
        self._dir = directory
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._load(directory)

    def _load(self, directory: Path) -> None:
        now = time.time()
        for path in directory.glob("*.json"):
            try:
                record = ExecRecord.from_json(json.loads(path.read_bytes()))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("dropping unreadable exec record %s: %s", path, exc)
                path.unlink(missing_ok=True)
                continue
            if _expired(record, now):
                path.unlink(missing_ok=True)
                continue
            self._records[record.id] = record
            self._save(record)  # a record that was running is now stopped for good

    def _save(self, record: ExecRecord) -> None:
        if self._dir is None:
            return
        path = self._dir / f"{record.id}.json"
        tmp = path.with_name(f".{record.id}.tmp")
        try:
            tmp.write_text(json.dumps(record.to_json()))
            os.replace(tmp, path)
        except OSError as exc:  # the exec goes on; only its record after a restart is lost
            log.warning("could not save exec record %s: %s", path, exc)
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _drop(self, exec_id: str) -> None:
        if self._dir is not None:
            with contextlib.suppress(OSError):
                (self._dir / f"{exec_id}.json").unlink()

    def create(self, container_id: str, argv: list[str], **fields: object) -> ExecRecord:
        record = ExecRecord(id=secrets.token_hex(32), container_id=container_id, argv=argv, **fields)  # type: ignore[arg-type]
        now = time.time()
        with self._lock:
            expired = [k for k, r in self._records.items() if _expired(r, now)]
            for key in expired:
                del self._records[key]
            self._records[record.id] = record
        for key in expired:
            self._drop(key)
        self._save(record)
        return record

    def get(self, exec_id: str) -> ExecRecord:
        with self._lock:
            record = self._records.get(exec_id)
            if record is None:
                matches = [r for k, r in self._records.items() if k.startswith(exec_id)] if exec_id else []
                record = matches[0] if len(matches) == 1 else None
        if record is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return record

    def for_container(self, container_id: str) -> list[str]:
        with self._lock:
            return [k for k, r in self._records.items() if r.container_id == container_id]

    def started(self, record: ExecRecord, pid: int) -> None:
        record.pid = pid
        record.running = True
        self._save(record)

    def finish(self, record: ExecRecord, code: int) -> None:
        record.exit_code = code
        record.running = False
        record.finished_at = time.time()
        self._save(record)
        record.done.set()


def _expired(record: ExecRecord, now: float) -> bool:
    if record.finished_at is not None:
        return now - record.finished_at > _KEEP_SECONDS
    return not record.started and now - record.created_at > _KEEP_SECONDS

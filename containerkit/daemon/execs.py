"""Exec instances: created by ``POST /containers/{id}/exec``, run by ``POST /exec/{id}/start``.

The engine runs an exec in one call; docker splits create, start and inspect, so the daemon
keeps the record in between (in memory: exec ids do not survive a daemon restart in docker
either). Finished records are dropped after a while so a busy daemon does not grow.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

import attrs

from containerkit.errors import NotFound

__all__ = ["ExecRecord", "ExecRegistry"]

_KEEP_SECONDS = 600.0


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
    process: Any = None
    done: threading.Event = attrs.field(factory=threading.Event)


class ExecRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, ExecRecord] = {}

    def create(self, container_id: str, argv: list[str], **fields: object) -> ExecRecord:
        record = ExecRecord(id=secrets.token_hex(32), container_id=container_id, argv=argv, **fields)  # type: ignore[arg-type]
        now = time.monotonic()
        with self._lock:
            for key in [
                k for k, r in self._records.items() if r.finished_at and now - r.finished_at > _KEEP_SECONDS
            ]:
                del self._records[key]
            self._records[record.id] = record
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

    def finish(self, record: ExecRecord, code: int) -> None:
        record.exit_code = code
        record.running = False
        record.finished_at = time.monotonic()
        record.done.set()

"""Named volumes: directories under the engine root that outlive containers."""

from __future__ import annotations

import builtins
import datetime as dt
import json
import re
import secrets
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from containerkit.engine.events import EventLog
from containerkit.errors import Conflict, InvalidArgument, NotFound
from containerkit.spec import Volume, label_matches
from containerkit.storage.metadata import Database, VolumeRecord

__all__ = ["VolumeCollection"]

_VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


class VolumeCollection:
    """``engine.volumes``: create, get, list, remove and prune named volumes."""

    def __init__(
        self,
        root: Path,
        metadata: Database,
        *,
        users: Callable[[str], builtins.list[str]] | None = None,
    ) -> None:
        self._root = root
        self._metadata = metadata
        self._users = users
        self.events = EventLog(metadata)
        root.mkdir(parents=True, exist_ok=True)

    def _to_volume(self, record: VolumeRecord) -> Volume:
        return Volume(
            name=record.name,
            mountpoint=record.mountpoint,
            created=dt.datetime.fromtimestamp(record.created, dt.UTC),
            labels=json.loads(record.labels_json or "{}"),
        )

    def create(self, name: str | None = None, *, labels: Mapping[str, str] | None = None) -> Volume:
        """Create a volume; an anonymous one gets a random 64-hex name like docker's."""
        name = name or secrets.token_hex(32)
        if not _VOLUME_NAME.match(name):
            raise InvalidArgument(f"invalid volume name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        data = self._root / name / "_data"
        record = VolumeRecord(
            name=name,
            created=time.time(),
            labels_json=json.dumps(dict(labels or {}), sort_keys=True),
            mountpoint=str(data),
        )
        self._metadata.volumes.add(record)
        data.mkdir(parents=True, exist_ok=True)
        self.events.record("volume", "create", name, {"driver": "local"})
        return self._to_volume(record)

    def get(self, name: str) -> Volume:
        return self._to_volume(self._metadata.volumes.get(name))

    def ensure(self, name: str) -> Volume:
        """The volume called ``name``, created when missing (``-v name:/path`` semantics)."""
        try:
            return self.get(name)
        except NotFound:
            try:
                return self.create(name)
            except Conflict:  # created by another process meanwhile
                return self.get(name)

    def list(self, *, filters: Mapping[str, str] | None = None) -> list[Volume]:
        volumes = [self._to_volume(r) for r in self._metadata.volumes.all()]
        wanted = dict(filters or {})
        if "label" in wanted:
            volumes = [v for v in volumes if label_matches(dict(v.labels), wanted["label"])]
        if "name" in wanted:
            volumes = [v for v in volumes if wanted["name"] in v.name]
        return volumes

    def remove(self, name: str, *, force: bool = False, in_use_by: builtins.list[str] | None = None) -> None:
        """Remove a volume and its data; ``Conflict`` while any container (running or not) uses
        it, even with ``force``, as dockerd refuses: removing it would lose the data under a
        container. ``force`` only makes a missing volume no error. ``in_use_by`` overrides
        the engine's own lookup of the users."""
        try:
            record = self._metadata.volumes.get(name)
        except NotFound:
            if force:
                return
            raise
        users = in_use_by if in_use_by is not None else (self._users(name) if self._users else [])
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        self._metadata.volumes.remove(record.name)
        shutil.rmtree(Path(record.mountpoint).parent, ignore_errors=True)
        self.events.record("volume", "destroy", record.name, {"driver": "local"})

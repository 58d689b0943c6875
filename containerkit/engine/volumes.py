"""Named volumes: directories under the engine root that outlive containers.

The ``local`` driver's options (``driver_opts``) give a volume a tmpfs
(``type=tmpfs,device=tmpfs,o=size=100m``) or a host path (``type=none,o=bind,device=/path``)
mounted on its ``_data`` while a container that uses it runs, as docker's local driver does.
Options are an allow-list: ``o=`` never passes a mount option that could weaken isolation
(``suid``, ``dev``, ``exec`` flags, other filesystems, ...); the options are kept in the
volume's directory beside ``_data``.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from containerkit.engine.events import EventLog
from containerkit.errors import Conflict, ContainerkitError, InvalidArgument, NotFound
from containerkit.spec import Volume, check_object_name, label_matches, normalise_filters
from containerkit.storage.metadata import Database, VolumeRecord

__all__ = ["VolumeCollection"]

_OPTIONS_FILE = "opts.json"
_DRIVERS = ("local",)
_TMPFS_OPTIONS = {
    "size": re.compile(r"^[0-9]+[kmgKMG%]?$"),
    "mode": re.compile(r"^[0-7]{1,4}$"),
    "uid": re.compile(r"^[0-9]+$"),
    "gid": re.compile(r"^[0-9]+$"),
    "nr_inodes": re.compile(r"^[0-9]+[kmgKMG]?$"),
}
_BIND_FLAGS = ("bind", "rbind", "ro")


def check_driver(driver: str, name: str) -> None:
    """dockerd's 404 for a driver it has no plugin for."""
    if driver not in _DRIVERS:
        raise NotFound(f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" not found')


def check_driver_opts(opts: Mapping[str, str]) -> dict[str, str]:
    """The ``local`` driver's ``type``/``device``/``o``, allowed as they are or refused naming the
    option: tmpfs takes only size, mode, uid, gid and nr_inodes; a bind only bind, rbind and ro
    of an existing absolute path."""
    unknown = sorted(set(opts) - {"type", "device", "o"})
    if unknown:
        raise InvalidArgument(f"invalid option: {unknown[0]!r} (local volumes take type, device and o)")
    if not opts:
        return {}
    kind, device, options = opts.get("type", ""), opts.get("device", ""), opts.get("o", "")
    if not device:
        raise InvalidArgument('missing required option: "device"')
    items = [o for o in options.split(",") if o] if options else []
    if kind == "tmpfs":
        if device != "tmpfs":
            raise InvalidArgument(f"device: a tmpfs volume's device is 'tmpfs', got {device!r}")
        for item in items:
            key, _, value = item.partition("=")
            pattern = _TMPFS_OPTIONS.get(key)
            if pattern is None or not pattern.match(value):
                raise InvalidArgument(
                    f"o: tmpfs option {item!r} is not allowed (only {', '.join(_TMPFS_OPTIONS)}=<number>)"
                )
    elif kind == "none":
        if not any(i in ("bind", "rbind") for i in items) or any(i not in _BIND_FLAGS for i in items):
            raise InvalidArgument(f"o: a bind volume takes bind or rbind, and ro; got {options!r}")
        if not os.path.isabs(device) or "\0" in device:
            raise InvalidArgument(f"device: a bind volume needs an absolute host path, got {device!r}")
        if not os.path.exists(device):
            raise InvalidArgument(f"device: bind source path does not exist: {device}")
    else:
        raise InvalidArgument(f"type: local volumes are tmpfs or none (a bind), not {kind!r}")
    return {"type": kind, "device": device, "o": ",".join(items)}


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
            options=self.options(record.name),
        )

    def create(
        self,
        name: str | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        driver: str = "local",
        driver_opts: Mapping[str, str] | None = None,
    ) -> Volume:
        """Create a volume; an anonymous one gets a random 64-hex name like docker's.
        ``driver_opts``: the ``local`` driver's tmpfs or bind (see the module)."""
        name = name or secrets.token_hex(32)
        check_object_name("volume", name)
        check_driver(driver, name)
        opts = check_driver_opts(driver_opts or {})
        data = self._root / name / "_data"
        record = VolumeRecord(
            name=name,
            created=time.time(),
            labels_json=json.dumps(dict(labels or {}), sort_keys=True),
            mountpoint=str(data),
        )
        self._metadata.volumes.add(record)
        try:
            data.mkdir(parents=True, exist_ok=True)
            if opts:
                tmp = data.parent / f".{_OPTIONS_FILE}.tmp"
                tmp.write_text(json.dumps(opts, sort_keys=True))
                os.replace(tmp, data.parent / _OPTIONS_FILE)
        except OSError as exc:
            self._metadata.volumes.remove(name)
            shutil.rmtree(data.parent, ignore_errors=True)
            raise ContainerkitError(f"create {name}: {exc}") from exc
        self.events.record("volume", "create", name, {"driver": "local"})
        return self._to_volume(record)

    def options(self, name: str) -> dict[str, str]:
        """The driver options the volume was created with ({} for a plain directory)."""
        try:
            data = json.loads((self._root / name / _OPTIONS_FILE).read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            where = self._root / name / _OPTIONS_FILE
            raise ContainerkitError(f"volume {name}: unreadable options in {where}: {exc}") from exc
        return {str(k): str(v) for k, v in data.items()}

    def mount(self, name: str) -> None:
        """Before a container that uses ``name`` starts: its tmpfs or bind on ``_data``, once for
        every container that uses it at the same time (nothing for a plain volume)."""
        opts = self.options(name)
        if not opts:
            return
        from containerkit.linux import volume_mounts  # only volumes with options mount

        target = str(self._root / name / "_data")
        if volume_mounts.is_mounted(target):
            return
        items = [o for o in opts["o"].split(",") if o]
        if opts["type"] == "tmpfs":
            volume_mounts.mount_tmpfs(target, ",".join(items))
        else:
            volume_mounts.mount_bind(
                os.path.realpath(opts["device"]),
                target,
                recursive="rbind" in items,
                read_only="ro" in items,
            )

    def unmount(self, name: str) -> None:
        """Once no running container uses ``name`` any more (the caller knows): its mount goes, and
        a tmpfs volume's data with it, as docker's local driver."""
        if not self.options(name):
            return
        from containerkit.linux import volume_mounts

        target = str(self._root / name / "_data")
        while volume_mounts.is_mounted(target):  # a mount raced in twice: both go
            volume_mounts.unmount(target)

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

    def list(self, *, filters: Mapping[str, Any] | None = None) -> list[Volume]:
        """``filters`` as docker's: ``label`` (all must match), ``name`` (a substring),
        ``driver``, ``dangling`` (used by no container, running or not)."""
        wanted = normalise_filters(filters, ("label", "name", "driver", "dangling"))
        result = []
        for volume in (self._to_volume(r) for r in self._metadata.volumes.all()):
            labels = dict(volume.labels)
            if not all(label_matches(labels, w) for w in wanted.get("label", [])):
                continue
            if "name" in wanted and not any(n in volume.name for n in wanted["name"]):
                continue
            if "driver" in wanted and volume.driver not in wanted["driver"]:
                continue
            if "dangling" in wanted:
                dangling = wanted["dangling"][-1].lower() in ("1", "true")
                if dangling == bool(self._users(volume.name) if self._users else []):
                    continue
            result.append(volume)
        return result

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
        with contextlib.suppress(ContainerkitError):
            self.unmount(record.name)  # never rmtree through a mount (a bind's host files)
        from containerkit.linux import volume_mounts

        if volume_mounts.is_mounted(record.mountpoint):
            raise Conflict(f"remove {name}: volume is still mounted at {record.mountpoint}")
        self._metadata.volumes.remove(record.name)
        shutil.rmtree(Path(record.mountpoint).parent, ignore_errors=True)
        self.events.record("volume", "destroy", record.name, {"driver": "local"})

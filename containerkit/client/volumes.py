"""``client.volumes``: named volumes of the daemon, as the Engine's ``engine.volumes``."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from containerkit.client import _wire
from containerkit.client._transport import Transport
from containerkit.errors import Conflict, NotFound
from containerkit.spec import Volume

__all__ = ["VolumeCollection"]


def _path(name: str) -> str:
    return "/volumes/" + quote(name, safe="")


class VolumeCollection:
    """``client.volumes``: create, get, list, remove and prune named volumes."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def create(
        self,
        name: str | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        driver: str = "local",
        driver_opts: Mapping[str, str] | None = None,
    ) -> Volume:
        """Create a volume; an anonymous one gets a random 64-hex name like docker's.
        ``driver_opts``: the ``local`` driver's tmpfs or bind, as the engine's."""
        body: dict[str, Any] = {"Driver": driver, "Labels": dict(labels or {})}
        if driver_opts:
            body["DriverOpts"] = dict(driver_opts)
        if name:
            body["Name"] = name
        return _wire.volume_from_wire(self._transport.post_json("/volumes/create", body=body))

    def get(self, name: str) -> Volume:
        if not name:
            raise NotFound("get : no such volume")
        return _wire.volume_from_wire(self._transport.get_json(_path(name)))

    def ensure(self, name: str) -> Volume:
        """The volume called ``name``, created when missing (``-v name:/path`` semantics)."""
        try:
            return self.get(name)
        except NotFound:
            try:
                return self.create(name)
            except Conflict:  # created by another client meanwhile
                return self.get(name)

    def list(self, *, filters: Mapping[str, Any] | None = None) -> builtins.list[Volume]:
        """``filters``: ``label`` (``k`` or ``k=v``), ``name`` (substring)."""
        data = self._transport.get_json("/volumes", params={"filters": _wire.filters_param(filters)})
        return [_wire.volume_from_wire(item) for item in (data or {}).get("Volumes") or ()]

    def remove(self, name: str, *, force: bool = False, in_use_by: builtins.list[str] | None = None) -> None:
        """Remove a volume and its data; ``Conflict`` while a container uses it (unless ``force``).

        The daemon knows which containers use it; ``in_use_by`` is accepted for the Engine's
        signature and checked here too.
        """
        if in_use_by and not force:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(in_use_by)}]")
        self._transport.request("DELETE", _path(name), params={"force": force})

    def prune(self, *, filters: Mapping[str, Any] | None = None) -> builtins.list[str]:
        """Remove volumes no container uses; their names."""
        data = self._transport.post_json(
            "/volumes/prune", params={"filters": _wire.filters_param(filters)}, timeout=None
        )
        return list((data or {}).get("VolumesDeleted") or [])

"""One store per kind over the metadata :class:`~containerkit.storage.metadata.Database`, as
containerd's ``metadata/`` has: images (with their tags and repo digests), layers, containers,
volumes, and networks (with their endpoints and each container's published ports).

A store holds no state of its own: every method is one query or one ``BEGIN IMMEDIATE``
transaction of the database it was made for (see that module for why), and a method of one
store may run inside a transaction another store's caller opened (``with db.transaction():``),
as the transactions nest.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from containerkit.errors import Conflict, InvalidArgument, NotFound
from containerkit.spec import ContainerStatus, Event, transition
from containerkit.storage.records import (
    AddressChooser,
    ContainerRecord,
    EndpointRecord,
    ImageLayer,
    ImageRecord,
    LayerRecord,
    NetworkRecord,
    PortRecord,
    RunRecord,
    VolumeRecord,
)

if TYPE_CHECKING:
    from containerkit.storage.metadata import Database

__all__ = [
    "CONTAINER_STATES",
    "ContainerStore",
    "EventStore",
    "ImageStore",
    "LayerStore",
    "NetworkStore",
    "VolumeStore",
]

CONTAINER_STATES = (ContainerStatus.CREATING, ContainerStatus.CREATED, ContainerStatus.REMOVING)
"""What a record's ``state`` column holds; the runtime status (running, exited, ...) is the
Task's, in its state directory."""
# A container being removed stays visible until its record goes, last (as before states existed):
# "not found" keeps meaning "nothing of it is left".
_VISIBLE = f"state != '{ContainerStatus.CREATING.value}'"

_CONTAINER_FIELDS = (
    "id",
    "name",
    "image_id",
    "image_ref",
    "created",
    "spec_json",
    "labels_json",
    "runtime",
    "extra_json",
    "args_json",
)
_UPDATABLE = frozenset(_CONTAINER_FIELDS) - {"id", "name"}


def _check_state(state: ContainerStatus | str) -> ContainerStatus:
    if state not in CONTAINER_STATES:
        raise InvalidArgument(f"container state must be one of {', '.join(CONTAINER_STATES)}, got {state!r}")
    return ContainerStatus(state)


def _container(row: sqlite3.Row) -> ContainerRecord:
    return ContainerRecord(**{k: row[k] for k in _CONTAINER_FIELDS})


def _run(row: sqlite3.Row) -> RunRecord:
    fields = {f.name: row[f.name] for f in attrs.fields(RunRecord)}
    return RunRecord(**fields | {"oom_killed": bool(row["oom_killed"])})


def _network(row: sqlite3.Row) -> NetworkRecord:
    data = dict(row)
    data["internal"] = bool(data["internal"])
    return NetworkRecord(**data)


def _endpoint(row: sqlite3.Row) -> EndpointRecord:
    data = dict(row)
    data["attached"] = bool(data["attached"])
    return EndpointRecord(**data)


class _Store:
    def __init__(self, db: Database) -> None:
        self._db = db


class ImageStore(_Store):
    """Images by config digest, with their ordered layer list, tags and repo digests."""

    def add(self, image: ImageRecord, *, tags: Sequence[str] = (), digests: Sequence[str] = ()) -> None:
        """Record an image (kept if already there) and point ``tags``/``digests`` at it, atomically."""
        with self._db.transaction() as db:
            inserted = db.execute(
                "INSERT OR IGNORE INTO images (id, manifest_digest, config_json, size, created, architecture,"
                " os, added) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    image.id,
                    image.manifest_digest,
                    image.config_json,
                    image.size,
                    image.created,
                    image.architecture,
                    image.os,
                    image.added,
                ),
            ).rowcount
            if inserted:
                db.executemany(
                    "INSERT INTO image_layers VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (image.id, n, x.diff_id, x.chain_id, x.blob_digest, x.blob_size, x.media_type)
                        for n, x in enumerate(image.layers)
                    ],
                )
            elif image.manifest_digest is not None:
                db.execute(
                    "UPDATE images SET manifest_digest = ? WHERE id = ? AND manifest_digest IS NULL",
                    (image.manifest_digest, image.id),
                )
            db.executemany("INSERT OR REPLACE INTO tags VALUES (?, ?)", [(t, image.id) for t in tags])
            db.executemany(
                "INSERT OR REPLACE INTO image_digests VALUES (?, ?)", [(d, image.id) for d in digests]
            )

    def get(self, image_id: str) -> ImageRecord | None:
        rows = self._db.query("SELECT * FROM images WHERE id = ?", (image_id,))
        if not rows:
            return None
        layers = self._db.query(
            "SELECT diff_id, chain_id, blob_digest, blob_size, media_type FROM image_layers"
            " WHERE image_id = ? ORDER BY position",
            (image_id,),
        )
        row = rows[0]
        return ImageRecord(
            id=row["id"],
            manifest_digest=row["manifest_digest"],
            config_json=row["config_json"],
            layers=tuple(ImageLayer(*layer) for layer in layers),
            size=row["size"],
            created=row["created"],
            architecture=row["architecture"],
            os=row["os"],
            added=row["added"],
        )

    def ids(self) -> list[str]:
        """Newest first."""
        return [r[0] for r in self._db.query("SELECT id FROM images ORDER BY added DESC, id")]

    def ids_with_prefix(self, prefix: str) -> list[str]:
        """Ids (``sha256:<hex>``) whose hex starts with ``prefix``."""
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            return []
        low = f"sha256:{prefix}"
        high = low + "\uffff"
        return [r[0] for r in self._db.query("SELECT id FROM images WHERE id >= ? AND id < ?", (low, high))]

    def resolve_tag(self, ref: str) -> str | None:
        rows = self._db.query("SELECT image_id FROM tags WHERE ref = ?", (ref,))
        return rows[0][0] if rows else None

    def resolve_digest(self, ref: str) -> str | None:
        rows = self._db.query("SELECT image_id FROM image_digests WHERE ref = ?", (ref,))
        return rows[0][0] if rows else None

    def tags(self, image_id: str | None = None) -> list[tuple[str, str]]:
        """``(ref, image_id)`` pairs, sorted by ref; all of them or one image's."""
        if image_id is None:
            return [(r[0], r[1]) for r in self._db.query("SELECT ref, image_id FROM tags ORDER BY ref")]
        rows = self._db.query("SELECT ref, image_id FROM tags WHERE image_id = ? ORDER BY ref", (image_id,))
        return [(r[0], r[1]) for r in rows]

    def digests(self, image_id: str) -> list[str]:
        return [
            r[0]
            for r in self._db.query(
                "SELECT ref FROM image_digests WHERE image_id = ? ORDER BY ref", (image_id,)
            )
        ]

    def set_tag(self, ref: str, image_id: str) -> str | None:
        """Point ``ref`` at ``image_id``; returns the image it pointed at before (or None)."""
        with self._db.transaction() as db:
            if not db.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone():
                raise NotFound(f"No such image: {image_id}")
            before = db.execute("SELECT image_id FROM tags WHERE ref = ?", (ref,)).fetchone()
            db.execute("INSERT OR REPLACE INTO tags VALUES (?, ?)", (ref, image_id))
            return before[0] if before and before[0] != image_id else None

    def remove_tag(self, ref: str) -> str | None:
        """Drop a tag or a repo@digest reference; returns the image it pointed at (or None)."""
        with self._db.transaction() as db:
            for table in ("tags", "image_digests"):
                row = db.execute(f"SELECT image_id FROM {table} WHERE ref = ?", (ref,)).fetchone()
                if row:
                    db.execute(f"DELETE FROM {table} WHERE ref = ?", (ref,))
                    return str(row[0])
            return None

    def remove(self, image_id: str) -> bool:
        """Delete the image row with its tags, digests and layer list (not the layers themselves)."""
        with self._db.transaction() as db:
            return bool(db.execute("DELETE FROM images WHERE id = ?", (image_id,)).rowcount)

    def referenced_blobs(self) -> set[str]:
        """Every blob digest an image still needs: configs, manifests, layer blobs."""
        rows = self._db.query(
            "SELECT id FROM images UNION SELECT manifest_digest FROM images WHERE manifest_digest IS NOT NULL"
            " UNION SELECT blob_digest FROM image_layers"
        )
        return {r[0] for r in rows}

    def referenced_chain_ids(self) -> set[str]:
        """Every layer (chain id) an image still needs."""
        return {r[0] for r in self._db.query("SELECT DISTINCT chain_id FROM image_layers")}


class LayerStore(_Store):
    """Layers by chain id, as first unpacked (the snapshot store holds their content)."""

    def add(self, layer: LayerRecord) -> None:
        with self._db.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO layers VALUES (?, ?, ?, ?, ?, ?)",
                (
                    layer.chain_id,
                    layer.diff_id,
                    layer.blob_digest,
                    layer.size,
                    layer.media_type,
                    layer.parent,
                ),
            )

    def get(self, chain_id: str) -> LayerRecord | None:
        rows = self._db.query("SELECT * FROM layers WHERE chain_id = ?", (chain_id,))
        return LayerRecord(**dict(rows[0])) if rows else None

    def all(self) -> list[LayerRecord]:
        return [LayerRecord(**dict(r)) for r in self._db.query("SELECT * FROM layers ORDER BY chain_id")]

    def unreferenced(self) -> list[str]:
        """Chain ids no image uses and no other layer sits on."""
        rows = self._db.query(
            "SELECT chain_id FROM layers l"
            " WHERE NOT EXISTS (SELECT 1 FROM image_layers i WHERE i.chain_id = l.chain_id)"
            " AND NOT EXISTS (SELECT 1 FROM layers c WHERE c.parent = l.chain_id) ORDER BY chain_id"
        )
        return [r[0] for r in rows]

    def remove(self, chain_id: str) -> bool:
        with self._db.transaction() as db:
            return bool(db.execute("DELETE FROM layers WHERE chain_id = ?", (chain_id,)).rowcount)


class ContainerStore(_Store):
    """Container records and their lifecycle state (``creating``, ``created``, ``removing``:
    :data:`CONTAINER_STATES`)."""

    def add(
        self,
        record: ContainerRecord,
        *,
        state: ContainerStatus | str = ContainerStatus.CREATED,
        owner: str = "",
    ) -> ContainerRecord:
        """Insert; the stored name has no leading ``/``. Conflict if the name or id is taken (by
        any row: a container being created holds its name)."""
        state = _check_state(state)
        record = attrs.evolve(record, name=record.name.lstrip("/"))
        with self._db.transaction() as db:
            row = db.execute("SELECT id FROM containers WHERE name = ?", (record.name,)).fetchone()
            if row:
                raise Conflict(
                    f'the container name "/{record.name}" is already in use by container "{row[0]}"'
                )
            if db.execute("SELECT 1 FROM containers WHERE id = ?", (record.id,)).fetchone():
                raise Conflict(f"a container with id {record.id} already exists")
            db.execute(
                f"INSERT INTO containers ({', '.join(_CONTAINER_FIELDS)}, state, owner)"
                f" VALUES ({', '.join('?' * (len(_CONTAINER_FIELDS) + 2))})",
                [*(getattr(record, k) for k in _CONTAINER_FIELDS), state.value, owner],
            )
        return record

    def set_state(self, container_id: str, state: ContainerStatus | str, *, owner: str = "") -> None:
        """Move a container to ``state`` (one transaction: it becomes visible when ``created``);
        :class:`~containerkit.errors.Conflict` if :func:`~containerkit.spec.transition` does not
        allow the change from the recorded state."""
        state = _check_state(state)
        with self._db.transaction() as db:
            row = db.execute("SELECT state FROM containers WHERE id = ?", (container_id,)).fetchone()
            if row is None:
                raise NotFound(f"No such container: {container_id}")
            transition(row[0], state, container=container_id)
            db.execute(
                "UPDATE containers SET state = ?, owner = ? WHERE id = ?", (state.value, owner, container_id)
            )

    def claim(self, container_id: str, current: ContainerStatus, new: ContainerStatus, *, owner: str) -> bool:
        """Move a container from ``current`` to ``new`` for ``owner`` only if it is still in
        ``current`` (one statement: of two processes claiming it, one wins); whether it moved."""
        transition(current, new, container=container_id)
        with self._db.transaction() as db:
            moved = db.execute(
                "UPDATE containers SET state = ?, owner = ? WHERE id = ? AND state = ?",
                (new.value, owner, container_id, current.value),
            )
            return moved.rowcount == 1

    def unfinished(self) -> list[tuple[str, ContainerStatus, str]]:
        """``(id, state, owner)`` of every container being created or removed."""
        rows = self._db.query(
            "SELECT id, state, owner FROM containers WHERE state != ? ORDER BY id",
            (ContainerStatus.CREATED.value,),
        )
        return [(r[0], ContainerStatus(r[1]), r[2]) for r in rows]

    def get(self, container_id: str) -> ContainerRecord:
        """By exact id, in any state (the engine's own lookups, teardown included)."""
        rows = self._db.query("SELECT * FROM containers WHERE id = ?", (container_id,))
        if not rows:
            raise NotFound(f"No such container: {container_id}")
        return _container(rows[0])

    def name_taken(self, name: str) -> bool:
        """Whether a container (one being created included) has ``name``: one indexed lookup."""
        return bool(self._db.query("SELECT 1 FROM containers WHERE name = ?", (name,)))

    def find(self, ref: str) -> ContainerRecord:
        """By full id, then name (with or without ``/``), then unique id prefix, as docker resolves;
        a container still being created is not found."""
        visible = _VISIBLE
        rows = self._db.query(f"SELECT * FROM containers WHERE id = ? AND {visible}", (ref,))
        if not rows and ref:
            rows = self._db.query(
                f"SELECT * FROM containers WHERE name = ? AND {visible}", (ref.lstrip("/"),)
            )
        if not rows and ref and all(c in "0123456789abcdef" for c in ref):
            rows = self._db.query(
                f"SELECT * FROM containers WHERE id >= ? AND id < ? AND {visible} LIMIT 2",
                (ref, ref + "\uffff"),
            )
            if len(rows) > 1:
                raise InvalidArgument(
                    f"multiple containers match the id prefix {ref!r}; give more characters"
                )
        if not rows:
            raise NotFound(f"No such container: {ref}")
        return _container(rows[0])

    def all(self) -> list[ContainerRecord]:
        """The containers, except those still being created."""
        rows = self._db.query(f"SELECT * FROM containers WHERE {_VISIBLE} ORDER BY created DESC, id")
        return [_container(r) for r in rows]

    def update(self, container_id: str, **fields: Any) -> ContainerRecord:
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise InvalidArgument(f"cannot update container field(s) {sorted(unknown)}")
        with self._db.transaction() as db:
            if fields:
                assignments = ", ".join(f"{k} = ?" for k in fields)
                db.execute(
                    f"UPDATE containers SET {assignments} WHERE id = ?", [*fields.values(), container_id]
                )
            return self.get(container_id)

    def rename(self, container_id: str, new_name: str) -> ContainerRecord:
        new_name = new_name.lstrip("/")
        with self._db.transaction() as db:
            current = self.get(container_id)
            row = db.execute("SELECT id FROM containers WHERE name = ?", (new_name,)).fetchone()
            if row and row[0] != current.id:
                raise Conflict(f'the container name "/{new_name}" is already in use by container "{row[0]}"')
            db.execute("UPDATE containers SET name = ? WHERE id = ?", (new_name, container_id))
            return attrs.evolve(current, name=new_name)

    def remove(self, container_id: str) -> None:
        with self._db.transaction() as db:
            if not db.execute("DELETE FROM containers WHERE id = ?", (container_id,)).rowcount:
                raise NotFound(f"No such container: {container_id}")

    def set_run(self, run: RunRecord) -> None:
        """Record a container's run as last seen (nothing for a container already removed)."""
        fields = attrs.asdict(run)
        with self._db.lazy_sync(), self._db.transaction() as db:  # a cache: the Task has the truth
            db.execute(
                f"INSERT OR REPLACE INTO container_runs ({', '.join(fields)})"
                f" SELECT {', '.join('?' * len(fields))}"
                " WHERE EXISTS (SELECT 1 FROM containers WHERE id = ?)",
                [*fields.values(), run.container_id],
            )

    def runs(self) -> dict[str, RunRecord]:
        """Every recorded run by container id."""
        rows = self._db.query("SELECT * FROM container_runs")
        return {r["container_id"]: _run(r) for r in rows}

    def using_image(self, image_id: str) -> list[str]:
        rows = self._db.query(
            "SELECT id FROM containers WHERE image_id = ? ORDER BY created, id", (image_id,)
        )
        return [r[0] for r in rows]


class VolumeStore(_Store):
    """Named volumes."""

    def add(self, record: VolumeRecord) -> VolumeRecord:
        with self._db.transaction() as db:
            if db.execute("SELECT 1 FROM volumes WHERE name = ?", (record.name,)).fetchone():
                raise Conflict(f"volume {record.name!r} already exists")
            db.execute(
                "INSERT INTO volumes VALUES (?, ?, ?, ?)",
                (record.name, record.created, record.labels_json, record.mountpoint),
            )
        return record

    def get(self, name: str) -> VolumeRecord:
        rows = self._db.query("SELECT * FROM volumes WHERE name = ?", (name,))
        if not rows:
            raise NotFound(f"no such volume: {name}")
        return VolumeRecord(**dict(rows[0]))

    def all(self) -> list[VolumeRecord]:
        return [VolumeRecord(**dict(r)) for r in self._db.query("SELECT * FROM volumes ORDER BY name")]

    def remove(self, name: str) -> None:
        with self._db.transaction() as db:
            if not db.execute("DELETE FROM volumes WHERE name = ?", (name,)).rowcount:
                raise NotFound(f"no such volume: {name}")


class NetworkStore(_Store):
    """Networks, each container's endpoints on them, and the host ports published for it."""

    def add(self, record: NetworkRecord) -> NetworkRecord:
        """Insert; Conflict if the name, id or bridge is taken."""
        with self._db.transaction() as db:
            row = db.execute("SELECT id FROM networks WHERE name = ?", (record.name,)).fetchone()
            if row:
                raise Conflict(f"network with name {record.name} already exists (id {row[0]})")
            if db.execute(
                "SELECT 1 FROM networks WHERE id = ? OR bridge = ?", (record.id, record.bridge)
            ).fetchone():
                raise Conflict(f"a network with id {record.id} or bridge {record.bridge} already exists")
            db.execute(
                "INSERT INTO networks (id, name, driver, bridge, subnet, gateway, internal, labels_json,"
                " created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.name,
                    record.driver,
                    record.bridge,
                    record.subnet,
                    record.gateway,
                    int(record.internal),
                    record.labels_json,
                    record.created,
                ),
            )
        return record

    def get(self, network_id: str) -> NetworkRecord:
        rows = self._db.query("SELECT * FROM networks WHERE id = ?", (network_id,))
        if not rows:
            raise NotFound(f"network {network_id} not found")
        return _network(rows[0])

    def find(self, ref: str) -> NetworkRecord:
        """By full id, then name, then unique id prefix (docker's order)."""
        rows = self._db.query("SELECT * FROM networks WHERE id = ?", (ref,))
        if not rows and ref:
            rows = self._db.query("SELECT * FROM networks WHERE name = ?", (ref,))
        if not rows and ref and all(c in "0123456789abcdef" for c in ref):
            rows = self._db.query(
                "SELECT * FROM networks WHERE id >= ? AND id < ? LIMIT 2", (ref, ref + "\uffff")
            )
            if len(rows) > 1:
                raise InvalidArgument(f"multiple networks match the id prefix {ref!r}; give more characters")
        if not rows:
            raise NotFound(f"network {ref} not found")
        return _network(rows[0])

    def all(self) -> list[NetworkRecord]:
        return [_network(r) for r in self._db.query("SELECT * FROM networks ORDER BY created, id")]

    def set_subnet(self, network_id: str, subnet: str, gateway: str) -> NetworkRecord:
        """Re-address a network none of whose endpoints is attached (the default one, moved off a
        subnet the host took meanwhile); Conflict otherwise."""
        with self._db.transaction() as db:
            if db.execute(
                "SELECT 1 FROM endpoints WHERE network_id = ? AND attached = 1", (network_id,)
            ).fetchone():
                raise Conflict(f"network {network_id} has attached containers; its subnet cannot change")
            db.execute(
                "UPDATE networks SET subnet = ?, gateway = ? WHERE id = ?", (subnet, gateway, network_id)
            )
            return self.get(network_id)

    def remove(self, network_id: str) -> None:
        """Delete; Conflict naming the containers while any is connected."""
        with self._db.transaction() as db:
            rows = db.execute(
                "SELECT c.name FROM endpoints e JOIN containers c ON c.id = e.container_id"
                " WHERE e.network_id = ? ORDER BY c.name",
                (network_id,),
            ).fetchall()
            if rows:
                names = ", ".join(r[0] for r in rows)
                raise Conflict(f"network {network_id} has containers connected: {names}")
            if not db.execute("DELETE FROM networks WHERE id = ?", (network_id,)).rowcount:
                raise NotFound(f"network {network_id} not found")

    def add_endpoint(self, network_id: str, container_id: str, aliases_json: str = "[]") -> EndpointRecord:
        """Connect (not attach): the lowest position the container does not use yet."""
        with self._db.transaction() as db:
            if db.execute(
                "SELECT 1 FROM endpoints WHERE network_id = ? AND container_id = ?",
                (network_id, container_id),
            ).fetchone():
                raise Conflict(f"container {container_id} is already connected to network {network_id}")
            used = {
                r[0]
                for r in db.execute("SELECT position FROM endpoints WHERE container_id = ?", (container_id,))
            }
            position = next(n for n in range(len(used) + 1) if n not in used)
            db.execute(
                "INSERT INTO endpoints (network_id, container_id, position, aliases_json)"
                " VALUES (?, ?, ?, ?)",
                (network_id, container_id, position, aliases_json),
            )
            return EndpointRecord(
                network_id=network_id, container_id=container_id, position=position, aliases_json=aliases_json
            )

    def endpoints(
        self, *, container_id: str | None = None, network_id: str | None = None
    ) -> list[EndpointRecord]:
        """Endpoints of a container (by position) or of a network, or every one."""
        where, params = [], []
        if container_id is not None:
            where.append("container_id = ?")
            params.append(container_id)
        if network_id is not None:
            where.append("network_id = ?")
            params.append(network_id)
        sql = "SELECT * FROM endpoints" + (" WHERE " + " AND ".join(where) if where else "")
        return [_endpoint(r) for r in self._db.query(sql + " ORDER BY container_id, position", params)]

    def remove_endpoint(self, network_id: str, container_id: str) -> None:
        with self._db.transaction() as db:
            if not db.execute(
                "DELETE FROM endpoints WHERE network_id = ? AND container_id = ?", (network_id, container_id)
            ).rowcount:
                raise NotFound(f"container {container_id} is not connected to network {network_id}")

    def attach_endpoint(
        self, network_id: str, container_id: str, host_ifname: str, choose: AddressChooser
    ) -> EndpointRecord:
        """Give the endpoint an address and mark it attached, in one ``BEGIN IMMEDIATE``
        transaction: two engines on one root never hand out the same address. Without its own
        ``fsync``, as the detach and the ports: these rows mirror veths and DNAT rules that a power
        loss takes away with them, and a process crash keeps them (WAL)."""
        with self._db.lazy_sync(), self._db.transaction() as db:
            row = db.execute(
                "SELECT * FROM endpoints WHERE network_id = ? AND container_id = ?",
                (network_id, container_id),
            ).fetchone()
            if row is None:
                raise NotFound(f"container {container_id} is not connected to network {network_id}")
            endpoint = _endpoint(row)
            network = self.get(network_id)
            attached: set[str] = set()
            reserved: set[str] = set()
            for other in db.execute(
                "SELECT ip, attached FROM endpoints"
                " WHERE network_id = ? AND container_id != ? AND ip IS NOT NULL",
                (network_id, container_id),
            ):
                (attached if other[1] else reserved).add(other[0])
            ip, mac = choose(attached, reserved, endpoint, network)
            db.execute(
                "UPDATE endpoints SET ip = ?, mac = ?, host_ifname = ?, attached = 1"
                " WHERE network_id = ? AND container_id = ?",
                (ip, mac, host_ifname, network_id, container_id),
            )
            return attrs.evolve(endpoint, ip=ip, mac=mac, host_ifname=host_ifname, attached=True)

    def detach_endpoint(self, network_id: str, container_id: str) -> None:
        """Mark detached: the address is free for others, and kept as this endpoint's preference."""
        with self._db.lazy_sync(), self._db.transaction() as db:
            db.execute(
                "UPDATE endpoints SET attached = 0, host_ifname = NULL"
                " WHERE network_id = ? AND container_id = ?",
                (network_id, container_id),
            )

    def set_ports(self, container_id: str, ports: Sequence[PortRecord]) -> None:
        """Replace what is recorded as published for the container (no ``fsync``: see
        :meth:`attach_endpoint`)."""
        with self._db.lazy_sync(), self._db.transaction() as db:
            db.execute("DELETE FROM published_ports WHERE container_id = ?", (container_id,))
            db.executemany(
                "INSERT OR REPLACE INTO published_ports VALUES (?, ?, ?, ?, ?)",
                [(container_id, p.protocol, p.host_ip, p.host_port, p.container_port) for p in ports],
            )

    def all_ports(self) -> list[PortRecord]:
        """Every container's published ports (a list shows them all)."""
        rows = self._db.query(
            "SELECT * FROM published_ports ORDER BY container_id, container_port, protocol, host_ip"
        )
        return [PortRecord(**dict(r)) for r in rows]

    def ports(self, container_id: str) -> list[PortRecord]:
        rows = self._db.query(
            "SELECT * FROM published_ports WHERE container_id = ? ORDER BY container_port, protocol, host_ip",
            (container_id,),
        )
        return [PortRecord(**dict(r)) for r in rows]


class EventStore(_Store):
    """The event log: rows appended by every process on the root, read in ``seq`` order.

    Pruning is by count and by age, both through an index, so it costs a few page writes;
    :class:`~containerkit.engine.events.EventLog` calls it every so many appends."""

    def append(self, event: Event, *, key: str | None = None) -> int | None:
        """Add ``event``; its ``seq``. With ``key``, at most one event is ever added per key:
        None if one was (a second observer of the same exit records nothing)."""
        attributes = json.dumps(dict(event.attributes), sort_keys=True)
        with self._db.lazy_sync(), self._db.transaction() as db:
            if key is not None:
                inserted = db.execute(
                    "INSERT OR IGNORE INTO event_keys VALUES (?, ?)", (key, event.time_nano)
                ).rowcount
                if not inserted:
                    return None
            cursor = db.execute(
                "INSERT INTO events (time_nano, type, action, actor_id, attributes_json)"
                " VALUES (?, ?, ?, ?, ?)",
                (event.time_nano, event.type, event.action, event.actor_id, attributes),
            )
            return cursor.lastrowid

    def has_key(self, key: str) -> bool:
        return bool(self._db.query("SELECT 1 FROM event_keys WHERE key = ?", (key,)))

    def last_seq(self) -> int:
        """The newest event's ``seq`` (0 when none was ever added); readers follow from it."""
        row = self._db.query("SELECT seq FROM sqlite_sequence WHERE name = 'events'")
        return int(row[0][0]) if row else 0

    def read(
        self,
        *,
        after_seq: int = 0,
        upto_seq: int | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        limit: int = 1000,
    ) -> list[tuple[int, Event]]:
        """Up to ``limit`` events with ``after_seq < seq <= upto_seq`` and ``since_ns <= time_nano
        <= until_ns``, oldest ``seq`` first, each with its ``seq``."""
        where = ["seq > ?"]
        params: list[Any] = [after_seq]
        for clause, value in (
            ("seq <= ?", upto_seq),
            ("time_nano >= ?", since_ns),
            ("time_nano <= ?", until_ns),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        rows = self._db.query(
            f"SELECT * FROM events WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?", (*params, limit)
        )
        return [(int(r["seq"]), _event(r)) for r in rows]

    def prune(self, *, keep: int, before_ns: int) -> int:
        """Drop all but the newest ``keep`` events and every event (and key) older than
        ``before_ns``; how many events went."""
        with self._db.transaction() as db:
            removed = db.execute(
                "DELETE FROM events WHERE seq <= (SELECT seq FROM sqlite_sequence WHERE name = 'events') - ?",
                (keep,),
            ).rowcount
            removed += db.execute("DELETE FROM events WHERE time_nano < ?", (before_ns,)).rowcount
            db.execute("DELETE FROM event_keys WHERE time_nano < ?", (before_ns,))
        return int(removed)


def _event(row: sqlite3.Row) -> Event:
    return Event(
        type=row["type"],
        action=row["action"],
        actor_id=row["actor_id"],
        attributes=json.loads(row["attributes_json"]),
        time_nano=int(row["time_nano"]),
    )

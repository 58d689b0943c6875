"""The metadata store: images, tags, layers, containers, volumes and networks in one SQLite database.

Several processes share one root (the CLI, the daemon, pytest-xdist workers), so the database
runs in WAL mode with a busy timeout, every read-modify-write is one ``BEGIN IMMEDIATE``
transaction (the write lock is taken before the read, so two writers cannot both decide on a
stale view), and each thread (and each forked process) gets its own connection.

References are counted by query, never by counters: a layer is in use while an image row
points at its chain id, a blob while an image names it; a crash cannot leave a count wrong.

``synchronous = FULL`` stays, although ``NORMAL`` in WAL mode would skip the ``fsync`` per
commit (~0.1 ms here, a few commits per container) and still never corrupt the database: after
a power loss ``NORMAL`` may roll back the last commits, while files deleted right after them
(a removed image's blobs, a removed container's snapshot) stay deleted, leaving records that
point at nothing. Durable commits keep "delete only what no record points at" true.

Schema version is ``PRAGMA user_version``; :data:`_MIGRATIONS` takes a database from each
version to the next.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import attrs

from containerkit.errors import Conflict, InvalidArgument, NotFound

__all__ = [
    "ContainerRecord",
    "EndpointRecord",
    "ImageLayer",
    "ImageRecord",
    "LayerRecord",
    "MetadataStore",
    "NetworkRecord",
    "PortRecord",
    "VolumeRecord",
]

_SCHEMA_V1 = """
CREATE TABLE images (
    id TEXT PRIMARY KEY,              -- config digest
    manifest_digest TEXT,
    config_json TEXT NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    created TEXT,                     -- RFC 3339 from the config, may be NULL
    architecture TEXT NOT NULL DEFAULT '',
    os TEXT NOT NULL DEFAULT '',
    added REAL NOT NULL
);
CREATE TABLE image_layers (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,        -- 0 = bottom
    diff_id TEXT NOT NULL,
    chain_id TEXT NOT NULL,
    blob_digest TEXT NOT NULL,
    blob_size INTEGER NOT NULL,
    media_type TEXT NOT NULL,
    PRIMARY KEY (image_id, position)
);
CREATE INDEX image_layers_chain ON image_layers(chain_id);
CREATE INDEX image_layers_blob ON image_layers(blob_digest);
CREATE TABLE tags (
    ref TEXT PRIMARY KEY,             -- canonical: docker.io/library/busybox:latest
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE INDEX tags_image ON tags(image_id);
CREATE TABLE image_digests (
    ref TEXT PRIMARY KEY,             -- canonical: docker.io/library/busybox@sha256:...
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE INDEX image_digests_image ON image_digests(image_id);
CREATE TABLE layers (
    chain_id TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    blob_digest TEXT NOT NULL,        -- the blob it was unpacked from first
    size INTEGER NOT NULL,            -- unpacked size
    media_type TEXT NOT NULL,
    parent TEXT                       -- chain id of the layer below, NULL at the bottom
);
CREATE TABLE containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,        -- without the leading "/"
    image_id TEXT NOT NULL,
    image_ref TEXT NOT NULL,
    created REAL NOT NULL,
    spec_json TEXT NOT NULL,
    labels_json TEXT NOT NULL,
    runtime TEXT NOT NULL
);
CREATE INDEX containers_image ON containers(image_id);
CREATE TABLE volumes (
    name TEXT PRIMARY KEY,
    created REAL NOT NULL,
    labels_json TEXT NOT NULL,
    mountpoint TEXT NOT NULL
);
"""

# v2: networks, each container's endpoints on them (its address while attached) and the host
# ports published for it. An endpoint row lives from connect to disconnect; ``attached`` is 1
# while a veth plugs the container in, and only attached rows hold their address.
_SCHEMA_V2 = """
CREATE TABLE networks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    driver TEXT NOT NULL,
    bridge TEXT NOT NULL UNIQUE,      -- host link name
    subnet TEXT NOT NULL,
    gateway TEXT NOT NULL,
    internal INTEGER NOT NULL,
    labels_json TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE endpoints (
    network_id TEXT NOT NULL REFERENCES networks(id),
    container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,        -- eth<position> in the container, 0 has the default route
    aliases_json TEXT NOT NULL,
    ip TEXT,                          -- the last address, held while attached
    mac TEXT,
    host_ifname TEXT,                 -- host end of the veth while attached
    attached INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (network_id, container_id)
);
CREATE INDEX endpoints_container ON endpoints(container_id);
CREATE UNIQUE INDEX endpoints_address ON endpoints(network_id, ip) WHERE attached = 1;
CREATE TABLE published_ports (
    container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    protocol TEXT NOT NULL,
    host_ip TEXT NOT NULL,
    host_port INTEGER NOT NULL,
    container_port INTEGER NOT NULL,
    PRIMARY KEY (container_id, protocol, host_ip, host_port)
);
"""

# v3: a container's lifecycle state. A ``creating`` row reserves its name while the bundle is
# written and is invisible until ``created``; a ``removing`` row is being taken apart. ``owner``
# ("<pid>:<start time>") is the process doing that: once it is gone, recovery rolls the creation
# back or finishes the removal.
_SCHEMA_V3 = """
ALTER TABLE containers ADD COLUMN state TEXT NOT NULL DEFAULT 'created';
ALTER TABLE containers ADD COLUMN owner TEXT NOT NULL DEFAULT ''
"""

_MIGRATIONS: dict[int, str] = {0: _SCHEMA_V1, 1: _SCHEMA_V2, 2: _SCHEMA_V3}

CONTAINER_STATES = ("creating", "created", "removing")
# A container being removed stays visible until its record goes, last (as before states existed):
# "not found" keeps meaning "nothing of it is left".
_VISIBLE = "state != 'creating'"
SCHEMA_VERSION = max(_MIGRATIONS) + 1


@attrs.frozen
class ImageLayer:
    diff_id: str
    chain_id: str
    blob_digest: str
    blob_size: int
    media_type: str


@attrs.frozen(kw_only=True)
class ImageRecord:
    id: str
    manifest_digest: str | None
    config_json: str
    layers: tuple[ImageLayer, ...] = ()
    size: int = 0
    created: str | None = None
    architecture: str = ""
    os: str = ""
    added: float = 0.0

    @property
    def diff_ids(self) -> tuple[str, ...]:
        return tuple(layer.diff_id for layer in self.layers)

    @property
    def chain_ids(self) -> tuple[str, ...]:
        return tuple(layer.chain_id for layer in self.layers)


@attrs.frozen(kw_only=True)
class LayerRecord:
    chain_id: str
    diff_id: str
    blob_digest: str
    size: int
    media_type: str
    parent: str | None = None


@attrs.frozen(kw_only=True)
class ContainerRecord:
    id: str
    name: str
    image_id: str
    image_ref: str
    created: float
    spec_json: str
    labels_json: str = "{}"
    runtime: str = "builtin"


@attrs.frozen(kw_only=True)
class VolumeRecord:
    name: str
    created: float
    labels_json: str = "{}"
    mountpoint: str = ""


@attrs.frozen(kw_only=True)
class NetworkRecord:
    id: str
    name: str
    bridge: str
    subnet: str
    gateway: str
    internal: bool = False
    labels_json: str = "{}"
    created: float = 0.0
    driver: str = "bridge"


@attrs.frozen(kw_only=True)
class EndpointRecord:
    network_id: str
    container_id: str
    position: int = 0
    aliases_json: str = "[]"
    ip: str | None = None
    mac: str | None = None
    host_ifname: str | None = None
    attached: bool = False


@attrs.frozen(kw_only=True)
class PortRecord:
    container_id: str
    protocol: str
    host_ip: str
    host_port: int
    container_port: int


AddressChooser = Callable[[set[str], set[str], EndpointRecord, NetworkRecord], tuple[str, str]]
"""``(attached, reserved, endpoint, network) -> (ip, mac)``: picks an address inside the
allocation transaction; ``reserved`` are the last addresses of detached endpoints."""

_CONTAINER_FIELDS = ("id", "name", "image_id", "image_ref", "created", "spec_json", "labels_json", "runtime")
_UPDATABLE = frozenset(_CONTAINER_FIELDS) - {"id", "name"}


def _check_state(state: str) -> None:
    if state not in CONTAINER_STATES:
        raise InvalidArgument(f"container state must be one of {', '.join(CONTAINER_STATES)}, got {state!r}")


def _container(row: sqlite3.Row) -> ContainerRecord:
    return ContainerRecord(**{k: row[k] for k in _CONTAINER_FIELDS})


def _network(row: sqlite3.Row) -> NetworkRecord:
    data = dict(row)
    data["internal"] = bool(data["internal"])
    return NetworkRecord(**data)


def _endpoint(row: sqlite3.Row) -> EndpointRecord:
    data = dict(row)
    data["attached"] = bool(data["attached"])
    return EndpointRecord(**data)


class MetadataStore:
    """One SQLite database at ``path``; safe across threads and processes."""

    def __init__(self, path: Path, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_ms = int(busy_timeout * 1000)
        self._local = threading.local()
        # Each connection with its thread: those of finished threads are closed when the next
        # one opens (a daemon with a thread per client would otherwise keep one per request).
        self._all: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._all_lock = threading.Lock()
        with self.transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise InvalidArgument(
                    f"metadata database {self.path} has schema {version}, newer than {SCHEMA_VERSION}"
                )
            while version < SCHEMA_VERSION:
                for statement in _MIGRATIONS[version].split(";"):
                    if statement.strip():
                        db.execute(statement)
                version += 1
                db.execute(f"PRAGMA user_version = {version}")

    # -------------------------------------------------------------------------- connections

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self._busy_ms / 1000
        )
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        self._local.conn = conn
        self._local.pid = os.getpid()
        self._local.depth = 0
        with self._all_lock:
            finished = [c for t, c in self._all if not t.is_alive()]
            self._all = [(t, c) for t, c in self._all if t.is_alive()]
            self._all.append((threading.current_thread(), conn))
        for old in finished:
            with suppress(sqlite3.Error):
                old.close()
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error); nested calls join the outer one."""
        conn = self._connection()
        if self._local.depth:
            self._local.depth += 1
            try:
                yield conn
            finally:
                self._local.depth -= 1
            return
        conn.execute("BEGIN IMMEDIATE")
        self._local.depth = 1
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")
        finally:
            self._local.depth = 0

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._connection().execute(sql, params).fetchall()

    def close(self) -> None:
        """Close every connection this process opened (other threads must be done with the store)."""
        with self._all_lock:
            conns, self._all = [c for _t, c in self._all], []
        for conn in conns:
            with suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    # -------------------------------------------------------------------------- images

    def add_image(self, image: ImageRecord, *, tags: Sequence[str] = (), digests: Sequence[str] = ()) -> None:
        """Record an image (kept if already there) and point ``tags``/``digests`` at it, atomically."""
        with self.transaction() as db:
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

    def get_image(self, image_id: str) -> ImageRecord | None:
        rows = self._query("SELECT * FROM images WHERE id = ?", (image_id,))
        if not rows:
            return None
        layers = self._query(
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

    def list_image_ids(self) -> list[str]:
        """Newest first."""
        return [r[0] for r in self._query("SELECT id FROM images ORDER BY added DESC, id")]

    def image_ids_with_prefix(self, prefix: str) -> list[str]:
        """Ids (``sha256:<hex>``) whose hex starts with ``prefix``."""
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            return []
        low = f"sha256:{prefix}"
        high = low + "\uffff"
        return [r[0] for r in self._query("SELECT id FROM images WHERE id >= ? AND id < ?", (low, high))]

    def resolve_tag(self, ref: str) -> str | None:
        rows = self._query("SELECT image_id FROM tags WHERE ref = ?", (ref,))
        return rows[0][0] if rows else None

    def resolve_digest(self, ref: str) -> str | None:
        rows = self._query("SELECT image_id FROM image_digests WHERE ref = ?", (ref,))
        return rows[0][0] if rows else None

    def tags(self, image_id: str | None = None) -> list[tuple[str, str]]:
        """``(ref, image_id)`` pairs, sorted by ref; all of them or one image's."""
        if image_id is None:
            return [(r[0], r[1]) for r in self._query("SELECT ref, image_id FROM tags ORDER BY ref")]
        rows = self._query("SELECT ref, image_id FROM tags WHERE image_id = ? ORDER BY ref", (image_id,))
        return [(r[0], r[1]) for r in rows]

    def digests(self, image_id: str) -> list[str]:
        return [
            r[0]
            for r in self._query("SELECT ref FROM image_digests WHERE image_id = ? ORDER BY ref", (image_id,))
        ]

    def set_tag(self, ref: str, image_id: str) -> str | None:
        """Point ``ref`` at ``image_id``; returns the image it pointed at before (or None)."""
        with self.transaction() as db:
            if not db.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone():
                raise NotFound(f"No such image: {image_id}")
            before = db.execute("SELECT image_id FROM tags WHERE ref = ?", (ref,)).fetchone()
            db.execute("INSERT OR REPLACE INTO tags VALUES (?, ?)", (ref, image_id))
            return before[0] if before and before[0] != image_id else None

    def remove_tag(self, ref: str) -> str | None:
        """Drop a tag or a repo@digest reference; returns the image it pointed at (or None)."""
        with self.transaction() as db:
            for table in ("tags", "image_digests"):
                row = db.execute(f"SELECT image_id FROM {table} WHERE ref = ?", (ref,)).fetchone()
                if row:
                    db.execute(f"DELETE FROM {table} WHERE ref = ?", (ref,))
                    return str(row[0])
            return None

    def remove_image(self, image_id: str) -> bool:
        """Delete the image row with its tags, digests and layer list (not the layers themselves)."""
        with self.transaction() as db:
            return bool(db.execute("DELETE FROM images WHERE id = ?", (image_id,)).rowcount)

    def referenced_blobs(self) -> set[str]:
        """Every blob digest an image still needs: configs, manifests, layer blobs."""
        rows = self._query(
            "SELECT id FROM images UNION SELECT manifest_digest FROM images WHERE manifest_digest IS NOT NULL"
            " UNION SELECT blob_digest FROM image_layers"
        )
        return {r[0] for r in rows}

    def referenced_chain_ids(self) -> set[str]:
        """Every layer (chain id) an image still needs."""
        return {r[0] for r in self._query("SELECT DISTINCT chain_id FROM image_layers")}

    # -------------------------------------------------------------------------- layers

    def add_layer(self, layer: LayerRecord) -> None:
        with self.transaction() as db:
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

    def get_layer(self, chain_id: str) -> LayerRecord | None:
        rows = self._query("SELECT * FROM layers WHERE chain_id = ?", (chain_id,))
        return LayerRecord(**dict(rows[0])) if rows else None

    def list_layers(self) -> list[LayerRecord]:
        return [LayerRecord(**dict(r)) for r in self._query("SELECT * FROM layers ORDER BY chain_id")]

    def unreferenced_layers(self) -> list[str]:
        """Chain ids no image uses and no other layer sits on."""
        rows = self._query(
            "SELECT chain_id FROM layers l"
            " WHERE NOT EXISTS (SELECT 1 FROM image_layers i WHERE i.chain_id = l.chain_id)"
            " AND NOT EXISTS (SELECT 1 FROM layers c WHERE c.parent = l.chain_id) ORDER BY chain_id"
        )
        return [r[0] for r in rows]

    def remove_layer(self, chain_id: str) -> bool:
        with self.transaction() as db:
            return bool(db.execute("DELETE FROM layers WHERE chain_id = ?", (chain_id,)).rowcount)

    # -------------------------------------------------------------------------- containers

    def add_container(
        self, record: ContainerRecord, *, state: str = "created", owner: str = ""
    ) -> ContainerRecord:
        """Insert; the stored name has no leading ``/``. Conflict if the name or id is taken (by
        any row: a container being created holds its name)."""
        _check_state(state)
        record = attrs.evolve(record, name=record.name.lstrip("/"))
        with self.transaction() as db:
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
                [*(getattr(record, k) for k in _CONTAINER_FIELDS), state, owner],
            )
        return record

    def set_container_state(self, container_id: str, state: str, *, owner: str = "") -> None:
        """Move a container to ``state`` (one transaction: it becomes visible when ``created``)."""
        _check_state(state)
        with self.transaction() as db:
            if not db.execute(
                "UPDATE containers SET state = ?, owner = ? WHERE id = ?", (state, owner, container_id)
            ).rowcount:
                raise NotFound(f"No such container: {container_id}")

    def unfinished_containers(self) -> list[tuple[str, str, str]]:
        """``(id, state, owner)`` of every container being created or removed."""
        rows = self._query("SELECT id, state, owner FROM containers WHERE state != 'created' ORDER BY id")
        return [(r[0], r[1], r[2]) for r in rows]

    def get_container(self, container_id: str) -> ContainerRecord:
        """By exact id, in any state (the engine's own lookups, teardown included)."""
        rows = self._query("SELECT * FROM containers WHERE id = ?", (container_id,))
        if not rows:
            raise NotFound(f"No such container: {container_id}")
        return _container(rows[0])

    def find_container(self, ref: str) -> ContainerRecord:
        """By full id, then name (with or without ``/``), then unique id prefix, as docker resolves;
        a container still being created is not found."""
        visible = _VISIBLE
        rows = self._query(f"SELECT * FROM containers WHERE id = ? AND {visible}", (ref,))
        if not rows and ref:
            rows = self._query(f"SELECT * FROM containers WHERE name = ? AND {visible}", (ref.lstrip("/"),))
        if not rows and ref and all(c in "0123456789abcdef" for c in ref):
            rows = self._query(
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

    def list_containers(self) -> list[ContainerRecord]:
        """The containers, except those still being created."""
        rows = self._query(f"SELECT * FROM containers WHERE {_VISIBLE} ORDER BY created DESC, id")
        return [_container(r) for r in rows]

    def update_container(self, container_id: str, **fields: Any) -> ContainerRecord:
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise InvalidArgument(f"cannot update container field(s) {sorted(unknown)}")
        with self.transaction() as db:
            if fields:
                assignments = ", ".join(f"{k} = ?" for k in fields)
                db.execute(
                    f"UPDATE containers SET {assignments} WHERE id = ?", [*fields.values(), container_id]
                )
            return self.get_container(container_id)

    def rename_container(self, container_id: str, new_name: str) -> ContainerRecord:
        new_name = new_name.lstrip("/")
        with self.transaction() as db:
            current = self.get_container(container_id)
            row = db.execute("SELECT id FROM containers WHERE name = ?", (new_name,)).fetchone()
            if row and row[0] != current.id:
                raise Conflict(f'the container name "/{new_name}" is already in use by container "{row[0]}"')
            db.execute("UPDATE containers SET name = ? WHERE id = ?", (new_name, container_id))
            return attrs.evolve(current, name=new_name)

    def remove_container(self, container_id: str) -> None:
        with self.transaction() as db:
            if not db.execute("DELETE FROM containers WHERE id = ?", (container_id,)).rowcount:
                raise NotFound(f"No such container: {container_id}")

    def containers_using_image(self, image_id: str) -> list[str]:
        rows = self._query("SELECT id FROM containers WHERE image_id = ? ORDER BY created, id", (image_id,))
        return [r[0] for r in rows]

    # -------------------------------------------------------------------------- volumes

    def add_volume(self, record: VolumeRecord) -> VolumeRecord:
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM volumes WHERE name = ?", (record.name,)).fetchone():
                raise Conflict(f"volume {record.name!r} already exists")
            db.execute(
                "INSERT INTO volumes VALUES (?, ?, ?, ?)",
                (record.name, record.created, record.labels_json, record.mountpoint),
            )
        return record

    def get_volume(self, name: str) -> VolumeRecord:
        rows = self._query("SELECT * FROM volumes WHERE name = ?", (name,))
        if not rows:
            raise NotFound(f"no such volume: {name}")
        return VolumeRecord(**dict(rows[0]))

    def list_volumes(self) -> list[VolumeRecord]:
        return [VolumeRecord(**dict(r)) for r in self._query("SELECT * FROM volumes ORDER BY name")]

    def remove_volume(self, name: str) -> None:
        with self.transaction() as db:
            if not db.execute("DELETE FROM volumes WHERE name = ?", (name,)).rowcount:
                raise NotFound(f"no such volume: {name}")

    # -------------------------------------------------------------------------- networks

    def add_network(self, record: NetworkRecord) -> NetworkRecord:
        """Insert; Conflict if the name, id or bridge is taken."""
        with self.transaction() as db:
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

    def get_network(self, network_id: str) -> NetworkRecord:
        rows = self._query("SELECT * FROM networks WHERE id = ?", (network_id,))
        if not rows:
            raise NotFound(f"network {network_id} not found")
        return _network(rows[0])

    def find_network(self, ref: str) -> NetworkRecord:
        """By full id, then name, then unique id prefix (docker's order)."""
        rows = self._query("SELECT * FROM networks WHERE id = ?", (ref,))
        if not rows and ref:
            rows = self._query("SELECT * FROM networks WHERE name = ?", (ref,))
        if not rows and ref and all(c in "0123456789abcdef" for c in ref):
            rows = self._query(
                "SELECT * FROM networks WHERE id >= ? AND id < ? LIMIT 2", (ref, ref + "\uffff")
            )
            if len(rows) > 1:
                raise InvalidArgument(f"multiple networks match the id prefix {ref!r}; give more characters")
        if not rows:
            raise NotFound(f"network {ref} not found")
        return _network(rows[0])

    def list_networks(self) -> list[NetworkRecord]:
        return [_network(r) for r in self._query("SELECT * FROM networks ORDER BY created, id")]

    def set_network_subnet(self, network_id: str, subnet: str, gateway: str) -> NetworkRecord:
        """Re-address a network none of whose endpoints is attached (the default one, moved off a
        subnet the host took meanwhile); Conflict otherwise."""
        with self.transaction() as db:
            if db.execute(
                "SELECT 1 FROM endpoints WHERE network_id = ? AND attached = 1", (network_id,)
            ).fetchone():
                raise Conflict(f"network {network_id} has attached containers; its subnet cannot change")
            db.execute(
                "UPDATE networks SET subnet = ?, gateway = ? WHERE id = ?", (subnet, gateway, network_id)
            )
            return self.get_network(network_id)

    def remove_network(self, network_id: str) -> None:
        """Delete; Conflict naming the containers while any is connected."""
        with self.transaction() as db:
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

    # -------------------------------------------------------------------------- endpoints

    def add_endpoint(self, network_id: str, container_id: str, aliases_json: str = "[]") -> EndpointRecord:
        """Connect (not attach): the lowest position the container does not use yet."""
        with self.transaction() as db:
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
        return [_endpoint(r) for r in self._query(sql + " ORDER BY container_id, position", params)]

    def remove_endpoint(self, network_id: str, container_id: str) -> None:
        with self.transaction() as db:
            if not db.execute(
                "DELETE FROM endpoints WHERE network_id = ? AND container_id = ?", (network_id, container_id)
            ).rowcount:
                raise NotFound(f"container {container_id} is not connected to network {network_id}")

    def attach_endpoint(
        self, network_id: str, container_id: str, host_ifname: str, choose: AddressChooser
    ) -> EndpointRecord:
        """Give the endpoint an address and mark it attached, in one ``BEGIN IMMEDIATE``
        transaction: two engines on one root never hand out the same address."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT * FROM endpoints WHERE network_id = ? AND container_id = ?",
                (network_id, container_id),
            ).fetchone()
            if row is None:
                raise NotFound(f"container {container_id} is not connected to network {network_id}")
            endpoint = _endpoint(row)
            network = self.get_network(network_id)
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
        with self.transaction() as db:
            db.execute(
                "UPDATE endpoints SET attached = 0, host_ifname = NULL"
                " WHERE network_id = ? AND container_id = ?",
                (network_id, container_id),
            )

    # -------------------------------------------------------------------------- published ports

    def set_ports(self, container_id: str, ports: Sequence[PortRecord]) -> None:
        """Replace what is recorded as published for the container."""
        with self.transaction() as db:
            db.execute("DELETE FROM published_ports WHERE container_id = ?", (container_id,))
            db.executemany(
                "INSERT OR REPLACE INTO published_ports VALUES (?, ?, ?, ?, ?)",
                [(container_id, p.protocol, p.host_ip, p.host_port, p.container_port) for p in ports],
            )

    def ports(self, container_id: str) -> list[PortRecord]:
        rows = self._query(
            "SELECT * FROM published_ports WHERE container_id = ? ORDER BY container_port, protocol, host_ip",
            (container_id,),
        )
        return [PortRecord(**dict(r)) for r in rows]

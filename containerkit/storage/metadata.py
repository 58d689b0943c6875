"""The metadata database: images, tags, layers, containers, volumes and networks in one SQLite file.

:class:`Database` owns the connections, the schema and the transactions; what is kept is read
and written through one store per kind (``db.images``, ``db.layers``, ``db.containers``,
``db.volumes``, ``db.networks``, ``db.events``: :mod:`containerkit.storage.stores`), as containerd's
``metadata`` package has. ``with db.transaction():`` around calls to several stores makes them
one transaction.

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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from containerkit.errors import InvalidArgument
from containerkit.storage.records import (
    AddressChooser,
    ContainerRecord,
    EndpointRecord,
    ImageLayer,
    ImageRecord,
    LayerRecord,
    NetworkRecord,
    PortRecord,
    VolumeRecord,
)
from containerkit.storage.stores import (
    CONTAINER_STATES,
    ContainerStore,
    EventStore,
    ImageStore,
    LayerStore,
    NetworkStore,
    VolumeStore,
)

__all__ = [
    "CONTAINER_STATES",
    "SCHEMA_VERSION",
    "AddressChooser",
    "ContainerRecord",
    "Database",
    "EndpointRecord",
    "ImageLayer",
    "ImageRecord",
    "LayerRecord",
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

# v4: what a front-end keeps with a container (the daemon: docker's create body, for inspect),
# which it used to write as a file into the engine's state dir.
_SCHEMA_V4 = """
ALTER TABLE containers ADD COLUMN extra_json TEXT NOT NULL DEFAULT '{}'
"""

# v5: the event log (docker's ``/events``), kept here so that every process on the root records
# into and reads one stream. ``seq`` (AUTOINCREMENT: never reused after pruning) orders the log
# for readers that follow it; ``time_nano`` is when it happened (a container's exit is recorded
# with the exit's own time when an engine first observes it). ``event_keys`` makes such
# recordings idempotent: one row per key (e.g. one ``die`` per run), pruned with the log's age.
_SCHEMA_V5 = """
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time_nano INTEGER NOT NULL,
    type TEXT NOT NULL,
    action TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    attributes_json TEXT NOT NULL
);
CREATE INDEX events_time ON events(time_nano);
CREATE TABLE event_keys (
    key TEXT PRIMARY KEY,
    time_nano INTEGER NOT NULL
)
"""

# v6: each container's last known run (status, pid, times, exit) and the argv its bundle runs,
# so that listing containers reads the database instead of every state dir and cgroup.
_SCHEMA_V6 = """
CREATE TABLE container_runs (
    container_id TEXT PRIMARY KEY REFERENCES containers(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    pid INTEGER,
    started_at TEXT,
    finished_at TEXT,
    exit_code INTEGER,
    oom_killed INTEGER NOT NULL DEFAULT 0
);
ALTER TABLE containers ADD COLUMN args_json TEXT
"""

# v7: the classic builder's cache: a step's key (its parent image, the instruction as history
# shows it, the run config) to the image the step made. ``parent_id`` ('' for scratch) marks
# the made image as a build step's, so image lists hide it while a child uses it, as docker's
# intermediate images; a removed image takes its rows with it.
_SCHEMA_V7 = """
CREATE TABLE build_cache (
    key TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    parent_id TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX build_cache_image ON build_cache(image_id);
CREATE INDEX build_cache_parent ON build_cache(parent_id)
"""

_MIGRATIONS: dict[int, str] = {
    0: _SCHEMA_V1,
    1: _SCHEMA_V2,
    2: _SCHEMA_V3,
    3: _SCHEMA_V4,
    4: _SCHEMA_V5,
    5: _SCHEMA_V6,
    6: _SCHEMA_V7,
}

SCHEMA_VERSION = max(_MIGRATIONS) + 1

_SPARE = 8
"""Idle connections of finished threads kept for the next threads (see ``Database._connection``)."""
_LEFT_FOR_EXIT: list[sqlite3.Connection] = []
"""Connections ``Database.close(checkpoint=False)`` left open for the process's exit."""


class Database:
    """One SQLite database at ``path`` with a store per kind; safe across threads and processes."""

    def __init__(self, path: Path, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_ms = int(busy_timeout * 1000)
        self._local = threading.local()
        # Each connection with its thread and process. A new thread takes over the connection of
        # a finished one (a daemon starts threads per request: opening one costs 0.3-0.5 ms);
        # up to _SPARE of them wait for the next threads, the others are closed.
        self._all: list[tuple[threading.Thread, int, sqlite3.Connection]] = []
        self._spare: list[tuple[int, sqlite3.Connection]] = []
        self._all_lock = threading.Lock()
        try:
            self._migrate()
        except sqlite3.DatabaseError as exc:  # another program's file by that name, or a torn one
            raise InvalidArgument(f"{self.path} is not a containerkit metadata database: {exc}") from None
        self.images = ImageStore(self)
        self.layers = LayerStore(self)
        self.containers = ContainerStore(self)
        self.volumes = VolumeStore(self)
        self.networks = NetworkStore(self)
        self.events = EventStore(self)

    def _migrate(self) -> None:
        """Bring the schema up to :data:`SCHEMA_VERSION`, refusing a newer one."""
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
        pid = os.getpid()
        if conn is not None and self._local.pid == pid:
            return conn
        with self._all_lock:
            finished = [(p, c) for t, p, c in self._all if not t.is_alive()]
            self._all = [(t, p, c) for t, p, c in self._all if t.is_alive()]
            # a finished thread's connection is idle (its transactions ended with the thread);
            # one made by another process (before a fork) is never used here
            spare = [(p, c) for p, c in self._spare + finished if p == pid]
            closing = [c for p, c in self._spare + finished if p != pid] + [c for _p, c in spare[_SPARE:]]
            self._spare = spare[:_SPARE]
            conn = self._spare.pop()[1] if self._spare else None
            if conn is not None:
                self._all.append((threading.current_thread(), pid, conn))
        for old in closing:
            with suppress(sqlite3.Error):
                old.close()
        if conn is not None:
            with suppress(sqlite3.Error):
                if conn.in_transaction:  # as closing it would have
                    conn.execute("ROLLBACK")
                conn.execute("PRAGMA synchronous = FULL")  # as a new one
        if conn is None:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=self._busy_ms / 1000
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            with self._all_lock:
                self._all.append((threading.current_thread(), pid, conn))
        self._local.conn = conn
        self._local.pid = pid
        self._local.depth = 0
        self._local.lazy = False  # at FULL, as set above
        self._local.lazy_depth = 0
        return conn

    @contextmanager
    def lazy_sync(self) -> Iterator[None]:
        """Commit without its own ``fsync`` (``synchronous = NORMAL``: 0.03 ms instead of 1-3 ms
        here) what may be lost to a power loss but never to a process crash (WAL keeps it): an
        event, a container's last run (its Task has the truth). The next durable commit syncs
        it too. Inside a caller's transaction the caller's setting stands.

        The connection is left at ``NORMAL`` afterwards and set back to ``FULL`` only when a
        transaction begins outside such a block (every write is a :meth:`transaction`): a run
        of lazy commits, as a container's start and removal make, switches once, not twice
        per commit (each switch is a statement, ~0.03 ms)."""
        conn = self._connection()
        if getattr(self._local, "depth", 0):
            yield
            return
        if not self._local.lazy:
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.lazy = True
        self._local.lazy_depth += 1
        try:
            yield
        finally:
            self._local.lazy_depth -= 1

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
        if self._local.lazy and not self._local.lazy_depth:  # a durable commit: FULL again
            conn.execute("PRAGMA synchronous = FULL")
            self._local.lazy = False
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

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Rows of one statement, outside or inside the thread's current transaction."""
        return self._connection().execute(sql, params).fetchall()

    def close(self, *, checkpoint: bool = True) -> None:
        """Close every connection this process opened (other threads must be done with the store).

        ``checkpoint=False``, for a process that exits right after (the command line): the
        connections are left open for the exit to drop instead. Closing the last connection
        copies the write-ahead log into the database and deletes it, with two ``fsync`` calls:
        1-3 ms on a quiet disk, tens of ms under load, on every command. Left to the exit, the
        log stays (as it does while a daemon holds the database open), every commit in it as
        durable as it was, and the next opener reads it back (under 2 ms for the largest log,
        1000 pages, before SQLite's automatic checkpoint).
        """
        with self._all_lock:
            conns, self._all = [c for _t, _p, c in self._all] + [c for _p, c in self._spare], []
            self._spare = []
        if not checkpoint:
            _LEFT_FOR_EXIT.extend(conns)  # referenced: a collected connection closes itself
            conns = []
        for conn in conns:
            with suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

"""``Engine(root=...)``: the one object users, the daemon and the fixtures hold.

Everything of an engine lives under its root: the metadata database, the content store, the
snapshots, the containers' state dirs and the volumes. Several Engines (in several processes)
may share one root; the metadata store and the shims' state files make that safe.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload

from containerkit.engine import _perms, _recovery
from containerkit.engine.builder import Builder
from containerkit.engine.container_service import ContainerService
from containerkit.engine.containers import ContainerCollection
from containerkit.engine.events import EventLog
from containerkit.engine.images import ImageCollection
from containerkit.engine.network_service import NetworkService
from containerkit.engine.networks import NetworkCollection
from containerkit.engine.volumes import VolumeCollection
from containerkit.errors import ContainerkitError, InvalidArgument, NotFound
from containerkit.images.content import ContentStore
from containerkit.linux.cgroups import list_cgroups, open_cgroup, remove_if_empty
from containerkit.linux.cgroups.prime import MigrationPrimer
from containerkit.runtime import spare_cgroup
from containerkit.runtime.state import read_state
from containerkit.runtime.task import CGROUP_PARENT, Task, cgroup_name
from containerkit.spec import ContainerStatus, Event
from containerkit.storage.metadata import Database
from containerkit.storage.snapshots import SnapshotStore
from containerkit.times import EventTime

if TYPE_CHECKING:  # registries are loaded when a pull, push or login needs them
    from containerkit.engine.registries import RegistryCollection
    from containerkit.images.registry.auth import RegistryOptions
    from containerkit.runtime.spawner import Spawner  # an engine without one never loads it

__all__ = ["DEFAULT_PIDS_LIMIT", "DEFAULT_ROOT", "Engine"]

DEFAULT_ROOT = Path("/var/lib/containerkit")
DEFAULT_PIDS_LIMIT = 2048
"""Podman's default: a fork bomb in one container cannot take every pid of the host."""


def _pids_default(value: int | None) -> int | None:
    """The engine's default pids limit as applied: None for none (given as None, 0 or -1)."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < -1):
        raise InvalidArgument(f"default_pids_limit: expected an integer >= -1, got {value!r}")
    return value if value is not None and value > 0 else None


def _journals_left(content_root: Path) -> bool:
    """Whether a commit left a journal or a temp file (engine/commit.py's ``commits`` dir):
    only then is the commit code loaded, which an engine that starts containers never needs."""
    try:
        with os.scandir(content_root / "commits") as entries:
            return any(True for _ in entries)
    except OSError:  # no dir: no commit ever ran on this root
        return False


class Engine:
    """Runs containers in this process, no daemon: ``engine.containers``, ``.images``,
    ``.volumes``, ``.networks``. Use as a context manager (or call :meth:`close`) to stop the fork server;
    containers keep running after the engine is gone."""

    def __init__(
        self,
        root: str | os.PathLike[str] = DEFAULT_ROOT,
        *,
        forkserver: bool = True,
        default_pids_limit: int | None = DEFAULT_PIDS_LIMIT,
        userns_remap: str | None = None,
        registry_options: RegistryOptions | None = None,
        keep_layer_blobs: bool = False,
        recover: bool = True,
    ) -> None:
        """``default_pids_limit``: the pids limit of a container whose spec sets none
        (Podman's 2048); None, 0 or -1 leave such containers unlimited. ``userns_remap``:
        ``"default"`` or a name with ``/etc/subuid`` and ``/etc/subgid`` entries, to give every
        container whose spec sets no ``userns`` a user namespace (docker's ``userns-remap``).
        ``keep_layer_blobs``: keep each layer's compressed blob beside its unpacked layer, as
        containerd does, so that a push or save sends it as it is instead of writing the tar
        again and gzipping it; the images this Engine pulls, loads or imports then take the
        disk of both (default: only the unpacked layers, as docker's overlay2).
        ``recover``: run :meth:`recover` when opening (a container's exit command, which
        handles one container, opens without it)."""
        self.default_pids_limit = _pids_default(default_pids_limit)
        if userns_remap is not None and (not isinstance(userns_remap, str) or ":" in userns_remap):
            raise InvalidArgument(f"userns_remap: expected 'default' or a subuid name, got {userns_remap!r}")
        # docker's userns-remap: containers whose spec sets no userns get a user namespace
        # ("default": the containerkit range of /etc/subuid, /etc/subgid, created when missing)
        self.userns_remap = userns_remap or None
        self.root = Path(root).absolute()
        _perms.secure_root(self.root)
        self._use_forkserver = forkserver
        self._spawner: Spawner | None = None
        self._spawner_lock = threading.Lock()
        # begins the kernel's wait before a start's cgroup migration as its create begins (and
        # as the fork server starts); a resident shell, started at its first prime
        self._primer = MigrationPrimer()
        # the stores, then the services over them, then the public collections
        self.metadata = Database(self.root / "metadata.db")
        self.content = ContentStore(self.root / "content")
        self.snapshots = SnapshotStore(self.root / "snapshots")
        self.images = ImageCollection(self.content, self.snapshots, self.metadata)
        self.images.keep_layer_blobs = bool(keep_layer_blobs)
        # insecure registries, mirrors, concurrency, and whether docker's config.json is read
        if registry_options is not None:  # else the defaults, made on first use
            self.images.registry_options = registry_options
        self._registries: RegistryCollection | None = None
        self.volumes = VolumeCollection(self.root / "volumes", self.metadata, users=self._volume_users)
        state_dirs = self.root / "containers"
        self.network_service = NetworkService(
            self.root,
            self.metadata.networks,
            self.metadata.containers,
            lambda cid: Task(cid, state_dirs / cid),
        )
        self.container_service = ContainerService(
            root=self.root,
            metadata=self.metadata,
            snapshots=self.snapshots,
            images=self.images,
            volumes=self.volumes,
            networks=self.network_service,
            launcher=lambda: self.spawner,
            default_pids_limit=self.default_pids_limit,
            userns_remap=self.userns_remap,
            prime_start=self._prime_start,
        )
        self.containers = ContainerCollection(self.container_service)
        self.images.builder = Builder(self.images, self.containers)
        self.event_log = EventLog(
            self.metadata, state_dirs, scan=lambda: self.container_service.scan_for_events()
        )
        """Every engine action on this root, kept in its metadata database (docker's events)."""
        self.networks = NetworkCollection(
            self.network_service, self.metadata.networks, self.containers, events=self.event_log
        )
        if recover:
            self.recover()
        if forkserver:  # forked now (when it can be), it has its spare ready by the first start
            spawner = self.spawner
            assert spawner is not None
            spawner.prestart()

    @property
    def registries(self) -> RegistryCollection:
        """docker login and logout, with this engine's registry options."""
        if self._registries is None:
            from containerkit.engine.registries import RegistryCollection

            self._registries = RegistryCollection(self.images.registry_options)
        return self._registries

    def _volume_users(self, name: str) -> list[str]:
        """The containers (names) that mount volume ``name``, running or not."""
        return [c.name for c in self.containers.list(all=True) if name in c.volume_names]

    @property
    def spawner(self) -> Spawner | None:
        """The fork server that starts shims and execs (started on first use)."""
        if not self._use_forkserver:
            return None
        with self._spawner_lock:
            if self._spawner is None:
                from containerkit.runtime.spawner import Spawner

                # a fork of this process when it is single-threaded (no interpreter start);
                # else the first containers need not wait for its interpreter: direct_until_ready
                self._spawner = Spawner(direct_until_ready=True, fork=True, primer=self._primer)
            return self._spawner

    def _prime_start(self) -> None:
        """A start usually follows a create: begin the kernel's wait for its cgroup migration
        now (see :mod:`containerkit.linux.cgroups.prime`), so that the create's own work and
        the shim's hand-over run during that grace period instead of before it."""
        self._primer.prime()

    def recover(self) -> list[str]:
        """Clean what a killed process left: containers it was creating (rolled back) or removing
        (finished), state dirs and snapshots of containers that have no record, cgroups, veths,
        netns files and published ports of containers that are no longer running, spooled
        request bodies and staged layers; then start again the containers whose restart policy
        (``always``, ``unless-stopped``) wants them running and whose shim is gone. The ids
        cleaned."""
        self.event_log.scan_exits()  # the exits no one observed (a crash, a host reboot)
        cleaned = self.images.builder.recover() if self.images.builder is not None else []
        cleaned += _recovery.finish_containers(self.container_service)
        cleaned += self.network_service.recover()
        self.container_service.reap_running_markers()
        _recovery.reap_staging(self)
        if _journals_left(self.content.root):  # what commits killed midway added
            from containerkit.engine.commit import recover_commits

            cleaned += recover_commits(self.images)
        # Containers another live process is creating or removing keep their dirs. The dirs and
        # snapshots are listed before the records are read: a creation commits its record before
        # it makes either, so whatever was listed and is still wanted has a record by then.
        state_root = self.root / "containers"
        state_dirs = list(state_root.iterdir()) if state_root.exists() else []
        snapshot_keys = list(self.snapshots.list_snapshots())
        known = {r.id for r in self.metadata.containers.all()}
        known |= {c[0] for c in self.metadata.containers.unfinished()}
        cgroups: set[str] | None = None

        def has_cgroup(container_id: str) -> bool:
            # the cgroups below the parent, listed once: probing each container's cgroup in
            # every hierarchy cost ~1 ms per stopped container on every open of the engine
            nonlocal cgroups
            if cgroups is None:
                cgroups = set(list_cgroups(CGROUP_PARENT))
            return cgroup_name(container_id) in cgroups

        for state_dir in state_dirs:
            if state_dir.name in known:
                status = ContainerStatus(read_state(state_dir).status)
                if status in (ContainerStatus.EXITED, ContainerStatus.DEAD) and has_cgroup(state_dir.name):
                    open_cgroup(cgroup_name(state_dir.name)).destroy()
                    cleaned.append(state_dir.name)
                continue
            if has_cgroup(state_dir.name):
                open_cgroup(cgroup_name(state_dir.name)).destroy()
            with contextlib.suppress(NotFound):
                self.snapshots.remove(state_dir.name)
            shutil.rmtree(state_dir, ignore_errors=True)
            cleaned.append(state_dir.name)
        for key in snapshot_keys:
            if key not in known:
                self.snapshots.remove(key)
                cleaned.append(key)
        with contextlib.suppress(OSError, ContainerkitError):
            spare_cgroup.sweep()  # what a killed spare shim made ahead
        with contextlib.suppress(OSError):
            remove_if_empty(CGROUP_PARENT)
        # last: what a host reboot or a killed shim stopped, with always / unless-stopped, and
        # the auto-remove containers whose exit a claim holder left unhandled (it died)
        _recovery.restart_containers(self.container_service)
        cleaned += _recovery.remove_unhandled_exits(self.container_service)
        return cleaned

    @overload
    def events(
        self,
        since: EventTime = None,
        until: EventTime = None,
        filters: Mapping[str, Any] | None = None,
        decode: Literal[True] = True,
    ) -> Iterator[Event]: ...

    @overload
    def events(
        self,
        since: EventTime = None,
        until: EventTime = None,
        filters: Mapping[str, Any] | None = None,
        *,
        decode: Literal[False],
    ) -> Iterator[dict[str, Any]]: ...

    def events(
        self,
        since: EventTime = None,
        until: EventTime = None,
        filters: Mapping[str, Any] | None = None,
        decode: bool = True,
    ) -> Iterator[Event] | Iterator[dict[str, Any]]:
        """docker's events of every process on this root: with ``since``/``until`` (unix seconds,
        RFC 3339, a datetime, or a duration before now like ``"10m"`` or a timedelta) the kept
        ones in that window; then, without ``until`` (or until it passes), new ones as they
        happen. ``filters``: docker's (type, event, container, image, network, volume, label,
        scope). ``decode=False``: docker's JSON messages as dicts instead of :class:`Event`."""
        stream = self.event_log.events(since, until, filters)
        return stream if decode else (event.to_docker() for event in stream)

    def ping(self) -> bool:
        """True: an in-process engine is there once constructed (the Client's asks its daemon)."""
        return True

    def close(self, *, release_network: bool = True, checkpoint: bool = True) -> None:
        """Stop the fork server; with ``release_network`` also take the default network's
        bridge down if no container uses it (a command line keeps it up between commands,
        as docker keeps docker0). ``checkpoint=False``: a process about to exit leaves the
        database's write-ahead log to the next opener
        (:meth:`~containerkit.storage.metadata.Database.close`)."""
        if release_network:
            self.networks.release_idle()
        self.network_service.close()
        with self._spawner_lock:
            if self._spawner is not None:
                self._spawner.close()  # its spare shim removes its spare cgroup as it leaves
                self._spawner = None
        # a process about to exit leaves the shell to leave at EOF (at most a grace period)
        self._primer.close(wait=checkpoint)
        with contextlib.suppress(OSError, ContainerkitError):
            remove_if_empty(CGROUP_PARENT)  # the shared parent cgroup, once no container uses it
        self.container_service.close()
        self.metadata.close(checkpoint=checkpoint)

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Engine(root={str(self.root)!r})"

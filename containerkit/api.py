"""What ``Engine`` (in-process) and ``Client`` (a containerkitd over HTTP) both are.

Code that should run against either one (the command line, the pytest fixtures, ``wait``)
is typed against these protocols, never against one side. ``containerkit/_conformance.py``
makes mypy check that both sides satisfy every protocol here, so a method added to one side
and not to the other fails type checking instead of surfacing as an ``AttributeError`` in
whichever front end happened to use it.

This module imports only ``spec`` and ``errors``: it sits above ``engine/`` and ``client/``
and below ``cli/``, ``testing/`` and ``wait.py``.
"""

from __future__ import annotations

import builtins
import datetime as dt
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol, Self, overload

from containerkit.spec import (
    BuildEvent,
    Change,
    ContainerSpec,
    Event,
    Health,
    HistoryEntry,
    Image,
    ImageConfig,
    NetworkEndpoint,
    ProgressEvent,
    RegistryData,
    RestartPolicy,
    Stats,
    Volume,
)

if TYPE_CHECKING:
    # the public name, for type checking only: api.py imports no layer at run time
    from containerkit import RegistryAuth

EventTime = float | str | dt.datetime | dt.timedelta | None
"""docker's ``since``/``until`` of :meth:`Backend.events`."""

__all__ = [
    "AttachStream",
    "Backend",
    "ContainerHandle",
    "ContainerStatus",
    "Containers",
    "ExecHandle",
    "Images",
    "NetworkHandle",
    "Networks",
    "Registries",
    "Stream",
    "Volumes",
]

Stream = Literal["stdout", "stderr"]
ContainerStatus = Literal["created", "running", "paused", "restarting", "exited", "dead"]
ArchiveFormat = Literal["docker-archive", "oci"]


class ExecHandle(Protocol):
    """A started exec (``container.exec(..., stream=True)``): the Engine's ``ExecProcess``, the
    Client's ``ExecStream``. Iterate for output, then :meth:`wait`; always an exit code."""

    @property
    def tty(self) -> bool: ...

    @property
    def pid(self) -> int | None:
        """The process id where the command runs (the daemon's host for a Client)."""

    @property
    def error(self) -> Exception | None:
        """Why the command could not start (in-process only; a daemon reports its 126)."""

    def stream(self) -> Iterator[tuple[Stream, bytes]]:
        """``(stream, chunk)`` pairs as the process writes them, until its output ends."""

    def __iter__(self) -> Iterator[bytes]: ...

    def communicate(self, input: bytes | None = None, timeout: float | None = None) -> tuple[bytes, bytes]:
        """Feed ``input``, close stdin, collect all output: ``(stdout, stderr)``."""

    def write_stdin(self, data: bytes) -> None: ...

    def close_stdin(self) -> None:
        """EOF for the process (with a tty: ^D)."""

    def resize(self, rows: int, cols: int) -> None:
        """Set the size of the exec's terminal (nothing without a tty)."""

    def wait(self, timeout: float | None = None) -> int:
        """The exit code (128+n after signal n; 126 when the command could not start)."""

    def close(self) -> None:
        """Release the stream (the process is not stopped)."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class AttachStream(Protocol):
    """What ``container.attach()`` returns: the output as ``(stream, chunk)`` pairs until the
    container stops, and with ``stdin=True`` a write side for its stdin."""

    def __iter__(self) -> Iterator[tuple[Stream, bytes]]: ...

    def __next__(self) -> tuple[Stream, bytes]: ...

    def write_stdin(self, data: bytes) -> None:
        """Send ``data`` to the container's stdin (created with ``stdin_open``)."""

    def close_stdin(self) -> None:
        """EOF for the container's stdin (with ``stdin_once``: for good); the output still
        comes in after it."""

    def close(self) -> None:
        """Stop following the output (the container runs on)."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class ContainerHandle(Protocol):
    """A live handle on one container: what it is, its state (read on each access), its
    lifecycle, its io and its files."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def short_id(self) -> str: ...

    @property
    def image_id(self) -> str: ...

    @property
    def image(self) -> str:
        """The reference the container was created from."""

    @property
    def spec(self) -> ContainerSpec: ...

    @property
    def volume_names(self) -> list[str]:
        """The named and anonymous volumes it mounts."""

    @property
    def labels(self) -> dict[str, str]: ...

    @property
    def created(self) -> dt.datetime: ...

    @property
    def status(self) -> ContainerStatus: ...

    @property
    def exit_code(self) -> int | None: ...

    @property
    def oom_killed(self) -> bool: ...

    @property
    def health(self) -> Health | None:
        """The health check's status and last results; None without a health check."""
        ...

    @property
    def restart_count(self) -> int:
        """How often its restart policy restarted it since the user last started it."""
        ...

    @property
    def pid(self) -> int | None: ...

    @property
    def started_at(self) -> str | None: ...

    @property
    def finished_at(self) -> str | None: ...

    @property
    def ports(self) -> dict[str, list[tuple[str, int]]]:
        """Published ports, random ones resolved: ``{"80/tcp": [("0.0.0.0", 8080)]}``."""

    @property
    def networks(self) -> dict[str, NetworkEndpoint]: ...

    @property
    def ip_address(self) -> str: ...

    def reload(self) -> Self: ...

    def start(self) -> None: ...

    def claim_exit(self) -> None:
        """Before ``start``: an ``auto_remove`` container's removal is done by :meth:`wait`
        in this process rather than by a new exit-command process (a daemon's watcher holds
        the claim for its clients)."""

    def release_exit(self) -> None:
        """Let go of :meth:`claim_exit` without waiting (a start that failed)."""

    def wait(self, timeout: float | None = None) -> int: ...

    def kill(self, sig: int | str = "SIGKILL") -> None: ...

    def stop(self, timeout: float | None = None) -> None: ...

    def restart(self, timeout: float | None = None) -> None: ...

    def pause(self) -> None: ...

    def unpause(self) -> None: ...

    def remove(self, *, force: bool = False, volumes: bool = False) -> None: ...

    def rename(self, name: str) -> None: ...

    def update(
        self,
        *,
        memory: int | str | None = None,
        memory_swap: int | str | None = None,
        cpus: float | None = None,
        cpu_shares: int | None = None,
        pids: int | None = None,
        cpuset_cpus: str | None = None,
        cpuset_mems: str | None = None,
        restart_policy: RestartPolicy | None = None,
    ) -> None: ...

    def logs(
        self,
        *,
        stdout: bool = True,
        stderr: bool = True,
        tail: int | None = None,
        since: float | dt.datetime | None = None,
        timestamps: bool = False,
        follow: bool = False,
        demux: bool = False,
    ) -> Any:
        """Bytes; with ``follow`` an iterator of chunks; with ``demux`` of ``(stream, chunk)``."""

    def attach(
        self,
        *,
        stdout: bool = True,
        stderr: bool = True,
        logs: bool = False,
        stdin: bool = False,
        detach_keys: str | None = None,
    ) -> AttachStream:
        """The output from now (``logs=True``: from the first line) until the container stops;
        attach, then start, and nothing is missed. ``stdin``: also a write side for its stdin;
        with a tty, ``detach_keys`` (docker's ``ctrl-p,ctrl-q`` when None) detach from it."""

    def resize(self, rows: int, cols: int) -> None: ...

    def exec(
        self,
        command: Sequence[str] | str,
        *,
        env: Mapping[str, str] | Iterable[str] | None = None,
        user: str | None = None,
        workdir: str | None = None,
        tty: bool = False,
        stdin: bool = False,
        privileged: bool = False,
        stream: bool = False,
        detach: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """An :class:`~containerkit.spec.ExecResult`, or with ``stream``/``detach`` an
        :class:`ExecHandle` (see :func:`exec_stream` for a typed call)."""

    def put(
        self,
        path: str,
        data: bytes | IO[bytes] | str | os.PathLike[str],
        *,
        owner: tuple[int, int] | None = None,
        copy_uid_gid: bool = False,
        no_overwrite_dir_non_dir: bool = False,
    ) -> None: ...

    def get(self, path: str) -> bytes:
        """A tar of ``path`` in the container, in memory."""

    def get_archive(self, path: str) -> tuple[Iterable[bytes], dict[str, Any]]:
        """A tar of ``path`` as chunks (close or drain it), and the stat of ``path``."""

    def stat_path(self, path: str) -> dict[str, Any]: ...

    def stats(self) -> Stats: ...

    def top(self) -> dict[str, Any]: ...

    def diff(self) -> builtins.list[Change]:
        """``docker diff``: the paths changed (C), added (A) or deleted (D) over its image."""

    def commit(
        self,
        repository: str | None = None,
        tag: str | None = None,
        *,
        changes: Iterable[str] = (),
        message: str | None = None,
        author: str | None = None,
        pause: bool = True,
    ) -> Image:
        """``docker commit``: its writable layer as a new image, ``changes`` (Dockerfile
        instructions) applied to its config; a running container is frozen meanwhile."""

    def export(self) -> Iterator[bytes]:
        """``docker export``: its root filesystem as tar chunks (without what is mounted in it)."""


class Containers(Protocol):
    """``backend.containers``."""

    def create(self, spec: ContainerSpec | None = None, /, **fields: Any) -> ContainerHandle: ...

    def run(
        self, image: str | Image, command: Sequence[str] | str | None = None, /, **fields: Any
    ) -> ContainerHandle: ...

    def get(self, ref: str) -> ContainerHandle:
        """By full id, unique id prefix, or name."""

    def list(
        self, *, all: bool = False, filters: Mapping[str, Any] | None = None
    ) -> Sequence[ContainerHandle]:
        """Running containers (``all=True``: every one), newest first."""

    def prune(self, *, filters: Mapping[str, Any] | None = None) -> builtins.list[str]: ...


class Images(Protocol):
    """``backend.images``."""

    def load(self, path: str | os.PathLike[str], *, name: str | None = None) -> builtins.list[Image]: ...

    def import_rootfs(
        self,
        tar_path: str | os.PathLike[str],
        ref: str | None = None,
        *,
        config: ImageConfig | Mapping[str, Any] | None = None,
    ) -> Image: ...

    def get(self, ref_or_id: str) -> Image: ...

    def config(self, image_id: str) -> ImageConfig: ...

    def history(self, ref: str) -> builtins.list[HistoryEntry]:
        """``docker history``: the image's steps, newest first."""

    def list(self, all: bool = False, filters: Mapping[str, Any] | None = None) -> builtins.list[Image]: ...

    def tag(self, src: str, dst: str) -> None: ...

    def remove(self, ref: str, force: bool = False) -> builtins.list[str]: ...

    def prune(self) -> builtins.list[str]: ...

    def save(
        self,
        refs: str | Sequence[str],
        out_path: str | os.PathLike[str],
        format: ArchiveFormat = "docker-archive",
    ) -> None: ...

    def pull(
        self,
        ref: str,
        *,
        platform: str | None = None,
        auth: RegistryAuth | None = None,
        progress: Callable[[ProgressEvent], None] | None = None,
    ) -> Image:
        """Pull ``ref`` from its registry; ``progress`` gets docker's steps (layer, action, bytes)."""

    def push(
        self,
        ref: str,
        *,
        auth: RegistryAuth | None = None,
        progress: Callable[[ProgressEvent], None] | None = None,
    ) -> str:
        """Push the image tagged ``ref``; the manifest digest the registry confirmed."""

    def get_registry_data(self, ref: str, *, auth: RegistryAuth | None = None) -> RegistryData:
        """What the registry has for ``ref`` (digest, media type, size, platforms), without pulling."""

    def build(
        self,
        context: str | os.PathLike[str] = ".",
        dockerfile: str = "Dockerfile",
        tag: str | Sequence[str] | None = None,
        buildargs: Mapping[str, str | None] | None = None,
        target: str | None = None,
        labels: Mapping[str, str] | None = None,
        nocache: bool = False,
        cache_from: Sequence[str] = (),
        pull: bool = False,
        network: str = "bridge",
        extra_hosts: Mapping[str, str] | None = None,
        platform: str | None = None,
        rm: bool = True,
        forcerm: bool = False,
        progress: Callable[[BuildEvent], None] | None = None,
    ) -> Image:
        """Build the Dockerfile of directory ``context`` as docker's classic builder does (with
        its cache); ``progress`` gets each step, cache hit and output line."""

    def prune_build_cache(self) -> builtins.list[str]:
        """Forget the build cache; the ids of the images only build steps had made."""


class Registries(Protocol):
    """``backend.registries``: docker login and logout."""

    def login(self, server: str, username: str, password: str) -> str:
        """Check the credentials against ``server`` (docker.io for ""); docker's status text."""

    def logout(self, server: str) -> bool:
        """Forget ``server``'s credentials; False when there were none."""


class Volumes(Protocol):
    """``backend.volumes``."""

    def create(
        self,
        name: str | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        driver: str = "local",
        driver_opts: Mapping[str, str] | None = None,
    ) -> Volume: ...

    def get(self, name: str) -> Volume: ...

    def ensure(self, name: str) -> Volume:
        """The volume ``name``, created when missing."""

    def list(self, *, filters: Mapping[str, Any] | None = None) -> builtins.list[Volume]: ...

    def remove(
        self, name: str, *, force: bool = False, in_use_by: builtins.list[str] | None = None
    ) -> None: ...


class NetworkHandle(Protocol):
    """A handle on one network."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def short_id(self) -> str: ...

    @property
    def driver(self) -> str: ...

    @property
    def subnet(self) -> str: ...

    @property
    def gateway(self) -> str: ...

    @property
    def internal(self) -> bool: ...

    @property
    def bridge(self) -> str: ...

    @property
    def labels(self) -> dict[str, str]: ...

    @property
    def created(self) -> dt.datetime: ...

    @property
    def containers(self) -> Sequence[ContainerHandle]:
        """Every container connected (running or not)."""

    def reload(self) -> Self: ...

    def connect(self, container: str, *, aliases: list[str] | tuple[str, ...] = ()) -> None:
        """Connect a container (by id or name)."""

    def disconnect(self, container: str) -> None: ...

    def remove(self) -> None: ...


class Networks(Protocol):
    """``backend.networks``."""

    def create(
        self,
        name: str,
        *,
        subnet: str | None = None,
        gateway: str | None = None,
        internal: bool = False,
        labels: Mapping[str, str] | None = None,
    ) -> NetworkHandle: ...

    def get(self, ref: str) -> NetworkHandle: ...

    def default(self) -> NetworkHandle: ...

    def list(self, *, filters: Mapping[str, Any] | None = None) -> Sequence[NetworkHandle]: ...

    def remove(self, ref: str) -> None: ...

    def prune(self, *, filters: Mapping[str, Any] | None = None) -> builtins.list[str]: ...


class Backend(Protocol):
    """An ``Engine`` or a ``Client``: the four collections, and a lifetime.

    Not here yet: ``version()`` and ``info()``, which only the Client has (the command line
    builds the in-process engine's ``info`` itself).
    """

    @property
    def containers(self) -> Containers: ...

    @property
    def images(self) -> Images: ...

    @property
    def volumes(self) -> Volumes: ...

    @property
    def networks(self) -> Networks: ...

    @property
    def registries(self) -> Registries: ...

    def ping(self) -> bool:
        """True when the backend answers (a Client raises ``DaemonUnavailable`` otherwise)."""

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
        """docker's events (``since``/``until``: unix seconds, RFC 3339, a datetime, or a
        duration before now such as ``"10m"``), following new ones while ``until`` is ahead."""

    def close(self) -> None:
        """Release what the backend holds (containers keep running)."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def exec_stream(container: ContainerHandle, command: Sequence[str] | str, **options: Any) -> ExecHandle:
    """``container.exec(command, stream=True, **options)``, typed as the handle it returns."""
    handle: ExecHandle = container.exec(command, stream=True, **options)
    return handle

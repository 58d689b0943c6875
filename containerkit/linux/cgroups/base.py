"""The one cgroup manager interface, and the cgroupfs file helpers both versions share.

Managers own one cgroup (``name``, e.g. ``containerkit/<id>``) across every hierarchy they
use. Behaviour that only needs ``cgroup.procs`` and ``rmdir`` (listing, killing, destroying)
lives here once; each version supplies its own freezer, limits and statistics.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from containerkit._model import model
from containerkit.errors import (
    Conflict,
    ContainerkitError,
    InvalidArgument,
    NotFound,
    Timeout,
    Unavailable,
)
from containerkit.spec import Resources

from .devices import DeviceRule

__all__ = ["CgroupManager", "CgroupStats"]

_POLL = 0.005
_MKDIR_ATTEMPTS = 5
_KILL_WAIT = 5.0


@model(kw_only=True)
class CgroupStats:
    """One sample of a cgroup's usage; the fields match :class:`containerkit.spec.Stats`."""

    memory_usage: int = 0
    memory_limit: int | None = None
    cpu_usage_ns: int = 0
    pids: int = 0
    pids_limit: int | None = None


# -- cgroupfs file helpers ----------------------------------------------------------------


def validate_name(name: str) -> str:
    """A relative path of plain components, so a name can never climb out of the hierarchy."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") or "\0" in p for p in parts):
        raise InvalidArgument(f"cgroup name must be a relative path like 'containerkit/<id>', got {name!r}")
    return name


def read(path: Path) -> str:
    """The stripped content of a cgroup file; a missing file is :class:`NotFound`."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise NotFound(f"cgroup file {path} does not exist") from None
    except OSError as exc:
        if exc.errno == errno.ENODEV:  # the cgroup was removed while we read it
            raise NotFound(f"cgroup of {path} was removed") from None
        raise ContainerkitError(f"cannot read {path}: {exc.strerror}") from exc


def read_optional(path: Path) -> str | None:
    """Like :func:`read`, but ``None`` when the file (or its cgroup) is absent."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ENODEV:  # the cgroup was removed while we read it
            return None
        raise ContainerkitError(f"cannot read {path}: {exc.strerror}") from exc


def read_keyed(path: Path) -> dict[str, int]:
    """``key value`` lines (``cpu.stat``, ``memory.events``, ``memory.oom_control``); {} if absent."""
    text = read_optional(path) or ""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            values[key] = int(value)
    return values


def read_limit(path: Path, *, unlimited_from: int = 1 << 62) -> int | None:
    """A limit file as bytes/count; ``max``, ``-1`` or a huge v1 sentinel mean unlimited (None)."""
    text = read_optional(path)
    if text is None or text in ("max", "-1"):
        return None
    value = int(text.split()[0])
    return None if value >= unlimited_from else value


def write(path: Path, value: str | int) -> None:
    """One ``write(2)`` without O_CREAT: a missing file stays an error, on a fake tree too."""
    data = str(value).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"cgroup file {path} does not exist") from None
    except OSError as exc:
        raise _write_error(path, value, exc) from exc
    try:
        os.write(fd, data)
    except OSError as exc:
        raise _write_error(path, value, exc) from exc
    finally:
        os.close(fd)


def _write_error(path: Path, value: str | int, exc: OSError) -> ContainerkitError:
    message = f"cannot write {str(value)!r} to {path}: {exc.strerror}"
    if exc.errno in (errno.EINVAL, errno.ERANGE):
        return InvalidArgument(message)
    if exc.errno == errno.EBUSY:
        return Conflict(message)
    if exc.errno == errno.ESRCH:
        return NotFound(f"{message} (no such process)")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return Unavailable(message)
    return ContainerkitError(message)


def mkdir_p(path: Path) -> None:
    """``mkdir -p``, retried when a parent vanishes in between: another process removing the
    shared parent (``containerkit``) once it emptied must not fail this create."""
    for attempt in range(_MKDIR_ATTEMPTS):
        try:
            path.mkdir(parents=True, exist_ok=True)
            return
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and attempt + 1 < _MKDIR_ATTEMPTS:
                continue
            cls = Unavailable if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else ContainerkitError
            raise cls(f"cannot create cgroup {path}: {exc.strerror}") from exc


def walk_up(top: Path) -> Iterator[Path]:
    """``top`` and every cgroup below it, deepest first (the order rmdir needs)."""
    for dirpath, _dirs, _files in os.walk(top, topdown=False):
        yield Path(dirpath)


def procs(directory: Path) -> list[int]:
    text = read_optional(directory / "cgroup.procs") or ""
    return [int(line) for line in text.split()]


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            raise Timeout(f"timed out after {timeout}s waiting for {what}")
        time.sleep(_POLL)


# -- the interface ------------------------------------------------------------------------


class CgroupManager(abc.ABC):
    """One cgroup across every hierarchy this version uses. Knows nothing of containers."""

    name: str
    root: Path

    def __init__(self, name: str, root: Path) -> None:
        self.name = validate_name(name)
        self.root = Path(root)
        self._claimed: set[Path] = set()  # directories renamed from a spare (see claim)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, root={str(self.root)!r})"

    @property
    @abc.abstractmethod
    def paths(self) -> dict[str, Path]:
        """Hierarchy key (controller, or ``unified``) -> this cgroup's directory in it."""

    def create_everywhere(self) -> None:
        """:meth:`create`, plus every hierarchy another runtime may use (v1); v2 has one."""
        self.create()

    @abc.abstractmethod
    def create(self) -> None:
        """``mkdir -p`` the cgroup wherever it lives; idempotent."""

    @abc.abstractmethod
    def apply(self, resources: Resources) -> None:
        """Set every limit in ``resources``; a ``None`` field is written back to unlimited."""

    @abc.abstractmethod
    def apply_devices(self, rules: Sequence[DeviceRule]) -> None:
        """Enforce device ``rules`` (in order, the last match wins) before any process joins."""

    @abc.abstractmethod
    def freeze(self) -> None:
        """Stop every process, returning once the kernel reports the cgroup frozen."""

    @abc.abstractmethod
    def thaw(self) -> None: ...

    @abc.abstractmethod
    def is_frozen(self) -> bool: ...

    @abc.abstractmethod
    def stats(self) -> CgroupStats: ...

    @abc.abstractmethod
    def oom_kill_count(self) -> int:
        """How many processes the kernel OOM killer chose inside this cgroup (0 if unknown)."""

    @abc.abstractmethod
    def _kill_file(self) -> Path | None:
        """``cgroup.kill`` when the kernel offers it for this cgroup."""

    @abc.abstractmethod
    def _can_freeze(self) -> bool: ...

    # -- shared behaviour -------------------------------------------------------------

    def _dirs(self) -> list[Path]:
        """Distinct directories (co-mounted controllers share one)."""
        seen: dict[str, Path] = {}
        for path in self.paths.values():
            seen.setdefault(os.path.realpath(path), path)
        return list(seen.values())

    def exists(self) -> bool:
        return any(path.is_dir() for path in self._dirs())

    def add_process(self, pid: int) -> None:
        """Move ``pid`` (and later its children) into this cgroup in every hierarchy; not where
        :meth:`claim` renamed a spare holding it already."""
        for path in self._dirs():
            if path not in self._claimed:
                write(path / "cgroup.procs", pid)

    def join_this_thread(self) -> None:
        """Move the calling thread in, in every hierarchy (the caller must be single-threaded).

        A v1 hierarchy's ``tasks`` file moves the writer's own thread without the kernel's
        global threadgroup lock: ``cgroup.procs`` takes that lock for writing, and the first
        writer after a quiet spell waits an RCU grace period for it (7-25 ms on a 2-core VM)
        while it holds ``cgroup_mutex``, which every cgroup mkdir, rmdir and rename on the host
        waits for meanwhile. v2 moves a thread across domains only with its process, so its
        ``cgroup.procs`` is written as usual.
        """
        for path in self._dirs():
            if (path / "tasks").exists():
                write(path / "tasks", 0)
            else:
                write(path / "cgroup.procs", 0)

    def claim(self, spare: str) -> list[Path]:
        """Rename cgroup ``spare``, a sibling made ahead, to this one where the kernel allows it;
        the directories of this cgroup that now hold ``spare``'s processes.

        Only cgroup v1 renames a cgroup (within its parent); on v2 nothing is renamed, and
        the caller makes this cgroup, moves the processes and removes ``spare`` as usual.
        """
        validate_name(spare)
        return []

    def claimed_everywhere(self) -> bool:
        """Whether :meth:`claim` renamed the spare in every hierarchy that can rename (nothing
        is left of it to remove)."""
        return False

    def pids(self) -> list[int]:
        """Every process in this cgroup and in any cgroup below it, sorted."""
        found: set[int] = set()
        for path in self._dirs():
            found.update(_procs_below(path))
        return sorted(found)

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        """Signal every process; for SIGKILL, return only once the cgroup is empty.

        ``cgroup.kill`` is race-free against forks; without it the cgroup is frozen while
        the signals go out, so nothing can fork a child the loop would miss.
        """
        if sig == signal.SIGKILL:
            self._kill_until_empty(time.monotonic() + _KILL_WAIT)
        else:
            self._signal_once(sig, thaw_after=False)

    def _frozen_now(self) -> bool:
        """is_frozen() that a half-created or vanishing cgroup answers with False."""
        try:
            return self._can_freeze() and self.is_frozen()
        except NotFound:
            return False

    def _signal_once(self, sig: int, *, thaw_after: bool) -> None:
        frozen_before = self._frozen_now()
        froze = False
        if self._can_freeze() and not frozen_before:
            with contextlib.suppress(ContainerkitError):
                self.freeze()
                froze = True
        try:
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        finally:
            if froze or (thaw_after and frozen_before):
                self.thaw()

    def _kill_until_empty(self, deadline: float) -> None:
        kill_file = self._kill_file()
        if kill_file is not None and kill_file.exists():
            write(kill_file, 1)
            # a v1 freezer holds SIGKILLed tasks until thawed
            if self._frozen_now():
                self.thaw()
            # the kernel has signalled everything, forks included; wait for the exits
            with contextlib.suppress(Timeout):
                wait_for(
                    lambda: not _procs_below(kill_file.parent),
                    max(0.0, deadline - time.monotonic()),
                    f"{kill_file.parent} to empty",
                )
        # without cgroup.kill (or for tasks only in v1 hierarchies) signal by hand
        while True:
            remaining = self.pids()
            if not remaining:
                return
            if time.monotonic() >= deadline:
                raise Timeout(f"processes {remaining} in cgroup {self.name} survived SIGKILL")
            self._signal_once(signal.SIGKILL, thaw_after=True)
            time.sleep(_POLL)

    def destroy(self, timeout: float = 5.0) -> None:
        """Kill what is left, then rmdir the cgroup (and any below it) everywhere; idempotent."""
        deadline = time.monotonic() + timeout
        if _rmdir_all(self._dirs()):
            return
        if not self.exists():
            return
        if self.pids():
            self._kill_until_empty(deadline)
        for top in self._dirs():
            if not top.is_dir():
                continue
            for path in walk_up(top):
                _rmdir_retrying(path, deadline)


def _rmdir_all(paths: Iterable[Path]) -> bool:
    """One rmdir per directory: True when all are gone.

    The common case (the processes have exited, no child cgroups) needs nothing more, so the
    walk, the ``cgroup.procs`` reads and the kill loop are only paid when something is left;
    the kernel refuses to remove a cgroup that has processes or children (EBUSY).
    """
    gone = True
    for path in paths:
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:
            gone = False
    return gone


def _procs_below(top: Path) -> set[int]:
    found: set[int] = set()
    if top.is_dir():
        for path in walk_up(top):
            found.update(procs(path))
    return found


def _rmdir_retrying(path: Path, deadline: float) -> None:
    """rmdir, retrying while the kernel still accounts exiting tasks (EBUSY)."""
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise ContainerkitError(f"cannot remove cgroup {path}: {exc.strerror}") from exc
            if time.monotonic() >= deadline:
                raise Conflict(f"cgroup {path} is still busy: {procs(path)} remain") from exc
            time.sleep(_POLL)

"""User namespaces: subordinate id ranges (``/etc/subuid``, ``/etc/subgid``) and id maps.

A remapped container's root is a range of unprivileged host ids, as with docker's
``userns-remap``. Docker's ``"default"`` creates a ``dockremap`` user; we add a ``containerkit``
entry to both files (no account needed: the files only reserve the range), appended under an
exclusive lock so two engines never pick the same range or write the entry twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from containerkit._model import model
from containerkit.errors import InvalidArgument, NotFound, RuntimeFailure
from containerkit.linux import _libc

__all__ = [
    "DEFAULT_REMAP_NAME",
    "SUBGID",
    "SUBUID",
    "IdRange",
    "UsernsMapping",
    "ensure_subordinate_ranges",
    "id_map_text",
    "make_userns",
    "read_subordinate_ranges",
    "write_id_maps",
]

DEFAULT_REMAP_NAME = "containerkit"
SUBUID = Path("/etc/subuid")
SUBGID = Path("/etc/subgid")
_RANGE_SIZE = 65536
_FIRST_START = 100000  # shadow's SUB_UID_MIN


@model
class IdRange:
    """``size`` host ids from ``start``: container id 0 is host id ``start``."""

    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size


@model
class UsernsMapping:
    """The uid and gid ranges container root maps to."""

    uids: IdRange
    gids: IdRange

    def to_oci(self) -> dict[str, list[dict[str, int]]]:
        """``linux.uidMappings`` / ``linux.gidMappings`` of an OCI ``config.json``."""

        def entry(r: IdRange) -> list[dict[str, int]]:
            return [{"containerID": 0, "hostID": r.start, "size": r.size}]

        return {"uidMappings": entry(self.uids), "gidMappings": entry(self.gids)}

    @classmethod
    def from_oci(cls, linux: dict[str, object]) -> UsernsMapping | None:
        """The mapping of a ``config.json`` ``linux`` object (one entry each); None without one."""
        uids, gids = linux.get("uidMappings"), linux.get("gidMappings")
        if not uids or not gids:
            return None
        try:
            u, g = uids[0], gids[0]  # type: ignore[index]
            if len(uids) != 1 or len(gids) != 1 or u["containerID"] != 0 or g["containerID"] != 0:  # type: ignore[arg-type]
                raise InvalidArgument("only one mapping of container id 0 per kind is supported")
            return cls(IdRange(int(u["hostID"]), int(u["size"])), IdRange(int(g["hostID"]), int(g["size"])))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise InvalidArgument(f"config.json uidMappings/gidMappings: {exc}") from None


def _parse(text: str, path: Path) -> list[tuple[str, IdRange]]:
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            raise InvalidArgument(f"{path}:{number}: expected name:start:count, got {line!r}")
        entries.append((parts[0], IdRange(int(parts[1]), int(parts[2]))))
    return entries


def _lookup(entries: list[tuple[str, IdRange]], name: str) -> IdRange | None:
    return next((r for n, r in entries if n == name and r.size > 0), None)


def read_subordinate_ranges(name: str, *, subuid: Path = SUBUID, subgid: Path = SUBGID) -> UsernsMapping:
    """The first range of ``name`` in each file; NotFound names the file without one."""
    found = []
    for path in (subuid, subgid):
        try:
            entries = _parse(path.read_text(), path)
        except FileNotFoundError:
            entries = []
        r = _lookup(entries, name)
        if r is None:
            raise NotFound(f"no subordinate id range for {name!r} in {path}")
        found.append(r)
    return UsernsMapping(found[0], found[1])


def _free_start(ranges: list[IdRange], size: int) -> int:
    """The lowest start at or above 100000 that overlaps no range in use."""
    start = _FIRST_START
    for r in sorted(ranges, key=lambda r: r.start):
        if r.end <= start:
            continue
        if r.start >= start + size:
            break
        start = r.end
    return start


def ensure_subordinate_ranges(
    name: str = DEFAULT_REMAP_NAME, *, subuid: Path = SUBUID, subgid: Path = SUBGID, size: int = _RANGE_SIZE
) -> UsernsMapping:
    """``name``'s ranges, appending ``name:<start>:<size>`` to each file that has none.

    Both files are locked (``flock``, in a fixed order) for the read and the append, so
    concurrent callers agree; a new entry uses the same start in both files, past every range
    either file already gives out. Lines are appended whole (one ``write``), never rewritten.
    """
    if not name or ":" in name or "\n" in name:
        raise InvalidArgument(f"invalid subordinate id owner name {name!r}")
    with contextlib.ExitStack() as stack:
        files = []
        for path in (subuid, subgid):
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
            stack.callback(os.close, fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
            with open(path) as f:
                text = f.read()
            files.append((path, fd, text, _parse(text, path)))
        existing = [_lookup(entries, name) for _p, _fd, _t, entries in files]
        if all(r is not None for r in existing):
            return UsernsMapping(existing[0], existing[1])  # type: ignore[arg-type]
        in_use = [r for _p, _fd, _t, entries in files for _n, r in entries]
        start = _free_start(in_use, size)
        result = []
        for (path, fd, text, _entries), have in zip(files, existing, strict=True):
            if have is not None:
                result.append(have)
                continue
            line = f"{name}:{start}:{size}\n"
            if text and not text.endswith("\n"):
                line = "\n" + line
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            except OSError as exc:
                raise RuntimeFailure(f"cannot add {name!r} to {path}: {exc.strerror}") from exc
            result.append(IdRange(start, size))
        return UsernsMapping(result[0], result[1])


def id_map_text(r: IdRange) -> str:
    """The ``uid_map``/``gid_map`` line mapping container id 0 onto ``r``."""
    return f"0 {r.start} {r.size}\n"


def write_id_maps(pid: int, mapping: UsernsMapping) -> None:
    """Write ``pid``'s ``uid_map`` and ``gid_map`` (as the privileged parent: ``setgroups`` stays
    allowed, as runc leaves it for a root-owned container)."""
    for name, r in (("uid_map", mapping.uids), ("gid_map", mapping.gids)):
        path = f"/proc/{pid}/{name}"
        try:
            with open(path, "w") as f:
                f.write(id_map_text(r))
        except OSError as exc:
            raise RuntimeFailure(f"write {path} ({id_map_text(r).strip()}): {exc.strerror}") from exc


def make_userns(mapping: UsernsMapping) -> int:
    """A new user namespace with ``mapping``, as an O_CLOEXEC fd (for idmapped mounts).

    A helper child unshares it and waits while we write its maps and open its ``ns/user``; the
    open fd keeps the namespace alive after the child exits. Forks: call only from a
    single-threaded process (the shim).
    """
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    done_r, done_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the helper child
        code = 1
        try:
            os.close(ready_r)
            os.close(done_w)
            _libc.libc.unshare(_libc.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(done_r, 1)
            code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise RuntimeFailure("could not create a user namespace (unshare CLONE_NEWUSER failed)")
        write_id_maps(pid, mapping)
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)

"""``/etc/passwd`` and ``/etc/group`` parsing, and docker's ``--user`` resolution.

No kernel calls: the files come from the image through ``read_file``, because the host's
user database says nothing about the container's.
"""

from __future__ import annotations

from collections.abc import Callable

from containerkit._model import model
from containerkit.errors import InvalidArgument, NotFound

__all__ = ["GroupEntry", "PasswdEntry", "ResolvedUser", "parse_group", "parse_passwd", "resolve_user"]

ReadFile = Callable[[str], "bytes | None"]


@model
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@model
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


@model
class ResolvedUser:
    """What the runtime needs to become a user: ids, supplementary groups, and ``$HOME``."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()
    home: str = "/"


def _lines(data: bytes | None) -> list[list[str]]:
    if not data:
        return []
    rows = []
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def parse_passwd(data: bytes | None) -> list[PasswdEntry]:
    """Entries of a passwd file; malformed lines are skipped, as libc does."""
    entries = []
    for fields in _lines(data):
        if len(fields) < 4 or not fields[2].isdigit() or not fields[3].isdigit():
            continue
        home = fields[5] if len(fields) > 5 else ""
        entries.append(PasswdEntry(fields[0], int(fields[2]), int(fields[3]), home))
    return entries


def parse_group(data: bytes | None) -> list[GroupEntry]:
    """Entries of a group file; malformed lines are skipped."""
    entries = []
    for fields in _lines(data):
        if len(fields) < 3 or not fields[2].isdigit():
            continue
        members = tuple(m for m in (fields[3].split(",") if len(fields) > 3 else []) if m)
        entries.append(GroupEntry(fields[0], int(fields[2]), members))
    return entries


def _id(text: str, what: str) -> int | None:
    if not text.isdigit():
        return None
    value = int(text)
    if value >= 2**31:
        raise InvalidArgument(f"{what} id out of range: {text}")
    return value


def resolve_user(user: str, read_file: ReadFile) -> ResolvedUser:
    """Resolve ``""``, ``name``, ``uid``, ``uid:gid``, ``name:group``, ``uid:group`` like docker.

    Numeric ids need not exist in the image; names must. Supplementary groups are the groups
    that list the user by name, unless a group was given explicitly.
    """
    user_part, _, group_part = (user or "").partition(":")
    passwd = parse_passwd(read_file("/etc/passwd"))
    uid_value = _id(user_part, "user") if user_part else 0
    entry: PasswdEntry | None
    if uid_value is None:
        entry = next((e for e in passwd if e.name == user_part), None)
        if entry is None:
            raise NotFound(f"unable to find user {user_part}: no matching entries in passwd file")
    else:
        entry = next((e for e in passwd if e.uid == uid_value), None)
    uid = entry.uid if entry else (uid_value or 0)
    gid = entry.gid if entry else 0
    home = entry.home if entry and entry.home else "/"

    if group_part:
        gid_value = _id(group_part, "group")
        if gid_value is None:
            groups = parse_group(read_file("/etc/group"))
            match = next((g for g in groups if g.name == group_part), None)
            if match is None:
                raise NotFound(f"unable to find group {group_part}: no matching entries in group file")
            gid = match.gid
        else:
            gid = gid_value

    # Like runc's GetExecUser: supplementary groups only in the implicit (no group given) form.
    additional: list[int] = []
    if entry is not None and not group_part:
        for group in parse_group(read_file("/etc/group")):
            if entry.name in group.members and group.gid != gid and group.gid not in additional:
                additional.append(group.gid)
    return ResolvedUser(uid=uid, gid=gid, additional_gids=tuple(additional), home=home)

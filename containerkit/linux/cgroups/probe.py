"""Which cgroup layout the host has, and the manager that fits it.

The answer comes from filesystem magic numbers (like runc's ``IsCgroup2UnifiedMode``), not
from mount options or kernel versions: a cgroup2 root is unified, a tmpfs root holding v1
hierarchies is legacy, or hybrid when a cgroup2 tree is mounted at ``root/unified`` too.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from containerkit.errors import ContainerkitError, Unavailable
from containerkit.linux import _libc

from .base import CgroupManager, validate_name
from .v1 import CgroupV1Manager
from .v2 import CgroupV2Manager

__all__ = ["Mode", "exists_anywhere", "list_cgroups", "open_cgroup", "probe", "remove_if_empty"]

Mode = Literal["unified", "hybrid", "legacy"]

CGROUP2_SUPER_MAGIC = 0x63677270
TMPFS_MAGIC = 0x01021994
DEFAULT_ROOT = Path("/sys/fs/cgroup")


def _statfs_type(path: Path) -> int | None:
    try:
        return _libc.libc.statfs_type(str(path))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Unavailable(f"cannot statfs {path}: {exc.strerror}") from exc


def probe(root: Path = DEFAULT_ROOT, *, fs_type: Callable[[Path], int | None] = _statfs_type) -> Mode:
    """``unified``, ``hybrid`` or ``legacy``; ``fs_type`` is the seam tests fake statfs with."""
    root = Path(root)
    kind = fs_type(root)
    if kind == CGROUP2_SUPER_MAGIC:
        return "unified"
    if kind == TMPFS_MAGIC:
        return "hybrid" if fs_type(root / "unified") == CGROUP2_SUPER_MAGIC else "legacy"
    found = "nothing" if kind is None else f"filesystem magic {kind:#x}"
    raise Unavailable(
        f"no cgroup filesystem at {root} ({found}; expected cgroup2 or a tmpfs of v1 hierarchies)"
    )


def open_cgroup(name: str, *, root: Path = DEFAULT_ROOT, mode: Mode | None = None) -> CgroupManager:
    """The manager for cgroup ``name`` (e.g. ``containerkit/<id>``); ``mode`` skips probing."""
    root = Path(root)
    mode = mode or probe(root)
    if mode == "unified":
        return CgroupV2Manager(name, root)
    if mode == "hybrid":
        return CgroupV1Manager(name, root, unified=root / "unified")
    if mode == "legacy":
        return CgroupV1Manager(name, root)
    raise ContainerkitError(f"unknown cgroup mode {mode!r} (expected unified, hybrid or legacy)")


def _hierarchies(root: Path, mode: Mode) -> list[Path]:
    if mode == "unified":
        return [root]
    # Every mounted hierarchy, not only the controllers we manage: runc creates its cgroups
    # in all of them, and a sweep must find what it left.
    try:
        found = sorted(h for h in root.iterdir() if (h / "cgroup.procs").exists())
    except FileNotFoundError:
        return []
    return found if mode == "hybrid" else [h for h in found if h.name != "unified"]


def exists_anywhere(name: str, *, root: Path = DEFAULT_ROOT) -> bool:
    """Whether cgroup ``name`` has a directory in any hierarchy under ``root`` (or in ``root``
    itself, a v2 mount): a dozen stats, without probing the layout or opening a manager, for
    the common check that a cgroup is gone already."""
    validate_name(name)
    root = Path(root)
    if (root / name).is_dir():
        return True
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return False
    return any(os.path.isdir(os.path.join(entry.path, name)) for entry in entries)


def list_cgroups(
    parent: str = "containerkit", *, root: Path = DEFAULT_ROOT, mode: Mode | None = None
) -> list[str]:
    """Names (``parent/<child>``) of cgroups directly under ``parent`` in any hierarchy.

    Sweeping leaks is ``for n in list_cgroups(): open_cgroup(n).destroy()``.
    """
    validate_name(parent)
    root = Path(root)
    found: set[str] = set()
    for hierarchy in _hierarchies(root, mode or probe(root)):
        directory = hierarchy / parent
        if directory.is_dir():
            found.update(f"{parent}/{child.name}" for child in directory.iterdir() if child.is_dir())
    return sorted(found)


def remove_if_empty(
    parent: str = "containerkit", *, root: Path = DEFAULT_ROOT, mode: Mode | None = None
) -> bool:
    """rmdir ``parent`` wherever it has no child cgroups and no processes; True if it is gone everywhere."""
    validate_name(parent)
    root = Path(root)
    gone = True
    for hierarchy in _hierarchies(root, mode or probe(root)):
        directory = hierarchy / parent
        try:
            directory.rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY, errno.EEXIST):
                raise ContainerkitError(f"cannot remove cgroup {directory}: {exc.strerror}") from exc
            gone = False
    return gone

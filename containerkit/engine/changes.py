"""``docker diff``: what a container changed over its image, as docker's changes.

moby's ``archive.OverlayChanges`` for the overlay driver (the upper dir walked, each path
looked up in the parent layers; a whiteout is a deletion, an opaque directory over a lower one
is deleted and its entries added) and its naive ``ChangesDirs`` for the copy driver (the whole
tree against its parents'). The engine's own mount points (``/etc/hosts``, ``/etc/hostname``,
``/etc/resolv.conf``, volume and bind targets it made) are left out, where dockerd keeps them
in its init layer.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from containerkit.errors import NotFound
from containerkit.spec import Change, ContainerSize

if TYPE_CHECKING:
    from containerkit.engine.container_service import ContainerService
    from containerkit.engine.containers import Container
    from containerkit.storage.snapshots import SnapshotStore

__all__ = [
    "ENGINE_PATHS",
    "changes",
    "container_size",
    "mount_points",
    "snapshot_changes",
    "snapshot_size",
]

ENGINE_PATHS = (
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    "etc/mtab",
    ".dockerenv",
    "dev/console",
    "dev/pts",
    "dev/shm",
    "proc",
    "sys",
)
"""What dockerd's init layer holds (``daemon/initlayer``): mount points, never a change."""


def mount_points(container: Container) -> set[str]:
    """The engine-made paths of a container, relative: the init layer's and its mount targets."""
    paths = set(ENGINE_PATHS)
    for mount in container.spec.mounts:
        target = posixpath.normpath(mount.target).lstrip("/")
        if target:
            paths.add(target)
    return paths


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _empty(path: str, st: os.stat_result) -> bool:
    if stat.S_ISREG(st.st_mode):
        return st.st_size == 0
    if stat.S_ISDIR(st.st_mode):
        with os.scandir(path) as it:
            return next(it, None) is None
    return False


def _same_file(a: str, b: str) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            chunk = fa.read(1 << 20)
            if chunk != fb.read(len(chunk) or 1):
                return False
            if not chunk:
                return True


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


class _Changes:
    """moby's ``archive.OverlayChanges`` (overlay: the upper dir walked, each path looked up in
    the parent layers) and ``ChangesDirs`` (copy driver: the whole tree against its parents'),
    in the walk's order: lexical within a directory, depth first, a directory's own ``C``
    ahead of the first change under it."""

    def __init__(
        self,
        upper: Path,
        lowers: Sequence[Path],
        *,
        whole_tree: bool,
        skip: set[str],
        id_offset: tuple[int, int] = (0, 0),
    ) -> None:
        self.id_offset = id_offset
        """A user-namespaced snapshot holds host ids above: compared as the container's ids."""
        self.upper = str(upper)
        self.lowers = [str(p) for p in lowers]
        self.whole_tree = whole_tree
        self.skip = skip
        self.out: list[Change] = []
        self.changed_dirs: set[str] = set()

    def lower(self, rel: str) -> os.stat_result | None:
        for root in self.lowers:
            try:
                st = os.lstat(os.path.join(root, rel))
            except (FileNotFoundError, NotADirectoryError):
                continue
            return None if _is_whiteout(st) else st
        return None

    def add(self, rel: str, kind: Literal["C", "A", "D"], is_dir: bool) -> None:
        if is_dir and kind != "D":
            self.changed_dirs.add(rel)
        if kind in ("A", "D"):
            parent = posixpath.dirname(rel)
            if parent and parent not in self.changed_dirs:
                self.out.append(Change("/" + parent, "C"))
                self.changed_dirs.add(parent)
        self.out.append(Change("/" + rel, kind))

    def walk(self, rel_dir: str) -> None:
        here = os.path.join(self.upper, rel_dir) if rel_dir else self.upper
        names = sorted(os.listdir(here))
        gone: list[str] = []
        if self.whole_tree:
            low_dir = os.path.join(self.lowers[0], rel_dir) if rel_dir else self.lowers[0]
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                if stat.S_ISDIR(os.lstat(low_dir).st_mode):  # never through a symlink below
                    gone = sorted(set(os.listdir(low_dir)) - set(names))
        for name in sorted([*names, *gone]):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if name in gone:
                self.add(rel, "D", False)
                continue
            path = os.path.join(here, name)
            st = os.lstat(path)
            low = self.lower(rel)
            if rel in self.skip and low is None and _empty(path, st):
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            if _is_whiteout(st):
                if low is not None:
                    self.add(rel, "D", False)
                continue
            if is_dir and _opaque(path) and low is not None:
                self.add(rel, "D", True)  # emptied and made again: docker reports it deleted
                self.changed_dirs.add(rel)
                self.walk_added(rel)
                continue
            if low is None:
                self.add(rel, "A", is_dir)
                if is_dir:
                    self.walk_added(rel)
                continue
            if is_dir and stat.S_ISDIR(low.st_mode) and not self._dir_changed(st, low):
                # reported (ahead of them) only if something below it changed
                outer, self.out = self.out, []
                self.changed_dirs.add(rel)
                self.walk(rel)
                below, self.out = self.out, outer
                if below:
                    self.out += [Change("/" + rel, "C"), *below]
                else:
                    self.changed_dirs.discard(rel)
                continue
            if not is_dir and self.whole_tree and not self._node_changed(path, st, low):
                continue
            self.add(rel, "C", is_dir)
            if is_dir:
                self.walk(rel)

    def walk_added(self, rel_dir: str) -> None:
        here = os.path.join(self.upper, rel_dir)
        for name in sorted(os.listdir(here)):
            rel = f"{rel_dir}/{name}"
            st = os.lstat(os.path.join(here, name))
            if _is_whiteout(st):
                continue
            self.add(rel, "A", stat.S_ISDIR(st.st_mode))
            if stat.S_ISDIR(st.st_mode):
                self.walk_added(rel)

    def _dir_changed(self, st: os.stat_result, low: os.stat_result) -> bool:
        # moby compares size, mode and mtime; the mtime changes with any entry made or removed
        # in it, which the entries below report themselves, so only mode and owner count here
        return stat.S_IMODE(st.st_mode) != stat.S_IMODE(low.st_mode) or self._owner(st) != (
            low.st_uid,
            low.st_gid,
        )

    def _owner(self, st: os.stat_result) -> tuple[int, int]:
        return st.st_uid - self.id_offset[0], st.st_gid - self.id_offset[1]

    def _node_changed(self, path: str, st: os.stat_result, low: os.stat_result) -> bool:
        if (
            stat.S_IFMT(st.st_mode) != stat.S_IFMT(low.st_mode)
            or stat.S_IMODE(st.st_mode) != stat.S_IMODE(low.st_mode)
            or self._owner(st) != (low.st_uid, low.st_gid)
            or st.st_size != low.st_size
            or st.st_mtime_ns != low.st_mtime_ns
            or st.st_rdev != low.st_rdev
        ):
            return True
        if stat.S_ISLNK(st.st_mode):
            return os.readlink(path) != os.readlink(self._lower_path(path))
        # a whole-second mtime (a layer's, or a coarse filesystem's) may hide a same-size rewrite
        return (
            stat.S_ISREG(st.st_mode)
            and st.st_mtime_ns % 1_000_000_000 == 0
            and not _same_file(path, self._lower_path(path))
        )

    def _lower_path(self, path: str) -> str:
        return os.path.join(self.lowers[0], os.path.relpath(path, self.upper))


def changes(service: ContainerService, container: Container) -> list[Change]:
    """``docker diff``: what the container changed over its image, running or stopped."""
    return snapshot_changes(service.snapshots, container.id, mount_points(container))


def snapshot_changes(store: SnapshotStore, key: str, skip: Iterable[str] = ()) -> list[Change]:
    """What snapshot ``key`` changed over its parents, as docker's changes, for either driver;
    ``skip``: relative paths of engine-made mount points (left out where empty and new)."""
    skip = set(skip)
    with store.changes(key) as where:
        if where.lower_tree is not None:
            walker = _Changes(
                where.upper, [where.lower_tree], whole_tree=True, skip=skip, id_offset=where.id_offset
            )
        else:
            walker = _Changes(
                where.upper, where.lowers, whole_tree=False, skip=skip, id_offset=where.id_offset
            )
        walker.walk("")
    return walker.out


def container_size(service: ContainerService, container: Container) -> ContainerSize:
    """A container's ``SizeRw`` and ``SizeRootFs``: its writable layer's files, and those plus
    its image's unpacked size (the sum of its layers', as dockerd's ``parent.Size()``; 0 for
    an image removed under it)."""
    rw = snapshot_size(service.snapshots, container.id, mount_points(container))
    try:
        image_size = service.images.get(container.image_id).size
    except NotFound:
        image_size = 0
    return ContainerSize(rw=rw, root_fs=rw + image_size)


def snapshot_size(store: SnapshotStore, key: str, skip: Iterable[str] = ()) -> int:
    """Bytes snapshot ``key`` wrote over its parents, as dockerd's ``DiffSize`` adds them: the
    sizes of the files (not disk blocks), directories not counted, a hardlinked inode once.

    Overlay: every file of the upper dir (moby's ``directory.Size``; a whiteout counts 0).
    Copy: the files the changes name as added or changed (moby's ``archive.ChangesSize``).
    """
    with store.changes(key) as where:
        if where.lower_tree is None:
            return _tree_size(str(where.upper))
        walker = _Changes(
            where.upper, [where.lower_tree], whole_tree=True, skip=set(skip), id_offset=where.id_offset
        )
        walker.walk("")
        seen: set[int] = set()
        total = 0
        for change in walker.out:
            if change.kind == "D":
                continue
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                st = os.lstat(os.path.join(where.upper, change.path.lstrip("/")))
                if stat.S_ISDIR(st.st_mode) or (st.st_nlink > 1 and st.st_ino in seen):
                    continue
                seen.add(st.st_ino)
                total += st.st_size
        return total


def _tree_size(root: str) -> int:
    """moby's ``directory.Size``: the sizes of everything but directories, an inode once; what
    a running container removes during the walk is skipped."""
    seen: set[int] = set()
    total = 0
    stack = [root]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except (FileNotFoundError, NotADirectoryError):
            continue
        with it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
                elif st.st_size and st.st_ino not in seen:
                    seen.add(st.st_ino)
                    total += st.st_size
    return total

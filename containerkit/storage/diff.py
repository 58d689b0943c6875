"""The diff maker: what a snapshot changed over its parents, as an OCI layer tar.

containerd splits a snapshotter from its *differ*: the snapshotter keeps trees, the differ turns
a writable snapshot back into a layer (``Compare``) and a layer into a tree (the applier, here
:mod:`containerkit.storage.apply`). A layer made here unpacks, with the same unpacker every
pulled layer goes through, into a tree that shows what the snapshot showed.

For the overlay driver the overlay upper dir *is* the change set, so it is walked alone, as
containerd's overlay differ and docker's overlay2 ``Diff`` do:

* a 0/0 character device is a deleted lower path: ``.wh.<name>`` (image-spec ``layer.md``);
* a directory with ``trusted.overlay.opaque=y`` hides everything below it: ``.wh..wh..opq``
  right after the directory's own entry;
* anything else is added or changed: its whole entry, with owner, mode, nanosecond mtime (a PAX
  record), ``SCHILY.xattr.*`` records (every namespace but ``trusted.overlay.*``, the upper
  dir's own bookkeeping) and devices; files hard linked together in the upper dir become one
  file and hardlink entries to it, so the links survive.

A directory renamed with ``redirect_dir`` or a file copied up metadata-only (``metacopy``) has
its content in a lower dir, which this walk cannot see; they are refused, naming the path,
rather than written as an incomplete layer. The snapshot must not change while it is read (its
container stopped). A user-namespaced snapshot's upper dir holds host ids; they are written
back as the container's ids.

The copy driver keeps whole trees, so its snapshot is compared with the tree its parents make
(containerd's double walk, :func:`write_tree_diff`): the same layer, except that a directory
emptied and made again comes out as whiteouts of what it held rather than as an opaque marker.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tarfile
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import attrs

from containerkit.errors import InvalidArgument, NotSupported

if TYPE_CHECKING:
    from containerkit.storage.snapshots import SnapshotStore

__all__ = ["DiffResult", "make_diff", "write_overlay_diff", "write_tree_diff"]

_WH = ".wh."
_OPAQUE = ".wh..wh..opq"
_OVERLAY_XATTR = "trusted.overlay."
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20


@attrs.frozen
class DiffResult:
    """The layer written: its diff_id (sha256 of the tar stream) and its size in bytes."""

    diff_id: str
    size: int


class _HashingWriter:
    """A write-only stream that hashes and counts what passes through to ``out``."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        self.out.write(data)
        return len(data)

    def tell(self) -> int:
        return self.size


def _xattr_value(path: str, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError as err:
        if err.errno in (errno.ENODATA, errno.ENOTSUP):
            return None
        raise


def _xattrs(path: str) -> dict[str, str]:
    """PAX records for the xattrs a layer carries (the upper dir's ``trusted.overlay.*`` are not)."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as err:
        if err.errno in (errno.ENOTSUP, errno.EPERM):
            return {}
        raise
    out = {}
    for name in sorted(names):
        if name.startswith(_OVERLAY_XATTR):
            continue
        value = _xattr_value(path, name)
        if value is not None:
            out[f"SCHILY.xattr.{name}"] = value.decode("utf-8", "surrogateescape")
    return out


class _Walker:
    def __init__(
        self,
        upper: Path,
        tar: tarfile.TarFile,
        id_offset: tuple[int, int],
        *,
        exclude: Collection[str] = (),
        lowers: Sequence[Path] = (),
    ) -> None:
        self.upper = upper
        self.tar = tar
        self.id_offset = id_offset
        self.links: dict[tuple[int, int], str] = {}
        self.exclude = frozenset(exclude)
        self.lowers = tuple(lowers)
        self.pending: list[tuple[str, tarfile.TarInfo]] = []
        """Directories not written yet: written only once something below them is."""

    def _lower_stat(self, rel: str) -> os.stat_result | None:
        """The entry ``rel`` in the topmost parent layer that has it (None: new here)."""
        for lower in self.lowers:
            try:
                st = os.lstat(os.path.join(lower, rel))
            except (FileNotFoundError, NotADirectoryError):
                continue
            return None if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 else st  # a whiteout: gone
        return None

    def _excluded(self, rel: str, st: os.stat_result) -> bool:
        """An engine-made mount point (``exclude``): an empty file or directory that the
        parent layers do not have, as dockerd's init layer keeps them out of a container's diff."""
        if rel not in self.exclude or self._lower_stat(rel) is not None:
            return False
        if stat.S_ISREG(st.st_mode):
            return st.st_size == 0
        if stat.S_ISDIR(st.st_mode):
            with os.scandir(os.path.join(self.upper, rel)) as it:
                return next(it, None) is None
        return False

    def _dir_kept(self, rel: str, st: os.stat_result) -> bool:
        """Whether directory ``rel`` is a change of its own (new, or another type, mode or owner
        than below); one copied up only because something under it changed is written only
        ahead of that change."""
        low = self._lower_stat(rel)
        return (
            low is None
            or not stat.S_ISDIR(low.st_mode)
            or stat.S_IMODE(low.st_mode) != stat.S_IMODE(st.st_mode)
            or (st.st_uid - self.id_offset[0], st.st_gid - self.id_offset[1]) != (low.st_uid, low.st_gid)
        )

    def _flush(self) -> None:
        for _rel, info in self.pending:
            self.tar.addfile(info)
        self.pending.clear()

    def _ids(self, path: str, st: os.stat_result) -> tuple[int, int]:
        uid, gid = st.st_uid - self.id_offset[0], st.st_gid - self.id_offset[1]
        if uid < 0 or gid < 0:
            raise InvalidArgument(
                f"{path}: owner {st.st_uid}:{st.st_gid} is outside the snapshot's id range "
                f"(offset {self.id_offset[0]}:{self.id_offset[1]})"
            )
        return uid, gid

    def _info(self, rel: str, path: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
        info = tarfile.TarInfo(rel)
        info.type = kind
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = self._ids(path, st)
        info.uname = info.gname = ""
        info.mtime = st.st_mtime_ns // 1_000_000_000
        pax = {"mtime": f"{info.mtime}.{st.st_mtime_ns % 1_000_000_000:09d}"}
        if kind != tarfile.SYMTYPE:
            pax.update(_xattrs(path))
        info.pax_headers = pax
        return info

    def _marker(self, rel: str, st: os.stat_result, path: str) -> tarfile.TarInfo:
        info = tarfile.TarInfo(rel)
        info.type = tarfile.REGTYPE
        info.mode = 0o644
        info.uid, info.gid = self._ids(path, st)
        info.uname = info.gname = ""
        info.mtime = st.st_mtime_ns // 1_000_000_000
        return info

    def _check_overlay_only(self, path: str) -> None:
        for name in ("trusted.overlay.redirect", "trusted.overlay.metacopy"):
            if _xattr_value(path, name) is not None:
                raise NotSupported(
                    f"{path}: {name.rsplit('.', 1)[1]} entry (content in a lower dir); "
                    "mount the snapshot with redirect_dir and metacopy off to diff it"
                )

    def walk(self, rel_dir: str) -> None:
        dir_path = os.path.join(self.upper, rel_dir) if rel_dir else str(self.upper)
        with os.scandir(dir_path) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            st = entry.stat(follow_symlinks=False)
            self.entry(rel, entry.path, st)

    def entry(self, rel: str, path: str, st: os.stat_result) -> None:
        mode = st.st_mode
        if self.exclude and self._excluded(rel, st):
            return
        if stat.S_ISCHR(mode) and st.st_rdev == 0:  # an overlay whiteout
            parent, _, name = rel.rpartition("/")
            self._flush()
            self.tar.addfile(self._marker(f"{parent}/{_WH}{name}" if parent else _WH + name, st, path))
            return
        self._check_overlay_only(path)
        if stat.S_ISDIR(mode):
            info = self._info(rel, path, st, tarfile.DIRTYPE)
            opaque = _xattr_value(path, "trusted.overlay.opaque") == b"y"
            if not self.exclude or opaque or self._dir_kept(rel, st):
                self._flush()
                self.tar.addfile(info)
                if opaque:
                    self.tar.addfile(self._marker(f"{rel}/{_OPAQUE}", st, path))
            else:
                self.pending.append((rel, info))
            self.walk(rel)
            if self.pending and self.pending[-1][0] == rel:
                self.pending.pop()  # nothing under it changed
            return
        self._flush()
        self.node(rel, path, st)

    def node(self, rel: str, path: str, st: os.stat_result) -> None:
        """Write one non-directory: a file, a hardlink to one written before, a symlink, a device
        or a fifo."""
        mode = st.st_mode
        if st.st_nlink > 1:
            first = self.links.get((st.st_dev, st.st_ino))
            if first is not None:
                info = self._info(rel, path, st, tarfile.LNKTYPE)
                info.linkname = first
                self.tar.addfile(info)
                return
            self.links[(st.st_dev, st.st_ino)] = rel
        if stat.S_ISREG(mode):
            info = self._info(rel, path, st, tarfile.REGTYPE)
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb", buffering=_CHUNK) as f:
                info.size = os.fstat(f.fileno()).st_size
                self.tar.addfile(info, f)
        elif stat.S_ISLNK(mode):
            info = self._info(rel, path, st, tarfile.SYMTYPE)
            info.linkname = os.readlink(path)
            self.tar.addfile(info)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info = self._info(rel, path, st, tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE)
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            self.tar.addfile(info)
        elif stat.S_ISFIFO(mode):
            self.tar.addfile(self._info(rel, path, st, tarfile.FIFOTYPE))
        # else a socket: a layer cannot hold one (docker skips them too)


def _empty(path: str, st: os.stat_result) -> bool:
    """An empty regular file or directory (what the engine makes as a mount point)."""
    if stat.S_ISREG(st.st_mode):
        return st.st_size == 0
    if stat.S_ISDIR(st.st_mode):
        with os.scandir(path) as it:
            return next(it, None) is None
    return False


def _same_content(a: str, b: str, size: int) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        done = 0
        while done < size:
            chunk = fa.read(_CHUNK)
            if not chunk or chunk != fb.read(len(chunk)):
                return False
            done += len(chunk)
    return True


class _TreeDiff:
    """containerd's double walk, for the copy driver: a snapshot's whole tree against the tree
    its parents make. An entry is changed when its type, mode, owner, mtime, xattrs, size, link
    target or device differ (and, where the mtime has no sub-second part, as on filesystems
    with coarse times, when its content differs); a lower entry missing above is a whiteout.
    Every directory above a change is written too, so the layer never makes one implicitly."""

    def __init__(
        self, lower: Path, upper: Path, id_offset: tuple[int, int], exclude: Collection[str] = ()
    ) -> None:
        self.lower = str(lower)
        self.upper = str(upper)
        self.id_offset = id_offset
        self.exclude = frozenset(exclude)
        self.actions: list[tuple[str, str]] = []  # ("dir" | "node" | "whiteout", rel), in tar order
        self.groups: dict[tuple[int, int], list[str]] = {}  # hardlinked inodes: every name
        self.changed: set[tuple[int, int]] = set()  # hardlinked inodes with a changed name

    def _ids(self, st: os.stat_result) -> tuple[int, int]:
        return st.st_uid - self.id_offset[0], st.st_gid - self.id_offset[1]

    def _meta_differs(self, upath: str, ust: os.stat_result, lpath: str, lst: os.stat_result) -> bool:
        return (
            stat.S_IFMT(ust.st_mode) != stat.S_IFMT(lst.st_mode)
            or stat.S_IMODE(ust.st_mode) != stat.S_IMODE(lst.st_mode)
            or self._ids(ust) != (lst.st_uid, lst.st_gid)
            or ust.st_mtime_ns != lst.st_mtime_ns
            or (not stat.S_ISLNK(ust.st_mode) and _xattrs(upath) != _xattrs(lpath))
        )

    def _owner_differs(self, ust: os.stat_result, lst: os.stat_result) -> bool:
        """Mode or owner (not times: those change when a mount point is made below)."""
        return stat.S_IMODE(ust.st_mode) != stat.S_IMODE(lst.st_mode) or self._ids(ust) != (
            lst.st_uid,
            lst.st_gid,
        )

    def _node_differs(self, upath: str, ust: os.stat_result, lpath: str, lst: os.stat_result) -> bool:
        if self._meta_differs(upath, ust, lpath, lst):
            return True
        mode = ust.st_mode
        if stat.S_ISREG(mode):
            if ust.st_size != lst.st_size:
                return True
            return ust.st_mtime_ns % 1_000_000_000 == 0 and not _same_content(upath, lpath, ust.st_size)
        if stat.S_ISLNK(mode):
            return os.readlink(upath) != os.readlink(lpath)
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            return ust.st_rdev != lst.st_rdev
        return False

    def _node(self, rel: str, ust: os.stat_result, changed: bool) -> None:
        key = (ust.st_dev, ust.st_ino)
        if ust.st_nlink > 1:
            self.groups.setdefault(key, []).append(rel)
            if changed:
                self.changed.add(key)
        if changed:
            self.actions.append(("node", rel))

    def added(self, rel_dir: str) -> None:
        """Everything under the new directory ``rel_dir``."""
        with os.scandir(os.path.join(self.upper, rel_dir)) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}"
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                self.actions.append(("dir", rel))
                self.added(rel)
            else:
                self._node(rel, st, changed=True)

    def compare(self, rel_dir: str) -> None:
        up = os.path.join(self.upper, rel_dir) if rel_dir else self.upper
        low = os.path.join(self.lower, rel_dir) if rel_dir else self.lower
        names = sorted(os.listdir(up))
        lower_names = set(os.listdir(low))
        for name in names:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            upath, lpath = os.path.join(up, name), os.path.join(low, name)
            ust = os.lstat(upath)
            lst = os.lstat(lpath) if name in lower_names else None
            if lst is None and rel in self.exclude and _empty(upath, ust):
                continue  # an engine-made mount point
            if stat.S_ISDIR(ust.st_mode):
                if lst is None or not stat.S_ISDIR(lst.st_mode):
                    self.actions.append(("dir", rel))
                    self.added(rel)
                    continue
                if self._meta_differs(upath, ust, lpath, lst) and not (
                    self.exclude and ust.st_mtime_ns != lst.st_mtime_ns and not self._owner_differs(ust, lst)
                ):
                    self.actions.append(("dir", rel))
                self.compare(rel)
                continue
            self._node(rel, ust, changed=lst is None or self._node_differs(upath, ust, lpath, lst))
        for name in sorted(lower_names - set(names)):
            self.actions.append(("whiteout", f"{rel_dir}/{name}" if rel_dir else name))

    def write(self, walker: _Walker) -> None:
        written = {rel for kind, rel in self.actions if kind == "node"}
        extra = [
            rel
            for key in sorted(self.changed, key=lambda k: self.groups[k][0])
            for rel in self.groups[key]
            if rel not in written
        ]
        dirs: set[str] = {""}

        def ensure_dir(rel: str) -> None:
            if rel in dirs:
                return
            ensure_dir(rel.rpartition("/")[0])
            path = os.path.join(self.upper, rel)
            walker.tar.addfile(walker._info(rel, path, os.lstat(path), tarfile.DIRTYPE))
            dirs.add(rel)

        for kind, rel in [*self.actions, *(("node", rel) for rel in extra)]:
            parent, _, name = rel.rpartition("/")
            ensure_dir(parent)
            path = os.path.join(self.upper, rel)
            if kind == "dir":
                ensure_dir(rel)
            elif kind == "node":
                walker.node(rel, path, os.lstat(path))
            else:
                parent_path = os.path.join(self.upper, parent) if parent else self.upper
                marker = f"{parent}/{_WH}{name}" if parent else _WH + name
                walker.tar.addfile(walker._marker(marker, os.lstat(parent_path), parent_path))


def make_diff(store: SnapshotStore, key: str, out: BinaryIO, *, exclude: Collection[str] = ()) -> DiffResult:
    """Write what snapshot ``key`` changed over its parents to ``out`` as a layer tar.

    Add it back with :func:`~containerkit.storage.apply.apply_layer` under the chain id of (top
    parent, its diff_id). The snapshot must not be in use meanwhile (its container stopped).

    ``exclude``: relative paths of the engine's own mount points (``etc/hosts``, a volume's
    directory): left out where they are an empty file or directory the parents lack, and
    directories are then written only for a change of their own or ahead of one below them
    (dockerd keeps these in an init layer, so a commit of an unchanged container is empty).
    """
    with store.changes(key) as changes:
        if changes.lower_tree is not None:
            return write_tree_diff(
                changes.lower_tree, changes.upper, out, id_offset=changes.id_offset, exclude=exclude
            )
        return write_overlay_diff(
            changes.upper,
            out,
            id_offset=changes.id_offset,
            lower_root=changes.lower_root,
            exclude=exclude,
            lowers=changes.lowers,
        )


def write_tree_diff(
    lower: Path,
    upper: Path,
    out: BinaryIO,
    *,
    id_offset: tuple[int, int] = (0, 0),
    exclude: Collection[str] = (),
) -> DiffResult:
    """Write how the full tree ``upper`` differs from the full tree ``lower`` to ``out`` as an
    uncompressed layer tar (the copy driver's diff: its snapshots are whole copies)."""
    for path in (lower, upper):
        os.close(os.open(path, _DIR_FLAGS))  # refuse a symlink or non-directory, naming the path
    tree = _TreeDiff(lower, upper, id_offset, exclude)
    tree.compare("")
    sink = _HashingWriter(out)
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        walker = _Walker(upper, tar, id_offset)
        root_st = os.lstat(upper)
        if _root_changed(upper, root_st, lower, id_offset):
            tar.addfile(walker._info(".", str(upper), root_st, tarfile.DIRTYPE))
        tree.write(walker)
    return DiffResult(diff_id="sha256:" + sink.sha.hexdigest(), size=sink.size)


def write_overlay_diff(
    upper: Path,
    out: BinaryIO,
    *,
    id_offset: tuple[int, int] = (0, 0),
    lower_root: Path | None = None,
    exclude: Collection[str] = (),
    lowers: Sequence[Path] = (),
) -> DiffResult:
    """Write the changes an overlay upper dir holds to ``out`` as an uncompressed layer tar.

    ``lower_root``: the top parent layer's dir; the root's own entry (owner, mode, xattrs) is
    written only where the upper root differs from it, as a layer usually has no root entry.
    ``exclude`` and ``lowers`` (the parent layer dirs, top first): see :func:`make_diff`.
    """
    fd = os.open(upper, _DIR_FLAGS)  # refuse a symlink or non-directory, naming the path
    os.close(fd)
    sink = _HashingWriter(out)
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        walker = _Walker(upper, tar, id_offset, exclude=exclude, lowers=lowers)
        root_st = os.lstat(upper)
        if lower_root is not None and _root_changed(upper, root_st, lower_root, id_offset):
            tar.addfile(walker._info(".", str(upper), root_st, tarfile.DIRTYPE))
        walker.walk("")
    return DiffResult(diff_id="sha256:" + sink.sha.hexdigest(), size=sink.size)


def _root_changed(upper: Path, st: os.stat_result, lower_root: Path, id_offset: tuple[int, int]) -> bool:
    low = os.lstat(lower_root)
    return (
        stat.S_IMODE(st.st_mode) != stat.S_IMODE(low.st_mode)
        or (st.st_uid - id_offset[0], st.st_gid - id_offset[1]) != (low.st_uid, low.st_gid)
        or _xattrs(str(upper)) != _xattrs(str(lower_root))
    )

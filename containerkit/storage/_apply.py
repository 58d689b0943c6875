"""Lay one unpacked layer directory over a rootfs copy: the copying snapshotter's only job.

Semantics are overlayfs's, so both drivers show the same tree: first the layer's whiteouts and
opaque directories hide lower content, then its entries are copied in; a directory merges with
a lower directory, anything else replaces what was there (a lower symlink included). Every path
in the rootfs is reached from a directory fd with ``O_NOFOLLOW``: symlinks in images are data
and are never followed here. Owners, modes, times, xattrs, devices and the layer's hardlinks are
kept; file data goes through ``copy_file_range`` (a reflink where the filesystem can).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Iterable

__all__ = ["apply_layer_dir"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 30


def _open_rel(root_fd: int, rel: str) -> int | None:
    """An fd of directory ``rel`` under ``root_fd``, or None if it is missing or not a real dir."""
    fd = os.dup(root_fd)
    for name in rel.split("/") if rel else ():
        try:
            nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                os.close(fd)
                return None
            raise
        os.close(fd)
        fd = nxt
    return fd


def _remove(dfd: int, name: str) -> None:
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dfd)
    else:
        os.unlink(name, dir_fd=dfd)


def _copy_xattrs(src: int | str, dst: int | str) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=isinstance(src, int))
    except OSError as err:
        if err.errno in (errno.ENOTSUP, errno.EPERM):
            return
        raise
    for name in names:
        with contextlib.suppress(OSError):  # e.g. user.* on a symlink: skipped, as unpack does
            value = os.getxattr(src, name, follow_symlinks=isinstance(src, int))
            os.setxattr(dst, name, value, follow_symlinks=isinstance(dst, int))


def _copy_data(sfd: int, dfd: int, size: int) -> None:
    done = 0
    try:
        while done < size:
            n = os.copy_file_range(sfd, dfd, min(_CHUNK, size - done))
            if n == 0:
                break
            done += n
    except OSError as err:
        if err.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
        while data := os.read(sfd, 1 << 20):
            view = memoryview(data)
            while view:
                view = view[os.write(dfd, view) :]


class _Copier:
    def __init__(self, dest_root: int) -> None:
        self.dest_root = dest_root
        self.links: dict[tuple[int, int], tuple[str, str]] = {}

    def copy_dir(self, sfd: int, dfd: int, rel: str) -> None:
        with os.scandir(sfd) as it:
            entries = list(it)
        for entry in entries:
            name = entry.name
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                self._dir(sfd, dfd, name, st, f"{rel}/{name}" if rel else name)
                continue
            _remove(dfd, name)
            if st.st_nlink > 1 and self._link(dfd, name, st, rel):
                continue
            if stat.S_ISREG(st.st_mode):
                self._file(sfd, dfd, name, st)
            elif stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(name, dir_fd=sfd), name, dir_fd=dfd)
                self._meta_path(sfd, dfd, name, st, chmod=False)
            else:
                os.mknod(name, stat.S_IFMT(st.st_mode) | 0o600, st.st_rdev, dir_fd=dfd)
                self._meta_path(sfd, dfd, name, st, chmod=True)

    def _link(self, dfd: int, name: str, st: os.stat_result, rel: str) -> bool:
        first = self.links.get((st.st_dev, st.st_ino))
        if first is None:
            self.links[(st.st_dev, st.st_ino)] = (rel, name)
            return False
        first_dir = _open_rel(self.dest_root, first[0])
        if first_dir is None:
            return False
        try:
            os.link(first[1], name, src_dir_fd=first_dir, dst_dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        finally:
            os.close(first_dir)
        return True

    def _dir(self, sfd: int, dfd: int, name: str, st: os.stat_result, rel: str) -> None:
        try:
            os.mkdir(name, 0o700, dir_fd=dfd)
        except FileExistsError:
            if not stat.S_ISDIR(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode):
                _remove(dfd, name)  # a directory in this layer hides a lower non-directory
                os.mkdir(name, 0o700, dir_fd=dfd)
        child_s = os.open(name, _DIR_FLAGS, dir_fd=sfd)
        try:
            child_d = os.open(name, _DIR_FLAGS, dir_fd=dfd)
            try:
                self.copy_dir(child_s, child_d, rel)
                _meta_fd(child_s, child_d, st)
            finally:
                os.close(child_d)
        finally:
            os.close(child_s)

    def _file(self, sfd: int, dfd: int, name: str, st: os.stat_result) -> None:
        src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=sfd)
        try:
            dst = os.open(
                name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd
            )
            try:
                _copy_data(src, dst, st.st_size)
                _meta_fd(src, dst, st)
            finally:
                os.close(dst)
        finally:
            os.close(src)

    @staticmethod
    def _meta_path(sfd: int, dfd: int, name: str, st: os.stat_result, *, chmod: bool) -> None:
        os.chown(name, st.st_uid, st.st_gid, dir_fd=dfd, follow_symlinks=False)
        if chmod:
            os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dfd)
        _copy_xattrs(f"/proc/self/fd/{sfd}/{name}", f"/proc/self/fd/{dfd}/{name}")
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd, follow_symlinks=False)


def _meta_fd(src: int, dst: int, st: os.stat_result) -> None:
    os.fchown(dst, st.st_uid, st.st_gid)  # before chmod and xattrs: chown clears setuid and caps
    os.fchmod(dst, stat.S_IMODE(st.st_mode))
    _copy_xattrs(src, dst)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def _hide(dest_fd: int, whiteouts: Iterable[str], opaque_dirs: Iterable[str]) -> None:
    for rel in opaque_dirs:
        fd = _open_rel(dest_fd, rel)
        if fd is None:
            continue  # missing or not a directory below: nothing to hide
        try:
            for name in os.listdir(fd):
                _remove(fd, name)
        finally:
            os.close(fd)
    for rel in whiteouts:
        parent, _, name = rel.rpartition("/")
        fd = _open_rel(dest_fd, parent)
        if fd is None:
            continue
        try:
            _remove(fd, name)
        finally:
            os.close(fd)


def apply_layer_dir(
    layer: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    whiteouts: Iterable[str] = (),
    opaque_dirs: Iterable[str] = (),
) -> None:
    """Hide what ``whiteouts``/``opaque_dirs`` name in ``dest``, then copy ``layer``'s tree over it."""
    src_fd = os.open(layer, _DIR_FLAGS)
    try:
        dest_fd = os.open(dest, _DIR_FLAGS)
        try:
            _hide(dest_fd, whiteouts, opaque_dirs)
            _Copier(dest_fd).copy_dir(src_fd, dest_fd, "")
            _meta_fd(src_fd, dest_fd, os.fstat(src_fd))
        finally:
            os.close(dest_fd)
    finally:
        os.close(src_fd)

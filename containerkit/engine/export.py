"""``docker export``: a container's merged root filesystem as one tar stream.

The tree is read through the in-root reader of ``docker cp`` (:mod:`containerkit.engine._archive`:
every child opened beneath its parent's fd with ``openat2``, never following a symlink, so nothing
outside the rootfs is reached) from the mounted snapshot of a stopped container or
``/proc/<pid>/root`` of a running one. As dockerd exports the rootfs and not the container's
mounts, a directory or file where another filesystem is mounted (``/proc``, ``/sys``, ``/dev``,
volumes, binds, ``/etc/hosts``) is written as the mount point only: an empty directory or file.
Entries are named as dockerd names them (``bin/``, ``bin/sh``: no root entry, no ``./``), and
memory stays bounded by the chunk size whatever the tree holds.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

from containerkit.engine import _archive
from containerkit.errors import Conflict
from containerkit.linux import inroot
from containerkit.linux.inroot import Root
from containerkit.spec import ContainerStatus

if TYPE_CHECKING:
    from containerkit.engine.container_service import ContainerService
    from containerkit.engine.containers import Container

__all__ = ["export"]


class _OneFilesystem(_archive._Walk):
    """The walk of ``docker cp``, staying on the root's filesystem (``tar --one-file-system``),
    with a user-namespaced container's host ids written as its own (dockerd's ``IDMap``)."""

    def __init__(self, device: int, id_offset: tuple[int, int] | None) -> None:
        super().__init__()
        self.device = device
        self.id_offset = id_offset or (0, 0)

    def _info(self, name: str, st: os.stat_result) -> tarfile.TarInfo:
        info = _archive._info(name, st)
        uid_off, gid_off = self.id_offset
        if uid_off and info.uid >= uid_off:
            info.uid -= uid_off
        if gid_off and info.gid >= gid_off:
            info.gid -= gid_off
        return info

    def entry(self, fd: int, name: str, depth: int) -> Iterator[bytes]:
        st = os.fstat(fd)
        mode = st.st_mode
        info = self._info(name, st)
        if st.st_dev != self.device and not stat.S_ISLNK(mode):
            # a mount point: what is mounted there is not the rootfs
            info.type = tarfile.DIRTYPE if stat.S_ISDIR(mode) else tarfile.REGTYPE
            yield _archive._header(info)
            return
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.links:
                info.type, info.linkname = tarfile.LNKTYPE, self.links[key]
                yield _archive._header(info)
                return
            if st.st_nlink > 1:
                self.links[key] = name
            info.size = st.st_size
            yield _archive._header(info)
            yield from _archive._file_chunks(fd, st.st_size)
        elif stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
            yield _archive._header(info)
            yield from self.children(fd, name, depth)
        elif stat.S_ISLNK(mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink("", dir_fd=fd)
            yield _archive._header(info)
        elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = (
                tarfile.FIFOTYPE
                if stat.S_ISFIFO(mode)
                else tarfile.CHRTYPE
                if stat.S_ISCHR(mode)
                else tarfile.BLKTYPE
            )
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            yield _archive._header(info)
        # sockets are skipped, as docker skips them

    def children(self, fd: int, name: str, depth: int) -> Iterator[bytes]:
        if name:
            yield from super().children(fd, name, depth)
            return
        listing = _archive._reopen(fd, os.O_RDONLY | os.O_DIRECTORY)
        try:
            names = sorted(os.listdir(listing))
        finally:
            os.close(listing)
        for child in names:
            try:
                child_fd = inroot.openat2(fd, child, os.O_PATH | os.O_NOFOLLOW, 0, inroot.RESOLVE_BENEATH)
            except FileNotFoundError:
                continue  # removed while we walked
            try:
                yield from self.entry(child_fd, child, depth + 1)
            finally:
                os.close(child_fd)


def _chunks(root: Root, id_offset: tuple[int, int] | None) -> Iterator[bytes]:
    total = 0
    for chunk in _OneFilesystem(os.fstat(root.fd).st_dev, id_offset).children(root.fd, "", 0):
        total += len(chunk)
        yield chunk
    end = 2 * tarfile.BLOCKSIZE
    total += end
    if total % tarfile.RECORDSIZE:
        end += tarfile.RECORDSIZE - total % tarfile.RECORDSIZE
    yield bytes(end)


def export(service: ContainerService, container: Container) -> _archive.TarStream:
    """The container's rootfs as tar chunks; close the stream (or read it to the end) to release
    the root it reads from. A container being removed or dead is a :class:`Conflict`, as dockerd."""
    status = container.current_status()
    if status in (ContainerStatus.DEAD, ContainerStatus.REMOVING):
        raise Conflict(f"You cannot export container {container.id} which is {status.value}")
    offset = service.snapshots.id_offset(container.id)
    stack = contextlib.ExitStack()
    try:
        # a stopped container's snapshot is mounted only while the root fd is opened: the lazily
        # detached mount lives on through the fd, so a long export holds no engine lock
        with service.rootfs(container) as path:
            root = Root.open(path)
        stack.callback(root.close)
    except BaseException:
        stack.close()
        raise
    service.record(container, "export")
    return _archive.TarStream(_chunks(root, offset), {"name": "/"}, stack)

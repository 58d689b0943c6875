"""Paths resolved inside a root directory by the kernel: ``openat2(2)`` with ``RESOLVE_IN_ROOT``.

A container's files are reached through a directory fd that stands for its ``/`` (an ``O_PATH``
fd of ``/proc/<pid>/root`` for a running container, so the walk sees the container's own mount
tree, or of its rootfs). Every lookup is one ``openat2`` relative to that fd: symlinks, ``..``
and absolute link targets are resolved as if the fd were ``/``, so no symlink a container makes,
and no swap it races against the lookup, can lead out of it. Everything after a lookup is done
on the fd it returned, or on one name relative to a resolved parent fd without following it, so
nothing is re-walked after it was resolved.

Knows nothing of containers or tar; :mod:`containerkit.engine._archive` builds on it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import platform
import posixpath
import shutil
import stat
from types import TracebackType

from containerkit.errors import InvalidArgument, NotFound, Unavailable
from containerkit.linux._libc import load_libc

__all__ = [
    "RESOLVE_BENEATH",
    "RESOLVE_IN_ROOT",
    "RESOLVE_NO_MAGICLINKS",
    "RESOLVE_NO_SYMLINKS",
    "Root",
    "chown_at",
    "create_file",
    "link_at",
    "make_dir",
    "make_node",
    "make_symlink",
    "openat2",
    "remove_at",
    "set_mode",
    "set_times_at",
    "split_name",
]

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437, "armv7l": 437, "ppc64le": 437, "s390x": 437}.get(
    platform.machine(), 437
)
_RETRIES = 64
"""``openat2`` answers EAGAIN when a rename raced a ``..`` step; it is safe to ask again."""


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = load_libc()
_libc.syscall.restype = ctypes.c_long


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """``openat2(2)``: a new fd (close-on-exec), or ``OSError``; :class:`Unavailable` where the
    kernel lacks the call (before 5.6), since there is no safe way to resolve in a root then."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    encoded = os.fsencode(path)
    for _ in range(_RETRIES):
        fd = _libc.syscall(
            _SYS_OPENAT2,
            ctypes.c_int(dirfd),
            ctypes.c_char_p(encoded),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err == errno.EAGAIN:
            continue
        if err == errno.ENOSYS:
            raise Unavailable(
                "openat2 is not available (Linux 5.6 or newer is needed to resolve paths inside "
                "a container's root safely)"
            )
        raise OSError(err, os.strerror(err), path)
    raise OSError(errno.EAGAIN, "path kept changing while it was resolved", path)


def split_name(path: str) -> tuple[str, str]:
    """``/a/b/c`` -> (``/a/b``, ``c``); the last component is never ``.``, ``..`` or empty
    (``/a/b/..`` is the root or a directory: named by its lexically clean path instead)."""
    clean = posixpath.normpath("/" + path)
    parent, name = posixpath.split(clean)
    return parent, name


class Root:
    """A directory that paths are resolved in as if it were ``/`` (owns its ``O_PATH`` fd)."""

    def __init__(self, fd: int, description: str) -> None:
        self.fd = fd
        self.description = description

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Root:
        """The root at host path ``path`` (followed on the host: the caller chose it)."""
        try:
            fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"no such directory: {os.fspath(path)}") from None
        except NotADirectoryError:
            raise InvalidArgument(f"not a directory: {os.fspath(path)}") from None
        return cls(fd, os.fspath(path))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Root:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- lookups ----------------------------------------------------------------------------

    def open_fd(self, path: str, flags: int = os.O_PATH, mode: int = 0, *, follow: bool = True) -> int:
        """An fd for ``path`` resolved in this root; ``follow=False`` keeps a final symlink
        (with ``O_PATH``: an fd of the link itself)."""
        if not follow:
            flags |= os.O_NOFOLLOW
        return openat2(self.fd, path, flags, mode, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)

    def open_dir(self, path: str) -> int:
        """An ``O_PATH`` fd of the directory ``path`` (symlinks followed in the root)."""
        return self.open_fd(path, os.O_PATH | os.O_DIRECTORY)

    def parent(self, path: str) -> tuple[int, str]:
        """The resolved parent directory of ``path`` as an fd, and the last component unresolved
        (``.`` for the root itself, whose parent is itself)."""
        parent, name = split_name(path)
        fd = self.open_dir(parent)
        return fd, name or "."

    def lstat(self, path: str) -> os.stat_result:
        """``lstat`` of ``path``: its parent resolved in the root, its last component not followed."""
        fd = self.open_fd(path, os.O_PATH, follow=False)
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def stat(self, path: str) -> os.stat_result:
        fd = self.open_fd(path, os.O_PATH)
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def readlink(self, path: str) -> str:
        parent, name = self.parent(path)
        try:
            return os.readlink(name, dir_fd=parent)
        finally:
            os.close(parent)

    def make_dirs(self, path: str, mode: int = 0o755) -> int:
        """An ``O_PATH`` fd of directory ``path``, creating missing components one at a time in
        the root (like ``mkdir -p`` run inside it)."""
        try:
            return self.open_dir(path)
        except FileNotFoundError:
            pass
        parent_path, name = split_name(path)
        if not name:
            raise NotFound(f"{self.description}: the root directory is gone")
        parent = self.make_dirs(parent_path, mode)
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, mode, dir_fd=parent)
            try:
                return openat2(parent, name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, 0, RESOLVE_BENEATH)
            except OSError as exc:
                if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise
            # a symlink: follow it inside the root (a dangling one names no directory)
            try:
                return self.open_dir(path)
            except FileNotFoundError:
                raise NotFound(f"{path}: a symbolic link to a path that does not exist") from None
        finally:
            os.close(parent)


# -- one name relative to a resolved directory fd, never followed --------------------------


def remove_at(dirfd: int, name: str) -> None:
    """Remove ``name`` (a whole tree if it is a directory); nothing there is not an error."""
    try:
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dirfd)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dirfd)


def create_file(dirfd: int, name: str, mode: int = 0o600) -> int:
    """A new regular file ``name`` open for writing, replacing what was there. ``O_EXCL`` and
    ``O_NOFOLLOW``: a symlink raced into its place is never followed, the attempt is repeated."""
    for _ in range(_RETRIES):
        remove_at(dirfd, name)
        try:
            return os.open(
                name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dirfd
            )
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "something kept replacing the file being created", name)


def make_dir(dirfd: int, name: str, mode: int = 0o755) -> int:
    """Directory ``name`` (kept if it is one, else what is there is replaced), opened
    ``O_RDONLY`` without following a symlink, so its metadata can be set through the fd."""
    for _ in range(_RETRIES):
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, mode, dir_fd=dirfd)
        try:
            return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
        except OSError as exc:
            if exc.errno not in (errno.ENOTDIR, errno.ELOOP, errno.ENOENT):
                raise
            if exc.errno != errno.ENOENT:
                remove_at(dirfd, name)
    raise OSError(errno.EEXIST, "something kept replacing the directory being created", name)


def make_symlink(target: str, dirfd: int, name: str) -> None:
    """Symlink ``name`` -> ``target`` (replacing what was there); the target is only text."""
    for _ in range(_RETRIES):
        remove_at(dirfd, name)
        try:
            os.symlink(target, name, dir_fd=dirfd)
            return
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "something kept replacing the symlink being created", name)


def link_at(src_dirfd: int, src_name: str, dirfd: int, name: str) -> None:
    """Hard link ``name`` to ``src_name`` (both single names under resolved fds; a symlink
    there is linked itself, never followed)."""
    for _ in range(_RETRIES):
        remove_at(dirfd, name)
        try:
            os.link(src_name, name, src_dir_fd=src_dirfd, dst_dir_fd=dirfd, follow_symlinks=False)
            return
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "something kept replacing the link being created", name)


def make_node(dirfd: int, name: str, mode: int, device: int = 0, *, devices: bool) -> None:
    """A FIFO, or a character/block device node when ``devices`` allows it (replacing what was
    there)."""
    kind = stat.S_IFMT(mode)
    if kind in (stat.S_IFCHR, stat.S_IFBLK) and not devices:
        raise InvalidArgument(f"{name}: device nodes are not created here")
    if kind not in (stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK):
        raise InvalidArgument(f"{name}: mode {mode:o} is not a FIFO or device node")
    for _ in range(_RETRIES):
        remove_at(dirfd, name)
        try:
            os.mknod(name, mode, device, dir_fd=dirfd)
            return
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "something kept replacing the node being created", name)


def chown_at(dirfd: int, name: str, uid: int, gid: int) -> None:
    """``lchown`` of one name under a resolved fd (a symlink is changed itself)."""
    os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)


def set_mode(dirfd: int, name: str, mode: int) -> None:
    """``chmod`` of ``name`` without following it: through an ``O_PATH`` fd of the entry itself
    (symlinks have no mode of their own and are left alone)."""
    fd = openat2(dirfd, name, os.O_PATH | os.O_NOFOLLOW, 0, RESOLVE_BENEATH)
    try:
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            return
        # the magic link of our own pinned fd: the inode it names cannot be swapped
        os.chmod(f"/proc/self/fd/{fd}", mode)
    finally:
        os.close(fd)


def set_times_at(dirfd: int, name: str, ns: tuple[int, int]) -> None:
    """``utimensat(AT_SYMLINK_NOFOLLOW)`` of one name under a resolved fd."""
    os.utime(name, ns=ns, dir_fd=dirfd, follow_symlinks=False)

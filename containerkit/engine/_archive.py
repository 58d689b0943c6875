"""Copying files into and out of a container's root filesystem as tar streams (``docker cp``).

Every path is resolved inside the root by the kernel (:mod:`containerkit.linux.inroot`,
``openat2`` with ``RESOLVE_IN_ROOT``), and every entry is then created, read or changed through
fds, one name at a time and never following it. So a symlink the container made (or swaps in
while a copy runs) cannot lead to the host, and an archive's ``../``, absolute names, symlinks
and hard links stay inside the destination's root. Archives are read and written entry by entry
in chunks: memory stays bounded whatever the size. No tarfile extraction filter is used (they
do not exist before Python 3.11.4).
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import stat as stat_mod
import tarfile
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from containerkit.errors import ContainerkitError, InvalidArgument, NotFound, UnsafeArchive
from containerkit.linux import inroot
from containerkit.linux.inroot import Root

__all__ = ["TarStream", "extract", "extract_to_host", "get", "put", "stat", "tar_stream"]

CHUNK = 1 << 20
"""Bytes read or written at a time: the most an archive copy holds of a file's content."""

MAX_DEPTH = 512
"""Deepest directory nesting copied out (each level holds an fd while the walk is in it)."""

_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE

Source = bytes | IO[bytes] | str | os.PathLike[str]


def _absolute(path: str) -> str:
    if not path.startswith("/"):
        raise InvalidArgument(f"container path must be absolute, got {path!r}")
    return path


def _not_found(path: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container")


def _follows_last(path: str) -> bool:
    """docker resolves a final symlink only when the path ends in ``/`` or ``/.``."""
    return path.endswith("/") or path.endswith("/.")


def _open_entry(root: Root, path: str) -> int:
    """An ``O_PATH`` fd of ``path`` in the root (its final symlink kept, as docker does)."""
    try:
        return root.open_fd(path, os.O_PATH, follow=_follows_last(path))
    except (FileNotFoundError, NotADirectoryError):
        raise _not_found(path) from None
    except OSError as exc:
        raise InvalidArgument(f"{path}: {exc.strerror}") from None


def _base_name(path: str) -> str:
    return posixpath.basename(path.rstrip("/").removesuffix("/.").rstrip("/")) or "."


# -- stat -----------------------------------------------------------------------------------


def stat(root: Root, path: str) -> dict[str, Any]:
    """docker's ``X-Docker-Container-Path-Stat`` fields for ``path``, resolved in the root."""
    fd = _open_entry(root, _absolute(path))
    try:
        st = os.fstat(fd)
        link = os.readlink("", dir_fd=fd) if stat_mod.S_ISLNK(st.st_mode) else ""
    finally:
        os.close(fd)
    return {
        "name": _base_name(path) if path.rstrip("/") else "/",
        "size": st.st_size,
        "mode": st.st_mode,
        "mtime": st.st_mtime,
        "linkTarget": link,
    }


# -- reading: a tar stream of a path in the root ------------------------------------------


def _reopen(fd: int, flags: int) -> int:
    """Open the inode an ``O_PATH`` fd pins (through our own fd's magic link: nothing is walked)."""
    return os.open(f"/proc/self/fd/{fd}", flags | os.O_CLOEXEC)


def _info(name: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = stat_mod.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = int(st.st_mtime)
    return info


def _header(info: tarfile.TarInfo) -> bytes:
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _file_chunks(fd: int, size: int) -> Iterator[bytes]:
    """Exactly ``size`` bytes of the file and its padding (a file that shrank is padded with
    zeros, one that grew is cut: the header already said the size)."""
    content = _reopen(fd, os.O_RDONLY)
    try:
        left = size
        while left > 0:
            data = os.read(content, min(CHUNK, left))
            if not data:
                break
            left -= len(data)
            yield data
        while left > 0:
            pad = min(CHUNK, left)
            left -= pad
            yield bytes(pad)
    finally:
        os.close(content)
    if size % _BLOCK:
        yield bytes(_BLOCK - size % _BLOCK)


class _Walk:
    """Entries of a tree under an ``O_PATH`` fd, as tar bytes; children are opened one name at a
    time beneath their parent's fd without following symlinks."""

    def __init__(self) -> None:
        self.links: dict[tuple[int, int], str] = {}

    def entry(self, fd: int, name: str, depth: int) -> Iterator[bytes]:
        st = os.fstat(fd)
        info = _info(name, st)
        mode = st.st_mode
        if stat_mod.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.links:
                info.type, info.linkname = tarfile.LNKTYPE, self.links[key]
                yield _header(info)
                return
            if st.st_nlink > 1:
                self.links[key] = name
            info.size = st.st_size
            yield _header(info)
            yield from _file_chunks(fd, st.st_size)
        elif stat_mod.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
            yield _header(info)
            yield from self.children(fd, name, depth)
        elif stat_mod.S_ISLNK(mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink("", dir_fd=fd)
            yield _header(info)
        elif stat_mod.S_ISFIFO(mode) or stat_mod.S_ISCHR(mode) or stat_mod.S_ISBLK(mode):
            info.type = (
                tarfile.FIFOTYPE
                if stat_mod.S_ISFIFO(mode)
                else tarfile.CHRTYPE
                if stat_mod.S_ISCHR(mode)
                else tarfile.BLKTYPE
            )
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            yield _header(info)
        # sockets are skipped, as docker skips them

    def children(self, fd: int, name: str, depth: int) -> Iterator[bytes]:
        if depth >= MAX_DEPTH:
            raise InvalidArgument(f"{name}: directories nested deeper than {MAX_DEPTH} levels")
        listing = _reopen(fd, os.O_RDONLY | os.O_DIRECTORY)
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
                yield from self.entry(child_fd, f"{name}/{child}", depth + 1)
            finally:
                os.close(child_fd)


def _tar_chunks(fd: int, name: str) -> Iterator[bytes]:
    """A whole tar stream of the tree at ``fd`` named ``name``, ending with the end-of-archive
    blocks and padding to a full record as tarfile writes it."""
    total = 0
    for chunk in _Walk().entry(fd, name, 0):
        total += len(chunk)
        yield chunk
    end = 2 * _BLOCK
    total += end
    if total % _RECORD:
        end += _RECORD - total % _RECORD
    yield bytes(end)


class TarStream:
    """An iterator of tar chunks that owns what it reads from (fds, a mounted rootfs) until it
    is exhausted or closed; ``stat`` is the path's stat, taken from the same fd."""

    def __init__(self, chunks: Iterator[bytes], stat: dict[str, Any], cleanup: contextlib.ExitStack) -> None:
        self._chunks = chunks
        self.stat = stat
        self._cleanup = cleanup

    def __iter__(self) -> TarStream:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._chunks)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        self._cleanup.close()

    def __enter__(self) -> TarStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def read_all(self) -> bytes:
        with self:
            return b"".join(self)


def tar_stream(root: Root, path: str, cleanup: contextlib.ExitStack | None = None) -> TarStream:
    """A tar of ``path`` (named by its base name, like ``docker cp``), streamed from the root.
    ``cleanup`` (closed with the stream) holds what the root depends on."""
    stack = cleanup if cleanup is not None else contextlib.ExitStack()
    try:
        fd = _open_entry(root, _absolute(path))
        stack.callback(os.close, fd)
        st = os.fstat(fd)
        info = {
            "name": _base_name(path) if path.rstrip("/") else "/",
            "size": st.st_size,
            "mode": st.st_mode,
            "mtime": st.st_mtime,
            "linkTarget": os.readlink("", dir_fd=fd) if stat_mod.S_ISLNK(st.st_mode) else "",
        }
    except BaseException:
        stack.close()
        raise
    return TarStream(_tar_chunks(fd, _base_name(path)), info, stack)


def get(root: Root, path: str) -> bytes:
    """The whole tar of ``path`` in memory (for small paths; prefer :func:`tar_stream`)."""
    return tar_stream(root, path).read_all()


# -- writing: extracting a tar stream into the root ----------------------------------------


def _clean(name: str, what: str = "entry") -> str:
    """An archive name made relative to the destination, as docker's untar does: an absolute
    name starts at the destination, a relative one that climbs out of it is refused."""
    if name.startswith("/"):
        return posixpath.normpath(name).lstrip("/")
    rel = posixpath.normpath(name)
    if rel == ".." or rel.startswith("../"):
        raise UnsafeArchive(f"archive {what} {name!r} is outside of the destination")
    return "" if rel == "." else rel


def _check_symlink(rel: str, target: str) -> None:
    """docker refuses a symlink whose target, read relative to its own directory, leaves the
    destination (absolute targets are read from the destination)."""
    joined = posixpath.join(posixpath.dirname(rel), target.lstrip("/") if target.startswith("/") else target)
    _clean(joined, f"symlink {rel!r} ->")


class _Extractor:
    """Creates archive entries under ``dest`` in ``root``; ``owner`` replaces every entry's
    uid/gid (docker's ``copyUIDGID``), else the archive's are kept (as root)."""

    def __init__(
        self,
        root: Root,
        dest: str,
        *,
        devices: bool,
        owner: tuple[int, int] | None,
        no_overwrite_dir_non_dir: bool,
    ) -> None:
        self.root = root
        self.dest = dest
        self.devices = devices
        self.owner = owner
        self.no_overwrite = no_overwrite_dir_non_dir
        self.dir_times: list[tuple[str, tuple[int, int]]] = []
        self.chown_allowed = os.geteuid() == 0
        self.rebase: tuple[str, str] | None = None

    def _rebased(self, rel: str) -> str:
        """docker's ``RebaseNames``: the archive's top entry ``old`` lands as ``new``."""
        if self.rebase is None:
            return rel
        old, new = self.rebase
        if rel == old:
            return new
        if rel.startswith(old + "/"):
            return new + rel[len(old) :]
        return rel

    def _parent(self, rel: str) -> tuple[int, str]:
        parent, name = posixpath.split(rel)
        path = posixpath.join(self.dest, parent) if parent else self.dest
        try:
            return self.root.make_dirs(path), name
        except (NotADirectoryError, FileExistsError):
            raise InvalidArgument(f"{rel}: a parent in the destination is not a directory") from None

    def _check_overwrite(self, dirfd: int, name: str, info: tarfile.TarInfo) -> None:
        if not self.no_overwrite:
            return
        try:
            existing = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat_mod.S_ISDIR(existing.st_mode) != info.isdir():
            what = "directory" if info.isdir() else "non-directory"
            raise InvalidArgument(
                f"cannot overwrite {'non-' if info.isdir() else ''}directory {name!r} with {what}"
            )

    def _ids(self, info: tarfile.TarInfo) -> tuple[int, int]:
        return self.owner if self.owner is not None else (info.uid, info.gid)

    def _chown(self, apply: Any, *args: Any) -> None:
        try:
            apply(*args)
        except PermissionError:
            if self.chown_allowed:
                raise

    def add(self, info: tarfile.TarInfo, content: IO[bytes] | None) -> None:
        rel = self._rebased(_clean(info.name))
        if not rel:
            return  # the destination itself ("." entries): it exists and is kept
        dirfd, name = self._parent(rel)
        try:
            self._check_overwrite(dirfd, name, info)
            self._create(dirfd, name, rel, info, content)
        finally:
            os.close(dirfd)

    def _create(
        self, dirfd: int, name: str, rel: str, info: tarfile.TarInfo, content: IO[bytes] | None
    ) -> None:
        uid, gid = self._ids(info)
        ns = (int(info.mtime * 1e9), int(info.mtime * 1e9))
        mode = info.mode & 0o7777
        if info.isreg():
            fd = inroot.create_file(dirfd, name)
            try:
                left = info.size
                while left > 0 and content is not None:
                    data = content.read(min(CHUNK, left))
                    if not data:
                        raise InvalidArgument(f"{info.name}: the archive ends inside this file")
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    left -= len(data)
                self._chown(os.fchown, fd, uid, gid)
                os.fchmod(fd, mode)
                os.utime(fd, ns=ns)
            finally:
                os.close(fd)
        elif info.isdir():
            fd = inroot.make_dir(dirfd, name, 0o700)
            try:
                self._chown(os.fchown, fd, uid, gid)
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
            self.dir_times.append((rel, ns))
        elif info.issym():
            _check_symlink(rel, info.linkname)
            inroot.make_symlink(info.linkname, dirfd, name)
            self._chown(inroot.chown_at, dirfd, name, uid, gid)
            inroot.set_times_at(dirfd, name, ns)
        elif info.islnk():
            self._link(dirfd, name, info)
        elif info.isfifo() or info.ischr() or info.isblk():
            kind = (
                stat_mod.S_IFIFO if info.isfifo() else stat_mod.S_IFCHR if info.ischr() else stat_mod.S_IFBLK
            )
            if kind != stat_mod.S_IFIFO and not self.devices:
                raise UnsafeArchive(f"{info.name}: device nodes are not extracted here")
            inroot.make_node(
                dirfd, name, kind | 0o600, os.makedev(info.devmajor, info.devminor), devices=True
            )
            self._chown(inroot.chown_at, dirfd, name, uid, gid)
            inroot.set_mode(dirfd, name, mode)
            inroot.set_times_at(dirfd, name, ns)
        # other types (sockets, GNU volume labels) carry nothing to create

    def _link(self, dirfd: int, name: str, info: tarfile.TarInfo) -> None:
        target = self._rebased(_clean(info.linkname, f"hard link {info.name!r} ->"))
        if not target:
            raise UnsafeArchive(f"{info.name}: a hard link to the destination directory itself")
        parent, target_name = posixpath.split(target)
        try:
            target_dir = self.root.open_dir(posixpath.join(self.dest, parent))
        except (FileNotFoundError, NotADirectoryError):
            raise UnsafeArchive(
                f"{info.name}: hard link target {info.linkname!r} is not in the destination"
            ) from None
        try:
            inroot.link_at(target_dir, target_name, dirfd, name)
        except FileNotFoundError:
            raise UnsafeArchive(
                f"{info.name}: hard link target {info.linkname!r} is not in the destination"
            ) from None
        finally:
            os.close(target_dir)

    def finish(self) -> None:
        """Directory mtimes last (creating their entries changed them), deepest first."""
        for rel, ns in reversed(self.dir_times):
            with contextlib.suppress(OSError, ContainerkitError):
                parent, name = self.root.parent(posixpath.join(self.dest, rel))
                try:
                    inroot.set_times_at(parent, name, ns)
                finally:
                    os.close(parent)


def _open_tar(data: bytes | IO[bytes]) -> tarfile.TarFile:
    fileobj = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        return tarfile.open(fileobj=fileobj, mode="r|*")
    except tarfile.TarError as exc:
        raise InvalidArgument(f"not a valid tar archive: {exc}") from None


def extract(
    root: Root,
    dest: str,
    data: bytes | IO[bytes],
    *,
    devices: bool = True,
    owner: tuple[int, int] | None = None,
    no_overwrite_dir_non_dir: bool = False,
    rebase: tuple[str, str] | None = None,
) -> None:
    """Extract a tar stream (plain or compressed) into directory ``dest`` of the root, entry by
    entry. ``devices=False`` refuses device nodes (a host directory: they would be a way out);
    ``rebase`` = (old, new) renames the top entry ``old`` (and what is under it) to ``new``."""
    try:
        dest_fd = root.open_dir(dest)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"Could not find the file {dest} in container (no such directory)") from None
    os.close(dest_fd)
    extractor = _Extractor(
        root, dest, devices=devices, owner=owner, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir
    )
    extractor.rebase = rebase
    with _open_tar(data) as tar:
        try:
            for info in tar:
                content = tar.extractfile(info) if info.isreg() else None
                try:
                    extractor.add(info, content)
                except OSError as exc:
                    raise InvalidArgument(
                        f"extracting {info.name!r} into {dest}: {exc.strerror or exc}"
                    ) from None
                tar.members.clear()  # type: ignore[attr-defined]  # a stream needs no index: memory stays flat
        except tarfile.TarError as exc:
            raise InvalidArgument(f"not a valid tar archive for {dest}: {exc}") from None
        finally:
            extractor.finish()


def put(
    root: Root,
    path: str,
    data: Source,
    *,
    owner: tuple[int, int] | None = None,
    no_overwrite_dir_non_dir: bool = False,
) -> None:
    """Extract a tar (bytes or a binary file object) into directory ``path``, or copy a host
    path to ``path`` (into it when it is a directory, else as it), all resolved in the root."""
    path = _absolute(path)
    if isinstance(data, bytes) or hasattr(data, "read"):
        extract(root, path, data, owner=owner, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir)  # type: ignore[arg-type]
        return
    source = Path(os.fspath(data))
    if not source.exists() and not source.is_symlink():
        raise NotFound(f"no such host path: {source}")
    try:
        is_dir = stat_mod.S_ISDIR(root.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        is_dir = False
    if is_dir:
        dest, name = path, source.name
    else:
        dest, name = posixpath.split(posixpath.normpath(path))
        try:
            os.close(root.make_dirs(dest))  # a missing parent is made, as before start
        except (NotADirectoryError, FileExistsError):
            raise InvalidArgument(f"{dest}: not a directory in the container") from None
    with Root.open(source.parent) as host:
        chunks = _renamed(host, source.name, name)
        try:
            reader = io.BufferedReader(_ChunkReader(chunks), CHUNK)
            extract(root, dest, reader, owner=owner, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir)
        finally:
            chunks.close()


def _renamed(host: Root, source_name: str, name: str) -> Generator[bytes, None, None]:
    """The tar of host entry ``source_name`` with its top entry named ``name``."""
    fd = host.open_fd("/" + source_name, os.O_PATH, follow=False)
    try:
        yield from _tar_chunks(fd, name)
    finally:
        os.close(fd)


class _ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks (a tar being written, read as it goes)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def extract_to_host(chunks: Iterable[bytes], top: str, dest: Path, *, owner: tuple[int, int] | None) -> None:
    """``docker cp CONTAINER:PATH DEST`` on the host side: the tar (top entry ``top``) lands in
    ``dest`` when it is a directory, else as ``dest`` (its parent must exist). The archive comes
    from a container and is not trusted: it is extracted with ``dest``'s directory as the root
    (nothing resolves above it), and device nodes are refused."""
    if dest.is_dir():  # the user's own path: a symlink to a directory is followed
        directory, rebase = dest, None
    else:
        directory = dest.parent
        if not directory.is_dir():
            raise NotFound(f"destination directory {directory} does not exist")
        rebase = (top, dest.name) if top != dest.name else None
    reader = io.BufferedReader(_ChunkReader(iter(chunks)), CHUNK)
    with Root.open(directory) as root:
        extract(root, "/", reader, devices=False, owner=owner, rebase=rebase)

"""Unpack one OCI layer (tar, tar+gzip, tar+zstd) into a directory, safely and in one pass.

Layers are untrusted input (DESIGN.md decision 5). The rules, and why:

* **Nothing is written outside ``dest``.** Every entry's parent directory is reached from an fd of
  ``dest`` one component at a time with ``O_NOFOLLOW``, so no symlink is ever followed while
  extracting, whether the archive made it earlier or not. Entries are then created relative to
  that parent fd (``openat``/``mkdirat``/``symlinkat``/``linkat``/``mknodat``), never by path.
* **Names:** a leading ``/`` is stripped (as docker does: ``/etc/x`` means ``<dest>/etc/x``); any
  ``..`` component is refused, as is a parent that is a symlink or not a directory.
* **Hardlinks** must name an existing non-directory inside the layer reached without symlinks; a
  hardlink to a symlink is refused when that symlink is absolute or climbs out of the root.
* **Symlinks** are data: they may point anywhere and are never followed here. Whoever reads the
  tree later (``containerkit.linux.mounts.secure_join``) resolves them inside the rootfs.
* **Device nodes and fifos are created** (we run as root). A container only reaches them
  through its own ``/dev`` policy and the device cgroup; the runtime mounts rootfs ``nodev``
  where it wants them inert.
* ``max_bytes`` caps the *uncompressed* size (a gzip bomb stops there with
  :class:`~containerkit.errors.UnsafeArchive`); a stream that ends early is an
  :class:`~containerkit.errors.IntegrityError` ("truncated layer").
* ``xattrs`` come from PAX ``SCHILY.xattr.*`` records; ``trusted.overlay.*`` ones are dropped, as
  only the unpacker may mark whiteouts and opaque directories.

Whiteouts (image-spec ``layer.md``): with ``whiteouts="overlay"`` (the default, for a layer
unpacked into its own empty directory and used as an overlayfs lower dir) ``.wh.name`` becomes a
0/0 character device ``name`` and ``.wh..wh..opq`` sets ``trusted.overlay.opaque=y`` on its
directory, as containerd's ``OverlayConvertWhiteout`` does. With ``whiteouts="apply"`` (unpacking
on top of the layers below, for the copying snapshotter) the named lower path is removed and an
opaque directory is emptied of lower content; what this same layer created is kept, as the spec
says. In "apply" mode a lower symlink or file where this layer needs a directory is replaced by
a directory, which is what overlayfs shows for the same stack.

**On failure ``dest`` holds a partial tree.** Callers unpack into a fresh temp directory and
rename it into place only on success (``storage.apply.apply_layer`` does); an ``expected_diff_id``
mismatch is only known after the last byte, so it is reported the same way.

Speed: the stream is decompressed and hashed on a helper thread (ISA-L, zstd and sha256 release
the GIL) while this thread does the syscalls; file data is written from 1 MiB buffers; there is
no per-file fsync (the caller syncs the filesystem once); parent directory fds are cached.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import hashlib
import os
import re
import resource
import shutil
import stat
import tarfile
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import IO, BinaryIO, Literal, TypeVar, cast

import zstandard

from containerkit._log import get_logger
from containerkit.errors import ContainerkitError, IntegrityError, InvalidArgument, Unavailable, UnsafeArchive
from containerkit.images._ahead import made_ahead
from containerkit.images.unpacked import DEFAULT_MAX_BYTES, UnpackResult
from containerkit.linux.inroot import RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, openat2

__all__ = ["DEFAULT_MAX_BYTES", "UnpackResult", "unpack_layer"]

log = get_logger(__name__)

_CHUNK = 1 << 20
_PREFETCH_DEPTH = 8
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_OTHER_MAGIC = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}
_OPAQUE = ".wh..wh..opq"
_WH = ".wh."
_XATTR_PREFIX = "SCHILY.xattr."
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
"""One ``openat2`` reaches a directory as the step-by-step ``O_NOFOLLOW`` walk would: never
through a symlink, never above the root; anything else (missing, a symlink, not a directory)
falls back to that walk, which makes, replaces or refuses and says why."""
_FALLBACK_ERRNOS = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EXDEV)

_T = TypeVar("_T")
# tarfile's header errors say why a stream stopped; typeshed does not list them
_EOF_HEADER: type[Exception] = tarfile.EOFHeaderError  # type: ignore[attr-defined]
_INVALID_HEADER: type[Exception] = tarfile.InvalidHeaderError  # type: ignore[attr-defined]


# --- the byte stream: decompress, count, hash --------------------------------------------------


class _Meter:
    """Hashes and counts the uncompressed stream and enforces the size cap as bytes appear."""

    def __init__(self, max_bytes: int | None) -> None:
        self.sha = hashlib.sha256()
        self.size = 0
        self.max_bytes = max_bytes

    def measure(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.size += len(chunk)
            if self.max_bytes is not None and self.size > self.max_bytes:
                raise UnsafeArchive(
                    f"layer is larger than the limit of {self.max_bytes} uncompressed bytes (max_bytes)"
                )
            self.sha.update(chunk)
            yield chunk


def _raw_chunks(raw: BinaryIO, head: bytes) -> Iterator[bytes]:
    if head:
        yield head
    while chunk := raw.read(_CHUNK):
        yield chunk


def _gunzip(raw: Iterator[bytes]) -> Iterator[bytes]:
    """Concatenated gzip members, output bounded to 1 MiB per step (a bomb never fills memory)."""
    from containerkit.images.deflate import GzipError, gunzip_object  # ISA-L: only where layers are read

    d = gunzip_object()
    try:
        for data in raw:
            while data:
                if d.eof:
                    if not data.strip(b"\0"):
                        break  # zero padding after the last member
                    d = gunzip_object()
                out = d.decompress(data, _CHUNK)
                if out:
                    yield out
                data = d.unused_data if d.eof else d.unconsumed_tail
        while not d.eof and (out := d.decompress(b"", _CHUNK)):
            yield out
    except GzipError as err:
        raise IntegrityError(f"corrupt gzip stream in layer: {err}") from None
    if not d.eof:
        raise IntegrityError("truncated layer: the gzip stream ends before its end marker")


class _Prefixed:
    """A reader that gives back bytes already read (for sniffing) before the rest of ``raw``."""

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        self._head, self._raw = head, raw

    def read(self, size: int = -1) -> bytes:
        if self._head:
            out = self._head if size < 0 else self._head[:size]
            self._head = self._head[len(out) :]
            return out
        return self._raw.read(size)


def _unzstd(raw: BinaryIO, head: bytes) -> Iterator[bytes]:
    # A zstd stream cut short yields no partial block; the tar level then misses its end marker.
    reader = zstandard.ZstdDecompressor().stream_reader(
        cast(IO[bytes], _Prefixed(head, raw)), read_size=_CHUNK, read_across_frames=True, closefd=False
    )
    try:
        while chunk := reader.read(_CHUNK):
            yield chunk
    except zstandard.ZstdError as err:
        raise IntegrityError(f"corrupt zstd stream in layer: {err}") from None


def _decompress(raw: BinaryIO) -> Iterator[bytes]:
    head = raw.read(_CHUNK)
    if head.startswith(_GZIP_MAGIC):
        return _gunzip(_raw_chunks(raw, head))
    if head.startswith(_ZSTD_MAGIC):
        return _unzstd(raw, head)
    for magic, name in _OTHER_MAGIC.items():
        if head.startswith(magic):
            raise InvalidArgument(f"layer is {name}-compressed; OCI layers are tar, tar+gzip or tar+zstd")
    return _raw_chunks(raw, head)


def _prefetch(chunks: Iterator[bytes]) -> Generator[bytes, None, None]:
    """Run ``chunks`` (decompression and hashing) on a helper thread, a few chunks ahead."""

    def produce(put: Callable[[bytes], bool]) -> None:
        for chunk in chunks:
            if not put(chunk):
                return

    return made_ahead(produce, depth=_PREFETCH_DEPTH, name="layer-decompress")


class _Stream:
    """A forward-only file object over the chunks, enough for :class:`tarfile.TarFile` in "r" mode.

    Seeking backwards is impossible, which also proves the archive is read exactly once.
    """

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""
        self._pos = 0
        self._base = 0

    def _fill(self) -> bool:
        chunk = next(self._chunks, None)
        if chunk is None:
            return False
        self._base += len(self._buf)
        self._buf, self._pos = chunk, 0
        return True

    def tell(self) -> int:
        return self._base + self._pos

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = 1 << 62
        buf, pos = self._buf, self._pos
        if len(buf) - pos >= size:
            self._pos = pos + size
            return buf[pos : pos + size]
        parts = [buf[pos:]]
        need = size - len(parts[0])
        self._pos = len(buf)
        while need > 0 and self._fill():
            take = min(need, len(self._buf))
            parts.append(self._buf[:take])
            self._pos, need = take, need - take
        return b"".join(parts)

    def skip(self, count: int) -> int:
        done = 0
        while done < count:
            avail = len(self._buf) - self._pos
            if avail == 0 and not self._fill():
                break
            take = min(count - done, len(self._buf) - self._pos)
            self._pos += take
            done += take
        return done

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        target = offset if whence == os.SEEK_SET else self.tell() + offset
        if whence not in (os.SEEK_SET, os.SEEK_CUR) or target < self.tell():
            raise OSError(errno.ESPIPE, "a layer stream only seeks forward")
        self.skip(target - self.tell())
        return self.tell()

    def copy_to(self, fd: int, count: int) -> int:
        """Write the next ``count`` bytes to ``fd`` straight from the chunk buffers."""
        done = 0
        while done < count:
            avail = len(self._buf) - self._pos
            if avail == 0:
                if not self._fill():
                    break
                continue
            take = min(count - done, avail)
            view = memoryview(self._buf)[self._pos : self._pos + take]
            while view:
                view = view[os.write(fd, view) :]
            self._pos += take
            done += take
        return done

    def drain(self) -> None:
        while self._fill():
            pass


class _LayerTar(tarfile.TarFile):
    """Remembers why iteration stopped: tarfile treats a cut-off stream like a clean end."""

    stop_reason: Exception | None = None
    members: list[tarfile.TarInfo]  # set by TarFile.__init__; cleared as we go to keep memory flat


class _TarInfo(tarfile.TarInfo):
    @classmethod
    def fromtarfile(cls, tarfile: tarfile.TarFile) -> _TarInfo:
        try:
            return super().fromtarfile(tarfile)
        except Exception as err:
            if isinstance(tarfile, _LayerTar):
                tarfile.stop_reason = err
            raise


# --- paths -----------------------------------------------------------------------------------


def _clean(name: str, entry: str) -> str:
    """``name`` relative to the layer root ("" is the root), refusing ``..`` anywhere."""
    parts = []
    for part in name.split("/"):
        if part == "..":
            raise UnsafeArchive(f"layer entry {entry!r}: '..' in path {name!r} is not allowed")
        if part and part != ".":
            parts.append(part)
    return "/".join(parts)


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def _climbs_out(dir_rel: str, target: str) -> bool:
    """Whether a symlink in ``dir_rel`` with text ``target`` leaves the root when read lexically."""
    if target.startswith("/"):
        return True
    depth = len(dir_rel.split("/")) if dir_rel else 0
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part and part != ".":
            depth += 1
    return False


def _fd_cache_size() -> int:
    """Directory fds one unpack keeps open: enough for a layer that writes into a thousand or so
    directories in turn (each entry would otherwise reopen its parent), within an eighth of the
    process's fd limit, since several layers unpack at once beside the rest of the process."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(32, min(4096, soft // 8))


def _ns(value: float) -> int:
    return round(value * 1_000_000_000) if isinstance(value, float) else int(value) * 1_000_000_000


# --- extraction ------------------------------------------------------------------------------


class _Extractor:
    """Creates entries under ``root_fd``; holds the parent-fd cache and what this layer made."""

    def __init__(self, root_fd: int, stream: _Stream, whiteouts: Literal["overlay", "apply"]) -> None:
        self.root = root_fd
        self.stream = stream
        self.apply = whiteouts == "apply"
        self.fds: collections.OrderedDict[str, int] = collections.OrderedDict()
        self.fd_cache = _fd_cache_size()
        self.use_openat2 = True
        self.owner = (os.geteuid(), os.getegid())
        """Who owns what we create (but where a setgid directory gives its group)."""
        self.created: set[str] = set()
        self.dir_times: dict[str, tuple[int, int]] = {}
        self.whiteouts: list[str] = []
        self.opaque: list[str] = []

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()

    # directories

    def dirfd(self, rel: str, entry: str) -> int:
        """An fd of directory ``rel``, made if missing, reached without following any symlink."""
        if not rel:
            return self.root
        fd = self.fds.get(rel)
        if fd is None:
            fd = self._find(rel)
            if fd is None:
                parent, _, name = rel.rpartition("/")
                fd = self._open_dir(self.dirfd(parent, entry), name, rel, entry)
            self._cache(rel, fd)
        else:
            self.fds.move_to_end(rel)
        if self.apply:
            self._mark(rel)
        return fd

    def _cache(self, rel: str, fd: int) -> None:
        self.fds[rel] = fd
        if len(self.fds) > self.fd_cache:
            os.close(self.fds.popitem(last=False)[1])

    def _mark(self, rel: str) -> None:
        """Record ``rel`` and its ancestors as this layer's (it wrote beneath them)."""
        while rel and rel not in self.created:
            self.created.add(rel)
            rel = rel.rpartition("/")[0]

    def _find(self, rel: str) -> int | None:
        """A new fd of existing directory ``rel`` in one ``openat2``, or None where the walk
        must decide (missing, a symlink or a non-directory on the way, or no ``openat2``)."""
        if not self.use_openat2:
            return None
        try:
            return openat2(self.root, rel, _DIR_FLAGS, 0, _RESOLVE)
        except Unavailable:
            self.use_openat2 = False
            return None
        except OSError as err:
            if err.errno in _FALLBACK_ERRNOS:
                return None
            raise

    def _open_dir(self, pfd: int, name: str, rel: str, entry: str) -> int:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=pfd)
        except FileNotFoundError:
            os.mkdir(name, 0o755, dir_fd=pfd)
        except OSError as err:
            if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            if not (self.apply and rel not in self.created):
                kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
                raise UnsafeArchive(
                    f"layer entry {entry!r}: parent {rel!r} is {kind}; refusing to write through it"
                ) from None
            # lower content in "apply" mode: this layer's directory hides it, as in overlayfs
            os.unlink(name, dir_fd=pfd)
            os.mkdir(name, 0o755, dir_fd=pfd)
        return os.open(name, _DIR_FLAGS, dir_fd=pfd)

    def lookup(self, rel: str) -> int:
        """A new fd of existing directory ``rel`` (no creating, no caching, no symlinks)."""
        cached = self.fds.get(rel) if rel else self.root
        if cached is not None:
            return os.dup(cached)
        found = self._find(rel)
        if found is not None:
            return found
        fd = os.dup(self.root)  # the walk names the error: missing, a symlink, not a directory
        for name in rel.split("/") if rel else ():
            try:
                nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
            finally:
                os.close(fd)
            fd = nxt
        return fd

    def forget(self, rel: str) -> None:
        """Drop cached fds and pending mtimes of ``rel`` and below (it was removed or replaced)."""
        prefix = rel + "/"
        for key in [k for k in self.fds if k == rel or k.startswith(prefix)]:
            os.close(self.fds.pop(key))
        for key in [k for k in self.dir_times if k == rel or k.startswith(prefix)]:
            del self.dir_times[key]

    def remove(self, pfd: int, name: str, rel: str) -> None:
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            self.forget(rel)
            shutil.rmtree(name, dir_fd=pfd)
        else:
            os.unlink(name, dir_fd=pfd)

    def replacing(self, pfd: int, name: str, rel: str, create: Callable[[], _T]) -> _T:
        """Run ``create``; if something is in the way, remove it first (later entries win)."""
        try:
            return create()
        except FileExistsError:
            self.remove(pfd, name, rel)
            return create()

    # entries

    def extract(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        entry = m.name
        rel = _clean(entry, entry)
        parent, _, base = rel.rpartition("/")
        if base.startswith(_WH):
            self._whiteout(m, parent, base)
            return
        if not rel:
            if not m.isdir():
                raise UnsafeArchive(f"layer entry {entry!r}: only a directory may stand for the layer root")
            self._meta_fd(self.root, m)
            self.dir_times[""] = self._times(m)
            return
        pfd = self.dirfd(parent, entry)
        if m.isdir():
            self._dir(m, pfd, base, rel)
        elif m.isreg():
            self._file(tar, m, pfd, base, rel)
        elif m.issym():
            self.replacing(pfd, base, rel, lambda: os.symlink(m.linkname, base, dir_fd=pfd))
            if (m.uid, m.gid) != self.owner or self._setgid(pfd):
                os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
            self._xattrs(f"/proc/self/fd/{pfd}/{base}", m)
            os.utime(base, ns=self._times(m), dir_fd=pfd, follow_symlinks=False)
        elif m.islnk():
            self._hardlink(m, parent, base, rel)
        elif m.ischr() or m.isblk() or m.isfifo():
            self._node(m, pfd, base, rel)
        else:
            log.warning("layer entry %r: skipping unsupported tar type %r", entry, m.type)
            return
        if self.apply:
            self._mark(rel)

    def _setgid(self, dfd: int) -> bool:
        """Whether new entries in ``dfd`` take its group rather than ours (a setgid directory)."""
        return bool(os.fstat(dfd).st_mode & stat.S_ISGID)

    def _times(self, m: tarfile.TarInfo) -> tuple[int, int]:
        mtime = _ns(m.mtime)
        atime = m.pax_headers.get("atime")
        return (_ns(float(atime)) if atime else mtime, mtime)

    def _meta_fd(self, fd: int, m: tarfile.TarInfo) -> None:
        """Owner, mode and xattrs, each written only where it differs: on a journalling
        filesystem every metadata write costs far more than the ``fstat`` that spares it."""
        st = os.fstat(fd)
        mode = m.mode & 0o7777
        if st.st_uid != m.uid or st.st_gid != m.gid:
            # chown first: it clears setuid bits and file capabilities, which come after
            os.fchown(fd, m.uid, m.gid)
            os.fchmod(fd, mode)
        elif stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
        self._xattrs(fd, m)

    def _xattrs(self, target: int | str, m: tarfile.TarInfo) -> None:
        if not m.pax_headers:
            return
        for key, value in m.pax_headers.items():
            if not key.startswith(_XATTR_PREFIX):
                continue
            name = key[len(_XATTR_PREFIX) :]
            if name.startswith("trusted.overlay."):
                log.warning("layer entry %r: dropping xattr %s", m.name, name)
                continue
            try:
                os.setxattr(
                    target,
                    name,
                    value.encode("utf-8", "surrogateescape"),
                    follow_symlinks=isinstance(target, int),  # an fd: nothing to follow
                )
            except OSError as err:
                if err.errno not in (errno.ENOTSUP, errno.EPERM, errno.EINVAL):
                    raise
                log.warning("layer entry %r: cannot set xattr %s: %s", m.name, name, err.strerror)

    def _dir(self, m: tarfile.TarInfo, pfd: int, base: str, rel: str) -> None:
        mode = m.mode & 0o777
        try:
            os.mkdir(base, mode, dir_fd=pfd)
        except FileExistsError:
            if not stat.S_ISDIR(os.stat(base, dir_fd=pfd, follow_symlinks=False).st_mode):
                self.remove(pfd, base, rel)
                os.mkdir(base, mode, dir_fd=pfd)
        else:
            if rel not in self.fds:  # just made here: open it by name, no walk
                self._cache(rel, os.open(base, _DIR_FLAGS, dir_fd=pfd))
        fd = self.dirfd(rel, m.name)
        self._meta_fd(fd, m)
        self.dir_times[rel] = self._times(m)

    def _file(self, tar: tarfile.TarFile, m: tarfile.TarInfo, pfd: int, base: str, rel: str) -> None:
        # made with its permission bits (special bits come after the owner, in _meta_fd)
        mode = m.mode & 0o777
        fd = self.replacing(pfd, base, rel, lambda: os.open(base, _FILE_FLAGS, mode, dir_fd=pfd))
        try:
            if m.sparse is not None:
                src = tar.extractfile(m)  # GNU sparse: tarfile knows the map, holes read as zeros
                assert src is not None
                with src:
                    while data := src.read(_CHUNK):
                        view = memoryview(data)
                        while view:
                            view = view[os.write(fd, view) :]
            else:
                self.stream.seek(m.offset_data)
                if self.stream.copy_to(fd, m.size) != m.size:
                    raise IntegrityError(f"truncated layer: entry {m.name!r} ends early")
            self._meta_fd(fd, m)
            os.utime(fd, ns=self._times(m))
        finally:
            os.close(fd)

    def _hardlink(self, m: tarfile.TarInfo, parent: str, base: str, rel: str) -> None:
        entry = m.name
        target = _clean(m.linkname, entry)
        if not target:
            raise UnsafeArchive(f"layer entry {entry!r}: hardlink to the layer root")
        tparent, _, tname = target.rpartition("/")
        try:
            tfd = self.lookup(tparent)
        except FileNotFoundError:
            raise InvalidArgument(
                f"layer entry {entry!r}: hardlink target {m.linkname!r} is not in the layer"
            ) from None
        except OSError as err:
            if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            raise UnsafeArchive(
                f"layer entry {entry!r}: hardlink target {m.linkname!r} goes through a symlink"
            ) from None
        try:
            try:
                st = os.stat(tname, dir_fd=tfd, follow_symlinks=False)
            except FileNotFoundError:
                raise InvalidArgument(
                    f"layer entry {entry!r}: hardlink target {m.linkname!r} is not in the layer"
                ) from None
            if stat.S_ISDIR(st.st_mode):
                raise UnsafeArchive(f"layer entry {entry!r}: hardlink to directory {m.linkname!r}")
            if stat.S_ISLNK(st.st_mode) and _climbs_out(tparent, os.readlink(tname, dir_fd=tfd)):
                raise UnsafeArchive(
                    f"layer entry {entry!r}: hardlink to symlink {m.linkname!r}, which points out of the root"
                )
            if target == rel:
                return
            pfd = self.dirfd(parent, entry)
            self.replacing(
                pfd,
                base,
                rel,
                lambda: os.link(tname, base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False),
            )
        finally:
            os.close(tfd)

    def _node(self, m: tarfile.TarInfo, pfd: int, base: str, rel: str) -> None:
        if m.isfifo():
            kind, dev = stat.S_IFIFO, 0
        else:
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            dev = os.makedev(m.devmajor, m.devminor)
        self.replacing(pfd, base, rel, lambda: os.mknod(base, kind | 0o600, dev, dir_fd=pfd))
        os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        os.chmod(base, m.mode & 0o7777, dir_fd=pfd)  # no lchmod on Linux; the node was just made
        self._xattrs(f"/proc/self/fd/{pfd}/{base}", m)
        os.utime(base, ns=self._times(m), dir_fd=pfd, follow_symlinks=False)

    def _whiteout(self, m: tarfile.TarInfo, parent: str, base: str) -> None:
        pfd = self.dirfd(parent, m.name)
        if base == _OPAQUE:
            self.opaque.append(parent)
            if self.apply:
                self._hide_lower(pfd, parent)
            else:
                os.setxattr(pfd, "trusted.overlay.opaque", b"y")
            return
        if base.startswith(_WH + _WH):
            return  # aufs bookkeeping (.wh..wh.plnk and friends): nothing to apply
        name = base[len(_WH) :]
        if name in ("", ".", ".."):
            raise UnsafeArchive(f"layer entry {m.name!r}: invalid whiteout")
        rel = _join(parent, name)
        self.whiteouts.append(rel)
        if self.apply:
            if rel not in self.created:  # a whiteout never hides its own layer's files
                self.remove(pfd, name, rel)
            return
        try:
            os.mknod(name, stat.S_IFCHR, 0, dir_fd=pfd)
        except FileExistsError:
            return
        os.chown(name, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)

    def _hide_lower(self, dfd: int, rel: str) -> None:
        """Remove what lower layers put under ``rel``; keep (and descend into) this layer's own."""
        for name in os.listdir(dfd):
            child = _join(rel, name)
            if child not in self.created:
                self.remove(dfd, name, child)
            elif stat.S_ISDIR(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode):
                self._hide_lower(self.dirfd(child, child), child)

    def finish(self) -> None:
        """Set directory times last: creating their entries changed them."""
        for rel, times in self.dir_times.items():
            if not rel:
                os.utime(self.root, ns=times)
                continue
            try:
                fd = self.lookup(rel)
            except OSError:
                continue
            try:
                os.utime(fd, ns=times)
            finally:
                os.close(fd)


def _next(tar: _LayerTar) -> tarfile.TarInfo | None:
    try:
        return tar.next()
    except tarfile.ReadError as err:
        raise IntegrityError(f"truncated or corrupt layer: {err}") from None


def _check_end(tar: _LayerTar, stream: _Stream) -> None:
    reason = tar.stop_reason
    if isinstance(reason, _EOF_HEADER):
        return
    if isinstance(reason, _INVALID_HEADER):
        raise IntegrityError(f"corrupt layer: invalid tar header at offset {tar.offset}")
    raise IntegrityError(
        f"truncated layer: the tar stream ends at byte {stream.tell()} without an end marker"
    )


def unpack_layer(
    source: BinaryIO | Path,
    dest: Path,
    *,
    whiteouts: Literal["overlay", "apply"] = "overlay",
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    expected_diff_id: str | None = None,
) -> UnpackResult:
    """Extract the layer ``source`` (a path or a binary stream) into the existing directory ``dest``.

    Compression is detected from the first bytes. The diff_id is the sha256 of the uncompressed
    tar stream, computed while extracting. See the module docstring for the safety rules and
    for why ``dest`` must be a fresh temp directory when the result may be rejected.
    """
    if whiteouts not in ("overlay", "apply"):
        raise InvalidArgument(f"whiteouts must be 'overlay' or 'apply', got {whiteouts!r}")
    if expected_diff_id is not None and not _DIGEST_RE.match(expected_diff_id):
        raise InvalidArgument(f"expected_diff_id must look like sha256:<64 hex>, got {expected_diff_id!r}")
    if max_bytes is not None and max_bytes <= 0:
        raise InvalidArgument(f"max_bytes must be positive, got {max_bytes}")
    meter = _Meter(max_bytes)
    with contextlib.ExitStack() as stack:
        raw: BinaryIO = stack.enter_context(open(source, "rb")) if isinstance(source, Path) else source
        chunks = _prefetch(meter.measure(_decompress(raw)))
        stack.callback(chunks.close)
        stream = _Stream(chunks)
        root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        stack.callback(os.close, root_fd)
        ex = _Extractor(root_fd, stream, whiteouts)
        stack.callback(ex.close)
        try:
            tar = _LayerTar(fileobj=cast(IO[bytes], stream), mode="r", tarinfo=_TarInfo, errorlevel=2)
        except tarfile.ReadError as err:
            raise InvalidArgument(f"layer is not a tar archive: {err}") from None
        while (member := _next(tar)) is not None:
            tar.members.clear()
            try:
                ex.extract(tar, member)
            except ContainerkitError:
                raise
            except OSError as err:
                raise ContainerkitError(
                    f"layer entry {member.name!r}: {err.strerror or err}"
                    + (f" ({err.filename})" if err.filename else "")
                ) from err
        _check_end(tar, stream)
        stream.drain()
        ex.finish()
    diff_id = "sha256:" + meter.sha.hexdigest()
    if expected_diff_id is not None and diff_id != expected_diff_id:
        raise IntegrityError(f"layer diff_id mismatch: expected {expected_diff_id}, got {diff_id}")
    return UnpackResult(
        diff_id=diff_id,
        size=meter.size,
        whiteouts=tuple(ex.whiteouts),
        opaque_dirs=tuple(ex.opaque),
    )

"""The build context: a directory, what ``.dockerignore`` leaves of it, its sources and their hashes.

COPY and ADD name sources relative to the context root; a name with glob characters matches
(Go ``filepath.Match``) against every path of the context, a plain name must exist. Nothing
outside the root is reachable (``..`` is cleaned away as docker does, symlinks are copied as
symlinks and never followed out).

Each source gets the classic builder's cache hash (moby ``remotecontext/filehash.go`` and
tarsum v1): the sha256 of a file's tar header fields (name, mode, uid, gid, size, type, link
target; not mtime) and of its content; a directory's hash covers every entry under it. The
hashes are remembered per (device, inode, size, mtime, ctime, header), so a rebuild reads only
what changed; a touched file is read again and, its content the same, keeps its hash.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs

from containerkit.dockerfile import glob
from containerkit.dockerfile.ignore import DockerIgnore
from containerkit.errors import NotFound

__all__ = ["BuildContext", "Source"]

_MEMO_SIZE = 200_000
_PARALLEL_BYTES = 4 << 20
"""A directory with more file content than this is hashed on several threads."""
_memo: OrderedDict[tuple[int, int, int, int, int, str], str] = OrderedDict()
_memo_lock = threading.Lock()


def _tarsum(path: str, st: os.stat_result, header: str) -> str:
    """moby's ``tarsumHash``: sha256 of the tarsum v1 header, then of the file's bytes;
    remembered while the file's stat (and so the header) stays the same."""
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, header)
    with _memo_lock:
        found = _memo.get(key)
        if found is not None:
            _memo.move_to_end(key)
            return found
    digest = hashlib.sha256(header.encode())
    if stat.S_ISREG(st.st_mode) and st.st_size > 0:
        with open(path, "rb", buffering=0) as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    value = digest.hexdigest()
    with _memo_lock:
        _memo[key] = value
        while len(_memo) > _MEMO_SIZE:
            _memo.popitem(last=False)
    return value


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "5"
    if stat.S_ISLNK(mode):
        return "2"
    if stat.S_ISREG(mode):
        return "0"
    return "other"


@attrs.frozen
class Source:
    """One matched source: its path relative to the context root and its stat."""

    rel: str
    path: str
    st: os.stat_result = attrs.field(eq=False)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)


class BuildContext:
    """The context directory ``root`` with its ``.dockerignore`` applied."""

    def __init__(self, root: str | os.PathLike[str], *, ignore: DockerIgnore | None = None) -> None:
        self.root = Path(root).absolute()
        if not self.root.is_dir():
            raise NotFound(f"build context {self.root}: not a directory")
        if ignore is None:
            try:
                ignore = DockerIgnore.from_text((self.root / ".dockerignore").read_bytes())
            except FileNotFoundError:
                ignore = DockerIgnore.from_text("")
        self.ignore = ignore

    # -- paths ------------------------------------------------------------------------------

    @staticmethod
    def clean(name: str) -> str:
        """A source name as a relative path inside the context (docker's ``filepath.Clean`` of
        ``/name``: ``..`` cannot climb out, ``.`` is the root itself, as "")."""
        cleaned = posixpath.normpath("/" + name).lstrip("/")
        return "" if cleaned == "." else cleaned

    def excluded(self, rel: str) -> bool:
        return bool(rel) and self.ignore.excluded(rel)

    def _stat(self, rel: str) -> os.stat_result | None:
        path = os.path.join(self.root, rel) if rel else str(self.root)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        # a parent that is a symlink would lead out of the context: refuse to look through it
        parent = posixpath.dirname(rel)
        while parent:
            if os.path.islink(os.path.join(self.root, parent)):
                return None
            parent = posixpath.dirname(parent)
        return st

    def walk(self, rel_dir: str = "") -> Iterator[tuple[str, os.stat_result]]:
        """Every entry under ``rel_dir`` (not itself) that .dockerignore keeps, sorted, parents
        first; an excluded directory is descended only when exceptions (``!``) may re-include."""
        base = os.path.join(self.root, rel_dir) if rel_dir else str(self.root)
        try:
            names = sorted(os.listdir(base))
        except (FileNotFoundError, NotADirectoryError):
            return
        for name in names:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            try:
                st = os.lstat(os.path.join(base, name))
            except FileNotFoundError:
                continue
            skip = self.excluded(rel)
            if not skip:
                yield rel, st
            if stat.S_ISDIR(st.st_mode) and (not skip or self.ignore.has_exceptions):
                yield from self.walk(rel)

    # -- COPY/ADD sources -------------------------------------------------------------------

    def sources(self, name: str, instruction: str) -> list[Source]:
        """The context entries a COPY/ADD source names (a glob may match several, or none)."""
        rel = self.clean(name)
        if glob.has_meta(rel):
            glob.check(rel)
            found = [
                Source(path_rel, os.path.join(self.root, path_rel), st)
                for path_rel, st in self.walk()
                if glob.match(rel, path_rel)
            ]
            if not found:
                raise NotFound(
                    f"{instruction} failed: no source files were specified"
                    if rel == ""
                    else f"{instruction} failed: file not found in build context or excluded by "
                    f".dockerignore: stat {name}: file does not exist"
                )
            # a match inside a matched directory is part of it
            dirs = {s.rel for s in found if s.is_dir}
            return [s for s in found if not any(s.rel.startswith(d + "/") for d in dirs)]
        st = self._stat(rel)
        if st is None or self.excluded(rel):
            raise NotFound(
                f"{instruction} failed: file not found in build context or excluded by .dockerignore: "
                f"stat {name}: file does not exist"
            )
        return [Source(rel, os.path.join(self.root, rel) if rel else str(self.root), st)]

    # -- hashes -----------------------------------------------------------------------------

    @staticmethod
    def _header(rel: str, path: str, st: os.stat_result) -> str:
        """tarsum v1's header of one entry (moby ``NewFileHash``: its ``FileInfoHeader``, named by
        its path in the context, a directory with a ``/``, the mode with its file type bits as
        moby's ``fillGo18FileTypeBits`` adds them): no mtime, no user names."""
        mode = st.st_mode
        link = os.readlink(path) if stat.S_ISLNK(mode) else ""
        size = st.st_size if stat.S_ISREG(mode) else 0
        device = stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        major, minor = (os.major(st.st_rdev), os.minor(st.st_rdev)) if device else (0, 0)
        name = rel + "/" if stat.S_ISDIR(mode) else rel
        return (
            f"name{name}mode{mode}uid{st.st_uid}gid{st.st_gid}size{size}"
            f"typeflag{_kind(mode)}linkname{link}unamegnamedevmajor{major}devminor{minor}"
        )

    def _entry_hash(self, rel: str, st: os.stat_result) -> str:
        path = os.path.join(self.root, rel) if rel else str(self.root)
        return _tarsum(path, st, self._header(rel, path, st))

    def source_hash(self, source: Source) -> str:
        """``file:<sha256>`` or ``dir:<sha256>`` as the classic builder's cache marker names a
        source: a file's tarsum, or the sha256 of the sorted tarsums of a directory and
        everything under it, joined by commas (moby ``walkSource``)."""
        if not source.is_dir:
            return "file:" + self._entry_hash(source.rel, source.st)
        entries = list(self.walk(source.rel))
        if source.rel:
            entries.insert(0, (source.rel, source.st))
        files = [(rel, st) for rel, st in entries if stat.S_ISREG(st.st_mode)]
        if len(files) > 1 and sum(st.st_size for _, st in files) > _PARALLEL_BYTES:
            # the files first, on every core (sha256 releases the GIL); the memo keeps them
            with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
                list(pool.map(lambda item: self._entry_hash(*item), files))
        sums = sorted(self._entry_hash(rel, st) for rel, st in entries)
        return "dir:" + hashlib.sha256(",".join(sums).encode()).hexdigest()


def combined_hash(hashes: list[str]) -> str:
    """One source's hash, or ``multi:<sha256>`` of several (moby ``getSourceHashFromInfos``)."""
    if len(hashes) == 1:
        return hashes[0]
    return "multi:" + hashlib.sha256(",".join(hashes).encode()).hexdigest()

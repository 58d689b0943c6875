"""A read-only view of an image's filesystem, straight from its layer tars.

The engine needs a few files of an image before any container exists (``/etc/passwd`` and
``/etc/group`` to resolve ``user``), and must see them as the merged rootfs would: upper layers
win, ``.wh.<name>`` hides a lower path, ``.wh..wh..opq`` hides a directory's lower contents,
symlinks resolve inside the image. Reading the tars rather than unpacked snapshots keeps this
independent of how (and whether) the snapshotter has unpacked the layers.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Sequence
from pathlib import Path

import attrs

from containerkit._model import model
from containerkit.errors import InvalidArgument

__all__ = ["LayerDirView", "MergedView", "UnpackedLayer"]

_OPAQUE = ".wh..wh..opq"
_WHITEOUT = ".wh."
_MAX_SYMLINKS = 40


@attrs.frozen
class _Entry:
    layer: int
    kind: str  # file, dir, symlink, other
    linkname: str = ""
    offset: int = -1
    size: int = 0


def _clean(name: str) -> str | None:
    """A tar member name as a relative path (``etc/passwd``); None for the root or anything escaping it."""
    path = posixpath.normpath("/" + name).lstrip("/")
    if not path or path == "." or ".." in path.split("/"):
        return None
    return path


class MergedView:
    """The merged filesystem of layer blobs (paths, bottom first; gzip, zstd or plain)."""

    def __init__(self, layers: Sequence[Path]) -> None:
        self._layers = [Path(p) for p in layers]
        self._entries: dict[str, _Entry] = {}
        for n, path in enumerate(self._layers):
            self._apply(n, path)

    def _drop_tree(self, path: str, *, keep_root: bool) -> None:
        prefix = path + "/"
        for name in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[name]
        if not keep_root:
            self._entries.pop(path, None)

    def _apply(self, n: int, path: Path) -> None:
        # per use: a view of unpacked layers (a container's create reads /etc/passwd) needs no
        # decompressors, and the archive module loads zstd, gzip and the tar writer
        import tarfile

        from containerkit.images.archive import open_uncompressed

        added: dict[str, _Entry] = {}
        whiteouts: list[str] = []
        opaque: list[str] = []
        try:
            with path.open("rb") as raw, tarfile.open(fileobj=open_uncompressed(raw), mode="r|") as tar:
                for member in tar:
                    name = _clean(member.name)
                    if name is None:
                        continue
                    parent, base = posixpath.split(name)
                    if base == _OPAQUE:
                        opaque.append(parent)
                    elif base.startswith(_WHITEOUT):
                        whiteouts.append(posixpath.join(parent, base[len(_WHITEOUT) :]))
                    elif member.isfile():
                        added[name] = _Entry(n, "file", offset=member.offset_data, size=member.size)
                    elif member.isdir():
                        added[name] = _Entry(n, "dir")
                    elif member.issym():
                        added[name] = _Entry(n, "symlink", linkname=member.linkname)
                    elif member.islnk():
                        target = _clean(member.linkname)
                        found = added.get(target) if target else None
                        if found is None and target:
                            found = self._entries.get(target)
                        added[name] = found if found is not None else _Entry(n, "other")
                    else:
                        added[name] = _Entry(n, "other")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise InvalidArgument(f"cannot read layer {path.name}: {exc}") from None
        for directory in opaque:
            if directory:
                self._drop_tree(directory, keep_root=True)
            else:
                self._entries.clear()
        for hidden in whiteouts:
            self._drop_tree(hidden, keep_root=False)
        for name, entry in added.items():
            old = self._entries.get(name)
            if old is not None and old.kind == "dir" and entry.kind != "dir":
                self._drop_tree(name, keep_root=True)
            self._entries[name] = entry

    def _resolve(self, path: str) -> _Entry | None:
        parts = [p for p in path.split("/") if p and p != "."]
        done: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if done:
                    done.pop()
                continue
            entry = self._entries.get("/".join([*done, part]))
            if entry is None:
                return None
            if entry.kind == "symlink":
                hops += 1
                if hops > _MAX_SYMLINKS:
                    return None
                if entry.linkname.startswith("/"):
                    done = []
                parts = [p for p in entry.linkname.split("/") if p and p != "."] + parts
                continue
            if parts and entry.kind != "dir":
                return None
            done.append(part)
            if not parts:
                return entry
        return None

    def exists(self, path: str) -> bool:
        return self._resolve(path) is not None

    def kind(self, path: str) -> str | None:
        """What is at ``path`` (symlinks followed): ``file``, ``dir``, ``other``, or None for nothing."""
        entry = self._resolve(path)
        return entry.kind if entry is not None else None

    def read_file(self, path: str, *, max_bytes: int = 64 << 20) -> bytes | None:
        """The content of a regular file (symlinks followed), or None if there is none at ``path``."""
        entry = self._resolve(path)
        if entry is None or entry.kind != "file":
            return None
        if entry.size > max_bytes:
            raise InvalidArgument(f"{path} in the image is larger than {max_bytes} bytes")
        import tarfile

        from containerkit.images.archive import open_uncompressed

        with self._layers[entry.layer].open("rb") as raw:
            stream = open_uncompressed(raw)
            if stream is raw:
                raw.seek(entry.offset)
                return raw.read(entry.size)
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    if member.offset_data == entry.offset:
                        data = tar.extractfile(member)
                        return data.read() if data is not None else None
        return None


@model
class UnpackedLayer:
    """One layer as the snapshot store keeps it: its directory and what it hides below it."""

    path: Path
    whiteouts: frozenset[str] = frozenset()
    opaque_dirs: frozenset[str] = frozenset()


def _non_dir(path: Path) -> bool:
    """Something other than a directory is at ``path``: it hides the layers' trees below."""
    try:
        return not stat.S_ISDIR(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


class LayerDirView(MergedView):
    """The same view over unpacked layer directories (bottom first), read as overlayfs shows
    them: a whiteout (listed, or an overlay 0/0 character device) or an opaque directory hides
    the layers below; a non-directory hides a lower tree. Used once the layer blobs are gone
    (the snapshot store keeps only unpacked layers); nothing is read until a path is asked for."""

    def __init__(self, layers: Sequence[UnpackedLayer]) -> None:
        self._dirs = list(reversed(layers))  # top first

    def _lookup(self, rel: str) -> _Entry | None:
        parts = rel.split("/")
        ancestors = ["/".join(parts[:n]) for n in range(len(parts))]  # "" (root) first
        for n, layer in enumerate(self._dirs):
            if rel in layer.whiteouts:
                return None
            try:
                st = os.lstat(layer.path / rel)
            except (FileNotFoundError, NotADirectoryError):
                st = None
            if st is not None:
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    return None
                if stat.S_ISDIR(st.st_mode):
                    return _Entry(n, "dir")
                if stat.S_ISLNK(st.st_mode):
                    return _Entry(n, "symlink", linkname=os.readlink(layer.path / rel))
                if stat.S_ISREG(st.st_mode):
                    return _Entry(n, "file", size=st.st_size)
                return _Entry(n, "other")
            for ancestor in ancestors:
                if ancestor in layer.opaque_dirs or (ancestor and ancestor in layer.whiteouts):
                    return None
                if ancestor and _non_dir(layer.path / ancestor):
                    return None
        return None

    def _resolve(self, path: str) -> _Entry | None:
        entry, _ = self._walk(path)
        return entry

    def _walk(self, path: str) -> tuple[_Entry | None, str]:
        parts = [p for p in path.split("/") if p and p != "."]
        done: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if done:
                    done.pop()
                continue
            rel = "/".join([*done, part])
            entry = self._lookup(rel)
            if entry is None:
                return None, rel
            if entry.kind == "symlink":
                hops += 1
                if hops > _MAX_SYMLINKS:
                    return None, rel
                if entry.linkname.startswith("/"):
                    done = []
                parts = [p for p in entry.linkname.split("/") if p and p != "."] + parts
                continue
            if parts and entry.kind != "dir":
                return None, rel
            done.append(part)
            if not parts:
                return entry, rel
        return None, ""

    def read_file(self, path: str, *, max_bytes: int = 64 << 20) -> bytes | None:
        entry, rel = self._walk(path)
        if entry is None or entry.kind != "file":
            return None
        if entry.size > max_bytes:
            raise InvalidArgument(f"{path} in the image is larger than {max_bytes} bytes")
        fd = os.open(self._dirs[entry.layer].path / rel, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            return f.read(max_bytes + 1)[:max_bytes]

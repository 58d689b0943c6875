"""What one COPY or ADD writes: its sources found and hashed first (the hashes are the
step's cache key), their entries written into the step's layer only on a cache miss.

Sources are context files and directories (a directory's content, not itself), inline
heredoc files, an http(s) URL (ADD: downloaded, never extracted, mode 0600, mtime from
Last-Modified), a local tar (ADD: extracted under the destination), or paths of another
image (COPY --from, read through a container of it that never runs).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import stat
import tarfile
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from containerkit.engine._recovery import owner_token
from containerkit.engine.builder import BUILD_OWNER_LABEL
from containerkit.engine.builder.context import Source
from containerkit.engine.builder.layers import LayerTar
from containerkit.errors import BuildError, ContainerkitError
from containerkit.spec import ContainerSpec

if TYPE_CHECKING:
    from containerkit.engine.builder.executor import Executor
    from containerkit.images.layerview import MergedView

__all__ = ["CopyPlan", "add_parents", "is_url"]


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def add_parents(
    layer: LayerTar,
    view: MergedView | None,
    path: str,
    owner: tuple[int, int],
    *,
    include_self: bool = False,
) -> None:
    """Directory entries for the parents of ``path`` (and ``path`` itself) the image lacks."""
    parts = [p for p in path.split("/") if p]
    upto = parts if include_self else parts[:-1]
    for n in range(1, len(upto) + 1):
        rel = "/".join(upto[:n])
        if view is not None and view.kind(rel) is not None:
            continue
        layer.directory(rel, 0o755, owner[0], owner[1], 0)


class CopyPlan:
    """The entries one COPY/ADD writes, gathered first (their hashes make the cache key) and
    written into the layer only on a cache miss."""

    def __init__(
        self,
        executor: Executor,
        view: MergedView | None,
        target: str,
        dest_is_dir: bool,
        owner: tuple[int, int],
        mode: int | None,
        is_add: bool,
    ) -> None:
        self.executor = executor
        self.view = view
        self.target = target.lstrip("/")
        self.dest_is_dir = dest_is_dir
        self.owner = owner
        self.mode = mode
        self.is_add = is_add
        self.actions: list[Callable[[LayerTar], None]] = []

    def _dest_for(self, basename: str) -> str:
        return posixpath.join(self.target, basename) if self.dest_is_dir else self.target

    def _mode(self, st_mode: int) -> int:
        return self.mode if self.mode is not None else stat.S_IMODE(st_mode) | (st_mode & 0o7000)

    def _add_parents(self, layer: LayerTar, name: str) -> None:
        add_parents(layer, self.view, name, self.owner)

    def local(self, source: Source) -> str:
        context = self.executor.context
        if source.is_dir:
            base = self.target
            entries = list(context.walk(source.rel))

            def write_dir(layer: LayerTar) -> None:
                add_parents(layer, self.view, base, self.owner, include_self=True)
                uid, gid = self.owner
                for rel, st in entries:
                    inner = rel[len(source.rel) + 1 :] if source.rel else rel
                    self._entry(
                        layer, posixpath.join(base, inner), os.path.join(context.root, rel), st, uid, gid
                    )

            self.actions.append(write_dir)
            return context.source_hash(source)
        if self.is_add and _is_archive(source.path):
            return self._archive(source, context.source_hash(source))
        dest = self._dest_for(posixpath.basename(source.rel))

        def write_file(layer: LayerTar) -> None:
            self._add_parents(layer, dest)
            self._entry(layer, dest, source.path, source.st, *self.owner)

        self.actions.append(write_file)
        return context.source_hash(source)

    def _entry(self, layer: LayerTar, name: str, path: str, st: os.stat_result, uid: int, gid: int) -> None:
        if stat.S_ISDIR(st.st_mode):
            layer.directory(name, self._mode(st.st_mode), uid, gid, st.st_mtime)
        elif stat.S_ISLNK(st.st_mode):
            layer.symlink(name, os.readlink(path), uid, gid, st.st_mtime)
        elif stat.S_ISREG(st.st_mode):
            layer.file(name, path, st.st_size, self._mode(st.st_mode), uid, gid, st.st_mtime)

    def inline(self, name: str, data: bytes) -> str:

        dest = self._dest_for(name)

        def write(layer: LayerTar) -> None:
            self._add_parents(layer, dest)
            layer.data(dest, data, self.mode if self.mode is not None else 0o644, *self.owner, 0)

        self.actions.append(write)
        return "file:" + hashlib.sha256(name.encode() + b"\0" + data).hexdigest()

    def url(self, url: str) -> str:
        """ADD of an http(s) URL: downloaded now (its bytes are in the key), never extracted,
        mode 0600 and the mtime of its Last-Modified, as the classic builder does."""

        fd, path = tempfile.mkstemp(prefix="ckbuild-url-")
        self.executor._tmp_files.append(path)
        digest = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=60) as response, os.fdopen(fd, "wb") as out:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                modified = response.headers.get("Last-Modified")
        except OSError as exc:
            raise BuildError(f"ADD failed: downloading {url}: {exc}") from None
        mtime = 0.0
        if modified:
            with contextlib.suppress(TypeError, ValueError):
                mtime = parsedate_to_datetime(modified).timestamp()
        parsed = urllib.parse.urlparse(url)
        basename = posixpath.basename(parsed.path.rstrip("/")) or "__unnamed__"
        dest = self._dest_for(basename)
        size = os.path.getsize(path)

        def write(layer: LayerTar) -> None:
            self._add_parents(layer, dest)
            layer.file(dest, path, size, self.mode if self.mode is not None else 0o600, *self.owner, mtime)

        self.actions.append(write)
        return "file:" + digest.hexdigest()

    def _archive(self, source: Source, key: str) -> str:
        """ADD of a local tar (plain, gzip, bzip2, xz): its entries under the destination."""
        base = self.target

        def write(layer: LayerTar) -> None:
            add_parents(layer, self.view, base, (0, 0), include_self=True)
            with tarfile.open(source.path, "r:*") as archive:
                for member in archive:
                    name = posixpath.normpath("/" + member.name).lstrip("/")
                    if not name or name == ".":
                        continue
                    if member.islnk():
                        link = posixpath.normpath("/" + member.linkname).lstrip("/")
                        member.linkname = posixpath.join(base, link)
                    member.name = posixpath.join(base, name)
                    content = archive.extractfile(member) if member.isreg() else None
                    layer.member(member, content)

        self.actions.append(write)
        return key

    def from_image(self, image_id: str, sources: Sequence[str]) -> list[str]:
        """COPY --from: the entries of another image's rootfs, read from a container of it."""
        hashes: list[str] = []
        for source in sources:
            path = posixpath.normpath("/" + source)
            container = self.executor.containers.create(
                ContainerSpec(
                    image=image_id,
                    command=["true"],
                    entrypoint=(),
                    network="none",
                    labels={BUILD_OWNER_LABEL: owner_token()},
                )
            )
            fd, spool = tempfile.mkstemp(prefix="ckbuild-from-")
            self.executor._tmp_files.append(spool)
            try:
                stream, info = container.get_archive(path)
                with os.fdopen(fd, "wb") as out:
                    for chunk in stream:
                        out.write(chunk)
            finally:
                with contextlib.suppress(ContainerkitError):
                    container.remove(force=True)
            is_dir = stat.S_ISDIR(int(info.get("mode", 0)) & 0o170000) or bool(
                int(info.get("mode", 0)) & (1 << 31)
            )
            hashes.append(_spool_hash(spool, "dir" if is_dir else "file"))
            self.actions.append(self._from_spool(spool, is_dir))
        return hashes

    def _from_spool(self, spool: str, is_dir: bool) -> Callable[[LayerTar], None]:
        def write(layer: LayerTar) -> None:
            with tarfile.open(spool, "r:") as archive:
                top: str | None = None
                for member in archive:
                    name = posixpath.normpath(member.name).lstrip("/")
                    first, _, rest = name.partition("/")
                    if top is None:
                        top = first
                    if is_dir:
                        if not rest:
                            add_parents(layer, self.view, self.target, self.owner, include_self=True)
                            continue
                        dest = posixpath.join(self.target, rest)
                    else:
                        dest = self._dest_for(first)
                        self._add_parents(layer, dest)
                    if member.islnk():
                        link = posixpath.normpath(member.linkname).lstrip("/")
                        _, _, link_rest = link.partition("/")
                        member.linkname = posixpath.join(self.target, link_rest) if is_dir else dest
                    member.name = dest
                    if self.owner != (0, 0):
                        member.uid, member.gid = self.owner
                    if self.mode is not None and not member.issym():
                        member.mode = self.mode
                    layer.member(member, archive.extractfile(member) if member.isreg() else None)

        return write

    def write(self, layer: LayerTar) -> None:
        for action in self.actions:
            action(layer)


def _spool_hash(path: str, kind: str) -> str:

    digest = hashlib.sha256()
    with tarfile.open(path, "r:") as archive:
        for member in archive:
            fields: list[object] = [member.name, member.mode, member.uid, member.gid]
            fields += [member.size, member.type, member.linkname]
            header = "|".join(map(str, fields))
            digest.update(header.encode())
            if member.isreg():
                handle = archive.extractfile(member)
                if handle is not None:
                    while chunk := handle.read(1 << 20):
                        digest.update(chunk)
    return f"{kind}:{digest.hexdigest()}"


def _is_archive(path: str) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False

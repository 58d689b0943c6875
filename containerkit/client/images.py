"""``client.images``: the Engine's image collection over the Docker API.

Load, import and save move whole archives, so they have no read timeout: a slow disk on the
daemon's side is not an error. Progress arrives as a JSON stream; an in-band ``error`` object
(docker's way to fail after the 200) is raised like any other error.
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
import os
import re
import secrets
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal
from urllib.parse import quote

from containerkit.client import _frames, _wire
from containerkit.client._transport import Reply, Transport
from containerkit.client.registries import AuthConfig, Logins
from containerkit.dockerapi.build import build_event
from containerkit.dockerapi.progress import progress_event
from containerkit.dockerapi.registry import registry_data_from_wire
from containerkit.errors import (
    BuildError,
    InvalidArgument,
    InvalidReference,
    NotFound,
    Unavailable,
    UnsafeArchive,
    error_class_for,
)
from containerkit.spec import BuildEvent, HistoryEntry, Image, ImageConfig, ProgressEvent, RegistryData

__all__ = ["ArchiveFormat", "ImageCollection"]

ArchiveFormat = Literal["docker-archive", "oci"]

_LOADED = re.compile(r"^Loaded image(?: ID)?: (\S+)\s*$")
_IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")


def _path(ref: str) -> str:
    return "/images/" + quote(ref, safe="/:@")


def _split_ref(ref: str) -> tuple[str, str]:
    """``name@sha256:...`` -> (name, digest); ``name[:tag]`` -> (name, tag or "")."""
    if "@" in ref:
        name, _, digest = ref.partition("@")
        return name, digest
    return _wire.split_tag(ref)


def _progress(reply: Reply, what: str) -> Iterator[dict[str, Any]]:
    """The objects of a progress stream; an in-band error raises."""
    for item in _frames.json_objects(reply.chunks()):
        if item.get("error") or item.get("errorDetail"):
            detail = item.get("errorDetail") or {}
            message = str(item.get("error") or detail.get("message") or f"{what} failed")
            kind = item.get("kind") or detail.get("kind")
            raise error_class_for(int(detail.get("code") or 500), kind if isinstance(kind, str) else None)(
                message
            )
        yield item


def _pack_context(root: Path, dockerfile: str, out: IO[bytes]) -> str:
    """Tar the context into ``out`` (uid/gid 0, as the docker CLI sends it, so docker-py-style
    owners do not change the cache key); the Dockerfile's name in it."""

    def owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    name = dockerfile or "Dockerfile"
    path = Path(name) if os.path.isabs(name) else root / name
    with tarfile.open(fileobj=out, mode="w") as tar:
        for entry in sorted(root.iterdir()):
            tar.add(entry, arcname=entry.name, filter=owned_by_root)
        try:
            inside = path.resolve().relative_to(root.resolve())
        except ValueError:
            if not path.is_file():
                raise NotFound(f"Cannot locate specified Dockerfile: {dockerfile}") from None
            name = f".dockerfile.{secrets.token_hex(10)}"
            tar.add(path, arcname=name, filter=owned_by_root)
        else:
            name = inside.as_posix()
    out.seek(0)
    return name


@contextmanager
def _archive_file(path: Path) -> Iterator[IO[bytes]]:
    """The file to upload: a tar as is, a directory (an OCI layout) packed into a temp tar."""
    if not path.exists():
        raise NotFound(f"no such file: {path}")
    if not path.is_dir():
        with path.open("rb") as handle:
            yield handle
        return
    with tempfile.TemporaryFile() as packed:
        with tarfile.open(fileobj=packed, mode="w") as tar:
            for entry in sorted(path.iterdir()):
                tar.add(entry, arcname=entry.name)
        packed.seek(0)
        yield packed


class ImageCollection:
    """Local images of the daemon: load, import, look up, tag, remove, save, prune."""

    def __init__(self, transport: Transport, logins: Logins | None = None) -> None:
        self._transport = transport
        self._logins = logins or Logins()

    # -- registries ---------------------------------------------------------------------------

    def pull(
        self,
        ref: str,
        *,
        platform: str | None = None,
        auth: AuthConfig | None = None,
        progress: Callable[[ProgressEvent], None] | None = None,
    ) -> Image:
        """Pull ``ref`` (``name[:tag]`` or ``name@sha256:...``) into the daemon; ``progress``
        gets each step as the daemon streams it. ``auth``: else what this Client logged in with."""
        name, tag = _split_ref(ref)
        reply = self._transport.request(
            "POST",
            "/images/create",
            params={"fromImage": name, "tag": tag or "latest", "platform": platform},
            headers=self._logins.header(name, auth),
            stream=True,
            timeout=None,
        )
        for item in _progress(reply, f"pull {ref}"):
            event = progress_event(item)
            if event is not None and progress is not None:
                progress(event)
        separator = "@" if tag.startswith("sha256:") else ":"
        return self.get(f"{name}{separator}{tag or 'latest'}")

    def push(
        self,
        ref: str,
        *,
        auth: AuthConfig | None = None,
        progress: Callable[[ProgressEvent], None] | None = None,
    ) -> str:
        """Push ``ref`` from the daemon to its registry; the digest of the manifest pushed."""
        name, tag = _wire.split_tag(ref)
        reply = self._transport.request(
            "POST",
            f"{_path(name)}/push",
            params={"tag": tag or "latest"},
            body={},
            headers=self._logins.header(name, auth),
            stream=True,
            timeout=None,
        )
        digest: str | None = None
        for item in _progress(reply, f"push {ref}"):
            aux = item.get("aux")
            if isinstance(aux, dict) and isinstance(aux.get("Digest"), str):
                digest = str(aux["Digest"])
                continue
            event = progress_event(item)
            if event is not None and progress is not None:
                progress(event)
        if digest is None:
            raise Unavailable(f"push {ref}: {self._transport.endpoint} did not report the pushed digest")
        return digest

    def get_registry_data(self, ref: str, *, auth: AuthConfig | None = None) -> RegistryData:
        """The digest, media type, size and platforms the registry has for ``ref`` (no pull)."""
        name = ref.split("@", 1)[0]
        headers = self._logins.header(name, auth)
        reply = self._transport.request(
            "GET",
            "/distribution/" + quote(ref, safe="/:@") + "/json",
            headers=headers,
        )
        return registry_data_from_wire(reply.json())

    # -- build --------------------------------------------------------------------------------

    def build(
        self,
        context: str | os.PathLike[str] = ".",
        dockerfile: str = "Dockerfile",
        tag: str | Sequence[str] | None = None,
        buildargs: Mapping[str, str | None] | None = None,
        target: str | None = None,
        labels: Mapping[str, str] | None = None,
        nocache: bool = False,
        cache_from: Sequence[str] = (),
        pull: bool = False,
        network: str = "bridge",
        extra_hosts: Mapping[str, str] | None = None,
        platform: str | None = None,
        rm: bool = True,
        forcerm: bool = False,
        progress: Callable[[BuildEvent], None] | None = None,
    ) -> Image:
        """Build on the daemon from the directory ``context`` (sent as a tar; the daemon applies
        its ``.dockerignore``); ``progress`` gets each step, cache hit and output line as the
        daemon streams them. A Dockerfile outside the context is sent inside it under a hidden
        name, as docker-py does."""
        root = Path(context)
        if not root.is_dir():
            raise NotFound(f"build context {root}: not a directory")
        tags = [tag] if isinstance(tag, str) else list(tag or ())
        if isinstance(cache_from, str):
            cache_from = [cache_from]
        with tempfile.TemporaryFile() as packed:
            name = _pack_context(root, dockerfile, packed)
            params: dict[str, Any] = {
                "t": tags,
                "dockerfile": name,
                "buildargs": json.dumps(dict(buildargs)) if buildargs else None,
                "labels": json.dumps(dict(labels)) if labels else None,
                "cachefrom": json.dumps(list(cache_from)) if cache_from else None,
                "target": target,
                "nocache": nocache,
                "pull": pull,
                "rm": rm,
                "forcerm": forcerm,
                "networkmode": network,
                "extrahosts": ",".join(f"{k}:{v}" for k, v in (extra_hosts or {}).items()) or None,
                "platform": platform,
            }
            reply = self._transport.request(
                "POST",
                "/build",
                params=params,
                data=packed,
                headers={"Content-Type": "application/x-tar", **self._logins.config_header()},
                stream=True,
                timeout=None,
            )
            image_id = ""
            for item in _frames.json_objects(reply.chunks()):
                if item.get("error") or item.get("errorDetail"):
                    detail = item.get("errorDetail") or {}
                    message = str(item.get("error") or detail.get("message") or "build failed")
                    code = detail.get("code")
                    if detail.get("kind") == "build" or code is not None:
                        raise BuildError(message, exit_code=code if isinstance(code, int) else None)
                    kind = detail.get("kind")
                    raise error_class_for(500, kind if isinstance(kind, str) else None)(message)
                event = build_event(item)
                if event is None:
                    continue
                if event.kind in ("stage", "built"):
                    image_id = event.id
                if progress is not None:
                    progress(event)
        if not image_id:
            raise Unavailable("the daemon's build stream ended without an image")
        return self.get(image_id)

    def prune_build_cache(self) -> builtins.list[str]:
        """Forget the daemon's build cache; the ids of the images deleted."""
        reply = self._transport.request("POST", "/build/prune")
        return [str(i) for i in reply.json().get("CachesDeleted") or ()]

    # -- load / import ------------------------------------------------------------------------

    def load(self, path: str | os.PathLike[str], *, name: str | None = None) -> builtins.list[Image]:
        """Load every image of a docker-archive tar or OCI layout (dir or tar).

        ``name`` is the repository for OCI entries tagged only with a bare tag (sent as the
        ``name`` query parameter, which containerkitd honours and dockerd ignores).
        """
        with _archive_file(Path(path)) as upload:
            reply = self._transport.request(
                "POST",
                "/images/load",
                params={"quiet": True, "name": name},
                data=upload,
                headers={"Content-Type": "application/x-tar"},
                stream=True,
                timeout=None,
            )
            found: list[str] = []
            for item in _progress(reply, f"load {path}"):
                match = _LOADED.match(str(item.get("stream") or ""))
                if match:
                    found.append(match.group(1))
        ids: dict[str, None] = {}
        for ref in found:
            ids.setdefault(self.get(ref).id, None)
        return [self.get(image_id) for image_id in ids]

    def import_rootfs(
        self,
        tar_path: str | os.PathLike[str],
        ref: str | None = None,
        *,
        config: ImageConfig | Mapping[str, Any] | None = None,
    ) -> Image:
        """A one-layer image from a rootfs tar (plain or compressed), like ``docker import``.

        ``config`` (an :class:`ImageConfig` or an OCI mapping such as ``{"Cmd": ["sh"]}``) is
        sent as docker's ``changes`` (Dockerfile instructions).
        """
        repo, tag = ("", "")
        if ref is not None:
            if "@" in ref:
                raise InvalidReference(f"cannot tag an imported image with a digest reference: {ref}")
            repo, tag = _wire.split_tag(ref)
        changes = _wire.import_changes(_wire.image_config(config))
        path = Path(tar_path)
        if not path.is_file():
            raise NotFound(f"no such file: {tar_path}")
        with path.open("rb") as upload:
            reply = self._transport.request(
                "POST",
                "/images/create",
                params={"fromSrc": "-", "repo": repo or None, "tag": tag or None, "changes": changes},
                data=upload,
                headers={"Content-Type": "application/x-tar"},
                stream=True,
                timeout=None,
            )
            image_id = None
            for item in _progress(reply, f"import {tar_path}"):
                match = _IMAGE_ID.search(str(item.get("status") or ""))
                if match:
                    image_id = match.group(0)
        if image_id is None:
            if ref is None:
                raise InvalidArgument(f"import {tar_path}: the daemon did not report the new image's id")
            return self.get(ref)
        return self.get(image_id)

    # -- look-up ----------------------------------------------------------------------------

    def get(self, ref_or_id: str) -> Image:
        """By tag (``busybox``, ``docker.io/library/busybox:latest``), id or prefix, or ``repo@digest``."""
        if not ref_or_id:
            raise NotFound(f"No such image: {ref_or_id}")
        return _wire.image_from_wire(self._transport.get_json(f"{_path(ref_or_id)}/json"))

    def config(self, image_id: str) -> ImageConfig:
        return self.get(image_id).config

    def history(self, ref: str) -> builtins.list[HistoryEntry]:
        """``docker history``: the image's steps, newest first (``empty_layer``: a step that
        adds no bytes, as the API does not say more)."""
        items = self._transport.get_json(f"{_path(ref)}/history") or ()
        return [
            HistoryEntry(
                id=str(item.get("Id") or "<missing>"),
                created=dt.datetime.fromtimestamp(item["Created"], dt.UTC) if item.get("Created") else None,
                created_by=str(item.get("CreatedBy") or ""),
                comment=str(item.get("Comment") or ""),
                empty_layer=not item.get("Size"),
                size=int(item.get("Size") or 0),
                tags=item.get("Tags") or (),
            )
            for item in items
        ]

    def list(self, all: bool = False, filters: Mapping[str, Any] | None = None) -> builtins.list[Image]:
        """Newest first; ``filters``: ``dangling``, ``label``, ``reference`` (as the Engine's)."""
        entries = self._transport.get_json(
            "/images/json", params={"all": all, "filters": _wire.filters_param(filters)}
        )
        images = []
        for entry in entries or ():
            try:
                images.append(self.get(entry["Id"]))
            except NotFound:
                continue  # removed between the list and the inspect
        return images

    # -- tags and removal ---------------------------------------------------------------------

    def tag(self, src: str, dst: str) -> None:
        """Point ``dst`` (a name with optional tag, never a digest) at the image ``src`` names."""
        repo, tag = _wire.split_tag(dst)
        self._transport.request("POST", f"{_path(src)}/tag", params={"repo": repo, "tag": tag or None})

    def remove(self, ref: str, force: bool = False) -> builtins.list[str]:
        """docker's ``rmi``; docker's lines: ``"Untagged: busybox:latest"``, ``"Deleted: sha256:..."``."""
        items = self._transport.request("DELETE", _path(ref), params={"force": force}).json() or []
        lines = []
        for item in items:
            for key in ("Untagged", "Deleted"):
                if item.get(key):
                    lines.append(f"{key}: {item[key]}")
        return lines

    def prune(self) -> builtins.list[str]:
        """Delete dangling images no container uses; the image ids deleted."""
        data = self._transport.post_json(
            "/images/prune", params={"filters": _wire.filters_param({"dangling": ["true"]})}, timeout=None
        )
        return [item["Deleted"] for item in (data or {}).get("ImagesDeleted") or () if item.get("Deleted")]

    # -- save -------------------------------------------------------------------------------

    def save(
        self,
        refs: str | Sequence[str],
        out_path: str | os.PathLike[str],
        format: ArchiveFormat = "docker-archive",
    ) -> None:
        """Write images to a docker-archive tar, or an OCI layout (a dir, or a tar if the path
        ends in ``.tar``). An image named by tag is saved with that tag; by id, untagged."""
        names = [refs] if isinstance(refs, str) else list(refs)
        if format not in ("docker-archive", "oci"):
            raise InvalidArgument(f"format must be docker-archive or oci, got {format!r}")
        out = Path(out_path)
        reply = self._transport.request(
            "GET",
            "/images/get",
            params={"names": names, "format": None if format == "docker-archive" else format},
            stream=True,
            timeout=None,
        )
        if format == "oci":
            self._save_oci(reply, out, names)
            return
        partial = out.with_name(out.name + ".part")  # never a half-written archive under the real name
        try:
            with partial.open("wb") as handle:
                reply.save_to(handle)
            partial.replace(out)
        finally:
            partial.unlink(missing_ok=True)

    def _save_oci(self, reply: Reply, out: Path, names: builtins.list[str]) -> None:
        """An OCI layout from the daemon's archive (dockerd 25+ writes one alongside manifest.json)."""
        with tempfile.TemporaryFile() as spool:
            reply.save_to(spool)
            spool.seek(0)
            with tarfile.open(fileobj=spool) as tar:
                members = set(tar.getnames())
                if not {"index.json", "oci-layout"} <= members:
                    raise Unavailable(
                        f"save {', '.join(names)}: the daemon at {self._transport.endpoint} sent a "
                        "docker-archive without an OCI layout (it ignores format=oci); "
                        "save as docker-archive instead"
                    )
                if not out.name.endswith(".tar"):
                    out.mkdir(parents=True, exist_ok=True)
                    _extract_layout(tar, out)
                    return
            spool.seek(0)
            partial = out.with_name(out.name + ".part")
            try:
                with partial.open("wb") as handle:
                    shutil.copyfileobj(spool, handle, 1 << 20)
                partial.replace(out)
            finally:
                partial.unlink(missing_ok=True)


def _extract_layout(tar: tarfile.TarFile, out: Path) -> None:
    """An OCI layout holds only plain files and directories under relative names: anything else
    (links, devices, ``..``, absolute names) is refused, so no tarfile extraction filter is
    needed (there is none before Python 3.11.4). Files are created anew, never through a link."""
    for member in tar.getmembers():
        parts = member.name.split("/")
        if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
            raise UnsafeArchive(f"OCI layout entry {member.name!r} is not a plain file or directory")
    for member in tar.getmembers():
        target = out.joinpath(*[p for p in member.name.split("/") if p not in ("", ".")])
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        if source is None:
            raise UnsafeArchive(f"OCI layout entry {member.name!r} has no content")
        target.unlink(missing_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as handle:
            shutil.copyfileobj(source, handle, 1 << 20)

"""Test images from files next to the tests (a rootfs directory or a rootfs tar, or a
Dockerfile built by the engine's builder), or by name from a registry.

Each image from files is tagged with a digest of its input (the files and the config), so an
unchanged rootfs is imported once and found again by later tests, sessions and xdist workers
sharing the engine root; a changed one gets a new tag. An image by name is pulled only when
the engine does not have it yet.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from containerkit import api
from containerkit.errors import InvalidArgument, NotFound
from containerkit.spec import Image

__all__ = [
    "TEST_REPOSITORY",
    "image_by_name",
    "image_from_dockerfile",
    "image_from_rootfs",
    "looks_like_path",
]

TEST_REPOSITORY = "containerkit-test"
"""Images built from test files are tagged ``containerkit-test/<name>:<digest of the input>``."""

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.zstd")


def image_from_rootfs(
    backend: api.Backend,
    source: str | os.PathLike[str],
    *,
    tag: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> Image:
    """Import ``source`` (a rootfs directory or tar) once; later calls return the same image.

    A directory is archived with every entry owned by root (as ``COPY`` in a Dockerfile does),
    keeping modes, symlinks and times. ``tag`` adds a tag of your choosing; ``config`` is the
    OCI runtime config (``{"Cmd": ["sh"]}``).
    """
    path = Path(source)
    if not path.exists():
        raise NotFound(f"no such rootfs directory or tar: {path}")
    with tempfile.TemporaryDirectory(prefix="containerkit-image-") as tmp:
        if path.is_dir():
            tar_path = _archive_dir(path, Path(tmp) / "rootfs.tar")
        elif path.name.endswith(_TAR_SUFFIXES):
            tar_path = path
        else:
            kinds = ", ".join(_TAR_SUFFIXES)
            raise InvalidArgument(f"{path}: expected a rootfs directory or a tar ({kinds})")
        digest = _digest(tar_path, config)
        cached = f"{TEST_REPOSITORY}/{_repo_name(path)}:{digest[:16]}"
        try:
            image = backend.images.get(cached)
        except NotFound:
            image = backend.images.import_rootfs(tar_path, cached, config=dict(config or {}))
    if tag is not None:
        backend.images.tag(cached, tag)
        image = backend.images.get(tag)
    return image


def looks_like_path(text: str) -> bool:
    """Whether ``text`` names a file rather than an image (``./x``, ``rootfs/``, ``base.tar``):
    an image reference never starts with ``.`` or ``/``, ends with ``/`` or a tar suffix."""
    return text.startswith((".", "/")) or text.endswith(("/", *_TAR_SUFFIXES))


def image_by_name(backend: api.Backend, ref: str, *, tag: str | None = None) -> Image:
    """``ref`` from the engine, pulled from its registry first when the engine lacks it
    (credentials as the engine finds them: docker's config for an Engine, the Client's login)."""
    try:
        image = backend.images.get(ref)
    except NotFound:
        image = backend.images.pull(ref)
    if tag is not None:
        backend.images.tag(image.id, tag)
        image = backend.images.get(tag)
    return image


def image_from_dockerfile(
    backend: api.Backend,
    dockerfile: str | os.PathLike[str],
    *,
    context: str | os.PathLike[str] | None = None,
    tag: str | None = None,
    buildargs: Mapping[str, str] | None = None,
    target: str | None = None,
) -> Image:
    """Build ``dockerfile`` (its context: ``context``, else the Dockerfile's directory) with the
    engine's builder; its cache makes an unchanged build cost a look-up per step."""
    path = Path(dockerfile)
    if not path.is_file():
        raise NotFound(f"no such Dockerfile: {path}")
    return backend.images.build(
        Path(context) if context is not None else path.parent,
        dockerfile=str(path.absolute()),
        tag=tag,
        buildargs=dict(buildargs or {}),
        target=target,
    )


def _archive_dir(src: Path, dest: Path) -> Path:
    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(dest, "w", format=tarfile.GNU_FORMAT) as tar:
        for child in sorted(os.listdir(src)):  # tarfile sorts below the top level itself
            tar.add(src / child, arcname=child, filter=as_root)
    return dest


def _digest(tar_path: Path, config: Mapping[str, Any] | None) -> str:
    h = hashlib.sha256()
    with tar_path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    h.update(json.dumps(dict(config or {}), sort_keys=True).encode())
    return h.hexdigest()


def _repo_name(path: Path) -> str:
    stem = path.name
    for suffix in _TAR_SUFFIXES:
        stem = stem.removesuffix(suffix)
    name = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")
    return name or "rootfs"

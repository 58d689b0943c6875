"""Copying files into and out of a container's root filesystem as tar archives.

Paths are resolved inside the container's root with :func:`secure_join` (symlinks behave as
if the root were ``/``), and archives are extracted with tarfile's ``data`` filter, so neither a
symlink in the container nor an entry in the archive can reach the host.
"""

from __future__ import annotations

import io
import os
import shutil
import stat as stat_mod
import tarfile
from pathlib import Path
from typing import Any

from containerkit.errors import InvalidArgument, NotFound, UnsafeArchive
from containerkit.linux.mounts import secure_join

__all__ = ["get", "put", "stat"]


def _resolve(root: Path, path: str) -> str:
    if not path.startswith("/"):
        raise InvalidArgument(f"container path must be absolute, got {path!r}")
    return secure_join(str(root), path)


def put(root: Path, path: str, data: bytes | str | os.PathLike[str]) -> None:
    """Extract tar bytes into directory ``path``, or copy a host file/dir to ``path``."""
    if isinstance(data, bytes):
        target = _resolve(root, path)
        if not os.path.isdir(target):
            raise NotFound(f"Could not find the file {path} in container (no such directory)")
        try:
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                tar.extractall(target, filter="data")
        except tarfile.FilterError as exc:
            raise UnsafeArchive(f"refusing archive entry for {path}: {exc}") from None
        except tarfile.TarError as exc:
            raise InvalidArgument(f"not a valid tar archive for {path}: {exc}") from None
        return
    source = Path(os.fspath(data))
    if not source.exists():
        raise NotFound(f"no such host path: {source}")
    target = _resolve(root, path)
    if os.path.isdir(target):
        target = _resolve(root, f"{path.rstrip('/')}/{source.name}")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target, follow_symlinks=False)


def get(root: Path, path: str) -> bytes:
    """A tar holding ``path`` (named by its base name, like ``docker cp``)."""
    target = _resolve(root, path)
    if not os.path.lexists(target):
        raise NotFound(f"Could not find the file {path} in container")
    buffer = io.BytesIO()
    name = os.path.basename(path.rstrip("/")) or "."
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(target, arcname=name, recursive=True)
    return buffer.getvalue()


def stat(root: Path, path: str) -> dict[str, Any]:
    """docker's ``X-Docker-Container-Path-Stat`` fields for ``path``."""
    target = _resolve(root, path)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        raise NotFound(f"Could not find the file {path} in container") from None
    link = os.readlink(target) if stat_mod.S_ISLNK(st.st_mode) else ""
    return {
        "name": os.path.basename(path.rstrip("/")) or "/",
        "size": st.st_size,
        "mode": st.st_mode,
        "mtime": st.st_mtime,
        "linkTarget": link,
    }

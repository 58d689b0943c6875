"""The engine root is private to root, as Docker keeps ``/var/lib/docker``.

A volume's ``_data`` may hold a setuid-root binary a container wrote, and a bundle's
``config.json`` holds the container's environment (``-e SECRET=...``): no other host user may
reach either. Containers do not need these paths: their rootfs, volumes and ``/etc`` files are
mounted into them by root before they run.

Modes (Docker's in brackets): root 0710 (0710), ``containers/`` 0710 (0710), each state dir
0700, ``volumes/`` 0700 (0701), ``config.json`` 0600 (0600), ``metadata.db`` 0600 (0600). An
engine that opens a root made with looser modes tightens it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from containerkit.runtime.state import PRIVATE_DIR_MODE, make_private_dir

__all__ = ["CONFIG_MODE", "DB_MODE", "ROOT_MODE", "VOLUMES_MODE", "secure_root", "tighten_file"]

ROOT_MODE = 0o710
CONTAINERS_MODE = 0o710
VOLUMES_MODE = 0o700
CONFIG_MODE = 0o600
DB_MODE = 0o600


def tighten_file(path: Path, mode: int) -> None:
    """Clear every bit of ``path`` beyond ``mode`` (a missing file is fine)."""
    with contextlib.suppress(FileNotFoundError):
        st = os.stat(path, follow_symlinks=False)
        if st.st_mode & 0o7777 & ~mode:
            os.chmod(path, st.st_mode & mode, follow_symlinks=False)


def secure_root(root: Path) -> None:
    """Create ``root`` and its top directories with private modes; tighten what exists."""
    make_private_dir(root, ROOT_MODE)
    make_private_dir(root / "volumes", VOLUMES_MODE)
    containers = make_private_dir(root / "containers", CONTAINERS_MODE)
    # Made here (an empty file is an empty SQLite database) so it never exists with a wider
    # mode; SQLite gives its -wal and -shm files the database's mode. Only when missing: closing
    # any fd of the file drops every POSIX lock this process holds on it, including those of an
    # open Engine's SQLite connections (a second Engine on the root then saw "disk I/O error").
    with contextlib.suppress(FileExistsError):
        os.close(os.open(root / "metadata.db", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, DB_MODE))
    for name in ("metadata.db", "metadata.db-wal", "metadata.db-shm"):
        tighten_file(root / name, DB_MODE)
    for entry in os.scandir(containers):
        if entry.is_dir(follow_symlinks=False):
            state_dir = Path(entry.path)
            if os.stat(state_dir).st_mode & 0o7777 != PRIVATE_DIR_MODE:
                os.chmod(state_dir, PRIVATE_DIR_MODE)
            tighten_file(state_dir / "bundle" / "config.json", CONFIG_MODE)

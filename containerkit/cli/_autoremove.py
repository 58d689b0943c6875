"""``--rm`` for detached containers of the in-process engine.

With no daemon to remove a detached ``--rm`` container when it exits, ``run -d --rm`` leaves a
small watcher behind: a detached process that waits for the exit and removes the container.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["main", "spawn"]

_ENTRY = "from containerkit.cli._autoremove import main; main()"


def spawn(root: Path, container_id: str) -> None:
    """Start the watcher for ``container_id`` in its own session; returns at once."""
    subprocess.Popen(
        [sys.executable, "-c", _ENTRY, str(root), container_id],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )


def main() -> None:
    """``ROOT CONTAINER_ID``: wait for the container, then remove it (its spec says ``--rm``)."""
    from containerkit.engine import Engine
    from containerkit.errors import ContainerkitError

    root, container_id = sys.argv[1], sys.argv[2]
    with contextlib.suppress(ContainerkitError, OSError), Engine(root=root, forkserver=False) as engine:
        engine.containers.get(container_id).wait()
    os._exit(0)

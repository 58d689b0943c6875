"""Can containers run here? One answer, with one reason, before any test tries.

The fixtures skip with this reason instead of failing with a traceback from deep inside the
runtime: where tests run as an ordinary user, in a container without privileges, or on a
kernel without namespaces, the first thing a user sees is what is missing and what to do.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["why_containers_cannot_run"]

_UNSHARE = (
    "from containerkit.linux.namespaces import unshare; unshare(['mount', 'pid', 'uts', 'ipc', 'network'])"
)


def why_containers_cannot_run(
    *, euid: int | None = None, cgroup_root: Path = Path("/sys/fs/cgroup")
) -> str | None:
    """None when in-process containers can run; otherwise the reason, naming what is missing.

    Checks, cheapest first: Linux, root, a cgroup filesystem, and that this kernel lets a
    process create mount, pid, uts, ipc and network namespaces (tried in a child process, as
    pytest's process may have threads). Overlay is not required: snapshots fall back to copies.
    """
    if not sys.platform.startswith("linux"):
        return f"containerkit runs containers on Linux only (this is {sys.platform})"
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        return (
            f"containerkit needs root to run containers in-process (running as uid {euid}); "
            "run the tests as root, or point --containerkit-host at a containerkitd"
        )
    if not cgroup_root.is_dir() or not any(cgroup_root.iterdir()):
        return f"no cgroup filesystem is mounted at {cgroup_root}"
    try:
        result = subprocess.run(
            [sys.executable, "-c", _UNSHARE], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot check for namespaces: {exc}"
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        return f"this kernel or sandbox does not let containerkit create namespaces: {last}"
    return None

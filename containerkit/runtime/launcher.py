"""How a shim gets started: the :class:`Launcher` protocol and the launchers without a spawner.

:func:`~containerkit.runtime.shim.start_container` only needs something that starts a shim for
a request and hands it the write end of the ready pipe; where that shim comes from is the
launcher's business. The spawner (:class:`~containerkit.runtime.spawner.Spawner`) forks it from
its warm forkserver; :class:`DirectLauncher` double-forks it from this process when it is
single-threaded (decision 3), or starts a fresh ``python -c`` entry when it is not. None of them
imports the shim module to be typed, so the shim imports none of them but this protocol.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import NoReturn, Protocol

from containerkit._forkready import single_threaded
from containerkit.errors import RuntimeFailure
from containerkit.runtime.request import ShimRequest

__all__ = ["SHIM_ENTRY", "DirectLauncher", "Launcher", "ShimEntry"]

SHIM_ENTRY = "from containerkit.runtime.shim import main; main()"
"""Not ``python -m``: the package may import the shim module first, and runpy would run it twice."""

ShimEntry = Callable[[ShimRequest, int], NoReturn]
"""Become the shim of a request, reporting on the ready fd (``shim.run_shim``)."""


class Launcher(Protocol):
    """Starts a shim for ``request`` that reports on ``ready_fd`` (the caller closes its copy)."""

    def spawn_shim(self, request: ShimRequest, *, ready_fd: int) -> int | None:
        """Start the shim; its pid when the launcher knows it."""
        ...


class DirectLauncher:
    """A shim without a fork server: forked straight from this process when it is
    single-threaded (a CLI command: no new interpreter, ~100 ms saved), else a fresh one.

    ``entry`` is what the forked shim runs (given by the shim module, which this one does not
    import); the fresh interpreter runs :data:`SHIM_ENTRY`.
    """

    def __init__(self, entry: ShimEntry) -> None:
        self._entry = entry

    def spawn_shim(self, request: ShimRequest, *, ready_fd: int) -> None:
        if single_threaded():
            self._launch_forked(request, ready_fd)
        else:
            _launch_fresh(request, ready_fd)

    def _launch_forked(self, request: ShimRequest, ready_fd: int) -> None:
        """Double fork, so the shim is nobody's child here; it keeps only the ready pipe of our fds
        (a held database or lock file would outlive this process in it)."""
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the intermediate and the shim
            try:
                # What this process left for the collector stays uncollected here: its finalizers
                # would run on fds closed below (OSError in __del__), and an unraisable-hook that
                # formats a traceback inside an import's ast.parse corrupts CPython 3.11's AST
                # state (SystemError "AST constructor recursion depth mismatch" in the shim).
                gc.freeze()
                os.closerange(3, ready_fd)
                os.closerange(ready_fd + 1, os.sysconf("SC_OPEN_MAX"))
                signal.signal(signal.SIGPIPE, signal.SIG_DFL)
                if os.fork() == 0:
                    self._entry(request, ready_fd)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise RuntimeFailure(f"shim launcher for {request.container_id} failed (status {status:#x})")


def _launch_fresh(request: ShimRequest, ready_fd: int) -> None:
    """A fresh interpreter runs the shim's ``main``: it forks the shim and exits at once."""
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SHIM_ENTRY,
            "--ready-fd",
            str(ready_fd),
            json.dumps(request.to_dict()),
        ],
        pass_fds=(ready_fd,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        close_fds=True,
    )
    _out, err = launcher.communicate()
    if launcher.returncode != 0:
        raise RuntimeFailure(
            f"shim launcher for {request.container_id} exited with {launcher.returncode}: "
            f"{err.decode(errors='replace').strip()[-2000:]}"
        )

"""``containerkit``: the console script's entry point.

The root command and its verbs are :mod:`containerkit.cli._root` (``cli`` here is that one,
loaded on first use): ``containerkit --version`` alone prints the version without importing
click, which cost about a sixth of the command's time (the interpreter's own start is the rest).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from containerkit import __version__

if TYPE_CHECKING:
    from containerkit.cli._root import cli

__all__ = ["cli", "main"]

_VERSION_FLAGS = (["--version"], ["-v"])


def __getattr__(name: str) -> Any:
    if name == "cli":
        from containerkit.cli._root import cli

        return cli
    raise AttributeError(f"module 'containerkit.cli.main' has no attribute {name!r}")


def main(argv: Sequence[str] | None = None) -> None:
    """The console script."""
    args = list(argv) if argv is not None else sys.argv[1:]
    if args in _VERSION_FLAGS:  # what click's version option prints, click not loaded
        sys.stdout.write(f"containerkit {__version__}\n")
        _exit_without_teardown(0)
        sys.exit(0)
    from containerkit.cli._backend import exit_follows, pause_gc

    pause_gc()  # until the command's backend is open
    exit_follows()
    from containerkit.cli._root import cli

    code = cli.main(
        args=list(argv) if argv is not None else None, prog_name="containerkit", standalone_mode=False
    )
    _exit_without_teardown(code)
    sys.exit(code)


def _exit_without_teardown(code: int) -> None:
    """Exit now with ``code`` as Python's own exit would, without the interpreter's teardown.

    A command closes what it opened before it returns (the engine, the terminal; the
    database's connections are left to this exit, see ``exit_follows``); what Python's exit
    does after the exit handlers is the final garbage collection
    and the clearing of every module, which took 30-35 ms after a ``run`` (more than opening
    the engine). The exit handlers run here, all of them (as at any exit: a coverage tool's
    too). Returns, for the usual exit, while another thread that is not a daemon runs (the
    usual exit waits for it) or when the streams cannot be flushed (Python reports that).
    """
    import atexit
    import threading

    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    current = threading.current_thread()
    if run_exit_handlers is None or current is not threading.main_thread():
        return
    if any(t is not current and not t.daemon and t.is_alive() for t in threading.enumerate()):
        return
    run_exit_handlers()  # each once: they are cleared, so the usual exit would run none again
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(code)

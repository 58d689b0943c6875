"""Whether this process may fork its shims and forkserver instead of starting interpreters.

A fork is safe only from a single-threaded process (decision 3 in DESIGN.md); a fresh
interpreter costs about 100 ms more. Background threads that only finish deletions (the
store's trash) would make a command line or a script pay that after each removal, so they
register a way to be ended, and :func:`single_threaded` asks them before it answers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["on_fork_wanted", "single_threaded"]

_settlers: list[Callable[[], None]] = []


def on_fork_wanted(settle: Callable[[], None]) -> None:
    """Have ``settle`` run when this process wants to be single-threaded: it ends the idle
    background threads it knows of (waiting for their last work), or leaves busy ones."""
    _settlers.append(settle)


def single_threaded() -> bool:
    """True when only the main thread runs, once registered background threads were ended."""
    if threading.active_count() == 1:
        return True
    for settle in list(_settlers):
        settle()
    return threading.active_count() == 1

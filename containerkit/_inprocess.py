"""The in-process side of an :mod:`containerkit.api` object, when it is one.

A few front-end paths read a local container's output through the engine's handle (its log,
followed in place, and a line cursor on it) where a daemon streams the same over HTTP. They ask
here, by type, instead of probing for attributes; a program that never opened an ``Engine``
never imports one here.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from containerkit import api
    from containerkit.engine import Engine
    from containerkit.engine.containers import Container

__all__ = ["engine_container", "local_engine"]


def engine_container(container: api.ContainerHandle | object) -> Container | None:
    """``container`` as the Engine's handle, or None (a Client's, or any other object)."""
    if "containerkit.engine.containers" not in sys.modules:
        return None  # nothing in this process made an in-process container
    from containerkit.engine.containers import Container

    return container if isinstance(container, Container) else None


def local_engine(backend: api.Backend) -> Engine | None:
    """``backend`` as an in-process Engine, or None (a Client)."""
    if "containerkit.engine.engine" not in sys.modules:
        return None
    from containerkit.engine import Engine

    return backend if isinstance(backend, Engine) else None

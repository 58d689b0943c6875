"""One module per resource; each has ``register(router, app)``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from containerkit.daemon.routes import (
    build,
    commit,
    container_io,
    containers,
    execs,
    images,
    networks,
    system,
    volumes,
)

if TYPE_CHECKING:
    from containerkit.daemon.app import DaemonApp
    from containerkit.daemon.router import Router

__all__ = ["register_all"]


def register_all(router: Router, app: DaemonApp) -> None:
    for module in (system, containers, container_io, execs, images, volumes, networks, commit, build):
        module.register(router, app)
    system.register_fallbacks(router, app)

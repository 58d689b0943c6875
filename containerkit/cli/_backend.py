"""Which engine the command line drives: an in-process Engine on ``--root``, or a Client on ``--host``.

Both satisfy :class:`containerkit.api.Backend`, so the verbs are written once against it.
Where the command line still does something of its own for one side (it follows a local
container's log file and writes its stdin FIFO; it shows what a daemon says in ``inspect``),
it asks for that side by type here, never by probing attributes. Neither side is imported
before a verb needs it, which keeps ``--help`` cheap.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from containerkit._inprocess import engine_container, local_engine
from containerkit.cli._errors import USAGE_ERROR, CliError

if TYPE_CHECKING:
    from containerkit import api
    from containerkit.client import Client
    from containerkit.client.containers import Container as ClientContainer
    from containerkit.client.networks import Network as ClientNetwork
    from containerkit.engine import Engine

__all__ = [
    "ENV_HOST",
    "ENV_ROOT",
    "Backend",
    "backend",
    "client_container",
    "client_network",
    "engine",
    "engine_container",
    "exit_follows",
    "local_engine",
    "pause_gc",
    "resume_gc",
]

ENV_ROOT = "CONTAINERKIT_ROOT"
ENV_HOST = "CONTAINERKIT_HOST"
DEFAULT_ROOT = "/var/lib/containerkit"

_gc_paused = False
_exit_follows = False


def exit_follows() -> None:
    """The process exits once the command returns (the console script's ``main``).

    Closing the engine then leaves its database's write-ahead log to the next command instead
    of copying it into the database, which costs two ``fsync`` calls on every command.
    """
    global _exit_follows
    _exit_follows = True


def pause_gc() -> None:
    """No cyclic garbage collection while the command imports and opens its backend.

    Setting up (click, the verb, the engine: some 300 modules and 60 classes) allocates a lot
    and leaves almost no garbage, yet triggered ~45 collections that cost 10-25 ms of a
    ``run``. :func:`resume_gc` (called once the backend is open) freezes what the setup built,
    so later collections never scan it, and collects as usual from there: a long command
    (``logs -f``, ``events``, a shim forked from this process) runs with the collector on.
    """
    global _gc_paused
    if gc.isenabled():
        gc.disable()
        _gc_paused = True


def resume_gc() -> None:
    global _gc_paused
    if _gc_paused:
        _gc_paused = False
        gc.freeze()
        gc.enable()


class Backend:
    """Opens the engine on first use and closes it when the command ends."""

    def __init__(self, *, root: str | None, host: str | None) -> None:
        self.root = Path(root or os.environ.get(ENV_ROOT) or DEFAULT_ROOT)
        self.host = host or os.environ.get(ENV_HOST) or None
        self._local: Engine | None = None
        self._remote: Client | None = None

    @property
    def local(self) -> bool:
        """True for the in-process engine (the CLI owns attach, auto-remove and reaping)."""
        return self.host is None

    def engine(self) -> api.Backend:
        if self.host:
            return self.client()
        if self._local is None:
            self._local = self._open_engine()
            resume_gc()
        return self._local

    def client(self) -> Client:
        """The daemon's Client (only with ``--host``)."""
        if not self.host:
            raise CliError("this command needs a daemon (-H/--host)", USAGE_ERROR)
        if self._remote is None:
            self._remote = self._open_client(self.host)
            resume_gc()
        return self._remote

    def _open_engine(self) -> Engine:
        from containerkit.engine import Engine

        try:
            # No fork server: one CLI invocation starts at most a container or two, and a fork
            # server costs an interpreter start plus its shutdown on every command.
            return Engine(root=self.root, forkserver=False)
        except PermissionError as exc:
            raise CliError(f"cannot open root {self.root}: {exc.strerror} (run as root?)") from None
        except OSError as exc:
            raise CliError(f"cannot open root {self.root}: {exc}") from None

    @staticmethod
    def _open_client(host: str) -> Client:
        try:
            from containerkit.client import Client
        except ImportError:
            raise CliError(
                "-H/--host needs containerkit.client, which this installation does not have", USAGE_ERROR
            ) from None
        return Client(host)

    def close(self) -> None:
        if self._local is not None:
            # the default bridge stays up, like docker0
            self._local.close(release_network=False, checkpoint=not _exit_follows)
            self._local = None
        if self._remote is not None:
            self._remote.close()
            self._remote = None


def backend() -> Backend:
    """The current command's backend (set up by the root group)."""
    return click.get_current_context().find_object(Backend) or Backend(root=None, host=None)


def engine() -> api.Backend:
    return backend().engine()


def client_container(container: api.ContainerHandle) -> ClientContainer | None:
    """``container`` as the Client's handle (it carries the daemon's inspect document), or None."""
    if "containerkit.client.containers" not in sys.modules:
        return None
    from containerkit.client.containers import Container

    return container if isinstance(container, Container) else None


def client_network(network: api.NetworkHandle) -> ClientNetwork | None:
    """``network`` as the Client's handle (it carries the daemon's inspect document), or None."""
    if "containerkit.client.networks" not in sys.modules:
        return None
    from containerkit.client.networks import Network

    return network if isinstance(network, Network) else None

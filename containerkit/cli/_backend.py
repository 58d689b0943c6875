"""Which engine the command line drives: an in-process Engine on ``--root``, or a Client on ``--host``.

Both expose the same collections (``containers``, ``images``, ``volumes``, ``networks``), so the
verbs are written once against :class:`~containerkit.engine.Engine`'s API. Neither is imported
before a verb needs it, which keeps ``--help`` cheap.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from containerkit.cli._errors import USAGE_ERROR, CliError

if TYPE_CHECKING:
    from containerkit.engine import Engine

__all__ = ["ENV_HOST", "ENV_ROOT", "Backend", "backend", "engine"]

ENV_ROOT = "CONTAINERKIT_ROOT"
ENV_HOST = "CONTAINERKIT_HOST"
DEFAULT_ROOT = "/var/lib/containerkit"


class Backend:
    """Opens the engine on first use and closes it when the command ends."""

    def __init__(self, *, root: str | None, host: str | None) -> None:
        self.root = Path(root or os.environ.get(ENV_ROOT) or DEFAULT_ROOT)
        self.host = host or os.environ.get(ENV_HOST) or None
        self._engine: Any = None

    @property
    def local(self) -> bool:
        """True for the in-process engine (the CLI owns attach, auto-remove and reaping)."""
        return self.host is None

    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._open_client() if self.host else self._open_engine()
        return self._engine  # type: ignore[no-any-return]

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

    def _open_client(self) -> Any:
        try:
            from containerkit.client import Client  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise CliError(
                "-H/--host needs containerkit.client, which this installation does not have", USAGE_ERROR
            ) from None
        return Client(self.host)

    def close(self) -> None:
        if self._engine is not None:
            if self.local:
                self._engine.close(release_network=False)  # the default bridge stays up, like docker0
            else:
                self._engine.close()
            self._engine = None


def backend() -> Backend:
    """The current command's backend (set up by the root group)."""
    return click.get_current_context().find_object(Backend) or Backend(root=None, host=None)


def engine() -> Engine:
    return backend().engine()

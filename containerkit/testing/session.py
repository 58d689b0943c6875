"""One test session's hold on containerkit: the backend, its labels, and its cleanup.

A session opens an in-process :class:`~containerkit.Engine` (or a ``Client`` for a daemon),
sweeps what dead or expired sessions left (:func:`containerkit._reaper.reap_expired`), labels
what it creates with its id, this pid and an expiry, and at its end removes all of it. Nothing
here imports pytest: the plugin is a thin layer on top.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from containerkit import _reaper, api
from containerkit.engine import DEFAULT_ROOT, Engine
from containerkit.errors import ContainerkitError, Unavailable
from containerkit.spec import Image
from containerkit.testing.probe import why_containers_cannot_run

__all__ = ["DEFAULT_TTL", "ContainerkitSession", "new_session_id", "open_backend"]

DEFAULT_TTL = 3600.0
"""Seconds after which another host may remove what a session made (its own host checks the pid)."""


def new_session_id() -> str:
    """Unique per process; pytest-xdist workers of one run share the prefix."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")[:8] or secrets.token_hex(4)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"{run}-{worker}-{os.getpid()}"


def open_backend(*, host: str | None, root: str | os.PathLike[str] | None) -> api.Backend:
    """A ``Client`` on ``host`` when given, else an :class:`Engine` on ``root``.

    Raises :class:`~containerkit.errors.Unavailable` with the reason containers cannot run.
    """
    if host:
        try:
            from containerkit.client import Client
        except ImportError as exc:
            raise Unavailable(f"--containerkit-host {host}: no client in this installation ({exc})") from None
        client = Client(host)
        client.ping()
        return client
    reason = why_containers_cannot_run()
    if reason is not None:
        raise Unavailable(reason)
    engine_root = Path(root) if root else DEFAULT_ROOT
    try:
        return Engine(root=engine_root)
    except OSError as exc:
        raise Unavailable(f"cannot open the engine root {engine_root}: {exc}") from None


class ContainerkitSession:
    """What one pytest session (one xdist worker) created, and the labels that say so."""

    __test__ = False

    def __init__(
        self, backend: api.Backend, *, ttl: float = DEFAULT_TTL, session_id: str | None = None
    ) -> None:
        self.backend = backend
        self.id = session_id or new_session_id()
        self.ttl = ttl
        self.labels: dict[str, str] = _reaper.owner_labels(self.id, ttl=ttl)
        self.reaped: list[str] = []

    def start(self) -> None:
        """Sweep what crashed or expired sessions left behind (never a live owner's)."""
        self.reaped = _reaper.reap_expired(self.backend)

    def label(self, labels: Mapping[str, str] | None = None) -> dict[str, str]:
        """``labels`` plus this session's, for anything created on its behalf."""
        return {**dict(labels or {}), **self.labels}

    def run(
        self, image: str | Image, command: Sequence[str] | str | None = None, /, **fields: Any
    ) -> api.ContainerHandle:
        """Create and start a container labelled as this session's."""
        fields["labels"] = self.label(fields.get("labels"))
        return self.backend.containers.run(image, command, **fields)

    def finish(self) -> list[str]:
        """Remove everything this session made, then let go of the backend."""
        try:
            return _reaper.reap_session(self.backend, self.id)
        finally:
            with contextlib.suppress(ContainerkitError):
                self.backend.close()

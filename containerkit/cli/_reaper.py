"""What a test session left behind: selecting and removing expired containers, volumes, networks.

The pytest plugin labels everything a session creates::

    containerkit.session    the session id (any text)
    containerkit.owner-pid  the pid of the process that owns it (a pytest-xdist worker, say)
    containerkit.expires    unix time after which nobody may still use it
    containerkit.owner-host optional: the host name of the owner (the pid is checked only there)

A thing is *expired* when it carries ``containerkit.session`` and its expiry has passed or
its owner process is gone. Only labelled things are ever candidates; a live session's things
are never touched, so xdist workers cannot reap each other.

Used by ``containerkit system prune --expired`` and by the plugin at session start::

    from containerkit.cli._reaper import reap_expired
    reaped = reap_expired(engine)            # -> Reaped(containers=[ids], volumes=[...], networks=[...])
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from containerkit.engine import Engine

__all__ = [
    "EXPIRES_LABEL",
    "OWNER_HOST_LABEL",
    "OWNER_PID_LABEL",
    "SESSION_LABEL",
    "Reaped",
    "is_expired",
    "reap_expired",
    "session_labels",
]

SESSION_LABEL = "containerkit.session"
OWNER_PID_LABEL = "containerkit.owner-pid"
EXPIRES_LABEL = "containerkit.expires"
OWNER_HOST_LABEL = "containerkit.owner-host"


@attrs.frozen
class Reaped:
    """What :func:`reap_expired` removed (container ids, volume names, network names)."""

    containers: list[str] = attrs.field(factory=list)
    volumes: list[str] = attrs.field(factory=list)
    networks: list[str] = attrs.field(factory=list)


def session_labels(session: str, *, ttl: float, pid: int | None = None) -> dict[str, str]:
    """The labels for something a session creates, expiring ``ttl`` seconds from now."""
    return {
        SESSION_LABEL: session,
        OWNER_PID_LABEL: str(pid if pid is not None else os.getpid()),
        EXPIRES_LABEL: str(int(time.time() + ttl)),
        OWNER_HOST_LABEL: socket.gethostname(),
    }


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_expired(labels: Mapping[str, str], *, now: float | None = None) -> bool:
    """True for a session-labelled thing whose expiry passed or whose owner process is gone."""
    if SESSION_LABEL not in labels:
        return False
    now = time.time() if now is None else now
    with contextlib.suppress(ValueError):
        if EXPIRES_LABEL in labels and float(labels[EXPIRES_LABEL]) <= now:
            return True
    host = labels.get(OWNER_HOST_LABEL)
    if host and host != socket.gethostname():
        return False  # another machine's process: only its expiry tells
    with contextlib.suppress(ValueError):
        if OWNER_PID_LABEL in labels:
            pid = int(labels[OWNER_PID_LABEL])
            return pid > 0 and not _pid_alive(pid)
    return False


def _labels(obj: Any) -> dict[str, str]:
    return dict(getattr(obj, "labels", None) or {})


def reap_expired(engine: Engine, *, now: float | None = None, keep_session: str | None = None) -> Reaped:
    """Remove expired containers (forcibly), then expired volumes and networks nothing uses.

    ``keep_session``: a session id never to reap (the caller's own). Failures on one object
    (in use, removed meanwhile) skip it; the next reap tries again.
    """
    from containerkit.errors import ContainerkitError

    def expired(labels: Mapping[str, str]) -> bool:
        return is_expired(labels, now=now) and labels.get(SESSION_LABEL) != keep_session

    reaped = Reaped()
    for container in engine.containers.list(all=True):
        if expired(container.labels):
            try:
                container.remove(force=True, volumes=True)
            except ContainerkitError:
                continue
            reaped.containers.append(container.id)
    from containerkit.cli.volumes import remove_volume

    for vol in engine.volumes.list():
        if expired(dict(vol.labels)):
            try:
                remove_volume(engine, vol.name)
            except ContainerkitError:
                continue
            reaped.volumes.append(vol.name)
    networks = getattr(engine, "networks", None)
    for net in networks.list() if networks is not None else []:
        if expired(_labels(net)):
            try:
                networks.remove(net.id)  # type: ignore[union-attr]
            except ContainerkitError:
                continue
            reaped.networks.append(net.name)
    return reaped

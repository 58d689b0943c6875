"""Label-based cleanup: remove what a finished or crashed owner left behind.

Whatever the pytest fixtures (or any other short-lived owner) create carries labels::

    containerkit.session=<id>        who made it (one pytest session, one xdist worker)
    containerkit.owner-pid=<pid>     the owning process ...
    containerkit.owner-start=<ticks> ... and its start time, so a recycled pid is not mistaken for it
    containerkit.owner-host=<name>   the host that pid lives on
    containerkit.expires=<unix time> when it may go even if its owner cannot be checked

Cleanup is a sweep over these labels, not bookkeeping in memory, so it also works after the
owner was SIGKILLed. The rule: a thing whose owner runs (same host, same pid, same start time)
is never touched, whatever its expiry, so concurrent sessions and pytest-xdist workers never
remove each other's containers. A thing whose owner is gone is removed. When the owner cannot
be checked (another host, or no pid label), the expiry decides.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterable, Mapping
from typing import Any

from containerkit.errors import Conflict, NotFound
from containerkit.linux import proc

__all__ = [
    "LABEL_EXPIRES",
    "LABEL_OWNER_HOST",
    "LABEL_OWNER_PID",
    "LABEL_OWNER_START",
    "LABEL_SESSION",
    "owner_alive",
    "owner_labels",
    "reap_expired",
    "reap_session",
    "should_reap",
]

LABEL_SESSION = "containerkit.session"
LABEL_OWNER_PID = "containerkit.owner-pid"
LABEL_OWNER_START = "containerkit.owner-start"
LABEL_OWNER_HOST = "containerkit.owner-host"
LABEL_EXPIRES = "containerkit.expires"


def owner_labels(session_id: str, *, ttl: float, now: float | None = None) -> dict[str, str]:
    """The labels that tie a container, volume or network to this process for ``ttl`` seconds."""
    pid = os.getpid()
    now = time.time() if now is None else now
    return {
        LABEL_SESSION: session_id,
        LABEL_OWNER_PID: str(pid),
        LABEL_OWNER_START: str(proc.start_time(pid) or 0),
        LABEL_OWNER_HOST: socket.gethostname(),
        LABEL_EXPIRES: str(int(now + ttl)),
    }


def owner_alive(labels: Mapping[str, str]) -> bool | None:
    """True while the owner runs, False once it is gone, None when this host cannot tell."""
    host = labels.get(LABEL_OWNER_HOST)
    if host is not None and host != socket.gethostname():
        return None
    try:
        pid = int(labels[LABEL_OWNER_PID])
    except (KeyError, ValueError):
        return None
    start = labels.get(LABEL_OWNER_START, "")
    if start.isdigit() and int(start) > 0:
        return proc.is_alive(pid, int(start))
    stat = proc.read_stat(pid)  # no start time recorded: the pid alone has to do
    return stat is not None and not stat.exited


def should_reap(labels: Mapping[str, str], *, now: float | None = None) -> bool:
    """Whether a sweep may remove a thing with these labels (see the module docstring)."""
    if LABEL_SESSION not in labels:
        return False  # not ours: never touch what the fixtures did not make
    alive = owner_alive(labels)
    if alive is not None:
        return not alive
    try:
        expires = float(labels[LABEL_EXPIRES])
    except (KeyError, ValueError):
        return False
    return expires <= (time.time() if now is None else now)


def reap_expired(backend: Any, *, now: float | None = None) -> list[str]:
    """Remove the containers, volumes and networks whose owner is gone or whose expiry passed.

    ``backend`` is an :class:`~containerkit.Engine` or a ``Client`` (same collections). Returns
    what was removed: container ids, volume names, network names. Called by the pytest plugin
    at session start and by ``containerkit system prune --expired``.
    """
    return _sweep(backend, lambda labels: should_reap(labels, now=now))


def reap_session(backend: Any, session_id: str) -> list[str]:
    """Remove everything labelled with ``session_id`` (a session's own cleanup at its end)."""
    return _sweep(backend, lambda labels: labels.get(LABEL_SESSION) == session_id)


def _sweep(backend: Any, wanted: Any) -> list[str]:
    removed: list[str] = []
    for container in backend.containers.list(all=True, filters={"label": LABEL_SESSION}):
        if wanted(_labels(container)):
            with contextlib.suppress(NotFound, Conflict):  # another sweep got there first
                container.remove(force=True, volumes=True)
                removed.append(container.id)
    volumes = getattr(backend, "volumes", None)
    if volumes is not None:
        for volume in _listed(volumes):
            if wanted(_labels(volume)):
                with contextlib.suppress(NotFound, Conflict):
                    _remove_volume(volumes, volume)
                    removed.append(volume.name)
    networks = getattr(backend, "networks", None)
    if networks is not None:
        for network in _listed(networks):
            if wanted(_labels(network)):
                with contextlib.suppress(NotFound, Conflict):
                    _remove_network(networks, network)
                    removed.append(network.name)
    return removed


def _listed(collection: Any) -> Iterable[Any]:
    try:
        return list(collection.list(filters={"label": LABEL_SESSION}))
    except TypeError:  # a collection without filters
        return list(collection.list())


def _labels(thing: Any) -> dict[str, str]:
    labels = getattr(thing, "labels", None) or {}
    return {str(k): str(v) for k, v in (labels.items() if isinstance(labels, Mapping) else labels)}


def _remove_volume(volumes: Any, volume: Any) -> None:
    if hasattr(volume, "remove"):
        volume.remove(force=True)
    else:
        volumes.remove(volume.name, force=True)


def _remove_network(networks: Any, network: Any) -> None:
    if hasattr(network, "remove"):
        network.remove()
    else:
        networks.remove(network.name)

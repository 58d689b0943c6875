"""What the daemon itself does beyond the engine (an exec's ids, a copy out of a container, a
prune) recorded into the engine's durable event log, which ``GET /events`` reads.

The engine records its own actions (create, start, die, destroy, tag, ...) whoever calls it, so
routes record only what the engine cannot know: each event is in the log once.
"""

from __future__ import annotations

from collections.abc import Mapping

from containerkit.engine.events import EventLog

__all__ = ["EventBus"]


class EventBus:
    """``app.events``: the routes' way to record a daemon-only event (never raises)."""

    def __init__(self, log: EventLog) -> None:
        self.log = log

    def emit(self, type_: str, action: str, actor: str, attributes: Mapping[str, str] | None = None) -> None:
        self.log.record(type_, action, actor, {k: str(v) for k, v in (attributes or {}).items()})

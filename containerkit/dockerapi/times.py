"""Times as the Docker Engine API writes and reads them: RFC 3339 text, docker's zero time, and
``units.HumanDuration`` for the ``Status`` column of a container list."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from containerkit.spec import ContainerStatus

__all__ = ["ZERO_TIME", "human_duration", "human_status", "parse_time", "rfc3339"]

ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339(value: dt.datetime | float | None) -> str:
    """A datetime or unix seconds as RFC 3339 with microseconds; ``None`` is docker's zero time."""
    if value is None:
        return ZERO_TIME
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromtimestamp(value, dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: Any) -> dt.datetime | None:
    """RFC 3339 (any fraction width, ``Z`` or offset) or unix seconds; docker's zero time is None."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    text = str(value)
    if text.startswith("0001-01-01"):
        return None
    main, dot, rest = text.partition(".")
    if dot:  # the shim writes nanoseconds; fromisoformat takes at most six digits
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{main}.{rest[:digits][:6].ljust(6, '0')}{rest[digits:]}"
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def human_duration(seconds: float) -> str:
    """docker's ``units.HumanDuration`` (go-units): "Less than a second", "5 seconds", "About
    an hour" (hours rounded half up, as Go's ``int(d.Hours() + 0.5)``), "3 weeks"..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 14:
        return f"{hours // 24} days"
    if hours < 24 * 60:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def human_status(
    status: str,
    started_at: str | None,
    finished_at: str | None,
    exit_code: int | None,
    *,
    now: float | None = None,
    health: str | None = None,
) -> str:
    """The list's ``Status``: ``Up 2 seconds``, ``Up 1 second (Paused)``, ``Up 3 seconds
    (healthy)``, ``Up 1 second (health: starting)``, ``Restarting (1) 2 seconds ago``,
    ``Exited (0) 3 minutes ago``."""
    now = time.time() if now is None else now
    state = ContainerStatus.of(status)
    if state.is_up:
        started = parse_time(started_at)
        text = f"Up {human_duration(now - (started.timestamp() if started else now))}"
        if state is ContainerStatus.PAUSED:
            return text + " (Paused)"
        if health == "starting":
            return text + " (health: starting)"
        return f"{text} ({health})" if health in ("healthy", "unhealthy") else text
    finished = parse_time(finished_at)
    ago = f" {human_duration(now - finished.timestamp())} ago" if finished else ""
    if state is ContainerStatus.RESTARTING:
        return f"Restarting ({exit_code or 0}){ago}"
    if state is ContainerStatus.DEAD:
        return "Dead"
    if state is ContainerStatus.EXITED:
        return f"Exited ({exit_code or 0}){ago}"
    return "Created"

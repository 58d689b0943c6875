"""docker's times as its API and command line take them: unix seconds (fractional, also as
text), RFC 3339 with any fraction width, dates, and Go durations before now (``10m``); for
``since``/``until`` of events and logs, in the engine and in the client alike."""

from __future__ import annotations

import datetime as dt
import re
import time

from containerkit.errors import InvalidArgument

__all__ = ["EventTime", "event_time_ns", "rfc3339_ns", "unix_seconds"]

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def _duration_ns(text: str) -> int | None:
    """Go's ``time.ParseDuration`` (``10m``, ``1h30m``, ``2.5s``), as docker's ``since`` takes
    it relative to now; None when ``text`` is not one."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or body == "0":
        return None
    pos, total = 0, 0.0
    while pos < len(body):
        match = _DURATION.match(body, pos)
        if match is None:
            return None
        total += float(match[1]) * _DURATION_UNITS[match[2]]
        pos = match.end()
    return int(-total if text.startswith("-") else total)


EventTime = float | str | dt.datetime | dt.timedelta | None
"""docker's ``since``/``until``, as :func:`event_time_ns` reads them."""


def event_time_ns(value: EventTime, *, field: str) -> int | None:
    """docker's ``since``/``until`` in nanoseconds since the epoch: unix seconds (fractional,
    also as text ``"1700000000.123456789"``), a datetime, RFC 3339 text or a date
    (``2006-01-02``), or a duration before now (``10m``, a ``timedelta``)."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return int((value if value.tzinfo else value.astimezone()).timestamp() * 1e9)
    if isinstance(value, dt.timedelta):
        return time.time_ns() - int(value.total_seconds() * 1e9)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value * 1_000_000_000)
    if not isinstance(value, str):
        raise InvalidArgument(f"{field}: expected a time, got {value!r}")
    text = value.strip()
    duration = _duration_ns(text)
    if duration is not None:
        return time.time_ns() - duration
    seconds, dot, fraction = text.partition(".")
    if seconds.lstrip("-").isdigit() and (not dot or fraction.isdigit()):
        return int(seconds) * 1_000_000_000 + (int(fraction[:9].ljust(9, "0")) if fraction else 0)
    parsed = rfc3339_ns(text)
    if parsed is None:
        raise InvalidArgument(
            f"{field}: expected unix seconds, an RFC 3339 time or a duration like 10m, got {value!r}"
        )
    return parsed


def rfc3339_ns(text: str) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 time (any fraction width; no zone is UTC)."""
    main, dot, rest = text.partition(".")
    nanos = 0
    if dot:  # fromisoformat takes at most six fraction digits
        digits = len(rest) - len(rest.lstrip("0123456789"))
        nanos = int(rest[:digits][:9].ljust(9, "0")) if digits else 0
        text = main + rest[digits:]
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp()) * 1_000_000_000 + nanos


def unix_seconds(value: EventTime, *, field: str) -> str | None:
    """``value`` as the unix seconds (``"1700000000.123456789"``) dockerd's ``since``/``until``
    take on the wire: a client turns durations and dates into them, as the docker CLI does."""
    nanos = event_time_ns(value, field=field)
    if nanos is None:
        return None
    seconds, fraction = divmod(nanos, 1_000_000_000)
    return f"{seconds}.{fraction:09d}"

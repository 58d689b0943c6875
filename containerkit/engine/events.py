"""Durable events: what every engine on a root did, as docker's ``/events`` reports it.

Each action is one row of the root's metadata database (:class:`~containerkit.storage.stores.
EventStore`), so an in-process ``Engine``, the command line and the daemon on one root all
record into, and read, one stream; the daemon's ``GET /events`` is a reader of it like
:meth:`Engine.events`. Readers follow new rows by ``seq`` (polling the database, woken at once
by a recording in their own process).

A container's ``die`` (and ``oom``) is recorded by whoever first observes the exit the shim
recorded (a wait, an inspect, a list, recovery, or a reader of this log scanning the root's
containers), with the exit's own time, once per run: the key ``die:<id>:<started_at>`` makes
the second observer's recording a no-op.

Retention: the newest :data:`KEEP_EVENTS` events, none older than :data:`KEEP_SECONDS`;
pruned every :data:`PRUNE_EVERY` recordings through indexes.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path
from typing import Any

from containerkit._log import get_logger
from containerkit.errors import InvalidArgument
from containerkit.runtime.state import RuntimeState, read_state
from containerkit.spec import ContainerStatus, Event, label_matches, normalise_filters
from containerkit.storage.metadata import Database
from containerkit.times import event_time_ns, rfc3339_ns

__all__ = [
    "KEEP_EVENTS",
    "KEEP_SECONDS",
    "EventLog",
    "event_filters",
    "event_matches",
    "event_time_ns",
    "rfc3339_ns",
]

log = get_logger(__name__)

KEEP_EVENTS = 10_000
KEEP_SECONDS = 7 * 24 * 3600
PRUNE_EVERY = 256
POLL_SECONDS = 0.2
"""How often a follower looks for rows other processes added (its own process wakes it at once)."""
SCAN_SECONDS = 1.0
"""How often a follower looks for container exits nobody has observed yet."""

_FILTER_KEYS = frozenset(
    {"config", "container", "daemon", "event", "image", "label", "network", "node", "plugin", "scope"}
    | {"secret", "service", "type", "volume"}
)
_TYPES = frozenset(
    {
        "builder",
        "config",
        "container",
        "daemon",
        "image",
        "network",
        "node",
        "plugin",
        "secret",
        "service",
        "volume",
    }
)
_PREFIX_ACTIONS = ("health_status", "exec_create", "exec_start")
# ------------------------------------------------------------------------------ filters


def event_filters(filters: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """docker's event filters as ``{key: [values]}``; values may come as a string, a list or
    docker's ``{value: true}`` map. An unknown key or type is refused as dockerd does."""
    result = normalise_filters(filters, _FILTER_KEYS)
    for value in result.get("type", []):
        if value not in _TYPES:
            raise InvalidArgument(f"invalid filter 'type={value}'")
    return result


def _strip_tag(name: str) -> str:
    if "@" in name:
        return name.split("@", 1)[0]
    head, _, tail = name.rpartition(":")
    return head if head and "/" not in tail else name


def event_matches(event: Event, filters: Mapping[str, list[str]]) -> bool:
    """moby's ``events.Filter.Include``: values of one key are alternatives, keys all apply.
    ``container``/``network``/``volume`` match an event of that type by id prefix or name,
    ``image`` an image by id or name (tag or not), ``event`` the action (``health_status``,
    ``exec_create``, ``exec_start`` also by prefix), ``label`` the actor's attributes."""
    attrs = event.attributes

    def one_of(key: str, check: Callable[[str], bool]) -> bool:
        values = filters.get(key)
        return not values or any(check(v) for v in values)

    def by_name(kind: str) -> bool:
        return one_of(
            kind,
            lambda v: event.type == kind and (event.actor_id.startswith(v) or attrs.get("name") == v),
        )

    def action(value: str) -> bool:
        if event.action == value:
            return True
        return value in _PREFIX_ACTIONS and event.action.split(":")[0] == value

    image_name = attrs.get("name" if event.type == "image" else "image", "")
    images = {event.actor_id, image_name, _strip_tag(event.actor_id), _strip_tag(image_name)} - {""}
    return (
        one_of("type", lambda v: event.type == v)
        and one_of("event", action)
        and one_of("scope", lambda v: event.scope == v)
        and by_name("container")
        and by_name("network")
        and by_name("volume")
        and one_of("image", lambda v: v in images)
        and one_of("label", lambda v: label_matches(attrs, v))
        and not any(filters.get(k) for k in ("config", "daemon", "node", "plugin", "secret", "service"))
    )


# ------------------------------------------------------------------------------ the log


def container_attributes(name: str, image: str, labels: Mapping[str, str]) -> dict[str, str]:
    """What docker puts in a container event: its labels, ``image`` and ``name``."""
    return {**labels, "image": image, "name": name}


_CHANGED = threading.Condition()
"""Notified by every recording in this process: its followers wake at once, whichever
:class:`EventLog` recorded (the collections and the engine may each hold one on a database)."""


_OBSERVED: set[str] = set()
"""Exit keys this process has seen recorded: observing the same exit again (every list or
inspect of a stopped container does) costs no query."""


class EventLog:
    """Records events into the root's metadata database and reads them back (``engine.event_log``).

    ``state_root``: where the containers' state dirs are, for :meth:`scan_exits` (without it
    readers record no exits themselves); ``scan``: what the engine does instead, cheaper (its
    list re-reads only the containers whose running marker went away)."""

    def __init__(
        self, db: Database, state_root: Path | None = None, *, scan: Callable[[], object] | None = None
    ) -> None:
        self._store = db.events
        self._containers = db.containers
        self._state_root = Path(state_root) if state_root is not None else None
        self._scan = scan
        self._recorded = 0

    def record(
        self,
        type: str,
        action: str,
        actor_id: str,
        attributes: Mapping[str, str] | None = None,
        *,
        time_nano: int | None = None,
        key: str | None = None,
    ) -> None:
        """Append one event (now, or at ``time_nano``); with ``key``, only the first recording of
        that key counts. Never raises: an event that cannot be kept is logged, and the action
        that caused it stands."""
        try:
            event = Event(
                type=type,
                action=action,
                actor_id=actor_id,
                attributes=attributes or {},
                time_nano=time.time_ns() if time_nano is None else time_nano,
            )
            if self._store.append(event, key=key) is None:
                return
            self._recorded += 1
            if self._recorded % PRUNE_EVERY == 0:
                self.prune()
        except Exception:
            log.warning("could not record the %s %s event of %s", type, action, actor_id, exc_info=True)
            return
        with _CHANGED:
            _CHANGED.notify_all()

    def prune(self) -> int:
        """Apply the retention now; how many events went."""
        return self._store.prune(keep=KEEP_EVENTS, before_ns=time.time_ns() - KEEP_SECONDS * 1_000_000_000)

    # -------------------------------------------------------------------- container exits

    def observe_exit(self, container_id: str, state: RuntimeState, attributes: Mapping[str, str]) -> bool:
        """Record ``oom`` (if it was) and ``die`` for the run that ``state`` shows ended, with the
        exit's own time; a run already recorded is left alone. True when this call recorded it."""
        if not ContainerStatus(state.status).has_stopped or not state.started_at:
            return False
        key = f"die:{container_id}:{state.started_at}"
        if key in _OBSERVED:
            return False
        if len(_OBSERVED) > 4 * KEEP_EVENTS:
            _OBSERVED.clear()
        _OBSERVED.add(key)
        if self._store.has_key(key):
            return False
        when = rfc3339_ns(state.finished_at) if state.finished_at else None
        when = when or time.time_ns()
        if state.oom_killed:
            self.record("container", "oom", container_id, attributes, time_nano=when, key=f"oom:{key}")
        code = state.exit_code if state.exit_code is not None else 0
        self.record(
            "container", "die", container_id, {**attributes, "exitCode": str(code)}, time_nano=when, key=key
        )
        return True

    def scan_exits(self) -> None:
        """Record the exits of the root's containers that nobody observed yet."""
        if self._state_root is None:
            return
        try:
            if self._scan is not None:
                self._scan()
                return
            for record in self._containers.all():
                state = read_state(self._state_root / record.id)
                if ContainerStatus(state.status).has_stopped:
                    labels = json.loads(record.labels_json)
                    self.observe_exit(
                        record.id, state, container_attributes(record.name, record.image_ref, labels)
                    )
        except Exception:
            log.warning("could not scan for container exits in %s", self._state_root, exc_info=True)

    # -------------------------------------------------------------------- reading

    def follow(
        self,
        since: float | str | dt.datetime | dt.timedelta | None = None,
        until: float | str | dt.datetime | dt.timedelta | None = None,
        filters: Mapping[str, Any] | None = None,
        *,
        idle: float = 1.0,
    ) -> Generator[Event | None, None, None]:
        """docker's ``/events``: with ``since`` or ``until``, the kept events in that window
        (oldest first); then, unless ``until`` has passed, new events as they are recorded,
        until ``until``. None every ``idle`` seconds without an event (a server's chance to
        notice its client left). Bad arguments raise before the first ``next``."""
        since_ns = event_time_ns(since, field="since")
        until_ns = event_time_ns(until, field="until")
        wanted = event_filters(filters)
        return self._follow(since_ns, until_ns, wanted, idle)

    def _follow(
        self, since_ns: int | None, until_ns: int | None, wanted: dict[str, list[str]], idle: float
    ) -> Generator[Event | None, None, None]:
        self.scan_exits()
        head = self._store.last_seq()
        if since_ns is not None or until_ns is not None:
            past: list[tuple[int, Event]] = []
            after = 0
            while batch := self._store.read(
                after_seq=after, upto_seq=head, since_ns=since_ns, until_ns=until_ns
            ):
                past.extend(batch)
                after = batch[-1][0]
            past.sort(key=lambda item: (item[1].time_nano, item[0]))
            for _seq, event in past:
                if event_matches(event, wanted):
                    yield event
        if until_ns is not None and until_ns <= time.time_ns():
            return
        last_event = last_scan = time.monotonic()
        while True:
            batch = self._store.read(after_seq=head, since_ns=since_ns, until_ns=until_ns)
            if batch:
                head = batch[-1][0]
                for _seq, event in batch:
                    if event_matches(event, wanted):
                        last_event = time.monotonic()
                        yield event
                continue
            now = time.monotonic()
            if until_ns is not None and time.time_ns() >= until_ns:
                return
            if now - last_scan >= SCAN_SECONDS:
                last_scan = now
                self.scan_exits()
                continue
            if now - last_event >= idle:
                last_event = now
                yield None
            wait = POLL_SECONDS
            if until_ns is not None:
                wait = min(wait, max((until_ns - time.time_ns()) / 1e9, 0.0))
            with _CHANGED:
                _CHANGED.wait(wait)

    def events(
        self,
        since: float | str | dt.datetime | dt.timedelta | None = None,
        until: float | str | dt.datetime | dt.timedelta | None = None,
        filters: Mapping[str, Any] | None = None,
    ) -> Iterator[Event]:
        """:meth:`follow` without the idle ticks."""
        stream = self.follow(since, until, filters)
        return (event for event in stream if event is not None)

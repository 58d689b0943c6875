"""The daemon's event stream (``GET /events``): routes and the monitor emit, subscribers read.

The engine has no event hook, so events are emitted where the daemon acts (create, start,
die, destroy, pull, tag, ...). A bounded history serves ``since``; live subscribers each get a
queue, so one slow reader never delays an emitter.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from containerkit.spec import label_matches

__all__ = ["EventBus", "Subscription", "event_matches"]

HISTORY = 1024


class Subscription:
    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self.queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=10_000)

    def get(self, timeout: float) -> dict[str, Any] | None:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._bus._unsubscribe(self)


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._history: collections.deque[dict[str, Any]] = collections.deque(maxlen=HISTORY)
        self._subscribers: list[Subscription] = []

    def emit(self, type_: str, action: str, actor: str, attributes: Mapping[str, str] | None = None) -> None:
        now = time.time_ns()
        attrs = {k: str(v) for k, v in (attributes or {}).items()}
        event: dict[str, Any] = {
            "Type": type_,
            "Action": action,
            "Actor": {"ID": actor, "Attributes": attrs},
            "scope": "local",
            "time": now // 1_000_000_000,
            "timeNano": now,
        }
        if type_ == "container":  # the pre-1.22 fields docker still sends and old clients read
            event.update({"status": action, "id": actor, "from": attrs.get("image", "")})
        with self._lock:
            self._history.append(event)
            subscribers = list(self._subscribers)
        for sub in subscribers:
            # a reader that stopped reading loses events, not the daemon its memory
            with contextlib.suppress(queue.Full):
                sub.queue.put_nowait(event)

    def subscribe(self) -> Subscription:
        sub = Subscription(self)
        with self._lock:
            self._subscribers.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    def history(self, since_ns: int | None, until_ns: int | None) -> Iterator[dict[str, Any]]:
        with self._lock:
            events = list(self._history)
        for event in events:
            if since_ns is not None and event["timeNano"] < since_ns:
                continue
            if until_ns is not None and event["timeNano"] > until_ns:
                continue
            yield event


def event_matches(event: Mapping[str, Any], filters: Mapping[str, list[str]]) -> bool:
    """docker's event filters: type, event/action, container, image, volume, network, label."""
    actor = event["Actor"]
    attrs = actor["Attributes"]
    checks: dict[str, Callable[[str], bool]] = {
        "type": lambda v: event["Type"] == v,
        "event": lambda v: event["Action"] == v or event["Action"].split(":")[0] == v,
        "container": lambda v: (
            event["Type"] == "container" and (actor["ID"].startswith(v) or attrs.get("name") == v)
        ),
        "image": lambda v: attrs.get("image") == v or (event["Type"] == "image" and actor["ID"] == v),
        "volume": lambda v: event["Type"] == "volume" and actor["ID"] == v,
        "network": lambda v: (
            event["Type"] == "network" and (actor["ID"].startswith(v) or attrs.get("name") == v)
        ),
        "label": lambda v: label_matches(attrs, v),
    }
    for key, values in filters.items():
        check = checks.get(key)
        if check is not None and not any(check(v) for v in values):
            return False
    return True

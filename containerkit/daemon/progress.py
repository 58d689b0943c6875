"""A pull or push as dockerd streams it: the engine works in a thread, its progress events go
out as docker's JSON messages, one object per chunk.

dockerd answers an error with an HTTP status as long as nothing has been written (a missing
repository is a 404 the clients act on: the docker CLI's ``run`` and docker-py's
``ImageNotFound``), and in-band as ``{"errorDetail", "error"}`` once the stream has started.
So the response waits for the operation's first event (or its end) before it is sent: a pull
says ``Pulling from`` only once its manifest is found, as dockerd does. A client that leaves
sets ``cancel``, which stops a pull (dockerd cancels the request's context).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from containerkit.daemon.server import TICK, Response
from containerkit.dockerapi.progress import error_message, progress_message
from containerkit.errors import ContainerkitError
from containerkit.spec import ProgressEvent

__all__ = ["Progress", "progress_response"]

log = logging.getLogger("containerkit.daemon")

T = TypeVar("T")
Progress = Callable[[ProgressEvent], None]

_POLL = 0.5
"""How often a quiet stream checks that its client is still there."""


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\r\n"


class _Run(Generic[T]):
    """The operation's thread and the queue its events, result or error arrive on."""

    def __init__(self, work: Callable[[Progress], T], name: str, gone: threading.Event) -> None:
        self.items: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.gone = gone
        self._work = work
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _emit(self, event: ProgressEvent) -> None:
        if not self.gone.is_set():  # nobody reads once the client has left; the work goes on
            self.items.put(("event", event))

    def _run(self) -> None:
        try:
            result = self._work(self._emit)
        except BaseException as exc:  # reported to the client, in-band or as a status
            self.items.put(("error", exc))
        else:
            self.items.put(("done", result))


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, ContainerkitError):
        return exc.message
    log.error("pull/push failed: %s: %s", type(exc).__name__, exc)
    return f"internal error: {type(exc).__name__}: {exc}"


def progress_response(
    work: Callable[[Progress], T],
    *,
    name: str,
    image_id: str = "",
    first: Iterable[dict[str, Any]] = (),
    last: Callable[[T], Iterable[dict[str, Any]]] = lambda _result: (),
    cancel: threading.Event | None = None,
) -> Response:
    """Run ``work(progress)`` and stream its events; raises what it raises before its first event.

    ``first`` goes out before the events, ``last(result)`` after them; ``image_id`` is the ``id``
    of ``Pulling from`` (the tag), as in docker's stream. ``cancel`` is set once the stream ends,
    early when the client leaves: ``work`` that watches it stops.
    """
    run = _Run(work, name, cancel or threading.Event())
    head = run.items.get()
    if head[0] == "error":
        raise head[1]

    def lines() -> Iterator[bytes | None]:
        try:
            yield from (_line(message) for message in first)
            kind, value = head
            while kind == "event":
                yield _line(progress_message(value, image_id=image_id))
                while True:
                    try:
                        kind, value = run.items.get(timeout=_POLL)
                        break
                    except queue.Empty:
                        yield TICK
            if kind == "done":
                try:
                    closing = list(last(value))
                except Exception as exc:
                    kind, value = "error", exc
                else:
                    yield from (_line(message) for message in closing)
            if kind == "error":
                error_kind = value.kind if isinstance(value, ContainerkitError) else None
                yield _line(error_message(_error_text(value), kind=error_kind))
        finally:
            run.gone.set()

    return Response(200, content_type="application/json", stream=lines())

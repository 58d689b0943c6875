"""docker's JSON progress messages (pull, push) both ways: a :class:`ProgressEvent` to the object
dockerd streams, and a streamed object back to an event.

dockerd writes ``{"status", "progressDetail": {"current", "total"}, "progress", "id"}`` per
step (``progress`` is the text bar its CLI once printed; the CLI now draws from
``progressDetail``, older clients print the text). A failure after the stream has started is an
object of its own, ``{"errorDetail": {"message"}, "error"}``: the status line was already sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from containerkit.spec import ProgressEvent

__all__ = ["error_message", "human_size", "progress_bar", "progress_event", "progress_message"]

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BAR = 50
_PULLING_FROM = "Pulling from "


def human_size(size: float) -> str:
    """docker's ``units.HumanSize``: decimal units, four significant digits (``1.234MB``)."""
    unit = 0
    while size >= 1000 and unit < len(_UNITS) - 1:
        size /= 1000
        unit += 1
    return f"{size:.4g}{_UNITS[unit]}"


def progress_bar(current: int | None, total: int | None) -> str:
    """The text dockerd puts in ``progress``: ``[=====>     ]  1.2MB/4.5MB`` (moby's JSONProgress)."""
    cur = current or 0
    if cur <= 0 and not total:
        return ""
    if not total or total <= 0:
        return f"{human_size(cur):>8}"
    filled = min(int(cur / total * 100) // 2, _BAR)
    box = f"[{'=' * filled}>{' ' * (_BAR - filled)}] "
    return f"{box}{human_size(cur):>8}/{human_size(total)}"


def progress_message(event: ProgressEvent, *, image_id: str = "") -> dict[str, Any]:
    """The object dockerd streams for ``event``; ``image_id`` is the ``id`` of ``Pulling from
    <repo>`` (the tag), the one image-level line that has one in docker's stream."""
    message: dict[str, Any] = {"status": event.action}
    if event.current is not None or event.total is not None:
        detail: dict[str, int] = {}
        if event.current is not None:
            detail["current"] = event.current
        if event.total is not None:
            detail["total"] = event.total
        message["progressDetail"] = detail
        bar = progress_bar(event.current, event.total)
        if bar:
            message["progress"] = bar
    elif event.id and not event.action.startswith(_PULLING_FROM):
        message["progressDetail"] = {}
    ident = event.id or (image_id if event.action.startswith(_PULLING_FROM) else "")
    if ident:
        message["id"] = ident
    return message


def error_message(text: str, *, kind: str | None = None) -> dict[str, Any]:
    """A failure once the stream has started (dockerd's ``FormatError``; docker-py reads ``error``).

    ``kind`` is the error's class (``unauthorized``, ``integrity``...) for containerkit's Client;
    docker's clients ignore the extra key. No ``code``: the docker CLI prints a 401 code as
    "authentication is required" instead of the registry's words."""
    detail: dict[str, str] = {"message": text}
    if kind:
        detail["kind"] = kind
    return {"errorDetail": detail, "error": text}


def progress_event(message: Mapping[str, Any]) -> ProgressEvent | None:
    """A streamed object back to its event; None for what is no progress step (``aux``, errors)."""
    status = message.get("status")
    if not isinstance(status, str) or not status:
        return None
    detail = message.get("progressDetail")
    current = total = None
    if isinstance(detail, Mapping):
        current = _count(detail.get("current"))
        total = _count(detail.get("total"))
    ident = message.get("id")
    return ProgressEvent(
        id=ident if isinstance(ident, str) else "", action=status, current=current, total=total
    )


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None

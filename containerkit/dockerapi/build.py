"""docker's classic build stream both ways: a :class:`BuildEvent` to the object dockerd streams
for ``POST /build``, and a streamed object back to an event.

dockerd writes every line as ``{"stream": "..."}`` (``Step 1/6 : FROM busybox\\n``,
`` ---> Using cache\\n``, a RUN's output; its stderr wrapped in ``ESC[91m`` ... ``ESC[0m``), the
image of each stage as ``{"aux": {"ID": "sha256:..."}}``, and a failure as ``{"errorDetail":
{"code", "message"}, "error"}`` (docker-py raises ``BuildError`` on ``error``; its image id
comes from the ``Successfully built <id>`` line).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from containerkit.spec import BuildEvent

__all__ = ["build_error", "build_event", "build_message", "quiet_message"]

RED = "\x1b[91m"
RESET = "\x1b[0m"

_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)\n?\Z", re.DOTALL)
_ARROW = re.compile(r"^ ---> (.*)\n\Z", re.DOTALL)


def build_message(event: BuildEvent) -> dict[str, Any] | None:
    """The object dockerd streams for ``event`` (None: nothing to send)."""
    if event.kind == "stage":
        return {"aux": {"ID": event.id}}
    line = event.line()
    if not line:
        return None
    if event.kind == "output" and event.stream == "stderr":
        line = f"{RED}{line}{RESET}"
    return {"stream": line}


def quiet_message(image_id: str) -> dict[str, Any]:
    """What ``q=1`` streams once the build is done: the image id alone."""
    return {"stream": f"{image_id}\n"}


def build_error(text: str, *, code: int | None = None, kind: str | None = None) -> dict[str, Any]:
    """A build failure once the stream has started; ``code`` is a failed RUN's exit code."""
    detail: dict[str, Any] = {"message": text}
    if code is not None:
        detail["code"] = code
    if kind:
        detail["kind"] = kind
    return {"errorDetail": detail, "error": text}


def build_event(message: Mapping[str, Any]) -> BuildEvent | None:
    """A streamed object back to its event; None for errors and what is not a build line."""
    aux = message.get("aux")
    if isinstance(aux, Mapping) and isinstance(aux.get("ID"), str):
        return BuildEvent(kind="stage", id=aux["ID"])
    text = message.get("stream")
    if not isinstance(text, str):
        return None
    if text.startswith(RED) and text.endswith(RESET):
        return BuildEvent(kind="output", text=text[len(RED) : -len(RESET)], stream="stderr")
    step = _STEP.match(text)
    if step:
        return BuildEvent(kind="step", text=step.group(3), step=int(step.group(1)), total=int(step.group(2)))
    arrow = _ARROW.match(text)
    if arrow:
        rest = arrow.group(1)
        if rest == "Using cache":
            return BuildEvent(kind="cache")
        if rest.startswith("Running in "):
            return BuildEvent(kind="running", id=rest[len("Running in ") :])
        if rest.startswith("Removed intermediate container "):
            return BuildEvent(kind="removed", id=rest[len("Removed intermediate container ") :])
        return BuildEvent(kind="image", id=rest)
    if text.startswith("Successfully built ") and text.endswith("\n"):
        return BuildEvent(kind="built", id=text[len("Successfully built ") : -1])
    if text.startswith("Successfully tagged ") and text.endswith("\n"):
        return BuildEvent(kind="tagged", text=text[len("Successfully tagged ") : -1])
    if text.startswith("[Warning] ") and text.endswith("\n"):
        return BuildEvent(kind="warning", text=text[len("[Warning] ") : -1])
    return BuildEvent(kind="output", text=text)

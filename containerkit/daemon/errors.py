"""The one place where exceptions become HTTP responses.

containerkit's errors carry their status (:mod:`containerkit.errors`); the body is docker's
``{"message": ...}`` plus the error's ``kind``, so containerkit's Client raises the same class the
Engine raised. The few statuses the engine has no class for (413, 501, 503 for swarm, 404 for
unknown paths) are subclasses here that keep a ``kind`` the client understands.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from containerkit.errors import ContainerkitError, InvalidArgument, NotFound, Unavailable

__all__ = [
    "MethodNotAllowed",
    "NotImplementedYet",
    "PageNotFound",
    "PayloadTooLarge",
    "SwarmUnavailable",
    "error_body",
    "status_and_body",
]

log = logging.getLogger("containerkit.daemon")


class PayloadTooLarge(InvalidArgument):
    status = 413


class PageNotFound(NotFound):
    """An unknown path: docker answers exactly ``{"message": "page not found"}``."""


class MethodNotAllowed(InvalidArgument):
    status = 405


class NotImplementedYet(Unavailable):
    status = 501


class SwarmUnavailable(Unavailable):
    """containerkitd is never a swarm manager; docker says 503 for that too."""


def error_body(message: str, kind: str) -> bytes:
    return json.dumps({"message": message, "kind": kind}).encode() + b"\n"


def status_and_body(exc: BaseException) -> tuple[int, bytes]:
    """(status, JSON body) for any exception a route let through."""
    if isinstance(exc, ContainerkitError):
        return exc.status, error_body(exc.message, exc.kind)
    if isinstance(exc, (KeyError, TypeError, ValueError)) and not isinstance(exc, UnicodeError):
        log.exception("unexpected bad input")
        return 400, error_body(f"bad request: {type(exc).__name__}: {exc}", InvalidArgument.kind)
    log.exception("internal error")
    detail: Any = f"{type(exc).__name__}: {exc}"
    return 500, error_body(f"internal error: {detail}", ContainerkitError.kind)

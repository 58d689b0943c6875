"""Paths to route functions, with and without the ``/vN`` API version prefix.

Patterns use ``{name}`` for one path segment and ``{name:.+}`` for a greedy match (image names
hold ``/``, ``:`` and ``@``). The first pattern that matches wins, so specific routes go first.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from containerkit.daemon.errors import MethodNotAllowed, PageNotFound
from containerkit.daemon.server import Request, Response

__all__ = ["Handler", "Router"]

Handler = Callable[[Request], "Response | None"]

_PARAM = re.compile(r"\{(\w+)(?::([^}]+))?\}")


def _compile(pattern: str) -> re.Pattern[str]:
    out = ""
    pos = 0
    for match in _PARAM.finditer(pattern):
        out += re.escape(pattern[pos : match.start()])
        out += f"(?P<{match.group(1)}>{match.group(2) or '[^/]+'})"
        pos = match.end()
    return re.compile("^" + out + re.escape(pattern[pos:]) + "/?$")


_Route = tuple[str, re.Pattern[str], Handler]


def _first_segment(path: str) -> str:
    """``containers`` of ``/containers/{id}/json`` (a path that does not begin with ``/``: "")."""
    return path[1:].split("/", 1)[0] if path.startswith("/") else ""


class Router:
    """Routes are tried in the order they were added, but only those whose first path segment
    can match the path's: trying all 111 expressions in turn cost an attach 30 us to resolve."""

    def __init__(self) -> None:
        self._routes: list[tuple[_Route, str | None]] = []  # the first segment, None: a parameter
        self._patterns: list[tuple[str, str, Handler]] = []
        self._candidates: dict[str | None, list[_Route]] = {}  # by first segment; None: the rest

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        first = _first_segment(pattern)
        self._routes.append(((method.upper(), _compile(pattern), handler), None if "{" in first else first))
        self._patterns.append((method.upper(), pattern, handler))
        segments = {segment for _route, segment in self._routes}
        self._candidates = {
            key: [route for route, segment in self._routes if segment is None or segment == key]
            for key in segments | {None}
        }

    def routes(self) -> list[tuple[str, str, Handler]]:
        """``(method, pattern, handler)`` as registered, in order (docs/compatibility.md is checked
        against them)."""
        return list(self._patterns)

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        allowed = False
        first = _first_segment(path)
        routes = self._candidates.get(first if first in self._candidates else None, [])
        for route_method, regex, handler in routes:
            match = regex.match(path)
            if match is None:
                continue
            if route_method == method or (method == "HEAD" and route_method == "GET"):
                return handler, match.groupdict()
            allowed = True
        if allowed:
            raise MethodNotAllowed(f"method {method} is not allowed on {path}")
        raise PageNotFound("page not found")

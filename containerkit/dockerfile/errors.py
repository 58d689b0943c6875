"""The Dockerfile package's one error: bad Dockerfile text, with the line it is on."""

from __future__ import annotations

from containerkit.errors import InvalidArgument

__all__ = ["DockerfileSyntaxError"]


class DockerfileSyntaxError(InvalidArgument):
    """A Dockerfile that does not parse, worded as BuildKit words it.

    ``str()`` is ``dockerfile parse error on line N: <reason>``; ``reason`` and ``line``
    (1-based) are kept apart for callers that place the error themselves.
    """

    def __init__(self, reason: str, line: int) -> None:
        super().__init__(f"dockerfile parse error on line {line}: {reason}")
        self.reason = reason
        self.line = line

"""``get_logger(name)``: a module's logger that imports :mod:`logging` when it first logs.

logging (with traceback, string and textwrap under it) costs about 5 ms of import, and the
modules a command-line ``run`` loads hold a logger only for warnings that most runs never give
(recovery failures, a skipped tar entry). Those modules keep their ``log = get_logger(...)`` at
module level and call ``log.warning(...)`` as with a :class:`logging.Logger`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import logging

__all__ = ["get_logger"]


class _LazyLogger:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        import logging

        return getattr(logging.getLogger(self._name), attribute)

    def __repr__(self) -> str:
        return f"<logger {self._name} (loaded on first use)>"


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` as of the first call on it."""
    return cast("logging.Logger", _LazyLogger(name))
